//! Telemetry: request ids, one span and one access-log line per request keyed by the route
//! template, Prometheus metrics, and the process-wide tracing setup.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request being served by this task, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

/// `fut` with this task's request id, for a task spawned on the request's behalf.
pub fn carry_request_id<F: std::future::Future>(
    fut: F,
) -> futures::future::Either<tokio::task::futures::TaskLocalFuture<String, F>, F> {
    match current_request_id() {
        Some(id) => futures::future::Either::Left(CURRENT_REQUEST_ID.scope(id, fut)),
        None => futures::future::Either::Right(fut),
    }
}

/// The matched route template, set by [`record_route`] inside a service router and read by
/// [`observe`] for the log line and the metric labels (never the raw path).
#[derive(Clone, Debug)]
pub struct RouteTemplate(pub String);

/// Who made the request, set by the authentication layer for the access log.
#[derive(Clone, Debug, Default)]
pub struct RequestActor {
    pub user_id: Option<i64>,
    pub project_id: Option<i64>,
}

fn valid_request_id(value: &HeaderValue) -> Option<String> {
    let s = value.to_str().ok()?;
    (!s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| s.to_owned())
}

/// Outermost layer: request id (echoed or generated), span, access log, metrics.
pub async fn observe(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(valid_request_id)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        req.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        route = tracing::field::Empty,
        user_id = tracing::field::Empty,
        project_id = tracing::field::Empty,
    );
    let mut response = CURRENT_REQUEST_ID
        .scope(request_id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let route = response
        .extensions()
        .get::<RouteTemplate>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "unmatched".to_owned());
    let actor = response
        .extensions()
        .get::<RequestActor>()
        .cloned()
        .unwrap_or_default();
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    span.record("route", route.as_str());
    if let Some(user) = actor.user_id {
        span.record("user_id", user);
    }
    if let Some(project) = actor.project_id {
        span.record("project_id", project);
    }
    span.in_scope(|| {
        tracing::info!(
            target: "access",
            status,
            path = %path,
            latency_ms = elapsed.as_secs_f64() * 1000.0,
            "{method} {route} {status}"
        )
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(elapsed.as_secs_f64());
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID.clone(), value);
    }
    response
}

/// Route layer of a service router: records `/api/v1/{service}{template}` on the response.
pub async fn record_route(prefix: &'static str, req: Request, next: Next) -> Response {
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| format!("{prefix}{}", m.as_str()));
    let mut response = next.run(req).await;
    if let Some(template) = template {
        response.extensions_mut().insert(RouteTemplate(template));
    }
    response
}

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder (installed on first use).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Installs the JSON (or pretty) log subscriber once per process.
pub fn init_tracing(format: &str, filter: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("ZV_LOG").unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "pretty" {
        builder.try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    };
}
