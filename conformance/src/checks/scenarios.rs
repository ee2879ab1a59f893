//! Scenario checks for `create` and `load`, one per clause of the contract.

use session_store_core::{Error, Grace, Rotation, SessionRecord, Timestamp};

use super::Ctx;
use crate::fixtures::{
    assert_absent, at, fresh_key, listed_keys, load_session, mins, now, record, successor_key,
};

/// create: insert only if the key is absent; a collision is `AlreadyExists`
/// and never an overwrite.
pub async fn create_collision(ctx: Ctx) {
    let key = fresh_key();
    let t = now();
    let first = record(t, b"first");
    ctx.backend.create(&key, &first).await.expect("create");
    let err = ctx
        .backend
        .create(&key, &record(t, b"second"))
        .await
        .expect_err("second create must fail");
    assert!(matches!(err, Error::AlreadyExists), "got {err:?}");
    let loaded = load_session(&*ctx.backend, &key, t).await;
    assert_eq!(loaded.data, b"first", "create must never overwrite");
}

/// create: an entry that is expired by its deadlines (but not yet cleaned up)
/// still blocks a create under its key.
pub async fn create_collision_with_expired_entry(ctx: Ctx) {
    let key = fresh_key();
    let t = now();
    let mut short = record(t, b"short-lived");
    short.idle_deadline = at(t, mins(5));
    ctx.backend.create(&key, &short).await.expect("create");
    // Expired at t+10min, yet no cleanup ran and the server's own clock is
    // still before the deadline: the entry exists.
    assert_absent(&*ctx.backend, &key, at(t, mins(10))).await;
    let err = ctx
        .backend
        .create(&key, &record(t, b"second"))
        .await
        .expect_err("create over an expired entry must fail");
    assert!(matches!(err, Error::AlreadyExists), "got {err:?}");
    assert_eq!(
        load_session(&*ctx.backend, &key, t).await.data,
        b"short-lived"
    );
}

/// create: a renewal forwarder blocks a create under its key.
pub async fn create_collision_with_forwarder(ctx: Ctx) {
    let from = fresh_key();
    let t = now();
    ctx.backend
        .create(&from, &record(t, b"x"))
        .await
        .expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let rotation = Rotation {
        from,
        to,
        record: record(t, b"x"),
        grace: Some(Grace {
            sealed_token: b"sealed".to_vec(),
            until: at(t, mins(1)),
        }),
    };
    ctx.backend.rotate(&rotation, t).await.expect("rotate");
    let err = ctx
        .backend
        .create(&from, &record(t, b"other"))
        .await
        .expect_err("create over a forwarder must fail");
    assert!(matches!(err, Error::AlreadyExists), "got {err:?}");
}

/// create + load: the record comes back exactly as written, every field
/// (version included, binary data and metadata untouched).
pub async fn create_then_load_roundtrip(ctx: Ctx) {
    let t = now();
    let full = SessionRecord {
        version: 7,
        user_id: Some("alice@example.com".to_owned()),
        created_at: Timestamp::from_millis(t.as_millis() - 3_600_001),
        last_seen_at: Timestamp::from_millis(t.as_millis() - 17),
        auth_time: Some(Timestamp::from_millis(t.as_millis() - 1_234_567)),
        idle_deadline: at(t, mins(29)),
        absolute_deadline: at(t, mins(11 * 60 + 3)),
        meta: b"{\"ip\":\"192.0.2.7\",\"user_agent\":\"Mozilla/5.0 \xc3\xa9\"}".to_vec(),
        data: (0u8..=255).chain([0, 0, 255]).collect(),
    };
    let anonymous = SessionRecord {
        version: 0,
        user_id: None,
        auth_time: None,
        meta: Vec::new(),
        data: Vec::new(),
        ..record(t, b"")
    };
    let unicode_user = SessionRecord {
        user_id: Some("ユーザー \u{1F600} 'quoted' \"double\" %_*?[".to_owned()),
        version: u64::from(u32::MAX) + 5,
        ..record(t, b"\0\0\0")
    };
    for r in [full, anonymous, unicode_user] {
        let key = fresh_key();
        ctx.backend.create(&key, &r).await.expect("create");
        let loaded = load_session(&*ctx.backend, &key, t).await;
        assert_eq!(loaded, r, "load must return the record exactly as created");
        assert_eq!(loaded.data, r.data);
        assert_eq!(loaded.meta, r.meta);
        if let Some(user) = &r.user_id {
            let listed = ctx.backend.list_user(user, t).await.expect("list_user");
            assert_eq!(listed.len(), 1, "the user index holds the new session");
            assert_eq!(listed[0].key, key);
        }
    }
}

