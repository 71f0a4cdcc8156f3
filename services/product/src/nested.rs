//! Routes under one product: `products/{id}/variants/` and `products/{id}/images/` (the product
//! is implied by the URL), and the product create that also takes multipart with an `image`.

use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::{Principal, ProjectScope, ReadScope};
use kernel::extract::{path_id as product_id, Json, JsonOrForm};
use kernel::lang::Lang;
use kernel::list::ListQuery;
use kernel::routing::{get, post, Endpoint, Routes};
use kernel::service::ServiceContext;
use kernel::ApiError;
use serde_json::{json, Value};

use crate::images::{self, Source};
use crate::products::PRODUCT;
use crate::variants::VARIANT;

/// `{count, results}` of the product's variants (contract §3); the product must be visible.
#[utoipa::path(get, path = "/api/v1/product/products/{id}/variants/", tag = "Variant", params(("id" = String, Path, description = "The product")),
    responses((status = 200, description = "`{count, results}`"), (status = 404)))]
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

#[utoipa::path(post, path = "/api/v1/product/products/{id}/variants/", tag = "Variant", params(("id" = String, Path, description = "The product")), request_body = Value,
    responses((status = 201, description = "The variant"), (status = 400), (status = 404)))]
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

/// Refuses files other than `expected` (a form field the endpoint does not read).
fn only_file(
    input: &mut JsonOrForm,
    expected: &str,
) -> Result<Option<kernel::extract::FilePart>, ApiError> {
    let file = input.file(expected)?;
    match input.files.first() {
        Some(other) => Err(ApiError::field(
            other.field.clone(),
            format!("Unexpected file; send the image as \"{expected}\"."),
        )),
        None => Ok(file),
    }
}

/// `POST products/`: JSON, or multipart form values with an optional `image` file that becomes
/// the primary image. The file is stored first (a refused file creates nothing), then the
/// product, then the image row; a failure after the file deletes what was made.
#[utoipa::path(post, path = "/api/v1/product/products/", tag = "Product",
    request_body(content((Value = "application/json"), (Value = "multipart/form-data")), description = "The product's fields, as JSON or as a multipart form with an optional `image` file"),
    responses((status = 201, description = "The product"), (status = 400), (status = 403)))]
async fn create_product(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Lang(lang): Lang,
    headers: HeaderMap,
    mut input: JsonOrForm,
) -> Result<Response, ApiError> {
    let file = only_file(&mut input, "image")?;
    let Some(file) = file else {
        let created = kernel::resource::create(&ctx, &PRODUCT, &scope, &input.body, lang).await?;
        return Ok((StatusCode::CREATED, JsonOut(created)).into_response());
    };
    scope.require(&PRODUCT.codename("add"), &PRODUCT.grants)?;
    PRODUCT.values(&input.body, false, lang)?;
    let origin = kernel::service::public_origin(ctx.platform.config(), &headers);
    let resolved = images::store(
        &ctx,
        &scope,
        &principal.claims().username,
        &origin,
        None,
        Source::Upload(file),
    )
    .await?;
    let created = match kernel::resource::create(&ctx, &PRODUCT, &scope, &input.body, lang).await {
        Ok(created) => created,
        Err(e) => {
            images::abandon(&ctx, &scope, &resolved).await;
            return Err(e);
        }
    };
    let id = created["id"].as_i64().unwrap_or_default();
    let alt = json!({"alt_text": input.body.get("alt_text").cloned().unwrap_or(json!("")), "is_primary": true});
    if let Err(e) = images::attach(&ctx, &scope, id, resolved, &alt, lang).await {
        if let Err(undo) = kernel::resource::delete(&ctx, &PRODUCT, &scope, id).await {
            tracing::warn!(error = %undo, product = id, "could not undo a product whose image failed");
        }
        return Err(e);
    }
    let product =
        kernel::resource::retrieve(&ctx, &PRODUCT, &ReadScope::Member(scope), id, lang).await?;
    Ok((StatusCode::CREATED, JsonOut(product)).into_response())
}

/// `GET products/{id}/images/`: `{count, results}` by position (the product must be visible).
#[utoipa::path(get, path = "/api/v1/product/products/{id}/images/", tag = "Image", params(("id" = String, Path, description = "The product")),
    responses((status = 200, description = "`{count, results}` by position"), (status = 404)))]
