//! Corrupted or foreign data is contained: one check per kind of damage
//! (undecodable record, foreign value or wrong type under a key, undecodable
//! metadata, undecryptable ciphertext). Through the manager with its default
//! [`OnCorrupt::Remove`](session_store_core::OnCorrupt::Remove), a damaged
//! entry is, for every request that meets it, an ended session (no access,
//! never an error that locks the cookie or the user out), raises
//! [`Event::Corrupted`] with the key's short hash, and is removed; the
//! per-user operations (devices list, login under a cap, log out
//! everywhere) skip it and keep working.
//!
//! The record-level kinds need the store's raw-write hook
//! ([`TestStore::with_raw_damage`](crate::TestStore::with_raw_damage)); the
//! others write through [`Ctx::inner`].

use std::sync::Arc;
use std::time::Duration;

use session_store_core::{
    CapPolicy, ClientMeta, Damage, Encrypted, EncryptionKey, Event, Keyring, Lookup, ManualClock,
    Policy, RotateReason, Session, SessionBackend, SessionManager, StorageKey,
};

use super::{Ctx, Recorder};
use crate::fixtures::now;
use crate::{BoxFuture, RawDamage};

/// A manager over `backend` with a per-user cap of 3 (oldest evicted), a
/// manual clock and a recorder.
fn manager(backend: Arc<dyn SessionBackend>) -> (SessionManager, Arc<Recorder>) {
    let events = Arc::new(Recorder::default());
    let m = SessionManager::builder(backend)
        .clock(Arc::new(ManualClock::new(now())))
        .policy(Policy {
            max_sessions_per_user: Some((3, CapPolicy::EvictOldest)),
            touch_interval: Duration::from_secs(3600),
            ..Policy::default()
        })
        .events(events.clone())
        .build()
        .expect("valid policy");
    (m, events)
}

/// A logged-in session of `user` with a label (non-empty metadata).
async fn login(m: &SessionManager, user: &str) -> Session {
    let meta = ClientMeta {
        label: Some("laptop".into()),
        ..ClientMeta::default()
    };
    let mut s = m.create(b"data".to_vec(), meta).await.expect("create");
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: user.into(),
        },
    )
    .await
    .expect("login");
    s
}

/// The `Corrupted` events for `key`, and checks that no event carries a token.
fn corrupted_for(events: &[Event], key: &StorageKey, tokens: &[&Session]) -> Vec<Damage> {
    for e in events {
        let text = format!("{e:?}");
        for t in tokens {
            assert!(
                !text.contains(t.token().expose_secret()),
                "an event carries a token: {text}"
            );
        }
    }
    events
        .iter()
        .filter_map(|e| match e {
            Event::Corrupted {
                key: k,
                damage,
                removed,
            } if *k == key.short_hash() => {
                assert!(*removed, "OnCorrupt::Remove deletes the entry: {e:?}");
                Some(*damage)
            }
            _ => None,
        })
        .collect()
}

