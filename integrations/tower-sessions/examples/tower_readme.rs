//! The README's tower-sessions snippet, compiled: its lines, in order, are
//! the body of `main` below (checked by `integrations/test-support/tests/readme.rs`).

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // tower-sessions (axum)
    use session_store_core::AdapterConfig;
    use session_store_sqlite::SqliteConfig;
    use session_store_tower_sessions::TowerSessionStore;
    use std::sync::Arc;
    use tower_sessions::{cookie::SameSite, SessionManagerLayer};

    let backend = SqliteConfig::new("sessions.db").build().await?;
    backend.migrate().await?;
    let store = TowerSessionStore::new(Arc::new(backend))
        .with_config(AdapterConfig::from_env()?.with_user_id_key("user"))?;
    let layer = SessionManagerLayer::new(store)
        .with_name("__Host-session")
        .with_secure(true)
        .with_same_site(SameSite::Lax);
    let app = axum::Router::new() /* .route(...) */
        .layer(layer);
    let _: axum::Router = app;
    Ok(())
}
