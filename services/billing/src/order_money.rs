//! Money the order service reports (contract billing.md §10): `order.payment_recorded` books a
//! completed manual payment on the order's invoice, `order.refund_requested` a refund, each
//! under the order's transaction id and once (the inbox, and the transaction id's uniqueness).
//! While the order's invoice does not exist yet the handler fails, so the event comes again.

use async_trait::async_trait;
use integration::order::{OrderPaymentRecorded, OrderRefundRequested};
use kernel::events::{begin_once, Envelope, EventHandler};
use kernel::service::ServiceContext;
use rust_decimal::Decimal;

use crate::ledger::{self, Kind, NewTransaction};

pub struct OrderMoneyFollower {
    pub ctx: ServiceContext,
}

#[async_trait]
impl EventHandler for OrderMoneyFollower {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let Some(project_id) = envelope.project_id else {
            return Ok(());
        };
        let (order_id, new) = match (
            envelope.decode::<OrderPaymentRecorded>(),
            envelope.decode::<OrderRefundRequested>(),
        ) {
            (Some(paid), _) => {
                let paid = paid?;
                let method = paid.method.trim().to_ascii_lowercase();
                let new = NewTransaction {
                    transaction_id: Some(paid.transaction_id),
                    kind: Some(Kind::Payment),
                    amount: ledger::parse_amount(&serde_json::json!(paid.amount), false).ok(),
                    currency: Some(paid.currency),
                    method: Some(if ledger::METHODS.contains(&method.as_str()) {
                        method
                    } else {
                        "other".into()
                    }),
                    description: format!("Order {} payment", paid.order.order_number),
                    ..NewTransaction::default()
                };
                (paid.order.order_id, new)
            }
            (_, Some(back)) => {
                let back = back?;
                let new = NewTransaction {
                    transaction_id: Some(back.transaction_id),
                    kind: Some(Kind::Refund),
                    amount: ledger::parse_amount(&serde_json::json!(back.amount), false).ok(),
                    currency: Some(back.currency),
                    description: back.reason.chars().take(1000).collect(),
                    ..NewTransaction::default()
                };
                (back.order.order_id, new)
            }
            _ => return Ok(()),
        };
        let Some(mut tx) = begin_once(&self.ctx.pool, "billing", envelope).await? else {
            return Ok(());
        };
        let Some(invoice) =
            ledger::lock_invoice_of_source(&mut tx, project_id, "order", order_id).await?
        else {
            anyhow::bail!("order {order_id} has no invoice yet");
        };
        let Some(amount) = new.amount else {
            tracing::warn!(event = %envelope.id, "order money event without a valid amount");
            tx.commit().await?;
            return Ok(());
        };
        let mut new = NewTransaction {
            invoice_id: Some(invoice.id),
            ..new
        };
        if new.kind == Some(Kind::Refund) {
            // What was paid net is the most that goes back.
            let capped = amount.min(invoice.net());
            if capped <= Decimal::ZERO {
                tracing::warn!(event = %envelope.id, "order refund with nothing left to refund");
                tx.commit().await?;
                return Ok(());
            }
            new.amount = Some(capped);
            new.refund_of_id =
                ledger::default_refund_of(&mut tx, project_id, invoice.id, capped).await?;
        }
        let actor = envelope.actor_id;
        match ledger::record(&self.ctx, &mut tx, project_id, actor, new.clone()).await {
            Ok(_) => {}
            // Refused by the invoice (over what is due, another currency, cancelled): kept
            // as a failed payment, and `payment.failed` tells the order.
            Err(e) if e.status() == axum::http::StatusCode::UNPROCESSABLE_ENTITY => {
                let failed = NewTransaction {
                    failure: Some((e.code().to_owned(), e.detail().to_owned())),
                    currency: None,
                    refund_of_id: None,
                    ..new
                };
                ledger::record(&self.ctx, &mut tx, project_id, actor, failed).await?;
            }
            Err(e) if e.status().is_client_error() => {
                tracing::warn!(event = %envelope.id, error = %e, "order money event refused");
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        // Not `flush`: this runs inside another outbox's delivery.
        self.ctx.outbox.nudge();
        Ok(())
    }
}
