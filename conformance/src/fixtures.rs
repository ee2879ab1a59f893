//! Small helpers shared by the checks, public so that backend authors can
//! write extra checks of their own in the same style.

use std::time::Duration;

use session_store_core::{Lookup, SessionBackend, SessionRecord, StorageKey, Timestamp};

/// A base instant for a check: the real current time (so that server-side
/// TTLs computed from deadlines stay in the future).
pub fn now() -> Timestamp {
    Timestamp::now_utc()
}

/// An anonymous record created at `t` with 30 min idle and 12 h absolute deadlines.
pub fn record(t: Timestamp, data: &[u8]) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: None,
        created_at: t,
        last_seen_at: t,
        auth_time: None,
        idle_deadline: t.saturating_add(Duration::from_secs(30 * 60)),
        absolute_deadline: t.saturating_add(Duration::from_secs(12 * 3600)),
        meta: Vec::new(),
        data: data.to_vec(),
    }
}

/// Loads `key` and expects a live session.
///
/// # Panics
/// If the backend errors or finds no session.
pub async fn load_session(
    backend: &dyn SessionBackend,
    key: &StorageKey,
    now: Timestamp,
) -> SessionRecord {
    match backend.load(key, now).await.expect("load") {
        Some(Lookup::Session(r)) => r,
        other => panic!("expected a live session, found {other:?}"),
    }
}
