//! Manager-level checks: the policy (timeouts, throttled touches, rotation
//! reasons, grace, limits, caps) and the user-facing operations, run over the
//! backend under test with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    ClientMeta, Lookup, ManualClock, Policy, RotateReason, Session, SessionManager, SessionRecord,
    SessionToken, StorageKey,
};

use super::Ctx;
use crate::fixtures::mins;

/// A manager over `ctx.backend` with `policy` and a manual clock standing at
/// the real current time.
pub(crate) fn manager(ctx: &Ctx, policy: Policy) -> (SessionManager, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let manager = SessionManager::builder(ctx.backend.clone())
        .clock(clock.clone())
        .policy(policy)
        .build()
        .expect("a valid policy");
    (manager, clock)
}

/// The raw record the backend holds for `key`, at the manager's now.
async fn stored(m: &SessionManager, key: &StorageKey) -> Option<SessionRecord> {
    match m.backend().load(key, m.now()).await.expect("backend load") {
        Some(Lookup::Session(r)) => Some(r),
        Some(Lookup::Forwarded(f)) => panic!("expected a session, found a forwarder {f:?}"),
        None => None,
    }
}

/// Loads through the manager; panics on errors.
async fn load(m: &SessionManager, token: &SessionToken) -> Option<Session> {
    m.load(token.expose_secret()).await.expect("manager load")
}

/// A new session, logged in as `user`.
async fn login(m: &SessionManager, user: &str) -> Session {
    let mut s = m
        .create(b"pre-login".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: user.to_owned(),
        },
    )
    .await
    .expect("login");
    s
}

/// 10 min idle, 60 min absolute, 60 s touch interval.
fn policy() -> Policy {
    Policy {
        idle_timeout: mins(10),
        absolute_timeout: mins(60),
        touch_interval: Duration::from_secs(60),
        ..Policy::default()
    }
}

mod devices;
mod persistent;
mod rotation;
mod safety;
mod timeouts;

pub use devices::*;
pub use persistent::*;
pub use rotation::*;
pub use safety::*;
pub use timeouts::*;
