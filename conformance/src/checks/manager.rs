//! Manager-level checks: the policy (timeouts, throttled touches, rotation
//! reasons, grace, limits, caps) and the user-facing operations, run over the
//! backend under test with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    CapPolicy, ClientMeta, Error, Lookup, ManualClock, Policy, RotateReason, Session,
    SessionHandle, SessionManager, SessionRecord, SessionToken, StorageKey, TOKEN_LEN,
};

use super::Ctx;
use crate::fixtures::{at, mins};

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

async fn load(m: &SessionManager, token: &SessionToken) -> Option<Session> {
    m.load(token.expose_secret()).await.expect("manager load")
}

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

fn policy() -> Policy {
    Policy {
        idle_timeout: mins(10),
        absolute_timeout: mins(60),
        touch_interval: Duration::from_secs(60),
        ..Policy::default()
    }
}

/// Idle timeout: a session unused for `idle_timeout` is gone; each use (a
/// load past the touch interval) moves the deadline.
pub async fn manager_idle_timeout(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let s = m
        .create(b"x".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let token = s.token().clone();
    assert_eq!(s.idle_deadline(), at(s.created_at(), mins(10)));
    // Used every 9 minutes: stays alive past the first idle deadline.
    for _ in 0..3 {
        clock.advance(mins(9));
        let loaded = load(&m, &token)
            .await
            .expect("used within the idle timeout");
        assert_eq!(loaded.idle_deadline(), at(m.now(), mins(10)));
        assert_eq!(loaded.version(), 0, "a touch is not a write of the data");
    }
    clock.advance(mins(10));
    assert!(
        load(&m, &token).await.is_none(),
        "idle for the whole timeout: gone"
    );
    // No resurrection by later activity.
    clock.advance(mins(1));
    assert!(load(&m, &token).await.is_none());
}

/// Absolute timeout: activity (loads and saves) never extends it.
pub async fn manager_absolute_timeout_not_extended_by_activity(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let mut s = m
        .create(b"0".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let token = s.token().clone();
    let absolute = s.absolute_deadline();
    assert_eq!(absolute, at(s.created_at(), mins(60)));
    for i in 1..=11u64 {
        clock.advance(mins(5));
        s = load(&m, &token).await.expect("active session");
        assert_eq!(s.absolute_deadline(), absolute, "activity never moves it");
        assert!(s.idle_deadline() <= absolute, "idle capped at absolute");
        s.set_data(i.to_string().into_bytes());
        m.save(&mut s).await.expect("save");
        assert_eq!(s.absolute_deadline(), absolute);
        let raw = stored(&m, &s.storage_key()).await.expect("stored");
        assert_eq!(raw.absolute_deadline, absolute);
        assert!(raw.idle_deadline <= absolute);
    }
    // t+55min: still live; at t+60min it is gone although just used.
    clock.advance(mins(5));
    assert!(load(&m, &token).await.is_none(), "absolute timeout reached");
}

/// Touch throttling: a load within `touch_interval` of the last recorded
/// activity writes nothing; the first load after it writes a touch.
pub async fn manager_touch_throttled(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let s = m
        .create(b"x".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let token = s.token().clone();
    let key = s.storage_key();
    let t0 = s.created_at();
    let before = stored(&m, &key).await.expect("stored");

    clock.advance(Duration::from_secs(30));
    let loaded = load(&m, &token).await.expect("load");
    assert_eq!(loaded.last_seen_at(), t0);
    clock.advance(Duration::from_millis(29_999));
    load(&m, &token).await.expect("load");
    let raw = stored(&m, &key).await.expect("stored");
    assert_eq!(raw, before, "loads within the touch interval write nothing");

    clock.advance(Duration::from_millis(1)); // exactly 60 s after t0
    let loaded = load(&m, &token).await.expect("load");
    let now = m.now();
    assert_eq!(loaded.last_seen_at(), now);
    let raw = stored(&m, &key).await.expect("stored");
    assert_eq!(raw.last_seen_at, now, "the touch was written");
    assert_eq!(raw.idle_deadline, at(now, mins(10)));
    assert_eq!(raw.version, before.version, "a touch keeps the version");
    assert_eq!(raw.data, before.data);
}

/// Login rotation: new token, old token dead at once, user bound,
/// `auth_time` = now, both deadlines reset, data kept.
pub async fn manager_login_rotation_resets_timers_and_binds_user(ctx: Ctx) {
    let policy = Policy {
        renewal_grace: Duration::from_secs(60),
        ..policy()
    };
    let (m, clock) = manager(&ctx, policy);
    let mut s = m
        .create(b"cart".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let created = s.created_at();
    let old = s.token().clone();
    let old_key = s.storage_key();
    assert_eq!(s.user_id(), None);
    assert_eq!(s.auth_time(), None);

    clock.advance(mins(8));
    let mut s2 = load(&m, &old).await.expect("still live");
    m.rotate(
        &mut s2,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    let now = m.now();
    assert_ne!(s2.token(), &old, "a login always issues a new token");
    assert_eq!(s2.user_id(), Some("alice"));
    assert_eq!(s2.auth_time(), Some(now));
    assert_eq!(s2.idle_deadline(), at(now, mins(10)));
    assert_eq!(
        s2.absolute_deadline(),
        at(now, mins(60)),
        "absolute reset by login"
    );
    assert_eq!(s2.created_at(), created);
    assert_eq!(s2.data(), b"cart");

    // The old token is dead at once, even with a renewal grace configured.
    assert!(load(&m, &old).await.is_none());
    assert!(m
        .backend()
        .load(&old_key, now)
        .await
        .expect("load")
        .is_none());
    // A stale copy of the pre-login session cannot be saved back.
    s.set_data(b"stale".to_vec());
    assert!(matches!(m.save(&mut s).await, Err(Error::Conflict)));

    let fresh = load(&m, s2.token()).await.expect("new token loads");
    assert_eq!(fresh.user_id(), Some("alice"));
    assert!(!fresh.token_changed());
    let devices = m.list_devices("alice", Some(&fresh)).await.expect("list");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].handle, fresh.handle());
    assert_eq!(devices[0].auth_time, Some(now));
    // The new absolute deadline counts from the login.
    clock.advance(mins(9));
    load(&m, s2.token()).await.expect("live");
    clock.advance(mins(9));
    load(&m, s2.token()).await.expect("live");
}

/// Privilege change: new token, old dead at once, absolute deadline kept.
pub async fn manager_privilege_rotation_keeps_absolute(ctx: Ctx) {
    let policy = Policy {
        renewal_grace: Duration::from_secs(60),
        ..policy()
    };
    let (m, clock) = manager(&ctx, policy);
    let mut s = login(&m, "alice").await;
    let absolute = s.absolute_deadline();
    let auth = s.auth_time();
    let old = s.token().clone();
    clock.advance(mins(5));
    m.rotate(&mut s, RotateReason::PrivilegeChange)
        .await
        .expect("privilege change");
    assert_ne!(s.token(), &old);
    assert_eq!(s.absolute_deadline(), absolute, "absolute deadline kept");
    assert_eq!(s.auth_time(), auth, "not a login");
    assert_eq!(s.user_id(), Some("alice"));
    assert!(
        load(&m, &old).await.is_none(),
        "no grace for privilege changes"
    );
    let loaded = load(&m, s.token()).await.expect("new token");
    assert_eq!(loaded.absolute_deadline(), absolute);
    assert_eq!(
        m.list_devices("alice", None).await.expect("list").len(),
        1,
        "still one session"
    );
}

/// Renewal with grace: during the window the old token reaches the
/// successor (flagged `token_changed`), afterwards nothing; the absolute
/// deadline is kept.
pub async fn manager_renewal_grace_window(ctx: Ctx) {
    let policy = Policy {
        renewal_grace: Duration::from_secs(120),
        ..policy()
    };
    let (m, clock) = manager(&ctx, policy);
    let mut s = login(&m, "alice").await;
    let absolute = s.absolute_deadline();
    let old = s.token().clone();
    clock.advance(mins(1));
    m.rotate(&mut s, RotateReason::Renewal)
        .await
        .expect("renewal");
    let new = s.token().clone();
    assert_ne!(new, old);
    assert_eq!(
        s.absolute_deadline(),
        absolute,
        "renewal keeps the absolute deadline"
    );

    clock.advance(Duration::from_millis(119_999));
    let via_old = load(&m, &old).await.expect("old token within grace");
    assert!(via_old.token_changed(), "caller must re-send the new token");
    assert_eq!(via_old.token(), &new);
    assert_eq!(via_old.storage_key(), new.storage_key());
    assert_eq!(via_old.data(), b"pre-login");
    let via_new = load(&m, &new).await.expect("new token");
    assert!(!via_new.token_changed());

    clock.advance(Duration::from_millis(1));
    assert!(load(&m, &old).await.is_none(), "grace over");
    load(&m, &new).await.expect("the successor lives on");
    // Only one device is listed throughout.
    assert_eq!(m.list_devices("alice", None).await.expect("list").len(), 1);
}

/// Concurrent renewals of one token inside the grace window all end with
/// the same successor token.
pub async fn manager_concurrent_renewals_same_successor(ctx: Ctx) {
    let policy = Policy {
        renewal_grace: Duration::from_secs(60),
        ..policy()
    };
    let (m, clock) = manager(&ctx, policy);
    let s = login(&m, "alice").await;
    let old = s.token().clone();
    clock.advance(mins(2));
    // Every "request" loaded the session with the old token before any renewed it.
    let mut copies = Vec::new();
    for _ in 0..16 {
        copies.push(load(&m, &old).await.expect("load"));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(copies.len()));
    let mut tasks = Vec::new();
    for mut copy in copies {
        let m = m.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            m.rotate(&mut copy, RotateReason::Renewal)
                .await
                .map(|()| copy.token().clone())
        }));
    }
    let mut tokens = Vec::new();
    for task in tasks {
        tokens.push(task.await.expect("task").expect("every renewal ends well"));
    }
    let first = tokens[0].clone();
    assert_ne!(first, old);
    assert!(tokens.iter().all(|t| *t == first), "one successor for all");
    let devices = m.list_devices("alice", None).await.expect("list");
    assert_eq!(devices.len(), 1, "exactly one successor session exists");
    assert_eq!(*devices[0].handle.storage_key(), first.storage_key());
    let via_old = load(&m, &old).await.expect("old token in grace");
    assert_eq!(via_old.token(), &first);
}

