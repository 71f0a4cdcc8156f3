//! What every service exposes to the gateway, and the routes every service has (health,
//! readiness, OpenAPI), so a service crate only writes its own endpoints.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sqlx::PgPool;

use crate::error::ApiError;
use crate::observe::record_route;
use crate::platform::Platform;

/// Static facts about a service.
#[derive(Debug)]
pub struct ServiceSpec {
    /// URL segment and crate name: `auth`.
    pub name: &'static str,
    /// The `service` value of its health body: `zv-auth-service`.
    pub health_name: &'static str,
    /// Paths (relative to the service root, no trailing slash) the gateway lets through
    /// without a token. A path matches itself and everything below it.
    pub public_paths: &'static [&'static str],
    /// Paths public only exactly (not what lies below them).
    pub public_exact: &'static [&'static str],
}

impl ServiceSpec {
    pub fn is_public(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        if self.public_exact.contains(&path) {
            return true;
        }
        ["/health", "/ready", "/openapi.json", "/graphql"]
            .iter()
            .chain(self.public_paths.iter())
            .any(|p| {
                path == *p
                    || path
                        .strip_prefix(p)
                        .is_some_and(|rest| rest.starts_with('/'))
            })
    }
}

/// Everything a service needs at start-up.
#[derive(Clone)]
pub struct ServiceContext {
    pub platform: Platform,
    pub pool: PgPool,
    /// Where the service's integration events go (same transaction as the change).
    pub outbox: crate::events::Outbox,
}

impl ServiceContext {
    /// A service's start-up: its database (migrated), the outbox, inbox and idempotency tables,
    /// the outbox relay (every 2 s, and on every nudge) and the hourly pruning of idempotency
    /// keys.
    pub async fn open(
        platform: &Platform,
        spec: &ServiceSpec,
        migrator: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<Self> {
        let pool = crate::db::open_service_pool(platform.config(), spec.name, migrator).await?;
        crate::events::install(&pool).await?;
        crate::idempotency::install(&pool).await?;
        crate::idempotency::spawn_pruner(pool.clone());
        let outbox = crate::events::Outbox::new(pool.clone(), spec.name, platform.events().clone());
        outbox.spawn_relay();
        Ok(Self {
            platform: platform.clone(),
            pool,
            outbox,
        })
    }
}

/// A service ready to be mounted by the gateway (in-process) or served alone.
#[derive(Clone)]
pub struct MountedService {
    pub spec: &'static ServiceSpec,
    pub router: Router,
    pub pool: PgPool,
    /// What the service mounted and its OpenAPI document.
    pub api: Arc<crate::routing::ServiceApi>,
}

#[derive(Clone)]
struct Health {
    spec: &'static ServiceSpec,
    pool: PgPool,
}

async fn health(State(h): State<Health>) -> Json<serde_json::Value> {
    Json(json!({"status": "healthy", "service": h.spec.health_name}))
}

/// 200 when the database answers, else 503 (`/ready/`).
pub async fn database_ready(pool: &PgPool) -> bool {
    tokio::time::timeout(
        std::time::Duration::from_secs(2),
        sqlx::query("SELECT 1").execute(pool),
    )
    .await
    .is_ok_and(|r| r.is_ok())
}

/// The event broker's state for readiness: `in_process` (no broker configured), `ok`, or
/// `unavailable`.
pub async fn broker_ready(platform: &crate::platform::Platform) -> &'static str {
    match platform.events().broker() {
        None => "in_process",
        Some(b) if b.reachable().await => "ok",
        Some(_) => "unavailable",
    }
}

