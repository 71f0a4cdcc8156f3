//! Shipping methods, tags, notes, history, statistics and custom statuses (contract order.md
//! §3.3, §8).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json as JsonOut;
use kernel::auth::ProjectScope;
use kernel::extract::{Json, Query};
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::rbac::Grants;
use kernel::resource::{Field, FieldKind, Resource};
use kernel::routing::{get, post, Routes};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::orders::{int, money, text, GRANTS};

/// Shipping methods, statuses and tags: read by members, written by admins and owners.
pub const ADMIN_WRITES: Grants = Grants {
    editor_extra: &[],
    editor_writes: Some(&[]),
};

/// Seeded per project: code, name, description, cost, estimated days.
pub const SHIPPING: &[(&str, &str, &str, &str, i32)] = &[
    (
        "standard",
        "Standard",
        "Delivered in about 5 business days",
        "9.99",
        5,
    ),
    (
        "express",
        "Express",
        "Delivered in about 2 business days",
        "19.99",
        2,
    ),
    (
        "overnight",
        "Overnight",
        "Delivered the next business day",
        "34.99",
        1,
    ),
    ("pickup", "Pickup", "Collected at the store", "0", 0),
];

const MAIN_STATUSES: &[&str] = &[
    "pending_payment",
    "pending",
    "confirmed",
    "processing",
    "shipped",
    "delivered",
    "completed",
    "cancelled",
    "returned",
];

