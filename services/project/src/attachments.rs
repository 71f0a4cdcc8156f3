//! Attachments: files of a project and of a record in it (contract project.md §6). Uploads go
//! straight through the platform (streamed, ≤ the direct limit) or to the store with a
//! presigned POST policy and a confirmation. Types are decided by content, never by name;
//! keys are generated here; a per-project quota is reserved before any byte is stored.

use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use futures::Stream;
use integration::project::{AttachmentDeleted, AttachmentUploaded};
use kernel::auth::{Principal, ProjectScope};
use kernel::events::{Envelope, EventHandler};
use kernel::list::{fetch_page, Field, Kind, ListQuery, ListSpec};
use kernel::storage::{human_size, sniff, Storage};
use kernel::{ApiError, FieldErrors};
use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

use crate::projects::GRANTS;
use crate::Ctx;

/// (extension, category, content type, category maximum in bytes).
const TYPES: &[(&str, &str, &str, u64)] = &[
    ("jpg", "image", "image/jpeg", 10 << 20),
    ("jpeg", "image", "image/jpeg", 10 << 20),
    ("png", "image", "image/png", 10 << 20),
    ("gif", "image", "image/gif", 10 << 20),
    ("webp", "image", "image/webp", 10 << 20),
    ("svg", "image", "image/svg+xml", 10 << 20),
    ("bmp", "image", "image/bmp", 10 << 20),
    ("pdf", "document", "application/pdf", 25 << 20),
    ("doc", "document", "application/msword", 25 << 20),
    (
        "docx",
        "document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        25 << 20,
    ),
    ("xls", "document", "application/vnd.ms-excel", 25 << 20),
    (
        "xlsx",
        "document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        25 << 20,
    ),
    ("ppt", "document", "application/vnd.ms-powerpoint", 25 << 20),
    (
        "pptx",
        "document",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        25 << 20,
    ),
    ("txt", "document", "text/plain", 25 << 20),
    ("csv", "document", "text/csv", 25 << 20),
    ("mp4", "video", "video/mp4", 500 << 20),
    ("webm", "video", "video/webm", 500 << 20),
    ("mov", "video", "video/quicktime", 500 << 20),
    ("avi", "video", "video/x-msvideo", 500 << 20),
    ("mp3", "audio", "audio/mpeg", 50 << 20),
    ("wav", "audio", "audio/wav", 50 << 20),
    ("ogg", "audio", "audio/ogg", 50 << 20),
    ("zip", "archive", "application/zip", 100 << 20),
];

/// A file kind the platform accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileType {
    pub ext: &'static str,
    pub category: &'static str,
    pub mime: &'static str,
    pub max_bytes: u64,
}

fn allowed(ctx: &Ctx, ext: &str) -> Option<FileType> {
    let list = &ctx.platform.config().storage.allowed_extensions;
    if !list.is_empty() && !list.iter().any(|e| e.eq_ignore_ascii_case(ext)) {
        return None;
    }
    TYPES
        .iter()
        .find(|(e, ..)| e.eq_ignore_ascii_case(ext))
        .map(|&(ext, category, mime, max_bytes)| FileType {
            ext,
            category,
            mime,
            max_bytes,
        })
}

/// The allowed type for a file name and/or a declared content type (they must agree).
fn declared_type(
    ctx: &Ctx,
    file_name: &str,
    content_type: Option<&str>,
) -> Result<FileType, ApiError> {
    let ext = file_name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase());
    let by_name = ext.as_deref().and_then(|e| allowed(ctx, e));
    let declared = content_type.map(|c| {
        c.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    });
    let found = match (&by_name, &declared) {
        (Some(t), Some(ct)) if t.mime == ct || ct == "application/octet-stream" => Some(*t),
        (Some(_), Some(_)) => None,
        (Some(t), None) => Some(*t),
        (None, Some(ct)) if ext.is_none() => TYPES
            .iter()
            .find(|(_, _, m, _)| m == ct)
            .and_then(|(e, ..)| allowed(ctx, e)),
        _ => None,
    };
    found.ok_or_else(|| {
        unsupported(
            ctx,
            declared
                .as_deref()
                .unwrap_or(ext.as_deref().unwrap_or("unknown")),
        )
    })
}

fn unsupported(ctx: &Ctx, what: &str) -> ApiError {
    let list: Vec<&str> = TYPES
        .iter()
        .filter(|(e, ..)| allowed(ctx, e).is_some())
        .map(|(e, ..)| *e)
        .collect();
    ApiError::new(
        axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_file_type",
        format!(
            "File type '{what}' is not supported. Allowed types: {}",
            list.join(", ")
        ),
    )
}

/// Whether the first bytes of a file are what `expected` says. Formats without magic bytes
/// (text, CSV, SVG) must be text; the rest must sniff as the same kind.
fn content_matches(expected: FileType, head: &[u8]) -> bool {
    let sniffed = sniff(head).map(|(ext, _)| ext);
    fn family(e: &str) -> &str {
        match e {
            "jpeg" => "jpg",
            "docx" | "xlsx" | "pptx" | "zip" => "zip",
            "doc" | "xls" | "ppt" | "msi" => "ole",
            "oga" => "ogg",
            other => other,
        }
    }
    match expected.ext {
        "txt" | "csv" | "svg" => {
            let text = !head.contains(&0)
                && sniffed.is_none()
                && std::str::from_utf8(trim_partial_utf8(head)).is_ok();
            let is_svg = {
                let lower = String::from_utf8_lossy(head).to_ascii_lowercase();
                lower.contains("<svg")
                    || (lower.trim_start().starts_with("<?xml") && expected.ext == "svg")
            };
            text && (expected.ext != "svg" || is_svg)
        }
        ext => sniffed.is_some_and(|s| family(s) == family(ext)),
    }
}