/// `/ready/`: 503 when the database does not answer. The broker is reported too: without it the
/// service still works (events wait in its outbox), so it is `degraded`, not unavailable.
async fn ready(
    State(h): State<Health>,
    platform: Option<axum::Extension<crate::platform::Platform>>,
) -> Response {
    let db = database_ready(&h.pool).await;
    let broker = match &platform {
        Some(p) => broker_ready(p).await,
        None => "in_process",
    };
    let status = match (db, broker) {
        (false, _) => "unavailable",
        (true, "unavailable") => "degraded",
        _ => "ready",
    };
    let body = json!({
        "status": status,
        "checks": {"database": if db { "ok" } else { "unavailable" }, "broker": broker}
    });
    let status = if db {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// The absolute origin links are built on: `public_base_url`, else the request's scheme and host
/// (`X-Forwarded-Host`/`-Proto` only when `trust_forwarded_for`). A host with characters no host
/// has is not echoed into links (`localhost` instead).
pub fn public_origin(config: &crate::config::Config, headers: &axum::http::HeaderMap) -> String {
    if let Some(base) = &config.public_base_url {
        return base.trim_end_matches('/').to_owned();
    }
    let trust = config.trust_forwarded_for;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let host = header("x-forwarded-host")
        .filter(|_| trust)
        .or_else(|| header("host"))
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let proto = header("x-forwarded-proto")
        .filter(|p| trust && (*p == "https" || *p == "http"))
        .unwrap_or("http");
    format!("{proto}://{host}")
}

/// Every path `routing::Routes::at` registers for `paths` (the first is the documented one):
/// each bare and under `/{alias}/` (services mounted twice by their contract), in the `-`/`_`
/// spellings of their literal segments.
pub(crate) fn spellings<P: AsRef<str>>(alias: &str, paths: &[P]) -> Vec<String> {
    let alias_prefix = format!("{alias}/");
    let mut all: Vec<String> = Vec::new();
    for path in paths {
        let base = path.as_ref().trim_start_matches('/');
        let base = base.strip_prefix(&alias_prefix).unwrap_or(base);
        let prefixes = if alias.is_empty() {
            vec![format!("/{base}")]
        } else {
            vec![format!("/{base}"), format!("/{alias}/{base}")]
        };
        for prefixed in prefixes {
            for spelling in [
                prefixed.clone(),
                respell(&prefixed, '_', '-'),
                respell(&prefixed, '-', '_'),
            ] {
                if !all.contains(&spelling) {
                    all.push(spelling);
                }
            }
        }
    }
    all
}

/// Registers `route` at each of `spellings`.
pub(crate) fn at<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    spellings: &[String],
    route: axum::routing::MethodRouter<S>,
) -> Router<S> {
    spellings
        .iter()
        .fold(router, |r, p| r.route(p, route.clone()))
}

fn respell(path: &str, from: char, to: char) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') || seg.starts_with('.') {
                seg.to_owned()
            } else {
                seg.replace(from, &to.to_string())
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The body limit of a service that takes direct uploads: the configured upload size plus 1 MiB
/// for the form around the file (JSON bodies keep their own, smaller limit: `extract::Json`).
pub fn upload_body_limit(config: &crate::config::Config) -> axum::extract::DefaultBodyLimit {
    axum::extract::DefaultBodyLimit::max(
        config
            .storage
            .direct_upload_max_bytes
            .saturating_add(1 << 20) as usize,
    )
}

/// Adds health, readiness, OpenAPI and contract-shaped 404/405 to a service's own routes.
pub fn mount(
    spec: &'static ServiceSpec,
    prefix: &'static str,
    routes: Router,
    pool: PgPool,
    api: crate::routing::ServiceApi,
) -> MountedService {
    let state = Health {
        spec,
        pool: pool.clone(),
    };
    let openapi = Arc::new(
        api.document
            .as_ref()
            .map(|o| serde_json::to_value(o).unwrap_or_default()),
    );
    let common = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
        .route(
            "/openapi.json",
            get(move || {
                let openapi = openapi.clone();
                async move {
                    match openapi.as_ref() {
                        Some(doc) => Json(doc.clone()).into_response(),
                        None => ApiError::not_found().into_response(),
                    }
                }
            }),
        );
    let router = routes
        .merge(common)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn(move |req, next| {
            record_route(prefix, req, next)
        }))
        .layer(axum::middleware::from_fn(screen_and_complete));
    MountedService {
        spec,
        router,
        pool,
        api: Arc::new(api),
    }
}

/// Every request of every service passes here. A query string or path holding NUL is refused
/// with a 400 naming the parameter (`text`). A write (any method but GET, HEAD, OPTIONS,
/// TRACE) runs in a task of its own, so a client that hangs up, or a gateway timeout, drops
/// only the wait for the answer: the saga, the payment or the checkout runs to its end (placed
/// or failed, never left half done).
async fn screen_and_complete(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(param) = req.uri().query().and_then(crate::text::query_null) {
        return crate::text::null_error(param).into_response();
    }
    if req.uri().path().contains("%00") {
        return crate::text::null_error("path").into_response();
    }
    if req.method().is_safe() {
        return next.run(req).await;
    }
    use tracing::Instrument;
    let write = crate::observe::carry_request_id(next.run(req)).in_current_span();
    match tokio::spawn(write).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(error = %e, "a write's task ended without an answer");
            ApiError::internal("a write's task ended without an answer").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static SPEC: ServiceSpec = ServiceSpec {
        name: "auth",
        health_name: "zv-auth-service",
        public_paths: &["/auth/token/refresh", "/country"],
        public_exact: &["/auth/token"],
    };

    #[test]
    fn link_origins_never_echo_odd_hosts() {
        let mut config = crate::config::Config::default();
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("host", "shop.example.com:8000".parse().expect("hv"));
        headers.insert("x-forwarded-host", "evil.example".parse().expect("hv"));
        headers.insert("x-forwarded-proto", "https".parse().expect("hv"));
        assert_eq!(
            public_origin(&config, &headers),
            "http://shop.example.com:8000"
        );
        config.trust_forwarded_for = true;
        assert_eq!(public_origin(&config, &headers), "https://evil.example");
        headers.insert("x-forwarded-host", "a\"><script>".parse().expect("hv"));
        assert_eq!(public_origin(&config, &headers), "https://localhost");
        config.public_base_url = Some("https://api.example.com/".into());
        assert_eq!(public_origin(&config, &headers), "https://api.example.com");
    }

    #[test]
    fn public_paths_match_on_segment_boundaries() {
        assert!(SPEC.is_public("/auth/token"));
        assert!(SPEC.is_public("/auth/token/refresh"));
        assert!(!SPEC.is_public("/auth/token/change_project"));
        assert!(SPEC.is_public("/country/jordan/"));
        assert!(SPEC.is_public("/health"));
        assert!(!SPEC.is_public("/auth/tokens"));
        assert!(!SPEC.is_public("/auth/user"));
    }
}
