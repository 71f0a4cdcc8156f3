//! Coupons and redemptions (contract billing.md §6): CRUD through the resource machinery with
//! the REST and GraphQL spellings, case-insensitive unique codes, the computed status,
//! `validate/` (no side effect), `redeem/` (one use per source, never past the limits: the
//! coupon row is locked and the count moves conditionally) and `redemptions/{id}/release/`.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use integration::billing::{CouponEvent, CouponRedeemed, CouponReleased};
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::ledger::money;
use crate::GRANTS;

const MONEY: FieldKind = FieldKind::Decimal {
    min: Some(0),
    max: None,
    scale: 2,
};

const STATUS: &str = "CASE WHEN NOT t.is_active THEN 'inactive' \
    WHEN t.valid_from > now() THEN 'scheduled' \
    WHEN t.valid_until < now() THEN 'expired' \
    WHEN t.usage_limit IS NOT NULL AND t.used_count >= t.usage_limit THEN 'exhausted' \
    ELSE 'active' END";

pub static COUPON: Resource = Resource {
    service: "billing",
    model: "coupon",
    label: "Coupon",
    table: "coupons",
    fields: &[
        Field::text("code", 50).required().aliases(&["key"]),
        Field::text("description", 1000),
        Field::text("discount_type", 20).required(),
        Field::new("discount_value", MONEY).required(),
        // Dates or RFC 3339 times, read by the hooks; shown as times (computed below).
        Field::text("valid_from", 40).aliases(&["start_date"]),
        Field::text("valid_until", 40).aliases(&["end_date"]),
        Field::new("usage_limit", FieldKind::int_from(1)),
        Field::new("usage_limit_per_customer", FieldKind::int_from(1)),
        Field::new("used_count", FieldKind::int_from(0)).read_only(),
        Field::new("is_active", FieldKind::Bool),
        Field::new("min_order_amount", MONEY).aliases(&["minimum_purchase_amount"]),
        Field::new("max_discount_amount", MONEY).aliases(&["maximum_discount_amount"]),
    ],
    slug_from: None,
    computed: &[
        ("status", STATUS),
        (
            "valid_from",
            "to_char(t.valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        ),
        (
            "valid_until",
            "to_char(t.valid_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
        ),
    ],
    list: ListSpec {
        filters: &[
            Col::new("code", "lower(t.code)", Kind::Text),
            Col::new("status", STATUS, Kind::Text),
            Col::new("discount_type", "t.discount_type", Kind::Text),
            Col::new("is_active", "t.is_active", Kind::Bool),
            Col::new("valid_from", "t.valid_from", Kind::DateTime),
            Col::new("valid_until", "t.valid_until", Kind::DateTime),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("code", "lower(t.code)", Kind::Text),
            Col::new("valid_until", "t.valid_until", Kind::DateTime),
            Col::new("used_count", "t.used_count", Kind::Int),
        ],
        search: &["t.code", "t.description"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[kernel::db::ConstraintField {
        constraint: "coupons_code_unique",
        field: "code",
        message: "already exists",
    }],
    hooks: Some(&CouponRules),
    params: None,
    hidden: None,
    related: &[],
};

/// A date (start or end of that day, UTC) or an RFC 3339 time.
fn moment(text: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    let day = NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d").ok()?;
    let t = if end_of_day {
        day.and_hms_micro_opt(23, 59, 59, 999_999)?
    } else {
        day.and_hms_opt(0, 0, 0)?
    };
    Some(t.and_utc())
}

/// Checks and normalises a coupon write (§6): the code's alphabet, the discount type and its
/// aliases, the value (a percentage ≤ 100), the dates (end ≥ start).
pub struct CouponRules;

#[async_trait]
impl kernel::resource::Hooks for CouponRules {
    async fn before_write(
        &self,
        _ctx: &ServiceContext,
        tx: &mut PgConnection,
        _scope: &ProjectScope,
        id: Option<i64>,
        _body: &Value,
        values: &mut Values,
    ) -> Result<(), ApiError> {
        let mut errors = FieldErrors::new();
        if let Some(Bind::Text(code)) = values.get("code") {
            let ok = (3..=50).contains(&code.len())
                && code
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                errors.add("code", "Use 3 to 50 letters, digits, '_' or '-'.");
            }
        }
        let current: Option<(
            String,
            Decimal,
            Option<DateTime<Utc>>,
            Option<DateTime<Utc>>,
        )> = match id {
            Some(id) => Some(
                sqlx::query_as(
                    "SELECT discount_type, discount_value, valid_from, valid_until \
                         FROM coupons WHERE id = $1",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?,
            ),
            None => None,
        };
        let kind = match values.get("discount_type") {
            Some(Bind::Text(t)) => match t.to_ascii_lowercase().as_str() {
                "percentage" | "percent" => Some("percentage"),
                "fixed" | "fixed_amount" => Some("fixed"),
                _ => {
                    errors.add("discount_type", format!("\"{t}\" is not a valid choice."));
                    None
                }
            },
            Some(Bind::Null) => {
                errors.add("discount_type", "This field may not be null.");
                None
            }
            _ => None,
        };
        if let Some(k) = kind {
            values.insert("discount_type".into(), Bind::Text(k.to_owned()));
        }
        let kind = kind
            .map(str::to_owned)
            .or_else(|| current.as_ref().map(|c| c.0.clone()));
        let value = match values.get("discount_value") {
            Some(Bind::Decimal(d)) => Some(*d),
            _ => current.as_ref().map(|c| c.1),
        };
        if let Some(v) = value {
            if v <= Decimal::ZERO {
                errors.add("discount_value", "Ensure this value is greater than 0.");
            } else if kind.as_deref() == Some("percentage") && v > Decimal::from(100) {
                errors.add("discount_value", "A percentage is at most 100.");
            }
        }
        let mut bounds = [
            current.as_ref().and_then(|c| c.2),
            current.as_ref().and_then(|c| c.3),
        ];
        for (n, field) in ["valid_from", "valid_until"].iter().enumerate() {
            match values.get(*field) {
                Some(Bind::Text(t)) if t.is_empty() => {
                    values.insert((*field).to_owned(), Bind::Null);
                    bounds[n] = None;
                }
                Some(Bind::Text(t)) => match moment(t, n == 1) {
                    Some(at) => {
                        values.insert((*field).to_owned(), Bind::DateTime(at));
                        bounds[n] = Some(at);
                    }
                    None => errors.add(*field, "Use a date (YYYY-MM-DD) or an RFC 3339 time."),
                },
                Some(Bind::Null) => bounds[n] = None,
                _ => {}
            }
        }
        if let [Some(from), Some(until)] = bounds {
            if until < from {
                errors.add("valid_until", "The end must not be before the start.");
            }
        }
        errors.into_result()
    }
}

#[derive(sqlx::FromRow)]
struct CouponRow {
    id: i64,
    code: String,
    discount_type: String,
    discount_value: Decimal,
    valid_from: Option<DateTime<Utc>>,
    valid_until: Option<DateTime<Utc>>,
    usage_limit: Option<i32>,
    usage_limit_per_customer: Option<i32>,
    used_count: i32,
    is_active: bool,
    min_order_amount: Decimal,
    max_discount_amount: Decimal,
}

const COUPON_ROW: &str = "SELECT id, code, discount_type, discount_value, valid_from, \
    valid_until, usage_limit, usage_limit_per_customer, used_count, is_active, min_order_amount, \
    max_discount_amount FROM coupons";

/// `{code, order_amount, customer_id?}` as given.
struct Ask {
    code: String,
    order_amount: Decimal,
    customer_id: Option<i64>,
}

fn ask(body: &Value) -> Result<Ask, ApiError> {
    let mut errors = FieldErrors::new();
    let code = body
        .get("code")
        .or_else(|| body.get("key"))
        .or_else(|| body.get("coupon_code"))
        .and_then(Value::as_str)
        .map(str::trim)
        .unwrap_or("");
    if code.is_empty() || code.len() > 50 {
        errors.required("code");
    }
    let order_amount = match body
        .get("order_amount")
        .or_else(|| body.get("amount"))
        .filter(|v| !v.is_null())
    {
        None => {
            errors.required("order_amount");
            Decimal::ZERO
        }
        Some(v) => {
            let parsed = match v {
                Value::String(s) => s.trim().parse::<Decimal>().ok(),
                Value::Number(n) => n.to_string().parse::<Decimal>().ok(),
                _ => None,
            }
            .map(|d| d.normalize())
            .filter(|d| {
                *d >= Decimal::ZERO && d.scale() <= 2 && *d < Decimal::from(1_000_000_000_000i64)
            });
            parsed.unwrap_or_else(|| {
                errors.add(
                    "order_amount",
                    "A non-negative amount with at most 2 decimals is required.",
                );
                Decimal::ZERO
            })
        }
    };
    let customer_id = match body.get("customer_id").filter(|v| !v.is_null()) {
        None => None,
        Some(v) => match v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        {
            Some(n) if n > 0 => Some(n),
            _ => {
                errors.add("customer_id", "A valid integer is required.");
                None
            }
        },
    };
    errors.into_result()?;
    Ok(Ask {
        code: code.to_owned(),
        order_amount,
        customer_id,
    })
}

fn refuse(code: &'static str, detail: &str) -> ApiError {
    ApiError::rule(code, detail).with("valid", false)
}

async fn find(
    tx: &mut PgConnection,
    project_id: i64,
    code: &str,
    lock: bool,
) -> Result<CouponRow, ApiError> {
    sqlx::query_as(&format!(
        "{COUPON_ROW} WHERE project_id = $1 AND lower(code) = lower($2) AND deleted_at IS NULL{}",
        if lock { " FOR UPDATE" } else { "" }
    ))
    .bind(project_id)
    .bind(code)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| refuse("coupon_not_found", "No coupon has this code."))
}

async fn customer_uses(
    tx: &mut PgConnection,
    coupon: i64,
    customer: Option<i64>,
) -> Result<i64, ApiError> {
    let Some(customer) = customer else {
        return Ok(0);
    };
    Ok(sqlx::query_scalar(
        "SELECT count(*) FROM coupon_redemptions WHERE coupon_id = $1 AND customer_id = $2 \
         AND released_at IS NULL",
    )
    .bind(coupon)
    .bind(customer)
    .fetch_one(&mut *tx)
    .await?)
}

/// The discount `c` gives on `amount` now, or the refusal (§6, in the contract's order).
fn evaluate(
    c: &CouponRow,
    amount: Decimal,
    uses: i64,
    now: DateTime<Utc>,
) -> Result<Decimal, ApiError> {
    if !c.is_active {
        return Err(refuse("coupon_inactive", "This coupon is not active."));
    }
    if c.valid_from.is_some_and(|f| f > now) {
        return Err(refuse(
            "coupon_not_started",
            "This coupon is not valid yet.",
        ));
    }
    if c.valid_until.is_some_and(|u| u < now) {
        return Err(refuse("coupon_expired", "This coupon has expired."));
    }
    if c.usage_limit.is_some_and(|l| c.used_count >= l) {
        return Err(refuse(
            "coupon_usage_limit_reached",
            "This coupon has been used up.",
        ));
    }
    if c.usage_limit_per_customer
        .is_some_and(|l| uses >= i64::from(l))
    {
        return Err(refuse(
            "coupon_customer_limit_reached",
            "This customer has already used this coupon.",
        ));
    }
    if amount < c.min_order_amount {
        return Err(refuse(
            "coupon_minimum_not_met",
            &format!("The order must be at least {}.", money(c.min_order_amount)),
        )
        .with("details", json!({"minimum": money(c.min_order_amount)})));
    }
    let mut discount = if c.discount_type == "percentage" {
        (amount * c.discount_value / Decimal::from(100))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    } else {
        c.discount_value
    };
    if c.max_discount_amount > Decimal::ZERO {
        discount = discount.min(c.max_discount_amount);
    }
    Ok(discount.min(amount).round_dp(2))
}

/// `POST m/coupons/validate/` → `{valid, coupon{id,code,discount_type,discount_value},
/// discount_amount, final_amount, message}`; a refusal is 422 `{valid:false, detail, code}`.
pub async fn validate(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<Value, ApiError> {
    scope.require("billing.view_coupon", &GRANTS)?;
    let ask = ask(body)?;
    let mut conn = ctx.pool.acquire().await?;
    let coupon = find(&mut conn, scope.project_id(), &ask.code, false).await?;
    let uses = customer_uses(&mut conn, coupon.id, ask.customer_id).await?;
    let discount = evaluate(&coupon, ask.order_amount, uses, Utc::now())?;
    Ok(json!({
        "valid": true,
        "coupon": {
            "id": coupon.id,
            "code": coupon.code,
            "discount_type": coupon.discount_type,
            "discount_value": money(coupon.discount_value),
        },
        "discount_amount": money(discount),
        "final_amount": money(ask.order_amount - discount),
        "message": "The coupon applies.",
    }))
}

const REDEMPTION: &str = "SELECT jsonb_build_object('id', r.id, 'coupon_id', r.coupon_id, \
    'code', c.code, 'customer_id', r.customer_id, 'source_type', r.source_type, \
    'source_id', r.source_id, 'order_amount', round(r.order_amount, 2)::text, \
    'discount_amount', round(r.discount_amount, 2)::text, \
    'created_at', to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
    'released_at', to_char(r.released_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')) \
    FROM coupon_redemptions r JOIN coupons c ON c.id = r.coupon_id";

async fn redemption(tx: &mut PgConnection, id: i64) -> Result<Value, ApiError> {
    Ok(sqlx::query_scalar(&format!("{REDEMPTION} WHERE r.id = $1"))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?)
}

fn event(r: &Value) -> CouponEvent {
    CouponEvent {
        redemption_id: r["id"].as_i64().unwrap_or_default(),
        coupon_id: r["coupon_id"].as_i64().unwrap_or_default(),
        code: r["code"].as_str().unwrap_or_default().to_owned(),
        customer_id: r["customer_id"].as_i64(),
        source_type: r["source_type"].as_str().unwrap_or_default().to_owned(),
        source_id: r["source_id"].as_i64().unwrap_or_default(),
        discount_amount: r["discount_amount"].as_str().unwrap_or("0.00").to_owned(),
    }
}

/// `POST m/coupons/redeem/` `{code, order_amount, customer_id?, source_type, source_id}` →
/// (created, redemption). The same (coupon, source) answers its live redemption.
pub async fn redeem(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    body: &Value,
) -> Result<(bool, Value), ApiError> {
    scope.require("billing.redeem_coupon", &GRANTS)?;
    let ask = ask(body)?;
    let mut errors = FieldErrors::new();
    let source_type = body
        .get("source_type")
        .and_then(Value::as_str)
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 20
                && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if source_type.is_none() {
        errors.add("source_type", "Name the source (order, pos…).");
    }
    let source_id = body
        .get("source_id")
        .and_then(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        })
        .filter(|n| *n > 0);
    if source_id.is_none() {
        errors.add("source_id", "A valid integer is required.");
    }
    errors.into_result()?;
    let (Some(source_type), Some(source_id)) = (source_type, source_id) else {
        return Err(ApiError::field("source_id", "A valid integer is required."));
    };
    let mut tx = ctx.pool.begin().await?;
    let coupon = find(&mut tx, scope.project_id(), &ask.code, true).await?;
    let existing: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM coupon_redemptions WHERE coupon_id = $1 AND source_type = $2 \
         AND source_id = $3 AND released_at IS NULL",
    )
    .bind(coupon.id)
    .bind(&source_type)
    .bind(source_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(id) = existing {
        let found = redemption(&mut tx, id).await?;
        tx.commit().await?;
        return Ok((false, found));
    }
    let uses = customer_uses(&mut tx, coupon.id, ask.customer_id).await?;
    let discount = evaluate(&coupon, ask.order_amount, uses, Utc::now())?;
    let taken = sqlx::query(
        "UPDATE coupons SET used_count = used_count + 1, updated_at = now() \
         WHERE id = $1 AND (usage_limit IS NULL OR used_count < usage_limit)",
    )
    .bind(coupon.id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if taken != 1 {
        return Err(refuse(
            "coupon_usage_limit_reached",
            "This coupon has been used up.",
        ));
    }
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO coupon_redemptions (project_id, coupon_id, customer_id, source_type, \
           source_id, order_amount, discount_amount, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(scope.project_id())
    .bind(coupon.id)
    .bind(ask.customer_id)
    .bind(&source_type)
    .bind(source_id)
    .bind(ask.order_amount)
    .bind(discount)
    .bind(scope.user_id())
    .fetch_one(&mut *tx)
    .await?;
    let row = redemption(&mut tx, id).await?;
    ctx.outbox
        .record(
            &mut tx,
            Some(scope.project_id()),
            Some(scope.user_id()),
            &CouponRedeemed(event(&row)),
        )
        .await?;
    tx.commit().await?;
    ctx.outbox.nudge();
    Ok((true, row))
}

/// `POST m/coupons/redemptions/{id}/release/`: frees the use (releasing twice is a no-op).
pub async fn release(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
) -> Result<Value, ApiError> {
    let mut tx = ctx.pool.begin().await?;
    let found: Option<(i64, Option<DateTime<Utc>>)> = sqlx::query_as(
        "SELECT coupon_id, released_at FROM coupon_redemptions WHERE id = $1 AND project_id = $2",
    )
    .bind(id)
    .bind(scope.project_id())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((coupon, released)) = found else {
        return Err(ApiError::not_found());
    };
    scope.require("billing.redeem_coupon", &GRANTS)?;
    if released.is_none() {
        // The coupon first, as redeem locks it: one order of locks.
        sqlx::query("SELECT id FROM coupons WHERE id = $1 FOR UPDATE")
            .bind(coupon)
            .execute(&mut *tx)
            .await?;
        let freed = sqlx::query(
            "UPDATE coupon_redemptions SET released_at = now() WHERE id = $1 AND released_at IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if freed == 1 {
            sqlx::query(
                "UPDATE coupons SET used_count = used_count - 1, updated_at = now() \
                 WHERE id = $1 AND used_count > 0",
            )
            .bind(coupon)
            .execute(&mut *tx)
            .await?;
            let row = redemption(&mut tx, id).await?;
            ctx.outbox
                .record(
                    &mut tx,
                    Some(scope.project_id()),
                    Some(scope.user_id()),
                    &CouponReleased(event(&row)),
                )
                .await?;
        }
    }
    let row = redemption(&mut tx, id).await?;
    tx.commit().await?;
    ctx.outbox.nudge();
    Ok(row)
}
