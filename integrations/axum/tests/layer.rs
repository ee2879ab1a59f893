//! The layer in process (no sockets), on the in-memory store: chunked bodies
//! over the limit, the configurable error response, a missing layer, and the
//! typed error after the compare-and-swap bound.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use common::{serve, Browser};
use session_store_axum::{
    CsrfConfig, Session, SessionConfig, SessionError, SessionErrorKind, SessionLayer,
};
use session_store_core::{MemoryStore, SessionManager};
use tower_service::Service as _;

async fn call(app: &mut Router, req: Request<Body>) -> (StatusCode, String) {
    let res = app.call(req).await.unwrap();
    let status = res.status();
    let body = axum::body::to_bytes(res.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn manager() -> SessionManager {
    SessionManager::new(Arc::new(MemoryStore::new()))
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let config = SessionConfig::default().with_body_limit(1024);
    let mut app = Router::new()
        .route(
            "/echo",
            post(|body: String| async move { body.len().to_string() }),
        )
        .layer(SessionLayer::new(manager(), config).unwrap());
    let chunks = (0..8).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 256]));
    let stream = futures::stream::iter(chunks);
    // A form: the layer reads it for the CSRF token and stops at the limit.
    let req = Request::post("/echo")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from_stream(futures::stream::iter(
            (0..8).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 256])),
        )))
        .unwrap();
    let (status, _) = call(&mut app, req).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    // Any other body: the handler's read stops at the limit.
    let mut open = Router::new()
        .route(
            "/echo",
            post(|body: String| async move { body.len().to_string() }),
        )
        .layer(
            SessionLayer::new(
                manager(),
                SessionConfig::default()
                    .with_body_limit(1024)
                    .with_csrf(CsrfConfig::default().with_enabled(false)),
            )
            .unwrap(),
        );
    let req = Request::post("/echo")
        .body(Body::from_stream(stream))
        .unwrap();
    let (status, _) = call(&mut open, req).await;
    assert_eq!(
        status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "the handler's read is bounded"
    );
}

#[tokio::test]
async fn the_error_response_is_configurable() {
    let config = SessionConfig::default().with_error_handler(|kind: SessionErrorKind| {
        axum::response::IntoResponse::into_response((kind.status(), format!("custom: {kind:?}")))
    });
    let mut app = Router::new()
        .route("/incr", post(|| async { "never" }))
        .route(
            "/fail",
            get(|| async { Err::<(), _>(SessionError::NotLoggedIn) }),
        )
        .layer(SessionLayer::new(manager(), config).unwrap());
    let (status, body) = call(
        &mut app,
        Request::post("/incr").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "custom: Csrf")
    );
    let (status, body) = call(&mut app, Request::get("/fail").body(Body::empty()).unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::UNAUTHORIZED, "custom: NotLoggedIn")
    );
}

#[tokio::test]
async fn a_missing_layer_is_a_500() {
    let mut app: Router = Router::new().route(
        "/",
        get(|s: Session| async move { s.exists().await.map(|e| e.to_string()) }),
    );
    let (status, _) = call(&mut app, Request::get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
}

#[tokio::test]
async fn an_invalid_configuration_is_refused() {
    let config = SessionConfig::default().with_cookie(
        session_store_axum::CookieConfig::default().with_domain(Some("example.com".into())),
    );
    let err = SessionLayer::new(manager(), config).unwrap_err();
    assert!(
        matches!(err, session_store_core::Error::Config(_)),
        "{err:?}"
    );
}

/// With a bound of one attempt, concurrent updates may fail with 409, but
/// every update that answered 200 is in the final value and no other is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_bound_an_update_fails_visibly_never_silently() {
    let config = SessionConfig::default().with_update_attempts(1);
    let app =
        Router::new()
            .route(
                "/incr",
                post(|s: Session| async move {
                    s.update("n", |n: &mut u64| *n += 1).await.map(|()| "ok")
                }),
            )
            .route(
                "/n",
                get(|s: Session| async move {
                    s.get::<u64>("n").await.map(|n| n.unwrap_or(0).to_string())
                }),
            )
            .route(
                "/start",
                post(|s: Session| async move {
                    s.login("alice").await?;
                    s.csrf_token().await
                }),
            )
            .route(
                "/csrf",
                get(|s: Session| async move { s.csrf_token().await }),
            )
            .layer(SessionLayer::new(manager(), config).unwrap());
    let base = serve(app).await;
    let b = Browser::new(&base, "UA");
    let t = b.csrf().await;
    let csrf = b.post("/start", Some(&t), &[]).await.body;
    let requests = (0..32).map(|_| {
        b.client
            .post(format!("{base}/incr"))
            .header("x-csrf-token", &csrf)
            .send()
    });
    let (mut ok, mut conflict) = (0u64, 0u64);
    for r in futures::future::join_all(requests).await {
        match r.unwrap().status().as_u16() {
            200 => ok += 1,
            409 => conflict += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(ok + conflict, 32);
    let n: u64 = b.get("/n").await.body.parse().unwrap();
    assert_eq!(n, ok, "exactly the acknowledged updates are stored");
}

/// A save that fails (here: over the data limit, before any I/O) changes
/// nothing: the request goes on with the session as it was, a later write
/// in the same request stores only its own change, and the next request
/// sees neither the refused value nor a lost one.
#[tokio::test]
async fn a_failed_save_leaves_the_session_as_it_was() {
    let policy = session_store_core::Policy {
        max_data_bytes: 200,
        ..Default::default()
    };
    let manager = SessionManager::builder(Arc::new(MemoryStore::new()))
        .policy(policy)
        .build()
        .unwrap();
    let config = SessionConfig::default();
    let mut app = Router::new()
        .route(
            "/start",
            get(|s: Session| async move {
                s.insert("n", &1u64).await?;
                Ok::<_, SessionError>("ok")
            }),
        )
        .route(
            "/write",
            get(|s: Session| async move {
                let big = "x".repeat(500);
                let refused = s.insert("big", &big).await;
                assert!(
                    matches!(refused, Err(SessionError::TooLarge(_))),
                    "{refused:?}"
                );
                assert_eq!(s.get::<String>("big").await?, None);
                s.update("n", |n: &mut u64| *n += 1).await?;
                Ok::<_, SessionError>(s.get::<u64>("n").await?.unwrap_or(0).to_string())
            }),
        )
        .route(
            "/read",
            get(|s: Session| async move {
                let big = s.get::<String>("big").await?;
                let n = s.get::<u64>("n").await?.unwrap_or(0);
                Ok::<_, SessionError>(format!("{n} {}", big.is_some()))
            }),
        )
        .layer(SessionLayer::new(manager, config).unwrap());
    let res = app
        .call(Request::get("/start").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let req = |path: &str| {
        Request::get(path)
            .header("cookie", &cookie)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        call(&mut app, req("/write")).await,
        (StatusCode::OK, "2".into())
    );
    assert_eq!(
        call(&mut app, req("/read")).await,
        (StatusCode::OK, "2 false".into())
    );
}