/// Login (and privilege) rotations never leave a forwarder, whatever the
/// renewal grace.
pub async fn manager_login_never_has_grace(ctx: Ctx) {
    let policy = Policy {
        renewal_grace: mins(5),
        ..policy()
    };
    let (m, _clock) = manager(&ctx, policy);
    let mut s = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    let anon_key = s.storage_key();
    let anon = s.token().clone();
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    assert!(load(&m, &anon).await.is_none());
    assert!(
        m.backend()
            .load(&anon_key, m.now())
            .await
            .expect("load")
            .is_none(),
        "no forwarder under the pre-login key"
    );
    // A second login (re-authentication) behaves the same.
    let before = s.token().clone();
    let before_key = s.storage_key();
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("re-login");
    assert!(load(&m, &before).await.is_none());
    assert!(m
        .backend()
        .load(&before_key, m.now())
        .await
        .expect("load")
        .is_none());
}

/// Logout: gone at once, idempotent, and a stale copy cannot be saved back.
pub async fn manager_logout(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let mut s = login(&m, "alice").await;
    m.logout(&s).await.expect("logout");
    assert!(load(&m, s.token()).await.is_none());
    m.logout(&s).await.expect("logout is idempotent");
    s.set_data(b"resurrect".to_vec());
    assert!(matches!(m.save(&mut s).await, Err(Error::Conflict)));
    assert!(load(&m, s.token()).await.is_none());
    assert!(m
        .list_devices("alice", None)
        .await
        .expect("list")
        .is_empty());
}

