//! `project/attachment/…` and the media routes that serve local files and accept local
//! presigned uploads.

use std::collections::BTreeMap;
use std::time::Instant;

use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, OriginalUri, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::Principal;
use kernel::extract::Json as Body;
use kernel::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::api::{int_id, list_query, page, urls, Scoped};
use crate::attachments::{self as svc, AttachmentChange, Placement, PresignRequest, LIST};
use crate::Ctx;

/// An id or a numeric string (`entity_id` is free text up to 64 characters).
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[utoipa::path(get, path = "/api/v1/project/attachment/", tag = "attachments",
    responses((status = 200, description = "The project's attachments, paginated")))]
pub async fn list(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let query = list_query(&LIST, &uri)?;
    let (total, rows) = svc::list(&ctx.pool, &scope, &query).await?;
    let urls = urls(&ctx, &headers);
    let mut results = Vec::with_capacity(rows.len());
    for row in &rows {
        results.push(row.to_json(&ctx, &urls).await?);
    }
    Ok(JsonOut(page(&uri, total, &query, results)))
}

#[utoipa::path(get, path = "/api/v1/project/attachment/{id}/", tag = "attachments",
    params(("id" = i64, Path)), responses((status = 200), (status = 404)))]
pub async fn retrieve(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<JsonOut<Value>, ApiError> {
    let row = svc::get(&ctx.pool, &scope, int_id(&id)?).await?;
    Ok(JsonOut(row.to_json(&ctx, &urls(&ctx, &headers)).await?))
}

fn multipart(m: Result<Multipart, MultipartRejection>) -> Result<Multipart, ApiError> {
    m.map_err(|e| match e {
        MultipartRejection::InvalidBoundary(_) => {
            ApiError::unsupported_media_type("multipart/form-data without a boundary")
        }
        other => ApiError::bad_request("parse_error", other.body_text()),
    })
}

fn bad_part(e: axum::extract::multipart::MultipartError) -> ApiError {
    ApiError::bad_request(
        "parse_error",
        format!("Malformed multipart body: {}", e.body_text()),
    )
}

/// Text fields of a multipart form (files in it are refused).
async fn text_field(field: axum::extract::multipart::Field<'_>) -> Result<String, ApiError> {
    let value = field.text().await.map_err(bad_part)?;
    if value.len() > 4096 {
        return Err(ApiError::bad_request(
            "parse_error",
            "A form field is too long.",
        ));
    }
    Ok(value)
}

#[utoipa::path(post, path = "/api/v1/project/attachment/direct-upload/", tag = "attachments",
    request_body(content_type = "multipart/form-data", description = "file, entity_type, entity_id, file_type, description, base_path, visibility"),
    responses((status = 201), (status = 400), (status = 413), (status = 415), (status = 507)))]
pub async fn direct_upload(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    principal: Principal,
    headers: HeaderMap,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let mut form = multipart(form)?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut uploaded = None;
    while let Some(field) = form.next_field().await.map_err(bad_part)? {
        let name = field.name().unwrap_or("").to_owned();
        if name != "file" {
            fields.insert(name, text_field(field).await?);
            continue;
        }
        if uploaded.is_some() {
            return Err(ApiError::field("file", "Send one file per request."));
        }
        let file_name = field.file_name().unwrap_or("").to_owned();
        let content_type = field.content_type().map(str::to_owned);
        let placement = placement(&fields);
        let hint = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let upload_started = Instant::now();
        let (row, size) = svc::direct_upload(
            &ctx,
            &scope,
            &principal.claims().username,
            &placement,
            &file_name,
            content_type.as_deref(),
            hint,
            Box::pin(field),
        )
        .await?;
        uploaded = Some((row, size, upload_started.elapsed()));
    }
    let Some((row, size, upload_time)) = uploaded else {
        return Err(ApiError::field("file", "No file was submitted."));
    };
    // Fields sent after the file still apply (metadata and visibility).
    let late = placement(&fields);
    let row = if late
        .visibility
        .as_ref()
        .is_some_and(|v| *v != row.visibility)
        || late.description != row.description
        || late.entity_id != row.entity_id
    {
        svc::update(
            &ctx,
            &scope,
            row.id,
            AttachmentChange {
                description: Some(late.description.clone()),
                entity_id: Some(late.entity_id.clone()),
                visibility: late.visibility.clone(),
                ..AttachmentChange::default()
            },
        )
        .await?
    } else {
        row
    };
    let mut body = row.to_json(&ctx, &urls(&ctx, &headers)).await?;
    let secs = upload_time.as_secs_f64().max(1e-6);
    body["success"] = json!(true);
    body["method"] = json!("direct_upload");
    body["attachment_id"] = json!(row.id);
    body["s3_key"] = json!(row.storage_key);
    body["file_info"] = json!({
        "name": row.original_name, "size": size, "content_type": row.mime_type,
        "size_mb": (size as f64 / 1_048_576.0 * 100.0).round() / 100.0,
    });
    body["performance"] = json!({
        "s3_upload_duration": secs,
        "total_duration": started.elapsed().as_secs_f64(),
        "upload_speed_mbps": (size as f64 * 8.0 / 1_000_000.0 / secs * 100.0).round() / 100.0,
    });
    Ok((StatusCode::CREATED, JsonOut(body)).into_response())
}

