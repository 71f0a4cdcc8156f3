//! Payment gateways (contract billing.md §4.3): the provider interface, `manual` (cash, bank,
//! check: completes synchronously) and the `test` sandbox (`tok_ok` completes, `tok_fail`
//! fails, `tok_3ds` or no token at all waits for the customer — a redirect to the sandbox's
//! page — and completes through its signed webhook), and the
//! public `webhooks/{gateway}/` endpoint, deduplicated by the provider's event id.

use std::path::Path;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json as JsonOut;
use hmac::{Hmac, Mac};
use kernel::service::ServiceContext;
use kernel::ApiError;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::ledger::{self, Finish};

/// Gateway names a transaction may carry (`stripe`, `paypal`: not configured yet).
pub const NAMES: &[&str] = &["manual", "test", "stripe", "paypal"];

/// The header carrying the test gateway's webhook signature: `sha256=<hex HMAC of the body>`.
pub const SIGNATURE_HEADER: &str = "x-zv-test-signature";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Processing,
    Completed,
    Failed,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Processing => "processing",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "pending" => Status::Pending,
            "processing" => Status::Processing,
            "completed" => Status::Completed,
            "failed" => Status::Failed,
            "cancelled" | "canceled" => Status::Cancelled,
            _ => return None,
        })
    }

    /// The transaction state machine (§4.2): pending → processing → completed | failed;
    /// pending → completed | failed; pending | processing → cancelled.
    pub fn may_become(self, to: Status) -> bool {
        matches!(
            (self, to),
            (Status::Pending, Status::Processing)
                | (Status::Pending | Status::Processing, Status::Completed)
                | (Status::Pending | Status::Processing, Status::Failed)
                | (Status::Pending | Status::Processing, Status::Cancelled)
        )
    }
}

/// What a provider answered.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub status: Status,
    pub gateway_transaction_id: Option<String>,
    /// `{type: "redirect", url}` or `{type: "client_secret", secret}` while the customer acts.
    pub next_action: Option<Value>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Stored as `gateway_response` (never card data).
    pub response: Value,
}

impl Outcome {
    fn with(status: Status, reference: Option<String>) -> Self {
        Self {
            status,
            gateway_transaction_id: reference,
            next_action: None,
            error_code: None,
            error_message: None,
            response: json!({}),
        }
    }

    pub fn completed(reference: Option<String>) -> Self {
        Self::with(Status::Completed, reference)
    }

    pub fn pending(reference: Option<String>) -> Self {
        Self::with(Status::Pending, reference)
    }

    pub fn status(status: Status) -> Self {
        Self::with(status, None)
    }

    pub fn failed(code: &str, message: &str) -> Self {
        Self {
            error_code: Some(code.to_owned()),
            error_message: Some(message.to_owned()),
            ..Self::with(Status::Failed, None)
        }
    }
}

pub struct PaymentRequest<'a> {
    pub amount: Decimal,
    pub currency: &'a str,
    /// The tokenised instrument (never raw card data).
    pub token: Option<&'a str>,
    pub idempotency_key: &'a str,
    pub return_url: Option<&'a str>,
}

/// A provider notification, verified.
pub struct WebhookEvent {
    pub event_id: String,
    pub gateway_transaction_id: String,
    pub outcome: Outcome,
}

