//! The life of a session on SQLite: a database file, no server.
//!
//! `cargo run -p session-store-sqlite --example quickstart`
//!
//! Creates (or reuses) `quickstart-sessions.db` in the current directory, or
//! the path in `SESSION_STORE_SQLITE_PATH`.

use std::sync::Arc;

use session_store_core::{Error, SessionManager};
use session_store_sqlite::SqliteConfig;

#[path = "../../session-store-core/examples/common/walkthrough.rs"]
mod walkthrough;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let path = std::env::var("SESSION_STORE_SQLITE_PATH")
        .unwrap_or_else(|_| "quickstart-sessions.db".to_owned());
    let store = SqliteConfig::new(&path).build().await?;
    store.migrate().await?;
    println!("SQLite database: {path}");
    let manager = SessionManager::new(Arc::new(store));
    walkthrough::walkthrough(&manager).await
}
