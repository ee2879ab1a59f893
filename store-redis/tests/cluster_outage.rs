//! A master of a private three-node Redis Cluster (free loopback ports)
//! crashes: its sessions give retryable errors in bounded time, never "no
//! session", the other masters' sessions stay readable until the cluster
//! declares itself down, and the same store object recovers once the node is
//! back. Needs `redis-server` and `redis-cli`; `SESSION_STORE_SKIP_REDIS_CLUSTER=1`
//! skips.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use session_store_conformance::fixtures::{self, fresh_key};
use session_store_core::{Error, Lookup, SessionBackend, SessionRecord, Timestamp};
use session_store_redis::RedisConfig;

struct Node {
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_node(port: u16, dir: &Path) -> Node {
    std::fs::create_dir_all(dir).unwrap();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1500"])
        .arg("--cluster-config-file")
        .arg(dir.join("nodes.conf"))
        .arg("--dir")
        .arg(dir)
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (store-redis/scripts/redis-services.sh start installs it)");
    Node { child }
}

/// Three free ports whose cluster bus ports (+10000) are free too.
fn free_ports() -> Vec<u16> {
    let mut ports = Vec::new();
    for _ in 0..500 {
        let p = 20_000 + rand::random::<u16>() % 10_000;
        if !ports.contains(&p)
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
            && TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok()
        {
            ports.push(p);
            if ports.len() == 3 {
                return ports;
            }
        }
    }
    panic!("no free loopback ports");
}

fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn cluster_ok(ports: &[u16]) -> bool {
    common::eventually(Duration::from_secs(20), || async move {
        ports
            .iter()
            .all(|p| cli(*p, &["cluster", "info"]).contains("cluster_state:ok"))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_master_is_an_error_and_the_cluster_store_recovers() {
    if common::skip(true).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS_CLUSTER=1");
    }
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let dirs: Vec<PathBuf> = ports
        .iter()
        .map(|p| dir.path().join(p.to_string()))
        .collect();
    let mut nodes: Vec<Option<Node>> = ports
        .iter()
        .zip(&dirs)
        .map(|(p, d)| Some(start_node(*p, d)))
        .collect();
    let up = common::eventually(Duration::from_secs(10), || async {
        ports.iter().all(|p| cli(*p, &["ping"]).contains("PONG"))
    })
    .await;
    assert!(up, "private cluster nodes did not start");
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli --cluster create");
    assert!(created.success(), "redis-cli --cluster create failed");
    assert!(cluster_ok(&ports).await, "private cluster did not reach ok");

    let store = RedisConfig::cluster(ports.iter().map(|p| format!("redis://127.0.0.1:{p}")))
        .with_prefix(common::random_prefix())
        .with_connection_timeout(Duration::from_millis(200))
        .with_response_timeout(Duration::from_millis(300))
        .with_operation_timeout(Duration::from_secs(1))
        .with_reconnect_retries(1)
        .build()
        .await
        .expect("store on the private cluster");
    let now = Timestamp::now_utc();
    let r = fixtures::record(now, b"d");
    let keys: Vec<_> = (0..30).map(|_| fresh_key()).collect();
    for k in &keys {
        store.create(k, &r).await.unwrap();
    }

    // Crash the first master.
    drop(nodes[0].take());
    let mut failed = 0;
    let mut readable = Vec::new();
    for k in &keys {
        match tokio::time::timeout(Duration::from_secs(20), store.load(k, now)).await {
            Ok(Ok(Some(Lookup::Session(s)))) => {
                assert_eq!(s, r);
                readable.push(*k);
            }
            // The crashed master's keys, and every key once the cluster
            // declares itself down.
            Ok(Err(
                err @ Error::Backend {
                    backend: "redis",
                    operation: "load",
                    retryable: true,
                    ..
                },
            )) => {
                assert!(
                    err.to_string()
                        .starts_with(&format!("redis load ({})", store.endpoint())),
                    "{err}"
                );
                failed += 1;
            }
            Ok(other) => panic!("with a master down: {other:?}"),
            Err(_) => panic!("load hung with a master down"),
        }
    }
    assert!(failed > 0, "no session lived on the crashed master");

    // Back on the same port with the same node identity (nodes.conf); its
    // data is gone (no persistence), the others' is intact.
    nodes[0] = Some(start_node(ports[0], &dirs[0]));
    assert!(cluster_ok(&ports).await, "cluster did not heal");
    let healed = common::eventually(Duration::from_secs(20), || async {
        let mut ok = true;
        for k in &keys {
            ok &= store.load(k, now).await.is_ok();
        }
        ok
    })
    .await;
    assert!(healed, "the store did not recover");
    let mut lost = 0;
    for k in &keys {
        match store.load(k, now).await.unwrap() {
            Some(_) => {}
            None => {
                assert!(!readable.contains(k), "a healthy master lost a session");
                lost += 1;
            }
        }
    }
    assert!(
        lost > 0,
        "the crashed master's sessions are gone (no persistence)"
    );
    // Scripts run again on the restarted node (NOSCRIPT: loaded again).
    for k in &keys {
        let touched = store.touch(k, now, now, now).await.unwrap();
        if readable.contains(k) {
            assert!(touched, "a session on a healthy master can be touched");
        }
    }
    for _ in 0..10 {
        let k = fresh_key();
        let logged_in = SessionRecord {
            user_id: Some("judy".into()),
            ..r.clone()
        };
        store.create(&k, &logged_in).await.unwrap();
        assert!(store.load(&k, now).await.unwrap().is_some());
    }
    assert_eq!(store.list_user("judy", now).await.unwrap().len(), 10);
    store.delete_all().await.unwrap();
}

/// The operation deadline of the paused-master test.
const DEADLINE: Duration = Duration::from_millis(300);
/// What "within the deadline" allows on top of it (scheduling on a busy
/// 2-core machine): an upper bound that catches a hang, not a speed target.
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

/// Runs `op` and checks it answered within the deadline plus slack; a
/// hang is a failure.
async fn timed<T>(
    what: &str,
    op: impl std::future::Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    let started = std::time::Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(30), op)
        .await
        .unwrap_or_else(|_| panic!("{what} hung with a master paused"));
    let elapsed = started.elapsed();
    assert!(
        elapsed <= DEADLINE + SLACK,
        "{what} took {elapsed:?} with a master paused (deadline {DEADLINE:?})"
    );
    result
}

/// A retryable backend error of `operation` that says it timed out.
fn assert_timed_out<T: std::fmt::Debug>(operation: &str, result: &Result<T, Error>) {
    match result {
        Err(Error::Backend {
            backend: "redis",
            operation: op,
            retryable: true,
            source,
            ..
        }) => {
            assert_eq!(*op, operation, "{result:?}");
            assert!(
                source.to_string().contains("timed out"),
                "{operation}: {source}"
            );
        }
        other => panic!("{operation} on the paused master: expected a timeout, got {other:?}"),
    }
}

/// One master of a private cluster paused (`SIGSTOP`; the cluster's node
/// timeout is long, so the cluster still counts it up): every operation on
/// its slots fails with a retryable timeout within the operation deadline,
/// the other masters' sessions stay readable, and after `SIGCONT` the same
/// store object reads everything again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_fails_its_operations_within_the_deadline() {
    if common::skip(true).is_some() {
        return println!("SKIP: SESSION_STORE_SKIP_REDIS_CLUSTER=1");
    }
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports();
    let nodes: Vec<Node> = ports
        .iter()
        .map(|p| {
            let d = dir.path().join(p.to_string());
            std::fs::create_dir_all(&d).unwrap();
            let child = Command::new("redis-server")
                .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                // Long enough that the pause never marks the node failed.
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-node-timeout",
                    "60000",
                ])
                .arg("--cluster-config-file")
                .arg(d.join("nodes.conf"))
                .arg("--dir")
                .arg(&d)
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server (store-redis/scripts/redis-services.sh start installs it)");
            Node { child }
        })
        .collect();
    let up = common::eventually(Duration::from_secs(10), || async {
        ports.iter().all(|p| cli(*p, &["ping"]).contains("PONG"))
    })
    .await;
    assert!(up, "private cluster nodes did not start");
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let created = Command::new("redis-cli")
        .args(["--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("redis-cli --cluster create");
    assert!(created.success(), "redis-cli --cluster create failed");
    assert!(cluster_ok(&ports).await, "private cluster did not reach ok");

    let store = RedisConfig::cluster(ports.iter().map(|p| format!("redis://127.0.0.1:{p}")))
        .with_prefix(common::random_prefix())
        .with_operation_timeout(DEADLINE)
        .build()
        .await
        .expect("store on the private cluster");
    let now = Timestamp::now_utc();
    let r = fixtures::record(now, b"d");
    let keys: Vec<_> = (0..30).map(|_| fresh_key()).collect();
    for k in &keys {
        store.create(k, &r).await.unwrap();
    }

    let paused = Paused::pause(nodes[0].child.id());
    let mut on_paused = Vec::new();
    let mut readable = 0;
    for k in &keys {
        let result = timed("load", store.load(k, now)).await;
        match &result {
            Ok(Some(Lookup::Session(s))) => {
                assert_eq!(s, &r);
                readable += 1;
            }
            _ => {
                assert_timed_out("load", &result);
                on_paused.push(*k);
            }
        }
    }
    println!(
        "paused master: {} of {} loads timed out, {readable} answered",
        on_paused.len(),
        keys.len()
    );
    assert!(
        !on_paused.is_empty(),
        "no session lived on the paused master"
    );
    assert!(readable > 0, "the other masters' sessions stay readable");
    let victim = on_paused[0];
    assert_timed_out("save", &timed("save", store.save(&victim, &r, now)).await);
    assert_timed_out(
        "touch",
        &timed("touch", store.touch(&victim, now, now, now)).await,
    );
    assert_timed_out("delete", &timed("delete", store.delete(&victim)).await);
    // A scan walks every master in turn: it meets the paused one.
    let mut cursor = None;
    let scanned = loop {
        match timed("scan", store.scan(cursor.as_ref(), 100)).await {
            Ok(page) => match page.next {
                Some(next) => cursor = Some(next),
                None => break Ok(()),
            },
            Err(e) => break Err(e),
        }
    };
    assert_timed_out("scan", &scanned);
    drop(paused);

    // The same store object reads every session again (but the victim: the
    // DEL sent before its deadline passed runs once the master continues).
    let healed = common::eventually(Duration::from_secs(20), || async {
        let mut ok = store.load(&victim, now).await.is_ok();
        for k in keys.iter().filter(|k| **k != victim) {
            ok &= matches!(store.load(k, now).await, Ok(Some(_)));
        }
        ok
    })
    .await;
    assert!(healed, "the store did not recover after SIGCONT");
    store.delete_all().await.unwrap();
    drop(nodes);
}
