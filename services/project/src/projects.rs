//! Projects: create (creator = owner), read, update, soft delete, public lookups, features and
//! languages. Every function that touches one project's data takes its `ProjectScope`.

use chrono::{DateTime, Utc};
use integration::project::{
    FeaturesChanged, MemberAdded, ProjectCreated, ProjectDeleted, ProjectUpdated,
};
use kernel::auth::{Principal, ProjectScope};
use kernel::db::{map_db_error, ConstraintField};
use kernel::list::{fetch_page, Field, Kind, ListQuery, ListSpec};
use kernel::rbac::{Grants, Role};
use kernel::{ApiError, FieldErrors};
use once_cell::sync::Lazy;
use regex::Regex;
use serde::Deserialize;
use serde_json::{json, Value};
use sqlx::{PgConnection, PgExecutor, PgPool, QueryBuilder};

use crate::Ctx;

/// Editors read everything and upload/edit files; the rest is for admins and the owner.
pub const GRANTS: Grants = Grants {
    editor_extra: &[],
    editor_writes: Some(&["project.add_attachment", "project.change_attachment"]),
};

/// Names a project may not take (they are path segments of this service or the platform).
pub const RESERVED: &[&str] = &[
    "projects",
    "project",
    "info",
    "data",
    "attachment",
    "account",
    "webhooks",
    "invitations",
    "groups",
    "settings",
    "features",
    "health",
    "admin",
    "api",
    "media",
    "static",
    "graphql",
    "www",
];

/// The platform's languages (contract §5.3).
pub const LANGUAGES: &[(&str, &str)] = &[
    ("en", "English"),
    ("ar", "العربية"),
    ("fr", "Français"),
    ("es", "Español"),
    ("de", "Deutsch"),
    ("tr", "Türkçe"),
    ("ur", "اردو"),
    ("fa", "فارسی"),
    ("hi", "हिन्दी"),
    ("zh", "中文"),
];

static USERNAME: Lazy<Regex> = Lazy::new(|| {
    Regex::new("^[a-z0-9][a-z0-9_-]{2,49}$").unwrap_or_else(|_| unreachable!("valid regex"))
});

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    pub id: i64,
    pub title: String,
    pub description: String,
    pub username: String,
    pub unique_identifier: String,
    pub template: String,
    pub owner_id: i64,
    pub logo_attachment_id: Option<i64>,
    pub logo_key: Option<String>,
    pub supported_languages: Value,
    pub default_language: String,
    pub is_active: bool,
    pub storage_quota_bytes: i64,
    pub storage_used_bytes: i64,
    pub storage_reserved_bytes: i64,
    pub features: Vec<String>,
    pub role: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "p.id, p.title, p.description, p.username, p.unique_identifier, p.template, \
    p.owner_id, p.logo_attachment_id, \
    (SELECT a.storage_key FROM attachments a WHERE a.id = p.logo_attachment_id \
       AND a.deleted_at IS NULL) AS logo_key, \
    p.supported_languages, p.default_language, p.is_active, p.storage_quota_bytes, \
    p.storage_used_bytes, p.storage_reserved_bytes, \
    COALESCE((SELECT array_agg(f.name ORDER BY f.name) FROM project_features pf \
       JOIN features f ON f.id = pf.feature_id WHERE pf.project_id = p.id), '{}') AS features, \
    m.role, p.created_at, p.updated_at, p.deleted_at";

const CONSTRAINTS: &[ConstraintField] = &[ConstraintField {
    constraint: "projects_username_key",
    field: "username",
    message: "A project with this username already exists.",
}];

