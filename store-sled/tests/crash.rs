//! Crash test of `Durability::EveryWrite`: a child process (this test binary,
//! re-invoked with an environment variable) writes sessions and prints each
//! acknowledged operation; the parent kills it with SIGKILL at a random moment,
//! reopens the database and checks that every acknowledged write is there,
//! byte for byte (and every acknowledged delete is still a delete).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::Rng;
use session_store_core::{Lookup, SessionBackend, SessionRecord, StorageKey, Timestamp};
use session_store_sled::{Durability, SledConfig};

const CHILD_ENV: &str = "SESSION_STORE_SLED_CRASH_CHILD_DIR";
/// Upper bound on what one child writes (it is normally killed long before).
const MAX_OPS: u64 = 20_000;
const ITERATIONS: usize = 4;

/// What the child does at step `i`, deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Create(u64),
    Save(u64),
    Delete(u64),
}

fn op(i: u64) -> Op {
    // Sessions 0, 1, 2, ...: every session is created; every third created
    // session is later saved; every fifth is later deleted.
    match i % 3 {
        0 | 1 => Op::Create(i),
        _ if i % 5 == 2 => Op::Delete(i - 2),
        _ => Op::Save(i - 1),
    }
}

fn key(n: u64) -> StorageKey {
    let mut b = [0u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b[31] = 0x5a;
    StorageKey::from_bytes(b)
}

fn base(n: u64) -> SessionRecord {
    SessionRecord {
        version: 1,
        user_id: Some(format!("user-{}", n % 7)),
        created_at: Timestamp::from_millis(1_000 + n as i64),
        last_seen_at: Timestamp::from_millis(1_000 + n as i64),
        auth_time: None,
        idle_deadline: Timestamp::MAX,
        absolute_deadline: Timestamp::MAX,
        meta: format!("meta-{n}").into_bytes(),
        data: (0..(n % 300)).map(|b| (b as u8) ^ (n as u8)).collect(),
    }
}

fn saved(n: u64) -> SessionRecord {
    let mut r = base(n);
    r.version = 2;
    r.data = format!("saved-{n}").repeat(5).into_bytes();
    r
}

/// The child: runs when the environment variable is set, else does nothing.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SledConfig::new(&dir)
            .with_durability(Durability::EveryWrite)
            .build()
            .await
            .unwrap();
        let mut out = std::io::stdout().lock();
        writeln!(out, "READY").unwrap();
        for i in 0..MAX_OPS {
            let now = Timestamp::from_millis(2_000);
            match op(i) {
                Op::Create(n) => store.create(&key(n), &base(n)).await.unwrap(),
                Op::Save(n) => {
                    let mut r = saved(n);
                    r.version = 1;
                    assert_eq!(store.save(&key(n), &r, now).await.unwrap(), 2);
                }
                Op::Delete(n) => assert!(store.delete(&key(n)).await.unwrap()),
            }
            // Acknowledged: the operation returned, so it is durable.
            writeln!(out, "ACK {i}").unwrap();
            out.flush().unwrap();
        }
    });
}

/// The expected record of every session after the acknowledged ops `0..acked`.
fn model(acked: u64) -> HashMap<u64, Option<SessionRecord>> {
    let mut m = HashMap::new();
    for i in 0..acked {
        match op(i) {
            Op::Create(n) => m.insert(n, Some(base(n))),
            Op::Save(n) => m.insert(n, Some(saved(n))),
            Op::Delete(n) => m.insert(n, None),
        };
    }
    m
}

