//! The life of a session, on the in-memory store (nothing to install, nothing
//! kept). The README's quickstart runs the same walkthrough on SQLite.
//!
//! `cargo run -p session-store-core --example memory_quickstart`

use std::sync::Arc;

use session_store_core::{Error, MemoryStore, SessionManager};

#[path = "common/walkthrough.rs"]
mod walkthrough;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let manager = SessionManager::new(Arc::new(MemoryStore::new()));
    walkthrough::walkthrough(&manager).await
}
