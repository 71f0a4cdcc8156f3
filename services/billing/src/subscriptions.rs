//! User subscriptions (contract billing.md §7): CRUD with the 0a47ee5 aliases and the compat
//! `plan` object, the state machine (pending → active ⇄ paused → cancelled; active → expired),
//! `cancel/`, `pause/`, `resume/`, the next billing date (start + period, month-end clamped),
//! and a user's own subscriptions (`mine/`) without a project role.

use async_trait::async_trait;
use chrono::{DateTime, Months, Utc};
use kernel::auth::ProjectScope;
use kernel::list::{Field as Col, Kind, ListSpec};
use kernel::resource::{Bind, Field, FieldKind, Resource, Values};
use kernel::service::ServiceContext;
use kernel::{ApiError, FieldErrors};
use serde_json::{json, Value};
use sqlx::PgConnection;

use crate::GRANTS;

const STATUSES: &[&str] = &["pending", "active", "paused", "cancelled", "expired"];
const PERIODS: &[&str] = &["monthly", "quarterly", "yearly", "lifetime"];

pub static USER_SUBSCRIPTION: Resource = Resource {
    service: "billing",
    model: "usersubscription",
    label: "User subscription",
    table: "user_subscriptions",
    fields: &[
        Field::new("user_id", FieldKind::int_from(1))
            .required()
            .aliases(&["user"]),
        Field::text("catalog_item_id", 100)
            .required()
            .aliases(&["plan"]),
        Field::text("catalog_item_name", 255).required(),
        Field::text("catalog_item_type", 50),
        Field::new("subscription_status", FieldKind::Choice(STATUSES)).aliases(&["status"]),
        Field::new("renewal_period", FieldKind::Choice(PERIODS)).aliases(&["billing_cycle"]),
        Field::new(
            "price",
            FieldKind::Decimal {
                min: Some(0),
                max: None,
                scale: 2,
            },
        ),
        Field::text("currency", 3),
        Field::new("start_date", FieldKind::DateTime).required(),
        Field::new("end_date", FieldKind::DateTime),
        Field::new("next_billing_date", FieldKind::DateTime),
        Field::new("last_invoice_id", FieldKind::int_from(1)).read_only(),
        Field::text("notes", 2000),
        Field::new("configuration", FieldKind::Json { max_bytes: 16_384 }),
        Field::new("auto_renew", FieldKind::Bool),
        Field::new("cancel_at_period_end", FieldKind::Bool),
        Field::new("cancelled_at", FieldKind::DateTime).read_only(),
        Field::text("cancel_reason", 1000).read_only(),
    ],
    slug_from: None,
    computed: &[(
        "plan",
        "jsonb_build_object('id', t.catalog_item_id, 'name', t.catalog_item_name, \
         'price', round(t.price, 2)::text, 'billing_cycle', t.renewal_period)",
    )],
    list: ListSpec {
        filters: &[
            Col::new("user", "t.user_id", Kind::Int),
            Col::new("user_id", "t.user_id", Kind::Int),
            Col::new("status", "t.subscription_status", Kind::Text),
            Col::new("subscription_status", "t.subscription_status", Kind::Text),
            Col::new("plan", "t.catalog_item_id", Kind::Text),
            Col::new("catalog_item_id", "t.catalog_item_id", Kind::Text),
            Col::new("renewal_period", "t.renewal_period", Kind::Text),
            Col::new("next_billing_date", "t.next_billing_date", Kind::DateTime),
        ],
        ordering: &[
            Col::new("created_at", "t.created_at", Kind::DateTime),
            Col::new("start_date", "t.start_date", Kind::DateTime),
            Col::new("next_billing_date", "t.next_billing_date", Kind::DateTime),
        ],
        search: &["t.catalog_item_name", "t.catalog_item_id"],
        default_ordering: "-created_at",
        extra_params: &[],
    },
    search_vector: None,
    public_read: false,
    public_filter: None,
    grants: GRANTS,
    unique: &[],
    hooks: Some(&SubscriptionRules),
    params: None,
    hidden: None,
    related: &[],
};

/// `start` plus one period; a day the target month lacks becomes its last day (Jan 31 →
/// Feb 28/29). `None` for lifetime.
pub fn next_billing(start: DateTime<Utc>, period: &str) -> Option<DateTime<Utc>> {
    let months = match period {
        "monthly" => 1,
        "quarterly" => 3,
        "yearly" => 12,
        _ => return None,
    };
    // `checked_add_months` clamps to the month's end.
    start.checked_add_months(Months::new(months))
}

