//! Concurrency checks: compare-and-swap under contention, one winner per
//! rotation and per create.

use std::sync::Arc;

use session_store_core::{Error, Lookup, Rotation, SessionBackend, StorageKey};

use super::Ctx;
use crate::fixtures::{load_session, now, record, successor_key, user_record};

const TASKS: usize = 16;
const INCREMENTS: u64 = 20;
/// Bound on retries per increment, so a broken store fails instead of spinning.
const MAX_ATTEMPTS: usize = 10_000;

fn counter(data: &[u8]) -> u64 {
    let bytes: [u8; 8] = data
        .try_into()
        .unwrap_or_else(|_| panic!("counter data of {} bytes", data.len()));
    u64::from_le_bytes(bytes)
}

/// Lockstep rounds of [`concurrent_saves_all_land`] and
/// [`concurrent_touch_never_loses_writes`]: enough that a race the store
/// loses half the time is lost in some round in all but 2^-48 of runs.
const LOCKSTEP_ROUNDS: u64 = 48;
/// Rounds of the one-winner races (16 tasks released at once per round).
const RACE_ROUNDS: usize = 8;

/// save: two phases on one counter session.
///
/// 1. **Lockstep** (deterministic): in each of 4 rounds all 16 tasks load
///    the same version, meet at a barrier, then save it: exactly one save
///    per round wins, the others get `Conflict`. A save that ignores the
///    version lets several win in the first round whatever the scheduler
///    does, because the barrier forces every load before any save.
/// 2. **Free-running**: 16 tasks each add 1 twenty times with
///    load-modify-save, retrying on `Conflict`.
///
/// Every increment lands exactly once: the final counter is the number of
/// successful saves and the version moved by the same number.
pub async fn concurrent_saves_all_land(ctx: Ctx) {
    const LOCKSTEP: u64 = 4;
    let t = now();
    let key = crate::fixtures::fresh_key();
    let mut r = record(t, &0u64.to_le_bytes());
    r.version = 100;
    ctx.backend.create(&key, &r).await.expect("create");

    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let backend = ctx.backend.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            // No assertion inside the rounds: a racer that panicked would
            // leave the others waiting at the barrier forever.
            let mut won = Vec::new();
            let mut wrong = Vec::new();
            for _ in 0..LOCKSTEP {
                let mut current = load_session(&*backend, &key, t).await;
                current.data = (counter(&current.data) + 1).to_le_bytes().to_vec();
                barrier.wait().await;
                won.push(match backend.save(&key, &current, t).await {
                    Ok(v) => {
                        if v != current.version + 1 {
                            wrong.push(format!("version {} saved as {v}", current.version));
                        }
                        true
                    }
                    Err(Error::Conflict) => false,
                    Err(e) => {
                        wrong.push(format!("save under contention: {e:?}"));
                        false
                    }
                });
                barrier.wait().await;
            }
            (won, wrong)
        }));
    }
    let mut winners = vec![0; LOCKSTEP as usize];
    for task in tasks {
        let (won, wrong) = task.await.expect("task");
        assert!(
            wrong.is_empty(),
            "a save of version v must return v + 1 and fail only with Conflict: {wrong:?}"
        );
        for (round, won) in won.into_iter().enumerate() {
            winners[round] += usize::from(won);
        }
    }
    assert_eq!(
        winners,
        vec![1; LOCKSTEP as usize],
        "{TASKS} saves of one loaded version: exactly one may win per round \
         (winners per round), the others must get Conflict"
    );

    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let backend = ctx.backend.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0u64;
            for _ in 0..INCREMENTS {
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(
                        attempts <= MAX_ATTEMPTS,
                        "no progress after {MAX_ATTEMPTS} attempts"
                    );
                    let mut current = load_session(&*backend, &key, t).await;
                    let n = counter(&current.data);
                    current.data = (n + 1).to_le_bytes().to_vec();
                    match backend.save(&key, &current, t).await {
                        Ok(v) => {
                            assert_eq!(v, current.version + 1);
                            break;
                        }
                        Err(Error::Conflict) => {
                            conflicts += 1;
                            tokio::task::yield_now().await;
                        }
                        Err(e) => panic!("save under contention: {e:?}"),
                    }
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("task");
    }
    let total = LOCKSTEP + TASKS as u64 * INCREMENTS;
    let stored = load_session(&*ctx.backend, &key, t).await;
    assert_eq!(
        counter(&stored.data),
        total,
        "lost or duplicated increments ({conflicts} conflicts)"
    );
    assert_eq!(
        stored.version,
        100 + total,
        "one version per successful save"
    );
}

