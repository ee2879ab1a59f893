//! `rediss://` for real: a private, TLS-only `redis-server` on a free
//! loopback port (plain-text port closed), with a throwaway CA and a server
//! certificate for 127.0.0.1 made by the `openssl` command, driven by the
//! `session-store` binary as an operator runs it. Needs the `tls` feature:
//! `cargo test -p session-store-cli --features tls --test tls`.
//! `SESSION_STORE_SKIP_REDIS=1` skips it with a `SKIP:` line; a missing
//! `redis-server` or `openssl` otherwise fails it.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use session_store_core::{ClientMeta, RotateReason, SessionBackend, SessionManager, SessionToken};
use session_store_redis::RedisConfig;

const BIN: &str = env!("CARGO_BIN_EXE_session-store");

/// A `redis-server` this test started; killed and reaped on drop.
struct TlsRedis {
    child: Child,
    port: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command (apt-get install openssl)");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA, and a server certificate for IP 127.0.0.1 signed by it (P-256).
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=session-store test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
    );
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts the TLS-only server, or `None` when Redis tests are skipped.
fn start() -> Option<TlsRedis> {
    if std::env::var("SESSION_STORE_SKIP_REDIS").as_deref() == Ok("1") {
        println!("SKIP: rediss:// test (SESSION_STORE_SKIP_REDIS=1)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    make_certificates(dir.path());
    let port = free_port();
    let p = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let child = Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--tls-port",
            &port.to_string(),
        ])
        .args([
            "--tls-cert-file",
            &p("server.crt"),
            "--tls-key-file",
            &p("server.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &p("ca.crt"),
            "--tls-auth-clients",
            "no",
        ])
        .args(["--save", "", "--appendonly", "no", "--dir", &p("")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "redis-server (with TLS support, e.g. Debian's redis-server 7), \
             or set SESSION_STORE_SKIP_REDIS=1",
        );
    let server = TlsRedis {
        child,
        port,
        ca: dir.path().join("ca.crt"),
        _dir: dir,
    };
    // Wait (bounded) until the server accepts connections on its port.
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "the TLS redis-server did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SESSION_STORE_KEYS")
        .env_remove("SESSION_STORE_URL")
        .env_remove("SESSION_STORE_REDIS_TLS_CA_FILE")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run session-store")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_works_over_rediss_with_a_private_ca() {
    let Some(server) = start() else { return };
    let prefix = format!(
        "tls-{}",
        SessionToken::generate().storage_key().short_hash()
    );
    let ca = server.ca.to_string_lossy().into_owned();
    let base = format!("rediss://127.0.0.1:{}/", server.port);
    let url = format!("{base}?prefix={prefix}&tls_ca_file={ca}");

    // The store itself over TLS: a logged-in session to find with the CLI.
    let store = RedisConfig::new(base.clone())
        .with_prefix(prefix.clone())
        .with_tls_ca_file(&server.ca)
        .build()
        .await
        .expect("the store over rediss:// trusting the test CA");
    let backend: Arc<dyn SessionBackend> = Arc::new(store);
    let manager = SessionManager::new(backend.clone());
    let mut session = manager
        .create(b"tls".to_vec(), ClientMeta::default())
        .await
        .unwrap();
    manager
        .rotate(
            &mut session,
            RotateReason::Login {
                user_id: "alice".into(),
            },
        )
        .await
        .unwrap();
    let token = session.token().expose_secret().to_owned();

    // The CA as a URL parameter.
    let o = run(&["--url", &url, "ready"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(
        text(&o).contains("ready: rediss://127.0.0.1"),
        "{}",
        text(&o)
    );
    let o = run(&["--url", &url, "--json", "list", "--user", "alice"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["user_sessions"].as_array().unwrap().len(), 1);

    // The CA from the backend's variable, as an application would set it.
    let by_env = format!("{base}?prefix={prefix}");
    let o = run(
        &["--url", &by_env, "--json", "stats"],
        &[("SESSION_STORE_REDIS_TLS_CA_FILE", &ca)],
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["live_sessions"], 1, "{}", text(&o));

    // The certificate is checked: without the test CA (platform roots only)
    // the handshake fails, as a store failure, not a success.
    let o = run(&["--url", &by_env, "ready"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("rediss://127.0.0.1"), "{}", text(&o));

    // Plain text to the TLS port fails too; a CA file on redis:// is a
    // configuration error, not a silent plain-text link.
    let plain = format!("redis://127.0.0.1:{}/?prefix={prefix}", server.port);
    let o = run(&["--url", &plain, "ready"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let o = run(
        &["--url", &format!("{plain}&tls_ca_file={ca}"), "ready"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not rediss://"), "{}", text(&o));

    // Incident response over TLS: revoke, and the token is dead.
    let o = run(&["--url", &url, "--json", "revoke", "--user", "alice"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(json(&o)["revoked"], 1, "{}", text(&o));
    assert!(manager.load(&token).await.unwrap().is_none());

    backend.delete_all().await.unwrap();
}