/// The scenario every kind of damage goes through. `damage(key)` damages the
/// entry under `key` underneath `m`; `expected` is the damage the manager
/// reports (any when `None`).
async fn contained<F>(
    what: &str,
    m: &SessionManager,
    events: &Recorder,
    damage: F,
    expected: Option<Damage>,
) where
    F: Fn(StorageKey) -> BoxFuture<'static, ()>,
{
    let user = "mallory-victim";
    let check = |found: Vec<Damage>, step: &str| {
        assert!(
            !found.is_empty(),
            "{what}, {step}: no Event::Corrupted for the key"
        );
        if let Some(d) = expected {
            assert!(found.iter().all(|f| *f == d), "{what}, {step}: {found:?}");
        }
    };

    // A damaged session of the user: the devices list skips and reports it.
    let healthy = login(m, user).await;
    let bad = login(m, user).await;
    damage(bad.storage_key()).await;
    events.take();
    let devices = m
        .list_devices(user, Some(&healthy))
        .await
        .unwrap_or_else(|e| panic!("{what}: the devices list must not fail: {e:?}"));
    assert!(
        devices.iter().all(|d| d.handle != bad.handle()),
        "{what}: a damaged entry is listed"
    );
    assert!(
        devices.iter().any(|d| d.current),
        "{what}: the healthy session is listed"
    );
    let ev = events.take();
    // A store whose damage hides the entry from the user's index (a user id
    // that no longer reads) reports it on load instead.
    if !corrupted_for(&ev, &bad.storage_key(), &[&healthy, &bad]).is_empty() {
        check(corrupted_for(&ev, &bad.storage_key(), &[]), "devices list");
    }

    // A damaged session never blocks the user's logins (the cap counts the
    // user's sessions on the way).
    let bad = login(m, user).await;
    damage(bad.storage_key()).await;
    for _ in 0..4 {
        login(m, user).await;
    }

    // Log out everywhere succeeds with a damaged entry among the user's.
    let bad = login(m, user).await;
    damage(bad.storage_key()).await;
    m.logout_everywhere(user)
        .await
        .unwrap_or_else(|e| panic!("{what}: logout everywhere must not fail: {e:?}"));
    assert!(
        m.list_devices(user, None).await.expect("list").is_empty(),
        "{what}: sessions left after logout everywhere"
    );
    events.take();
    assert!(
        m.load(bad.token().expose_secret())
            .await
            .unwrap_or_else(|e| panic!("{what}: load after logout everywhere: {e:?}"))
            .is_none(),
        "{what}: a revoked damaged session loads"
    );

    // Loading a damaged session: no access, one event with the key's short
    // hash, the entry removed; the same cookie is then an ordinary miss and
    // the caller starts over.
    let bad = login(m, user).await;
    damage(bad.storage_key()).await;
    events.take();
    let loaded = m
        .load(bad.token().expose_secret())
        .await
        .unwrap_or_else(|e| panic!("{what}: a damaged session must load as ended, got {e:?}"));
    assert!(loaded.is_none(), "{what}: a damaged session gave access");
    check(
        corrupted_for(&events.take(), &bad.storage_key(), &[&bad]),
        "load",
    );
    assert!(
        m.backend()
            .load(&bad.storage_key(), m.now())
            .await
            .expect("the entry is removed, so it reads")
            .is_none(),
        "{what}: the damaged entry is still stored"
    );
    assert!(m
        .load(bad.token().expose_secret())
        .await
        .expect("second load")
        .is_none());
    assert!(
        matches!(events.take()[..], [Event::LookupMiss { .. }]),
        "{what}: the second load is a plain miss"
    );
    let fresh = m
        .create(Vec::new(), ClientMeta::default())
        .await
        .expect("starting over works");
    assert!(m
        .load(fresh.token().expose_secret())
        .await
        .expect("load")
        .is_some());
    m.logout_everywhere(user).await.expect("cleanup");
}

/// The raw-write hook of the store, or `None` (after a `SKIP:` line).
fn hook(ctx: &Ctx, check: &str) -> Option<crate::RawDamageFn> {
    if ctx.raw_damage.is_none() {
        println!("SKIP: {check}: the store has no raw-write hook (TestStore::with_raw_damage)");
    }
    ctx.raw_damage.clone()
}

fn via_hook(
    hook: crate::RawDamageFn,
    how: RawDamage,
) -> impl Fn(StorageKey) -> BoxFuture<'static, ()> {
    move |key| {
        let hook = hook.clone();
        Box::pin(async move {
            assert!(
                hook(key, how).await.expect("raw-write hook"),
                "the raw-write hook found no entry to damage"
            );
        })
    }
}

