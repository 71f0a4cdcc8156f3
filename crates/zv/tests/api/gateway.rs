//! The gateway's contract: routing, aliases, errors, request ids, CORS, docs, metrics, and
//! failing services.

use axum::routing::get;
use axum::Router;
use kernel::service::{mount, MountedService, ServiceSpec};
use kernel::Platform;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::harness::TestApp;

#[tokio::test]
async fn health_request_ids_and_not_found_shapes() {
    let app = TestApp::spawn().await;
    let (status, body, headers) = app.get("/health/", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!({"status": "healthy", "service": "zv-gateway"})
        )
    );
    assert_eq!(
        headers["x-request-id"].to_str().map(str::len).unwrap_or(0),
        36,
        "generated UUID"
    );
    for path in [
        "/api/v1/auth/health/",
        "/api/v1/auth/auth/health",
        "/en/api/v1/auth/health/",
    ] {
        let (status, body, _) = app.get(path, Some("garbage-token")).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(
            body,
            json!({"status": "healthy", "service": "zv-auth-service"})
        );
    }
    let (_, _, headers) = app
        .send(
            app.client
                .get(app.url("/health"))
                .header("x-request-id", "trace-abc-123"),
        )
        .await;
    assert_eq!(headers["x-request-id"], "trace-abc-123");
    let (status, body, _) = app.get("/ready/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["checks"]["database"], "ok");

    let not_found = json!({"detail": "Not found.", "code": "not_found"});
    for path in [
        "/api/v1/nosuch/things/",
        "/api/v2/auth/user/",
        "/graphql",
        "/api/v1/analytics/",
        "/api/v1/auth/nosuch/",
    ] {
        let (status, body, headers) = app.get(path, None).await;
        let expected = if path == "/api/v1/auth/nosuch/" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(status, expected, "{path}");
        if expected == StatusCode::NOT_FOUND {
            assert_eq!(body, not_found, "{path}");
        }
        assert!(headers.contains_key("x-request-id"));
    }
    app.user("nf", false).await;
    let (access, _) = app.login("nf").await;
    let (status, body, _) = app.get("/api/v1/auth/nosuch/", Some(&access)).await;
    assert_eq!((status, body), (StatusCode::NOT_FOUND, not_found));
    let (status, body, _) = app
        .send(app.client.delete(app.url("/api/v1/auth/auth/token/")))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed"))
    );
}

#[tokio::test]
async fn bodies_are_checked_before_anything_happens() {
    let app = TestApp::spawn_with(|c| c.limits.json_body_bytes = 1024).await;
    let (status, body, _) = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/register/"))
                .header("content-type", "application/json")
                .body("{bad json"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], "parse_error");
    assert!(body["detail"]
        .as_str()
        .is_some_and(|d| d.starts_with("JSON parse error - ")));
    let huge = json!({"username": "x".repeat(4096), "email": "a@b.co", "password": "Whatever-123"});
    let (status, body, _) = app.post("/api/v1/auth/register/", huge, None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("payload_too_large"))
    );
    let (status, body, _) = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/register/"))
                .header("content-type", "text/plain")
                .body("username=x"),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!("unsupported_media_type")
        )
    );
    let (status, body, _) = app
        .post(
            "/api/v1/auth/register/",
            json!({"username": ["a"], "email": 5}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.is_object() && body.get("code").is_none(),
        "a field map: {body}"
    );
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(users, 0);
}

