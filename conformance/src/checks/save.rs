//! Scenario checks for `save`: compare-and-swap on the version, no resurrection.

use session_store_core::{Error, Grace, Rotation, SessionRecord};

use super::Ctx;
use crate::fixtures::{
    assert_absent, at, fresh_key, listed_keys, load_session, mins, now, record, successor_key,
    user_record,
};

fn expect_conflict(result: session_store_core::Result<u64>, what: &str) {
    match result {
        Err(Error::Conflict) => {}
        other => panic!("{what}: expected Conflict, got {other:?}"),
    }
}

/// save: writes every field, stores `version + 1` and returns it; the next
/// save must present that new version.
pub async fn save_cas_bumps_version(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    let mut r = record(t, b"v0");
    r.version = 5;
    ctx.backend.create(&key, &r).await.expect("create");

    let next = SessionRecord {
        version: 5,
        user_id: Some("alice".into()),
        created_at: r.created_at,
        last_seen_at: at(t, mins(1)),
        auth_time: Some(at(t, mins(1))),
        idle_deadline: at(t, mins(31)),
        absolute_deadline: at(t, mins(600)),
        meta: b"meta-1".to_vec(),
        data: b"v1".to_vec(),
    };
    let v = ctx
        .backend
        .save(&key, &next, at(t, mins(1)))
        .await
        .expect("save");
    assert_eq!(v, 6, "save returns the stored version, read version + 1");
    let loaded = load_session(&*ctx.backend, &key, at(t, mins(1))).await;
    assert_eq!(
        loaded,
        SessionRecord {
            version: 6,
            ..next.clone()
        },
        "every field replaced"
    );

    let again = SessionRecord {
        data: b"v2".to_vec(),
        ..loaded
    };
    let v = ctx
        .backend
        .save(&key, &again, at(t, mins(2)))
        .await
        .expect("second save");
    assert_eq!(v, 7);
    let loaded = load_session(&*ctx.backend, &key, at(t, mins(2))).await;
    assert_eq!(loaded.version, 7);
    assert_eq!(loaded.data, b"v2");
}

/// save: a stale (or future) version is `Conflict` and nothing is written.
pub async fn save_stale_version_conflict(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    ctx.backend
        .create(&key, &record(t, b"v0"))
        .await
        .expect("create");
    let mut first = load_session(&*ctx.backend, &key, t).await;
    let stale = first.clone();
    first.data = b"winner".to_vec();
    assert_eq!(ctx.backend.save(&key, &first, t).await.expect("save"), 1);

    let mut loser = stale;
    loser.data = b"loser".to_vec();
    expect_conflict(ctx.backend.save(&key, &loser, t).await, "stale version");
    let mut future = loser.clone();
    future.version = 2;
    expect_conflict(ctx.backend.save(&key, &future, t).await, "future version");
    future.version = u64::MAX - 1;
    expect_conflict(ctx.backend.save(&key, &future, t).await, "huge version");

    let stored = load_session(&*ctx.backend, &key, t).await;
    assert_eq!(stored.version, 1);
    assert_eq!(stored.data, b"winner", "a rejected save writes nothing");
}

/// save: after a delete, saving the copy still held in memory is `Conflict`
/// and does not bring the session back (no resurrection), user index included.
pub async fn save_after_delete_no_resurrection(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    ctx.backend
        .create(&key, &user_record(t, "alice", b"x"))
        .await
        .expect("create");
    let held = load_session(&*ctx.backend, &key, t).await;
    assert!(ctx.backend.delete(&key).await.expect("delete"));
    expect_conflict(ctx.backend.save(&key, &held, t).await, "save after delete");
    assert_absent(&*ctx.backend, &key, t).await;
    assert!(listed_keys(&*ctx.backend, "alice", t).await.is_empty());
    assert!(
        !ctx.backend.delete(&key).await.expect("delete"),
        "nothing was written back"
    );
}