pub static SHIPPING_METHOD: Resource = Resource {
    service: "order",
    model: "shippingmethod",
    label: "Shipping method",
    table: "shipping_methods",
    fields: &[
        Field::text("code", 30).required(),
        Field::text("name", 100),
        Field::text("description", 1000),
        Field::new(
            "cost",
            FieldKind::Decimal {
                min: Some(0),
                max: Some(1_000_000_000),
                scale: 2,
            },
        ),
        Field::new(
            "estimated_days",
            FieldKind::Int {
                min: Some(0),
                max: Some(365),
            },
        ),
        Field::new("is_active", FieldKind::Bool),
        Field::new(
            "free_over",
            FieldKind::Decimal {
                min: Some(0),
                max: Some(1_000_000_000),
                scale: 2,
            },
        ),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[
            Col::new("code", "t.code", Kind::Text),
            Col::new("is_active", "t.is_active", Kind::Bool),
        ],
        ordering: &[
            Col::new("cost", "t.cost", Kind::Decimal),
            Col::new("code", "t.code", Kind::Text),
        ],
        search: &["t.code", "t.name"],
        default_ordering: "cost",
        extra_params: &[],
    },
    search_vector: None,
    public_read: true,
    public_filter: Some("t.is_active"),
    grants: ADMIN_WRITES,
    unique: &[kernel::db::ConstraintField {
        constraint: "shipping_methods_code",
        field: "code",
        message: "A shipping method with this code already exists.",
    }],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

pub static TAG: Resource = Resource {
    service: "order",
    model: "tag",
    label: "Tag",
    table: "tags",
    fields: &[
        Field::text("name", 100).required(),
        Field::new("color", FieldKind::Color),
    ],
    slug_from: None,
    computed: &[],
    list: ListSpec {
        filters: &[Col::new("name", "lower(t.name)", Kind::Text)],
        ordering: &[Col::new("name", "t.name", Kind::Text)],
        search: &["t.name"],
        default_ordering: "name",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: ADMIN_WRITES,
    unique: &[kernel::db::ConstraintField {
        constraint: "tags_name",
        field: "name",
        message: "A tag with this name already exists.",
    }],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

pub static STATUS: Resource = Resource {
    service: "order",
    model: "status",
    label: "Status",
    table: "statuses",
    fields: &[
        Field::text("name", 100).required(),
        Field::text("description", 1000),
        Field::new("main_status", FieldKind::Choice(MAIN_STATUSES)),
        Field::new("is_active", FieldKind::Bool),
        Field::new("is_customer_visible", FieldKind::Bool),
        Field::new(
            "sort_order",
            FieldKind::Int {
                min: Some(0),
                max: Some(100_000),
            },
        )
        .aliases(&["order"]),
    ],
    slug_from: None,
    computed: &[("order", "t.sort_order")],
    list: ListSpec {
        filters: &[
            Col::new("main_status", "t.main_status", Kind::Text),
            Col::new("is_active", "t.is_active", Kind::Bool),
        ],
        ordering: &[
            Col::new("order", "t.sort_order", Kind::Int),
            Col::new("name", "t.name", Kind::Text),
        ],
        search: &["t.name", "t.description"],
        default_ordering: "order",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: ADMIN_WRITES,
    unique: &[],
    hooks: None,
    params: None,
    hidden: None,
    related: &[],
};

/// Seeds a project's shipping methods and one custom status per main status, once.
pub async fn seed(tx: &mut PgConnection, project_id: i64) -> sqlx::Result<()> {
    // Two first uses at once seed once.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('order-seed'), $1::int)")
        .bind((project_id % i64::from(i32::MAX)) as i32)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO shipping_methods (project_id, code, name, description, cost, estimated_days) \
         SELECT $1, c, n, d, k::numeric, e FROM unnest($2::text[], $3::text[], $4::text[], \
           $5::text[], $6::int[]) AS s(c, n, d, k, e) \
         WHERE NOT EXISTS (SELECT 1 FROM shipping_methods WHERE project_id = $1) \
         ON CONFLICT DO NOTHING",
    )
    .bind(project_id)
    .bind(SHIPPING.iter().map(|m| m.0).collect::<Vec<_>>())
    .bind(SHIPPING.iter().map(|m| m.1).collect::<Vec<_>>())
    .bind(SHIPPING.iter().map(|m| m.2).collect::<Vec<_>>())
    .bind(SHIPPING.iter().map(|m| m.3).collect::<Vec<_>>())
    .bind(SHIPPING.iter().map(|m| m.4).collect::<Vec<_>>())
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO statuses (project_id, name, main_status, sort_order) \
         SELECT $1, initcap(replace(s, '_', ' ')), s, n::int * 10 \
         FROM unnest($2::text[]) WITH ORDINALITY AS m(s, n) \
         WHERE NOT EXISTS (SELECT 1 FROM statuses WHERE project_id = $1)",
    )
    .bind(project_id)
    .bind(MAIN_STATUSES)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The cost of a shipping method for a subtotal (free at or over `free_over`); `None` for an
/// unknown or inactive method. A project's methods are seeded on first use.
pub async fn shipping_cost(
    db: &mut PgConnection,
    project_id: i64,
    code: &str,
    subtotal: Decimal,
) -> Result<Option<Decimal>, ApiError> {
    let row: Option<(Decimal, Option<Decimal>)> = sqlx::query_as(
        "SELECT cost, free_over FROM shipping_methods WHERE project_id = $1 AND code = $2 \
         AND is_active AND deleted_at IS NULL",
    )
    .bind(project_id)
    .bind(code)
    .fetch_optional(&mut *db)
    .await?;
    if row.is_none() {
        let any: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM shipping_methods WHERE project_id = $1)",
        )
        .bind(project_id)
        .fetch_one(&mut *db)
        .await?;
        if !any {
            seed(db, project_id).await?;
            return Box::pin(shipping_cost(db, project_id, code, subtotal)).await;
        }
    }
    Ok(row.map(|(cost, free_over)| match free_over {
        Some(limit) if subtotal >= limit => Decimal::ZERO,
        _ => cost,
    }))
}

/// The active shipping methods of a project, as carts offer them.
pub async fn methods(db: &mut PgConnection, project_id: i64) -> Result<Vec<Value>, ApiError> {
    shipping_cost(db, project_id, "", Decimal::ZERO).await?;
    Ok(sqlx::query_scalar(
        "SELECT jsonb_build_object('id', code, 'name', name, 'description', description, \
           'cost', to_char(cost, 'FM999999999999990.00'), 'estimated_days', estimated_days) \
         FROM shipping_methods WHERE project_id = $1 AND is_active AND deleted_at IS NULL \
         ORDER BY cost, code",
    )
    .bind(project_id)
    .fetch_all(&mut *db)
    .await?)
}

/// Seeds the reference data of a new project (return reasons, shipping methods, statuses).
pub struct ProjectSeeder {
    pub pool: sqlx::PgPool,
}

#[async_trait::async_trait]
impl kernel::events::EventHandler for ProjectSeeder {
    async fn handle(&self, envelope: &kernel::events::Envelope) -> anyhow::Result<()> {
        let Some(event) = envelope.decode::<integration::project::ProjectCreated>() else {
            return Ok(());
        };
        let event = event?;
        let Some(mut tx) = kernel::events::begin_once(&self.pool, "order", envelope).await? else {
            return Ok(());
        };
        crate::returns::seed(&mut tx, event.project_id).await?;
        seed(&mut tx, event.project_id).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn order_of(ctx: &ServiceContext, scope: &ProjectScope, key: &str) -> Result<i64, ApiError> {
    crate::orders::find(&ctx.pool, scope.project_id(), key).await
}

/// `GET orders/{id}/notes/`.
#[utoipa::path(get, path = "/api/v1/order/orders/{id}/notes/", tag = "Order", params(("id" = String, Path)), responses((status = 200, description = "The order's notes"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found")))]
async fn notes(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(key): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    scope.require("order.view_ordernote", &GRANTS)?;
    let id = order_of(&ctx, &scope, &key).await?;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'note', note, 'is_internal', is_internal, \
           'created_by', created_by, 'created_by_display', created_by_display, \
           'created_at', created_at) FROM order_notes WHERE order_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&ctx.pool)
    .await?;
    Ok(JsonOut(json!({"count": rows.len(), "results": rows})))
}

/// `POST orders/{id}/notes/` `{note, is_internal?}` → 201.
#[utoipa::path(post, path = "/api/v1/order/orders/{id}/notes/", tag = "Order", params(("id" = String, Path)), request_body = Value, responses((status = 201, description = "The note"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found")))]
async fn add_note(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response, ApiError> {
    scope.require("order.add_ordernote", &GRANTS)?;
    let mut errors = FieldErrors::new();
    let note = text(&body, &["note", "notes"], 5000, &mut errors);
    if note.is_empty() && errors.is_empty() {
        errors.required("note");
    }
    let internal = match body.get("is_internal") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            errors.add("is_internal", "Must be a boolean.");
            false
        }
    };
    errors.into_result()?;
    let id = order_of(&ctx, &scope, &key).await?;
    let display = match ctx
        .platform
        .lookup::<integration::users::SharedUserDirectory>()
    {
        Some(users) => users
            .by_id(scope.user_id())
            .await
            .ok()
            .flatten()
            .map(|u| u.email)
            .unwrap_or_default(),
        None => String::new(),
    };
    let mut tx = ctx.pool.begin().await?;
    let row: Value = sqlx::query_scalar(
        "INSERT INTO order_notes (order_id, note, is_internal, created_by, created_by_display) \
         VALUES ($1, $2, $3, $4, $5) RETURNING jsonb_build_object('id', id, 'note', note, \
           'is_internal', is_internal, 'created_by', created_by, \
           'created_by_display', created_by_display, 'created_at', created_at)",
    )
    .bind(id)
    .bind(&note)
    .bind(internal)
    .bind(scope.user_id())
    .bind(&display)
    .fetch_one(&mut *tx)
    .await?;
    crate::orders::history(&mut tx, id, "note", "", "", Some(scope.user_id())).await?;
    tx.commit().await?;
    Ok((StatusCode::CREATED, JsonOut(row)).into_response())
}

