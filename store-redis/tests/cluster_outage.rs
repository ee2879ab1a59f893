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
