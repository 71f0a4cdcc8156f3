//! The API gateway: one entry point that routes `/api/v1/{service}/…` and `/graphql/{service}`
//! to services mounted in the same process (no network hop), validates JWTs on non-public
//! routes, rate-limits per IP and per user, handles CORS, and normalises errors.

pub mod docs;
pub mod routing;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use kernel::auth::{client_ip, resolve_auth_state, tag_actor, AuthState};
use kernel::extract::JsonLimit;
use kernel::lang::UrlLanguage;
use kernel::observe::RouteTemplate;
use kernel::ratelimit::{Decision, Quota};
use kernel::service::{database_ready, MountedService};
use kernel::{ApiError, Platform};
use serde_json::json;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};

use routing::Target;

struct Gateway {
    platform: Platform,
    services: HashMap<&'static str, MountedService>,
    timeout: Duration,
}

/// The gateway's router over the given in-process services; its layers wrap the whole
/// router once rather than each route.
pub fn router(platform: Platform, services: Vec<MountedService>) -> Router {
    let timeout = Duration::from_secs(platform.config().upstream_timeout_secs.max(1));
    let cors = cors_layer(platform.config());
    let gateway = Arc::new(Gateway {
        services: services.into_iter().map(|s| (s.spec.name, s)).collect(),
        platform,
        timeout,
    });
    let inner = tower::service_fn(move |req: Request| {
        let gateway = gateway.clone();
        async move { Ok::<_, std::convert::Infallible>(dispatch(gateway, req).await) }
    });
    let browser = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(preflight_no_content))
        .layer(cors)
        .service(inner.clone());
    // Only browser requests (with `Origin`) go through CORS: the layer's configuration is
    // cloned for every request it serves.
    type Branch = tower::util::BoxCloneSyncService<Request, Response, std::convert::Infallible>;
    let branches = Arc::new((Branch::new(inner), Branch::new(browser)));
    let by_origin = tower::service_fn(move |req: Request| {
        let (plain, browser) = &*branches;
        let branch = if req.headers().contains_key(header::ORIGIN) {
            browser.clone()
        } else {
            plain.clone()
        };
        branch.oneshot(req)
    });
    let stack = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn(kernel::observe::observe))
        // Inside `observe`, so a panic still gets a request id, a log line and a metric.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .service(by_origin);
    Router::new().fallback_service(stack)
}

fn cors_layer(config: &kernel::config::Config) -> CorsLayer {
    let exposed = [
        "x-request-id",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "retry-after",
        "idempotent-replayed",
    ]
    .map(header::HeaderName::from_static);
    let allowed = [
        "authorization",
        "content-type",
        "accept",
        "accept-language",
        "x-project-id",
        "project-id",
        "x-project",
        "x-api-key",
        "x-request-id",
        "idempotency-key",
        "if-match",
        "x-guest-token",
    ]
    .map(header::HeaderName::from_static);
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ];
    let layer = CorsLayer::new()
        .allow_methods(methods)
        .allow_headers(allowed)
        .expose_headers(exposed)
        .max_age(Duration::from_secs(600));
    if config.cors_allowed_origins.iter().any(|o| o == "*") {
        return layer.allow_origin(AllowOrigin::any());
    }
    let origins: Vec<HeaderValue> = config
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    layer.allow_origin(origins).allow_credentials(true)
}

/// CORS preflights answer 204 (conventions.md §2).
async fn preflight_no_content(req: Request, next: axum::middleware::Next) -> Response {
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = next.run(req).await;
    if preflight && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}

async fn dispatch(gw: Arc<Gateway>, req: Request) -> Response {
    let target = routing::resolve(req.uri().path());
    // Label for logs and metrics when no service route answered (bounded: never the raw path).
    let label = match &target {
        Target::GatewayHealth => "/health/",
        Target::GatewayReady => "/ready/",
        Target::Metrics => "/metrics",
        Target::Swagger => "/docs/swagger/",
        Target::Redoc => "/docs/redoc/",
        Target::Service { service, .. } if gw.services.contains_key(service) => "gateway",
        Target::NotFound | Target::WebApp | Target::Service { .. } => "unmatched",
    };
    let mut response = match target {
        Target::GatewayHealth => {
            Json(json!({"status": "healthy", "service": "zv-gateway"})).into_response()
        }
        Target::GatewayReady => ready(&gw).await,
        Target::Metrics => metrics(),
        Target::Swagger => docs::swagger(gw.services.keys().copied()),
        Target::Redoc => docs::redoc(req.uri().query()),
        Target::NotFound | Target::WebApp => ApiError::not_found().into_response(),
        Target::Service {
            service,
            path,
            lang,
        } => match gw.services.get(service) {
            Some(mounted) => forward(&gw, mounted, path, lang, req).await,
            None => ApiError::not_found().into_response(),
        },
    };
    if response.extensions().get::<RouteTemplate>().is_none() {
        response
            .extensions_mut()
            .insert(RouteTemplate(label.to_owned()));
    }
    response
}

