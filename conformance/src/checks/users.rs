//! Scenario checks for `delete`, `delete_user`, `list_user` and `delete_all`.

use session_store_core::{Grace, Lookup, Rotation, SessionRecord, StorageKey, Timestamp};

use super::Ctx;
use crate::fixtures::{
    assert_absent, at, fresh_key, listed_keys, load_session, mins, now, record, successor_key,
    user_record,
};

async fn create_all(ctx: &Ctx, records: &[(StorageKey, SessionRecord)]) {
    for (key, r) in records {
        ctx.backend.create(key, r).await.expect("create");
    }
}

/// delete: removes at once and reports whether something was there; a
/// second delete (or a delete of nothing) is `false`, never an error.
pub async fn delete_idempotent(ctx: Ctx) {
    let t = now();
    let key = fresh_key();
    ctx.backend
        .create(&key, &user_record(t, "alice", b"x"))
        .await
        .expect("create");
    assert!(ctx.backend.delete(&key).await.expect("delete"));
    assert_absent(&*ctx.backend, &key, t).await;
    assert!(listed_keys(&*ctx.backend, "alice", t).await.is_empty());
    assert!(!ctx.backend.delete(&key).await.expect("second delete"));
    assert!(!ctx
        .backend
        .delete(&fresh_key())
        .await
        .expect("delete of nothing"));
    // The key is free again.
    ctx.backend
        .create(&key, &record(t, b"again"))
        .await
        .expect("create again");

    // An entry expired by its deadlines (not yet cleaned up) is removed too.
    let expired = fresh_key();
    let mut short = record(t, b"short");
    short.idle_deadline = at(t, mins(5));
    ctx.backend.create(&expired, &short).await.expect("create");
    assert_absent(&*ctx.backend, &expired, at(t, mins(6))).await;
    assert!(ctx.backend.delete(&expired).await.expect("delete expired"));

    // A forwarder is an entry; deleting it leaves the successor alone.
    let from = fresh_key();
    ctx.backend
        .create(&from, &record(t, b"f"))
        .await
        .expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let rot = Rotation {
        from,
        to,
        record: record(t, b"f"),
        grace: Some(Grace {
            sealed_token: b"s".to_vec(),
            until: at(t, mins(1)),
        }),
    };
    ctx.backend.rotate(&rot, t).await.expect("rotate");
    assert!(ctx.backend.delete(&from).await.expect("delete forwarder"));
    assert_absent(&*ctx.backend, &from, t).await;
    load_session(&*ctx.backend, &to, t).await;
}

/// delete_user: removes every session of the user, and only theirs.
pub async fn delete_user_all(ctx: Ctx) {
    let t = now();
    let alice: Vec<StorageKey> = (0..3).map(|_| fresh_key()).collect();
    let bob = fresh_key();
    let anon = fresh_key();
    let mut records: Vec<(StorageKey, SessionRecord)> = alice
        .iter()
        .map(|k| (*k, user_record(t, "alice", b"a")))
        .collect();
    records.push((bob, user_record(t, "bob", b"b")));
    records.push((anon, record(t, b"anon")));
    // A user id that merely starts with "alice" is another user.
    let alice2 = fresh_key();
    records.push((alice2, user_record(t, "alice2", b"a2")));
    create_all(&ctx, &records).await;

    assert_eq!(
        ctx.backend
            .delete_user("alice", None, t)
            .await
            .expect("delete_user"),
        3
    );
    for k in &alice {
        assert_absent(&*ctx.backend, k, t).await;
    }
    assert!(listed_keys(&*ctx.backend, "alice", t).await.is_empty());
    load_session(&*ctx.backend, &bob, t).await;
    load_session(&*ctx.backend, &anon, t).await;
    load_session(&*ctx.backend, &alice2, t).await;
    assert_eq!(listed_keys(&*ctx.backend, "bob", t).await, vec![bob]);
    assert_eq!(
        ctx.backend
            .delete_user("alice", None, t)
            .await
            .expect("again"),
        0
    );
    assert_eq!(
        ctx.backend
            .delete_user("nobody", None, t)
            .await
            .expect("nobody"),
        0
    );
}