/// save: after a rotation, saving the old key's copy is `Conflict`; the old
/// key stays empty and the successor is untouched.
pub async fn save_after_rotate_conflict(ctx: Ctx) {
    let t = now();
    let from = fresh_key();
    ctx.backend
        .create(&from, &user_record(t, "alice", b"before"))
        .await
        .expect("create");
    let held = load_session(&*ctx.backend, &from, t).await;
    let to = successor_key(&*ctx.backend, &from);
    let rotation = Rotation {
        from,
        to,
        record: held.clone(),
        grace: None,
    };
    assert_eq!(ctx.backend.rotate(&rotation, t).await.expect("rotate"), 1);

    let mut stale = held;
    stale.data = b"stale write".to_vec();
    expect_conflict(
        ctx.backend.save(&from, &stale, t).await,
        "save on the old key",
    );
    assert_absent(&*ctx.backend, &from, t).await;
    let moved = load_session(&*ctx.backend, &to, t).await;
    assert_eq!(moved.data, b"before");
    assert_eq!(moved.version, 1);
    assert_eq!(listed_keys(&*ctx.backend, "alice", t).await, vec![to]);
}

/// save: a session that is expired at `now` cannot be saved (`Conflict`),
/// even with the right version; nothing is written.
pub async fn save_expired_conflict(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    let r = record(t, b"old");
    ctx.backend.create(&key, &r).await.expect("create");
    let mut late = r.clone();
    late.data = b"too late".to_vec();
    late.idle_deadline = at(t, mins(90));
    // `now` exactly at the idle deadline: expired.
    expect_conflict(
        ctx.backend.save(&key, &late, r.idle_deadline).await,
        "expired (idle)",
    );
    expect_conflict(
        ctx.backend.save(&key, &late, r.absolute_deadline).await,
        "expired (absolute)",
    );
    let stored = load_session(&*ctx.backend, &key, t).await;
    assert_eq!(stored, r, "nothing written");
}

/// save: on a renewal forwarder (the old key in its grace window) save is
/// `Conflict` and the forwarder stays as it was.
pub async fn save_on_forwarder_conflict(ctx: Ctx) {
    let t = now();
    let from = fresh_key();
    ctx.backend
        .create(&from, &record(t, b"x"))
        .await
        .expect("create");
    let held = load_session(&*ctx.backend, &from, t).await;
    let to = successor_key(&*ctx.backend, &from);
    let until = at(t, mins(1));
    let rotation = Rotation {
        from,
        to,
        record: held.clone(),
        grace: Some(Grace {
            sealed_token: b"sealed-successor".to_vec(),
            until,
        }),
    };
    ctx.backend.rotate(&rotation, t).await.expect("rotate");
    for version in [0, 1] {
        let mut write = held.clone();
        write.version = version;
        expect_conflict(
            ctx.backend.save(&from, &write, t).await,
            "save on a forwarder",
        );
    }
    match ctx.backend.load(&from, t).await.expect("load") {
        Some(session_store_core::Lookup::Forwarded(f)) => {
            assert_eq!(f.successor, to);
            assert_eq!(f.until, until);
            assert_eq!(f.sealed_token, b"sealed-successor");
        }
        other => panic!("the forwarder must be untouched, found {other:?}"),
    }
}

/// save: the user index follows a changed `user_id` (anonymous -> alice ->
/// bob -> anonymous).
pub async fn save_moves_user_index(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    ctx.backend
        .create(&key, &record(t, b"x"))
        .await
        .expect("create");
    let mut r = load_session(&*ctx.backend, &key, t).await;
    assert!(listed_keys(&*ctx.backend, "alice", t).await.is_empty());

    r.user_id = Some("alice".into());
    r.version = ctx.backend.save(&key, &r, t).await.expect("save alice");
    assert_eq!(listed_keys(&*ctx.backend, "alice", t).await, vec![key]);

    r.user_id = Some("bob".into());
    r.version = ctx.backend.save(&key, &r, t).await.expect("save bob");
    assert!(listed_keys(&*ctx.backend, "alice", t).await.is_empty());
    assert_eq!(listed_keys(&*ctx.backend, "bob", t).await, vec![key]);
    // Deleting alice's sessions no longer touches it.
    assert_eq!(
        ctx.backend
            .delete_user("alice", None, t)
            .await
            .expect("delete_user"),
        0
    );
    load_session(&*ctx.backend, &key, t).await;

    r.user_id = None;
    ctx.backend.save(&key, &r, t).await.expect("save anonymous");
    assert!(listed_keys(&*ctx.backend, "bob", t).await.is_empty());
    assert_eq!(
        ctx.backend
            .delete_user("bob", None, t)
            .await
            .expect("delete_user"),
        0
    );
    assert_eq!(load_session(&*ctx.backend, &key, t).await.user_id, None);
}