/// A payment provider (§4.3).
#[async_trait]
pub trait Provider: Send + Sync {
    async fn create_payment(&self, request: &PaymentRequest<'_>) -> Result<Outcome, ApiError>;
    async fn refund(&self, charge: &str, amount: Decimal, key: &str) -> Result<Outcome, ApiError>;
    /// The provider's current view of a payment (the reconciler's question).
    async fn fetch_status(&self, charge: &str) -> Result<Outcome, ApiError>;
    /// Checks a notification's signature and reads it.
    fn verify_webhook(
        &self,
        secret: &[u8],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, ApiError>;
}

/// Cash, bank transfers, checks: recorded by a person, complete when recorded.
pub struct Manual;

#[async_trait]
impl Provider for Manual {
    async fn create_payment(&self, _request: &PaymentRequest<'_>) -> Result<Outcome, ApiError> {
        Ok(Outcome::completed(None))
    }

    async fn refund(
        &self,
        _charge: &str,
        _amount: Decimal,
        _key: &str,
    ) -> Result<Outcome, ApiError> {
        Ok(Outcome::completed(None))
    }

    async fn fetch_status(&self, _charge: &str) -> Result<Outcome, ApiError> {
        Ok(Outcome::status(Status::Completed))
    }

    fn verify_webhook(&self, _: &[u8], _: &HeaderMap, _: &[u8]) -> Result<WebhookEvent, ApiError> {
        Err(ApiError::not_found())
    }
}

/// The sandbox: the token decides the outcome.
pub struct TestGateway;

#[async_trait]
impl Provider for TestGateway {
    async fn create_payment(&self, request: &PaymentRequest<'_>) -> Result<Outcome, ApiError> {
        let charge = format!("test_ch_{}", ledger::ulid().to_ascii_lowercase());
        let response = json!({"id": charge, "amount": ledger::money(request.amount),
            "currency": request.currency, "idempotency_key": request.idempotency_key});
        // No instrument yet (a checkout): the customer pays on the sandbox's hosted page, and
        // the outcome arrives through the webhook like a 3-D Secure one.
        match request.token.unwrap_or("hosted") {
            "hosted" => Ok(Outcome {
                next_action: Some(json!({"type": "redirect",
                    "url": format!("https://sandbox.zonevast.test/pay/{charge}")})),
                response,
                ..Outcome::with(Status::Processing, Some(charge.clone()))
            }),
            "tok_ok" => Ok(Outcome {
                response,
                ..Outcome::completed(Some(charge))
            }),
            "tok_fail" => Ok(Outcome {
                gateway_transaction_id: Some(charge),
                response,
                ..Outcome::failed("card_declined", "The card was declined.")
            }),
            "tok_3ds" => {
                let mut url = format!("https://sandbox.zonevast.test/3ds/{charge}");
                if let Some(back) = request.return_url {
                    url.push_str("?return_url=");
                    url.push_str(&urlencode(back));
                }
                Ok(Outcome {
                    next_action: Some(json!({"type": "redirect", "url": url})),
                    response,
                    ..Outcome::with(Status::Processing, Some(charge))
                })
            }
            _ => Err(ApiError::field(
                "token",
                "The test gateway takes the tokens tok_ok, tok_fail and tok_3ds (or none: its hosted page).",
            )),
        }
    }

    async fn refund(&self, charge: &str, amount: Decimal, _key: &str) -> Result<Outcome, ApiError> {
        let refund = format!("test_re_{}", ledger::ulid().to_ascii_lowercase());
        Ok(Outcome {
            response: json!({"id": refund, "charge": charge, "amount": ledger::money(amount)}),
            ..Outcome::completed(Some(refund))
        })
    }

    async fn fetch_status(&self, _charge: &str) -> Result<Outcome, ApiError> {
        Ok(Outcome::status(Status::Processing))
    }

    /// `{id, type: "payment.succeeded" | "payment.failed", data: {gateway_transaction_id,
    /// error_code?, error_message?}}`, signed in [`SIGNATURE_HEADER`].
    fn verify_webhook(
        &self,
        secret: &[u8],
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<WebhookEvent, ApiError> {
        let unsigned =
            || ApiError::unauthorized("invalid_signature", "The webhook signature does not match.");
        let given = headers
            .get(SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().strip_prefix("sha256="))
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(unsigned)?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| unsigned())?;
        mac.update(body);
        mac.verify_slice(&given).map_err(|_| unsigned())?;
        let event: Value = kernel::extract::parse_json(body)?;
        let text = |v: &Value| v.as_str().map(str::to_owned).filter(|s| !s.is_empty());
        let event_id =
            text(&event["id"]).ok_or_else(|| ApiError::field("id", "This field is required."))?;
        let charge = text(&event["data"]["gateway_transaction_id"])
            .ok_or_else(|| ApiError::field("gateway_transaction_id", "This field is required."))?;
        let outcome = match event["type"].as_str() {
            Some("payment.succeeded") => Outcome::completed(Some(charge.clone())),
            Some("payment.failed") => Outcome::failed(
                &text(&event["data"]["error_code"]).unwrap_or_else(|| "card_declined".into()),
                &text(&event["data"]["error_message"])
                    .unwrap_or_else(|| "The payment failed.".into()),
            ),
            _ => {
                return Err(ApiError::field(
                    "type",
                    "Use payment.succeeded or payment.failed.",
                ))
            }
        };
        Ok(WebhookEvent {
            event_id,
            gateway_transaction_id: charge,
            outcome: Outcome {
                response: json!({"webhook_event": event["id"], "type": event["type"]}),
                ..outcome
            },
        })
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The provider behind a gateway name.
pub fn provider(name: &str) -> Result<&'static dyn Provider, ApiError> {
    match name {
        "manual" => Ok(&Manual),
        "test" => Ok(&TestGateway),
        _ => Err(ApiError::rule(
            "gateway_unavailable",
            format!("The {name} gateway is not configured for this project."),
        )),
    }
}

/// The platform's webhook secret (`{data_dir}/keys/billing-webhook-secret`, made on first use,
/// like the other keys there), from which each gateway's signing secret is derived.
fn platform_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    let dir = data_dir.join("keys");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("billing-webhook-secret");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(&file) {
        Ok(mut f) => {
            let secret = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            f.write_all(secret.as_bytes())?;
            f.sync_all()?;
            Ok(secret.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // A concurrent first start may still be writing it.
            for _ in 0..50 {
                let content = std::fs::read(&file)?;
                if content.len() == 64 {
                    return Ok(content);
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            anyhow::bail!("{} is not a webhook secret", file.display())
        }
        Err(e) => Err(e.into()),
    }
}

/// The signing secret of `gateway`'s webhooks on this platform.
pub fn webhook_secret(config: &kernel::config::Config, gateway: &str) -> anyhow::Result<Vec<u8>> {
    let root = platform_secret(&config.data_dir)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&root)?;
    mac.update(format!("webhook:{gateway}").as_bytes());
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The [`SIGNATURE_HEADER`] value the test gateway sends with `body` (sandbox tooling, tests).
pub fn sign_test_webhook(config: &kernel::config::Config, body: &[u8]) -> anyhow::Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&webhook_secret(config, "test")?)?;
    mac.update(body);
    Ok(format!(
        "sha256={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// `POST webhooks/{gateway}/` (public): a verified notification completes or fails its
/// transaction once; a repeated event id answers 200 without effect. A completed payment whose
/// source has no invoice yet answers 409 with `Retry-After` (nothing recorded: the provider
/// retries).
#[utoipa::path(post, path = "/api/v1/billing/webhooks/{gateway}/", tag = "Webhook",
    params(("gateway" = String, Path, description = "stripe, paypal…")),
    request_body(content = String, description = "The provider's signed event, as sent"),
    responses((status = 200, description = "Recorded, or a repeated event"), (status = 400, description = "Bad signature or payload"),
              (status = 404, description = "No such gateway"), (status = 409, description = "No invoice yet: retry later")))]
pub async fn webhook(
    State(ctx): State<ServiceContext>,
    UrlPath(gateway): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, JsonOut<Value>), ApiError> {
    let gateway = gateway.to_ascii_lowercase();
    let provider = match gateway.as_str() {
        "manual" => return Err(ApiError::not_found()),
        name => provider(name).map_err(|_| ApiError::not_found())?,
    };
    let secret = webhook_secret(ctx.platform.config(), &gateway).map_err(ApiError::internal)?;
    let event = provider.verify_webhook(&secret, &headers, &body)?;
    let mut tx = ctx.pool.begin().await?;
    let fresh = sqlx::query(
        "INSERT INTO gateway_events (gateway, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(&gateway)
    .bind(&event.event_id)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if !fresh {
        return Ok((
            StatusCode::OK,
            JsonOut(json!({"received": true, "duplicate": true})),
        ));
    }
    let id: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM transactions WHERE gateway_name = $1 AND gateway_transaction_id = $2",
    )
    .bind(&gateway)
    .bind(&event.gateway_transaction_id)
    .fetch_optional(&mut *tx)
    .await?;
    let id = id.ok_or_else(ApiError::not_found)?;
    let Some(row) = ledger::lock_open(&mut tx, id).await? else {
        tx.commit().await?;
        return Ok((StatusCode::OK, JsonOut(json!({"received": true}))));
    };
    match ledger::finish(&ctx, &mut tx, None, &row, &event.outcome).await? {
        Finish::Done => {}
        Finish::InvoiceNotReady => {
            return Err(ApiError::conflict(
                "invoice_not_ready",
                "The invoice of this payment does not exist yet; retry shortly.",
            )
            .with_header(axum::http::header::RETRY_AFTER, "5"));
        }
    }
    let shown = ledger::show(&mut tx, id).await?;
    tx.commit().await?;
    ctx.outbox.flush().await;
    Ok((
        StatusCode::OK,
        JsonOut(json!({"received": true, "status": shown["status"]})),
    ))
}

/// Asks the providers about online payments still open after 15 minutes (a lost webhook), every
/// `every`, and applies the terminal answers like a webhook would.
pub fn spawn_reconciler(
    ctx: ServiceContext,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = reconcile(&ctx).await {
                tracing::warn!(error = %e, "payment reconciliation deferred");
            }
        }
    })
}

/// One pass of [`spawn_reconciler`] → how many rows moved.
pub async fn reconcile(ctx: &ServiceContext) -> Result<usize, ApiError> {
    let open: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, gateway_name, gateway_transaction_id FROM transactions \
         WHERE status IN ('pending', 'processing') AND gateway_name <> 'manual' \
         AND gateway_transaction_id IS NOT NULL AND deleted_at IS NULL \
         AND transaction_date < now() - interval '15 minutes' ORDER BY id LIMIT 100",
    )
    .fetch_all(&ctx.pool)
    .await?;
    let mut moved = 0;
    for (id, gateway, charge) in open {
        let Ok(provider) = provider(&gateway) else {
            continue;
        };
        let outcome = provider.fetch_status(&charge).await?;
        if !matches!(
            outcome.status,
            Status::Completed | Status::Failed | Status::Cancelled
        ) {
            continue;
        }
        let mut tx = ctx.pool.begin().await?;
        let Some(row) = ledger::lock_open(&mut tx, id).await? else {
            continue;
        };
        if let Finish::Done = ledger::finish(ctx, &mut tx, None, &row, &outcome).await? {
            tx.commit().await?;
            moved += 1;
        }
    }
    if moved > 0 {
        ctx.outbox.nudge();
    }
    Ok(moved)
}