/// The head of a file may end inside a multi-byte character.
fn trim_partial_utf8(head: &[u8]) -> &[u8] {
    match std::str::from_utf8(head) {
        Ok(_) => head,
        Err(e) if e.error_len().is_none() => &head[..e.valid_up_to()],
        Err(_) => head,
    }
}

static ENTITY_TYPE: Lazy<Regex> = Lazy::new(|| {
    Regex::new("^[a-z][a-z0-9_]{0,49}$").unwrap_or_else(|_| unreachable!("valid regex"))
});
static SEGMENT: Lazy<Regex> =
    Lazy::new(|| Regex::new("^[a-z0-9_-]+$").unwrap_or_else(|_| unreachable!("valid regex")));

/// Entity types whose files are public by default.
const PUBLIC_BY_DEFAULT: &[&str] = &["product", "project_logo", "content_media", "catalog"];

/// A file name kept for display only: no directories, no control characters, ≤255 chars.
pub fn clean_name(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

/// Where a record's file goes and who may see it.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub base_path: Option<String>,
    pub visibility: Option<String>,
    pub description: String,
    pub file_type: Option<String>,
}

impl Placement {
    fn validate(&self) -> Result<(), ApiError> {
        let mut errors = FieldErrors::new();
        if self.entity_type.is_empty() {
            errors.required("entity_type");
        } else if !ENTITY_TYPE.is_match(&self.entity_type) {
            errors.add(
                "entity_type",
                "Use lowercase letters, digits and '_', starting with a letter (≤50).",
            );
        }
        if self
            .entity_id
            .as_deref()
            .is_some_and(|id| id.is_empty() || id.len() > 64)
        {
            errors.add(
                "entity_id",
                "Ensure this field has between 1 and 64 characters.",
            );
        }
        if let Some(path) = &self.base_path {
            if path.len() > 100 || path.split('/').any(|seg| !SEGMENT.is_match(seg)) {
                errors.add(
                    "base_path",
                    "Use '/'-separated segments of a-z, 0-9, '_' and '-' (≤100).",
                );
            }
        }
        if let Some(v) = &self.visibility {
            if v != "public" && v != "private" {
                errors.add("visibility", format!("\"{v}\" is not a valid choice."));
            }
        }
        if self.description.chars().count() > 1000 {
            errors.add(
                "description",
                "Ensure this field has no more than 1000 characters.",
            );
        }
        errors.into_result()
    }

    fn visibility(&self) -> &str {
        match self.visibility.as_deref() {
            Some(v) => v,
            None if PUBLIC_BY_DEFAULT.contains(&self.entity_type.as_str()) => "public",
            None => "private",
        }
    }
}

/// `project/{project}/{visibility}/{base_path}/{YYYY}/{MM}/{DD}/{random}.{ext}`.
fn new_key(project_id: i64, visibility: &str, base_path: Option<&str>, ext: &str) -> String {
    let now = Utc::now();
    let random: [u8; 16] = rand::random();
    format!(
        "project/{project_id}/{visibility}/{}/{}/{}.{ext}",
        base_path.unwrap_or("attachments"),
        now.format("%Y/%m/%d"),
        hex::encode(random)
    )
}

