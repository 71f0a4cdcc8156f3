//! Project settings: free JSON values under validated keys; the documented keys are typed and
//! deleting one resets it to its default.

use chrono::{DateTime, Utc};
use integration::project::SettingsChanged;
use kernel::auth::ProjectScope;
use kernel::list::{fetch_page, Field, Kind, ListQuery, ListSpec};
use kernel::ApiError;
use once_cell::sync::Lazy;
use regex::Regex;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgPool};

use crate::projects::{default_settings, GRANTS};
use crate::Ctx;

static KEY: Lazy<Regex> = Lazy::new(|| {
    Regex::new("^[a-z][a-z0-9_.]{0,99}$").unwrap_or_else(|_| unreachable!("valid regex"))
});
static TIMEZONE: Lazy<Regex> = Lazy::new(|| {
    Regex::new("^(UTC|[A-Z][A-Za-z_]+(/[A-Za-z0-9_+-]+){1,2})$")
        .unwrap_or_else(|_| unreachable!("valid regex"))
});

const MAX_VALUE_BYTES: usize = 16 * 1024;
const MAX_PER_PROJECT: i64 = 200;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SettingRow {
    pub id: i64,
    pub project_id: i64,
    pub key: String,
    pub value: Value,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl SettingRow {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "key": self.key,
            "value": self.value,
            "description": self.description,
            "project": self.project_id,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

const COLUMNS: &str = "id, project_id, key, value, description, created_at, updated_at";

pub static LIST: ListSpec = ListSpec {
    filters: &[Field {
        name: "key",
        column: "key",
        kind: Kind::Text,
    }],
    ordering: &[
        Field {
            name: "key",
            column: "key",
            kind: Kind::Text,
        },
        Field {
            name: "updated_at",
            column: "updated_at",
            kind: Kind::DateTime,
        },
    ],
    search: &["key", "description"],
    default_ordering: "key",
    extra_params: &[],
};

/// Type checks of the documented keys; `None` for free keys.
fn check_known(key: &str, value: &Value, languages: &[String]) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::field("value", m));
    match key {
        "timezone" => match value.as_str() {
            Some(tz) if TIMEZONE.is_match(tz) => Ok(()),
            _ => bad("Enter an IANA time zone such as \"UTC\" or \"Asia/Amman\"."),
        },
        "currency" => match value.as_str() {
            Some(c) if c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()) => Ok(()),
            _ => bad("Enter an ISO 4217 currency code such as \"USD\"."),
        },
        "date_format" => match value.as_str() {
            Some(f) if !f.is_empty() && f.len() <= 50 => Ok(()),
            _ => bad("Enter a date format such as \"YYYY-MM-DD\"."),
        },
        "language" => match value.as_str() {
            Some(l) if languages.iter().any(|s| s == l) => Ok(()),
            _ => bad("Must be one of the project's supported languages."),
        },
        "marketplace.user_listings" => match value {
            Value::Bool(_) => Ok(()),
            _ => bad("Must be true or false."),
        },
        "storage.quota_bytes" => Err(ApiError::permission_denied()),
        _ => Ok(()),
    }
}

async fn languages(db: &mut PgConnection, project_id: i64) -> Result<Vec<String>, ApiError> {
    let raw: Value = sqlx::query_scalar("SELECT supported_languages FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_one(db)
        .await?;
    Ok(raw
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|l| l.get("code").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default())
}

fn check_value(value: &Value) -> Result<(), ApiError> {
    if value.is_null() {
        return Err(ApiError::field("value", "This field may not be null."));
    }
    if value.to_string().len() > MAX_VALUE_BYTES {
        return Err(ApiError::field("value", "Values are limited to 16 KB."));
    }
    Ok(())
}

pub async fn list(
    db: &PgPool,
    scope: &ProjectScope,
    query: &ListQuery,
) -> Result<(i64, Vec<SettingRow>), ApiError> {
    scope.require("project.view_setting", &GRANTS)?;
    let project = scope.project_id();
    fetch_page(
        db,
        COLUMNS,
        "FROM project_settings WHERE project_id = ",
        |qb| {
            qb.push_bind(project);
        },
        query,
        LIST.search,
    )
    .await
}

/// `{id}` is the numeric id or the key.
pub async fn get(
    db: impl sqlx::PgExecutor<'_>,
    scope: &ProjectScope,
    id: &str,
) -> Result<SettingRow, ApiError> {
    let numeric = id
        .parse::<i64>()
        .ok()
        .filter(|_| id.bytes().all(|b| b.is_ascii_digit()));
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM project_settings WHERE project_id = $1 AND \
         (id = $2 OR ($2 IS NULL AND key = $3))"
    ))
    .bind(scope.project_id())
    .bind(numeric)
    .bind(id)
    .fetch_optional(db)
    .await?
    .ok_or_else(ApiError::not_found)
}