/// delete_user with `except`: every session of the user but that one.
pub async fn delete_user_except_one(ctx: Ctx) {
    let t = now();
    let keys: Vec<StorageKey> = (0..3).map(|_| fresh_key()).collect();
    let records: Vec<(StorageKey, SessionRecord)> = keys
        .iter()
        .map(|k| (*k, user_record(t, "alice", b"a")))
        .collect();
    create_all(&ctx, &records).await;
    let bob = fresh_key();
    ctx.backend
        .create(&bob, &user_record(t, "bob", b"b"))
        .await
        .expect("create");

    let keep = keys[1];
    let removed = ctx
        .backend
        .delete_user("alice", Some(&keep), t)
        .await
        .expect("delete_user except");
    assert_eq!(removed, 2);
    assert_eq!(listed_keys(&*ctx.backend, "alice", t).await, vec![keep]);
    load_session(&*ctx.backend, &keep, t).await;
    assert_absent(&*ctx.backend, &keys[0], t).await;
    assert_absent(&*ctx.backend, &keys[2], t).await;
    // `except` naming another user's session protects nothing of alice's
    // and never deletes bob's.
    assert_eq!(
        ctx.backend
            .delete_user("alice", Some(&bob), t)
            .await
            .expect("delete_user"),
        1
    );
    load_session(&*ctx.backend, &bob, t).await;
    assert!(listed_keys(&*ctx.backend, "alice", t).await.is_empty());
}

/// delete_user: removes expired sessions too, but counts only those live at `now`.
pub async fn delete_user_counts_live_only(ctx: Ctx) {
    let t = now();
    let live = fresh_key();
    let expired = fresh_key();
    ctx.backend
        .create(&live, &user_record(t, "alice", b"live"))
        .await
        .expect("create");
    let mut short = user_record(t, "alice", b"expired");
    short.idle_deadline = at(t, mins(5));
    ctx.backend.create(&expired, &short).await.expect("create");
    let later = at(t, mins(10));
    assert_eq!(
        ctx.backend
            .delete_user("alice", None, later)
            .await
            .expect("delete_user"),
        1,
        "only the session live at `now` counts"
    );
    assert_absent(&*ctx.backend, &live, t).await;
    // The expired one is gone as well: it no longer loads even at an earlier
    // instant, and there is nothing left to delete.
    assert_absent(&*ctx.backend, &expired, t).await;
    assert!(!ctx.backend.delete(&expired).await.expect("delete"));
}

