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