/// Log out everywhere: every session of the user, no one else's.
pub async fn manager_logout_everywhere(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let alice: Vec<Session> = futures::future::join_all((0..3).map(|_| login(&m, "alice"))).await;
    let bob = login(&m, "bob").await;
    let anon = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    assert_eq!(
        m.logout_everywhere("alice")
            .await
            .expect("logout everywhere"),
        3
    );
    for s in &alice {
        assert!(load(&m, s.token()).await.is_none());
    }
    load(&m, bob.token()).await.expect("bob untouched");
    load(&m, anon.token()).await.expect("anonymous untouched");
    assert_eq!(m.logout_everywhere("alice").await.expect("again"), 0);
}

/// Log out other devices: all of the user's sessions but the current one.
pub async fn manager_logout_other_devices(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(login(&m, "alice").await);
    }
    let bob = login(&m, "bob").await;
    let current = &alice[1];
    assert_eq!(m.logout_other_devices(current).await.expect("others"), 2);
    load(&m, current.token()).await.expect("current kept");
    assert!(load(&m, alice[0].token()).await.is_none());
    assert!(load(&m, alice[2].token()).await.is_none());
    load(&m, bob.token()).await.expect("bob untouched");
    let devices = m.list_devices("alice", Some(current)).await.expect("list");
    assert_eq!(devices.len(), 1);
    assert!(devices[0].current);
    // An anonymous session has no other devices.
    let anon = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    assert_eq!(m.logout_other_devices(&anon).await.expect("anonymous"), 0);
    load(&m, bob.token()).await.expect("bob untouched");
}

