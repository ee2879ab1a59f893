//! The `session-store` binary run as an operator runs it, against SQLite,
//! sled, PostgreSQL and Redis. Server locations come from the backends'
//! `from_env` (`.cargo/config.toml`); each test uses its own table, prefix or
//! directory. `SESSION_STORE_SKIP_POSTGRES=1` / `SESSION_STORE_SKIP_REDIS=1`
//! skip the server tests with a `SKIP:` line.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use session_store_core::{
    ClientMeta, Encrypted, EncryptionKey, Keyring, RotateReason, SessionBackend, SessionManager,
    SessionToken,
};
use session_store_postgres::PostgresConfig;
use session_store_redis::RedisConfig;
use session_store_sqlite::SqliteConfig;

const BIN: &str = env!("CARGO_BIN_EXE_session-store");

fn run(args: &[&str]) -> Output {
    run_with(args, &[], None)
}

fn run_with(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SESSION_STORE_KEYS")
        .env_remove("SESSION_STORE_KEYS_FILE")
        .env_remove("SESSION_STORE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("run session-store");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(o)))
}

fn unique() -> String {
    format!(
        "cli_{}",
        SessionToken::generate().storage_key().short_hash()
    )
}

fn skip(backend: &str) -> bool {
    let var = format!("SESSION_STORE_SKIP_{backend}");
    if std::env::var(&var).is_ok_and(|v| v == "1") {
        println!("SKIP: cli test on {backend} ({var}=1)");
        return true;
    }
    false
}

fn sqlite_url(dir: &Path) -> String {
    format!("sqlite://{}?table=sessions", dir.join("s.db").display())
}

/// A URL naming the table `sessions` in the (not yet created) schema `schema`.
fn postgres_url(schema: &str) -> String {
    let config = PostgresConfig::from_env().expect("SESSION_STORE_POSTGRES_URL");
    let url = config.url();
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}schema={schema}&table=sessions")
}

/// The store behind [`postgres_url`].
async fn postgres(schema: &str) -> Arc<dyn SessionBackend> {
    let store = PostgresConfig::from_env()
        .unwrap()
        .with_schema(schema)
        .with_table("sessions")
        .build()
        .await
        .expect("postgres");
    Arc::new(store)
}

/// Drops a test's schema.
async fn drop_schema(schema: &str) {
    use sqlx::Connection as _;
    let url = PostgresConfig::from_env().unwrap().url().to_owned();
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .execute(&mut conn)
    .await
    .expect("drop the test schema");
}

fn redis_url(prefix: &str) -> String {
    let config = RedisConfig::from_env().expect("SESSION_STORE_REDIS_URL");
    let url = config.url().expect("a single Redis server");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}prefix={prefix}")
}

/// A migrated SQLite store at `dir`.
async fn sqlite(dir: &Path) -> Arc<dyn SessionBackend> {
    let store = SqliteConfig::new(dir.join("s.db"))
        .with_table("sessions")
        .build()
        .await
        .expect("sqlite");
    store.migrate().await.expect("migrate");
    Arc::new(store)
}

/// Logs `user` in on `backend` through a manager: the token and the session's version.
async fn login(backend: Arc<dyn SessionBackend>, user: &str, data: &[u8]) -> (String, u64) {
    let m = SessionManager::new(backend);
    let meta = ClientMeta {
        user_agent: Some("cli-test".into()),
        ..ClientMeta::default()
    };
    let mut s = m.create(data.to_vec(), meta).await.expect("create");
    m.rotate(
        &mut s,
        RotateReason::Login {
            user_id: user.into(),
        },
    )
    .await
    .expect("login");
    (s.token().expose_secret().to_owned(), s.version())
}

/// Loads `token` through a manager on `backend`: (user, data, version).
async fn load(backend: Arc<dyn SessionBackend>, token: &str) -> Option<(String, Vec<u8>, u64)> {
    let m = SessionManager::new(backend);
    m.load(token).await.expect("load").map(|s| {
        (
            s.user_id().unwrap_or_default().to_owned(),
            s.data().to_vec(),
            s.version(),
        )
    })
}