/// `GET orders/{id}/history/`: the order's append-only events.
#[utoipa::path(get, path = "/api/v1/order/orders/{id}/history/", tag = "Order", params(("id" = String, Path)), responses((status = 200, description = "The order's status history"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found")))]
async fn history(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(key): Path<String>,
) -> Result<JsonOut<Value>, ApiError> {
    scope.require("order.view_order", &GRANTS)?;
    let id = order_of(&ctx, &scope, &key).await?;
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'event', event, 'status', status, 'notes', notes, \
           'performed_by', CASE WHEN performed_by IS NULL THEN NULL \
             ELSE jsonb_build_object('id', performed_by) END, 'timestamp', created_at) \
         FROM order_history WHERE order_id = $1 ORDER BY id",
    )
    .bind(id)
    .fetch_all(&ctx.pool)
    .await?;
    Ok(JsonOut(json!({"count": rows.len(), "results": rows})))
}

fn tag_ids(body: &Value) -> Result<Vec<i64>, ApiError> {
    let ids = body
        .get("tag_ids")
        .or_else(|| body.get("related_ids"))
        .and_then(Value::as_array)
        .filter(|a| a.len() <= 100)
        .ok_or_else(|| ApiError::field("tag_ids", "Give a list of at most 100 tag ids."))?;
    ids.iter()
        .map(|v| int(Some(v)).filter(|i| *i > 0))
        .collect::<Option<Vec<i64>>>()
        .ok_or_else(|| ApiError::field("tag_ids", "Tag ids are positive integers."))
}

