//! The life of a session on sled: an embedded database directory, no server.
//!
//! `cargo run -p session-store-sled --example sled_quickstart`
//!
//! Creates (or reuses) the directory `quickstart-sessions.sled` in the current
//! directory, or the path in `SESSION_STORE_SLED_PATH`.

use std::sync::Arc;

use session_store_core::{Error, SessionManager};
use session_store_sled::SledConfig;

#[path = "../../session-store-core/examples/common/walkthrough.rs"]
mod walkthrough;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let path = std::env::var("SESSION_STORE_SLED_PATH")
        .unwrap_or_else(|_| "quickstart-sessions.sled".to_owned());
    let store = SledConfig::new(&path).build().await?;
    println!("sled database: {path}");
    let manager = SessionManager::new(Arc::new(store));
    walkthrough::walkthrough(&manager).await
}