/// Devices: IP, user agent, label, timestamps and the current flag, oldest
/// first, only the user's own live sessions.
pub async fn manager_list_devices_metadata(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let mut sessions = Vec::new();
    for i in 0..3 {
        let meta = ClientMeta {
            ip: Some(format!("198.51.100.{i}")),
            user_agent: Some(format!("Agent/{i} (X11; \"quoted\")")),
            label: Some(format!("device {i} ✓")),
        };
        let mut s = m.create(Vec::new(), meta).await.expect("create");
        m.rotate(
            &mut s,
            RotateReason::Login {
                user_id: "alice".into(),
            },
        )
        .await
        .expect("login");
        sessions.push(s);
        clock.advance(Duration::from_secs(1));
    }
    login(&m, "bob").await;
    let current = &sessions[2];
    let devices = m.list_devices("alice", Some(current)).await.expect("list");
    assert_eq!(devices.len(), 3);
    for (d, s) in devices.iter().zip(&sessions) {
        assert_eq!(d.handle, s.handle(), "oldest first");
        assert_eq!(&d.meta, s.client_meta());
        assert_eq!(d.meta.ip.as_deref(), s.client_meta().ip.as_deref());
        assert_eq!(d.created_at, s.created_at());
        assert_eq!(d.last_seen_at, s.last_seen_at());
        assert_eq!(d.auth_time, s.auth_time());
        assert_eq!(d.idle_deadline, s.idle_deadline());
        assert_eq!(d.absolute_deadline, s.absolute_deadline());
        assert_eq!(d.current, s.storage_key() == current.storage_key());
    }
    assert_eq!(devices.iter().filter(|d| d.current).count(), 1);
    // Metadata changes are saved and listed.
    let mut s0 = load(&m, sessions[0].token()).await.expect("load");
    s0.set_client_meta(ClientMeta {
        label: Some("renamed".into()),
        ..s0.client_meta().clone()
    });
    m.save(&mut s0).await.expect("save");
    let devices = m.list_devices("alice", None).await.expect("list");
    assert_eq!(devices[0].meta.label.as_deref(), Some("renamed"));
    assert!(devices.iter().all(|d| !d.current));
    // Expired sessions are not listed.
    clock.advance(mins(10));
    assert!(m
        .list_devices("alice", None)
        .await
        .expect("list")
        .is_empty());
}

