//! Persistent logins ("remember me", refresh tokens): token families rotated
//! on every use, grace, reuse detection, expiry, revocation, listing and
//! hashing at rest, through the manager over the store under test.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    ClientMeta, DeviceKind, Error, Event, ManualClock, PersistentPolicy, PersistentToken, Policy,
    RotateReason, Session, SessionManager,
};

use super::{load, login, manager, policy};
use crate::checks::spy::Spy;
use crate::checks::{Ctx, Recorder};
use crate::fixtures::mins;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The check policy with a persistent-login policy: 30 days, 14 days idle,
/// `grace` of grace.
fn remember_policy(grace: Duration) -> Policy {
    Policy {
        persistent: PersistentPolicy {
            lifetime: DAY * 30,
            idle_timeout: DAY * 14,
            grace,
            revoke_sessions_on_reuse: true,
        },
        ..policy()
    }
}

fn meta(agent: &str) -> ClientMeta {
    ClientMeta {
        ip: Some("198.51.100.7".into()),
        user_agent: Some(agent.into()),
        label: None,
    }
}

/// Logs `user` in and issues a persistent login; returns the session and
/// the token.
async fn remembered_login(m: &SessionManager, user: &str) -> (Session, PersistentToken) {
    let mut s = login(m, user).await;
    let issued = m.remember(&mut s).await.expect("remember");
    assert_eq!(issued.handle, s.persistent_handle().expect("linked"));
    (s, issued.token)
}

async fn resume(m: &SessionManager, t: &PersistentToken) -> Option<session_store_core::Resumed> {
    m.resume(t.expose_secret(), meta("resumer"))
        .await
        .expect("resume")
}

/// Use rotates: a live token yields a new logged-in session (user bound,
/// `auth_time` the original login's, marked remembered, linked to the
/// family) and a successor in the same family; the successor works next
/// time; a later password login clears "remembered".
pub async fn persistent_rotation_on_use(ctx: Ctx) {
    let (m, clock) = manager(&ctx, remember_policy(Duration::from_secs(5)));
    let (first, t0) = remembered_login(&m, "alice").await;
    let login_time = first.auth_time().expect("logged in");
    assert!(!first.remembered(), "a password login is not remembered");

    clock.advance(DAY);
    let r1 = resume(&m, &t0).await.expect("a live token resumes");
    assert!(!r1.joined);
    assert_ne!(r1.token, t0, "every use issues a successor");
    assert_eq!(r1.token.family_key(), t0.family_key(), "same family");
    let s1 = &r1.session;
    assert_eq!(s1.user_id(), Some("alice"));
    assert_eq!(
        s1.auth_time(),
        Some(login_time),
        "auth_time stays the original login"
    );
    assert!(s1.remembered(), "the session records where it came from");
    assert_eq!(s1.persistent_handle(), first.persistent_handle());
    assert_eq!(s1.client_meta(), &meta("resumer"));
    let loaded = load(&m, s1.token()).await.expect("the new session loads");
    assert!(loaded.remembered());
    assert_eq!(loaded.auth_time(), Some(login_time));

    clock.advance(DAY);
    let r2 = resume(&m, &r1.token).await.expect("the successor resumes");
    assert_ne!(r2.token, r1.token);
    assert_ne!(r2.token, t0);

    // A password login on a remembered session clears the flag, keeps the link.
    let mut s2 = r2.session;
    m.rotate(
        &mut s2,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    assert!(!s2.remembered());
    assert_eq!(s2.persistent_handle(), first.persistent_handle());
    assert!(!load(&m, s2.token()).await.expect("loads").remembered());
    // An anonymous session cannot be remembered.
    let mut anon = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    assert!(matches!(
        m.remember(&mut anon).await,
        Err(Error::InvalidInput(_))
    ));
}

/// Concurrent uses of one token yield exactly one successor: 16 uses
/// released together (8 rounds) with a grace window all end on the same
/// successor, exactly one of them rotating; with no grace exactly one use
/// succeeds and the racing ones count as reuse.
pub async fn persistent_single_use_under_concurrency(ctx: Ctx) {
    const TASKS: usize = 16;
    for grace in [Duration::from_secs(5), Duration::ZERO] {
        let (m, _clock) = manager(&ctx, remember_policy(grace));
        for round in 0..8 {
            let user = format!("racer-{round}");
            let (_s, t0) = remembered_login(&m, &user).await;
            let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
            let mut tasks = Vec::new();
            for _ in 0..TASKS {
                let (m, t0, barrier) = (m.clone(), t0.clone(), barrier.clone());
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    m.resume(t0.expose_secret(), ClientMeta::default()).await
                }));
            }
            let mut results = Vec::new();
            for task in tasks {
                results.push(task.await.expect("task").expect("no error"));
            }
            let got: Vec<_> = results.into_iter().flatten().collect();
            let rotated = got.iter().filter(|r| !r.joined).count();
            if grace.is_zero() {
                assert_eq!(
                    got.len(),
                    1,
                    "no grace: exactly one use succeeds (round {round})"
                );
                assert_eq!(rotated, 1);
            } else {
                assert_eq!(
                    got.len(),
                    TASKS,
                    "in the grace window every racer is served"
                );
                assert_eq!(rotated, 1, "exactly one use rotates (round {round})");
                assert!(
                    got.iter().all(|r| r.token == got[0].token),
                    "one successor for all"
                );
                // The one successor is the family's live token.
                let next = resume(&m, &got[0].token).await.expect("successor is live");
                assert!(!next.joined);
            }
        }
    }
}