/// The same object under the other visibility prefix.
fn with_visibility(key: &str, visibility: &str) -> String {
    let mut parts: Vec<&str> = key.splitn(4, '/').collect();
    if parts.len() == 4 {
        parts[2] = visibility;
    }
    parts.join("/")
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttachmentRow {
    pub id: i64,
    pub project_id: i64,
    pub original_name: String,
    pub category: String,
    pub mime_type: String,
    pub size: i64,
    pub storage_key: String,
    pub upload_status: String,
    pub visibility: String,
    pub entity_type: String,
    pub entity_id: Option<String>,
    pub description: String,
    pub checksum_sha256: Option<String>,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub uploaded_by_id: i64,
    pub uploaded_by_username: String,
    pub uploaded_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, project_id, original_name, category, mime_type, size, storage_key, \
    upload_status, visibility, entity_type, entity_id, description, checksum_sha256, width, height, \
    uploaded_by_id, uploaded_by_username, uploaded_at, created_at, updated_at";

pub static LIST: ListSpec = ListSpec {
    filters: &[
        Field {
            name: "entity_type",
            column: "entity_type",
            kind: Kind::Text,
        },
        Field {
            name: "entity_id",
            column: "entity_id",
            kind: Kind::Text,
        },
        Field {
            name: "file_type",
            column: "category",
            kind: Kind::Text,
        },
        Field {
            name: "type",
            column: "category",
            kind: Kind::Text,
        },
        Field {
            name: "upload_status",
            column: "upload_status",
            kind: Kind::Text,
        },
        Field {
            name: "visibility",
            column: "visibility",
            kind: Kind::Text,
        },
        Field {
            name: "mime_type",
            column: "mime_type",
            kind: Kind::Text,
        },
        Field {
            name: "created_at",
            column: "created_at",
            kind: Kind::DateTime,
        },
    ],
    ordering: &[
        Field {
            name: "created_at",
            column: "created_at",
            kind: Kind::DateTime,
        },
        Field {
            name: "size",
            column: "size",
            kind: Kind::Int,
        },
        Field {
            name: "original_name",
            column: "original_name",
            kind: Kind::Text,
        },
    ],
    search: &["original_name"],
    default_ordering: "-created_at",
    extra_params: &["ids", "project", "tenant_project_id"],
};

/// Where this request's clients reach files: configured CDN, or this platform's media route.
#[derive(Clone, Debug)]
pub struct Urls {
    /// e.g. `http://localhost:8000`.
    pub origin: String,
    pub public_base: String,
}

impl Urls {
    pub fn new(ctx: &Ctx, origin: String) -> Self {
        let public_base = ctx
            .platform
            .config()
            .storage
            .public_base_url
            .clone()
            .unwrap_or_else(|| format!("{origin}/api/v1/project/media"));
        Self {
            origin,
            public_base: public_base.trim_end_matches('/').to_owned(),
        }
    }

    fn media(&self) -> String {
        format!("{}/api/v1/project/media", self.origin)
    }

    pub fn public(&self, key: &str) -> String {
        format!("{}/{key}", self.public_base)
    }

    /// The URL a client reads `key` with: public, or freshly signed for `expires_in`.
    pub async fn read(
        &self,
        storage: &Storage,
        key: &str,
        public: bool,
        expires_in: Duration,
    ) -> Result<String, ApiError> {
        if public {
            Ok(self.public(key))
        } else {
            Ok(storage
                .signed_get_url(key, expires_in, &self.media())
                .await?)
        }
    }
}

impl AttachmentRow {
    pub async fn to_json(&self, ctx: &Ctx, urls: &Urls) -> Result<Value, ApiError> {
        let file_url = if self.upload_status == "completed" {
            Value::String(
                urls.read(
                    ctx.platform.storage(),
                    &self.storage_key,
                    self.visibility == "public",
                    Duration::from_secs(3600),
                )
                .await?,
            )
        } else {
            Value::Null
        };
        let dimensions = match (self.width, self.height) {
            (Some(w), Some(h)) => json!({"width": w, "height": h}),
            _ => Value::Null,
        };
        Ok(json!({
            "id": self.id,
            "original_name": self.original_name,
            "file_name": self.original_name,
            "type": self.category,
            "file_type": self.category,
            "mime_type": self.mime_type,
            "size": self.size,
            "file_size": self.size,
            "upload_status": self.upload_status,
            "file_url": file_url,
            "thumbnail_url": Value::Null,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "tenant_project_id": self.project_id,
            "project": self.project_id,
            "visibility": self.visibility,
            "description": self.description,
            "dimensions": dimensions,
            "variants": {},
            "checksum_sha256": self.checksum_sha256,
            "uploaded_by": {"id": self.uploaded_by_id, "username": self.uploaded_by_username},
            "uploaded_at": self.uploaded_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }))
    }
}

pub async fn list(
    db: &PgPool,
    scope: &ProjectScope,
    query: &ListQuery,
) -> Result<(i64, Vec<AttachmentRow>), ApiError> {
    scope.require("project.view_attachment", &GRANTS)?;
    let ids: Option<Vec<i64>> = match query.extra.iter().find(|(k, _)| k == "ids") {
        Some((_, raw)) => {
            let ids: Result<Vec<i64>, _> = raw
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::parse)
                .collect();
            match ids {
                Ok(ids) if ids.len() <= 100 => Some(ids),
                _ => {
                    return Err(ApiError::field(
                        "ids",
                        "Give up to 100 comma-separated ids.",
                    ))
                }
            }
        }
        None => None,
    };
    let project = scope.project_id();
    fetch_page(
        db,
        COLUMNS,
        "FROM attachments WHERE deleted_at IS NULL AND project_id = ",
        |qb| {
            qb.push_bind(project);
            if let Some(ids) = &ids {
                qb.push(" AND id = ANY(").push_bind(ids.clone()).push(")");
            }
        },
        query,
        LIST.search,
    )
    .await
}

pub async fn get(
    db: impl sqlx::PgExecutor<'_>,
    scope: &ProjectScope,
    id: i64,
) -> Result<AttachmentRow, ApiError> {
    scope.require("project.view_attachment", &GRANTS)?;
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM attachments WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL"
    ))
    .bind(id)
    .bind(scope.project_id())
    .fetch_optional(db)
    .await?
    .ok_or_else(ApiError::not_found)
}

async fn lock(
    tx: &mut PgConnection,
    scope: &ProjectScope,
    id: i64,
) -> Result<AttachmentRow, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM attachments WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL FOR UPDATE"
    ))
    .bind(id)
    .bind(scope.project_id())
    .fetch_optional(tx)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// The uploader may change their own file; others need the codename.
fn require_owner_or(
    scope: &ProjectScope,
    row: &AttachmentRow,
    codename: &str,
) -> Result<(), ApiError> {
    if row.uploaded_by_id == scope.user_id() {
        return Ok(());
    }
    scope.require(codename, &GRANTS)
}

