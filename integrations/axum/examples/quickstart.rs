//! The axum quickstart: sessions on SQLite with a login form, a counter and
//! logout. `cargo run -p session-store-axum --example quickstart`, then open
//! http://localhost:3000 (browsers accept `__Host-`/`Secure` cookies on
//! localhost without TLS).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::response::Html;
use axum::routing::{get, post};
use axum::{Form, Router};
use session_store_axum::{Session, SessionConfig, SessionError, SessionLayer};
use session_store_core::SessionManager;
use session_store_sqlite::SqliteConfig;

async fn home(session: Session) -> Result<Html<String>, SessionError> {
    let Some(user) = session.user_id().await? else {
        return Ok(Html("<a href=\"/login\">Sign in</a>".into()));
    };
    // A compare-and-swap read-modify-write: concurrent requests never lose one.
    let visits = session
        .update("visits", |n: &mut u64| {
            *n += 1;
            *n
        })
        .await?;
    let csrf = session.csrf_token().await?;
    Ok(Html(format!(
        "Hello {user}, visit {visits}. <form method=post action=/logout>\
         <input type=hidden name=csrf value={csrf}><button>Log out</button></form>"
    )))
}

async fn login_form(session: Session) -> Result<Html<String>, SessionError> {
    // No session yet: a signed double-submit token; nothing is stored.
    let csrf = session.csrf_token().await?;
    Ok(Html(format!(
        "<form method=post><input type=hidden name=csrf value={csrf}>\
         <input name=user><button>Sign in</button></form>"
    )))
}

async fn login(
    session: Session,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Html<&'static str>, SessionError> {
    // Check the password here; the layer already checked the CSRF token.
    session
        .login(form.get("user").map(String::as_str).unwrap_or(""))
        .await?;
    Ok(Html("<a href=\"/\">Signed in</a>"))
}

async fn logout(session: Session) -> Result<Html<&'static str>, SessionError> {
    session.logout().await?;
    Ok(Html("<a href=\"/\">Signed out</a>"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let backend = SqliteConfig::new("sessions.db").build().await?;
    backend.migrate().await?;
    let manager = SessionManager::new(Arc::new(backend)); // or Encrypted::new(backend, keyring)
    let app = Router::new()
        .route("/", get(home))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .layer(SessionLayer::new(manager, SessionConfig::default())?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
