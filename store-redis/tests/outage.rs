//! Outages on a private `redis-server` (a free loopback port in
//! 20000-30000): a down server is a retryable error in bounded time, never
//! "no session", and the same store object works again once the server is
//! back. Also shows what persistence changes across a crash.
//!
//! Needs `redis-server` on the PATH (`store-redis/scripts/redis-services.sh
//! start` installs it); `SESSION_STORE_SKIP_REDIS=1` skips.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use session_store_conformance::fixtures::{self, fresh_key};
use session_store_core::{
    Error, Lookup, Rotation, SessionBackend, SessionRecord, SessionToken, Timestamp,
};
use session_store_redis::{RedisConfig, RedisStore, AFFINITY_BITS};

/// A redis-server child process, killed on drop.
struct Server {
    child: Child,
}

impl Server {
    fn start(port: u16, dir: &Path, persistence: &[&str]) -> Server {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--dir", &dir.display().to_string()])
            .args(persistence)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}); install it with \
                     `store-redis/scripts/redis-services.sh start`, or set SESSION_STORE_SKIP_REDIS=1"
                )
            });
        Server { child }
    }

    /// SIGKILL: a crash, no shutdown save.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    for _ in 0..200 {
        let port = 20_000 + rand::random::<u16>() % 10_000;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000-30000");
}

async fn wait_until_up(port: u16) {
    let up = common::eventually(Duration::from_secs(10), || async move {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
            return false;
        };
        match client.get_multiplexed_async_connection().await {
            Ok(mut c) => redis::cmd("PING")
                .query_async::<String>(&mut c)
                .await
                .is_ok(),
            Err(_) => false,
        }
    })
    .await;
    assert!(up, "private redis-server on port {port} did not come up");
}

async fn store_on(port: u16) -> RedisStore {
    store_with_response_timeout(port, Duration::from_millis(300)).await
}

/// A store on the private server whose commands may take `response` (the
/// operation bound is three times that).
async fn store_with_response_timeout(port: u16, response: Duration) -> RedisStore {
    RedisConfig::new(format!("redis://127.0.0.1:{port}"))
        .with_prefix(common::random_prefix())
        .with_connection_timeout(Duration::from_millis(200))
        .with_response_timeout(response)
        .with_operation_timeout(response * 3)
        .with_reconnect_retries(1)
        .build()
        .await
        .expect("store on the private server")
}

fn record(now: Timestamp) -> SessionRecord {
    fixtures::user_record(now, "ivan", b"before the outage")
}

const NO_PERSISTENCE: &[&str] = &["--save", "", "--appendonly", "no"];
const AOF_ALWAYS: &[&str] = &[
    "--save",
    "",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
];

