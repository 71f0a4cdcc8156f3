//! Forged, expired, revoked and reused tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use kernel::jwt::{new_jti, Claims, TokenType};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{s, TestApp};

fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("b64")).expect("json")
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn assert_rejected(app: &TestApp, token: &str, why: &str) {
    let (status, body, headers) = app.get("/api/v1/auth/auth/user/", Some(token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
    assert_eq!(body["code"], "token_not_valid", "{why}");
    assert!(headers.contains_key("www-authenticate"), "{why}");
}

#[tokio::test]
async fn forged_tokens_are_refused() {
    let app = TestApp::spawn().await;
    app.user("victim", true).await;
    let (access, refresh) = app.login("victim").await;
    let claims = payload(&access);

    // alg none.
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims)
    );
    assert_rejected(&app, &none, "alg none").await;

    // HS256 signed with a guessed secret (and with the public key's bytes as the secret).
    for secret in ["secret", "django-insecure-key"] {
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode");
        assert_rejected(&app, &forged, "HS256").await;
    }
    let jwks = app.get("/.well-known/jwks.json", None).await.1;
    let x = s(&jwks["keys"][0]["x"]);
    let kid = s(&jwks["keys"][0]["kid"]);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(kid);
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
    )
    .expect("encode");
    assert_rejected(&app, &confused, "key confusion").await;

    // Tampered payload with the original signature.
    let mut tampered = claims.clone();
    tampered["user_id"] = json!("999");
    let parts: Vec<&str> = access.split('.').collect();
    assert_rejected(
        &app,
        &format!("{}.{}.{}", parts[0], b64(&tampered), parts[2]),
        "tampered",
    )
    .await;

    // A refresh token used as an access token.
    assert_rejected(&app, &refresh, "refresh as access").await;

    // Expired (signed with the real key, past the leeway).
    let now = Utc::now().timestamp();
    let expired = Claims {
        token_type: TokenType::Access,
        exp: now - 120,
        iat: now - 1000,
        jti: new_jti(),
        user_id: claims["user_id"]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("id"),
        username: "victim".into(),
        email: None,
        project_id: None,
        role: None,
        is_staff: true,
        is_superuser: true,
        sid: None,
    };
    assert_rejected(
        &app,
        &app.platform.keys().sign(&expired).expect("sign"),
        "expired",
    )
    .await;

    // Garbage and wrong schemes.
    assert_rejected(&app, "not-a-jwt", "garbage").await;
    let (status, body, _) = app
        .send(
            app.client
                .get(app.url("/api/v1/auth/auth/user/"))
                .header("authorization", "Basic dXNlcjpwYXNz"),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token_not_valid"))
    );
    // An empty header is anonymous (Apollo sends it).
    let (status, body, _) = app
        .send(
            app.client
                .get(app.url("/api/v1/auth/auth/user/"))
                .header("authorization", ""),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("not_authenticated"))
    );
    // Still fine: the original token.
    assert_eq!(
        app.get("/api/v1/auth/auth/user/", Some(&access)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn reused_refresh_inside_grace_returns_the_same_pair_and_after_it_revokes_the_family() {
    let app = TestApp::spawn_with(|c| c.jwt.refresh_reuse_grace_secs = 2).await;
    app.user("tabs", false).await;
    let (_, refresh) = app.login("tabs").await;

    // Two tabs refresh at once with the same token: both get the same successor.
    let body = json!({"refresh": refresh});
    let (a, b) = tokio::join!(
        app.post("/api/v1/auth/token/refresh/", body.clone(), None),
        app.post("/api/v1/auth/token/refresh/", body.clone(), None)
    );
    assert_eq!(
        (a.0, b.0),
        (StatusCode::OK, StatusCode::OK),
        "{} {}",
        a.1,
        b.1
    );
    assert_eq!(a.1, b.1, "same successor pair inside the grace window");
    let successor = a.1;
    assert_eq!(
        app.get("/api/v1/auth/user/", Some(&s(&successor["access"])))
            .await
            .0,
        StatusCode::OK
    );

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, body, _) = app.post("/api/v1/auth/token/refresh/", body, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Token is blacklisted");
    // The whole family is gone: the successor refresh and its access token.
    let (status, _, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": s(&successor["refresh"])}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/auth/user/", Some(&s(&successor["access"])))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    let (status, _, _) = app
        .post(
            "/api/v1/auth/token/verify/",
            json!({"token": s(&successor["refresh"])}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_and_verify_reject_bad_input() {
    let app = TestApp::spawn().await;
    let (status, body, _) = app
        .post("/api/v1/auth/token/refresh/", json!({}), None)
        .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"refresh": ["This field is required."]})
        )
    );
    let (status, body, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": "x.y.z"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token_not_valid"))
    );
    let (status, _, _) = app
        .post(
            "/api/v1/auth/token/verify/",
            json!({"token": "x.y.z"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A deactivated user cannot refresh.
    app.user("gone", false).await;
    let (_, refresh) = app.login("gone").await;
    sqlx::query("UPDATE users SET is_active = FALSE")
        .execute(&app.pool)
        .await
        .expect("deactivate");
    let (status, body, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": refresh}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("user_inactive"))
    );
}

#[tokio::test]
async fn stale_sessions_must_refresh() {
    let app = TestApp::spawn().await;
    app.user("demoted", false).await;
    let (access, refresh) = app.login("demoted").await;
    let claims = app
        .platform
        .keys()
        .verify(&access, TokenType::Access)
        .expect("claims");
    app.platform
        .verifier()
        .mark_stale(&claims.sid.expect("sid"))
        .await
        .expect("stale");
    assert_rejected(&app, &access, "stale").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (status, pair, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.get("/api/v1/auth/user/", Some(&s(&pair["access"])))
            .await
            .0,
        StatusCode::OK
    );
}