/// Adds (`add`) or removes tags of an order; unknown or foreign tags → 400.
pub async fn tag(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    key: &str,
    ids: &[i64],
    add: bool,
) -> Result<Value, ApiError> {
    scope.require("order.change_order", &GRANTS)?;
    let id = order_of(ctx, scope, key).await?;
    let known: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM tags WHERE project_id = $1 AND id = ANY($2) AND deleted_at IS NULL",
    )
    .bind(scope.project_id())
    .bind(ids)
    .fetch_one(&ctx.pool)
    .await?;
    let mut distinct = ids.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if known != distinct.len() as i64 {
        return Err(ApiError::field("tag_ids", "Unknown tag."));
    }
    if add {
        sqlx::query(
            "INSERT INTO order_tags (order_id, tag_id) SELECT $1, unnest($2::bigint[]) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&distinct)
        .execute(&ctx.pool)
        .await?;
    } else {
        sqlx::query("DELETE FROM order_tags WHERE order_id = $1 AND tag_id = ANY($2)")
            .bind(id)
            .bind(&distinct)
            .execute(&ctx.pool)
            .await?;
    }
    let tags: Vec<Value> = sqlx::query_scalar(
        "SELECT jsonb_build_object('id', t.id, 'name', t.name, 'color', t.color) FROM order_tags ot \
         JOIN tags t ON t.id = ot.tag_id WHERE ot.order_id = $1 ORDER BY t.name",
    )
    .bind(id)
    .fetch_all(&ctx.pool)
    .await?;
    Ok(json!({"id": id, "tags": tags}))
}

#[utoipa::path(post, path = "/api/v1/order/orders/{id}/tags/", tag = "Order", params(("id" = String, Path)), request_body = Value, responses((status = 200, description = "The order's tags"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found")))]
async fn add_tags(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    Ok(JsonOut(
        tag(&ctx, &scope, &key, &tag_ids(&body)?, true).await?,
    ))
}

#[utoipa::path(delete, path = "/api/v1/order/orders/{id}/tags/", tag = "Order", params(("id" = String, Path)), request_body = Value, responses((status = 200, description = "The order's tags"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission"), (status = 404, description = "Not found")))]
async fn remove_tags(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Path(key): Path<String>,
    Json(body): Json<Value>,
) -> Result<JsonOut<Value>, ApiError> {
    Ok(JsonOut(
        tag(&ctx, &scope, &key, &tag_ids(&body)?, false).await?,
    ))
}

#[derive(serde::Deserialize)]
struct Period {
    date_from: Option<String>,
    date_to: Option<String>,
    start_date: Option<String>,
    end_date: Option<String>,
}

fn day(v: Option<&String>, field: &str) -> Result<Option<chrono::NaiveDate>, ApiError> {
    match v.map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| ApiError::field(field, "Use the date format YYYY-MM-DD.")),
    }
}