async fn ready(gw: &Gateway) -> Response {
    let mut database = true;
    for service in gw.services.values() {
        database &= database_ready(&service.pool).await;
    }
    let cache = match gw.platform.redis() {
        Some(conn) => {
            let mut conn = conn.clone();
            let ping: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
            if ping.is_ok() {
                "ok"
            } else {
                "unavailable"
            }
        }
        None => "ok",
    };
    let ok = database && cache == "ok";
    // Without the broker requests still work (events wait in the outboxes): degraded, not down.
    let broker = kernel::service::broker_ready(&gw.platform).await;
    let status = match (ok, broker) {
        (false, _) => "unavailable",
        (true, "unavailable") => "degraded",
        _ => "ready",
    };
    let body = json!({
        "status": status,
        "checks": {"database": if database { "ok" } else { "unavailable" }, "cache": cache, "broker": broker}
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

fn metrics() -> Response {
    match kernel::observe::prometheus() {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => ApiError::service_unavailable("Metrics are not available.").into_response(),
    }
}

fn is_exempt(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/auth/health")
}

async fn rate_limit(gw: &Gateway, key: String, quota: Quota) -> Result<Option<Decision>, ApiError> {
    if !gw.platform.config().rate_limit.enabled {
        return Ok(None);
    }
    match gw.platform.limiter().check(&key, quota).await {
        Ok(decision) => Ok(Some(decision)),
        Err(e) => Err(ApiError::service_unavailable(format!(
            "Rate limiter unavailable: {e}"
        ))),
    }
}

async fn forward(
    gw: &Gateway,
    mounted: &MountedService,
    path: String,
    lang: Option<&'static str>,
    mut req: Request,
) -> Response {
    let config = gw.platform.config();
    let auth = resolve_auth_state(&gw.platform, req.headers()).await;
    let (user_id, project_id) = match &auth {
        AuthState::Authenticated(c) => (Some(c.user_id), c.project_id),
        _ => (None, None),
    };
    if !mounted.spec.is_public(&path) {
        match auth {
            AuthState::Authenticated(_) => {}
            AuthState::Anonymous => return ApiError::not_authenticated().into_response(),
            AuthState::Invalid => return ApiError::token_not_valid().into_response(),
        }
    }
    let decision = if is_exempt(&path) {
        None
    } else {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let (key, quota) = match user_id {
            Some(id) => (
                format!("gw:user:{id}"),
                Quota::per_minute(config.rate_limit.user_per_minute),
            ),
            None => {
                let ip = client_ip(req.headers(), peer, config.trust_forwarded_for);
                (
                    format!("gw:ip:{ip}"),
                    Quota::per_minute(config.rate_limit.anonymous_per_minute),
                )
            }
        };
        match rate_limit(gw, key, quota).await {
            Ok(d) => d,
            Err(e) => return e.into_response(),
        }
    };
    if let Some(d) = decision.filter(|d| !d.allowed) {
        let mut response = ApiError::throttled(d.retry_after_secs()).into_response();
        d.write_headers(response.headers_mut());
        return response;
    }
    // Services see their own path; links they build (pagination) use the public one.
    let original = axum::extract::OriginalUri(req.uri().clone());
    req.extensions_mut().insert(original);
    let uri = match req.uri().query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    match uri.parse::<Uri>() {
        Ok(uri) => *req.uri_mut() = uri,
        Err(_) => return ApiError::not_found().into_response(),
    }
    let extensions = req.extensions_mut();
    extensions.insert(auth);
    extensions.insert(gw.platform.clone());
    extensions.insert(JsonLimit(config.limits.json_body_bytes));
    if let Some(lang) = lang {
        extensions.insert(UrlLanguage(lang));
    }
    let mut call = std::pin::pin!(mounted.router.clone().oneshot(req.map(Body::new)));
    // Most calls finish on their first poll; only the others pay for a timer.
    let outcome = match futures::poll!(&mut call) {
        std::task::Poll::Ready(result) => Ok(result),
        std::task::Poll::Pending => tokio::time::timeout(gw.timeout, call).await,
    };
    let mut response = match outcome {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => ApiError::gateway_timeout().into_response(),
    };
    if let Some(d) = decision {
        d.write_headers(response.headers_mut());
    }
    tag_actor(response, user_id, project_id)
}