/// list_user: every summary field exact, sorted by (created_at, key) with
/// fixed keys whose insertion order is ascending for one tie and descending
/// for another, only live sessions, never another user's, never data.
pub async fn list_user_metadata(ctx: Ctx) {
    let t = now();
    let early = Timestamp::from_millis(t.as_millis() - 60_000);
    let earlier = Timestamp::from_millis(t.as_millis() - 120_000);
    let mut records = Vec::new();
    // Fixed keys, so the order does not depend on luck: two sessions created
    // at `t` and inserted in descending key order, two created at `earlier`
    // and inserted in ascending key order. Neither insertion order nor
    // reverse key order passes.
    let keys = [
        (t, StorageKey::from_bytes([0xf0; 32])),
        (early, StorageKey::from_bytes([0x80; 32])),
        (t, StorageKey::from_bytes([0x0f; 32])),
        (earlier, StorageKey::from_bytes([0x10; 32])),
        (earlier, StorageKey::from_bytes([0xe0; 32])),
    ];
    for (i, (created, key)) in keys.into_iter().enumerate() {
        // Empty session data for some: a listing never depends on the data.
        let data: &[u8] = if i % 2 == 1 { b"" } else { b"secret data" };
        let mut r = user_record(created, "alice", data);
        r.version = i as u64 + 10;
        r.last_seen_at = at(t, mins(i as u64));
        r.auth_time = if i == 1 { None } else { Some(created) };
        r.idle_deadline = at(t, mins(20 + i as u64));
        r.absolute_deadline = at(t, mins(600 + i as u64));
        r.meta = format!("{{\"ip\":\"192.0.2.{i}\",\"label\":\"device {i}\"}}").into_bytes();
        records.push((key, r));
    }
    create_all(&ctx, &records).await;
    ctx.backend
        .create(&fresh_key(), &user_record(t, "bob", b"b"))
        .await
        .expect("create");

    let listed = ctx.backend.list_user("alice", t).await.expect("list_user");
    let mut expected = records.clone();
    expected.sort_by_key(|(k, r)| (r.created_at, *k));
    assert_eq!(listed.len(), 5, "exactly alice's sessions");
    for (summary, (key, r)) in listed.iter().zip(&expected) {
        assert_eq!(summary.key, *key, "order is (created_at, key)");
        assert_eq!(summary.user_id, "alice");
        assert_eq!(summary.version, r.version);
        assert_eq!(summary.created_at, r.created_at);
        assert_eq!(summary.last_seen_at, r.last_seen_at);
        assert_eq!(summary.auth_time, r.auth_time);
        assert_eq!(summary.idle_deadline, r.idle_deadline);
        assert_eq!(summary.absolute_deadline, r.absolute_deadline);
        assert_eq!(summary.meta, r.meta);
    }
    // At a later instant only the sessions still live are listed.
    let later = at(t, mins(20));
    let live_later: Vec<StorageKey> = expected
        .iter()
        .filter(|(_, r)| r.is_live(later))
        .map(|(k, _)| *k)
        .collect();
    assert_eq!(live_later.len(), 4);
    assert_eq!(listed_keys(&*ctx.backend, "alice", later).await, live_later);
}

/// list_user: expired sessions and renewal forwarders are not listed.
pub async fn list_user_excludes_expired(ctx: Ctx) {
    let t = now();
    let live = fresh_key();
    let expired = fresh_key();
    ctx.backend
        .create(&live, &user_record(t, "alice", b"live"))
        .await
        .expect("create");
    let mut short = user_record(t, "alice", b"short");
    short.idle_deadline = at(t, mins(5));
    ctx.backend.create(&expired, &short).await.expect("create");
    assert_eq!(listed_keys(&*ctx.backend, "alice", t).await.len(), 2);
    assert_eq!(
        listed_keys(&*ctx.backend, "alice", at(t, mins(5))).await,
        vec![live]
    );

    // Renew `live` with grace: the forwarder is not listed, the successor is.
    let held = load_session(&*ctx.backend, &live, t).await;
    let to = successor_key(&*ctx.backend, &live);
    let rot = Rotation {
        from: live,
        to,
        record: held,
        grace: Some(Grace {
            sealed_token: b"s".to_vec(),
            until: at(t, mins(1)),
        }),
    };
    ctx.backend.rotate(&rot, t).await.expect("rotate");
    assert!(matches!(
        ctx.backend.load(&live, t).await.expect("load"),
        Some(Lookup::Forwarded(_))
    ));
    assert_eq!(
        listed_keys(&*ctx.backend, "alice", at(t, mins(5))).await,
        vec![to]
    );
    assert_eq!(
        listed_keys(&*ctx.backend, "alice", at(t, mins(30))).await,
        Vec::<StorageKey>::new()
    );
}

