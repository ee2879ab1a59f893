//! Manager checks: logout, devices, revocation by handle and per-user caps.

use std::time::Duration;

use session_store_core::{
    CapPolicy, ClientMeta, Error, Policy, RotateReason, Session, SessionHandle, SessionToken,
};

use super::{load, login, manager, policy};
use crate::checks::Ctx;
use crate::fixtures::mins;

/// Logout: gone at once (a load right before and after it: a read cache
/// must not keep serving it), idempotent, and a stale copy cannot be saved
/// back.
pub async fn manager_logout(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let mut s = login(&m, "alice").await;
    load(&m, s.token()).await.expect("live before logout");
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

/// Log out everywhere: every session of the user, no one else's; each loads
/// right before and no longer loads after.
pub async fn manager_logout_everywhere(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let alice: Vec<Session> = futures::future::join_all((0..3).map(|_| login(&m, "alice"))).await;
    let bob = login(&m, "bob").await;
    let anon = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("create");
    for s in &alice {
        load(&m, s.token()).await.expect("live before logout");
    }
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

/// Log out other devices: all of the user's sessions but the current one;
/// each loads right before and the others no longer load after.
pub async fn manager_logout_other_devices(ctx: Ctx) {
    let (m, _clock) = manager(&ctx, policy());
    let mut alice = Vec::new();
    for _ in 0..3 {
        alice.push(login(&m, "alice").await);
    }
    let bob = login(&m, "bob").await;
    let current = &alice[1];
    for s in &alice {
        load(&m, s.token()).await.expect("live before logout");
    }
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

/// Revoke by handle: only the user's own session (loaded right before, no
/// longer loading after); a handle is never a token.
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
    load(&m, a2.token()).await.expect("live");
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
