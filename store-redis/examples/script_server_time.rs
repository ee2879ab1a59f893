//! Redis's own server time per call of the store's scripts, run by the real
//! store code (`RedisStore::save`, `touch`, `create`, `rotate`), next to a raw
//! `SET ... PXAT` of the same value: for each operation `CONFIG RESETSTAT`,
//! `n` calls one after another (as a request does them), then `usec` and
//! `calls` of `INFO commandstats`.
//!
//! ```text
//! redis-server --port 6390 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes
//! cargo run -p session-store-redis --release --example script_server_time -- \
//!     redis://127.0.0.1:6390 [n] [rounds]
//! ```
//!
//! With `CALLGRIND_PID` and `CALLGRIND_DIR` set (a private `redis-server`
//! under `valgrind --tool=callgrind --callgrind-out-file=DIR/cg.out`) it adds
//! the server's instructions per operation (whole process, so set `hz 1`).
//!
//! It resets the server's statistics: point it at a private server, never
//! at one whose `INFO commandstats` someone else reads. The record is the
//! benchmarks' (a 1 KiB string of data, small metadata, a user id).
use std::collections::BTreeMap;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use session_store_core::{Rotation, SessionBackend, SessionRecord, SessionToken, Timestamp};
use session_store_redis::{RedisConfig, RedisStore, AFFINITY_BITS};

fn record(now: Timestamp, user: Option<&str>) -> SessionRecord {
    SessionRecord {
        version: 0,
        user_id: user.map(str::to_owned),
        created_at: now,
        last_seen_at: now,
        auth_time: Some(now),
        idle_deadline: now.saturating_add(Duration::from_secs(1800)),
        absolute_deadline: now.saturating_add(Duration::from_secs(8 * 3600)),
        meta: b"{\"ip\":\"127.0.0.1\"}".to_vec(),
        data: vec![b'x'; 1024],
    }
}

/// `INFO commandstats` as command → (calls, usec).
async fn stats(
    raw: &mut MultiplexedConnection,
) -> Result<BTreeMap<String, (u64, u64)>, Box<dyn std::error::Error>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(raw)
        .await?;
    let mut out = BTreeMap::new();
    for line in info.lines() {
        let Some(rest) = line.strip_prefix("cmdstat_") else {
            continue;
        };
        let Some((name, fields)) = rest.split_once(':') else {
            continue;
        };
        let field = |key: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        out.insert(name.to_owned(), (field("calls"), field("usec")));
    }
    Ok(out)
}

/// Prints the server time per operation of the commands the client sent
/// (`top`; a script's own time covers the commands it runs, listed after it
/// per call).
fn report(op: &str, n: usize, s: &BTreeMap<String, (u64, u64)>, top: &str, ir: Option<f64>) {
    let (calls, usec) = s.get(top).copied().unwrap_or((0, 0));
    let mut line = format!(
        "{op:<20} {top} {:6.2} µs/call, {:.1} calls/op",
        usec as f64 / calls.max(1) as f64,
        calls as f64 / n as f64
    );
    if let Some(ir) = ir {
        line.push_str(&format!(", {ir:7.0} Ir/op"));
    }
    line.push_str("   inner:");
    for (name, (calls, usec)) in s {
        if name != top && name != "config|resetstat" && name != "script|load" {
            line.push_str(&format!(" {name} {:.2}", *usec as f64 / *calls as f64));
        }
    }
    println!("{line}");
}

/// With `CALLGRIND_PID` set (a `redis-server` under `valgrind
/// --tool=callgrind`): zeroes its counters.
fn cg_zero() {
    if let Ok(pid) = std::env::var("CALLGRIND_PID") {
        let _ = std::process::Command::new("callgrind_control")
            .args(["-z", &pid])
            .output();
    }
}