/// Revoke by handle: only the user's own session; a handle is never a token.
pub async fn manager_revoke_by_handle(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let a1 = login(&m, "alice").await;
    let a2 = login(&m, "alice").await;
    let b = login(&m, "bob").await;
    let handle = a1.handle();

    // A handle's text (or the storage key in any spelling) is not a token.
    let text = handle.to_string();
    assert!(matches!(m.load(&text).await, Err(Error::InvalidId)));
    assert!(matches!(
        m.load(&text.to_uppercase()).await,
        Err(Error::InvalidId)
    ));
    assert_eq!(SessionHandle::parse(&text).expect("round trip"), handle);

    assert!(
        !m.revoke("bob", &handle).await.expect("revoke"),
        "not bob's session"
    );
    load(&m, a1.token()).await.expect("untouched by bob");
    assert!(m.revoke("alice", &handle).await.expect("revoke"));
    assert!(load(&m, a1.token()).await.is_none());
    load(&m, a2.token()).await.expect("other session kept");
    load(&m, b.token()).await.expect("bob kept");
    assert!(!m.revoke("alice", &handle).await.expect("revoke again"));
    // A handle of nothing revokes nothing.
    let nothing = SessionHandle::new(SessionToken::generate().storage_key());
    assert!(!m.revoke("alice", &nothing).await.expect("revoke unknown"));
    let devices = m.list_devices("alice", None).await.expect("list");
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].handle, a2.handle());
}

/// A stored hash is never accepted as a token: the storage key's bytes,
/// spelled as a well-formed token, look up the hash of the hash.
pub async fn manager_stored_hash_is_not_a_token(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let s = login(&m, "alice").await;
    let key = s.storage_key();
    let as_token = base64url(key.as_bytes());
    assert_eq!(as_token.len(), TOKEN_LEN);
    assert!(
        m.load(&as_token).await.expect("well-formed").is_none(),
        "the storage key must not open the session"
    );
    load(&m, s.token()).await.expect("the real token works");
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

/// Size limits: data, user id and metadata over the limit are `TooLarge`
/// and nothing is written; exactly at the limit is fine.
pub async fn manager_limits_too_large_writes_nothing(ctx: Ctx) {
    let policy = Policy {
        max_data_bytes: 1024,
        max_user_id_bytes: 16,
        max_meta_bytes: 100,
        ..policy()
    };
    let spy = super::spy::Spy::new(ctx.backend.clone());
    let m = SessionManager::builder(spy.clone())
        .clock(Arc::new(ManualClock::starting_now()))
        .policy(policy)
        .build()
        .expect("manager");
    let too_large = |res: session_store_core::Result<_>, what: &str| match res {
        Err(Error::TooLarge { what: w, .. }) => assert_eq!(w, what),
        Err(e) => panic!("{what}: expected TooLarge, got {e:?}"),
        Ok(_) => panic!("{what}: expected TooLarge, got Ok"),
    };
    too_large(
        m.create(vec![0; 1025], ClientMeta::default())
            .await
            .map(drop),
        "data",
    );
    let big_meta = ClientMeta {
        user_agent: Some("A".repeat(200)),
        ..ClientMeta::default()
    };
    too_large(
        m.create(Vec::new(), big_meta.clone()).await.map(drop),
        "metadata",
    );
    assert_eq!(spy.calls(), 0, "a refused create never reaches the backend");

    let mut s = m
        .create(vec![1; 1024], ClientMeta::default())
        .await
        .expect("at the limit");
    let before = stored(&m, &s.storage_key()).await.expect("stored");
    let writes = spy.writes();
    s.set_data(vec![2; 1025]);
    too_large(m.save(&mut s).await, "data");
    s.set_data(b"ok".to_vec());
    s.set_client_meta(big_meta);
    too_large(m.save(&mut s).await, "metadata");
    s.set_client_meta(ClientMeta::default());
    let long_user = "u".repeat(17);
    too_large(
        m.rotate(
            &mut s,
            RotateReason::Login {
                user_id: long_user.clone(),
            },
        )
        .await,
        "user id",
    );
    assert_eq!(
        spy.writes(),
        writes,
        "refused writes never reach the backend"
    );
    assert_eq!(
        stored(&m, &s.storage_key()).await.as_ref(),
        Some(&before),
        "refused writes leave the session as it was"
    );
    assert!(m
        .list_devices(&long_user, None)
        .await
        .expect("list")
        .is_empty());
    let reloaded = load(&m, s.token()).await.expect("old token still valid");
    assert_eq!(reloaded.data(), vec![1; 1024].as_slice());
    assert_eq!(reloaded.user_id(), None);
    // Exactly at the user id limit is fine.
    let mut s = reloaded;
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "u".repeat(16),
        },
    )
    .await
    .expect("user id at the limit");
}

