//! `products/{id}/variants/`: the variant list and create of one product (the product is
//! implied by the URL), over the same resource functions.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json as JsonOut, Router};
use kernel::auth::{ProjectScope, ReadScope};
use kernel::extract::{path_id as product_id, Json};
use kernel::lang::Lang;
use kernel::list::ListQuery;
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde_json::{json, Value};

use crate::variants::VARIANT;

/// `{count, results}` of the product's variants (contract §3); the product must be visible.
async fn list(
    State(ctx): State<ServiceContext>,
    scope: ReadScope,
    Lang(lang): Lang,
    Path(raw): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<JsonOut<Value>, ApiError> {
    let id = product_id(&raw)?;
    kernel::resource::retrieve(&ctx, &crate::products::PRODUCT, &scope, id, lang).await?;
    let query = format!("product={id}&{}", uri.query().unwrap_or(""));
    let query = ListQuery::from_query(&VARIANT.list, Some(&query))?;
    let (count, results) =
        kernel::resource::list(&ctx, &VARIANT, &scope, &query, lang, false).await?;
    Ok(JsonOut(json!({"count": count, "results": results})))
}

async fn create(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Lang(lang): Lang,
    Path(raw): Path<String>,
    Json(mut body): Json<Value>,
) -> Result<Response, ApiError> {
    let id = product_id(&raw)?;
    if let Some(map) = body.as_object_mut() {
        map.remove("product_id");
        map.insert("product".into(), json!(id));
    }
    let created = kernel::resource::create(&ctx, &VARIANT, &scope, &body, lang).await?;
    Ok((StatusCode::CREATED, JsonOut(created)).into_response())
}

pub fn routes(router: Router<ServiceContext>) -> Router<ServiceContext> {
    kernel::service::at(
        router,
        "",
        &["products/{id}/variants"],
        get(list).post(create),
    )
}