pub static LIST: ListSpec = ListSpec {
    filters: &[
        Field {
            name: "username",
            column: "p.username",
            kind: Kind::Text,
        },
        Field {
            name: "title",
            column: "p.title",
            kind: Kind::Text,
        },
        Field {
            name: "is_active",
            column: "p.is_active",
            kind: Kind::Bool,
        },
        Field {
            name: "id",
            column: "p.id",
            kind: Kind::Int,
        },
    ],
    ordering: &[
        Field {
            name: "title",
            column: "p.title",
            kind: Kind::Text,
        },
        Field {
            name: "created_at",
            column: "p.created_at",
            kind: Kind::DateTime,
        },
        Field {
            name: "updated_at",
            column: "p.updated_at",
            kind: Kind::DateTime,
        },
    ],
    search: &["p.title", "p.username", "p.unique_identifier"],
    default_ordering: "-created_at",
    extra_params: &[],
};

/// Which project a `{key}` names: an all-digit key is an id, else the unique identifier.
pub enum Key<'a> {
    Id(i64),
    Identifier(&'a str),
}

impl<'a> Key<'a> {
    pub fn parse(key: &'a str) -> Self {
        match key.parse::<i64>() {
            Ok(id) if key.bytes().all(|b| b.is_ascii_digit()) => Key::Id(id),
            _ => Key::Identifier(key),
        }
    }
}

pub async fn live_exists(db: impl PgExecutor<'_>, id: i64) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM projects WHERE id = $1 AND deleted_at IS NULL)",
    )
    .bind(id)
    .fetch_one(db)
    .await
}

/// The live project id behind a key or username (before any scope exists).
pub async fn find_id(db: &PgPool, key: Key<'_>) -> Result<Option<i64>, ApiError> {
    let (sql, text, id) = match key {
        Key::Id(id) => (
            "SELECT id FROM projects WHERE id = $2 AND deleted_at IS NULL",
            "",
            id,
        ),
        Key::Identifier(k) => (
            "SELECT id FROM projects WHERE (unique_identifier = $1 OR username = $1) \
             AND deleted_at IS NULL",
            k,
            0,
        ),
    };
    Ok(sqlx::query_scalar(sql)
        .bind(text)
        .bind(id)
        .fetch_optional(db)
        .await?)
}

pub async fn id_by_username(db: &PgPool, username: &str) -> Result<Option<i64>, ApiError> {
    Ok(
        sqlx::query_scalar("SELECT id FROM projects WHERE username = $1 AND deleted_at IS NULL")
            .bind(username)
            .fetch_optional(db)
            .await?,
    )
}

/// The project of `scope`, seen by its caller.
pub async fn get(db: impl PgExecutor<'_>, scope: &ProjectScope) -> Result<ProjectRow, ApiError> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projects p LEFT JOIN memberships m \
         ON m.project_id = p.id AND m.user_id = $2 WHERE p.id = $1 AND p.deleted_at IS NULL"
    ))
    .bind(scope.project_id())
    .bind(scope.user_id())
    .fetch_optional(db)
    .await?
    .ok_or_else(ApiError::not_found)
}

/// Public facts of a live project by username.
pub async fn public_by_username(
    db: &PgPool,
    username: &str,
) -> Result<Option<ProjectRow>, ApiError> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projects p LEFT JOIN memberships m ON FALSE \
         WHERE p.username = $1 AND p.deleted_at IS NULL"
    ))
    .bind(username)
    .fetch_optional(db)
    .await?)
}

/// The caller's projects (only those they are a member of).
pub async fn list(
    db: &PgPool,
    principal: &Principal,
    query: &ListQuery,
) -> Result<(i64, Vec<ProjectRow>), ApiError> {
    let user = principal.user_id();
    fetch_page(
        db,
        COLUMNS,
        "FROM projects p JOIN memberships m ON m.project_id = p.id WHERE p.deleted_at IS NULL AND m.user_id = ",
        |qb| {
            qb.push_bind(user);
        },
        query,
        LIST.search,
    )
    .await
}