/// Per-user cap with `EvictOldest`: a login over the cap removes the oldest
/// sessions of that user.
pub async fn manager_per_user_cap_evict_oldest(ctx: Ctx) {
    let policy = Policy {
        max_sessions_per_user: Some((2, CapPolicy::EvictOldest)),
        ..policy()
    };
    let (m, clock) = manager(&ctx, policy);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(login(&m, "alice").await);
        clock.advance(Duration::from_secs(1));
    }
    let bob = login(&m, "bob").await;
    assert!(
        load(&m, sessions[0].token()).await.is_none(),
        "oldest evicted"
    );
    load(&m, sessions[1].token()).await.expect("kept");
    load(&m, sessions[2].token()).await.expect("newest kept");
    load(&m, bob.token()).await.expect("other users untouched");
    let devices = m.list_devices("alice", None).await.expect("list");
    let handles: Vec<SessionHandle> = devices.iter().map(|d| d.handle).collect();
    assert_eq!(handles, vec![sessions[1].handle(), sessions[2].handle()]);
    // Re-authenticating an existing session does not count itself.
    let mut again = load(&m, sessions[2].token()).await.expect("load");
    m.rotate(
        &mut again,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("re-login");
    load(&m, sessions[1].token())
        .await
        .expect("not evicted by a re-login");
    assert_eq!(m.list_devices("alice", None).await.expect("list").len(), 2);
}

