//! In-process cost of the gateway stack: the same requests sent with `tower::oneshot` to the
//! gateway router and to the service's own stack (`zv serve` without a socket), in
//! alternating rounds; no network, no load generator competing for the cores.
//! Needs PostgreSQL (`ZV_DATABASE_URL`). Run: `cargo bench -p zv --bench gateway_overhead`.

use std::time::Instant;

use axum::body::Body;
use axum::http::Request;
use axum::Router;
use kernel::auth::AuthState;
use kernel::config::{Config, Secret};
use kernel::platform::PlatformOverrides;
use kernel::Platform;
use tower::ServiceExt;

const ROUNDS: usize = 7;

/// How a request reaches the handler.
#[derive(Clone)]
enum Via {
    /// Full external path, bearer header: the app does everything.
    Stack(Router),
    /// The service's router alone: service-relative path, claims already verified.
    Bare(Router, Platform, AuthState),
}

async fn call(via: &Via, path: &str, token: Option<&str>) -> u16 {
    let response = match via {
        Via::Stack(app) => {
            let mut req = Request::get(path);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            app.clone()
                .oneshot(req.body(Body::empty()).unwrap_or_default())
                .await
        }
        Via::Bare(router, platform, state) => {
            let relative = path
                .trim_start_matches("/api/v1/auth")
                .trim_end_matches('/');
            let mut req = Request::get(relative)
                .body(Body::empty())
                .unwrap_or_default();
            req.extensions_mut().insert(platform.clone());
            req.extensions_mut().insert(state.clone());
            router.clone().oneshot(req).await
        }
    };
    match response {
        Ok(r) => {
            let status = r.status().as_u16();
            let _ = axum::body::to_bytes(r.into_body(), usize::MAX).await;
            status
        }
        Err(never) => match never {},
    }
}

/// Nanoseconds per request for each way, median over rounds, the ways alternating.
async fn compare(ways: &[Via], path: &str, token: Option<&str>, n: usize) -> Vec<f64> {
    for via in ways {
        assert_eq!(call(via, path, token).await, 200, "{path}");
    }
    let mut samples = vec![Vec::new(); ways.len()];
    for _ in 0..ROUNDS {
        for (via, out) in ways.iter().zip(samples.iter_mut()) {
            let started = Instant::now();
            for _ in 0..n {
                call(via, path, token).await;
            }
            out.push(started.elapsed().as_nanos() as f64 / n as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut v| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let id = std::process::id();
    let mut config = Config {
        database_url: Secret::new(
            std::env::var("ZV_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        ),
        database_prefix: format!("benchgw{id}_"),
        data_dir: std::env::temp_dir().join(format!("zv-bench-{id}")),
        ..Config::default()
    };
    config.rate_limit.anonymous_per_minute = u32::MAX;
    config.rate_limit.user_per_minute = u32::MAX;
    // Logs go nowhere: the subscriber is not installed, in both apps alike.
    let platform = Platform::new(config.clone(), PlatformOverrides::default()).await?;
    let services = zv::build_services(&platform).await?;
    let auth = services
        .iter()
        .find(|s| s.spec.name == "auth")
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("auth"))?;
    let gateway = gateway::router(platform.clone(), services);
    let direct = zv::service_app(platform.clone(), auth.clone());

    let user = zv_auth::create_user(
        &auth.pool,
        "bench",
        "bench@example.com",
        "Bench-pass-123",
        false,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair = zv_auth::tokens::login(&platform, &auth.pool, &user, "127.0.0.1", None)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;

    let claims = platform
        .verifier()
        .authenticate(&pair.access)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let ways = [
        Via::Stack(gateway.clone()),
        Via::Stack(direct.clone()),
        Via::Bare(
            auth.router.clone(),
            platform.clone(),
            AuthState::Authenticated(claims),
        ),
    ];
    let mut timings: Vec<Vec<f64>> = Vec::new();
    println!("| request | gateway | service alone (`zv serve`) | bare handler | gateway vs service alone | gateway vs bare |");
    println!("|---|---|---|---|---|---|");
    for (label, path, token, n) in [
        (
            "GET /api/v1/auth/health/",
            "/api/v1/auth/health/",
            None,
            20_000,
        ),
        (
            "GET /api/v1/auth/auth/user/ (bearer, one DB query)",
            "/api/v1/auth/auth/user/",
            Some(pair.access.as_str()),
            2_000,
        ),
    ] {
        let t = compare(&ways, path, token, n).await;
        timings.push(t.clone());
        let pct = |a: f64, b: f64| {
            format!(
                "{:+.1}% ({:+.2} µs)",
                (a / b - 1.0) * 100.0,
                (a - b) / 1000.0
            )
        };
        println!(
            "| {label} | {:.2} µs | {:.2} µs | {:.2} µs | {} | {} |",
            t[0] / 1000.0,
            t[1] / 1000.0,
            t[2] / 1000.0,
            pct(t[0], t[1]),
            pct(t[0], t[2])
        );
    }
    // The stack's own cost is what the gateway adds to the trivial handler; the DB-bound row
    // moves by more than that with query latency alone, so the share is computed, not read off.
    if let [health, user] = timings.as_slice() {
        let stack = health[0] - health[2];
        println!(
            "\nGateway stack: {:.2} µs per request (gateway − bare handler on health) = {:.1}% of the bare auth/user handler ({:.0} µs).",
            stack / 1000.0,
            stack / user[2] * 100.0,
            user[2] / 1000.0
        );
    }
    // The token check alone: verified-token cache plus the revocation lookup.
    let n = 20_000;
    let started = Instant::now();
    for _ in 0..n {
        let _ = platform.verifier().authenticate(&pair.access).await;
    }
    let cached = started.elapsed().as_nanos() as f64 / n as f64;
    let started = Instant::now();
    for _ in 0..2_000 {
        let _ = platform
            .keys()
            .verify(&pair.access, kernel::jwt::TokenType::Access);
    }
    let uncached = started.elapsed().as_nanos() as f64 / 2_000.0;
    println!("\nToken check per request: {:.2} µs cached (what requests pay), {:.2} µs for a signature verification (once per token).", cached / 1000.0, uncached / 1000.0);
    println!("\n{ROUNDS} alternating rounds, medians; single-threaded runtime; logs not installed; `cargo bench -p zv --bench gateway_overhead`.");

    drop((gateway, direct));
    auth.pool.close().await;
    let server: sqlx::postgres::PgConnectOptions = config.database_url.expose().parse()?;
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&server).await?;
    sqlx::query(&format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        config.database_name("auth")
    ))
    .execute(&mut conn)
    .await?;
    let _ = std::fs::remove_dir_all(&config.data_dir);
    Ok(())
}