/// `GET orders/statistics/?date_from&date_to`.
#[utoipa::path(get, path = "/api/v1/order/orders/statistics/", tag = "Order", responses((status = 200, description = "Counts and revenue"), (status = 400, description = "Invalid input"), (status = 403, description = "Not a member or no permission")))]
async fn statistics(
    State(ctx): State<ServiceContext>,
    scope: ProjectScope,
    Query(q): Query<Period>,
) -> Result<JsonOut<Value>, ApiError> {
    scope.require("order.view_order", &GRANTS)?;
    let from = day(q.date_from.as_ref().or(q.start_date.as_ref()), "date_from")?;
    let to = day(q.date_to.as_ref().or(q.end_date.as_ref()), "date_to")?;
    let scope_sql =
        "project_id = $1 AND deleted_at IS NULL AND status NOT IN ('placing', 'failed') \
        AND ($2::date IS NULL OR created_at >= $2::date) \
        AND ($3::date IS NULL OR created_at < $3::date + 1)";
    let (count, revenue): (i64, Decimal) = sqlx::query_as(&format!(
        "SELECT count(*), COALESCE(sum(amount_paid - amount_refunded) FILTER \
           (WHERE status <> 'cancelled'), 0) FROM orders WHERE {scope_sql}"
    ))
    .bind(scope.project_id())
    .bind(from)
    .bind(to)
    .fetch_one(&ctx.pool)
    .await?;
    let breakdown = |column: &'static str| {
        let pool = ctx.pool.clone();
        let project = scope.project_id();
        async move {
            sqlx::query_scalar::<_, Option<Value>>(&format!(
                "SELECT jsonb_object_agg(k, n) FROM (SELECT {column} AS k, count(*) AS n FROM orders \
                 WHERE {scope_sql} GROUP BY 1) s"
            ))
            .bind(project)
            .bind(from)
            .bind(to)
            .fetch_one(&pool)
            .await
            .map(|v| v.unwrap_or_else(|| json!({})))
        }
    };
    let statuses = breakdown("status").await?;
    let payments = breakdown("payment_status").await?;
    let popular: Vec<Value> = sqlx::query_scalar(&format!(
        "SELECT jsonb_build_object('product_id', i.product_id, 'product_name', max(i.product_name), \
           'total_sold', sum(i.quantity)) FROM order_items i JOIN orders o ON o.id = i.order_id \
         WHERE o.{} AND o.status <> 'cancelled' GROUP BY i.product_id \
         ORDER BY sum(i.quantity) DESC, i.product_id LIMIT 10",
        scope_sql
            .replace("deleted_at", "o.deleted_at")
            .replace(" status", " o.status")
            .replace("created_at", "o.created_at")
    ))
    .bind(scope.project_id())
    .bind(from)
    .bind(to)
    .fetch_all(&ctx.pool)
    .await?;
    let average = if count > 0 {
        revenue / Decimal::from(count)
    } else {
        Decimal::ZERO
    };
    let mut out = json!({
        "total_orders": count,
        "total_revenue": money(revenue),
        "average_order_value": money(average),
        "status_breakdown": statuses,
        "payment_status_breakdown": payments,
        "period": {"from": from, "to": to},
        "most_popular_products": popular,
    });
    for status in MAIN_STATUSES {
        out[format!("{status}_orders")] = statuses.get(*status).cloned().unwrap_or(json!(0));
    }
    Ok(JsonOut(out))
}

/// The hand-written operations of this file.
#[derive(utoipa::OpenApi)]
#[openapi(paths(notes, add_note, history, add_tags, remove_tags, statistics))]
pub struct Api;

pub fn routes(r: Routes<ServiceContext>) -> Routes<ServiceContext> {
    let r = r.at("", &["orders/statistics"], get(statistics));
    let r = r.at("", &["orders/{id}/notes"], get(notes).post(add_note));
    let r = r.at("", &["orders/{id}/history"], get(history));
    let r = r.at(
        "",
        &["orders/{id}/tags"],
        post(add_tags).delete(remove_tags),
    );
    let r = r.resource_with("", &["shipping-methods"], &SHIPPING_METHOD, None);
    let r = r.resource_with("", &["tags"], &TAG, None);
    r.resource_with("", &["statuses"], &STATUS, None)
}