fn placement(fields: &BTreeMap<String, String>) -> Placement {
    let get = |k: &str| {
        fields
            .get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    Placement {
        entity_type: get("entity_type").unwrap_or_default(),
        entity_id: get("entity_id"),
        base_path: get("base_path"),
        visibility: get("visibility"),
        description: get("description").unwrap_or_default(),
        file_type: get("file_type"),
    }
}

#[utoipa::path(post, path = "/api/v1/project/attachment/presigned-url/", tag = "attachments",
    responses((status = 201), (status = 400), (status = 413), (status = 415), (status = 507)))]
pub async fn presign(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    principal: Principal,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> Result<Response, ApiError> {
    let mut errors = kernel::FieldErrors::new();
    let file_name = text(body.get("file_name"));
    if file_name.as_deref().is_none_or(str::is_empty) {
        errors.required("file_name");
    }
    let file_size = match body.get("file_size") {
        Some(v) => v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok())),
        None => None,
    };
    if file_size.is_none() {
        errors.add("file_size", "A valid integer is required.");
    }
    errors.into_result()?;
    let content_type = text(body.get("content_type"))
        .or_else(|| text(body.get("file_type")).filter(|t| t.contains('/')));
    let fields: BTreeMap<String, String> = [
        "entity_type",
        "entity_id",
        "base_path",
        "description",
        "visibility",
    ]
    .iter()
    .filter_map(|k| text(body.get(*k)).map(|v| ((*k).to_owned(), v)))
    .collect();
    let out = svc::presign(
        &ctx,
        &scope,
        &principal.claims().username,
        &urls(&ctx, &headers),
        PresignRequest {
            file_name: file_name.unwrap_or_default(),
            file_size: file_size.unwrap_or(0),
            content_type,
            placement: placement(&fields),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, JsonOut(out)).into_response())
}

#[utoipa::path(post, path = "/api/v1/project/attachment/confirm-upload/", tag = "attachments",
    responses((status = 200), (status = 400), (status = 415)))]
pub async fn confirm(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let id = body
        .get("attachment_id")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        })
        .ok_or_else(|| ApiError::field("attachment_id", "This field is required."))?;
    let hash = text(body.get("file_hash"));
    let row = svc::confirm(&ctx, &scope, id, hash.as_deref()).await?;
    let mut out = row.to_json(&ctx, &urls(&ctx, &headers)).await?;
    out["status"] = json!("uploaded");
    Ok(JsonOut(out))
}

#[derive(Debug, Deserialize)]
pub struct ChangeInput {
    pub description: Option<String>,
    #[serde(alias = "file_name")]
    pub original_name: Option<String>,
    pub entity_type: Option<String>,
    #[serde(default, deserialize_with = "nullable_text")]
    pub entity_id: Option<Option<String>>,
    pub visibility: Option<String>,
}

fn nullable_text<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    let v = Value::deserialize(d)?;
    Ok(Some(match v {
        Value::Null => None,
        other => Some(
            text(Some(&other)).ok_or_else(|| serde::de::Error::custom("Not a valid string."))?,
        ),
    }))
}

#[utoipa::path(method(patch, put), path = "/api/v1/project/attachment/{id}/", tag = "attachments",
    params(("id" = i64, Path)), responses((status = 200), (status = 403), (status = 404)))]
pub async fn update(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(input): Body<ChangeInput>,
) -> Result<JsonOut<Value>, ApiError> {
    let row = svc::update(
        &ctx,
        &scope,
        int_id(&id)?,
        AttachmentChange {
            description: input.description,
            original_name: input.original_name,
            entity_type: input.entity_type,
            entity_id: input.entity_id,
            visibility: input.visibility,
        },
    )
    .await?;
    Ok(JsonOut(row.to_json(&ctx, &urls(&ctx, &headers)).await?))
}

#[utoipa::path(delete, path = "/api/v1/project/attachment/{id}/", tag = "attachments",
    params(("id" = i64, Path)), responses((status = 204), (status = 403), (status = 404)))]