/// A title given under any of its documented names.
#[derive(Debug, Default, Deserialize)]
pub struct ProjectInput {
    pub title: Option<String>,
    pub display_name: Option<String>,
    pub name: Option<String>,
    pub username: Option<String>,
    pub description: Option<String>,
    pub template: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub logo_id: Option<Option<i64>>,
    pub features_add: Option<Vec<Value>>,
    pub features_remove: Option<Vec<Value>>,
    pub supported_languages: Option<Vec<Value>>,
    pub default_language: Option<String>,
}

/// `null` and absent differ for fields that can be cleared.
fn double_option<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    Option::<i64>::deserialize(d).map(Some)
}

impl ProjectInput {
    fn title(&self) -> Option<&str> {
        self.title
            .as_deref()
            .or(self.display_name.as_deref())
            .or(self.name.as_deref())
            .map(str::trim)
    }
}

fn check_title(errors: &mut FieldErrors, title: Option<&str>, required: bool) {
    match title {
        None if required => errors.required("title"),
        Some("") => errors.add("title", "This field may not be blank."),
        Some(t) if t.chars().count() > 255 => errors.add(
            "title",
            "Ensure this field has no more than 255 characters.",
        ),
        _ => {}
    }
}

fn check_username(errors: &mut FieldErrors, username: &str) {
    if !USERNAME.is_match(username) {
        errors.add(
            "username",
            "Use 3–50 lowercase letters, digits, '_' or '-', starting with a letter or digit.",
        );
    } else if RESERVED.contains(&username) {
        errors.add("username", "This username is reserved.");
    }
}

/// `[{code, name}]` or `[code]` → the platform's entries, 1–10, unique.
fn parse_languages(
    errors: &mut FieldErrors,
    raw: &[Value],
) -> Option<Vec<(&'static str, &'static str)>> {
    let mut out: Vec<(&'static str, &'static str)> = Vec::new();
    for item in raw {
        let code = item
            .as_str()
            .or_else(|| item.get("code").and_then(Value::as_str));
        match code.and_then(|c| LANGUAGES.iter().find(|(code, _)| *code == c.trim())) {
            Some(lang) if !out.contains(lang) => out.push(*lang),
            Some(_) => {
                errors.add("supported_languages", "Languages must be unique.");
                return None;
            }
            None => {
                errors.add(
                    "supported_languages",
                    format!("Unknown language: {}", code.unwrap_or("?")),
                );
                return None;
            }
        }
    }
    if out.is_empty() || out.len() > 10 {
        errors.add("supported_languages", "Give between 1 and 10 languages.");
        return None;
    }
    Some(out)
}

fn languages_json(langs: &[(&str, &str)]) -> Value {
    Value::Array(
        langs
            .iter()
            .map(|(c, n)| json!({"code": c, "name": n}))
            .collect(),
    )
}

/// Feature ids for `[id | name]`; unknown → 400 on `field`.
async fn feature_ids(
    db: &mut PgConnection,
    field: &str,
    raw: &[Value],
) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    for item in raw {
        let found: Option<i64> = match item {
            Value::Number(n) => {
                sqlx::query_scalar("SELECT id FROM features WHERE id = $1")
                    .bind(n.as_i64().unwrap_or(-1))
                    .fetch_optional(&mut *db)
                    .await?
            }
            Value::String(s) => {
                sqlx::query_scalar("SELECT id FROM features WHERE name = $1")
                    .bind(s.trim())
                    .fetch_optional(&mut *db)
                    .await?
            }
            _ => None,
        };
        let label = item
            .as_str()
            .map_or_else(|| item.to_string(), str::to_owned);
        ids.push(found.ok_or_else(|| ApiError::field(field, format!("Unknown feature: {label}")))?);
    }
    Ok(ids)
}

/// A username from the title: lowercase ASCII letters and digits, other runs become `-`.
fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.to_lowercase().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let mut slug: String = slug.trim_matches('-').chars().take(40).collect();
    while slug.len() < 3 || RESERVED.contains(&slug.as_str()) {
        slug = if slug.is_empty() {
            "project".into()
        } else {
            format!("{slug}-project")
        };
    }
    slug.trim_end_matches('-').to_owned()
}

