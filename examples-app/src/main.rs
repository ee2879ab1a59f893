//! The reference application's binary: backend from the environment (see
//! `backend_from_env`), loopback listener (`EXAMPLE_APP_BIND`, default
//! `127.0.0.1:3000`), periodic cleanup of expired sessions, a log on stdout.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use session_store_core::SessionManager;
use session_store_example_app::{backend_from_env, bind_from_env, default_policy, router};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Store failures, exhausted retries and CSRF refusals are logged by the
    // session layer (key short hashes, never tokens): show them.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .init();
    let addr = bind_from_env()?;
    let manager = SessionManager::builder(backend_from_env().await?)
        .policy(default_policy())
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
    let listener = tokio::net::TcpListener::bind(addr).await?;
    println!("listening on http://{addr} (put a TLS proxy in front: the cookie is Secure)");
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
