//! Scenario checks for `rotate`: atomic key replacement, CAS, grace forwarders.

use session_store_core::{Error, Grace, Lookup, Rotation, SessionRecord, StorageKey, Timestamp};

use super::Ctx;
use crate::fixtures::{
    assert_absent, at, fresh_key, listed_keys, load_session, mins, now, record, successor_key,
    user_record,
};

fn rotation(from: StorageKey, to: StorageKey, record: SessionRecord) -> Rotation {
    Rotation {
        from,
        to,
        record,
        grace: None,
    }
}

/// rotate: the successor holds the new record with version + 1 (returned),
/// client metadata and data included (non-empty and empty data alike); the
/// old key loads nothing; the user index follows.
pub async fn rotate_moves_record(ctx: Ctx) {
    for (before, after) in [
        (&b"moving"[..], &b"moved"[..]),
        (b"", b""),
        (b"", b"filled"),
    ] {
        rotate_moves(&ctx, before, after).await;
    }
}

async fn rotate_moves(ctx: &Ctx, before: &[u8], after: &[u8]) {
    let t = now();
    let from = fresh_key();
    let mut r = user_record(t, "alice", before);
    r.version = 4;
    r.meta = b"{\"ip\":\"192.0.2.7\",\"label\":\"phone\"}".to_vec();
    ctx.backend.create(&from, &r).await.expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let mut next = r.clone();
    next.data = after.to_vec();
    next.meta = b"{\"ip\":\"192.0.2.8\",\"label\":\"phone\"}".to_vec();
    next.last_seen_at = at(t, mins(1));
    next.idle_deadline = at(t, mins(31));
    let v = ctx
        .backend
        .rotate(&rotation(from, to, next.clone()), at(t, mins(1)))
        .await
        .expect("rotate");
    assert_eq!(v, 5, "rotate returns read version + 1");
    assert_absent(&*ctx.backend, &from, at(t, mins(1))).await;
    assert_absent(&*ctx.backend, &from, t).await;
    let moved = load_session(&*ctx.backend, &to, at(t, mins(1))).await;
    assert_eq!(
        moved,
        SessionRecord {
            version: 5,
            ..next.clone()
        },
        "the successor holds the rotated record exactly (data {after:?})"
    );
    let listed = ctx.backend.list_user("alice", t).await.expect("list_user");
    assert_eq!(
        listed.iter().map(|s| s.key).collect::<Vec<_>>(),
        vec![to],
        "the user index follows the rotation"
    );
    assert_eq!(
        listed[0].meta, next.meta,
        "listed metadata is the rotated one"
    );
    // The old key is gone for good: delete finds nothing.
    assert!(!ctx.backend.delete(&from).await.expect("delete"));
    assert!(ctx.backend.delete(&to).await.expect("delete"));
}

/// rotate: a stale version, a missing, expired or forwarded source is
/// `Conflict` and nothing changes (the successor is not created).
pub async fn rotate_stale_conflict(ctx: Ctx) {
    let t = now();
    let from = fresh_key();
    let r = record(t, b"x");
    ctx.backend.create(&from, &r).await.expect("create");
    let mut stale = r.clone();
    stale.version = 1;
    let to = successor_key(&*ctx.backend, &from);
    let cases: Vec<(&str, Rotation, Timestamp)> = vec![
        ("stale version", rotation(from, to, stale), t),
        ("missing source", rotation(fresh_key(), to, r.clone()), t),
        (
            "expired source",
            rotation(from, to, r.clone()),
            r.idle_deadline,
        ),
    ];
    for (what, rot, when) in cases {
        match ctx.backend.rotate(&rot, when).await {
            Err(Error::Conflict) => {}
            other => panic!("{what}: expected Conflict, got {other:?}"),
        }
        assert_absent(&*ctx.backend, &to, t).await;
        assert_eq!(
            load_session(&*ctx.backend, &from, t).await,
            r,
            "{what}: nothing changed"
        );
    }
}

