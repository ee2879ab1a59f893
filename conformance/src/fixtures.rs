//! Small helpers shared by the checks, public so that backend authors can
//! write extra checks of their own in the same style.

use std::time::Duration;

use session_store_core::{
    Lookup, SessionBackend, SessionRecord, SessionToken, StorageKey, Timestamp,
};

/// A base instant for a check: the real current time (so that server-side
/// TTLs computed from deadlines stay in the future).
pub fn now() -> Timestamp {
    Timestamp::now_utc()
}

/// `n` minutes.
pub const fn mins(n: u64) -> Duration {
    Duration::from_secs(n * 60)
}

/// `t + d`.
pub fn at(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(d)
}

/// The storage key of a fresh random token.
pub fn fresh_key() -> StorageKey {
    SessionToken::generate().storage_key()
}

/// A rotation successor for `from`, honouring the backend's
/// [`rotation_affinity_bits`](SessionBackend::rotation_affinity_bits) (a
/// clustered store may reject any other successor).
pub fn successor_token(backend: &dyn SessionBackend, from: &StorageKey) -> SessionToken {
    SessionToken::generate_with_affinity(from, backend.rotation_affinity_bits())
}

/// The storage key of [`successor_token`].
pub fn successor_key(backend: &dyn SessionBackend, from: &StorageKey) -> StorageKey {
    successor_token(backend, from).storage_key()
}

/// Client metadata every fixture record carries, so that each scenario
/// (create, save, rotate, list) moves metadata along with the data.
pub const FIXTURE_META: &[u8] = b"{\"ip\":\"192.0.2.1\",\"label\":\"fixture device\"}";

/// An anonymous record created at `t` with 30 min idle and 12 h absolute
/// deadlines and [`FIXTURE_META`] as client metadata.
pub fn record(t: Timestamp, data: &[u8]) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: None,
        created_at: t,
        last_seen_at: t,
        auth_time: None,
        idle_deadline: t.saturating_add(Duration::from_secs(30 * 60)),
        absolute_deadline: t.saturating_add(Duration::from_secs(12 * 3600)),
        meta: FIXTURE_META.to_vec(),
        data: data.to_vec(),
    }
}

/// A record of `user` created (and authenticated) at `t`, deadlines as in [`record`].
pub fn user_record(t: Timestamp, user: &str, data: &[u8]) -> SessionRecord {
    SessionRecord {
        user_id: Some(user.to_owned()),
        auth_time: Some(t),
        ..record(t, data)
    }
}

/// Loads `key` and expects a live session.
///
/// # Panics
/// If the backend errors or finds no session.
pub async fn load_session(
    backend: &dyn SessionBackend,
    key: &StorageKey,
    now: Timestamp,
) -> SessionRecord {
    match backend.load(key, now).await.expect("load") {
        Some(Lookup::Session(r)) => r,
        other => panic!("expected a live session, found {other:?}"),
    }
}

/// Loads `key` and expects nothing.
///
/// # Panics
/// If the backend errors or finds anything.
pub async fn assert_absent(backend: &dyn SessionBackend, key: &StorageKey, now: Timestamp) {
    let found = backend.load(key, now).await.expect("load");
    assert!(
        found.is_none(),
        "expected nothing under the key, found {found:?}"
    );
}

/// The keys of `user`'s live sessions at `now`, in listing order.
///
/// # Panics
/// If the backend errors.
pub async fn listed_keys(
    backend: &dyn SessionBackend,
    user: &str,
    now: Timestamp,
) -> Vec<StorageKey> {
    backend
        .list_user(user, now)
        .await
        .expect("list_user")
        .into_iter()
        .map(|s| s.key)
        .collect()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// How many backend calls a task looping over `loops` calls on the session
/// under `key` (loads, or loads and compare-and-swap saves alternating when
/// `saves`, starting from `record`, which must be stored with its version)
/// had completed when another task, spawned beside it and yielding once,
/// first ran. Run it on a current-thread tokio runtime: a store whose calls
/// complete in their first poll (a statement on the calling thread) must
/// still spend tokio's cooperative budget, as tokio's own sockets do, or the
/// loop never gives its thread back and the answer is `loops`.
///
/// # Panics
/// If a call fails, a load finds nothing, or a task panics.
pub async fn calls_done_when_a_yielding_task_runs(
    backend: std::sync::Arc<dyn SessionBackend>,
    key: StorageKey,
    mut record: SessionRecord,
    loops: usize,
    saves: bool,
) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let done = Arc::new(AtomicUsize::new(0));
    let looping = tokio::spawn({
        let done = done.clone();
        async move {
            let now = now();
            for i in 0..loops {
                if saves && i % 2 == 1 {
                    record.version = backend.save(&key, &record, now).await.expect("save");
                } else {
                    assert!(backend.load(&key, now).await.expect("load").is_some());
                }
                done.store(i + 1, Ordering::SeqCst);
            }
        }
    });
    let other = tokio::spawn({
        let done = done.clone();
        async move {
            tokio::task::yield_now().await;
            done.load(Ordering::SeqCst)
        }
    });
    let seen = other.await.expect("the yielding task");
    looping.await.expect("the looping task");
    assert_eq!(done.load(Ordering::SeqCst), loops, "every call was made");
    seen
}
