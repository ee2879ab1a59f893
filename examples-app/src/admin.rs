//! The admin endpoints, served on their own loopback address (see
//! [`admin_bind_from_env`](crate::admin_bind_from_env)): Prometheus metrics,
//! liveness and readiness. No session layer runs here: no cookie is read or
//! set and no session is loaded, so a load balancer's probes and a scraper
//! never create, touch or count sessions.

use std::time::Duration;

use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use session_store_core::{Error, Result};
use session_store_url::{Readiness, Store};

/// The buckets of `session_store_operation_seconds`, in seconds: from an
/// embedded store's microseconds to a struggling server's seconds.
pub const OPERATION_BUCKETS: [f64; 14] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.1, 0.5, 2.5,
];

/// Builds the Prometheus recorder (operation latencies as histograms with
/// [`OPERATION_BUCKETS`]), installs it as the process's `metrics` recorder
/// and returns the handle that renders it. No HTTP listener of the
/// exporter's own: [`admin_router`] serves the text. Call
/// [`PrometheusHandle::run_upkeep`] every few seconds (the binary does).
///
/// # Errors
/// [`Error::Config`] when a recorder is already installed.
pub fn install_prometheus() -> Result<PrometheusHandle> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("session_store_operation_seconds".into()),
            &OPERATION_BUCKETS,
        )
        .and_then(PrometheusBuilder::install_recorder)
        .map_err(|e| Error::Config(format!("the Prometheus recorder: {e}")))
}

#[derive(Clone)]
struct AdminState {
    metrics: PrometheusHandle,
    store: Store,
    ready_timeout: Duration,
}

/// The admin router:
///
/// | route | answers |
/// | --- | --- |
/// | `GET /metrics` | the Prometheus text format (`text/plain; version=0.0.4`): the store's operations through [`Metered`](session_store_metrics::Metered), the manager's events through [`MetricsEvents`](session_store_metrics::MetricsEvents) |
/// | `GET /healthz` | `200 ok` while the process serves requests; no I/O of any kind |
/// | `GET /readyz` | `200 ready` when the store answers one round trip (a `PING`, or reading the schema version, which must be this build's) within `ready_timeout`; otherwise `503` with the reason (unreachable, timed out, schema missing or of another version) |
///
/// Serve it on an address of its own, never through the public proxy.
pub fn admin_router(metrics: PrometheusHandle, store: Store, ready_timeout: Duration) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(AdminState {
            metrics,
            store,
            ready_timeout,
        })
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (CONTENT_TYPE, "text/plain; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn render_metrics(State(state): State<AdminState>) -> Response {
    (
        [
            (CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (CACHE_CONTROL, "no-store"),
        ],
        state.metrics.render(),
    )
        .into_response()
}

/// Liveness: answering at all is the whole check.
async fn healthz() -> Response {
    text(StatusCode::OK, "ok\n".into())
}

async fn readyz(State(state): State<AdminState>) -> Response {
    let not_ready = |why: String| {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
    };
    match tokio::time::timeout(state.ready_timeout, state.store.ready()).await {
        Ok(Ok(Readiness::Ready)) => text(StatusCode::OK, "ready\n".into()),
        Ok(Ok(Readiness::SchemaMismatch { found, expected })) => not_ready(format!(
            "schema version {} (this build writes {expected}; run migrate)",
            found.map_or("none".to_owned(), |v| v.to_string())
        )),
        // Store errors name the backend and the redacted endpoint, never a password.
        Ok(Err(e)) => not_ready(e.to_string()),
        Err(_) => not_ready(format!(
            "the store did not answer within {} ms",
            state.ready_timeout.as_millis()
        )),
    }
}