/// rotate: 16 tasks rotate the same session at the same version, each to its
/// own fresh successor, released together by a barrier. Exactly one succeeds,
/// the others get `Conflict`, and exactly one successor holds the session
/// (and the user's index lists only it). Eight rounds, each on a fresh
/// session: a rotation made of separate steps (read, check, write, delete,
/// each a round trip) lets several tasks pass the check before any deletes,
/// and a store that loses that race in any round fails.
pub async fn concurrent_rotations_one_winner(ctx: Ctx) {
    for round in 0..RACE_ROUNDS {
        rotation_race(&ctx, &format!("alice{round}")).await;
    }
}

async fn rotation_race(ctx: &Ctx, user: &str) {
    let t = now();
    let from = crate::fixtures::fresh_key();
    let mut r = user_record(t, user, b"contended");
    r.meta = b"{\"label\":\"contended\"}".to_vec();
    ctx.backend.create(&from, &r).await.expect("create");
    let successors: Vec<StorageKey> = (0..TASKS)
        .map(|_| successor_key(&*ctx.backend, &from))
        .collect();

    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for to in successors.clone() {
        let backend: Arc<dyn SessionBackend> = ctx.backend.clone();
        let barrier = barrier.clone();
        let rot = Rotation {
            from,
            to,
            record: r.clone(),
            grace: None,
        };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            backend.rotate(&rot, t).await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(v) => {
                assert_eq!(v, 1);
                ok += 1;
            }
            Err(Error::Conflict) => {}
            Err(e) => panic!("concurrent rotation: expected Ok or Conflict, got {e:?}"),
        }
    }
    assert_eq!(ok, 1, "exactly one of {TASKS} concurrent rotations wins");
    let mut found = Vec::new();
    for to in &successors {
        if ctx.backend.load(to, t).await.expect("load").is_some() {
            found.push(*to);
        }
    }
    assert_eq!(found.len(), 1, "exactly one successor exists");
    assert!(ctx.backend.load(&from, t).await.expect("load").is_none());
    assert_eq!(
        crate::fixtures::listed_keys(&*ctx.backend, user, t).await,
        found
    );
}

/// create: 16 tasks create the same key at once, released by a barrier:
/// exactly one succeeds, the others get `AlreadyExists`, and the winner's
/// record is stored intact (and indexed for its user only). Eight rounds,
/// each on a fresh key: a create that checks for the key and then writes in
/// a separate step lets several pass the check, and a store that loses that
/// race in any round fails.
pub async fn concurrent_creates_one_winner(ctx: Ctx) {
    for round in 0..RACE_ROUNDS {
        create_race(&ctx, round).await;
    }
}

