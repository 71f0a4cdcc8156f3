//! The project settings the catalogue needs, kept from `project.settings_changed` (no call to
//! the project service on the read path): today the currency of prices.

use integration::project::SettingsChanged;
use kernel::events::{begin_once, Envelope, EventHandler};
use serde_json::Value;
use sqlx::PgPool;

/// The currency of a project's prices (`USD` until the project sets one).
pub async fn currency(db: impl sqlx::PgExecutor<'_>, project_id: i64) -> sqlx::Result<String> {
    let found: Option<String> =
        sqlx::query_scalar("SELECT currency FROM catalogue_settings WHERE project_id = $1")
            .bind(project_id)
            .fetch_optional(db)
            .await?;
    Ok(found.unwrap_or_else(|| DEFAULT_CURRENCY.into()))
}

/// A project's currency until its settings give one.
pub const DEFAULT_CURRENCY: &str = "USD";

/// Applies `project.settings_changed` for `currency` once per event; an event older than the
/// one applied last changes nothing.
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
        if event.key != "currency" {
            return Ok(());
        }
        let Some(mut tx) = begin_once(&self.pool, "product", envelope).await? else {
            return Ok(());
        };
        let currency = match &event.value {
            Value::String(code) if code.len() == 3 => code.to_ascii_uppercase(),
            // Deleting the setting resets it.
            _ => DEFAULT_CURRENCY.to_owned(),
        };
        sqlx::query(
            "INSERT INTO catalogue_settings (project_id, currency, changed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (project_id) DO UPDATE SET currency = EXCLUDED.currency, \
               changed_at = EXCLUDED.changed_at \
             WHERE catalogue_settings.changed_at <= EXCLUDED.changed_at",
        )
        .bind(event.project_id)
        .bind(currency)
        .bind(envelope.occurred_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