/// A record the store's own decoder rejects (a flipped byte, a column out of
/// range, a value of the wrong type in a column).
pub async fn corrupt_undecodable_record_is_contained(ctx: Ctx) {
    let Some(hook) = hook(&ctx, "corrupt_undecodable_record_is_contained") else {
        return;
    };
    let (m, events) = manager(ctx.backend.clone());
    let damage = via_hook(hook, RawDamage::Undecodable);
    contained(
        "undecodable record",
        &m,
        &events,
        damage,
        Some(Damage::Undecodable),
    )
    .await;
}

/// Foreign bytes or a value of another type under a session's key (a Redis
/// hash where a string belongs, bytes of another format).
pub async fn corrupt_foreign_value_is_contained(ctx: Ctx) {
    let Some(hook) = hook(&ctx, "corrupt_foreign_value_is_contained") else {
        return;
    };
    let (m, events) = manager(ctx.backend.clone());
    let damage = via_hook(hook, RawDamage::Foreign);
    contained(
        "foreign value",
        &m,
        &events,
        damage,
        Some(Damage::Undecodable),
    )
    .await;
}

/// Stored client metadata that no longer parses (under encryption: that no
/// longer opens), written through the unwrapped store.
pub async fn corrupt_undecodable_metadata_is_contained(ctx: Ctx) {
    let (m, events) = manager(ctx.backend.clone());
    let inner = ctx.inner.clone();
    let damage = move |key: StorageKey| -> BoxFuture<'static, ()> {
        let inner = inner.clone();
        Box::pin(async move {
            let t = now();
            let Some(Lookup::Session(mut raw)) = inner.load(&key, t).await.expect("raw load")
            else {
                panic!("expected a stored session");
            };
            raw.meta = b"\xff\x00{ not metadata".to_vec();
            inner.save(&key, &raw, t).await.expect("raw save");
        })
    };
    contained("undecodable metadata", &m, &events, damage, None).await;
}

/// Ciphertext sealed under a key the reader's keyring does not hold (a lost
/// or rotated-out key), on any store: the sessions are written through one
/// keyring and read through another.
pub async fn corrupt_undecryptable_ciphertext_is_contained(ctx: Ctx) {
    let writer = Arc::new(Encrypted::new(
        ctx.inner.clone(),
        Keyring::new(7, EncryptionKey::generate()),
    ));
    let reader: Arc<dyn SessionBackend> = Arc::new(Encrypted::new(
        ctx.inner.clone(),
        Keyring::new(8, EncryptionKey::generate()),
    ));
    let (m, events) = manager(reader);
    let writer_m = manager(writer).0;
    let user = "mallory-victim";
    // Sessions written under the other key: every one of them is damage to
    // the reader.
    let a = login(&writer_m, user).await;
    let b = login(&writer_m, user).await;
    events.take();
    assert!(
        m.list_devices(user, None).await.expect("list").is_empty(),
        "undecryptable sessions are not listed"
    );
    let ev = events.take();
    for s in [&a, &b] {
        let found = corrupted_for(&ev, &s.storage_key(), &[&a, &b]);
        assert_eq!(found, [Damage::Undecryptable], "devices list");
        assert!(ev.contains(&Event::DecryptFailed {
            key: s.storage_key().short_hash()
        }));
    }
    // Logins and log out everywhere go on working.
    let c = login(&writer_m, user).await;
    login(&m, user).await;
    login(&m, user).await;
    m.logout_everywhere(user).await.expect("logout everywhere");
    // A load: no access, the events, the entry removed.
    let d = login(&writer_m, user).await;
    events.take();
    assert!(m
        .load(d.token().expose_secret())
        .await
        .expect("an undecryptable session loads as ended")
        .is_none());
    let ev = events.take();
    assert_eq!(
        corrupted_for(&ev, &d.storage_key(), &[&c, &d]),
        [Damage::Undecryptable]
    );
    assert!(ctx
        .inner
        .load(&d.storage_key(), m.now())
        .await
        .expect("raw load")
        .is_none());
    m.logout_everywhere(user).await.expect("cleanup");
}