async fn create_race(ctx: &Ctx, round: usize) {
    let t = now();
    let key = crate::fixtures::fresh_key();
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for i in 0..TASKS {
        let backend = ctx.backend.clone();
        let barrier = barrier.clone();
        let r = user_record(
            t,
            &format!("user{round}-{i}"),
            format!("writer {round}-{i}").as_bytes(),
        );
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            (i, backend.create(&key, &r).await)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (i, Ok(())) => winners.push(i),
            (_, Err(Error::AlreadyExists)) => {}
            (_, Err(e)) => panic!("concurrent create: expected Ok or AlreadyExists, got {e:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one create wins");
    let w = winners[0];
    let stored = load_session(&*ctx.backend, &key, t).await;
    assert_eq!(stored.data, format!("writer {round}-{w}").as_bytes());
    assert_eq!(
        stored.user_id.as_deref(),
        Some(format!("user{round}-{w}").as_str())
    );
    for i in 0..TASKS {
        let listed =
            crate::fixtures::listed_keys(&*ctx.backend, &format!("user{round}-{i}"), t).await;
        if i == w {
            assert_eq!(listed, vec![key]);
        } else {
            assert!(
                listed.is_empty(),
                "a losing create left an index entry for user{round}-{i}"
            );
        }
    }
}

/// touch racing with saves: touches never lose a save (no read-modify-write
/// of the whole record) and never change the version. In each of 48 lockstep
/// rounds one task loads the record, both tasks meet at a barrier, then one
/// saves while the other touches: the save must succeed, and afterwards the
/// counter and the version hold every save. A touch that reads the record
/// and writes it back whole loses the save whenever it reads first, which
/// happens in some round in all but a negligible share of runs.
pub async fn concurrent_touch_never_loses_writes(ctx: Ctx) {
    let t = now();
    let key = crate::fixtures::fresh_key();
    ctx.backend
        .create(&key, &record(t, &0u64.to_le_bytes()))
        .await
        .expect("create");
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let saver = {
        let backend = ctx.backend.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            for round in 0..LOCKSTEP_ROUNDS {
                let mut r = load_session(&*backend, &key, t).await;
                r.data = (counter(&r.data) + 1).to_le_bytes().to_vec();
                barrier.wait().await;
                // Vary who goes first: from at once to a few scheduler turns late.
                for _ in 0..round % 4 {
                    tokio::task::yield_now().await;
                }
                match backend.save(&key, &r, t).await {
                    Ok(_) => {}
                    Err(e) => panic!(
                        "round {round}: a save racing a touch must succeed (a touch never \
                         changes the version), got {e:?}"
                    ),
                }
                barrier.wait().await;
            }
        })
    };
    let toucher = {
        let backend = ctx.backend.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            for j in 1..=LOCKSTEP_ROUNDS {
                let idle = crate::fixtures::at(
                    t,
                    crate::fixtures::mins(30) + std::time::Duration::from_secs(j),
                );
                let seen = crate::fixtures::at(t, std::time::Duration::from_millis(j));
                barrier.wait().await;
                assert!(
                    backend.touch(&key, idle, seen, t).await.expect("touch"),
                    "touch of a live session"
                );
                barrier.wait().await;
            }
        })
    };
    saver.await.expect("saver");
    toucher.await.expect("toucher");
    let stored = load_session(&*ctx.backend, &key, t).await;
    assert_eq!(
        counter(&stored.data),
        LOCKSTEP_ROUNDS,
        "a touch overwrote a save"
    );
    assert_eq!(
        stored.version, LOCKSTEP_ROUNDS,
        "touches must not change the version"
    );
}

/// save racing with delete: once the delete happened, no save brings the
/// session back (no resurrection under concurrency either).
pub async fn concurrent_save_and_delete_no_resurrection(ctx: Ctx) {
    let t = now();
    for round in 0..10 {
        let key = crate::fixtures::fresh_key();
        ctx.backend
            .create(&key, &user_record(t, "alice", &0u64.to_le_bytes()))
            .await
            .expect("create");
        let mut savers = Vec::new();
        for _ in 0..4 {
            let backend = ctx.backend.clone();
            savers.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let Some(Lookup::Session(mut r)) = backend.load(&key, t).await.expect("load")
                    else {
                        return;
                    };
                    r.data = (counter(&r.data) + 1).to_le_bytes().to_vec();
                    match backend.save(&key, &r, t).await {
                        Ok(_) | Err(Error::Conflict) => {}
                        Err(e) => panic!("save: {e:?}"),
                    }
                }
            }));
        }
        // Let the savers get going, then delete.
        for _ in 0..round {
            tokio::task::yield_now().await;
        }
        assert!(ctx.backend.delete(&key).await.expect("delete"));
        for s in savers {
            s.await.expect("saver");
        }
        assert!(
            ctx.backend.load(&key, t).await.expect("load").is_none(),
            "a save resurrected a deleted session"
        );
        assert!(!ctx.backend.delete(&key).await.expect("delete"));
        assert!(crate::fixtures::listed_keys(&*ctx.backend, "alice", t)
            .await
            .is_empty());
    }
}