#[tokio::test]
async fn cors_docs_metrics_and_language_prefix() {
    let app = TestApp::spawn().await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/api/v1/auth/auth/user/"))
        .header("origin", "https://shop.example.com")
        .header("access-control-request-method", "GET")
        .header(
            "access-control-request-headers",
            "authorization,x-project-id",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://shop.example.com"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );
    let foreign = app
        .client
        .get(app.url("/health/"))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .expect("get");
    assert!(!foreign
        .headers()
        .contains_key("access-control-allow-origin"));

    let (status, spec, _) = app.get("/api/v1/auth/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/auth/auth/user/upload-image/",
        "/api/v1/auth/address/{id}/",
        "/api/v1/auth/country/{slug}/",
        "/api/v1/auth/.well-known/jwks.json",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    assert!(
        spec["paths"]["/api/v1/auth/auth/token/"].is_object(),
        "{}",
        spec["paths"]
    );
    for page in ["/docs/swagger/", "/docs/redoc/"] {
        let response = app.client.get(app.url(page)).send().await.expect("docs");
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response
            .text()
            .await
            .expect("html")
            .contains("/api/v1/auth/openapi.json"));
    }

    app.user("polyglot", false).await;
    let (access, _) = app.login("polyglot").await;
    let (status, body, _) = app.get("/ar/api/v1/auth/auth/user/", Some(&access)).await;
    assert_eq!(
        (status, body["username"].clone()),
        (StatusCode::OK, json!("polyglot"))
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(
        metrics.contains("route=\"/health/\""),
        "gateway routes have their own label"
    );
    assert!(
        metrics.contains("route=\"/api/v1/auth/auth/user\""),
        "labelled by template"
    );
    let jwks = app.get("/.well-known/jwks.json", None).await.1;
    assert_eq!(jwks["keys"][0]["crv"], "Ed25519");
    assert_eq!(
        app.get("/api/v1/auth/.well-known/jwks.json", None).await.1,
        jwks
    );
}

static SLOW: ServiceSpec = ServiceSpec {
    name: "admin",
    health_name: "zv_admin_interface",
    public_paths: &["/slow", "/boom"],
    public_exact: &[],
};

fn failing_service(_: &Platform, pool: PgPool) -> Vec<MountedService> {
    let routes = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/boom",
            get(|| async {
                let input: Vec<u8> = Vec::new();
                // A handler bug: indexing past the end panics.
                format!("{}", input[usize::from(input.is_empty())])
            }),
        );
    vec![mount(
        &SLOW,
        "/api/v1/admin",
        routes,
        pool,
        Default::default(),
    )]
}

#[tokio::test]
async fn failing_services_answer_in_the_standard_shape_never_hang() {
    let app = TestApp::spawn_with_services(failing_service).await;
    let started = std::time::Instant::now();
    let (status, body, _) = app.get("/api/v1/admin/slow/", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::GATEWAY_TIMEOUT, json!("gateway_timeout"))
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let (status, body, headers) = app.get("/api/v1/admin/boom/", None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::INTERNAL_SERVER_ERROR, json!("server_error"))
    );
    assert_eq!(
        body["request_id"].as_str(),
        headers["x-request-id"].to_str().ok()
    );
    assert!(
        !body.to_string().contains("out of bounds"),
        "no cause leaks"
    );
    // The process survived.
    assert_eq!(app.get("/health/", None).await.0, StatusCode::OK);
}

static SCOPED: ServiceSpec = ServiceSpec {
    name: "catalog",
    health_name: "zv_catalog_service",
    public_paths: &[],
    public_exact: &[],
};

/// A tenant resource guarded by the kernel's project scope and permission check.
fn scoped_service(_: &Platform, pool: PgPool) -> Vec<MountedService> {
    use kernel::auth::ProjectScope;
    use kernel::rbac::Grants;
    let read = |scope: ProjectScope| async move {
        scope.require("catalog.view_listing", &Grants::default())?;
        Ok::<_, kernel::ApiError>(axum::Json(
            json!({"project_id": scope.project_id(), "role": scope.role()}),
        ))
    };
    let write = |scope: ProjectScope| async move {
        scope.require("catalog.delete_listing", &Grants::default())?;
        Ok::<_, kernel::ApiError>(axum::Json(json!({"deleted": true})))
    };
    let routes = Router::new().route("/listings", get(read).delete(write));
    vec![mount(
        &SCOPED,
        "/api/v1/catalog",
        routes,
        pool,
        Default::default(),
    )]
}