/// Asserts a retryable backend error that names the backend, the operation
/// `what` and the server `port`, and that the answer came at all (the outer
/// bound is far above the configured operation timeout of 1 s).
async fn assert_down<T: std::fmt::Debug>(
    what: &str,
    port: u16,
    op: impl std::future::Future<Output = Result<T, Error>>,
) {
    match tokio::time::timeout(Duration::from_secs(20), op).await {
        Ok(Err(
            err @ Error::Backend {
                backend: "redis",
                retryable: true,
                ..
            },
        )) => {
            let shown = err.to_string();
            assert!(
                shown.starts_with(&format!("redis {what} (redis://127.0.0.1:{port})")),
                "{what}: {shown}"
            );
        }
        Ok(other) => {
            panic!("{what} with the server down: expected a retryable Backend error, got {other:?}")
        }
        Err(_) => panic!("{what} with the server down hung"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_is_an_error_and_the_store_reconnects() {
    if common::skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(port, dir.path(), NO_PERSISTENCE);
    wait_until_up(port).await;
    let store = store_on(port).await;
    let now = Timestamp::now_utc();
    let k = fresh_key();
    let r = record(now);
    store.create(&k, &r).await.unwrap();
    assert!(store.load(&k, now).await.unwrap().is_some());

    server.kill();
    let to = SessionToken::generate_with_affinity(&k, AFFINITY_BITS).storage_key();
    let rot = Rotation {
        from: k,
        to,
        record: r.clone(),
        grace: None,
    };
    // Twice: once on the broken connection, once while reconnecting.
    for _ in 0..2 {
        assert_down("load", port, store.load(&k, now)).await;
        assert_down("save", port, store.save(&k, &r, now)).await;
        assert_down("touch", port, store.touch(&k, now, now, now)).await;
        assert_down("create", port, store.create(&fresh_key(), &r)).await;
        assert_down("rotate", port, store.rotate(&rot, now)).await;
        assert_down("delete", port, store.delete(&k)).await;
        assert_down("list_user", port, store.list_user("ivan", now)).await;
        assert_down("delete_user", port, store.delete_user("ivan", None, now)).await;
        assert_down("delete_all", port, store.delete_all()).await;
        assert_down("ping", port, store.ping()).await;
        assert_down("dump_raw", port, store.dump_raw()).await;
    }

    // Back on the same port: the same store object reconnects by itself.
    let server = Server::start(port, dir.path(), NO_PERSISTENCE);
    wait_until_up(port).await;
    let back = common::eventually(Duration::from_secs(15), || async {
        store.ping().await.is_ok()
    })
    .await;
    assert!(back, "the store did not reconnect");
    // Without persistence the data written before the outage is gone: the
    // user is logged out (None, not an error: the server answered).
    assert_eq!(store.load(&k, now).await.unwrap(), None);
    let k2 = fresh_key();
    store.create(&k2, &r).await.unwrap();
    assert!(matches!(
        store.load(&k2, now).await.unwrap(),
        Some(Lookup::Session(s)) if s == r
    ));
    assert_eq!(store.list_user("ivan", now).await.unwrap().len(), 1);
    store.delete_all().await.unwrap();
    server.kill();
}

/// With `--appendonly yes --appendfsync always`, an acknowledged write
/// survives a crash (SIGKILL) and the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_only_always_keeps_sessions_across_a_crash() {
    if common::skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(port, dir.path(), AOF_ALWAYS);
    wait_until_up(port).await;
    // Every write waits for an fsync here, which on a loaded machine can
    // take longer than the short bound of the outage tests; this test is
    // about durability, not about the bound.
    let store = store_with_response_timeout(port, Duration::from_secs(5)).await;
    let now = Timestamp::now_utc();
    let k = fresh_key();
    let r = record(now);
    store.create(&k, &r).await.unwrap();
    let v = store.save(&k, &r, now).await.unwrap();
    server.kill();

    let server = Server::start(port, dir.path(), AOF_ALWAYS);
    wait_until_up(port).await;
    let back = common::eventually(Duration::from_secs(15), || async {
        store.ping().await.is_ok()
    })
    .await;
    assert!(back, "the store did not reconnect");
    match store.load(&k, now).await.unwrap() {
        Some(Lookup::Session(s)) => {
            assert_eq!(s.version, v);
            assert_eq!(s.data, r.data);
        }
        other => panic!("session lost despite appendfsync always: {other:?}"),
    }
    assert_eq!(store.list_user("ivan", now).await.unwrap().len(), 1);
    store.delete_all().await.unwrap();
    server.kill();
}

/// Credentials in the URL pass through to the server; a wrong password is a
/// permanent error; the password never shows in `Debug`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_in_the_url_authenticates() {
    if common::skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut args = NO_PERSISTENCE.to_vec();
    args.extend(["--requirepass", "s3cret-pw"]);
    let server = Server::start(port, dir.path(), &args);
    let up = common::eventually(Duration::from_secs(10), || async move {
        TcpListener::bind(("127.0.0.1", port)).is_err()
    })
    .await;
    assert!(up, "private redis-server did not start");

    let config = RedisConfig::new(format!("redis://:s3cret-pw@127.0.0.1:{port}"))
        .with_prefix(common::random_prefix());
    assert!(!format!("{config:?}").contains("s3cret-pw"));
    let store = common::eventually(Duration::from_secs(10), || {
        let c = config.clone();
        async move { c.build().await.is_ok() }
    })
    .await;
    assert!(store, "could not connect with the password");
    let store = config.clone().build().await.unwrap();
    let now = Timestamp::now_utc();
    let k = fresh_key();
    store.create(&k, &record(now)).await.unwrap();
    assert!(store.load(&k, now).await.unwrap().is_some());
    assert!(!format!("{store:?}").contains("s3cret-pw"));

    let err = RedisConfig::new(format!("redis://:wrong-pw@127.0.0.1:{port}"))
        .with_prefix(common::random_prefix())
        .with_reconnect_retries(0)
        .build()
        .await
        .expect_err("wrong password");
    assert!(
        matches!(
            err,
            Error::Backend {
                backend: "redis",
                operation: "connect",
                retryable: false,
                ..
            }
        ),
        "{err:?}"
    );
    let shown = format!("{err:?} {err}");
    assert!(
        !shown.contains("s3cret-pw") && !shown.contains("wrong-pw"),
        "{shown}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("redis connect (redis://:***@127.0.0.1:{port})")),
        "{err}"
    );
    store.delete_all().await.unwrap();
    server.kill();
}

// ---------------------------------------------------------------------------
// A paused server (SIGSTOP): the operation deadline.
// ---------------------------------------------------------------------------

/// The operation deadline of the paused-server test.
const DEADLINE: Duration = Duration::from_millis(300);
/// What "within the deadline" allows on top of it (scheduling on a busy
/// 2-core machine): an upper bound that catches a hang or a wait on some
/// other, longer timeout, not a speed target.
const SLACK: Duration = Duration::from_secs(2);

/// A process stopped with `SIGSTOP`; continued on drop, even when the test
/// fails.
struct Paused(u32);

impl Paused {
    fn pause(pid: u32) -> Paused {
        let status = Command::new("kill")
            .args(["-STOP", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP {pid} failed");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

/// `result` is a retryable backend error of `operation` that said it timed
/// out, and came within the deadline plus slack.
fn assert_deadline<T: std::fmt::Debug>(
    operation: &str,
    started: std::time::Instant,
    result: Result<T, Error>,
) {
    let elapsed = started.elapsed();
    match &result {
        Err(Error::Backend {
            backend,
            operation: op,
            retryable: true,
            source,
            ..
        }) => {
            assert_eq!(*backend, "redis", "{operation}: {result:?}");
            assert_eq!(*op, operation, "{result:?}");
            assert!(
                source.to_string().contains("timed out"),
                "{operation}: the source says it timed out: {source}"
            );
        }
        other => panic!(
            "{operation} on a paused server: expected a retryable backend error, got {other:?}"
        ),
    }
    println!("paused server: {operation} failed after {elapsed:?}");
    assert!(
        elapsed <= DEADLINE + SLACK,
        "{operation} took {elapsed:?} on a paused server (deadline {DEADLINE:?})"
    );
}

/// Every operation that talks to the server (`cleanup_expired` does not:
/// Redis expires keys itself), each on its own clock. Only a victim session
/// and unused keys: a script already sent runs when the server continues.
async fn every_operation_times_out(store: &RedisStore, victim: session_store_core::StorageKey) {
    let fresh = fresh_key();
    let rec = fixtures::user_record(fixtures::now(), "victim", b"x");
    let to = SessionToken::generate_with_affinity(&victim, AFFINITY_BITS).storage_key();
    let rotation = Rotation {
        from: victim,
        to,
        record: rec.clone(),
        grace: None,
    };
    let now = fixtures::now();
    macro_rules! check {
        ($op:literal, $call:expr) => {{
            let started = std::time::Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(30), $call)
                .await
                .expect(concat!($op, " hung on a paused server"));
            assert_deadline($op, started, result);
        }};
    }
    check!("load", store.load(&victim, now));
    check!("create", store.create(&fresh, &rec));
    check!("save", store.save(&victim, &rec, now));
    check!("touch", store.touch(&victim, now, now, now));
    check!("rotate", store.rotate(&rotation, now));
    check!("delete", store.delete(&fresh));
    check!("delete_user", store.delete_user("nobody", None, now));
    check!("list_user", store.list_user("victim", now));
    check!("scan", store.scan(None, 10));
}

/// A paused server (`SIGSTOP`: the connection stays open, nothing answers,
/// a new connection is accepted by the kernel and then hangs) is the outage
/// a deadline is for. Every operation fails with a retryable backend error
/// saying it timed out, within the operation deadline, though the response
/// timeout (1 s by default) is longer; so does building a new store. After
/// `SIGCONT` the same store object works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_fails_every_operation_within_the_deadline() {
    if common::skip(false).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS=1");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Server::start(port, dir.path(), NO_PERSISTENCE);
    wait_until_up(port).await;
    let prefix = common::random_prefix();
    let config = || {
        RedisConfig::new(format!("redis://127.0.0.1:{port}"))
            .with_prefix(prefix.clone())
            .with_operation_timeout(DEADLINE)
    };
    let store = config().build().await.expect("store on the private server");
    let now = fixtures::now();
    let kept = fresh_key();
    let kept_record = fixtures::user_record(now, "alice", b"kept");
    store.create(&kept, &kept_record).await.unwrap();
    let victim = fresh_key();
    store
        .create(&victim, &fixtures::user_record(now, "victim", b"v"))
        .await
        .unwrap();

    let paused = Paused::pause(server.child.id());
    for _ in 0..2 {
        every_operation_times_out(&store, victim).await;
    }
    let started = std::time::Instant::now();
    let built = tokio::time::timeout(Duration::from_secs(30), config().build())
        .await
        .expect("build hung on a paused server");
    assert_deadline("connect", started, built);
    drop(paused);

    // The same store object works again at once. The paused server now
    // answers every command the timed-out operations sent; the multiplexed
    // connection must match those late replies to the abandoned requests and
    // drop them, never hand one to a new command. Several reads in a row,
    // each must get its own answer.
    for _ in 0..3 {
        match store.load(&kept, now).await {
            Ok(Some(Lookup::Session(found))) => assert_eq!(found, kept_record),
            other => panic!("after SIGCONT: {other:?}"),
        }
        assert_eq!(store.load(&fresh_key(), now).await.unwrap(), None);
    }
    let key = fresh_key();
    store
        .create(&key, &fixtures::user_record(now, "alice", b"after"))
        .await
        .unwrap();
    assert!(store.load(&key, now).await.unwrap().is_some());
    assert!(!store.list_user("alice", now).await.unwrap().is_empty());
    drop(server);
}