/// A token presented again after its rotation (outside the grace window)
/// revokes the family: the reused token, its successor and every session
/// the family minted are dead, with an `Event::PersistentReuse`; other
/// families of the user live on. With `revoke_sessions_on_reuse` off the
/// minted sessions survive.
pub async fn persistent_reuse_revokes_family(ctx: Ctx) {
    for revoke_sessions in [true, false] {
        let recorder = Arc::new(Recorder::default());
        let clock = Arc::new(ManualClock::starting_now());
        let mut policy = remember_policy(Duration::from_secs(5));
        policy.persistent.revoke_sessions_on_reuse = revoke_sessions;
        let m = SessionManager::builder(ctx.backend.clone())
            .clock(clock.clone())
            .policy(policy)
            .events(recorder.clone())
            .build()
            .expect("manager");
        let (first, stolen) = remembered_login(&m, "victim").await;
        let (_other, other_device) = remembered_login(&m, "victim").await;
        // The thief uses the stolen token first.
        let thief = resume(&m, &stolen).await.expect("thief resumes");
        clock.advance(Duration::from_secs(6));
        // The victim's copy is now a reused token.
        assert!(resume(&m, &stolen).await.is_none(), "reuse answers None");
        let reuse = recorder
            .events()
            .iter()
            .find_map(|e| match e {
                Event::PersistentReuse {
                    family,
                    sessions_revoked,
                } => Some((family.clone(), *sessions_revoked)),
                _ => None,
            })
            .expect("a PersistentReuse event");
        assert_eq!(reuse.0, stolen.family_key().short_hash());
        assert!(
            resume(&m, &thief.token).await.is_none(),
            "the successor is revoked too"
        );
        assert!(resume(&m, &stolen).await.is_none());
        let thief_session = load(&m, thief.session.token()).await;
        if revoke_sessions {
            assert!(thief_session.is_none(), "the family's sessions are revoked");
            assert_eq!(reuse.1, 1);
        } else {
            assert!(thief_session.is_some(), "sessions kept when configured");
            assert_eq!(reuse.1, 0);
        }
        // The password session (not minted by the family) is untouched.
        assert!(load(&m, first.token()).await.is_some());
        // Another device's family is untouched.
        assert!(resume(&m, &other_device).await.is_some());
    }
}

/// Inside the grace window the token just rotated gets the same successor
/// (and a session of its own); after the window it is reuse.
pub async fn persistent_grace_joins_same_successor(ctx: Ctx) {
    let (m, clock) = manager(&ctx, remember_policy(Duration::from_secs(5)));
    let (_s, t0) = remembered_login(&m, "alice").await;
    let r1 = resume(&m, &t0).await.expect("resume");
    clock.advance(Duration::from_secs(4));
    let again = resume(&m, &t0).await.expect("in grace");
    assert!(again.joined);
    assert_eq!(again.token, r1.token, "the same successor");
    assert_ne!(
        again.session.token(),
        r1.session.token(),
        "a session of its own"
    );
    assert!(load(&m, again.session.token()).await.is_some());
    clock.advance(Duration::from_secs(1));
    assert!(resume(&m, &t0).await.is_none(), "grace over: reuse");
    assert!(resume(&m, &r1.token).await.is_none(), "family revoked");
}

