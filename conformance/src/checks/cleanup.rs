//! Scenario checks for `cleanup_expired`.

use session_store_core::{Grace, Rotation, StorageKey};

use super::Ctx;
use crate::fixtures::{
    assert_absent, at, fresh_key, listed_keys, load_session, mins, now, record, successor_key,
    user_record,
};

/// cleanup_expired: removes only entries that are not live at `now` (expired
/// sessions and forwarders), at most `limit` per call, and reports how many.
/// For stores without [`counted_cleanup`](session_store_core::Capabilities::counted_cleanup)
/// (server-side TTL) only the safety half is checked: expired entries never
/// load and live ones survive.
pub async fn cleanup_removes_only_expired_in_batches(ctx: Ctx) {
    let t = now();
    let cutoff = at(t, mins(20));
    // 5 sessions expiring before the cutoff (two of them users'), 3 after.
    let mut expired: Vec<StorageKey> = Vec::new();
    for i in 0..5u64 {
        let key = fresh_key();
        let mut r = if i < 2 {
            user_record(t, "alice", b"old")
        } else {
            record(t, b"old")
        };
        r.idle_deadline = at(t, mins(5 + i));
        ctx.backend.create(&key, &r).await.expect("create");
        expired.push(key);
    }
    let mut live: Vec<StorageKey> = Vec::new();
    for i in 0..3u64 {
        let key = fresh_key();
        let mut r = if i == 0 {
            user_record(t, "alice", b"new")
        } else {
            record(t, b"new")
        };
        r.idle_deadline = at(t, mins(21 + i));
        ctx.backend.create(&key, &r).await.expect("create");
        live.push(key);
    }
    // One session exactly at the cutoff: expired (`now < deadline` is false).
    let boundary = fresh_key();
    let mut r = record(t, b"boundary");
    r.idle_deadline = cutoff;
    ctx.backend.create(&boundary, &r).await.expect("create");
    expired.push(boundary);
    // A forwarder that ends before the cutoff, its successor lives on.
    let from = fresh_key();
    ctx.backend
        .create(&from, &record(t, b"f"))
        .await
        .expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let mut succ = record(t, b"successor");
    succ.idle_deadline = at(t, mins(40));
    let rot = Rotation {
        from,
        to,
        record: succ,
        grace: Some(Grace {
            sealed_token: b"s".to_vec(),
            until: at(t, mins(1)),
        }),
    };
    ctx.backend.rotate(&rot, t).await.expect("rotate");
    expired.push(from);
    live.push(to);
    assert_eq!(expired.len(), 7);

    if ctx.capabilities.counted_cleanup {
        // Nothing is expired at t.
        assert_eq!(
            ctx.backend.cleanup_expired(t, 100).await.expect("cleanup"),
            0
        );
        let mut batches = Vec::new();
        for _ in 0..10 {
            let n = ctx
                .backend
                .cleanup_expired(cutoff, 3)
                .await
                .expect("cleanup");
            batches.push(n);
            if n < 3 {
                break;
            }
        }
        assert_eq!(
            batches,
            vec![3, 3, 1],
            "batches of at most `limit`, exact counts"
        );
        assert_eq!(
            ctx.backend
                .cleanup_expired(cutoff, 3)
                .await
                .expect("cleanup"),
            0
        );
        // They are really gone, not just hidden: nothing to delete, nothing
        // at an earlier instant.
        for key in &expired {
            assert_absent(&*ctx.backend, key, t).await;
            assert!(!ctx.backend.delete(key).await.expect("delete"));
        }
    } else {
        for _ in 0..10 {
            let n = ctx
                .backend
                .cleanup_expired(cutoff, 3)
                .await
                .expect("cleanup");
            assert!(n <= 3, "cleanup removed {n} > limit");
            if n < 3 {
                break;
            }
        }
    }
    for key in &expired {
        assert_absent(&*ctx.backend, key, cutoff).await;
    }
    for key in &live {
        load_session(&*ctx.backend, key, cutoff).await;
    }
    assert_eq!(
        listed_keys(&*ctx.backend, "alice", cutoff).await,
        vec![live[0]]
    );
    // The user index is purged too: deleting alice's sessions finds the live one only.
    assert_eq!(
        ctx.backend
            .delete_user("alice", None, cutoff)
            .await
            .expect("delete_user"),
        1
    );
}