/// The state machine of §7.
fn may_become(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("pending", "active")
            | ("active", "paused")
            | ("paused", "active")
            | ("active" | "paused", "cancelled")
            | ("active", "expired")
    )
}

pub struct SubscriptionRules;

#[async_trait]
impl kernel::resource::Hooks for SubscriptionRules {
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
        let current: Option<(String, String, DateTime<Utc>, Option<DateTime<Utc>>)> = match id {
            Some(id) => Some(
                sqlx::query_as(
                    "SELECT subscription_status, renewal_period, start_date, end_date \
                     FROM user_subscriptions WHERE id = $1 FOR UPDATE",
                )
                .bind(id)
                .fetch_one(&mut *tx)
                .await?,
            ),
            None => None,
        };
        match (values.get("subscription_status"), &current) {
            (Some(Bind::Text(to)), Some((from, ..))) if to != from => {
                if !may_become(from, to) {
                    return Err(ApiError::rule(
                        "invalid_transition",
                        format!("A {from} subscription cannot become {to}."),
                    ));
                }
                if to == "cancelled" {
                    values.insert("cancelled_at".into(), Bind::DateTime(Utc::now()));
                }
            }
            (Some(Bind::Text(to)), None) if to != "pending" && to != "active" => {
                errors.add(
                    "subscription_status",
                    "A new subscription is pending or active.",
                );
            }
            (Some(Bind::Null), _) => {
                errors.add("subscription_status", "This field may not be null.");
            }
            _ => {}
        }
        if let Some(Bind::Text(c)) = values.get("currency") {
            if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) {
                values.insert("currency".into(), Bind::Text(c.to_ascii_uppercase()));
            } else {
                errors.add("currency", "Use an ISO 4217 code.");
            }
        }
        if matches!(values.get("renewal_period"), Some(Bind::Null)) {
            errors.add("renewal_period", "This field may not be null.");
        }
        let start = match values.get("start_date") {
            Some(Bind::DateTime(t)) => Some(*t),
            _ => current.as_ref().map(|c| c.2),
        };
        let end = match values.get("end_date") {
            Some(Bind::DateTime(t)) => Some(*t),
            Some(_) => None,
            None => current.as_ref().and_then(|c| c.3),
        };
        if let (Some(s), Some(e)) = (start, end) {
            if e < s {
                errors.add("end_date", "The end must not be before the start.");
            }
        }
        errors.into_result()?;
        let period = match values.get("renewal_period") {
            Some(Bind::Text(p)) => p.clone(),
            _ => current
                .as_ref()
                .map_or_else(|| "monthly".to_owned(), |c| c.1.clone()),
        };
        if period == "lifetime" {
            values.insert("next_billing_date".into(), Bind::Null);
        } else if id.is_none() && !values.contains_key("next_billing_date") {
            if let Some(next) = start.and_then(|s| next_billing(s, &period)) {
                values.insert("next_billing_date".into(), Bind::DateTime(next));
            }
        }
        Ok(())
    }
}

fn show(raw: &Value) -> Value {
    USER_SUBSCRIPTION.shape(raw, "en", true)
}

