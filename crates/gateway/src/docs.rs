//! Swagger UI and ReDoc pages over each service's `/api/v1/{service}/openapi.json`.
//! The pages load the viewers' scripts from a public CDN; the specs come from this server.

use axum::response::{Html, IntoResponse, Response};

use crate::routing::SERVICES;

pub fn swagger<'a>(mounted: impl Iterator<Item = &'a str>) -> Response {
    let mut names: Vec<&str> = mounted.collect();
    names.sort_by_key(|n| SERVICES.iter().position(|s| s == n));
    let urls: Vec<String> = names
        .iter()
        .map(|n| format!("{{url: \"/api/v1/{n}/openapi.json\", name: \"{n}\"}}"))
        .collect();
    Html(format!(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>ZoneVast API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-standalone-preset.js"></script>
<script>window.ui = SwaggerUIBundle({{urls: [{}], dom_id: "#swagger-ui", presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"}});</script>
</body></html>"##,
        urls.join(", ")
    ))
    .into_response()
}

pub fn redoc(query: Option<&str>) -> Response {
    let service = query
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("service=")))
        .and_then(|s| SERVICES.iter().find(|n| **n == s))
        .copied()
        .unwrap_or("auth");
    Html(format!(
        r##"<!doctype html>
<html><head><meta charset="utf-8"><title>ZoneVast API — {service}</title></head>
<body><redoc spec-url="/api/v1/{service}/openapi.json"></redoc>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
</body></html>"##
    ))
    .into_response()
}
