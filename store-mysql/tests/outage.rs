//! Outage: a private MariaDB instance is killed under a live store and
//! started again. While it is down every operation fails with a retryable
//! backend error within the operation timeout (never "no session");
//! afterwards the same store object works again and every acknowledged
//! write is there.
//!
//! The instance is a `mariadbd` of its own: a data directory initialised by
//! `mariadb-install-db` in a temp dir, its own socket, a free loopback port,
//! no grant tables (nobody else can reach it). It is started and stopped by
//! the test; the shared server on 3306 is never touched.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use session_store_conformance::fixtures::{now, user_record};
use session_store_core::{
    Error, Lookup, Rotation, SessionBackend, SessionRecord, SessionToken, StorageKey,
};
use session_store_mysql::{MySqlConfig, MySqlStore};
use sqlx::Connection as _;

/// The store's client-side bound on one operation.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// What "within the bound" allows on top of it (scheduling on a busy
/// 2-core machine).
const SLACK: Duration = Duration::from_secs(2);

fn program(name: &str) -> PathBuf {
    for dir in ["/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    panic!(
        "{name} not found: install MariaDB (store-mysql/scripts/mysql-service.sh does) \
         or set SESSION_STORE_SKIP_MYSQL=1"
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A private MariaDB instance; killed (and its temp dir removed) on drop,
/// even when the test fails.
struct Instance {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
}

/// A loopback port no other instance of this test process was given: two
/// tests run at once, and two `bind(0)` calls can hand out the same port
/// once the first listener is closed.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

impl Instance {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The instance's own temp dir. MariaDB names its internal temporary
    /// tables `#sql-temptable-*` in `--tmpdir` (by default `/tmp`) and every
    /// server removes such files from its tmpdir when it starts: with a
    /// shared `/tmp`, one test's server starting deleted the other test's
    /// bootstrap tables mid-install ("Unknown table 'mysql.tmp_user_sys'"),
    /// and could do the same to the shared instance's. Each private
    /// instance therefore keeps its temporary files in its own directory.
    fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    fn user_args() -> Vec<String> {
        // mariadbd refuses to run as root unless told to.
        if is_root() {
            vec!["--user=root".to_owned()]
        } else {
            Vec::new()
        }
    }

    fn init() -> Instance {
        let dir = tempfile::Builder::new()
            .prefix("ss-mysql-outage")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let instance = Instance {
            dir,
            port,
            server: None,
        };
        std::fs::create_dir_all(instance.tmp()).expect("instance tmpdir");
        let out = Command::new(program("mariadb-install-db"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", instance.data().display()))
            .arg(format!("--tmpdir={}", instance.tmp().display()))
            .args(Self::user_args())
            .args(["--skip-test-db", "--auth-root-authentication-method=normal"])
            .output()
            .expect("run mariadb-install-db");
        assert!(
            out.status.success(),
            "mariadb-install-db failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        instance
    }

    /// Starts the server and waits until it answers on its port.
    fn start(&mut self) {
        assert!(self.server.is_none(), "already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log())
            .expect("server log");
        let child = Command::new(program("mariadbd"))
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .arg(format!("--tmpdir={}", self.tmp().display()))
            .arg(format!(
                "--socket={}",
                self.dir.path().join("sock").display()
            ))
            .arg(format!(
                "--pid-file={}",
                self.dir.path().join("pid").display()
            ))
            .arg(format!("--port={}", self.port))
            .args(Self::user_args())
            .args([
                "--bind-address=127.0.0.1",
                "--skip-grant-tables",
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=32M",
                // Durable commits, as a production server has them.
                "--innodb-flush-log-at-trx-commit=1",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .server
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "mariadbd exited ({status}):\n{}",
                    std::fs::read_to_string(self.log()).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "mariadbd did not listen within 60 s:\n{}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The server on the port is this one: a port another instance of
        // this process took meanwhile would have this server exit on its
        // bind while the loop above reached the other one (and a pause
        // would then stop a process that serves nothing). Seen once in CI:
        // a load answered after `SIGSTOP`.
        let out = Command::new(program("mariadb"))
            .args(["--no-defaults", "--protocol=tcp", "-h", "127.0.0.1"])
            .arg(format!("--port={}", self.port))
            .args(["-u", "root", "-N", "-B", "-e", "SELECT @@datadir"])
            .output()
            .expect("run mariadb");
        let answered = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let ours = self.data().canonicalize().expect("data dir");
        assert!(
            Path::new(answered.trim_end_matches('/'))
                .canonicalize()
                .is_ok_and(|d| d == ours),
            "port {} is answered by the server with datadir {answered:?} ({}), not this instance's {}",
            self.port,
            String::from_utf8_lossy(&out.stderr).trim(),
            ours.display()
        );
        assert!(
            self.server
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(None))),
            "mariadbd exited after it answered"
        );
    }

    /// A crash: SIGKILL, no shutdown.
    fn kill(&mut self) {
        let mut child = self.server.take().expect("running");
        child.kill().expect("kill mariadbd");
        child.wait().expect("reap mariadbd");
    }

    fn url(&self, database: &str) -> String {
        format!("mysql://root@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn config(url: &str) -> MySqlConfig {
    MySqlConfig::new(url)
        .with_max_connections(4)
        .with_acquire_timeout(Duration::from_millis(500))
        .with_lock_wait_timeout(Some(Duration::from_secs(2)))
        .with_operation_timeout(OPERATION_TIMEOUT)
}

/// Runs every operation once; each must fail with a retryable backend
/// error naming this backend, within the operation timeout.
async fn every_operation_fails(store: &MySqlStore, key: StorageKey) {
    let fresh = SessionToken::generate().storage_key();
    let rec = user_record(now(), "alice", b"x");
    let rotation = Rotation {
        from: key,
        to: fresh,
        record: rec.clone(),
        grace: None,
    };
    let mut results: Vec<(&str, Duration, Result<(), Error>)> = Vec::new();
    macro_rules! run {
        ($name:literal, $op:expr) => {{
            let started = Instant::now();
            let result = $op.await.map(|_| ());
            results.push(($name, started.elapsed(), result));
        }};
    }
    run!("load", store.load(&key, now()));
    run!("create", store.create(&fresh, &rec));
    run!("save", store.save(&key, &rec, now()));
    run!("touch", store.touch(&key, now(), now(), now()));
    run!("rotate", store.rotate(&rotation, now()));
    run!("delete", store.delete(&fresh));
    run!("delete_user", store.delete_user("nobody", None, now()));
    run!("list_user", store.list_user("alice", now()));
    run!("delete_all", store.delete_all());
    run!("cleanup_expired", store.cleanup_expired(now(), 10));
    run!("migrate", store.migrate());
    for (op, elapsed, result) in results {
        assert!(
            elapsed <= OPERATION_TIMEOUT + SLACK,
            "{op} took {elapsed:?} during the outage"
        );
        match result {
            Err(Error::Backend {
                backend: "mysql",
                retryable: true,
                ..
            }) => {}
            other => {
                panic!("{op} during the outage must be a retryable backend error, got {other:?}")
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_fails_loudly_and_recovers_with_every_acknowledged_write() {
    if common::skip("outage_fails_loudly_and_recovers_with_every_acknowledged_write") {
        return;
    }
    let mut instance = Instance::init();
    instance.start();
    let mut setup = sqlx::MySqlConnection::connect(&instance.url("mysql"))
        .await
        .expect("connect to the private instance");
    sqlx::query("CREATE DATABASE test")
        .execute(&mut setup)
        .await
        .unwrap();
    drop(setup);
    let store = config(&instance.url("test"))
        .build()
        .await
        .expect("connect to the private instance");
    store.migrate().await.unwrap();

    // Acknowledged writes: creates, a save on every other session, a
    // rotation of every fifth.
    let mut acknowledged: Vec<(StorageKey, SessionRecord)> = Vec::new();
    for i in 0..40 {
        let mut key = SessionToken::generate().storage_key();
        let mut rec = user_record(now(), "alice", format!("session {i}").as_bytes());
        store.create(&key, &rec).await.unwrap();
        if i % 2 == 0 {
            rec.data = format!("saved {i}").into_bytes();
            rec.version = store.save(&key, &rec, now()).await.unwrap();
        }
        if i % 5 == 0 {
            let to = SessionToken::generate().storage_key();
            let rotation = Rotation {
                from: key,
                to,
                record: rec.clone(),
                grace: None,
            };
            rec.version = store.rotate(&rotation, now()).await.unwrap();
            key = to;
        }
        acknowledged.push((key, rec));
    }
    // Warm the whole pool so the outage also hits idle, now-stale connections.
    let warm =
        futures::future::join_all((0..8).map(|_| store.load(&acknowledged[0].0, now()))).await;
    assert!(warm.iter().all(|r| r.is_ok()));

    instance.kill();

    // Several rounds: stale pooled connections first, then refused connects.
    for _ in 0..2 {
        every_operation_fails(&store, acknowledged[0].0).await;
    }

    instance.start();

    // The same store object recovers; a stale connection may fail one more
    // operation (retryable) before it is replaced.
    let mut recovered = false;
    for _ in 0..20 {
        match store.load(&acknowledged[0].0, now()).await {
            Ok(found) => {
                assert!(found.is_some(), "acknowledged write lost");
                recovered = true;
                break;
            }
            Err(Error::Backend {
                retryable: true, ..
            }) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => panic!("unexpected error after restart: {e:?}"),
        }
    }
    assert!(
        recovered,
        "the store did not recover after the server restarted"
    );
    for (key, rec) in &acknowledged {
        // `rec.version` is what create was given or what save/rotate returned.
        match store.load(key, now()).await.unwrap() {
            Some(Lookup::Session(stored)) => assert_eq!(&stored, rec),
            other => panic!("acknowledged session missing after restart: {other:?}"),
        }
    }
    assert_eq!(
        store.list_user("alice", now()).await.unwrap().len(),
        acknowledged.len()
    );
    // Writes work again too.
    let key = SessionToken::generate().storage_key();
    store
        .create(&key, &user_record(now(), "alice", b"after"))
        .await
        .unwrap();
    assert!(store.load(&key, now()).await.unwrap().is_some());
    store.close().await;
}

// ---------------------------------------------------------------------------
// A paused server (SIGSTOP): the operation deadline.
// ---------------------------------------------------------------------------

/// The operation deadline of the paused-server test.
const DEADLINE: Duration = Duration::from_millis(300);

/// The server stopped with `SIGSTOP` (`mariadbd` is one process: every
/// thread stops); continued on drop, even when the test fails.
struct Paused(u32);

impl Paused {
    fn pause(instance: &Instance) -> Paused {
        let pid = instance.server.as_ref().expect("running").id();
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
/// out, and came within the deadline plus slack (a bound that catches a
/// hang or a wait on some longer timeout, not a speed target).
fn assert_deadline<T: std::fmt::Debug>(
    operation: &str,
    started: Instant,
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
            assert_eq!(*backend, "mysql", "{operation}: {result:?}");
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

/// Every operation on a paused server, each on its own clock. Only a victim
/// session and unused keys: a statement already sent may still run when the
/// server continues.
async fn every_operation_times_out(store: &MySqlStore, victim: StorageKey) {
    let fresh = SessionToken::generate().storage_key();
    let rec = user_record(now(), "victim", b"x");
    let rotation = Rotation {
        from: victim,
        to: fresh,
        record: rec.clone(),
        grace: None,
    };
    macro_rules! check {
        ($op:literal, $call:expr) => {{
            let started = Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(30), $call)
                .await
                .expect(concat!($op, " hung on a paused server"));
            assert_deadline($op, started, result);
        }};
    }
    check!("load", store.load(&victim, now()));
    check!("create", store.create(&fresh, &rec));
    check!("save", store.save(&victim, &rec, now()));
    check!("touch", store.touch(&victim, now(), now(), now()));
    check!("rotate", store.rotate(&rotation, now()));
    check!("delete", store.delete(&fresh));
    check!("delete_user", store.delete_user("nobody", None, now()));
    check!("list_user", store.list_user("victim", now()));
    check!("cleanup_expired", store.cleanup_expired(now(), 10));
    check!("scan", store.scan(None, 10));
    check!("migrate", store.migrate());
}

/// A paused server (`SIGSTOP`: connections stay open, nothing answers, new
/// connects hang in the handshake) is the outage a deadline is for. Every
/// operation fails with a retryable backend error saying it timed out,
/// within the operation deadline (warm connections, then fresh connects
/// once the timed-out connections are closed); so does building a new
/// store. After `SIGCONT` the same store object works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_fails_every_operation_within_the_deadline() {
    if common::skip("a_paused_server_fails_every_operation_within_the_deadline") {
        return;
    }
    let mut instance = Instance::init();
    instance.start();
    let mut setup = sqlx::MySqlConnection::connect(&instance.url("mysql"))
        .await
        .expect("connect to the private instance");
    sqlx::query("CREATE DATABASE test")
        .execute(&mut setup)
        .await
        .unwrap();
    drop(setup);
    let url = instance.url("test");
    let paused_config = || {
        MySqlConfig::new(url.clone())
            .with_max_connections(4)
            .with_operation_timeout(DEADLINE)
    };
    let store = paused_config().build().await.expect("connect");
    store.migrate().await.unwrap();
    let kept = SessionToken::generate().storage_key();
    let kept_record = user_record(now(), "alice", b"kept");
    store.create(&kept, &kept_record).await.unwrap();
    let victim = SessionToken::generate().storage_key();
    store
        .create(&victim, &user_record(now(), "victim", b"v"))
        .await
        .unwrap();
    // Every connection of the store warm and open when the server stops.
    let warm = futures::future::join_all((0..8).map(|_| store.load(&kept, now()))).await;
    assert!(warm.iter().all(|r| r.is_ok()));

    let paused = Paused::pause(&instance);
    // Twice: first on the warm connections, then (those closed) on fresh
    // connects that hang in the handshake.
    for _ in 0..2 {
        every_operation_times_out(&store, victim).await;
    }
    // The connections the timed-out operations were using are closed, not
    // kept for reuse in an unknown state: the pool holds none (polled: the
    // closes finish on tasks of their own).
    let closed = std::time::Instant::now();
    while store.pool().size() > 0 {
        assert!(
            closed.elapsed() < Duration::from_secs(10),
            "{} connections still open after timing out",
            store.pool().size()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Building a store connects: bounded by the deadline too.
    let started = Instant::now();
    assert_deadline("connect", started, paused_config().build().await);
    // A lazy store connects on its first operation.
    let lazy = paused_config()
        .with_lazy_connect(true)
        .build()
        .await
        .unwrap();
    let started = Instant::now();
    assert_deadline("load", started, lazy.load(&kept, now()).await);
    drop(paused);

    // The same store object works again at once; several reads in a row,
    // each gets its own answer.
    for _ in 0..3 {
        match store.load(&kept, now()).await {
            Ok(Some(Lookup::Session(found))) => assert_eq!(found, kept_record),
            other => panic!("after SIGCONT: {other:?}"),
        }
        let unknown = SessionToken::generate().storage_key();
        assert_eq!(store.load(&unknown, now()).await.unwrap(), None);
    }
    let key = SessionToken::generate().storage_key();
    store
        .create(&key, &user_record(now(), "alice", b"after"))
        .await
        .unwrap();
    assert!(store.load(&key, now()).await.unwrap().is_some());
    assert!(!store.list_user("alice", now()).await.unwrap().is_empty());
    assert!(lazy.load(&kept, now()).await.unwrap().is_some());
    store.close().await;
}