pub async fn destroy(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    svc::delete(&ctx, &scope, int_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE …/{id}/delete/` (0a47ee5): the same as `DELETE …/{id}/`.
#[utoipa::path(delete, path = "/api/v1/project/attachment/{id}/delete/", tag = "attachments",
    params(("id" = i64, Path)), responses((status = 204), (status = 403), (status = 404)))]
pub async fn destroy_alias(
    ctx: State<Ctx>,
    scope: Scoped,
    id: Path<String>,
) -> Result<StatusCode, ApiError> {
    destroy(ctx, scope, id).await
}

/// `POST …/{id}/delete/` (cdn.md): 200 with a message.
#[utoipa::path(post, path = "/api/v1/project/attachment/{id}/delete/", tag = "attachments",
    params(("id" = i64, Path)), responses((status = 200, description = "`{message, file_name, deleted_at}`"), (status = 403), (status = 404)))]
pub async fn destroy_with_message(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    Path(id): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    let row = svc::delete(&ctx, &scope, int_id(&id)?).await?;
    Ok(JsonOut(json!({
        "message": "Attachment deleted successfully",
        "file_name": row.original_name,
        "deleted_at": chrono::Utc::now(),
    })))
}

#[utoipa::path(post, path = "/api/v1/project/attachment/{id}/download-url/", tag = "attachments",
    params(("id" = i64, Path)), responses((status = 200), (status = 400), (status = 404)))]
pub async fn download_url(
    State(ctx): State<Ctx>,
    Scoped(scope): Scoped,
    Path(id): Path<String>,
    headers: HeaderMap,
    Body(body): Body<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    let expires_in = match body.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| ApiError::field("expires_in", "A valid integer is required."))?,
        ),
    };
    Ok(JsonOut(
        svc::download_url(
            &ctx,
            &scope,
            &urls(&ctx, &headers),
            int_id(&id)?,
            expires_in,
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize)]
pub struct Signature {
    pub expires: Option<i64>,
    pub signature: Option<String>,
}

/// Local files: `project/{p}/public/…` to anyone; anything else with a valid signature.
#[utoipa::path(get, path = "/api/v1/project/media/{key}", tag = "attachments",
    params(("key" = String, Path, description = "The object key"), ("expires" = Option<i64>, Query), ("signature" = Option<String>, Query)),
    responses((status = 200, description = "The file"), (status = 403, description = "Bad or expired signature"), (status = 404)))]
pub async fn serve_media(
    State(ctx): State<Ctx>,
    Path(key): Path<String>,
    Query(sig): Query<Signature>,
) -> Result<Response, ApiError> {
    let storage = ctx.platform.storage();
    let public = key.split('/').nth(2) == Some("public") && key.starts_with("project/");
    if !public {
        let valid = match (sig.expires, &sig.signature) {
            (Some(expires), Some(signature)) => storage.verify_local_get(&key, expires, signature),
            _ => false,
        };
        if !valid {
            return Err(ApiError::forbidden(
                "invalid_signature",
                "The link is invalid or has expired.",
            ));
        }
    }
    let object = storage.get(&key).await?.ok_or_else(ApiError::not_found)?;
    let content_type = kernel::storage::content_type(&key);
    let mut response = object.body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if public {
            "public, max-age=86400"
        } else {
            "private, no-store"
        }),
    );
    if content_type == "image/svg+xml" || content_type == "application/octet-stream" {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        );
    }
    Ok(response)
}

/// The local stand-in for an S3 presigned POST: the policy fields, then `file`; checked as S3
/// checks them (signature, expiry, key, content type, length range).
#[utoipa::path(post, path = "/api/v1/project/media/upload/", tag = "attachments",
    request_body(content = String, content_type = "multipart/form-data", description = "The presigned policy fields, then `file`"),
    responses((status = 204, description = "Stored"), (status = 400), (status = 403, description = "Policy refused")))]
pub async fn local_upload(
    State(ctx): State<Ctx>,
    form: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let mut form = multipart(form)?;
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    while let Some(field) = form.next_field().await.map_err(bad_part)? {
        let name = field.name().unwrap_or("").to_owned();
        if name != "file" {
            fields.insert(name, text_field(field).await?);
            continue;
        }
        let allowed = ctx.platform.storage().verify_local_post(&fields)?;
        let written = ctx
            .platform
            .storage()
            .put_stream(&allowed.key, Box::pin(field), allowed.max_size, |_| Ok(()))
            .await
            .map_err(|e| match e.code() {
                "file_too_large" => ApiError::bad_request(
                    "EntityTooLarge",
                    "Your proposed upload exceeds the maximum allowed size.",
                ),
                _ => e,
            })?;
        if written.size == 0 {
            ctx.platform.storage().delete(&allowed.key).await?;
            return Err(ApiError::bad_request(
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size.",
            ));
        }
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Err(ApiError::field("file", "No file was submitted."))
}
