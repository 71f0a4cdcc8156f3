//! Login brute force, gateway limits per IP and per user, and limits shared through Redis.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{redis_url, TestApp, PASSWORD};

#[tokio::test]
async fn login_brute_force_is_throttled_per_ip_and_username() {
    let app = TestApp::spawn_with(|c| c.rate_limit.login_per_minute = 5).await;
    app.user("target", false).await;
    app.user("bystander", false).await;
    for _ in 0..5 {
        let (status, _, _) = app
            .post(
                "/api/v1/auth/login/",
                json!({"username": "target", "password": "guess-1234"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body, headers) = app
        .post(
            "/api/v1/auth/login/",
            json!({"username": "TARGET", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    assert_eq!(body["code"], "throttled");
    let retry: u64 = headers["retry-after"]
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!(retry >= 1);
    assert_eq!(
        body["detail"],
        format!("Request was throttled. Expected available in {retry} seconds.")
    );
    let (status, _, _) = app
        .post(
            "/api/v1/auth/token/",
            json!({"username": "bystander", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "other usernames from the same IP are not locked out"
    );
    let last_login: Option<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT last_login FROM users WHERE username = 'target'")
            .fetch_one(&app.pool)
            .await
            .expect("row");
    assert!(last_login.is_none(), "the throttled login did nothing");
}

#[tokio::test]
async fn gateway_limits_anonymous_ips_and_users_with_headers() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.anonymous_per_minute = 3;
        c.rate_limit.user_per_minute = 4;
    })
    .await;
    for expected_remaining in ["2", "1", "0"] {
        let (status, _, headers) = app
            .post("/api/v1/auth/token/verify/", json!({"token": "x"}), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(headers["x-ratelimit-limit"], "3");
        assert_eq!(headers["ratelimit-remaining"], expected_remaining);
        assert!(
            headers.contains_key("x-ratelimit-reset") && headers.contains_key("ratelimit-reset")
        );
    }
    let (status, body, headers) = app
        .post("/api/v1/auth/token/verify/", json!({"token": "x"}), None)
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::TOO_MANY_REQUESTS, json!("throttled"))
    );
    assert!(headers.contains_key("retry-after"));
    assert_eq!(
        app.get("/health/", None).await.0,
        StatusCode::OK,
        "health is exempt"
    );

    // Users have their own budget, keyed by user, not IP.
    app.user("busy", false).await;
    let (access, _) = {
        // The anonymous budget is spent: log in through the service directly.
        let user = zv_auth::data::users::by_login(&app.pool, "busy")
            .await
            .expect("q")
            .expect("user");
        let pair = zv_auth::tokens::login(&app.platform, &app.pool, &user, "127.0.0.1", None)
            .await
            .expect("login");
        (pair.access, pair.refresh)
    };
    for _ in 0..4 {
        assert_eq!(
            app.get("/api/v1/auth/user/", Some(&access)).await.0,
            StatusCode::OK
        );
    }
    assert_eq!(
        app.get("/api/v1/auth/user/", Some(&access)).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn two_gateways_share_limits_through_redis() {
    let first = TestApp::spawn_with(|c| {
        c.redis_url = Some(kernel::config::Secret::new(redis_url()));
        c.rate_limit.anonymous_per_minute = 4;
    })
    .await;
    let second = TestApp::spawn_sibling(first.config()).await;
    for app in [&first, &second, &first, &second] {
        let (status, _, _) = app
            .post("/api/v1/auth/token/verify/", json!({"token": "x"}), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    for app in [&first, &second] {
        let (status, _, _) = app
            .post("/api/v1/auth/token/verify/", json!({"token": "x"}), None)
            .await;
        assert_eq!(
            status,
            StatusCode::TOO_MANY_REQUESTS,
            "the budget is one across both gateways"
        );
    }
    // Revocations are shared too: logout on one gateway kills the token on the other.
    first.user("roamer", false).await;
    let user = zv_auth::data::users::by_login(&first.pool, "roamer")
        .await
        .expect("q")
        .expect("user");
    let pair = zv_auth::tokens::login(&first.platform, &first.pool, &user, "127.0.0.1", None)
        .await
        .expect("login");
    assert_eq!(
        second.get("/api/v1/auth/user/", Some(&pair.access)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        first
            .post("/api/v1/auth/logout/", json!({}), Some(&pair.access))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        second.get("/api/v1/auth/user/", Some(&pair.access)).await.0,
        StatusCode::UNAUTHORIZED
    );
}