/// A family unused for its idle timeout expires; each use moves the idle
/// deadline; no use extends it past its absolute lifetime.
pub async fn persistent_idle_and_absolute_expiry(ctx: Ctx) {
    let (m, clock) = manager(&ctx, remember_policy(Duration::ZERO));
    // Idle.
    let (_s, t) = remembered_login(&m, "idle").await;
    clock.advance(DAY * 14 - Duration::from_millis(1));
    let r = resume(&m, &t)
        .await
        .expect("used just before the idle deadline");
    clock.advance(DAY * 14);
    assert!(
        resume(&m, &r.token).await.is_none(),
        "idle for 14 days: expired"
    );
    assert!(
        m.backend()
            .load(&r.token.family_key(), m.now())
            .await
            .expect("load")
            .is_none(),
        "the store reports the family expired"
    );
    // Absolute: used every 10 days, dead after 30.
    let (_s, mut t) = remembered_login(&m, "absolute").await;
    let deadline = m.now().saturating_add(DAY * 30);
    for _ in 0..2 {
        clock.advance(DAY * 10);
        let r = resume(&m, &t).await.expect("used within its lifetime");
        assert_eq!(
            r.expires_at, deadline,
            "use never moves the absolute deadline"
        );
        t = r.token;
    }
    clock.advance(DAY * 10);
    assert!(
        resume(&m, &t).await.is_none(),
        "30 days after the login: expired"
    );
}

/// Logout ends the device's persistent login (the remembered session's
/// too); log out everywhere ends every family of the user and no one
/// else's.
pub async fn persistent_logout_and_logout_everywhere(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, remember_policy(Duration::ZERO));
    let (s, t) = remembered_login(&m, "alice").await;
    m.logout(&s).await.expect("logout");
    assert!(resume(&m, &t).await.is_none(), "logout revokes the family");

    let (_s, t) = remembered_login(&m, "alice").await;
    let r = resume(&m, &t).await.expect("resume");
    m.logout(&r.session)
        .await
        .expect("logout of a remembered session");
    assert!(resume(&m, &r.token).await.is_none());

    let (_a, a1) = remembered_login(&m, "alice").await;
    let (_b, a2) = remembered_login(&m, "alice").await;
    let (_c, bob) = remembered_login(&m, "bob").await;
    assert!(m.logout_everywhere("alice").await.expect("everywhere") >= 2);
    assert!(resume(&m, &a1).await.is_none());
    assert!(resume(&m, &a2).await.is_none());
    assert!(
        resume(&m, &bob).await.is_some(),
        "another user's family lives"
    );
}

/// Families are listed as persistent logins (metadata, current flag), are
/// not counted as sessions by the per-user cap, and are revoked through
/// their handle by their owner only.
pub async fn persistent_listed_and_revocable_by_handle(ctx: Ctx) {
    let policy = Policy {
        max_sessions_per_user: Some((2, session_store_core::CapPolicy::Refuse)),
        ..remember_policy(Duration::ZERO)
    };
    let (m, _clock) = manager(&ctx, policy);
    let mut s = login(&m, "alice").await;
    s.set_client_meta(meta("laptop"));
    m.save(&mut s).await.expect("save");
    let issued = m.remember(&mut s).await.expect("remember");
    let devices = m.list_devices("alice", Some(&s)).await.expect("list");
    assert_eq!(devices.len(), 2, "{devices:?}");
    let family = devices
        .iter()
        .find(|d| d.kind == DeviceKind::PersistentLogin)
        .expect("the persistent login is listed");
    assert_eq!(family.handle, issued.handle);
    assert_eq!(family.meta, meta("laptop"));
    assert!(family.current, "this device's persistent login");
    assert_eq!(family.absolute_deadline, issued.expires_at);
    // The cap counts sessions only: a second login fits beside the family,
    // a third does not.
    let _second = login(&m, "alice").await;
    let mut third = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    assert!(matches!(
        m.rotate(
            &mut third,
            RotateReason::Login {
                user_id: "alice".into()
            }
        )
        .await,
        Err(Error::TooManySessions { limit: 2 })
    ));
    // Another user cannot revoke it; the owner can.
    assert!(!m.revoke("mallory", &issued.handle).await.expect("revoke"));
    let devices = m.list_devices("alice", None).await.expect("list");
    let family = devices
        .iter()
        .find(|d| d.kind == DeviceKind::PersistentLogin)
        .expect("listed");
    assert!(m.revoke("alice", &family.handle).await.expect("revoke"));
    assert!(
        resume(&m, &issued.token).await.is_none(),
        "revoked by handle"
    );
    assert!(m
        .list_devices("alice", None)
        .await
        .expect("list")
        .iter()
        .all(|d| d.kind == DeviceKind::Session));
}

