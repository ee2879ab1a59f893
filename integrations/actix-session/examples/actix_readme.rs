//! The README's actix-session snippet, verbatim: compiled with the crate's
//! examples, and kept equal to the README by `integrations/test-support/tests/readme.rs`.
// actix-session (actix-web)
use std::sync::Arc;

use actix_session::SessionMiddleware;
use actix_web::{cookie::Key, App, HttpServer};
use session_store_actix::ActixSessionStore;
use session_store_core::AdapterConfig;
use session_store_redis::RedisConfig;

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = RedisConfig::from_env()?.build().await?;
    let store = ActixSessionStore::new(Arc::new(backend))
        .with_config(AdapterConfig::from_env()?.with_user_id_key("user"))?;
    // A fixed key of at least 64 bytes from your secret store: a generated
    // one would log everyone out at each restart.
    let key = Key::from(&std::fs::read("cookie-key.bin")?);
    HttpServer::new(move || {
        App::new().wrap(
            SessionMiddleware::builder(store.clone(), key.clone())
                .cookie_name("__Host-session".into())
                .build(),
        )
        // .route(...)
    })
    .bind(("127.0.0.1", 8080))?
    .run()
    .await?;
    Ok(())
}