/// Reserves `bytes` of the project's quota in one conditional update (507 when it would not fit).
async fn reserve(
    db: impl sqlx::PgExecutor<'_>,
    project_id: i64,
    bytes: i64,
) -> Result<(), ApiError> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE projects SET storage_reserved_bytes = storage_reserved_bytes + $2 \
         WHERE id = $1 AND storage_used_bytes + storage_reserved_bytes + $2 <= storage_quota_bytes \
         RETURNING id",
    )
    .bind(project_id)
    .bind(bytes)
    .fetch_optional(db)
    .await?;
    match row {
        Some(_) => Ok(()),
        // The caller adds the project's figures (`quota_error`).
        None => Err(ApiError::new(
            axum::http::StatusCode::INSUFFICIENT_STORAGE,
            "storage_quota_exceeded",
            "Project storage quota exceeded.",
        )),
    }
}

/// Moves `reserved` bytes out of the reservation and `used` bytes into usage (negative frees).
async fn settle(
    db: impl sqlx::PgExecutor<'_>,
    project_id: i64,
    reserved: i64,
    used: i64,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE projects SET storage_reserved_bytes = GREATEST(storage_reserved_bytes - $2, 0), \
         storage_used_bytes = GREATEST(storage_used_bytes + $3, 0) WHERE id = $1",
    )
    .bind(project_id)
    .bind(reserved)
    .bind(used)
    .execute(db)
    .await?;
    Ok(())
}

/// The 507 body with the project's figures (contract §6.3).
async fn quota_error(db: &PgPool, project_id: i64) -> ApiError {
    let figures: Option<(i64, i64)> =
        sqlx::query_as("SELECT storage_used_bytes + storage_reserved_bytes, storage_quota_bytes FROM projects WHERE id = $1")
            .bind(project_id)
            .fetch_optional(db)
            .await
            .ok()
            .flatten();
    let (current, limit) = figures.unwrap_or((0, 0));
    ApiError::new(
        axum::http::StatusCode::INSUFFICIENT_STORAGE,
        "storage_quota_exceeded",
        format!(
            "Project storage quota exceeded. Current: {}, Limit: {}",
            human_size(current.max(0) as u64),
            human_size(limit.max(0) as u64)
        ),
    )
}

async fn reserve_or_explain(db: &PgPool, project_id: i64, bytes: i64) -> Result<(), ApiError> {
    match reserve(db, project_id, bytes).await {
        Err(e) if e.code() == "storage_quota_exceeded" => Err(quota_error(db, project_id).await),
        other => other,
    }
}

fn too_large_direct(max: u64) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!(
            "File size exceeds maximum allowed size of {}. Use presigned URL for larger files.",
            human_size(max)
        ),
    )
}

fn too_large_for(t: FileType) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "file_too_large",
        format!(
            "File size exceeds maximum allowed size of {} for {} files.",
            human_size(t.max_bytes),
            t.category
        ),
    )
}

/// A direct upload: quota reserved first (`reserve_hint` = the request's length), the file
/// streamed to storage with its type checked on its first bytes, then the row and the event.
#[allow(clippy::too_many_arguments)]
pub async fn direct_upload<S, E>(
    ctx: &Ctx,
    scope: &ProjectScope,
    username: &str,
    placement: &Placement,
    file_name: &str,
    content_type: Option<&str>,
    reserve_hint: Option<u64>,
    body: S,
) -> Result<(AttachmentRow, u64), ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    scope.require("project.add_attachment", &GRANTS)?;
    placement.validate()?;
    let name = clean_name(file_name);
    let file_type = declared_type(ctx, &name, content_type)?;
    if placement
        .file_type
        .as_deref()
        .is_some_and(|wanted| wanted != file_type.category)
    {
        return Err(unsupported(ctx, file_type.ext));
    }
    let direct_max = ctx.platform.config().storage.direct_upload_max_bytes;
    let limit = direct_max.min(file_type.max_bytes);
    let reservation = reserve_hint.unwrap_or(limit).min(limit) as i64;
    reserve_or_explain(&ctx.pool, scope.project_id(), reservation).await?;
    let key = new_key(
        scope.project_id(),
        placement.visibility(),
        placement.base_path.as_deref(),
        file_type.ext,
    );
    let storage = ctx.platform.storage();
    let written = storage
        .put_stream(&key, body, limit, |head| {
            if content_matches(file_type, head) {
                Ok(())
            } else {
                Err(unsupported(ctx, sniff(head).map_or("unknown", |(_, m)| m)))
            }
        })
        .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => {
            settle(&ctx.pool, scope.project_id(), reservation, 0).await?;
            return Err(match e.code() {
                "file_too_large" if limit == direct_max => too_large_direct(direct_max),
                "file_too_large" => too_large_for(file_type),
                _ => e,
            });
        }
    };
    if written.size == 0 {
        settle(&ctx.pool, scope.project_id(), reservation, 0).await?;
        storage.delete(&key).await?;
        return Err(ApiError::field("file", "The submitted file is empty."));
    }
    let dims = dimensions(storage, &key, written.size, file_type).await;
    let stored: Result<AttachmentRow, ApiError> = async {
        let mut tx = ctx.pool.begin().await?;
        let row: AttachmentRow = sqlx::query_as(&format!(
            "INSERT INTO attachments (project_id, original_name, category, mime_type, size, storage_key, \
             upload_status, visibility, entity_type, entity_id, description, checksum_sha256, \
             uploaded_by_id, uploaded_by_username, uploaded_at, width, height) \
             VALUES ($1, $2, $3, $4, $5, $6, 'completed', $7, $8, $9, $10, $11, $12, $13, now(), $14, $15) \
             RETURNING {COLUMNS}"
        ))
        .bind(scope.project_id())
        .bind(&name)
        .bind(file_type.category)
        .bind(file_type.mime)
        .bind(written.size as i64)
        .bind(&key)
        .bind(placement.visibility())
        .bind(&placement.entity_type)
        .bind(&placement.entity_id)
        .bind(&placement.description)
        .bind(&written.sha256_hex)
        .bind(scope.user_id())
        .bind(username)
        .bind(dims.map(|d| d.0))
        .bind(dims.map(|d| d.1))
        .fetch_one(&mut *tx)
        .await?;
        settle(&mut *tx, scope.project_id(), reservation, written.size as i64).await?;
        record_uploaded(ctx, &mut tx, scope, &row).await?;
        tx.commit().await?;
        Ok(row)
    }
    .await;
    match stored {
        Ok(row) => {
            ctx.outbox.flush().await;
            Ok((row, written.size))
        }
        Err(e) => {
            settle(&ctx.pool, scope.project_id(), reservation, 0).await?;
            storage.delete(&key).await?;
            Err(e)
        }
    }
}