async fn list_images(
    State(ctx): State<ServiceContext>,
    scope: ReadScope,
    Lang(lang): Lang,
    Path(raw): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> Result<JsonOut<Value>, ApiError> {
    let (count, results) = images::list(&ctx, &scope, product_id(&raw)?, uri.query(), lang).await?;
    Ok(JsonOut(json!({"count": count, "results": results})))
}

/// `POST products/{id}/images/`: multipart `image` (+ `alt_text`, `is_primary`, `position`), or
/// JSON `{attachment_id}` / `{url}`.
#[utoipa::path(post, path = "/api/v1/product/products/{id}/images/", tag = "Image", params(("id" = String, Path, description = "The product")),
    request_body(content((Value = "application/json"), (Value = "multipart/form-data")), description = "A multipart `image` file, or JSON `{attachment_id}` / `{url}`"),
    responses((status = 201, description = "The image"), (status = 400), (status = 404)))]
async fn add_image(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    principal: Principal,
    Lang(lang): Lang,
    headers: HeaderMap,
    Path(raw): Path<String>,
    mut input: JsonOrForm,
) -> Result<Response, ApiError> {
    let id = product_id(&raw)?;
    let file = only_file(&mut input, "image")?;
    let source = Source::from_input(&input.body, file)?.ok_or_else(|| {
        ApiError::field("image", "Send an image file, an attachment_id or a url.")
    })?;
    let origin = kernel::service::public_origin(ctx.platform.config(), &headers);
    let created = images::add(
        &ctx,
        &scope,
        &principal.claims().username,
        &origin,
        id,
        source,
        &input.body,
        lang,
    )
    .await?;
    Ok((StatusCode::CREATED, JsonOut(created)).into_response())
}

#[utoipa::path(get, path = "/api/v1/product/products/{id}/images/{image}/", tag = "Image", params(("id" = String, Path, description = "The product"), ("image" = String, Path)),
    responses((status = 200, description = "The image"), (status = 404)))]
async fn get_image(
    State(ctx): State<ServiceContext>,
    scope: ReadScope,
    Lang(lang): Lang,
    Path((raw, image)): Path<(String, String)>,
) -> Result<JsonOut<Value>, ApiError> {
    images::get(&ctx, &scope, product_id(&raw)?, product_id(&image)?, lang)
        .await
        .map(JsonOut)
}

#[utoipa::path(method(patch, put), path = "/api/v1/product/products/{id}/images/{image}/", tag = "Image", params(("id" = String, Path, description = "The product"), ("image" = String, Path)), request_body = Value,
    responses((status = 200, description = "The image"), (status = 400), (status = 404)))]
async fn update_image(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Lang(lang): Lang,
    Path((raw, image)): Path<(String, String)>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    images::update(
        &ctx,
        &scope,
        product_id(&raw)?,
        product_id(&image)?,
        &body,
        lang,
    )
    .await
    .map(JsonOut)
}

#[utoipa::path(delete, path = "/api/v1/product/products/{id}/images/{image}/", tag = "Image", params(("id" = String, Path, description = "The product"), ("image" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = 404)))]
async fn delete_image(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path((raw, image)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    images::delete(&ctx, &scope, product_id(&raw)?, product_id(&image)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The product's own `POST` (JSON or multipart), for `Routes::resource_with`.
pub fn product_create() -> Endpoint<ServiceContext> {
    post(create_product)
}

/// The hand-written operations of this file (`PUT` on an image is `PATCH`'s twin).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    list,
    create,
    create_product,
    list_images,
    add_image,
    get_image,
    update_image,
    delete_image
))]
pub struct Api;

pub fn routes(r: Routes<ServiceContext>) -> Routes<ServiceContext> {
    r.at("", &["products/{id}/variants"], get(list).post(create))
        .at(
            "",
            &["products/{id}/images"],
            get(list_images).post(add_image),
        )
        .at(
            "",
            &["products/{id}/images/{image}"],
            get(get_image)
                .patch(update_image)
                .put(update_image)
                .delete(delete_image),
        )
}
