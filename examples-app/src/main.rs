//! The reference application's binary: the store named by
//! `SESSION_STORE_URL` (see `store_from_vars`), the application on a
//! loopback listener (`EXAMPLE_APP_BIND`, default `127.0.0.1:3000`), the
//! admin endpoints (`/metrics`, `/healthz`, `/readyz`) on another
//! (`EXAMPLE_APP_ADMIN_BIND`, default `127.0.0.1:3001`), periodic cleanup of
//! expired sessions, a log on stdout.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use session_store_core::SessionManager;
use session_store_example_app::{
    admin_bind_from_env, admin_router, bind_from_env, default_policy, install_prometheus,
    ready_timeout_from_env, router, store_from_env,
};
use session_store_metrics::MetricsEvents;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Store failures, exhausted retries and CSRF refusals are logged by the
    // session layer (key short hashes, never tokens): show them.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    let addr = bind_from_env()?;
    let admin_addr = admin_bind_from_env()?;
    let ready_timeout = ready_timeout_from_env()?;
    let metrics = install_prometheus()?;
    let store = store_from_env().await?;
    let manager = SessionManager::builder(store.backend.clone())
        .policy(default_policy())
        .events(Arc::new(MetricsEvents))
        .build()?;
    let cleaner = manager.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(60));
        loop {
            every.tick().await;
            if let Err(e) = cleaner.cleanup_expired(500).await {
                eprintln!("cleanup failed: {e}");
            }
        }
    });
    // The recorder keeps histogram samples until upkeep folds them in.
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    let admin_listener = tokio::net::TcpListener::bind(admin_addr).await?;
    let admin = admin_router(metrics, store.store, ready_timeout);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(admin_listener, admin).await {
            eprintln!("admin listener failed: {e}");
        }
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!(
        "listening on http://{addr} (put a TLS proxy in front: the cookie is Secure); \
         store {}; admin (/metrics, /healthz, /readyz) on http://{admin_addr}",
        store.url.endpoint()
    );
    axum::serve(
        listener,
        router(manager).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