/// Malformed persistent tokens (and session tokens, handles) are
/// `InvalidId` before any backend call; oversized metadata is `TooLarge`
/// before any call.
pub async fn persistent_malformed_tokens_invalid_id_before_io(ctx: Ctx) {
    let spy = Spy::new(ctx.backend.clone());
    let m = SessionManager::builder(spy.clone())
        .clock(Arc::new(ManualClock::starting_now()))
        .build()
        .expect("manager");
    let session = session_store_core::SessionToken::generate();
    let good = "p.".to_owned() + &"A".repeat(64);
    let cases = [
        String::new(),
        "p.".into(),
        good[..65].to_owned(),
        format!("{good}A"),
        format!("P.{}", &good[2..]),
        format!("p.{}", "/".repeat(64)),
        format!("p.{}\0", &good[2..65]),
        session.expose_secret().to_owned(),
        session_store_core::SessionHandle::new(session.storage_key()).to_string(),
        "p.".to_owned() + &"A".repeat(1 << 20),
    ];
    for bad in cases {
        assert!(
            matches!(
                m.resume(&bad, ClientMeta::default()).await,
                Err(Error::InvalidId)
            ),
            "{:?}: expected InvalidId",
            &bad[..bad.len().min(80)]
        );
        assert_eq!(spy.calls(), 0, "a malformed token reached the backend");
    }
    let huge = ClientMeta {
        label: Some("x".repeat(m.policy().max_meta_bytes + 1)),
        ..ClientMeta::default()
    };
    assert!(matches!(
        m.resume(&good, huge).await,
        Err(Error::TooLarge {
            what: "metadata",
            ..
        })
    ));
    assert_eq!(spy.calls(), 0);
    // A well-formed unknown token finds nothing and writes nothing.
    assert!(m
        .resume(&good, ClientMeta::default())
        .await
        .expect("resume")
        .is_none());
    assert_eq!(spy.writes(), 0);
}

/// No persistent token (any spelling, its family id or secret bytes alone)
/// is at rest; under encryption neither is the family's client metadata.
/// Needs the dump hook.
pub async fn persistent_hashed_at_rest(ctx: Ctx) {
    use crate::checks::at_rest::{contains, snapshot, spellings};
    if ctx.dump.is_none() {
        ctx.skip("no dump hook (TestStore::with_dump)");
        return;
    }
    let (m, clock) = manager(&ctx, remember_policy(Duration::from_secs(5)));
    let tag =
        crate::fixtures::hex(&session_store_core::SessionToken::generate().secret_bytes()[..6]);
    let agent = format!("Remembered-Agent-{tag}");
    let mut s = login(&m, "alice").await;
    s.set_client_meta(ClientMeta {
        user_agent: Some(agent.clone()),
        ..ClientMeta::default()
    });
    m.save(&mut s).await.expect("save");
    let issued = m.remember(&mut s).await.expect("remember");
    let mut tokens = vec![issued.token.clone()];
    let r = resume(&m, &issued.token).await.expect("resume");
    tokens.push(r.token.clone());
    clock.advance(mins(1));
    let r2 = resume(&m, &r.token).await.expect("resume");
    tokens.push(r2.token.clone());

    let dump = snapshot(&ctx).await.expect("dump");
    let mut needles: Vec<(String, Vec<u8>)> = Vec::new();
    for t in &tokens {
        let raw = t.secret_bytes();
        needles.push((
            "persistent token text".into(),
            t.expose_secret().as_bytes().to_vec(),
        ));
        needles.push((
            "persistent token base64 body".into(),
            t.expose_secret().as_bytes()[2..].to_vec(),
        ));
        needles.push(("family id bytes".into(), raw[..16].to_vec()));
        needles.push(("secret bytes".into(), raw[16..].to_vec()));
    }
    if ctx.encrypts {
        needles.push(("persistent login user agent".into(), agent.into_bytes()));
    }
    for (what, needle) in &needles {
        for spelling in spellings(needle) {
            for value in &dump {
                assert!(
                    !contains(value, &spelling),
                    "{what} found at rest in a stored value of {} bytes",
                    value.len()
                );
            }
        }
    }
}