/// Width and height of a stored raster image, read from its first 64 KiB (`None` when not an
/// image or not readable).
async fn dimensions(
    storage: &Storage,
    key: &str,
    size: u64,
    file_type: FileType,
) -> Option<(i32, i32)> {
    if file_type.category != "image" || file_type.ext == "svg" {
        return None;
    }
    let head = storage.get_range(key, 0..size.min(64 * 1024)).await.ok()?;
    let found = imagesize::blob_size(&head).ok()?;
    Some((
        i32::try_from(found.width).ok()?,
        i32::try_from(found.height).ok()?,
    ))
}

async fn record_uploaded(
    ctx: &Ctx,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    row: &AttachmentRow,
) -> Result<(), ApiError> {
    ctx.outbox
        .record(
            tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &AttachmentUploaded {
                id: row.id,
                project_id: row.project_id,
                entity_type: row.entity_type.clone(),
                entity_id: row.entity_id.clone(),
                mime_type: row.mime_type.clone(),
                size: row.size,
            },
        )
        .await?;
    Ok(())
}

/// What a presigned upload needs from the client.
pub struct PresignRequest {
    pub file_name: String,
    pub file_size: i64,
    pub content_type: Option<String>,
    pub placement: Placement,
}

pub const PRESIGN_EXPIRES: Duration = Duration::from_secs(3600);

/// A pending row with the quota reserved, and the POST form for the store.
pub async fn presign(
    ctx: &Ctx,
    scope: &ProjectScope,
    username: &str,
    urls: &Urls,
    req: PresignRequest,
) -> Result<Value, ApiError> {
    scope.require("project.add_attachment", &GRANTS)?;
    req.placement.validate()?;
    if req.file_size <= 0 {
        return Err(ApiError::field(
            "file_size",
            "Ensure this value is greater than 0.",
        ));
    }
    let name = clean_name(&req.file_name);
    let file_type = declared_type(ctx, &name, req.content_type.as_deref())?;
    if req.file_size as u64 > file_type.max_bytes {
        return Err(too_large_for(file_type));
    }
    let key = new_key(
        scope.project_id(),
        req.placement.visibility(),
        req.placement.base_path.as_deref(),
        file_type.ext,
    );
    let mut tx = ctx.pool.begin().await?;
    match reserve(&mut *tx, scope.project_id(), req.file_size).await {
        Ok(()) => {}
        Err(e) if e.code() == "storage_quota_exceeded" => {
            drop(tx);
            return Err(quota_error(&ctx.pool, scope.project_id()).await);
        }
        Err(e) => return Err(e),
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO attachments (project_id, original_name, category, mime_type, size, storage_key, \
         upload_status, visibility, entity_type, entity_id, description, uploaded_by_id, uploaded_by_username) \
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(scope.project_id())
    .bind(&name)
    .bind(file_type.category)
    .bind(file_type.mime)
    .bind(req.file_size)
    .bind(&key)
    .bind(req.placement.visibility())
    .bind(&req.placement.entity_type)
    .bind(&req.placement.entity_id)
    .bind(&req.placement.description)
    .bind(scope.user_id())
    .bind(username)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    let storage = ctx.platform.storage();
    let form = storage.presigned_post(
        &key,
        file_type.mime,
        req.file_size as u64,
        PRESIGN_EXPIRES,
        &format!("{}/upload/", urls.media()),
    );
    let file_url = urls
        .read(
            storage,
            &key,
            req.placement.visibility() == "public",
            PRESIGN_EXPIRES,
        )
        .await?;
    Ok(json!({
        "attachment_id": id,
        "upload_url": form.url,
        "method": "POST",
        "fields": form.fields,
        "s3_key": key,
        "file_url": file_url,
        "expires_in": PRESIGN_EXPIRES.as_secs(),
    }))
}

/// Marks a failed upload: row failed, object removed, reservation released.
async fn fail(
    ctx: &Ctx,
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    row: &AttachmentRow,
) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE attachments SET upload_status = 'failed', updated_at = now() WHERE id = $1",
    )
    .bind(row.id)
    .execute(&mut *tx)
    .await?;
    settle(&mut *tx, row.project_id, row.size, 0).await?;
    tx.commit().await?;
    ctx.platform.storage().delete(&row.storage_key).await?;
    Ok(())
}

