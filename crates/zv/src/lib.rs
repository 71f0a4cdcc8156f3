//! Composition of the platform: which services run in this process, behind the gateway.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use kernel::config::Config;
use kernel::platform::PlatformOverrides;
use kernel::service::MountedService;
use kernel::Platform;
use tokio::net::TcpListener;

/// The platform's services (those built so far). Auth first: it installs the membership
/// directory and the user lookups the others use.
pub async fn build_services(platform: &Platform) -> anyhow::Result<Vec<MountedService>> {
    let services = vec![
        zv_auth::build(platform).await?,
        zv_project::build(platform).await?,
        zv_product::build(platform).await?,
        zv_inventory::build(platform).await?,
        zv_order::build(platform).await?,
        zv_billing::build(platform).await?,
    ];
    // With RabbitMQ, every consuming service now reads its queue.
    platform.events().start();
    Ok(services)
}

/// Each service's database migrations, for `zv migrate`.
pub const MIGRATIONS: &[(&str, &sqlx::migrate::Migrator)] = &[
    (zv_auth::SPEC.name, &zv_auth::MIGRATOR),
    (zv_project::SPEC.name, &zv_project::MIGRATOR),
    (zv_product::SPEC.name, &zv_product::MIGRATOR),
    (zv_inventory::SPEC.name, &zv_inventory::MIGRATOR),
    (zv_order::SPEC.name, &zv_order::MIGRATOR),
    (zv_billing::SPEC.name, &zv_billing::MIGRATOR),
];

/// Everything `zv up` serves: the gateway over every service, in one process.
pub async fn build_app(
    config: Config,
    overrides: PlatformOverrides,
) -> anyhow::Result<(Router, Platform)> {
    let _ = kernel::observe::prometheus();
    let platform = Platform::new(config, overrides).await?;
    let services = build_services(&platform).await?;
    Ok((gateway::router(platform.clone(), services), platform))
}

/// Like [`build_app`] with more services mounted beside the platform's own.
pub async fn build_app_with(
    platform: Platform,
    extra: Vec<MountedService>,
) -> anyhow::Result<Router> {
    let mut services = build_services(&platform).await?;
    services.extend(extra);
    Ok(gateway::router(platform, services))
}

/// One service on its own, for scale-out behind `zv gateway` (and as the benchmark's
/// no-gateway baseline): its routes under `/api/v1/{service}`, tokens verified here again,
/// trailing slash optional; no gateway routing, CORS or rate limits.
pub async fn build_service_app(config: Config, service: &str) -> anyhow::Result<Router> {
    let _ = kernel::observe::prometheus();
    let platform = Platform::new(config, PlatformOverrides::default()).await?;
    let mounted = build_services(&platform)
        .await?
        .into_iter()
        .find(|s| s.spec.name == service)
        .ok_or_else(|| anyhow::anyhow!("unknown or unbuilt service {service:?}"))?;
    Ok(service_app(platform, mounted))
}

/// The stack of a service served alone: request id, logs and metrics, its own token check,
/// optional trailing slash, routes under `/api/v1/{service}`.
pub fn service_app(platform: Platform, mounted: MountedService) -> Router {
    let prefix = format!("/api/v1/{}", mounted.spec.name);
    let inner = Router::new().nest(&prefix, mounted.router);
    let json_limit = kernel::extract::JsonLimit(platform.config().limits.json_body_bytes);
    let dispatch = move |mut req: axum::extract::Request| {
        let inner = inner.clone();
        async move {
            let path = req.uri().path();
            if path.len() > 1 && path.ends_with('/') {
                let trimmed = path.trim_end_matches('/');
                let uri = match req.uri().query() {
                    Some(q) => format!("{trimmed}?{q}"),
                    None => trimmed.to_owned(),
                };
                if let Ok(uri) = uri.parse() {
                    *req.uri_mut() = uri;
                }
            }
            req.extensions_mut().insert(json_limit);
            tower::ServiceExt::oneshot(inner, req).await
        }
    };
    Router::new()
        .fallback(dispatch)
        .layer(axum::middleware::from_fn_with_state(
            platform,
            kernel::auth::authenticate,
        ))
        .layer(axum::middleware::from_fn(kernel::observe::observe))
}

/// Serves `app` on an already-bound listener until `shutdown` resolves, then drains.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