/// With `CALLGRIND_PID` set: dumps the counters and returns the
/// instructions since [`cg_zero`], per operation. The dump goes to the
/// file valgrind was told (`--callgrind-out-file=DIR/cg.out`), read from
/// `CALLGRIND_DIR`.
fn cg_per_op(n: usize) -> Option<f64> {
    let pid = std::env::var("CALLGRIND_PID").ok()?;
    let dir = std::env::var("CALLGRIND_DIR").ok()?;
    let list = || -> std::collections::BTreeSet<std::path::PathBuf> {
        std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    };
    let before = list();
    std::process::Command::new("callgrind_control")
        .args(["-d", &pid])
        .output()
        .ok()?;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        for path in list().difference(&before) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if let Some(total) = text.lines().find_map(|l| l.strip_prefix("totals: ")) {
                let _ = std::fs::remove_file(path);
                return Some(total.trim().parse::<f64>().ok()? / n as f64);
            }
        }
    }
    None
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: script_server_time URL [n] [rounds]")?;
    let n: usize = args.next().map_or(Ok(5000), |a| a.parse())?;
    let rounds: usize = args.next().map_or(Ok(3), |a| a.parse())?;
    let prefix = format!("script-time:{:08x}", rand::random::<u32>());
    let store = RedisConfig::new(url.clone())
        .with_prefix(prefix.clone())
        .build()
        .await?;
    let mut raw = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let outcome = run(&store, &mut raw, &prefix, n, rounds).await;
    store.delete_all().await?;
    let _: () = redis::cmd("DEL")
        .arg(format!("{{{prefix}:raw}}"))
        .query_async(&mut raw)
        .await?;
    outcome
}

async fn run(
    store: &RedisStore,
    raw: &mut MultiplexedConnection,
    prefix: &str,
    n: usize,
    rounds: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let now = Timestamp::now_utc();
    let user = record(now, Some("bench-user"));
    let anon = record(now, None);
    let raw_key = format!("{{{prefix}:raw}}");
    let value = vec![b'x'; 1166];
    let pxat = user.idle_deadline.as_millis() + 60_000;
    for round in 0..rounds {
        println!("round {round}, {n} operations each");

        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(raw)
            .await?;
        cg_zero();
        for _ in 0..n {
            let _: () = redis::cmd("SET")
                .arg(&raw_key)
                .arg(&value)
                .arg("PXAT")
                .arg(pxat)
                .query_async(raw)
                .await?;
        }
        let ir = cg_per_op(n);
        report("raw SET PXAT", n, &stats(raw).await?, "set", ir);

        for (op, base) in [("save (user)", &user), ("save (anonymous)", &anon)] {
            let key = SessionToken::generate().storage_key();
            store.create(&key, base).await?;
            let mut r = base.clone();
            let _: () = redis::cmd("CONFIG")
                .arg("RESETSTAT")
                .query_async(raw)
                .await?;
            cg_zero();
            for _ in 0..n {
                r.version = store.save(&key, &r, now).await?;
            }
            let ir = cg_per_op(n);
            report(op, n, &stats(raw).await?, "evalsha", ir);
        }

        let key = SessionToken::generate().storage_key();
        store.create(&key, &user).await?;
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(raw)
            .await?;
        cg_zero();
        for i in 0..n {
            let later = now.saturating_add(Duration::from_millis(i as u64 + 1));
            let idle = later.saturating_add(Duration::from_secs(1800));
            assert!(store.touch(&key, idle, later, now).await?);
        }
        let ir = cg_per_op(n);
        report("touch (moves both)", n, &stats(raw).await?, "evalsha", ir);

        let keys: Vec<_> = (0..n)
            .map(|_| SessionToken::generate().storage_key())
            .collect();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(raw)
            .await?;
        cg_zero();
        for key in &keys {
            store.create(key, &user).await?;
        }
        let ir = cg_per_op(n);
        report("create (user)", n, &stats(raw).await?, "evalsha", ir);
        for key in &keys {
            store.delete(key).await?;
        }

        // Anonymous sessions rotated without grace (a user would add the
        // index script's call).
        let keys: Vec<_> = (0..n)
            .map(|_| SessionToken::generate().storage_key())
            .collect();
        for key in &keys {
            store.create(key, &anon).await?;
        }
        let rotations: Vec<_> = keys
            .iter()
            .map(|from| Rotation {
                from: *from,
                to: SessionToken::generate_with_affinity(from, AFFINITY_BITS).storage_key(),
                record: anon.clone(),
                grace: None,
            })
            .collect();
        let _: () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query_async(raw)
            .await?;
        cg_zero();
        for rotation in &rotations {
            store.rotate(rotation, now).await?;
        }
        let ir = cg_per_op(n);
        report("rotate (anonymous)", n, &stats(raw).await?, "evalsha", ir);
        for rotation in &rotations {
            store.delete(&rotation.to).await?;
        }
    }
    Ok(())
}