fn random_identifier() -> String {
    use rand::Rng;
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::thread_rng();
    let mut id = String::with_capacity(6);
    id.push(LETTERS[rng.gen_range(0..LETTERS.len())] as char);
    for _ in 0..5 {
        id.push(ALNUM[rng.gen_range(0..ALNUM.len())] as char);
    }
    id
}

/// Default settings of a new project (contract §5.1).
pub fn default_settings(language: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("timezone", json!("UTC")),
        ("currency", json!("USD")),
        ("date_format", json!("YYYY-MM-DD")),
        ("language", json!(language)),
        ("marketplace.user_listings", json!(false)),
    ]
}

/// Creates a project in one transaction: the row, its groups, the owner's membership, default
/// settings, features and the `project.created` event.
pub async fn create(
    ctx: &Ctx,
    principal: &Principal,
    input: ProjectInput,
) -> Result<ProjectRow, ApiError> {
    let claims = principal.claims();
    let mut errors = FieldErrors::new();
    check_title(&mut errors, input.title(), true);
    if let Some(u) = &input.username {
        check_username(&mut errors, u);
    }
    if input
        .template
        .as_deref()
        .is_some_and(|t| t.chars().count() > 50)
    {
        errors.add(
            "template",
            "Ensure this field has no more than 50 characters.",
        );
    }
    let languages = match &input.supported_languages {
        Some(raw) => parse_languages(&mut errors, raw),
        None => Some(vec![("en", "English")]),
    };
    let default_language = match (&input.default_language, &languages) {
        (Some(d), Some(langs)) if !langs.iter().any(|(c, _)| c == d) => {
            errors.add(
                "default_language",
                "Must be one of the supported languages.",
            );
            None
        }
        (Some(d), _) => Some(d.clone()),
        (None, Some(langs)) => langs.first().map(|(c, _)| (*c).to_owned()),
        (None, None) => None,
    };
    errors.into_result()?;
    let title = input.title().unwrap_or_default().to_owned();
    let languages = languages.unwrap_or_default();
    let default_language = default_language.unwrap_or_else(|| "en".into());
    let config = ctx.platform.config();

    let mut tx = ctx.pool.begin().await?;
    // One creation at a time per owner, so the per-user limit holds under concurrency.
    sqlx::query("SELECT pg_advisory_xact_lock(1, $1::int)")
        .bind((claims.user_id % i64::from(i32::MAX)) as i32)
        .execute(&mut *tx)
        .await?;
    let owned: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM projects WHERE owner_id = $1 AND deleted_at IS NULL",
    )
    .bind(claims.user_id)
    .fetch_one(&mut *tx)
    .await?;
    if owned >= config.project.max_owned_per_user && !claims.is_superuser {
        return Err(ApiError::rule(
            "project_limit_reached",
            format!(
                "You can own at most {} projects.",
                config.project.max_owned_per_user
            ),
        ));
    }
    let base = input.username.clone().unwrap_or_else(|| slugify(&title));
    let mut id: Option<(i64, String)> = None;
    for attempt in 1..=20 {
        let username = if attempt == 1 || input.username.is_some() {
            base.clone()
        } else {
            format!("{base}-{attempt}")
        };
        // A savepoint per attempt: a clash must not abort the whole transaction.
        let mut sp = sqlx::Connection::begin(&mut *tx).await?;
        let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
            "INSERT INTO projects (title, description, username, unique_identifier, template, \
             owner_id, supported_languages, default_language, storage_quota_bytes) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(&title)
        .bind(input.description.as_deref().unwrap_or(""))
        .bind(&username)
        .bind(random_identifier())
        .bind(input.template.as_deref().unwrap_or("default"))
        .bind(claims.user_id)
        .bind(languages_json(&languages))
        .bind(&default_language)
        .bind(config.storage.default_quota_bytes)
        .fetch_one(&mut *sp)
        .await;
        match inserted {
            Ok(new_id) => {
                sp.commit().await?;
                id = Some((new_id, username));
                break;
            }
            Err(sqlx::Error::Database(db))
                if db.constraint() == Some("projects_username_key") && input.username.is_none() =>
            {
                sp.rollback().await?;
            }
            Err(sqlx::Error::Database(db))
                if db.constraint() == Some("projects_unique_identifier_key") =>
            {
                sp.rollback().await?;
            }
            Err(e) => return Err(map_db_error(e, CONSTRAINTS)),
        }
    }
    let (id, username) =
        id.ok_or_else(|| ApiError::field("username", "No free username; choose one."))?;
    for (name, role) in [
        ("Owners", "owner"),
        ("Admins", "admin"),
        ("Editors", "editor"),
        ("Viewers", "viewer"),
    ] {
        sqlx::query("INSERT INTO project_groups (project_id, name, role) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(name)
            .bind(role)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query(
        "INSERT INTO memberships (project_id, user_id, role, username, email) \
         VALUES ($1, $2, 'owner', $3, $4)",
    )
    .bind(id)
    .bind(claims.user_id)
    .bind(&claims.username)
    .bind(claims.email.as_deref().unwrap_or(""))
    .execute(&mut *tx)
    .await?;
    for (key, value) in default_settings(&default_language) {
        sqlx::query("INSERT INTO project_settings (project_id, key, value) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    let features = match &input.features_add {
        Some(raw) => feature_ids(&mut tx, "features_add", raw).await?,
        None if !config.project.default_features.is_empty() => {
            let raw: Vec<Value> = config
                .project
                .default_features
                .iter()
                .map(|f| json!(f))
                .collect();
            feature_ids(&mut tx, "features_add", &raw).await?
        }
        None => {
            sqlx::query_scalar("SELECT id FROM features")
                .fetch_all(&mut *tx)
                .await?
        }
    };
    set_features(&mut tx, id, &features, &[]).await?;
    if let Some(Some(logo)) = input.logo_id {
        crate::attachments::adopt_logo(ctx, &mut tx, principal, id, logo).await?;
    }
    ctx.outbox
        .record(
            &mut tx,
            Some(id),
            Some(claims.user_id),
            &ProjectCreated {
                project_id: id,
                owner_id: claims.user_id,
                username: username.clone(),
                title: title.clone(),
            },
        )
        .await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(id),
            Some(claims.user_id),
            &MemberAdded {
                project_id: id,
                user_id: claims.user_id,
                role: Role::Owner.to_string(),
            },
        )
        .await?;
    let row: ProjectRow = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM projects p LEFT JOIN memberships m \
         ON m.project_id = p.id AND m.user_id = $2 WHERE p.id = $1"
    ))
    .bind(id)
    .bind(claims.user_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

async fn set_features(
    tx: &mut PgConnection,
    project_id: i64,
    add: &[i64],
    remove: &[i64],
) -> Result<(), ApiError> {
    sqlx::query(
        "INSERT INTO project_features (project_id, feature_id) SELECT $1, unnest($2::bigint[]) \
         ON CONFLICT DO NOTHING",
    )
    .bind(project_id)
    .bind(add)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM project_features WHERE project_id = $1 AND feature_id = ANY($2)")
        .bind(project_id)
        .bind(remove)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// PATCH/PUT: `change_project`; the username only by the owner.
pub async fn update(
    ctx: &Ctx,
    scope: &ProjectScope,
    input: ProjectInput,
) -> Result<ProjectRow, ApiError> {
    scope.require("project.change_project", &GRANTS)?;
    if input.username.is_some() && scope.role() != Some(Role::Owner) {
        return Err(ApiError::permission_denied());
    }
    let mut errors = FieldErrors::new();
    check_title(&mut errors, input.title(), false);
    if let Some(u) = &input.username {
        check_username(&mut errors, u);
    }
    if input
        .template
        .as_deref()
        .is_some_and(|t| t.chars().count() > 50)
    {
        errors.add(
            "template",
            "Ensure this field has no more than 50 characters.",
        );
    }
    let languages = input
        .supported_languages
        .as_ref()
        .and_then(|raw| parse_languages(&mut errors, raw));
    errors.into_result()?;

    let mut tx = ctx.pool.begin().await?;
    let current = get(&mut *tx, scope).await?;
    let mut changed: Vec<String> = Vec::new();
    let current_langs: Vec<String> =
        current
            .supported_languages
            .as_array()
            .map_or_else(Vec::new, |a| {
                a.iter()
                    .filter_map(|l| l.get("code").and_then(Value::as_str).map(str::to_owned))
                    .collect()
            });
    let langs_after: Vec<String> = match &languages {
        Some(l) => l.iter().map(|(c, _)| (*c).to_owned()).collect(),
        None => current_langs.clone(),
    };
    let default_language = match &input.default_language {
        Some(d) if !langs_after.contains(d) => {
            return Err(ApiError::field(
                "default_language",
                "Must be one of the supported languages.",
            ));
        }
        Some(d) => d.clone(),
        None if !langs_after.contains(&current.default_language) => {
            langs_after.first().cloned().unwrap_or_else(|| "en".into())
        }
        None => current.default_language.clone(),
    };
    let mut qb = QueryBuilder::new("UPDATE projects SET updated_at = now()");
    if let Some(title) = input.title() {
        qb.push(", title = ").push_bind(title.to_owned());
        changed.push("title".into());
    }
    if let Some(d) = &input.description {
        qb.push(", description = ").push_bind(d.clone());
        changed.push("description".into());
    }
    if let Some(t) = &input.template {
        qb.push(", template = ").push_bind(t.clone());
        changed.push("template".into());
    }
    if let Some(u) = &input.username {
        qb.push(", username = ").push_bind(u.clone());
        changed.push("username".into());
    }
    if let Some(l) = &languages {
        qb.push(", supported_languages = ")
            .push_bind(languages_json(l));
        changed.push("supported_languages".into());
    }
    if default_language != current.default_language {
        qb.push(", default_language = ")
            .push_bind(default_language.clone());
        changed.push("default_language".into());
    }
    if let Some(logo) = input.logo_id {
        let logo = match logo {
            Some(id) => Some(crate::attachments::check_logo(&mut tx, scope, id).await?),
            None => None,
        };
        qb.push(", logo_attachment_id = ").push_bind(logo);
        changed.push("logo".into());
    }
    qb.push(" WHERE id = ").push_bind(scope.project_id());
    qb.build()
        .execute(&mut *tx)
        .await
        .map_err(|e| map_db_error(e, CONSTRAINTS))?;
    if changed.iter().any(|c| c == "default_language") {
        crate::settings::sync_language(&mut tx, scope.project_id(), &default_language).await?;
    }
    let add = match &input.features_add {
        Some(raw) => feature_ids(&mut tx, "features_add", raw).await?,
        None => Vec::new(),
    };
    let remove = match &input.features_remove {
        Some(raw) => feature_ids(&mut tx, "features_remove", raw).await?,
        None => Vec::new(),
    };
    let after = get(&mut *tx, scope).await?;
    if !add.is_empty() || !remove.is_empty() {
        set_features(&mut tx, scope.project_id(), &add, &remove).await?;
        let after = get(&mut *tx, scope).await?;
        if after.features != current.features {
            ctx.outbox
                .record(
                    &mut tx,
                    Some(scope.project_id()),
                    Some(scope.user_id()),
                    &FeaturesChanged {
                        project_id: scope.project_id(),
                        features: after.features.clone(),
                    },
                )
                .await?;
        }
    }
    if !changed.is_empty() {
        ctx.outbox
            .record(
                &mut tx,
                Some(scope.project_id()),
                Some(scope.user_id()),
                &ProjectUpdated {
                    project_id: scope.project_id(),
                    username: after.username.clone(),
                    title: after.title.clone(),
                    changed,
                },
            )
            .await?;
    }
    let row = get(&mut *tx, scope).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(row)
}

/// Soft delete (owner only): hidden at once, name held, tokens naming it refused.
pub async fn delete(ctx: &Ctx, scope: &ProjectScope) -> Result<(), ApiError> {
    scope.require("project.delete_project", &GRANTS)?;
    let mut tx = ctx.pool.begin().await?;
    let username: Option<String> = sqlx::query_scalar(
        "UPDATE projects SET deleted_at = now(), updated_at = now() \
         WHERE id = $1 AND deleted_at IS NULL RETURNING username",
    )
    .bind(scope.project_id())
    .fetch_optional(&mut *tx)
    .await?;
    let username = username.ok_or_else(ApiError::not_found)?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &ProjectDeleted {
                project_id: scope.project_id(),
                username,
            },
        )
        .await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok(())
}

/// The owner's public identity and the settings map, for the detail view.
pub async fn detail_extras(db: &PgPool, row: &ProjectRow) -> Result<(Value, Value), ApiError> {
    let owner: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT user_id, username, email FROM memberships WHERE project_id = $1 AND role = 'owner'",
    )
    .bind(row.id)
    .fetch_optional(db)
    .await?;
    let settings: Vec<(String, Value)> = sqlx::query_as(
        "SELECT key, value FROM project_settings WHERE project_id = $1 ORDER BY key",
    )
    .bind(row.id)
    .fetch_all(db)
    .await?;
    let owner = owner.map_or(
        Value::Null,
        |(id, username, email)| json!({"id": id, "username": username, "email": email}),
    );
    let settings: serde_json::Map<String, Value> = settings.into_iter().collect();
    Ok((owner, Value::Object(settings)))
}