/// load: nothing stored is `None` (not an error).
pub async fn load_missing_is_none(ctx: Ctx) {
    let t = now();
    assert_absent(&*ctx.backend, &fresh_key(), t).await;
    // A neighbour existing changes nothing.
    ctx.backend
        .create(&fresh_key(), &record(t, b"x"))
        .await
        .expect("create");
    assert_absent(&*ctx.backend, &fresh_key(), t).await;
}

/// load: read-time expiry on the idle deadline, whether or not cleanup ran:
/// live strictly before `idle_deadline`, `None` from it on.
pub async fn load_expired_idle_is_none(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    let r = record(t, b"idle");
    ctx.backend.create(&key, &r).await.expect("create");
    let deadline = r.idle_deadline;
    let just_before = Timestamp::from_millis(deadline.as_millis() - 1);
    assert_eq!(load_session(&*ctx.backend, &key, just_before).await, r);
    assert_absent(&*ctx.backend, &key, deadline).await;
    assert_absent(&*ctx.backend, &key, at(deadline, mins(60))).await;
    // Still live at an earlier instant: expiry is judged by `now`, nothing was removed.
    assert_eq!(load_session(&*ctx.backend, &key, t).await, r);
}

/// load: read-time expiry on the absolute deadline, even when activity kept
/// the idle deadline ahead (touch caps it, and `min(idle, absolute)` rules).
pub async fn load_expired_absolute_is_none(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    let mut r = record(t, b"absolute");
    r.absolute_deadline = at(t, mins(45));
    ctx.backend.create(&key, &r).await.expect("create");
    // Activity at t+20min asks for t+50min: capped at the absolute deadline.
    let touched = ctx
        .backend
        .touch(&key, at(t, mins(50)), at(t, mins(20)), at(t, mins(20)))
        .await
        .expect("touch");
    assert!(touched);
    let abs = r.absolute_deadline;
    load_session(
        &*ctx.backend,
        &key,
        Timestamp::from_millis(abs.as_millis() - 1),
    )
    .await;
    assert_absent(&*ctx.backend, &key, abs).await;

    // A record whose idle deadline lies beyond its absolute deadline expires
    // at the absolute one: live means `now < min(idle, absolute)`.
    let key2 = fresh_key();
    let mut r2 = record(t, b"absolute-first");
    r2.idle_deadline = at(t, mins(120));
    r2.absolute_deadline = at(t, mins(60));
    ctx.backend.create(&key2, &r2).await.expect("create");
    load_session(&*ctx.backend, &key2, at(t, mins(59))).await;
    assert_absent(&*ctx.backend, &key2, at(t, mins(60))).await;
    assert_absent(&*ctx.backend, &key2, at(t, mins(90))).await;
}

/// The user index only reports what `load` reports: a freshly created user
/// session is listed once, under its key.
pub async fn create_indexes_user(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    ctx.backend
        .create(&key, &crate::fixtures::user_record(t, "alice", b"x"))
        .await
        .expect("create");
    ctx.backend
        .create(&fresh_key(), &record(t, b"anon"))
        .await
        .expect("create");
    assert_eq!(listed_keys(&*ctx.backend, "alice", t).await, vec![key]);
    assert!(listed_keys(&*ctx.backend, "bob", t).await.is_empty());
}