/// Runs the child test `name` on a fresh directory, kills it with SIGKILL
/// after a random delay once it is writing, and returns the directory, the
/// delay and the child's stdout lines.
fn run_and_kill(name: &str, rng: &mut impl Rng) -> (tempfile::TempDir, Duration, Vec<String>) {
    let exe = std::env::current_exe().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(&exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait (bounded) until the child has opened the database. libtest may
    // print "test name ... " on the same line first.
    let started = Instant::now();
    let mut lines = Vec::new();
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("crash child did not start");
        if line.ends_with("READY") {
            break;
        }
        lines.push(line);
        assert!(started.elapsed() < Duration::from_secs(60));
    }
    // Kill it at a random moment while it writes.
    let delay = Duration::from_millis(rng.random_range(20..400));
    std::thread::sleep(delay);
    child.kill().unwrap(); // SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child was not killed (finished early?)"
    );
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    (dir, delay, lines)
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return; // we are the child of another test
    }
    let mut rng = rand::rng();
    for iteration in 0..ITERATIONS {
        let (dir, delay, lines) = run_and_kill("crash_child", &mut rng);
        let mut acked = 0u64;
        for line in &lines {
            if let Some(i) = line.strip_prefix("ACK ") {
                let i: u64 = i.parse().unwrap();
                assert_eq!(i, acked, "acks arrive in order");
                acked = i + 1;
            }
        }

        let expected = model(acked);
        // The op in flight when the child died may or may not have happened.
        let in_flight = match op(acked) {
            Op::Create(n) | Op::Save(n) | Op::Delete(n) => n,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let now = Timestamp::from_millis(3_000);
        rt.block_on(async {
            let store = SledConfig::new(dir.path()).build().await.unwrap();
            for (n, want) in &expected {
                if *n == in_flight {
                    continue;
                }
                let got = store.load(&key(*n), now).await.unwrap();
                assert_eq!(
                    got,
                    want.clone().map(Lookup::Session),
                    "iteration {iteration}: session {n} after {acked} acknowledged ops"
                );
            }
            let got = store.load(&key(in_flight), now).await.unwrap();
            let before = expected.get(&in_flight).cloned().flatten();
            let after = model(acked + 1).remove(&in_flight).flatten();
            assert!(
                got == before.clone().map(Lookup::Session)
                    || got == after.clone().map(Lookup::Session),
                "iteration {iteration}: in-flight session {in_flight} is neither before nor after"
            );
            // The user index agrees with the records.
            for u in 0..7 {
                let listed = store.list_user(&format!("user-{u}"), now).await.unwrap();
                for s in &listed {
                    assert!(store.load(&s.key, now).await.unwrap().is_some());
                }
            }
        });
        eprintln!(
            "crash iteration {iteration}: killed after {delay:?}, {acked} acknowledged ops verified"
        );
    }
}

/// Writers running concurrently, to exercise group commit: 4 tasks on a
/// multi-threaded runtime, each creating its own sessions.
#[test]
fn crash_child_concurrent() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = SledConfig::new(&dir)
            .with_durability(Durability::EveryWrite)
            .build()
            .await
            .unwrap();
        writeln!(std::io::stdout(), "READY").unwrap();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for j in 0..MAX_OPS / WRITERS {
                        let n = w * 1_000_000 + j;
                        store.create(&key(n), &base(n)).await.unwrap();
                        writeln!(std::io::stdout(), "ACKC {n}").unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

const WRITERS: u64 = 4;

#[test]
fn every_acknowledged_concurrent_write_survives_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    let mut rng = rand::rng();
    for iteration in 0..ITERATIONS - 1 {
        let (dir, delay, lines) = run_and_kill("crash_child_concurrent", &mut rng);
        let acked: Vec<u64> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("ACKC "))
            .map(|n| n.parse().unwrap())
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = SledConfig::new(dir.path()).build().await.unwrap();
            for n in &acked {
                assert_eq!(
                    store
                        .load(&key(*n), Timestamp::from_millis(3_000))
                        .await
                        .unwrap(),
                    Some(Lookup::Session(base(*n))),
                    "iteration {iteration}: acknowledged session {n} lost or changed"
                );
            }
        });
        eprintln!(
            "concurrent crash iteration {iteration}: killed after {delay:?}, {} acknowledged creates verified",
            acked.len()
        );
    }
}