pub async fn create(
    ctx: &Ctx,
    scope: &ProjectScope,
    key: &str,
    value: Value,
    description: &str,
) -> Result<SettingRow, ApiError> {
    scope.require("project.add_setting", &GRANTS)?;
    if !KEY.is_match(key) {
        return Err(ApiError::field(
            "key",
            "Use lowercase letters, digits, '_' and '.', starting with a letter (≤100).",
        ));
    }
    check_value(&value)?;
    let mut tx = ctx.pool.begin().await?;
    check_known(key, &value, &languages(&mut tx, scope.project_id()).await?)?;
    let count: i64 =
        sqlx::query_scalar("SELECT count(*) FROM project_settings WHERE project_id = $1")
            .bind(scope.project_id())
            .fetch_one(&mut *tx)
            .await?;
    if count >= MAX_PER_PROJECT {
        return Err(ApiError::rule(
            "too_many_settings",
            "A project can have at most 200 settings.",
        ));
    }
    let row: Option<SettingRow> = sqlx::query_as(&format!(
        "INSERT INTO project_settings (project_id, key, value, description) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (project_id, key) DO NOTHING RETURNING {COLUMNS}"
    ))
    .bind(scope.project_id())
    .bind(key)
    .bind(&value)
    .bind(description)
    .fetch_optional(&mut *tx)
    .await?;
    let row = row.ok_or_else(|| {
        ApiError::bad_request(
            "setting_exists",
            format!("Setting '{key}' already exists for this project."),
        )
        .with(
            "error",
            format!("Setting '{key}' already exists for this project."),
        )
    })?;
    record(ctx, &mut tx, scope, key, &value, None).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

async fn record(
    ctx: &Ctx,
    tx: &mut PgConnection,
    scope: &ProjectScope,
    key: &str,
    value: &Value,
    previous: Option<Value>,
) -> Result<(), ApiError> {
    ctx.outbox
        .record(
            tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &SettingsChanged {
                project_id: scope.project_id(),
                key: key.to_owned(),
                value: value.clone(),
                previous_value: previous,
            },
        )
        .await?;
    Ok(())
}

pub async fn update(
    ctx: &Ctx,
    scope: &ProjectScope,
    id: &str,
    value: Option<Value>,
    description: Option<String>,
) -> Result<SettingRow, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let current = get(&mut *tx, scope, id).await?;
    scope.require("project.change_setting", &GRANTS)?;
    if let Some(v) = &value {
        check_value(v)?;
        check_known(
            &current.key,
            v,
            &languages(&mut tx, scope.project_id()).await?,
        )?;
    }
    let row: SettingRow = sqlx::query_as(&format!(
        "UPDATE project_settings SET value = COALESCE($2, value), description = COALESCE($3, description), \
         updated_at = now() WHERE id = $1 RETURNING {COLUMNS}"
    ))
    .bind(current.id)
    .bind(&value)
    .bind(&description)
    .fetch_one(&mut *tx)
    .await?;
    if let Some(v) = &value {
        if *v != current.value {
            if current.key == "language" {
                if let Some(l) = v.as_str() {
                    sqlx::query("UPDATE projects SET default_language = $2, updated_at = now() WHERE id = $1")
                        .bind(scope.project_id())
                        .bind(l)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            record(
                ctx,
                &mut tx,
                scope,
                &current.key,
                v,
                Some(current.value.clone()),
            )
            .await?;
        }
    }
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

/// Deletes a free key; a documented key goes back to its default.
pub async fn delete(ctx: &Ctx, scope: &ProjectScope, id: &str) -> Result<(), ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let current = get(&mut *tx, scope, id).await?;
    scope.require("project.delete_setting", &GRANTS)?;
    let language: String =
        sqlx::query_scalar("SELECT default_language FROM projects WHERE id = $1")
            .bind(scope.project_id())
            .fetch_one(&mut *tx)
            .await?;
    let default = default_settings(&language)
        .into_iter()
        .find(|(k, _)| *k == current.key)
        .map(|(_, v)| v);
    match &default {
        Some(value) => {
            sqlx::query("UPDATE project_settings SET value = $2, updated_at = now() WHERE id = $1")
                .bind(current.id)
                .bind(value)
                .execute(&mut *tx)
                .await?;
        }
        None => {
            sqlx::query("DELETE FROM project_settings WHERE id = $1")
                .bind(current.id)
                .execute(&mut *tx)
                .await?;
        }
    }
    record(
        ctx,
        &mut tx,
        scope,
        &current.key,
        &default.unwrap_or(Value::Null),
        Some(current.value),
    )
    .await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(())
}

/// Keeps the `language` setting equal to the project's default language.
pub async fn sync_language(
    tx: &mut PgConnection,
    project_id: i64,
    language: &str,
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO project_settings (project_id, key, value) VALUES ($1, 'language', $2) \
         ON CONFLICT (project_id, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()",
    )
    .bind(project_id)
    .bind(json!(language))
    .execute(tx)
    .await?;
    Ok(())
}
