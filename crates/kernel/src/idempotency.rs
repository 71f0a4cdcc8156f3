//! `Idempotency-Key` on the POSTs that move money or stock (conventions §12).
//!
//! The first request with a key runs and its answer is stored; a retry with the same key and the
//! same body within 24 hours gets that answer again with `Idempotent-Replayed: true`, and nothing
//! runs twice. The same key with another body → 409 `idempotency_key_reused`; while the first is
//! still running → 409 `idempotency_in_progress`. Keys are scoped to the caller, the project and
//! the route. A 5xx answer is not kept, so the request can be retried.
//!
//! The answer is stored after the handler's own transaction has committed: a process that dies in
//! between leaves the key "running", and it is taken over after [`ABANDONED_AFTER`]. Operations
//! that must never run twice also carry a business key (a reservation's `order_id`).

use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::auth::Shopper;
use crate::ApiError;

/// A key whose first request has not answered for this long is taken over by a retry.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(60);
/// Largest body an idempotent request may carry (they are small JSON documents).
const MAX_BODY: usize = 2 * 1024 * 1024;
pub const REPLAYED: &str = "idempotent-replayed";

/// Creates the key table in a service's database (idempotent).
pub async fn install(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS zv_idempotency (
             scope        TEXT        NOT NULL,
             key          TEXT        NOT NULL,
             request_hash BYTEA       NOT NULL,
             status       SMALLINT,
             content_type TEXT,
             body         BYTEA,
             created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
             locked_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
             PRIMARY KEY (scope, key)
         );
         CREATE INDEX IF NOT EXISTS zv_idempotency_created_idx ON zv_idempotency (created_at);",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Forgets keys older than 24 hours, once an hour.
pub fn spawn_pruner(pool: PgPool) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = sqlx::query(
                "DELETE FROM zv_idempotency WHERE created_at < now() - interval '24 hours'",
            )
            .execute(&pool)
            .await
            {
                tracing::warn!(error = %e, "idempotency keys not pruned");
            }
        }
    })
}

/// What a key's row says.
enum Claim {
    /// This request runs.
    Mine,
    /// Stored answer to replay.
    Done(u16, Option<String>, Vec<u8>),
    Reused,
    Running,
}

async fn claim(pool: &PgPool, scope: &str, key: &str, hash: &[u8]) -> Result<Claim, ApiError> {
    for _ in 0..3 {
        let inserted = sqlx::query(
            "INSERT INTO zv_idempotency (scope, key, request_hash) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(hash)
        .execute(pool)
        .await?;
        if inserted.rows_affected() == 1 {
            return Ok(Claim::Mine);
        }
        type Row = (
            Vec<u8>,
            Option<i16>,
            Option<String>,
            Option<Vec<u8>>,
            bool,
            bool,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT request_hash, status, content_type, body, \
                    created_at < now() - interval '24 hours', \
                    locked_at < now() - make_interval(secs => $3) \
             FROM zv_idempotency WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .bind(ABANDONED_AFTER.as_secs_f64())
        .fetch_optional(pool)
        .await?;
        let Some((stored_hash, status, content_type, body, expired, abandoned)) = row else {
            continue; // deleted in between: claim again
        };
        if expired {
            sqlx::query("DELETE FROM zv_idempotency WHERE scope = $1 AND key = $2 AND created_at < now() - interval '24 hours'")
                .bind(scope)
                .bind(key)
                .execute(pool)
                .await?;
            continue;
        }
        if stored_hash != hash {
            return Ok(Claim::Reused);
        }
        match status {
            Some(status) => {
                return Ok(Claim::Done(
                    status as u16,
                    content_type,
                    body.unwrap_or_default(),
                ))
            }
            None if abandoned => {
                let taken = sqlx::query(
                    "UPDATE zv_idempotency SET locked_at = now() WHERE scope = $1 AND key = $2 \
                     AND status IS NULL AND locked_at < now() - make_interval(secs => $3)",
                )
                .bind(scope)
                .bind(key)
                .bind(ABANDONED_AFTER.as_secs_f64())
                .execute(pool)
                .await?;
                if taken.rows_affected() == 1 {
                    return Ok(Claim::Mine);
                }
                return Ok(Claim::Running);
            }
            None => return Ok(Claim::Running),
        }
    }
    Err(ApiError::service_unavailable(
        "The idempotency key could not be claimed. Retry the request.",
    ))
}

/// Middleware for the routes that honour `Idempotency-Key` (state: the service's pool).
/// Requests without the header pass through untouched.
pub async fn guard(State(pool): State<PgPool>, request: Request, next: Next) -> Response {
    let Some(key) = request.headers().get("idempotency-key").cloned() else {
        return next.run(request).await;
    };
    match guarded(&pool, key, request, next).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn guarded(
    pool: &PgPool,
    key: HeaderValue,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let key = key
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 255)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters.",
            )
        })?
        .to_owned();
    let (mut parts, body) = request.into_parts();
    // Members and customers by user id; guests by their token. A guest without a token has no
    // identity to scope a key to, so the request runs unguarded (its cart checks still hold).
    let shopper = Shopper::from_request_parts(&mut parts, &()).await?;
    let project_id = shopper.project_id();
    let who = match shopper {
        Shopper::Member(scope) => scope.user_id().to_string(),
        Shopper::Customer { user_id, .. } => user_id.to_string(),
        Shopper::Guest {
            token: Some(token), ..
        } => format!("guest-{}", hex::encode(Sha256::digest(token.as_bytes()))),
        Shopper::Guest { token: None, .. } => {
            return Ok(next.run(Request::from_parts(parts, body)).await);
        }
    };
    let bytes = to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::payload_too_large(MAX_BODY))?;
    let hash = Sha256::digest(&bytes).to_vec();
    let scope_key = format!("{who}:{project_id}:{} {}", parts.method, parts.uri.path());
    match claim(pool, &scope_key, &key, &hash).await? {
        Claim::Reused => Err(ApiError::conflict(
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request body.",
        )),
        Claim::Running => Err(ApiError::conflict(
            "idempotency_in_progress",
            "A request with this Idempotency-Key is still being processed.",
        )),
        Claim::Done(status, content_type, body) => {
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
                response.headers_mut().insert(header::CONTENT_TYPE, ct);
            }
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(response)
        }
        Claim::Mine => {
            let response = next
                .run(Request::from_parts(parts, Body::from(bytes)))
                .await;
            let (parts, body) = response.into_parts();
            let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
            let content_type = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let stored = if parts.status.is_server_error() {
                sqlx::query("DELETE FROM zv_idempotency WHERE scope = $1 AND key = $2")
                    .bind(&scope_key)
                    .bind(&key)
                    .execute(pool)
                    .await
            } else {
                sqlx::query(
                    "UPDATE zv_idempotency SET status = $3, content_type = $4, body = $5 \
                     WHERE scope = $1 AND key = $2",
                )
                .bind(&scope_key)
                .bind(&key)
                .bind(parts.status.as_u16() as i16)
                .bind(content_type)
                .bind(body.as_ref())
                .execute(pool)
                .await
            };
            if let Err(e) = stored {
                tracing::warn!(error = %e, "idempotent answer not stored");
            }
            Ok(Response::from_parts(parts, Body::from(body)))
        }
    }
}
