//! The project settings the order flow reads (order.md §15), kept from
//! `project.settings_changed` so that no call to the project service sits on the placement path:
//! `tax_rate` (percent, default 0), `payment_window_minutes` (25), `reservation_ttl_hours` (24),
//! `auto_confirm_paid_orders` (true).

use integration::project::SettingsChanged;
use kernel::events::{begin_once, Envelope, EventHandler};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;

const KEYS: &[&str] = &[
    "tax_rate",
    "payment_window_minutes",
    "reservation_ttl_hours",
    "auto_confirm_paid_orders",
];

/// A project's order settings, read once per operation.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Percent of (subtotal − discount); shipping is not taxed.
    pub tax_rate: Decimal,
    pub payment_window: chrono::Duration,
    pub reservation_ttl: chrono::Duration,
    pub auto_confirm_paid: bool,
}

fn number(v: Option<&Value>) -> Option<Decimal> {
    match v? {
        Value::Number(n) => n.to_string().parse().ok(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub async fn load(db: impl sqlx::PgExecutor<'_>, project_id: i64) -> sqlx::Result<Settings> {
    let stored: Value = sqlx::query_scalar(
        "SELECT COALESCE(jsonb_object_agg(key, value), '{}') FROM order_settings \
         WHERE project_id = $1",
    )
    .bind(project_id)
    .fetch_one(db)
    .await?;
    Ok(Settings::of(&stored))
}

impl Settings {
    /// From the stored settings as one object (`{key: value}`); a missing or invalid value is
    /// its default.
    pub fn of(stored: &Value) -> Self {
        let get = |k: &str| stored.get(k);
        let minutes = |k: &str, default: i64, max: i64| {
            number(get(k))
                .and_then(|d| i64::try_from(d.trunc()).ok())
                .filter(|m| (1..=max).contains(m))
                .unwrap_or(default)
        };
        Self {
            tax_rate: number(get("tax_rate"))
                .filter(|r| (Decimal::ZERO..=Decimal::ONE_HUNDRED).contains(r))
                .unwrap_or(Decimal::ZERO),
            payment_window: chrono::Duration::minutes(minutes(
                "payment_window_minutes",
                25,
                7 * 24 * 60,
            )),
            reservation_ttl: chrono::Duration::hours(minutes("reservation_ttl_hours", 24, 24 * 30)),
            auto_confirm_paid: get("auto_confirm_paid_orders")
                .and_then(Value::as_bool)
                .unwrap_or(true),
        }
    }
}

/// Applies `project.settings_changed` for the keys above, once per event; an older event than
/// the one applied last changes nothing. A deleted setting (null) returns to its default.
pub struct SettingsFollower {
    pub pool: PgPool,
}

#[async_trait::async_trait]
impl EventHandler for SettingsFollower {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(event) = envelope.decode::<SettingsChanged>() else {
            return Ok(());
        };
        let event = event?;
        if !KEYS.contains(&event.key.as_str()) {
            return Ok(());
        }
        let Some(mut tx) = begin_once(&self.pool, "order", envelope).await? else {
            return Ok(());
        };
        if event.value.is_null() {
            sqlx::query(
                "DELETE FROM order_settings WHERE project_id = $1 AND key = $2 AND changed_at <= $3",
            )
            .bind(event.project_id)
            .bind(&event.key)
            .bind(envelope.occurred_at)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO order_settings (project_id, key, value, changed_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (project_id, key) DO UPDATE SET value = EXCLUDED.value, \
                   changed_at = EXCLUDED.changed_at \
                 WHERE order_settings.changed_at <= EXCLUDED.changed_at",
            )
            .bind(event.project_id)
            .bind(&event.key)
            .bind(&event.value)
            .bind(envelope.occurred_at)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Splits `amount` over lines in proportion to `weights`, in cents, by largest remainder, so the
/// parts always add up to the amount (order.md §2.1).
pub fn allocate(amount: Decimal, weights: &[Decimal]) -> Vec<Decimal> {
    let total: Decimal = weights.iter().sum();
    if weights.is_empty() || total <= Decimal::ZERO || amount <= Decimal::ZERO {
        return vec![Decimal::ZERO; weights.len()];
    }
    let cents = (amount * Decimal::ONE_HUNDRED).round();
    let exact: Vec<Decimal> = weights.iter().map(|w| cents * w / total).collect();
    let mut parts: Vec<Decimal> = exact.iter().map(|e| e.floor()).collect();
    let mut left = cents - parts.iter().sum::<Decimal>();
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|a, b| {
        (exact[*b] - parts[*b])
            .cmp(&(exact[*a] - parts[*a]))
            .then(a.cmp(b))
    });
    for i in order {
        if left <= Decimal::ZERO {
            break;
        }
        parts[i] += Decimal::ONE;
        left -= Decimal::ONE;
    }
    parts
        .into_iter()
        .map(|p| p / Decimal::ONE_HUNDRED)
        .collect()
}

/// Tax on (subtotal − discount) at the project's rate, rounded half away from zero to cents.
pub fn tax(subtotal: Decimal, discount: Decimal, rate: Decimal) -> Decimal {
    ((subtotal - discount).max(Decimal::ZERO) * rate / Decimal::ONE_HUNDRED)
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn allocation_adds_up_and_follows_the_weights() {
        let parts = allocate(d("10.00"), &[d("1"), d("1"), d("1")]);
        assert_eq!(parts, vec![d("3.34"), d("3.33"), d("3.33")]);
        let parts = allocate(d("7.77"), &[d("100"), d("0"), d("33.50")]);
        assert_eq!(parts.iter().sum::<Decimal>(), d("7.77"));
        assert_eq!(parts[1], Decimal::ZERO);
        assert_eq!(allocate(d("5"), &[]), Vec::<Decimal>::new());
    }

    #[test]
    fn tax_is_on_the_discounted_subtotal() {
        assert_eq!(tax(d("100"), d("10"), d("8")), d("7.20"));
        assert_eq!(tax(d("0.125"), d("0"), d("100")), d("0.13"));
        assert_eq!(tax(d("5"), d("5"), d("8")), Decimal::ZERO);
    }
}