#[test]
fn bad_urls_and_bad_keys_are_clear_errors() {
    let o = run(&["--url", "ftp://somewhere", "stats"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("unknown backend scheme \"ftp\""),
        "{}",
        text(&o)
    );

    let o = run(&["--url", "no-scheme-here", "stats"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("has no scheme"), "{}", text(&o));

    let o = run(&["--url", "sqlite:///tmp/x.db?tabel=t", "stats"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("unknown parameter \"tabel\""),
        "{}",
        text(&o)
    );

    let o = run(&["stats"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("SESSION_STORE_URL"), "{}", text(&o));

    // A server that is not there: a backend failure naming the endpoint, no password.
    let o = run(&[
        "--url",
        "postgres://admin:hunter2secret@127.0.0.1:1/db",
        "stats",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("127.0.0.1:1"), "{}", text(&o));
    assert!(!text(&o).contains("hunter2secret"), "{}", text(&o));

    // Keys: a malformed list names the line, never the key; none at all is a usage error.
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!("1={}\n2:{}\n", "ab".repeat(32), "cd".repeat(32)),
    )
    .unwrap();
    let o = run(&[
        "--url",
        &url,
        "--keys-file",
        keys.to_str().unwrap(),
        "rekey",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("line 2"), "{}", text(&o));
    assert!(!text(&o).contains(&"cd".repeat(32)), "{}", text(&o));
    // The reference app's SESSION_STORE_KEYS_FILE is read too.
    let o = run_with(
        &["--url", &url, "rekey"],
        &[("SESSION_STORE_KEYS_FILE", keys.to_str().unwrap())],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("line 2"), "{}", text(&o));
    let o = run_with(
        &["--url", &url, "rekey"],
        &[("SESSION_STORE_KEYS", "7=abc")],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("variable SESSION_STORE_KEYS, line 1"),
        "{}",
        text(&o)
    );
    let o = run(&["--url", &url, "rekey"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("rekey needs the keys"), "{}", text(&o));

    // A bad handle.
    let o = run(&["--url", &url, "revoke", "--user", "u", "--handle", "nope"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

/// Without the `tls` feature, `rediss://` is refused up front with a message
/// naming the feature (no connection attempt, no silent plain text). With
/// it, `tests/tls.rs` runs the commands over TLS.
#[cfg(not(feature = "tls"))]
#[test]
fn rediss_without_the_tls_feature_names_the_feature() {
    for url in [
        "rediss://127.0.0.1:1/?prefix=p",
        "rediss+cluster://127.0.0.1:1,127.0.0.1:2",
    ] {
        let o = run(&["--url", url, "ready"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        assert!(text(&o).contains("`tls` feature"), "{}", text(&o));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_list_revoke_cleanup_and_purge_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let backend = sqlite(dir.path()).await;
    let mut tokens = Vec::new();
    for i in 0..3 {
        tokens.push(
            login(backend.clone(), "alice", format!("a{i}").as_bytes())
                .await
                .0,
        );
    }
    let (bob, _) = login(backend.clone(), "bob", b"b").await;
    // Carol logs in with "remember me": one session and one persistent login.
    let carol = {
        let m = session_store_core::SessionManager::new(backend.clone());
        let mut s = m
            .create(Vec::new(), session_store_core::ClientMeta::default())
            .await
            .unwrap();
        m.rotate(
            &mut s,
            session_store_core::RotateReason::Login {
                user_id: "carol".into(),
            },
        )
        .await
        .unwrap();
        m.remember(&mut s).await.unwrap().handle.to_string()
    };

    let o = run(&["--url", &url, "--json", "ready"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["ready"], true);
    let other = format!(
        "sqlite://{}?table=never_migrated",
        dir.path().join("s.db").display()
    );
    let o = run(&["--url", &other, "ready"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("run migrate"), "{}", text(&o));

    let o = run(&["--url", &url, "--json", "stats"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["live_sessions"], 5, "{v}");
    assert_eq!(v["persistent_logins"], 1, "{v}");
    assert_eq!(v["users"], 3, "{v}");
    assert_eq!(v["sessions_per_user"]["max"], 3, "{v}");
    let o = run(&["--url", &url, "stats"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    println!("{}", String::from_utf8_lossy(&o.stdout));

    let o = run(&["--url", &url, "--json", "list", "--user", "carol"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows = json(&o)["user_sessions"].as_array().unwrap().clone();
    let kinds: Vec<_> = rows
        .iter()
        .map(|r| (r["handle"].clone(), r["kind"].clone()))
        .collect();
    assert_eq!(rows.len(), 2, "{kinds:?}");
    assert!(
        kinds.contains(&(carol.clone().into(), "persistent".into())),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|(_, k)| k == "session"), "{kinds:?}");

    // The devices view: handles only, never a token.
    let o = run(&["--url", &url, "--json", "list", "--user", "alice"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let rows = json(&o)["user_sessions"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 3);
    for t in &tokens {
        assert!(!text(&o).contains(t.as_str()), "a token was printed");
    }
    let keep = rows[0]["handle"].as_str().unwrap().to_owned();

    // An incident: everything of alice but one device, then that one too.
    let o = run(&[
        "--url", &url, "--json", "revoke", "--user", "alice", "--except", &keep,
    ]);
    assert_eq!(json(&o)["revoked"], 2, "{}", text(&o));
    let o = run(&[
        "--url", &url, "--json", "revoke", "--user", "bob", "--handle", &keep,
    ]);
    assert_eq!(
        json(&o)["revoked"],
        0,
        "another user's handle revokes nothing"
    );
    let o = run(&[
        "--url", &url, "--json", "revoke", "--user", "alice", "--handle", &keep,
    ]);
    assert_eq!(json(&o)["revoked"], 1, "{}", text(&o));
    for t in &tokens {
        assert!(load(backend.clone(), t).await.is_none());
    }
    assert!(load(backend.clone(), &bob).await.is_some(), "bob untouched");

    let o = run(&["--url", &url, "--json", "cleanup", "--batch", "2"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));

    // Purge asks first.
    let o = run_with(&["--url", &url, "purge", "--all"], &[], Some("no\n"));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        load(backend.clone(), &bob).await.is_some(),
        "nothing deleted"
    );
    let o = run_with(&["--url", &url, "purge", "--all"], &[], Some("yes\n"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(load(backend.clone(), &bob).await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_and_revoke_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sled://{}?prefix=cli", dir.path().join("db").display());
    // Sessions written by the CLI-built store itself, closed before the binary opens the directory.
    {
        let store = session_store_cli::BackendUrl::parse(&url)
            .unwrap()
            .open()
            .await
            .expect("sled");
        login(store.backend(), "carol", b"c1").await;
        login(store.backend(), "carol", b"c2").await;
    }
    let o = run(&["--url", &url, "--json", "stats"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["live_sessions"], 2, "{}", text(&o));
    let o = run(&["--url", &url, "--json", "revoke", "--user", "carol"]);
    assert_eq!(json(&o)["revoked"], 2, "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_sqlite_to_postgres_keeps_users_logged_in() {
    if skip("POSTGRES") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let from = sqlite_url(dir.path());
    let src = sqlite(dir.path()).await;
    let (token, version) = login(src.clone(), "dave", b"cart=3").await;
    let (other, _) = login(src.clone(), "erin", b"x").await;
    let schema = unique();
    let to = postgres_url(&schema);

    let o = run(&["copy", "--from", &from, "--to", &to, "--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    println!("{}", String::from_utf8_lossy(&o.stdout));
    assert!(!text(&o).contains(&token), "a token was printed");

    let dst = postgres(&schema).await;
    assert_eq!(
        load(dst.clone(), &token).await,
        Some(("dave".into(), b"cart=3".to_vec(), version)),
        "the session loads on the new store, same user, data and version"
    );
    assert_eq!(
        dst.list_user("erin", session_store_core::Timestamp::now_utc())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(load(dst.clone(), &other).await.is_some());

    // Idempotent: a second run copies nothing new.
    let o = run(&["--json", "copy", "--from", &from, "--to", &to, "--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["copy"]["copied"], 0, "{v}");
    assert_eq!(v["copy"]["unchanged"], 2, "{v}");
    assert_eq!(v["verify"]["missing"].as_array().unwrap().len(), 0, "{v}");

    // A session that moved on in the source is replaced by its newer version.
    let m = SessionManager::new(src.clone());
    let mut s = m.load(&token).await.unwrap().unwrap();
    s.set_data(b"cart=4".to_vec());
    m.save(&mut s).await.unwrap();
    let o = run(&["--json", "copy", "--from", &from, "--to", &to]);
    assert_eq!(json(&o)["copy"]["replaced"], 1, "{}", text(&o));
    assert_eq!(load(dst.clone(), &token).await.unwrap().1, b"cart=4");
    drop(dst);
    drop_schema(&schema).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_redis_to_postgres_keeps_users_logged_in() {
    if skip("REDIS") || skip("POSTGRES") {
        return;
    }
    let prefix = unique();
    let from = redis_url(&prefix);
    let src = RedisConfig::from_env()
        .unwrap()
        .with_prefix(prefix.clone())
        .build()
        .await
        .expect("redis");
    let src: Arc<dyn SessionBackend> = Arc::new(src);
    let mut tokens = Vec::new();
    for i in 0..25 {
        tokens.push(
            login(
                src.clone(),
                &format!("user{}", i % 5),
                format!("d{i}").as_bytes(),
            )
            .await,
        );
    }
    let schema = unique();
    let to = postgres_url(&schema);
    let o = run(&["--json", "copy", "--from", &from, "--to", &to, "--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["copy"]["copied"], 25, "{v}");
    assert_eq!(v["verify"]["compared"], 25, "{v}");

    let o = run(&["--url", &from, "--json", "ready"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = run(&["--url", &to, "--json", "ready"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "copy migrated the destination: {}",
        text(&o)
    );
    let o = run(&["--url", &from, "--json", "stats"]);
    assert_eq!(json(&o)["live_sessions"], 25, "{}", text(&o));
    assert_eq!(json(&o)["users"], 5, "{}", text(&o));

    let dst = postgres(&schema).await;
    for (i, (token, version)) in tokens.iter().enumerate() {
        assert_eq!(
            load(dst.clone(), token).await,
            Some((
                format!("user{}", i % 5),
                format!("d{i}").into_bytes(),
                *version
            ))
        );
    }
    drop(dst);
    drop_schema(&schema).await;
    src.delete_all().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn rekey_then_retire_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let raw = sqlite(dir.path()).await;
    let old = [0x11u8; 32];
    let new = [0x22u8; 32];
    let stranger = [0x99u8; 32];
    let v1: Arc<dyn SessionBackend> = Arc::new(Encrypted::new(
        raw.clone(),
        Keyring::new(1, EncryptionKey::from_bytes(old)),
    ));
    let mut tokens = Vec::new();
    for i in 0..7 {
        tokens.push(
            login(v1.clone(), "frank", format!("secret-{i}").as_bytes())
                .await
                .0,
        );
    }
    // One session sealed under a key nobody has any more.
    let lost: Arc<dyn SessionBackend> = Arc::new(Encrypted::new(
        raw.clone(),
        Keyring::new(9, EncryptionKey::from_bytes(stranger)),
    ));
    login(lost, "grace", b"lost").await;

    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        format!(
            "# new primary first\n2={}\n1={}\n",
            hex::encode(new),
            hex::encode(old)
        ),
    )
    .unwrap();
    let o = run(&[
        "--url",
        &url,
        "--keys-file",
        keys.to_str().unwrap(),
        "rekey",
    ]);
    println!("{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(
        o.status.code(),
        Some(3),
        "undecryptable sessions are findings: {}",
        text(&o)
    );
    assert!(text(&o).contains("7 re-encrypted"), "{}", text(&o));
    assert!(
        text(&o).contains("undecryptable (left in place)"),
        "{}",
        text(&o)
    );

    // Resumable and idempotent: a second run rewrites nothing.
    let o = run_with(
        &["--url", &url, "--json", "rekey"],
        &[(
            "SESSION_STORE_KEYS",
            &format!("2={}\n1={}", hex::encode(new), hex::encode(old)),
        )],
        None,
    );
    let v = json(&o);
    assert_eq!(v["resealed"], 0, "{v}");
    assert_eq!(v["already_primary"], 7, "{v}");
    assert_eq!(v["undecryptable"].as_array().unwrap().len(), 1, "{v}");

    // The old key retired: every session still loads.
    let v2: Arc<dyn SessionBackend> = Arc::new(Encrypted::new(
        raw.clone(),
        Keyring::new(2, EncryptionKey::from_bytes(new)),
    ));
    for (i, t) in tokens.iter().enumerate() {
        let (user, data, _) = load(v2.clone(), t).await.expect("loads under the new key");
        assert_eq!(
            (user.as_str(), data),
            ("frank", format!("secret-{i}").into_bytes())
        );
    }
    // The undecryptable one was not deleted.
    let o = run(&["--url", &url, "--json", "stats"]);
    assert_eq!(json(&o)["live_sessions"], 8, "{}", text(&o));

    // Resuming from a cursor walks only what follows it; a foreign cursor is a usage error.
    let first = raw.scan(None, 3).await.unwrap().next.expect("more pages");
    let o = run_with(
        &[
            "--url",
            &url,
            "--json",
            "rekey",
            "--cursor",
            &first.to_text(),
        ],
        &[("SESSION_STORE_KEYS", &format!("2={}", hex::encode(new)))],
        None,
    );
    assert_eq!(json(&o)["scanned"], 5, "{}", text(&o));
    let o = run_with(
        &["--url", &url, "rekey", "--cursor", "AAAA"],
        &[("SESSION_STORE_KEYS", &format!("2={}", hex::encode(new)))],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_and_copy_from_a_redis_cluster() {
    if skip("REDIS_CLUSTER") {
        return;
    }
    // The seed nodes the Redis cluster tests use, read as the store reads them.
    let nodes = std::env::var("SESSION_STORE_TEST_REDIS_CLUSTER_NODES")
        .expect("SESSION_STORE_TEST_REDIS_CLUSTER_NODES");
    let vars = session_store_core::config::Vars::from_pairs([(
        "SESSION_STORE_REDIS_CLUSTER_NODES",
        nodes.as_str(),
    )]);
    let prefix = unique();
    let config = RedisConfig::from_vars(&vars)
        .expect("cluster config")
        .with_prefix(prefix.clone());
    let hosts: Vec<String> = config
        .cluster_nodes()
        .expect("cluster")
        .iter()
        .map(|n| {
            n.trim_start_matches("redis://")
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    let src: Arc<dyn SessionBackend> = Arc::new(config.build().await.expect("cluster"));
    let mut tokens = Vec::new();
    for i in 0..40 {
        tokens.push(login(src.clone(), &format!("c{}", i % 4), b"x").await.0);
    }
    let url = format!("redis+cluster://{}?prefix={prefix}", hosts.join(","));
    let o = run(&["--url", &url, "--json", "stats"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        json(&o)["live_sessions"],
        40,
        "SCAN on every master: {}",
        text(&o)
    );
    assert_eq!(json(&o)["users"], 4, "{}", text(&o));

    let dir = tempfile::tempdir().unwrap();
    let to = sqlite_url(dir.path());
    let o = run(&["--json", "copy", "--from", &url, "--to", &to, "--verify"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["copy"]["copied"], 40, "{}", text(&o));
    let dst = sqlite(dir.path()).await;
    for t in &tokens {
        assert!(load(dst.clone(), t).await.is_some());
    }
    src.delete_all().await.unwrap();
}