/// delete_all: afterwards nothing loads, every list is empty and keys are free.
pub async fn delete_all_empties_namespace(ctx: Ctx) {
    let t = now();
    let keys: Vec<StorageKey> = (0..4).map(|_| fresh_key()).collect();
    for (i, k) in keys.iter().enumerate() {
        let r = if i % 2 == 0 {
            user_record(t, "alice", b"x")
        } else {
            record(t, b"y")
        };
        ctx.backend.create(k, &r).await.expect("create");
    }
    let to = successor_key(&*ctx.backend, &keys[0]);
    let held = load_session(&*ctx.backend, &keys[0], t).await;
    let rot = Rotation {
        from: keys[0],
        to,
        record: held,
        grace: Some(Grace {
            sealed_token: b"s".to_vec(),
            until: at(t, mins(1)),
        }),
    };
    ctx.backend.rotate(&rot, t).await.expect("rotate");

    ctx.backend.delete_all().await.expect("delete_all");
    for k in keys.iter().chain([&to]) {
        assert_absent(&*ctx.backend, k, t).await;
    }
    assert!(listed_keys(&*ctx.backend, "alice", t).await.is_empty());
    assert_eq!(
        ctx.backend
            .delete_user("alice", None, t)
            .await
            .expect("delete_user"),
        0
    );
    for k in keys.iter().chain([&to]) {
        ctx.backend
            .create(k, &record(t, b"new"))
            .await
            .expect("key is free again");
    }
    ctx.backend
        .delete_all()
        .await
        .expect("delete_all is repeatable");
    ctx.backend
        .delete_all()
        .await
        .expect("delete_all on an empty namespace");
}

/// The user ids of [`user_ids_compare_exactly`]: each pair differs only in
/// case, by a prefix, by trailing or leading spaces, by Unicode
/// normalisation (NFC `é` against NFD `e` + U+0301), or matches the other
/// as a SQL `LIKE` pattern would (`_`, `%`).
const LOOKALIKE_USERS: &[&str] = &[
    "alice",
    "Alice",
    "ALICE",
    "alic",
    "alice2",
    "alice ",
    " alice",
    "a_ice",
    "al%",
    "caf\u{e9}",
    "cafe\u{301}",
];

/// User ids compare exactly, byte for byte: one session for each of a set
/// of ids that differ only in case, by a prefix, by surrounding spaces, by
/// Unicode normalisation, or as `LIKE` patterns (a SQL default collation,
/// a trimming `CHAR` column, a `LIKE` query or a normalising layer breaks
/// one of them). Each id lists exactly its own session, loads back with
/// the id as written, and `delete_user` removes only its own; every other
/// session still loads afterwards.
pub async fn user_ids_compare_exactly(ctx: Ctx) {
    let t = now();
    let mut sessions = Vec::new();
    for (i, user) in LOOKALIKE_USERS.iter().enumerate() {
        let key = StorageKey::from_bytes([i as u8 + 1; 32]);
        ctx.backend
            .create(&key, &user_record(t, user, user.as_bytes()))
            .await
            .expect("create");
        sessions.push((*user, key));
    }
    for (user, key) in &sessions {
        assert_eq!(
            listed_keys(&*ctx.backend, user, t).await,
            vec![*key],
            "list_user({user:?}) must list exactly the session of {user:?}"
        );
        assert_eq!(
            load_session(&*ctx.backend, key, t).await.user_id.as_deref(),
            Some(*user),
            "the user id loads back byte for byte"
        );
    }
    for (i, (user, key)) in sessions.iter().enumerate() {
        assert_eq!(
            ctx.backend
                .delete_user(user, None, t)
                .await
                .expect("delete_user"),
            1,
            "delete_user({user:?}) removes exactly the one session of {user:?}"
        );
        assert_absent(&*ctx.backend, key, t).await;
        for (other, other_key) in &sessions[i + 1..] {
            let found = ctx.backend.load(other_key, t).await.expect("load");
            assert!(
                matches!(found, Some(Lookup::Session(_))),
                "delete_user({user:?}) removed the session of {other:?}"
            );
        }
    }
}