async fn lock(
    tx: &mut PgConnection,
    scope: &ProjectScope,
    id: i64,
) -> Result<(String, Value), ApiError> {
    let found: Option<(String, Value)> = sqlx::query_as(
        "SELECT subscription_status, to_jsonb(t) FROM user_subscriptions t \
         WHERE id = $1 AND project_id = $2 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .bind(scope.project_id())
    .fetch_optional(&mut *tx)
    .await?;
    let found = found.ok_or_else(ApiError::not_found)?;
    scope.require("billing.change_usersubscription", &GRANTS)?;
    Ok(found)
}

async fn reread(tx: &mut PgConnection, id: i64) -> Result<Value, ApiError> {
    let raw: Value = sqlx::query_scalar(
        "SELECT to_jsonb(t) || jsonb_build_object('price', round(t.price, 2)::text, \
           'plan', jsonb_build_object('id', t.catalog_item_id, 'name', t.catalog_item_name, \
           'price', round(t.price, 2)::text, 'billing_cycle', t.renewal_period)) \
         FROM user_subscriptions t WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    Ok(show(&raw))
}

/// `POST m/subscriptions/{id}/cancel/` `{reason, cancel_immediately}` → `{id, status,
/// cancelled_at, cancel_at_period_end, message}`.
pub async fn cancel(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    body: &Value,
) -> Result<Value, ApiError> {
    let reason: String = body
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .chars()
        .take(1000)
        .collect();
    let immediately = match body.get("cancel_immediately").filter(|v| !v.is_null()) {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::field(
                "cancel_immediately",
                "Must be a valid boolean.",
            ))
        }
    };
    let mut tx = ctx.pool.begin().await?;
    let (status, _) = lock(&mut tx, scope, id).await?;
    if status != "cancelled" {
        if !may_become(&status, "cancelled") {
            return Err(ApiError::rule(
                "invalid_transition",
                format!("A {status} subscription cannot be cancelled."),
            ));
        }
        let sql = if immediately {
            "UPDATE user_subscriptions SET subscription_status = 'cancelled', cancelled_at = now(), \
               end_date = GREATEST(now(), start_date), auto_renew = false, cancel_reason = $2, \
               updated_at = now(), updated_by = $3 WHERE id = $1"
        } else {
            "UPDATE user_subscriptions SET cancel_at_period_end = true, auto_renew = false, \
               cancel_reason = $2, updated_at = now(), updated_by = $3 WHERE id = $1"
        };
        sqlx::query(sql)
            .bind(id)
            .bind(&reason)
            .bind(scope.user_id())
            .execute(&mut *tx)
            .await?;
    }
    let row = reread(&mut tx, id).await?;
    tx.commit().await?;
    let message = if row["subscription_status"] == "cancelled" {
        "The subscription is cancelled."
    } else {
        "The subscription ends at the close of its current period."
    };
    Ok(json!({
        "id": id,
        "status": row["subscription_status"],
        "cancelled_at": row["cancelled_at"],
        "cancel_at_period_end": row["cancel_at_period_end"],
        "end_date": row["end_date"],
        "message": message,
    }))
}

/// `pause/` (active → paused) and `resume/` (paused → active) → the subscription.
pub async fn pause_or_resume(
    ctx: &ServiceContext,
    scope: &ProjectScope,
    id: i64,
    pause: bool,
) -> Result<Value, ApiError> {
    let (from, to) = if pause {
        ("active", "paused")
    } else {
        ("paused", "active")
    };
    let mut tx = ctx.pool.begin().await?;
    let (status, _) = lock(&mut tx, scope, id).await?;
    if status != to {
        if status != from {
            return Err(ApiError::rule(
                "invalid_transition",
                format!("A {status} subscription cannot become {to}."),
            ));
        }
        sqlx::query(
            "UPDATE user_subscriptions SET subscription_status = $2, updated_at = now(), \
               updated_by = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(to)
        .bind(scope.user_id())
        .execute(&mut *tx)
        .await?;
    }
    let row = reread(&mut tx, id).await?;
    tx.commit().await?;
    Ok(row)
}

/// `GET m/subscriptions/mine/`: the caller's own subscriptions in the project named by the
/// token or `X-Project-ID` (a customer needs no project role to read them).
pub async fn mine(ctx: &ServiceContext, user_id: i64, project_id: i64) -> Result<Value, ApiError> {
    let rows: Vec<Value> = sqlx::query_scalar(
        "SELECT to_jsonb(t) || jsonb_build_object('price', round(t.price, 2)::text, \
           'plan', jsonb_build_object('id', t.catalog_item_id, 'name', t.catalog_item_name, \
           'price', round(t.price, 2)::text, 'billing_cycle', t.renewal_period)) \
         FROM user_subscriptions t WHERE project_id = $1 AND user_id = $2 AND deleted_at IS NULL \
         ORDER BY created_at DESC, id DESC LIMIT 100",
    )
    .bind(project_id)
    .bind(user_id)
    .fetch_all(&ctx.pool)
    .await?;
    let results: Vec<Value> = rows.iter().map(show).collect();
    Ok(json!({"count": results.len(), "next": null, "previous": null, "results": results}))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    #[test]
    fn periods_clamp_to_the_month_end() {
        let jan31 = DateTime::parse_from_rfc3339("2025-01-31T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        let next = next_billing(jan31, "monthly").expect("next");
        assert_eq!((next.month(), next.day()), (2, 28));
        let leap = DateTime::parse_from_rfc3339("2024-01-31T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc);
        assert_eq!(next_billing(leap, "monthly").expect("next").day(), 29);
        assert_eq!(next_billing(jan31, "quarterly").expect("next").month(), 4);
        assert_eq!(next_billing(jan31, "yearly").expect("next").year(), 2026);
        assert!(next_billing(jan31, "lifetime").is_none());
        assert!(may_become("active", "paused") && !may_become("cancelled", "active"));
    }
}
