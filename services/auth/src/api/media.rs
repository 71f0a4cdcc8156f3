//! Profile pictures: multipart upload (type sniffed, ≤ 5 MB), public download.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{FromRequestParts, Multipart, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use chrono::{Datelike, Utc};
use kernel::auth::{MaybePrincipal, Principal};
use kernel::service::ServiceContext;
use kernel::storage::{content_type, sniff_image};
use kernel::{ApiError, Platform};
use serde_json::{json, Value};

use crate::data::profiles::{self, Profile};

const MAX_IMAGE: usize = 5 * 1024 * 1024;
const PREFIX: &str = "profile_images/";

/// The absolute base for media links: `public_base_url`, else the request's host.
pub struct MediaBase(pub String);

impl<S: Send + Sync> FromRequestParts<S> for MediaBase {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let base = match parts.extensions.get::<Platform>() {
            Some(platform) => kernel::service::public_origin(platform.config(), &parts.headers),
            None => kernel::service::public_origin(&Default::default(), &parts.headers),
        };
        Ok(MediaBase(base))
    }
}

impl MediaBase {
    pub fn url(&self, key: &str) -> String {
        format!("{}/api/v1/auth/media/{key}", self.0)
    }

    pub fn fill(&self, mut profile: Profile) -> Profile {
        profile.profile_picture_url = profile.profile_picture.as_deref().map(|k| self.url(k));
        profile
    }
}

fn multipart_error(rejection: MultipartRejection) -> ApiError {
    ApiError::unsupported_media_type(&format!("{rejection}"))
}

/// Reads the first of `fields` from the form: its bytes, at most 5 MB.
async fn read_image(mut form: Multipart, fields: &[&str]) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::bad_request("image_too_large", "Image exceeds the 5 MB limit.")
            .with("error", "Image exceeds the 5 MB limit.")
    };
    loop {
        let field = form.next_field().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request("parse_error", format!("Multipart parse error - {e}"))
            }
        })?;
        let Some(mut field) = field else {
            let msg = "No image provided.";
            return Err(ApiError::bad_request("no_image", msg).with("error", msg));
        };
        if !field.name().is_some_and(|n| fields.contains(&n)) {
            continue;
        }
        let mut data = bytes::BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                too_large()
            } else {
                ApiError::bad_request("parse_error", format!("Multipart parse error - {e}"))
            }
        })? {
            if data.len() + chunk.len() > MAX_IMAGE {
                return Err(too_large());
            }
            data.extend_from_slice(&chunk);
        }
        return Ok(data.freeze());
    }
}

/// Stores the picture under a fresh key and attaches it to the caller's profile.
async fn store_picture(
    ctx: &ServiceContext,
    user_id: i64,
    image: bytes::Bytes,
) -> Result<Profile, ApiError> {
    let Some((ext, _)) = sniff_image(&image) else {
        let msg = "Unsupported image type. Use JPEG, PNG, GIF or WebP.";
        return Err(ApiError::bad_request("invalid_image_type", msg).with("error", msg));
    };
    let now = Utc::now();
    let key = format!(
        "{PREFIX}{:04}/{:02}/{:02}/{}.{ext}",
        now.year(),
        now.month(),
        now.day(),
        uuid::Uuid::new_v4().simple()
    );
    ctx.platform
        .storage()
        .put(&key, image)
        .await
        .map_err(ApiError::internal)?;
    let (profile, old) = match profiles::set_picture(&ctx.pool, user_id, &key).await {
        Ok(done) => done,
        Err(e) => {
            let _ = ctx.platform.storage().delete(&key).await;
            return Err(e);
        }
    };
    if let Some(old) = old.filter(|o| *o != key) {
        if let Err(e) = ctx.platform.storage().delete(&old).await {
            tracing::warn!(error = %e, key = %old, "could not delete a replaced profile picture");
        }
    }
    Ok(profile)
}

/// `auth/user/upload-image/`: multipart `image` or `profile_picture`.
#[utoipa::path(post, path = "/api/v1/auth/auth/user/upload-image/", tag = "user", security(("bearer" = [])),
    responses((status = 200, description = "`{success, message, image_url, profile_picture_url}`"),
        (status = 400, description = "no_image / image_too_large / invalid_image_type")))]
pub async fn upload_image(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
    form: Result<Multipart, MultipartRejection>,
) -> Result<JsonOut<Value>, ApiError> {
    let image = read_image(
        form.map_err(multipart_error)?,
        &["image", "profile_picture"],
    )
    .await?;
    let profile = store_picture(&ctx, principal.user_id(), image).await?;
    let url = profile.profile_picture.as_deref().map(|k| base.url(k));
    Ok(JsonOut(json!({
        "success": true,
        "message": "Profile image uploaded successfully.",
        "image_url": url,
        "profile_picture_url": url,
    })))
}

/// `profile/upload_picture/`: multipart `profile_picture` → the profile.
#[utoipa::path(post, path = "/api/v1/auth/profile/upload_picture/", tag = "profile", security(("bearer" = [])), responses((status = 200, body = Profile), (status = 400, description = "no_image / image_too_large / invalid_image_type")))]
pub async fn upload_picture(
    State(ctx): State<ServiceContext>,
    principal: Principal,
    base: MediaBase,
    form: Result<Multipart, MultipartRejection>,
) -> Result<JsonOut<Profile>, ApiError> {
    let image = read_image(
        form.map_err(multipart_error)?,
        &["profile_picture", "image"],
    )
    .await?;
    let profile = store_picture(&ctx, principal.user_id(), image).await?;
    Ok(JsonOut(base.fill(profile)))
}

/// Public download of a profile picture.
#[utoipa::path(get, path = "/api/v1/auth/media/{key}", tag = "profile", params(("key" = String, Path)), responses((status = 200, description = "the image"), (status = 404, description = "no such picture")))]
pub async fn download(
    State(ctx): State<ServiceContext>,
    _caller: MaybePrincipal,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    if !key.starts_with(PREFIX) {
        return Err(ApiError::not_found());
    }
    let object = ctx
        .platform
        .storage()
        .get(&key)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(ApiError::not_found)?;
    Ok((
        [
            (header::CONTENT_TYPE, content_type(&key).to_owned()),
            (header::CONTENT_LENGTH, object.size.to_string()),
            (
                header::CACHE_CONTROL,
                "public, max-age=86400, immutable".to_owned(),
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        object.body,
    )
        .into_response())
}
