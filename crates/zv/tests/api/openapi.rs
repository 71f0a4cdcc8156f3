//! Every service documents every operation it mounts, in OpenAPI 3.1, from the code that
//! routes (resources describe themselves; hand-written handlers declare theirs).

use axum::http::StatusCode;

use crate::harness::TestApp;

/// The services built so far (those with migrations).
fn service_names() -> impl Iterator<Item = &'static str> {
    zv::MIGRATIONS.iter().map(|(name, _)| *name)
}

#[tokio::test]
async fn every_mounted_operation_is_documented() {
    let app = TestApp::spawn().await;
    let services = zv::build_services(&app.platform).await.expect("services");
    assert_eq!(services.len(), service_names().count());
    for service in &services {
        let prefix = format!("/api/v1/{}", service.spec.name);
        assert!(
            service.api.mounted.len() >= 10,
            "{prefix} mounts {} operations",
            service.api.mounted.len()
        );
        let missing = service.api.undocumented(&prefix);
        assert!(missing.is_empty(), "undocumented in {prefix}: {missing:#?}");
    }
    // The check itself finds a route its document lacks.
    let mut product = (*services[2].api).clone();
    let doc = product.document.as_mut().expect("document");
    doc.paths
        .paths
        .remove("/api/v1/product/products/{id}/images/{image}/");
    assert_eq!(
        product.undocumented("/api/v1/product").len(),
        4,
        "GET, PATCH, PUT and DELETE of an image"
    );
}

#[tokio::test]
async fn each_service_serves_its_document_and_the_viewers_list_them() {
    let app = TestApp::spawn().await;
    for service in service_names() {
        let (status, doc, _) = app
            .get(&format!("/api/v1/{service}/openapi.json"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{service}");
        assert_eq!(doc["openapi"], "3.1.0", "{service}");
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.len() >= 10, "{service}: {} paths", paths.len());
        for (path, item) in paths {
            assert!(
                path.starts_with(&format!("/api/v1/{service}/")),
                "{service}: {path}"
            );
            for (method, op) in item.as_object().expect("path item") {
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{service}: {method} {path} has responses"
                );
                let templated = path.matches('{').count();
                let in_path = op["parameters"]
                    .as_array()
                    .map_or(0, |p| p.iter().filter(|p| p["in"] == "path").count());
                assert_eq!(templated, in_path, "{service}: {method} {path} parameters");
            }
        }
    }
    let (_, product, _) = app.get("/api/v1/product/openapi.json", None).await;
    let list = &product["paths"]["/api/v1/product/products/categories/"]["get"];
    let names: Vec<&str> = list["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    for name in [
        "page",
        "page_size",
        "search",
        "ordering",
        "parent",
        "featured",
    ] {
        assert!(
            names.contains(&name),
            "categories list takes {name}: {names:?}"
        );
    }
    let create = &product["paths"]["/api/v1/product/products/categories/"]["post"];
    let body = &create["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(body["required"], serde_json::json!(["name"]), "{body}");
    let swagger = app
        .client
        .get(app.url("/docs/swagger/"))
        .send()
        .await
        .expect("swagger")
        .text()
        .await
        .expect("html");
    for service in service_names() {
        assert!(
            swagger.contains(&format!("/api/v1/{service}/openapi.json")),
            "{service} in swagger"
        );
        let redoc = app
            .client
            .get(app.url(&format!("/docs/redoc/?service={service}")))
            .send()
            .await
            .expect("redoc")
            .text()
            .await
            .expect("html");
        assert!(redoc.contains(&format!("/api/v1/{service}/openapi.json")));
    }
}
