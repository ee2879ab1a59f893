//! The admin endpoints over HTTP on 127.0.0.1: `/metrics` after a login
//! through the application, `/readyz` against a store that answers, one
//! whose schema is missing and one on a closed loopback port, `/healthz`
//! that never does I/O, and none of them touching sessions. Stores are
//! opened from URLs by `session-store-url`, as the binary opens them.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;
use session_store_core::config::Vars;
use session_store_core::SessionManager;
use session_store_example_app::{
    admin_router, install_prometheus, router, store_from_vars, AppStore,
};
use session_store_metrics::MetricsEvents;
use session_store_url::{BackendUrl, Store};

/// The process's one recorder (a `metrics` recorder is global).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| install_prometheus().expect("install the recorder"))
        .clone()
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    format!("http://{addr}")
}

struct Reply {
    status: u16,
    set_cookie: bool,
    content_type: String,
    body: String,
}

async fn get(url: &str) -> Reply {
    let r = reqwest::Client::new()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    Reply {
        status: r.status().as_u16(),
        set_cookie: r.headers().contains_key("set-cookie"),
        content_type: r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned(),
        body: r.text().await.unwrap(),
    }
}

/// An app store on a fresh SQLite file, opened as the binary opens it.
async fn sqlite_app_store(dir: &tempfile::TempDir) -> AppStore {
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    store_from_vars(Vars::from_pairs([("SESSION_STORE_URL", url)]))
        .await
        .expect("open the store")
}

/// The value of the sample line starting with `series` (labels included).
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_login_and_the_admin_routes_touch_no_session() {
    let handle = prometheus();
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite_app_store(&dir).await;
    let manager = SessionManager::builder(store.backend.clone())
        .events(Arc::new(MetricsEvents))
        .build()
        .unwrap();
    let app = serve(router(manager)).await;
    let admin = serve(admin_router(
        handle.clone(),
        store.store.clone(),
        Duration::from_secs(2),
    ))
    .await;

    // A login through the application (login form, then the post).
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let form = client.get(format!("{app}/login")).send().await.unwrap();
    let csrf_cookie: Vec<String> = form
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let page = form.text().await.unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the login form's CSRF token");
    let login = client
        .post(format!("{app}/login"))
        .header("cookie", csrf_cookie.join("; "))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "username=alice&password=alice-password&csrf={csrf}"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status().as_u16(),
        303,
        "{}",
        login.text().await.unwrap()
    );
    handle.run_upkeep();

    let m = get(&format!("{admin}/metrics")).await;
    assert_eq!(m.status, 200);
    assert!(
        m.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        m.content_type
    );
    assert!(!m.set_cookie);
    let body = &m.body;
    // The manager's events and the store's operations, per backend.
    assert!(
        sample(
            body,
            "session_store_events_total{event=\"rotated\",reason=\"login\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{body}"
    );
    assert!(
        sample(
            body,
            "session_store_operation_seconds_count{store=\"sqlite\",operation=\"rotate\"}"
        )
        .is_some_and(|n| n >= 1.0),
        "{body}"
    );
    assert!(
        body.contains("session_store_operation_seconds_bucket{store=\"sqlite\",operation=\"rotate\",le=\"0.001\"}"),
        "latencies are histograms with the app's buckets: {body}"
    );
    // No label carries a token, a key or a user.
    assert!(!body.contains("alice"), "{body}");

    // Probes and scrapes are not sessions: nothing was created by them.
    let sessions_before = store
        .backend
        .list_user("alice", session_store_core::Timestamp::now_utc())
        .await
        .unwrap()
        .len();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = get(&format!("{admin}{path}")).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(!r.set_cookie, "{path} set a cookie");
    }
    handle.run_upkeep();
    let after = get(&format!("{admin}/metrics")).await.body;
    assert_eq!(
        sample(
            &after,
            "session_store_operation_seconds_count{store=\"sqlite\",operation=\"create\"}"
        ),
        sample(
            body,
            "session_store_operation_seconds_count{store=\"sqlite\",operation=\"create\"}"
        ),
        "a probe created a session"
    );
    assert_eq!(
        store
            .backend
            .list_user("alice", session_store_core::Timestamp::now_utc())
            .await
            .unwrap()
            .len(),
        sessions_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_200_when_the_store_answers_and_503_otherwise() {
    let handle = prometheus();
    // Up: a migrated SQLite store.
    let dir = tempfile::tempdir().unwrap();
    let up = sqlite_app_store(&dir).await;
    let admin = serve(admin_router(
        handle.clone(),
        up.store.clone(),
        Duration::from_secs(2),
    ))
    .await;
    let r = get(&format!("{admin}/readyz")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ready\n"));

    // Reachable, but never migrated: not ready, and says why.
    let fresh = BackendUrl::parse(&format!(
        "sqlite://{}",
        dir.path().join("fresh.db").display()
    ))
    .unwrap()
    .open()
    .await
    .unwrap();
    let admin = serve(admin_router(handle.clone(), fresh, Duration::from_secs(2))).await;
    let r = get(&format!("{admin}/readyz")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("schema version none"), "{}", r.body);

    // Unreachable: a MySQL store on a closed loopback port (opened lazily,
    // as a server that went away after start looks to the app).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down: Store = BackendUrl::parse(&format!("mysql://root@127.0.0.1:{closed}/test"))
        .unwrap()
        .open_with(Vars::from_pairs([(
            "SESSION_STORE_MYSQL_LAZY_CONNECT",
            "true",
        )]))
        .await
        .expect("a lazy store opens without its server");
    let timeout = Duration::from_millis(800);
    let admin = serve(admin_router(handle.clone(), down, timeout)).await;
    let started = Instant::now();
    let r = get(&format!("{admin}/readyz")).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.starts_with("not ready: "), "{}", r.body);
    assert!(
        // The pool alone would wait its 5 s acquire timeout.
        started.elapsed() < timeout + Duration::from_secs(3),
        "the probe is bounded by its timeout: {:?}",
        started.elapsed()
    );
    assert!(!r.set_cookie);

    // Liveness on that same instance: 200, whatever the store does.
    let r = get(&format!("{admin}/healthz")).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
}