#[tokio::test]
async fn project_scope_checks_membership_and_permissions() {
    use kernel::rbac::Role;
    use zv_auth::data::memberships::{upsert_member, upsert_project};
    let app = TestApp::spawn_with_services(scoped_service).await;
    let viewer = app.user("viewer", false).await;
    let admin = app.user("admin", false).await;
    app.user("outsider", false).await;
    app.user("root", true).await;
    upsert_project(&app.pool, 7, admin).await.expect("project");
    upsert_project(&app.pool, 8, admin).await.expect("project");
    upsert_member(&app.pool, 7, viewer, Role::Viewer)
        .await
        .expect("member");
    let viewer_t = app.login("viewer").await.0;
    let outsider_t = app.login("outsider").await.0;
    let root_t = app.login("root").await.0;
    let admin_t = app.login("admin").await.0;

    let get = |t: String, project: Option<&'static str>| {
        let mut req = app
            .client
            .get(app.url("/api/v1/catalog/listings/"))
            .bearer_auth(t);
        if let Some(p) = project {
            req = req.header("X-Project-Id", p);
        }
        req
    };
    let (status, body, _) = app.send(get(viewer_t.clone(), None)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("project_required"))
    );
    let (status, body, _) = app.send(get(viewer_t.clone(), Some("7"))).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"project_id": 7, "role": "viewer"}))
    );
    let (status, body, _) = app.send(get(viewer_t.clone(), Some("8"))).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_project_member"))
    );
    let (status, _, _) = app.send(get(outsider_t, Some("7"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body, _) = app.send(get(viewer_t.clone(), Some("seven"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["X-Project-ID"].is_array(), "{body}");
    // The owner of record is owner; a superuser enters as admin.
    let (_, body, _) = app.send(get(admin_t, Some("8"))).await;
    assert_eq!(body["role"], "owner");
    let (_, body, _) = app.send(get(root_t.clone(), Some("8"))).await;
    assert_eq!(body["role"], "admin");
    let (status, _, _) = app.send(get(root_t, Some("999"))).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "not even superusers enter a project that does not exist"
    );

    // Viewers read but cannot delete.
    let delete = app
        .client
        .delete(app.url("/api/v1/catalog/listings"))
        .bearer_auth(&viewer_t)
        .header("project-id", "7");
    let (status, body, _) = app.send(delete).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("permission_denied"))
    );
    // A token scoped to the project needs no header.
    let (_, pair, _) = app
        .post(
            "/api/v1/auth/token/change_project/",
            json!({"project_id": 7}),
            Some(&viewer_t),
        )
        .await;
    let scoped = pair["access"].as_str().expect("access").to_owned();
    let (status, body, _) = app
        .send(
            app.client
                .get(app.url("/api/v1/catalog/listings"))
                .bearer_auth(scoped),
        )
        .await;
    assert_eq!(
        (status, body["project_id"].clone()),
        (StatusCode::OK, json!(7))
    );
}

#[tokio::test]
async fn a_service_served_alone_verifies_tokens_itself() {
    let app = TestApp::spawn().await;
    app.user("direct", false).await;
    let (access, _) = app.login("direct").await;
    let service = zv::build_service_app(app.config(), "auth")
        .await
        .expect("service app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(zv::serve(listener, service, async {
        let _ = rx.await;
    }));
    let client = reqwest::Client::new();
    let me = client
        .get(format!("{base}/api/v1/auth/auth/user"))
        .bearer_auth(&access)
        .send()
        .await
        .expect("get");
    assert_eq!(me.status(), StatusCode::OK);
    for (token, code) in [
        (None, "not_authenticated"),
        (Some("forged.token.here"), "token_not_valid"),
    ] {
        let mut req = client.get(format!("{base}/api/v1/auth/auth/user/"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let response = req.send().await.expect("get");
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body: serde_json::Value = response.json().await.expect("json");
        assert_eq!(body["code"], code);
    }
    let health: serde_json::Value = client
        .get(format!("{base}/api/v1/auth/health/"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(health["service"], "zv-auth-service");
    let _ = tx.send(());
    assert!(zv::build_service_app(app.config(), "nosuch").await.is_err());
}
