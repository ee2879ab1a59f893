//! Manager checks: login, privilege and renewal rotations, grace windows.

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{ClientMeta, Error, Policy, RotateReason};

use super::{load, login, manager, policy};
use crate::checks::Ctx;
use crate::fixtures::{at, mins};

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