/// Confirms a presigned upload: the object exists, has the declared size and the declared
/// type (its first bytes), and the checksum when one is given. Repeating is harmless.
pub async fn confirm(
    ctx: &Ctx,
    scope: &ProjectScope,
    id: i64,
    file_hash: Option<&str>,
) -> Result<AttachmentRow, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let row = lock(&mut tx, scope, id).await?;
    require_owner_or(scope, &row, "project.change_attachment")?;
    match row.upload_status.as_str() {
        "completed" => return Ok(row),
        "failed" => {
            return Err(ApiError::rule(
                "upload_failed",
                "This upload failed; request a new URL.",
            ))
        }
        _ => {}
    }
    let storage = ctx.platform.storage();
    let size = storage.size(&row.storage_key).await?;
    let Some(size) = size else {
        return Err(ApiError::bad_request(
            "upload_missing",
            "The file has not been uploaded yet.",
        ));
    };
    if size != row.size as u64 {
        fail(ctx, tx, &row).await?;
        return Err(ApiError::bad_request(
            "size_mismatch",
            "The uploaded file does not have the declared size.",
        ));
    }
    let head = storage
        .get_range(&row.storage_key, 0..size.min(512))
        .await?;
    let file_type = TYPES
        .iter()
        .find(|(_, _, mime, _)| *mime == row.mime_type)
        .map(|&(ext, category, mime, max_bytes)| FileType {
            ext,
            category,
            mime,
            max_bytes,
        });
    if !file_type.is_some_and(|t| content_matches(t, &head)) {
        fail(ctx, tx, &row).await?;
        return Err(unsupported(ctx, sniff(&head).map_or("unknown", |(_, m)| m)));
    }
    let checksum = match file_hash {
        Some(expected) => {
            let actual = checksum_of(storage, &row.storage_key).await?;
            if !actual.eq_ignore_ascii_case(expected.trim()) {
                fail(ctx, tx, &row).await?;
                return Err(ApiError::bad_request(
                    "checksum_mismatch",
                    "The file does not match file_hash.",
                ));
            }
            Some(actual)
        }
        None => None,
    };
    let dims = match file_type {
        Some(t) => dimensions(storage, &row.storage_key, size, t).await,
        None => None,
    };
    let row: AttachmentRow = sqlx::query_as(&format!(
        "UPDATE attachments SET upload_status = 'completed', uploaded_at = now(), updated_at = now(), \
         checksum_sha256 = $2, width = $3, height = $4 WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .bind(checksum)
    .bind(dims.map(|d| d.0))
    .bind(dims.map(|d| d.1))
    .fetch_one(&mut *tx)
    .await?;
    settle(&mut *tx, row.project_id, row.size, row.size).await?;
    record_uploaded(ctx, &mut tx, scope, &row).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

async fn checksum_of(storage: &Storage, key: &str) -> Result<String, ApiError> {
    use futures::StreamExt;
    use sha2::{Digest, Sha256};
    let object = storage.get(key).await?.ok_or_else(|| {
        ApiError::bad_request("upload_missing", "The file has not been uploaded yet.")
    })?;
    let mut stream = object.body.into_data_stream();
    let mut hasher = Sha256::new();
    while let Some(chunk) = stream.next().await {
        hasher.update(chunk.map_err(ApiError::internal)?);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// PATCH: metadata, and visibility (the object moves to the other prefix).
#[derive(Debug, Default)]
pub struct AttachmentChange {
    pub description: Option<String>,
    pub original_name: Option<String>,
    pub entity_type: Option<String>,
    pub entity_id: Option<Option<String>>,
    pub visibility: Option<String>,
}

pub async fn update(
    ctx: &Ctx,
    scope: &ProjectScope,
    id: i64,
    change: AttachmentChange,
) -> Result<AttachmentRow, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let row = lock(&mut tx, scope, id).await?;
    require_owner_or(scope, &row, "project.change_attachment")?;
    let placement = Placement {
        entity_type: change
            .entity_type
            .clone()
            .unwrap_or_else(|| row.entity_type.clone()),
        entity_id: change
            .entity_id
            .clone()
            .unwrap_or_else(|| row.entity_id.clone()),
        base_path: None,
        visibility: Some(
            change
                .visibility
                .clone()
                .unwrap_or_else(|| row.visibility.clone()),
        ),
        description: change
            .description
            .clone()
            .unwrap_or_else(|| row.description.clone()),
        file_type: None,
    };
    placement.validate()?;
    let name = change
        .original_name
        .as_deref()
        .map(clean_name)
        .unwrap_or_else(|| row.original_name.clone());
    let visibility = placement.visibility().to_owned();
    let mut old_key = None;
    let mut key = row.storage_key.clone();
    if visibility != row.visibility && row.upload_status == "completed" {
        key = with_visibility(&row.storage_key, &visibility);
        ctx.platform.storage().copy(&row.storage_key, &key).await?;
        old_key = Some(row.storage_key.clone());
    }
    let updated: AttachmentRow = sqlx::query_as(&format!(
        "UPDATE attachments SET original_name = $2, entity_type = $3, entity_id = $4, description = $5, \
         visibility = $6, storage_key = $7, updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .bind(&name)
    .bind(&placement.entity_type)
    .bind(&placement.entity_id)
    .bind(&placement.description)
    .bind(&visibility)
    .bind(&key)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Some(old) = old_key {
        if let Err(e) = ctx.platform.storage().delete(&old).await {
            tracing::warn!(error = %e, "old object of a moved attachment not removed");
        }
    }
    Ok(updated)
}

/// Soft delete: usage released at once, the object removed by the `attachment.deleted`
/// consumer (retried until storage answers).
pub async fn delete(ctx: &Ctx, scope: &ProjectScope, id: i64) -> Result<AttachmentRow, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let row = lock(&mut tx, scope, id).await?;
    require_owner_or(scope, &row, "project.delete_attachment")?;
    let row: AttachmentRow = sqlx::query_as(&format!(
        "UPDATE attachments SET deleted_at = now(), updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(row.id)
    .fetch_one(&mut *tx)
    .await?;
    match row.upload_status.as_str() {
        "completed" => settle(&mut *tx, row.project_id, 0, -row.size).await?,
        "pending" => settle(&mut *tx, row.project_id, row.size, 0).await?,
        _ => {}
    }
    sqlx::query(
        "UPDATE projects SET logo_attachment_id = NULL WHERE id = $1 AND logo_attachment_id = $2",
    )
    .bind(row.project_id)
    .bind(row.id)
    .execute(&mut *tx)
    .await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &AttachmentDeleted {
                id: row.id,
                project_id: row.project_id,
                entity_type: row.entity_type.clone(),
                entity_id: row.entity_id.clone(),
                storage_key: row.storage_key.clone(),
            },
        )
        .await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

/// A signed (or public) URL for a completed file.
pub async fn download_url(
    ctx: &Ctx,
    scope: &ProjectScope,
    urls: &Urls,
    id: i64,
    expires_in: Option<i64>,
) -> Result<Value, ApiError> {
    let row = get(&ctx.pool, scope, id).await?;
    let expires_in = expires_in.unwrap_or(300);
    if !(60..=604_800).contains(&expires_in) {
        return Err(ApiError::field(
            "expires_in",
            "Ensure this value is between 60 and 604800.",
        ));
    }
    if row.upload_status != "completed" {
        return Err(ApiError::rule(
            "upload_not_completed",
            "This file has not been uploaded yet.",
        ));
    }
    let url = urls
        .read(
            ctx.platform.storage(),
            &row.storage_key,
            false,
            Duration::from_secs(expires_in as u64),
        )
        .await?;
    Ok(json!({
        "download_url": url,
        "expires_at": Utc::now() + chrono::Duration::seconds(expires_in),
    }))
}

/// A logo must be a completed image of the project; it becomes public.
pub async fn check_logo(
    tx: &mut PgConnection,
    scope: &ProjectScope,
    id: i64,
) -> Result<i64, ApiError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT category, upload_status, visibility FROM attachments \
         WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(scope.project_id())
    .fetch_optional(&mut *tx)
    .await?;
    match row {
        Some((category, status, _)) if category == "image" && status == "completed" => Ok(id),
        _ => Err(ApiError::field("logo_id", "Invalid attachment.")),
    }
}

/// On create, `logo_id` may name an image the caller uploaded in another project: it is copied
/// into the new project (its own object and row, counted in the new project's usage).
pub async fn adopt_logo(
    ctx: &Ctx,
    tx: &mut PgConnection,
    principal: &Principal,
    project_id: i64,
    id: i64,
) -> Result<(), ApiError> {
    let source: Option<AttachmentRow> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM attachments WHERE id = $1 AND uploaded_by_id = $2 AND deleted_at IS NULL \
         AND upload_status = 'completed' AND category = 'image'"
    ))
    .bind(id)
    .bind(principal.user_id())
    .fetch_optional(&mut *tx)
    .await?;
    let source = source.ok_or_else(|| ApiError::field("logo_id", "Invalid attachment."))?;
    let ext = source
        .storage_key
        .rsplit_once('.')
        .map_or("bin", |(_, e)| e);
    let key = new_key(project_id, "public", Some("logos"), ext);
    ctx.platform
        .storage()
        .copy(&source.storage_key, &key)
        .await?;
    let logo: i64 = sqlx::query_scalar(
        "INSERT INTO attachments (project_id, original_name, category, mime_type, size, storage_key, \
         upload_status, visibility, entity_type, description, checksum_sha256, uploaded_by_id, \
         uploaded_by_username, uploaded_at) SELECT $1, original_name, category, mime_type, size, $2, \
         'completed', 'public', 'project_logo', description, checksum_sha256, uploaded_by_id, \
         uploaded_by_username, now() FROM attachments WHERE id = $3 RETURNING id",
    )
    .bind(project_id)
    .bind(&key)
    .bind(source.id)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE projects SET logo_attachment_id = $2, storage_used_bytes = storage_used_bytes + $3 WHERE id = $1",
    )
    .bind(project_id)
    .bind(logo)
    .bind(source.size)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Pending uploads older than a day fail; their objects and reservations go.
pub async fn fail_stale_uploads(ctx: &Ctx) -> anyhow::Result<u64> {
    let stale: Vec<(i64, i64, i64, String)> = sqlx::query_as(
        "UPDATE attachments SET upload_status = 'failed', updated_at = now() \
         WHERE upload_status = 'pending' AND deleted_at IS NULL AND created_at < now() - interval '24 hours' \
         RETURNING id, project_id, size, storage_key",
    )
    .fetch_all(&ctx.pool)
    .await?;
    for (_, project_id, size, key) in &stale {
        settle(&ctx.pool, *project_id, *size, 0)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ctx.platform.storage().delete(key).await?;
    }
    Ok(stale.len() as u64)
}

/// Consumes `attachment.deleted`: removes the object (idempotent, so redelivery is harmless).
pub struct ObjectCleaner {
    pub storage: Storage,
}

#[async_trait]
impl EventHandler for ObjectCleaner {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        if let Some(event) = envelope.decode::<AttachmentDeleted>() {
            let event = event?;
            // Only keys this service made (the prefix is checked, not trusted).
            if event
                .storage_key
                .starts_with(&format!("project/{}/", event.project_id))
            {
                self.storage.delete(&event.storage_key).await?;
            }
        }
        Ok(())
    }
}

/// The attachments as other services use them (`integration::files`).
pub struct Files(pub Ctx);

#[async_trait]
impl integration::files::ProjectFiles for Files {
    async fn upload(
        &self,
        scope: &ProjectScope,
        username: &str,
        upload: integration::files::FileUpload,
        origin: &str,
    ) -> Result<integration::files::StoredFile, ApiError> {
        let placement = Placement {
            entity_type: upload.entity_type.to_owned(),
            entity_id: upload.entity_id,
            visibility: Some("public".into()),
            file_type: Some(upload.category.to_owned()),
            ..Placement::default()
        };
        let size = upload.bytes.len() as u64;
        let body =
            futures::stream::once(async move { Ok::<_, std::convert::Infallible>(upload.bytes) });
        let (row, _) = direct_upload(
            &self.0,
            scope,
            username,
            &placement,
            &upload.file_name,
            upload.content_type.as_deref(),
            Some(size),
            Box::pin(body),
        )
        .await?;
        let urls = Urls::new(&self.0, origin.to_owned());
        Ok(integration::files::StoredFile {
            attachment_id: row.id,
            url: urls.public(&row.storage_key),
            mime_type: row.mime_type,
        })
    }

    async fn find(
        &self,
        project_id: i64,
        attachment_id: i64,
        category: &str,
        origin: &str,
    ) -> Result<Option<integration::files::StoredFile>, ApiError> {
        let row: Option<AttachmentRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM attachments WHERE id = $1 AND project_id = $2 \
             AND deleted_at IS NULL AND upload_status = 'completed' AND visibility = 'public' \
             AND category = $3"
        ))
        .bind(attachment_id)
        .bind(project_id)
        .bind(category)
        .fetch_optional(&self.0.pool)
        .await?;
        let urls = Urls::new(&self.0, origin.to_owned());
        Ok(row.map(|row| integration::files::StoredFile {
            attachment_id: row.id,
            url: urls.public(&row.storage_key),
            mime_type: row.mime_type,
        }))
    }

    async fn discard(&self, scope: &ProjectScope, attachment_id: i64) -> Result<(), ApiError> {
        delete(&self.0, scope, attachment_id).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_only_labels() {
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("..\\..\\win.ini"), "win.ini");
        assert_eq!(clean_name("a\u{0}b\nc.png"), "abc.png");
        assert_eq!(clean_name("../"), "file");
        assert_eq!(clean_name(".htaccess"), "htaccess");
    }

    #[test]
    fn keys_move_between_visibilities() {
        let key = new_key(7, "private", Some("docs/2024"), "pdf");
        assert!(key.starts_with("project/7/private/docs/2024/"));
        assert!(with_visibility(&key, "public").starts_with("project/7/public/docs/2024/"));
    }

    #[test]
    fn content_decides_the_type() {
        let png = FileType {
            ext: "png",
            category: "image",
            mime: "image/png",
            max_bytes: 1,
        };
        let txt = FileType {
            ext: "txt",
            category: "document",
            mime: "text/plain",
            max_bytes: 1,
        };
        let svg = FileType {
            ext: "svg",
            category: "image",
            mime: "image/svg+xml",
            max_bytes: 1,
        };
        assert!(content_matches(png, b"\x89PNG\r\n\x1a\n...."));
        assert!(!content_matches(png, b"%PDF-1.4"));
        assert!(content_matches(txt, "hello, مرحبا".as_bytes()));
        assert!(!content_matches(txt, b"MZ\x90\x00\x03"));
        assert!(content_matches(
            svg,
            b"<svg xmlns='http://www.w3.org/2000/svg'/>"
        ));
        assert!(!content_matches(svg, b"plain text"));
    }
}