/// Per-user cap with `Refuse`: a login over the cap is `TooManySessions`
/// and changes nothing; after a logout there is room again.
pub async fn manager_per_user_cap_refuse(ctx: Ctx) {
    let policy = Policy {
        max_sessions_per_user: Some((2, CapPolicy::Refuse)),
        ..policy()
    };
    let (m, _clock) = manager(&ctx, policy);
    let first = login(&m, "alice").await;
    let second = login(&m, "alice").await;
    let mut third = m
        .create(b"anon".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    let anon = third.token().clone();
    let res = m
        .rotate(
            &mut third,
            RotateReason::Login {
                user_id: "alice".into(),
            },
        )
        .await;
    assert!(
        matches!(res, Err(Error::TooManySessions { limit: 2 })),
        "got {res:?}"
    );
    let still = load(&m, &anon)
        .await
        .expect("the refused session is untouched");
    assert_eq!(still.user_id(), None);
    load(&m, first.token()).await.expect("kept");
    load(&m, second.token()).await.expect("kept");
    assert_eq!(m.list_devices("alice", None).await.expect("list").len(), 2);

    m.logout(&first).await.expect("logout");
    let mut third = still;
    m.rotate(
        &mut third,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("room again");
    assert_eq!(m.list_devices("alice", None).await.expect("list").len(), 2);
}

/// Strict mode: a well-formed but unknown token finds nothing and creates
/// nothing; a session is only ever created by the manager under a token it
/// generated.
pub async fn manager_unknown_token_never_creates(ctx: Ctx) {
    let spy = super::spy::Spy::new(ctx.backend.clone());
    let m = SessionManager::builder(spy.clone())
        .clock(Arc::new(ManualClock::starting_now()))
        .build()
        .expect("manager");
    let chosen = SessionToken::generate();
    assert!(m
        .load(chosen.expose_secret())
        .await
        .expect("load")
        .is_none());
    assert_eq!(spy.writes(), 0, "a miss writes nothing");
    assert!(ctx
        .backend
        .load(&chosen.storage_key(), m.now())
        .await
        .expect("load")
        .is_none());
    let s = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    assert_ne!(s.token(), &chosen, "the manager picks the token");
    assert_eq!(s.token().expose_secret().len(), TOKEN_LEN);
}

/// Manager saves are compare-and-swap: of two copies of one session, the
/// second save is `Conflict` and the first one's data stays.
pub async fn manager_save_is_compare_and_swap(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let s = m
        .create(b"v0".to_vec(), ClientMeta::default())
        .await
        .expect("create");
    clock.advance(Duration::from_secs(1));
    let mut a = load(&m, s.token()).await.expect("load");
    let mut b = load(&m, s.token()).await.expect("load");
    a.set_data(b"from a".to_vec());
    m.save(&mut a).await.expect("first save");
    assert_eq!(a.version(), 1);
    b.set_data(b"from b".to_vec());
    assert!(matches!(m.save(&mut b).await, Err(Error::Conflict)));
    let now = load(&m, s.token()).await.expect("load");
    assert_eq!(now.data(), b"from a");
    assert_eq!(now.version(), 1);
    // A save is activity: the idle deadline moved with it.
    clock.advance(mins(9));
    let mut c = load(&m, s.token()).await.expect("load");
    c.set_data(b"c".to_vec());
    m.save(&mut c).await.expect("save");
    assert_eq!(c.idle_deadline(), at(m.now(), mins(10)));
}

/// Cleanup through the manager: loops over batches until every expired
/// entry is gone (exact count for stores with counted cleanup); live
/// sessions survive.
pub async fn manager_cleanup_expired(ctx: Ctx) {
    let (m, clock) = manager(&ctx, policy());
    let mut old = Vec::new();
    for _ in 0..5 {
        old.push(
            m.create(Vec::new(), ClientMeta::default())
                .await
                .expect("create"),
        );
    }
    clock.advance(mins(5));
    let fresh = login(&m, "alice").await;
    clock.advance(mins(6)); // the first five are idle-expired, the login is not
    let removed = m.cleanup_expired(2).await.expect("cleanup");
    if ctx.capabilities.counted_cleanup {
        assert_eq!(removed, 5, "every expired session, over several batches");
        assert_eq!(m.cleanup_expired(2).await.expect("cleanup"), 0);
    }
    for s in &old {
        assert!(load(&m, s.token()).await.is_none());
    }
    load(&m, fresh.token())
        .await
        .expect("live session survives");
    assert_eq!(m.list_devices("alice", None).await.expect("list").len(), 1);
}

/// Lifecycle events carry short key hashes, never a token: every event of a
/// session's life is recorded, and none contains any token's text.
pub async fn manager_events_never_carry_tokens(ctx: Ctx) {
    #[derive(Debug, Default)]
    struct Recorder(std::sync::Mutex<Vec<String>>);
    impl session_store_core::EventSink for Recorder {
        fn event(&self, event: &session_store_core::Event) {
            self.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(format!("{event:?}"));
        }
    }
    let recorder = Arc::new(Recorder::default());
    let clock = Arc::new(ManualClock::starting_now());
    let m = SessionManager::builder(ctx.backend.clone())
        .clock(clock.clone())
        .policy(Policy {
            renewal_grace: Duration::from_secs(60),
            ..policy()
        })
        .events(recorder.clone())
        .build()
        .expect("manager");
    let mut tokens = Vec::new();
    let mut s = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    tokens.push(s.token().clone());
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: "alice".into(),
        },
    )
    .await
    .expect("login");
    tokens.push(s.token().clone());
    m.rotate(&mut s, RotateReason::Renewal)
        .await
        .expect("renewal");
    tokens.push(s.token().clone());
    load(&m, &tokens[1]).await.expect("forwarded");
    let unknown = SessionToken::generate();
    assert!(load(&m, &unknown).await.is_none());
    tokens.push(unknown);
    let _ = m.load("not a token").await;
    let other = login(&m, "alice").await;
    tokens.push(other.token().clone());
    m.revoke("alice", &other.handle()).await.expect("revoke");
    m.logout(&s).await.expect("logout");
    m.logout_everywhere("alice")
        .await
        .expect("logout everywhere");

    let events = recorder.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for kind in [
        "Created",
        "Rotated",
        "ForwardFollowed",
        "LookupMiss",
        "Revoked",
        "Deleted",
    ] {
        assert!(
            events.iter().any(|e| e.starts_with(kind)),
            "no {kind} event among {events:?}"
        );
    }
    for token in &tokens {
        let text = token.expose_secret();
        let key_hex = token.storage_key().to_hex();
        for e in &events {
            assert!(!e.contains(text), "an event carries a token: {e}");
            assert!(!e.contains(&key_hex), "an event carries a full storage key");
        }
    }
}