#[derive(Debug, sqlx::FromRow)]
pub struct FeatureRow {
    pub id: i64,
    pub name: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub title: String,
    pub description: String,
    pub default_fields: Value,
    pub enabled: bool,
}

/// The whole catalogue, with whether `scope`'s project has each feature.
pub async fn features(db: &PgPool, scope: &ProjectScope) -> Result<Vec<FeatureRow>, ApiError> {
    scope.require("project.view_feature", &GRANTS)?;
    Ok(sqlx::query_as(
        "SELECT f.id, f.name, f.type, f.title, f.description, f.default_fields, \
         EXISTS (SELECT 1 FROM project_features pf WHERE pf.project_id = $1 AND pf.feature_id = f.id) \
         AS enabled FROM features f ORDER BY f.id",
    )
    .bind(scope.project_id())
    .fetch_all(db)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_valid_usernames() {
        for title in [
            "My Shop",
            "متجري",
            "A",
            "API",
            "Café — Beirut!!",
            "x".repeat(80).as_str(),
        ] {
            let slug = slugify(title);
            let mut errors = FieldErrors::new();
            check_username(&mut errors, &slug);
            assert!(errors.is_empty(), "{title:?} → {slug:?}");
        }
        assert_eq!(slugify("My Shop"), "my-shop");
    }

    #[test]
    fn identifiers_have_the_documented_shape() {
        let re = Regex::new("^[A-Z][A-Z0-9]{5}$").unwrap();
        for _ in 0..100 {
            assert!(re.is_match(&random_identifier()));
        }
    }

    #[test]
    fn keys_with_digits_only_are_ids() {
        assert!(matches!(Key::parse("42"), Key::Id(42)));
        assert!(matches!(Key::parse("ABC123"), Key::Identifier("ABC123")));
        assert!(matches!(Key::parse("+42"), Key::Identifier(_)));
    }
}