/// rotate: a forwarder cannot be rotated again (it is not a session).
pub async fn rotate_forwarder_conflict(ctx: Ctx) {
    let t = now();
    let from = fresh_key();
    let r = record(t, b"x");
    ctx.backend.create(&from, &r).await.expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let mut rot = rotation(from, to, r.clone());
    rot.grace = Some(Grace {
        sealed_token: b"s".to_vec(),
        until: at(t, mins(1)),
    });
    ctx.backend.rotate(&rot, t).await.expect("rotate");
    let other = successor_key(&*ctx.backend, &from);
    for version in [0, 1] {
        let mut again = rotation(from, other, r.clone());
        again.record.version = version;
        match ctx.backend.rotate(&again, t).await {
            Err(Error::Conflict) => {}
            res => panic!("rotating a forwarder: expected Conflict, got {res:?}"),
        }
    }
    assert_absent(&*ctx.backend, &other, t).await;
    assert_eq!(load_session(&*ctx.backend, &to, t).await.version, 1);
}

/// rotate: an occupied successor key is `AlreadyExists` and nothing changes
/// on either side; a stale source is reported first (`Conflict`).
pub async fn rotate_into_existing_already_exists(ctx: Ctx) {
    let t = now();
    let from = fresh_key();
    let r = user_record(t, "alice", b"source");
    ctx.backend.create(&from, &r).await.expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let occupant = user_record(t, "bob", b"occupant");
    ctx.backend
        .create(&to, &occupant)
        .await
        .expect("create occupant");

    match ctx.backend.rotate(&rotation(from, to, r.clone()), t).await {
        Err(Error::AlreadyExists) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(load_session(&*ctx.backend, &from, t).await, r);
    assert_eq!(load_session(&*ctx.backend, &to, t).await, occupant);
    assert_eq!(listed_keys(&*ctx.backend, "alice", t).await, vec![from]);
    assert_eq!(listed_keys(&*ctx.backend, "bob", t).await, vec![to]);

    // Conflict is checked before AlreadyExists.
    let mut stale = r.clone();
    stale.version = 9;
    match ctx.backend.rotate(&rotation(from, to, stale), t).await {
        Err(Error::Conflict) => {}
        other => panic!("stale source and occupied successor: expected Conflict, got {other:?}"),
    }
    // Rotating onto itself is an occupied successor too.
    match ctx
        .backend
        .rotate(&rotation(from, from, r.clone()), t)
        .await
    {
        Err(Error::AlreadyExists) => {}
        other => panic!("rotation onto the same key: expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(load_session(&*ctx.backend, &from, t).await, r);
}

/// rotate with grace: the old key becomes a forwarder (`Lookup::Forwarded`
/// with the successor, the sealed token and `until`), is live strictly
/// before `until` and gone from it on; the successor is an ordinary session.
pub async fn rotate_with_grace_leaves_forwarder(ctx: Ctx) {
    let t = now();
    let from = fresh_key();
    let mut r = user_record(t, "alice", b"");
    r.meta = b"{\"label\":\"renewed laptop\"}".to_vec();
    ctx.backend.create(&from, &r).await.expect("create");
    let to = successor_key(&*ctx.backend, &from);
    let until = at(t, mins(2));
    let sealed: Vec<u8> = (0u8..=255).rev().collect();
    let mut rot = rotation(from, to, r.clone());
    rot.grace = Some(Grace {
        sealed_token: sealed.clone(),
        until,
    });
    assert_eq!(ctx.backend.rotate(&rot, t).await.expect("rotate"), 1);

    let before_until = Timestamp::from_millis(until.as_millis() - 1);
    for when in [t, before_until] {
        match ctx.backend.load(&from, when).await.expect("load") {
            Some(Lookup::Forwarded(f)) => {
                assert_eq!(f.successor, to);
                assert_eq!(f.sealed_token, sealed, "sealed token stored exactly");
                assert_eq!(f.until, until);
            }
            other => panic!("expected a forwarder, found {other:?}"),
        }
    }
    assert_absent(&*ctx.backend, &from, until).await;
    assert_absent(&*ctx.backend, &from, at(until, mins(60))).await;
    let moved = load_session(&*ctx.backend, &to, t).await;
    assert_eq!(
        moved,
        SessionRecord {
            version: 1,
            ..r.clone()
        }
    );
    // A forwarder is not a session of the user; the successor is listed
    // with its metadata.
    let listed = ctx.backend.list_user("alice", t).await.expect("list_user");
    assert_eq!(listed.iter().map(|s| s.key).collect::<Vec<_>>(), vec![to]);
    assert_eq!(listed[0].meta, r.meta);
    // The successor outlives the forwarder.
    load_session(&*ctx.backend, &to, until).await;
}
