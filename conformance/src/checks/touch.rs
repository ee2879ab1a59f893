//! Scenario checks for `touch`: activity moves the idle deadline forward only.

use session_store_core::{Grace, Rotation, SessionRecord};

use super::Ctx;
use crate::fixtures::{at, fresh_key, load_session, mins, now, record, successor_key, user_record};

/// touch: moves `idle_deadline` and `last_seen_at`, nothing else.
pub async fn touch_extends_idle_only(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    let mut r = user_record(t, "alice", b"data");
    r.meta = b"meta".to_vec();
    ctx.backend.create(&key, &r).await.expect("create");
    let seen = at(t, mins(10));
    let touched = ctx
        .backend
        .touch(&key, at(t, mins(40)), seen, seen)
        .await
        .expect("touch");
    assert!(touched, "touch of a live session returns true");
    let loaded = load_session(&*ctx.backend, &key, seen).await;
    let expected = SessionRecord {
        idle_deadline: at(t, mins(40)),
        last_seen_at: seen,
        ..r
    };
    assert_eq!(
        loaded, expected,
        "only idle_deadline and last_seen_at change"
    );
    // The session now outlives its old idle deadline.
    load_session(&*ctx.backend, &key, at(t, mins(35))).await;
    // The user index reflects the new deadline.
    let listed = ctx
        .backend
        .list_user("alice", at(t, mins(35)))
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].idle_deadline, at(t, mins(40)));
    assert_eq!(listed[0].last_seen_at, seen);
}

/// touch: the idle deadline never passes the absolute deadline.
pub async fn touch_capped_by_absolute(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    let mut r = record(t, b"x");
    r.absolute_deadline = at(t, mins(60));
    ctx.backend.create(&key, &r).await.expect("create");
    let seen = at(t, mins(20));
    assert!(ctx
        .backend
        .touch(&key, at(t, mins(80)), seen, seen)
        .await
        .expect("touch"));
    let loaded = load_session(&*ctx.backend, &key, seen).await;
    assert_eq!(
        loaded.idle_deadline,
        at(t, mins(60)),
        "capped at the absolute deadline"
    );
    assert_eq!(
        loaded.absolute_deadline,
        at(t, mins(60)),
        "absolute never moves"
    );
    assert!(ctx
        .backend
        .load(&key, at(t, mins(60)))
        .await
        .expect("load")
        .is_none());
}

/// touch: an earlier idle deadline or last-seen time never moves the stored
/// ones backwards (concurrent requests may touch out of order).
pub async fn touch_never_moves_backwards(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    ctx.backend
        .create(&key, &record(t, b"x"))
        .await
        .expect("create");
    let late = at(t, mins(5));
    assert!(ctx
        .backend
        .touch(&key, at(t, mins(35)), late, late)
        .await
        .expect("touch"));
    // An older request arrives afterwards.
    let early = at(t, mins(2));
    assert!(ctx
        .backend
        .touch(&key, at(t, mins(32)), early, late)
        .await
        .expect("touch"));
    let loaded = load_session(&*ctx.backend, &key, late).await;
    assert_eq!(loaded.idle_deadline, at(t, mins(35)));
    assert_eq!(loaded.last_seen_at, late);
    // Mixed: a later last-seen with an earlier deadline moves only last-seen.
    let later = at(t, mins(6));
    assert!(ctx
        .backend
        .touch(&key, at(t, mins(20)), later, later)
        .await
        .expect("touch"));
    let loaded = load_session(&*ctx.backend, &key, later).await;
    assert_eq!(loaded.idle_deadline, at(t, mins(35)));
    assert_eq!(loaded.last_seen_at, later);
}

/// touch: the version and the data stay as they were, so a save based on
/// the pre-touch copy still succeeds (touch never causes a conflict).
pub async fn touch_keeps_version_and_data(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    let mut r = record(t, b"payload");
    r.version = 3;
    ctx.backend.create(&key, &r).await.expect("create");
    let held = load_session(&*ctx.backend, &key, t).await;
    let seen = at(t, mins(1));
    assert!(ctx
        .backend
        .touch(&key, at(t, mins(31)), seen, seen)
        .await
        .expect("touch"));
    let loaded = load_session(&*ctx.backend, &key, seen).await;
    assert_eq!(loaded.version, 3, "touch never changes the version");
    assert_eq!(loaded.data, b"payload");
    let mut write = held;
    write.data = b"after touch".to_vec();
    assert_eq!(ctx.backend.save(&key, &write, seen).await.expect("save"), 4);
}

/// touch: missing, expired or forwarded keys return `false` and nothing is written.
pub async fn touch_missing_false(ctx: Ctx) {
    let t = now();
    assert!(!ctx
        .backend
        .touch(&fresh_key(), at(t, mins(30)), t, t)
        .await
        .expect("touch missing"));

    // Expired at `now`: false, and the stored deadline is unchanged.
    let key = fresh_key();
    let r = record(t, b"x");
    ctx.backend.create(&key, &r).await.expect("create");
    let late = r.idle_deadline;
    assert!(!ctx
        .backend
        .touch(&key, at(late, mins(30)), late, late)
        .await
        .expect("touch expired"));
    assert_eq!(
        load_session(&*ctx.backend, &key, t).await,
        r,
        "nothing written"
    );

    // A forwarder is not a session.
    let to = successor_key(&*ctx.backend, &key);
    let rotation = Rotation {
        from: key,
        to,
        record: r.clone(),
        grace: Some(Grace {
            sealed_token: b"s".to_vec(),
            until: at(t, mins(1)),
        }),
    };
    ctx.backend.rotate(&rotation, t).await.expect("rotate");
    assert!(!ctx
        .backend
        .touch(&key, at(t, mins(30)), t, t)
        .await
        .expect("touch forwarder"));
    assert!(matches!(
        ctx.backend.load(&key, t).await.expect("load"),
        Some(session_store_core::Lookup::Forwarded(_))
    ));
}
