//! The billing ledger (billing.md §3–§4, §10): transactions and their state machine, the test
//! gateway and its signed webhooks, invoice actions and editing rules, online payments started
//! before their invoice, and the order service's money events booked once.

use integration::order::{OrderPaymentRecorded, OrderRef, OrderRefundRequested};
use kernel::events::Envelope;
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{service_pool, CrossTenant, TenantResource, TestApp};
use crate::projects::{member, owner_with_project, Owner};

const API: &str = "/api/v1/billing/m/";

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.call(method, &format!("{API}{path}"), body, token).await
}

async fn post(app: &TestApp, owner: &Owner, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, &owner.access, Method::POST, path, body).await
}

async fn get(app: &TestApp, owner: &Owner, path: &str) -> Value {
    let (status, body) = call(app, &owner.access, Method::GET, path, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

/// An issued invoice of one line (`total` with no tax).
async fn invoice(app: &TestApp, owner: &Owner, total: &str, extra: Value) -> Value {
    let mut body = json!({"items": [{"description": "Service", "quantity": 1, "unit_price": total}], "issue": true});
    if let (Some(map), Some(more)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in more {
            map.insert(k.clone(), v.clone());
        }
    }
    let (status, created) = post(app, owner, "invoices/", body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

/// The billing events of one type in the outbox, oldest first.
async fn events(app: &TestApp, event_type: &str) -> Vec<Value> {
    let pool = service_pool(app.platform.config(), "billing").await;
    sqlx::query_scalar("SELECT envelope->'data' FROM zv_outbox WHERE event_type = $1 ORDER BY id")
        .bind(event_type)
        .fetch_all(&pool)
        .await
        .expect("outbox")
}

#[tokio::test]
async fn transactions_follow_the_ledger_rules() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "layla", "Layla Labs").await;
    let inv = invoice(&app, &owner, "100.00", json!({})).await;
    let id = inv["id"].clone();

    // A manual payment completes at once and moves the invoice.
    let (status, paid) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "amount": "30", "method": "cash", "transaction_id": "POS-9-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert_eq!(
        (
            paid["status"].clone(),
            paid["amount"].clone(),
            paid["gateway_name"].clone(),
            paid["currency"].clone()
        ),
        (
            json!("completed"),
            json!("30.00"),
            json!("manual"),
            json!("USD")
        )
    );
    assert!(paid["processed_date"].is_string());
    let (status, again) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "amount": 30, "transaction_id": "POS-9-1"}),
    )
    .await;
    assert_eq!(
        (status, again["id"].clone()),
        (StatusCode::OK, paid["id"].clone()),
        "same id, same transaction"
    );
    let (status, clash) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "amount": "31", "transaction_id": "POS-9-1"}),
    )
    .await;
    assert_eq!(
        (status, clash["code"].clone()),
        (StatusCode::CONFLICT, json!("duplicate_transaction_id"))
    );
    let (status, other) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "amount": "5", "currency": "EUR"}),
    )
    .await;
    assert_eq!(
        (status, other["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("currency_mismatch"))
    );
    let (status, over) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "amount": "70.01"}),
    )
    .await;
    assert_eq!(
        (status, over["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("amount_exceeds_due")
        )
    );

    // Hostile amounts change nothing.
    for amount in [
        json!("-5"),
        json!("abc"),
        json!(0),
        json!("1e30"),
        json!("99999999999999"),
        json!("1.234"),
        json!(true),
        json!([1]),
    ] {
        let (status, body) = post(
            &app,
            &owner,
            "transactions/",
            json!({"invoice_id": id, "amount": amount}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}: {body}");
        assert!(body["amount"].is_array(), "{body}");
    }
    for body in [
        json!({"invoice_id": id, "amount": "5", "transaction_type": "gift"}),
        json!({"invoice_id": "x", "amount": "5"}),
        json!({"invoice_id": id, "amount": "5", "transaction_date": "yesterday"}),
        json!({"invoice_id": id, "amount": "5", "gateway_name": "bitcoin"}),
        json!({"invoice_id": id, "amount": "5", "status": "failed"}),
        json!([1, 2]),
    ] {
        let (status, answer) = post(&app, &owner, "transactions/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let (status, missing) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": 999999, "amount": "5"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
    assert_eq!(
        get(&app, &owner, &format!("invoices/{id}/")).await["amount_paid"],
        "30.00"
    );

    // A pending manual row completes by PATCH, along the state machine only.
    let (status, pending) = post(&app, &owner, "transactions/", json!({"invoice_id": id, "amount": "20", "status": "pending", "method": "bank_transfer", "reference": "WIRE-7"})).await;
    assert_eq!(
        (
            status,
            pending["status"].clone(),
            pending["gateway_transaction_id"].clone()
        ),
        (StatusCode::CREATED, json!("pending"), json!("WIRE-7"))
    );
    assert_eq!(
        get(&app, &owner, &format!("invoices/{id}/")).await["amount_paid"],
        "30.00",
        "pending rows move nothing"
    );
    let tx = |t: &Value| format!("transactions/{}/", t["id"]);
    let (status, done) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &tx(&pending),
        json!({"status": "completed", "description": "wire arrived"}),
    )
    .await;
    assert_eq!(
        (status, done["status"].clone(), done["description"].clone()),
        (StatusCode::OK, json!("completed"), json!("wire arrived")),
        "{done}"
    );
    let after = get(&app, &owner, &format!("invoices/{id}/")).await;
    assert_eq!(
        (after["amount_paid"].clone(), after["status"].clone()),
        (json!("50.00"), json!("partially_paid"))
    );
    let (status, back) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &tx(&pending),
        json!({"status": "pending"}),
    )
    .await;
    assert_eq!(
        (status, back["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_transition")
        )
    );
    let (status, note) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &tx(&paid),
        json!({"metadata": {"till": 3}, "amount": "1"}),
    )
    .await;
    assert_eq!(
        (status, note["metadata"].clone(), note["amount"].clone()),
        (StatusCode::OK, json!({"till": 3}), json!("30.00")),
        "money fields are read-only"
    );
    let (status, gone) = call(&app, &owner.access, Method::DELETE, &tx(&paid), Value::Null).await;
    assert_eq!(
        (status, gone["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("transaction_immutable")
        )
    );
    let (_, open) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "amount": "1", "status": "pending"}),
    )
    .await;
    let (status, cancelled) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &tx(&open),
        json!({"status": "cancelled"}),
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].clone()),
        (StatusCode::OK, json!("cancelled"))
    );
    let (_, open) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "amount": "1", "status": "pending"}),
    )
    .await;
    let (status, _) = call(&app, &owner.access, Method::DELETE, &tx(&open), Value::Null).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Refunds of one payment: at most what is left of it.
    let (status, refund) = post(
        &app,
        &owner,
        &format!("transactions/{}/refund/", paid["id"]),
        json!({"amount": "10", "reason": "scratched"}),
    )
    .await;
    assert_eq!(
        (
            status,
            refund["transaction_type"].clone(),
            refund["refund_of_id"].clone(),
            refund["amount"].clone()
        ),
        (
            StatusCode::CREATED,
            json!("refund"),
            paid["id"].clone(),
            json!("10.00")
        ),
        "{refund}"
    );
    let (status, too_much) = post(
        &app,
        &owner,
        &format!("transactions/{}/refund/", paid["id"]),
        json!({"amount": "20.01"}),
    )
    .await;
    assert_eq!(
        (status, too_much["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("amount_exceeds_refundable")
        )
    );
    let (status, refund_of_refund) = post(
        &app,
        &owner,
        &format!("transactions/{}/refund/", refund["id"]),
        json!({"amount": "1"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{refund_of_refund}"
    );

    // Adjustments: signed, owner/admin, the net stays within 0..total.
    let (status, adj) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "transaction_type": "adjustment", "amount": "-5"}),
    )
    .await;
    assert_eq!(
        (status, adj["amount"].clone()),
        (StatusCode::CREATED, json!("-5.00")),
        "{adj}"
    );
    let (status, wild) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "transaction_type": "adjustment", "amount": "-100"}),
    )
    .await;
    assert_eq!(
        (status, wild["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_adjustment")
        )
    );
    let (_, editor) = member(&app, &owner, "eddie", "editor").await;
    let (status, _) = call(
        &app,
        &editor,
        Method::POST,
        "transactions/",
        json!({"invoice_id": id, "transaction_type": "adjustment", "amount": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        &editor,
        Method::POST,
        &format!("transactions/{}/refund/", paid["id"]),
        json!({"amount": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, by_editor) = call(
        &app,
        &editor,
        Method::POST,
        "transactions/",
        json!({"invoice_id": id, "amount": "1"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "editors record payments: {by_editor}"
    );
    let (_, viewer) = member(&app, &owner, "vera", "viewer").await;
    let (status, _) = call(
        &app,
        &viewer,
        Method::POST,
        "transactions/",
        json!({"invoice_id": id, "amount": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, &editor, Method::DELETE, &tx(&pending), Value::Null).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let now = get(&app, &owner, &format!("invoices/{id}/")).await;
    // 30 + 20 + 1 paid, 10 refunded, −5 adjusted.
    assert_eq!(
        (
            now["amount_paid"].clone(),
            now["amount_refunded"].clone(),
            now["amount_due"].clone(),
            now["payment_status"].clone()
        ),
        (
            json!("46.00"),
            json!("10.00"),
            json!("64.00"),
            json!("PARTIALLY_REFUNDED")
        )
    );

    // Lists: filters, default order newest first.
    let list = get(
        &app,
        &owner,
        &format!("transactions/?invoice={id}&transaction_type=payment&status=completed"),
    )
    .await;
    assert_eq!(list["count"], 3, "{list}");
    let all = get(&app, &owner, "transactions/").await;
    let dates: Vec<String> = all["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["transaction_date"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    assert_eq!(get(&app, &owner, "transactions/?gateway_name=manual&transaction_date__gte=2000-01-01&transaction_date__lte=2999-12-31").await["count"], all["count"]);
    assert_eq!(
        get(
            &app,
            &owner,
            "transactions/?transaction_date__lte=2000-01-01"
        )
        .await["count"],
        0
    );
    let (status, _) = call(
        &app,
        &owner.access,
        Method::GET,
        "transactions/?amount_ish=3",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&app, &owner, "transactions/?transaction_type=adjustment").await["count"],
        1
    );
    assert_eq!(
        get(&app, &owner, "transactions/?status=cancelled").await["count"],
        1
    );
    let events = events(&app, "payment.success").await;
    assert_eq!(events.len(), 3, "one per completed payment");
    // A chargeback gives money back like a refund, within the net paid.
    let (status, chargeback) = post(&app, &owner, "transactions/", json!({"invoice_id": id, "transaction_type": "chargeback", "amount": "2", "reason": "disputed"})).await;
    assert_eq!(
        (status, chargeback["transaction_type"].clone()),
        (StatusCode::CREATED, json!("chargeback")),
        "{chargeback}"
    );
    let (status, _) = post(
        &app,
        &owner,
        "transactions/",
        json!({"invoice_id": id, "transaction_type": "chargeback", "amount": "35"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        get(&app, &owner, &format!("invoices/{id}/")).await["amount_refunded"],
        "12.00"
    );
}

#[tokio::test]
async fn the_test_gateway_and_its_signed_webhooks() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "gamal", "Gamal Games").await;
    let inv = invoice(&app, &owner, "60.00", json!({})).await;
    let pay = format!("invoices/{}/payments/", inv["id"]);

    let (status, ok) = post(
        &app,
        &owner,
        &pay,
        json!({"amount": "10", "gateway": "test", "token": "tok_ok"}),
    )
    .await;
    assert_eq!(
        (
            status,
            ok["status"].clone(),
            ok["gateway_name"].clone(),
            ok["method"].clone()
        ),
        (
            StatusCode::CREATED,
            json!("completed"),
            json!("test"),
            json!("credit_card")
        ),
        "{ok}"
    );
    assert!(ok["gateway_transaction_id"]
        .as_str()
        .unwrap()
        .starts_with("test_ch_"));
    let (status, failed) = post(
        &app,
        &owner,
        &pay,
        json!({"amount": "10", "gateway": "test", "token": "tok_fail", "transaction_id": "CHK-1"}),
    )
    .await;
    assert_eq!(
        (
            status,
            failed["status"].clone(),
            failed["error_code"].clone()
        ),
        (StatusCode::CREATED, json!("failed"), json!("card_declined")),
        "{failed}"
    );
    assert!(failed["error_message"].is_string());
    let failures = events(&app, "payment.failed").await;
    assert_eq!(
        (failures.len(), failures[0]["transactionId"].clone()),
        (1, json!("CHK-1"))
    );
    let (status, bad) = post(
        &app,
        &owner,
        &pay,
        json!({"amount": "10", "gateway": "test", "token": "4111111111111111"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (status, stripe) = post(
        &app,
        &owner,
        &pay,
        json!({"amount": "10", "gateway": "Stripe", "token": "tok_ok"}),
    )
    .await;
    assert_eq!(
        (status, stripe["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("gateway_unavailable")
        )
    );

    let (status, three_ds) = post(&app, &owner, &pay, json!({"amount": "20", "gateway": "test", "token": "tok_3ds", "return_url": "https://shop.example.com/back"})).await;
    assert_eq!(
        (
            status,
            three_ds["status"].clone(),
            three_ds["next_action"]["type"].clone()
        ),
        (StatusCode::CREATED, json!("processing"), json!("redirect")),
        "{three_ds}"
    );
    assert!(three_ds["next_action"]["url"]
        .as_str()
        .unwrap()
        .starts_with("https://"));
    assert_eq!(
        get(&app, &owner, &format!("invoices/{}/", inv["id"])).await["amount_paid"],
        "10.00"
    );
    let charge = three_ds["gateway_transaction_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The webhook is public, but only a signed notification counts.
    let hook = |body: &Value, signature: Option<String>| {
        let mut req = app
            .client
            .post(app.url("/api/v1/billing/webhooks/test/"))
            .header("content-type", "application/json")
            .body(body.to_string());
        if let Some(s) = signature {
            req = req.header(zv_billing::gateways::SIGNATURE_HEADER, s);
        }
        app.send(req)
    };
    let sign = |body: &Value| {
        zv_billing::gateways::sign_test_webhook(app.platform.config(), body.to_string().as_bytes())
            .unwrap()
    };
    let event = json!({"id": "evt_1", "type": "payment.succeeded", "data": {"gateway_transaction_id": charge}});
    let (status, _, _) = hook(&event, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = hook(&event, Some("sha256=00ff".into())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let forged = json!({"id": "evt_1", "type": "payment.succeeded", "data": {"gateway_transaction_id": charge, "x": 1}});
    let (status, _, _) = hook(&forged, Some(sign(&event))).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the signature covers the body"
    );
    assert_eq!(
        get(&app, &owner, &format!("invoices/{}/", inv["id"])).await["amount_paid"],
        "10.00"
    );
    let (status, done, _) = hook(&event, Some(sign(&event))).await;
    assert_eq!(
        (status, done["status"].clone()),
        (StatusCode::OK, json!("completed")),
        "{done}"
    );
    let (status, replay, _) = hook(&event, Some(sign(&event))).await;
    assert_eq!(
        (status, replay["duplicate"].clone()),
        (StatusCode::OK, json!(true))
    );
    let paid = get(&app, &owner, &format!("invoices/{}/", inv["id"])).await;
    assert_eq!(
        (paid["amount_paid"].clone(), paid["status"].clone()),
        (json!("30.00"), json!("partially_paid")),
        "counted once"
    );
    let row = get(&app, &owner, &format!("transactions/{}/", three_ds["id"])).await;
    assert_eq!(
        (row["status"].clone(), row["next_action"].clone()),
        (json!("completed"), Value::Null)
    );

    // A refund of a gateway payment goes back through the gateway.
    let (status, back) = post(
        &app,
        &owner,
        &format!("invoices/{}/refund/", inv["id"]),
        json!({"amount": "5", "reason": "late"}),
    )
    .await;
    assert_eq!(
        (
            status,
            back["gateway_name"].clone(),
            back["refund_of_id"].clone()
        ),
        (StatusCode::CREATED, json!("test"), three_ds["id"].clone()),
        "{back}"
    );
    assert!(back["gateway_transaction_id"]
        .as_str()
        .unwrap()
        .starts_with("test_re_"));

    // An online payment started before its invoice exists (checkout) waits for it.
    let billing = app
        .platform
        .lookup::<integration::billing::SharedBilling>()
        .expect("billing is provided");
    let scope = scope_of(&owner);
    let started = billing.start_payment(&scope, &json!({"source_type": "order", "source_id": 4242, "amount": "15.00", "currency": "USD", "method": "credit_card", "token": "tok_3ds", "idempotency_key": "order-4242-pay"})).await.expect("started");
    assert_eq!(
        (
            started["status"].clone(),
            started["invoice_id"].clone(),
            started["next_action"]["type"].clone()
        ),
        (json!("processing"), Value::Null, json!("redirect"))
    );
    let same = billing.start_payment(&scope, &json!({"source_type": "order", "source_id": 4242, "amount": "15.00", "currency": "USD", "token": "tok_3ds", "idempotency_key": "order-4242-pay"})).await.expect("replayed");
    assert_eq!(
        same["id"], started["id"],
        "one transaction per idempotency key"
    );
    let early = json!({"id": "evt_2", "type": "payment.succeeded", "data": {"gateway_transaction_id": started["gateway_transaction_id"]}});
    let (status, retry, headers) = hook(&early, Some(sign(&early))).await;
    assert_eq!(
        (status, retry["code"].clone()),
        (StatusCode::CONFLICT, json!("invoice_not_ready")),
        "{retry}"
    );
    assert!(headers.get("retry-after").is_some());
    let order_invoice = invoice(
        &app,
        &owner,
        "15.00",
        json!({"source_type": "order", "source_id": 4242}),
    )
    .await;
    let (status, _, _) = hook(&early, Some(sign(&early))).await;
    assert_eq!(status, StatusCode::OK, "the provider's retry lands");
    let settled = get(&app, &owner, &format!("invoices/{}/", order_invoice["id"])).await;
    assert_eq!(
        (settled["status"].clone(), settled["amount_paid"].clone()),
        (json!("paid"), json!("15.00"))
    );
    // A checkout payment that completes at once attaches when its invoice appears.
    let instant = billing.start_payment(&scope, &json!({"source_type": "order", "source_id": 4343, "amount": "7.50", "token": "tok_ok", "idempotency_key": "order-4343-pay"})).await.expect("paid");
    assert_eq!(instant["status"], "completed");
    let later = invoice(
        &app,
        &owner,
        "7.50",
        json!({"source_type": "order", "source_id": 4343}),
    )
    .await;
    assert_eq!(
        (
            later["payment_status"].clone(),
            later["amount_paid"].clone()
        ),
        (json!("PAID"), json!("7.50")),
        "{later}"
    );
    let hosted = billing
        .start_payment(
            &scope,
            &json!({"source_type": "order", "source_id": 4545, "amount": "3.00", "idempotency_key": "order-4545-pay"}),
        )
        .await
        .expect("a hosted page");
    assert_eq!(
        (
            hosted["status"].clone(),
            hosted["next_action"]["type"].clone()
        ),
        (json!("processing"), json!("redirect")),
        "no token: the customer pays on the gateway's page"
    );
    let declined = billing.start_payment(&scope, &json!({"source_type": "order", "source_id": 4444, "amount": "1.00", "token": "tok_fail", "idempotency_key": "order-4444-pay"})).await.expect("answered");
    assert_eq!(declined["status"], "failed");
    let bad = billing
        .start_payment(&scope, &json!({"source_type": "order", "amount": "-1"}))
        .await
        .expect_err("refused");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// The owner's scope as another service sees it in-process.
fn scope_of(owner: &Owner) -> kernel::auth::ProjectScope {
    let envelope = Envelope::new(
        "test",
        Some(owner.project_id()),
        Some(owner.id),
        &integration::billing::InvoiceSent(integration::billing::InvoiceEvent {
            invoice_id: 0,
            invoice_number: String::new(),
            source_type: "manual".into(),
            source_id: None,
            total: "0.00".into(),
            currency: "USD".into(),
        }),
    )
    .unwrap();
    kernel::auth::ProjectScope::for_event(&envelope).expect("scope")
}

#[tokio::test]
async fn invoice_actions_and_editing_rules() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "nadia", "Nadia Notes").await;
    // A draft: everything editable, items recomputed.
    let (status, draft) = post(&app, &owner, "invoices/", json!({"items": [{"description": "Desk", "quantity": 2, "unit_price": "250", "tax_rate": 10}], "discount_amount": "25", "customer_name": "Omar"})).await;
    assert_eq!(
        (
            status,
            draft["status"].clone(),
            draft["total_amount"].clone()
        ),
        (StatusCode::CREATED, json!("draft"), json!("525.00")),
        "{draft}"
    );
    let at = |d: &Value| format!("invoices/{}/", d["id"]);
    let (status, edited) = call(&app, &owner.access, Method::PATCH, &at(&draft), json!({"items": [{"description": "Chair", "quantity": 1, "unit_price": "100"}], "currency": "eur", "customer_email": "omar@example.com"})).await;
    assert_eq!(
        (
            status,
            edited["total_amount"].clone(),
            edited["currency"].clone(),
            edited["items"].as_array().map(Vec::len)
        ),
        (StatusCode::OK, json!("75.00"), json!("EUR"), Some(1)),
        "{edited}"
    );
    assert_eq!(edited["customer"]["email"], "omar@example.com");
    let (status, bad_total) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"total": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad_total}");

    // send/: issued, once or again.
    let (status, sent) = post(
        &app,
        &owner,
        &format!("invoices/{}/send/", draft["id"]),
        json!({"recipient_email": "omar@example.com", "message": "Thanks"}),
    )
    .await;
    assert_eq!(
        (status, sent["status"].clone(), sent["id"].clone()),
        (StatusCode::OK, json!("sent"), draft["id"].clone()),
        "{sent}"
    );
    assert!(sent["sent_at"].is_string() && sent["message"].is_string());
    let (status, _) = post(
        &app,
        &owner,
        &format!("invoices/{}/send/", draft["id"]),
        json!({"recipient_email": "not an email"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(events(&app, "invoice.sent").await.len(), 1);
    // Issued, nothing paid: amounts still editable, the customer not.
    let (status, issued) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"shipping_amount": "5", "notes": "fragile"}),
    )
    .await;
    assert_eq!(
        (status, issued["total_amount"].clone()),
        (StatusCode::OK, json!("80.00")),
        "{issued}"
    );
    let (status, fixed) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"currency": "USD"}),
    )
    .await;
    assert_eq!(
        (status, fixed["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("invoice_not_draft"))
    );
    let (status, derived) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"payment": "REFUNDED"}),
    )
    .await;
    assert_eq!(
        (status, derived["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("payment_status_derived")
        )
    );
    let (status, back) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"status": "draft"}),
    )
    .await;
    assert_eq!(
        (status, back["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_transition")
        )
    );

    // With a payment: notes, due date and metadata only; no cancel.
    let (status, _) = post(
        &app,
        &owner,
        &format!("invoices/{}/payments/", draft["id"]),
        json!({"amount": "30", "method": "cash"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, locked) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"shipping_amount": "0"}),
    )
    .await;
    assert_eq!(
        (status, locked["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invoice_has_payments")
        )
    );
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1))
        .format("%Y-%m-%d")
        .to_string();
    let (status, noted) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"notes": "half paid", "due_date": tomorrow, "metadata": {"po": "A1"}}),
    )
    .await;
    assert_eq!(
        (status, noted["notes"].clone(), noted["due_date"].clone()),
        (StatusCode::OK, json!("half paid"), json!(tomorrow)),
        "{noted}"
    );
    let (status, early) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"due_date": "2001-01-01"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{early}");
    let (status, refused) = post(
        &app,
        &owner,
        &format!("invoices/{}/cancel/", draft["id"]),
        json!({"reason": "oops"}),
    )
    .await;
    assert_eq!(
        (status, refused["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invoice_has_payments")
        )
    );
    // `payment: PAID` records what is due; again is a no-op.
    let (status, paid) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"payment": "PAID", "payment_method": "bank_transfer"}),
    )
    .await;
    assert_eq!(
        (
            status,
            paid["status"].clone(),
            paid["amount_due"].clone(),
            paid["payment_status"].clone()
        ),
        (StatusCode::OK, json!("paid"), json!("0.00"), json!("PAID")),
        "{paid}"
    );
    let (status, _) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"payment": "paid"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, sneaky) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"payment": "PAID", "due_date": tomorrow}),
    )
    .await;
    assert_eq!(
        (status, sneaky["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invoice_has_payments")
        ),
        "a no-op status does not open the other fields"
    );
    let list = get(
        &app,
        &owner,
        &format!("transactions/?invoice={}", draft["id"]),
    )
    .await;
    assert_eq!(list["count"], 2);
    let (status, settled) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&draft),
        json!({"due_date": tomorrow}),
    )
    .await;
    assert_eq!(
        (status, settled["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invoice_has_payments")
        )
    );
    assert_eq!(events(&app, "invoice.paid").await.len(), 1);
    let (status, kept) = call(
        &app,
        &owner.access,
        Method::DELETE,
        &at(&draft),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, kept["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("invoice_not_draft"))
    );

    // Cancel: an unpaid invoice, by action or by status; a cancelled one takes no payment.
    let other = invoice(&app, &owner, "40.00", json!({"due_date": tomorrow})).await;
    let (status, void) = post(
        &app,
        &owner,
        &format!("invoices/{}/cancel/", other["id"]),
        json!({"reason": "duplicate"}),
    )
    .await;
    assert_eq!(
        (
            status,
            void["status"].clone(),
            void["payment_status"].clone(),
            void["cancel_reason"].clone()
        ),
        (
            StatusCode::OK,
            json!("cancelled"),
            json!("CANCELLED"),
            json!("duplicate")
        ),
        "{void}"
    );
    let (status, no) = post(
        &app,
        &owner,
        &format!("invoices/{}/payments/", other["id"]),
        json!({"amount": "1"}),
    )
    .await;
    assert_eq!(
        (status, no["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("invoice_cancelled"))
    );
    let third = invoice(&app, &owner, "12.00", json!({})).await;
    let (status, by_status) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &at(&third),
        json!({"status": "cancelled"}),
    )
    .await;
    assert_eq!(
        (status, by_status["status"].clone()),
        (StatusCode::OK, json!("cancelled"))
    );
    assert_eq!(events(&app, "invoice.cancelled").await.len(), 2);
    let (_, editor) = member(&app, &owner, "emad", "editor").await;
    let fourth = invoice(&app, &owner, "9.00", json!({})).await;
    let (status, _) = call(
        &app,
        &editor,
        Method::POST,
        &format!("invoices/{}/cancel/", fourth["id"]),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        &editor,
        Method::PATCH,
        &at(&fourth),
        json!({"notes": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Overdue is computed: an issued, unpaid invoice past its due date.
    let pool = service_pool(app.platform.config(), "billing").await;
    sqlx::query("UPDATE invoices SET due_date = current_date - 3 WHERE id = $1")
        .bind(fourth["id"].as_i64())
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(get(&app, &owner, &at(&fourth)).await["status"], "overdue");
    let overdue = get(&app, &owner, "invoices/?status=overdue").await;
    assert_eq!(
        (
            overdue["count"].clone(),
            overdue["results"][0]["id"].clone()
        ),
        (json!(1), fourth["id"].clone())
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(
        get(&app, &owner, &format!("invoices/?due_before={today}")).await["count"],
        1
    );
    assert_eq!(
        get(
            &app,
            &owner,
            &format!("invoices/?start_date={today}&end_date={today}")
        )
        .await["count"],
        4
    );
    assert_eq!(
        get(&app, &owner, "invoices/?end_date=2000-01-01").await["count"],
        0
    );
    assert_eq!(
        get(&app, &owner, "invoices/?min_amount=10&max_amount=40").await["count"],
        2
    );
    assert_eq!(
        get(&app, &owner, "invoices/?payment_status=PAID").await["count"],
        1
    );
    assert_eq!(
        get(&app, &owner, "invoices/?customer_type=crm&currency=EUR").await["count"],
        1
    );
    for bad in [
        "invoices/?start_date=yesterday",
        "invoices/?min_amount=lots",
        "invoices/?colour=red",
    ] {
        let (status, _) = call(&app, &owner.access, Method::GET, bad, Value::Null).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }

    // Header-only invoices (bindings) and one invoice per source.
    let (status, header) = post(&app, &owner, "invoices/", json!({"total_amount": "99.50", "source_type": "repair", "source_id": 7, "invoice_number": "RPR-7", "issue": true})).await;
    assert_eq!(
        (
            status,
            header["subtotal"].clone(),
            header["invoice_number"].clone()
        ),
        (StatusCode::CREATED, json!("99.50"), json!("RPR-7")),
        "{header}"
    );
    let (status, replay) = post(
        &app,
        &owner,
        "invoices/",
        json!({"total_amount": "99.50", "source_type": "repair", "source_id": 7}),
    )
    .await;
    assert_eq!(
        (status, replay["id"].clone()),
        (StatusCode::OK, header["id"].clone())
    );
    let (status, dup) = post(
        &app,
        &owner,
        "invoices/",
        json!({"total_amount": "1", "invoice_number": "RPR-7"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{dup}");
    assert!(dup["invoice_number"].is_array());
    for body in [
        json!({"total_amount": "-1"}),
        json!({"items": "many"}),
        json!({"subtotal": "10", "total": "11"}),
        json!({"due_date": "2001-01-01", "total": "1"}),
        json!({"total": "1", "source_type": "spaceship", "source_id": 1}),
        json!({"total": "1", "currency": "dollars"}),
        json!({"items": [{"description": "x", "quantity": "lots", "unit_price": "1"}]}),
    ] {
        let (status, answer) = post(&app, &owner, "invoices/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    assert_eq!(
        get(&app, &owner, "invoices/").await["count"],
        5,
        "refused creates made nothing"
    );
}

fn order_ref(order_id: i64) -> OrderRef {
    OrderRef {
        order_id,
        order_number: format!("ORD-{order_id}"),
        reference: None,
        status: "confirmed".into(),
        payment_status: "pending".into(),
    }
}

#[tokio::test]
async fn order_money_events_are_booked_once() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "omar", "Omar Outfitters").await;
    let project = Some(owner.project_id());
    let bus = app.platform.events().clone();
    let payment = |order_id: i64, tid: &str, amount: &str| {
        Envelope::new(
            "order",
            project,
            Some(owner.id),
            &OrderPaymentRecorded {
                order: order_ref(order_id),
                payment_id: Some(1),
                transaction_id: tid.into(),
                amount: amount.into(),
                currency: "USD".into(),
                method: "cash".into(),
            },
        )
        .unwrap()
    };
    // No invoice yet: the handler fails, so the event comes again.
    let early = payment(77, "ORD-77-1", "20.00");
    assert!(bus.dispatch(&early, Some("billing")).await.is_err());
    let inv = invoice(
        &app,
        &owner,
        "50.00",
        json!({"source_type": "order", "source_id": 77}),
    )
    .await;
    bus.dispatch(&early, Some("billing")).await.expect("booked");
    bus.dispatch(&early, Some("billing"))
        .await
        .expect("redelivery is harmless");
    bus.dispatch(&payment(77, "ORD-77-1", "20.00"), Some("billing"))
        .await
        .expect("same transaction id, another event");
    let rows = get(
        &app,
        &owner,
        &format!("transactions/?invoice={}", inv["id"]),
    )
    .await;
    assert_eq!(rows["count"], 1, "{rows}");
    assert_eq!(rows["results"][0]["transaction_id"], "ORD-77-1");
    // More than is due: kept as a failed payment, and payment.failed names it.
    bus.dispatch(&payment(77, "ORD-77-2", "40.00"), Some("billing"))
        .await
        .expect("handled");
    let failed = get(&app, &owner, "transactions/?transaction_id=ORD-77-2").await;
    assert_eq!(
        (
            failed["results"][0]["status"].clone(),
            failed["results"][0]["error_code"].clone()
        ),
        (json!("failed"), json!("amount_exceeds_due"))
    );
    let failures = events(&app, "payment.failed").await;
    assert_eq!(
        failures
            .iter()
            .filter(|e| e["transactionId"] == "ORD-77-2")
            .count(),
        1
    );
    assert_eq!(
        get(&app, &owner, &format!("invoices/{}/", inv["id"])).await["amount_paid"],
        "20.00"
    );

    // A refund, capped to what was paid, once.
    let refund = Envelope::new(
        "order",
        project,
        Some(owner.id),
        &OrderRefundRequested {
            order: order_ref(77),
            transaction_id: "order-cancel-refund-77".into(),
            amount: "35.00".into(),
            currency: "USD".into(),
            reason: "cancelled".into(),
            return_id: None,
        },
    )
    .unwrap();
    bus.dispatch(&refund, Some("billing"))
        .await
        .expect("refunded");
    bus.dispatch(&refund, Some("billing")).await.expect("once");
    let after = get(&app, &owner, &format!("invoices/{}/", inv["id"])).await;
    assert_eq!(
        (
            after["amount_refunded"].clone(),
            after["status"].clone(),
            after["payment_status"].clone()
        ),
        (json!("20.00"), json!("refunded"), json!("REFUNDED"))
    );
    let refunds = events(&app, "payment.refunded").await;
    assert_eq!(
        (
            refunds.len(),
            refunds[0]["transactionId"].clone(),
            refunds[0]["amount"].clone()
        ),
        (1, json!("order-cancel-refund-77"), json!("20.00"))
    );
    // Another project's order of the same id is not this invoice.
    let other = owner_with_project(&app, "olga", "Olga Optics").await;
    let foreign = Envelope::new(
        "order",
        Some(other.project_id()),
        Some(other.id),
        &OrderPaymentRecorded {
            order: order_ref(77),
            payment_id: None,
            transaction_id: "ORD-77-9".into(),
            amount: "1.00".into(),
            currency: "USD".into(),
            method: "cash".into(),
        },
    )
    .unwrap();
    assert!(
        bus.dispatch(&foreign, Some("billing")).await.is_err(),
        "project B has no invoice for order 77"
    );
    assert_eq!(
        get(&app, &owner, &format!("invoices/{}/", inv["id"])).await["amount_paid"],
        "20.00"
    );
}

#[tokio::test]
async fn transactions_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "amal", "Amal Apparel").await;
    let b = owner_with_project(&app, "basil", "Basil Bikes").await;
    let inv = invoice(&app, &a, "20.00", json!({})).await;
    let (_, paid) = post(
        &app,
        &a,
        "transactions/",
        json!({"invoice_id": inv["id"], "amount": "5"}),
    )
    .await;
    let (_, pending) = post(
        &app,
        &a,
        "transactions/",
        json!({"invoice_id": inv["id"], "amount": "5", "status": "pending"}),
    )
    .await;
    for t in [&paid, &pending] {
        CrossTenant {
            app: &app,
            owner: &a.access,
            owner_item: format!("{API}transactions/{}/", t["id"]),
            outsider: &b.access,
            project_a: a.project_id(),
        }
        .check(&TenantResource {
            name: "transactions",
            lists: vec![
                format!("{API}transactions/"),
                "/api/v1/billing/transactions/".into(),
                format!("{API}transactions/?invoice={}", inv["id"]),
            ],
            id: t["id"].clone(),
            items: vec![format!("{API}transactions/{}/", t["id"])],
            readable: true,
            public_read: false,
            update: Some((
                Method::PATCH,
                json!({"status": "completed", "description": "mine"}),
            )),
            delete: true,
            restore: Some(format!("{API}transactions/{}/restore/", t["id"])),
        })
        .await;
    }
    for (path, body) in [
        (
            format!("transactions/{}/refund/", paid["id"]),
            json!({"amount": "1"}),
        ),
        (format!("invoices/{}/send/", inv["id"]), json!({})),
        (format!("invoices/{}/cancel/", inv["id"]), json!({})),
        (
            "transactions/".to_owned(),
            json!({"invoice_id": inv["id"], "amount": "1"}),
        ),
        (
            "transactions/".to_owned(),
            json!({"refund_of_id": paid["id"], "transaction_type": "refund", "amount": "1"}),
        ),
    ] {
        let (status, body) = post(&app, &b, &path, body).await;
        assert!(
            matches!(status, StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST),
            "{path}: {status} {body}"
        );
    }
    let (status, _) = call(
        &app,
        &b.access,
        Method::PATCH,
        &format!("invoices/{}/", inv["id"]),
        json!({"payment": "PAID"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let still = get(&app, &a, &format!("invoices/{}/", inv["id"])).await;
    assert_eq!(
        (still["amount_paid"].clone(), still["status"].clone()),
        (json!("5.00"), json!("partially_paid"))
    );
}

/// `order.created` for an order of `project` with one line per price (quantity 1).
fn placed(project: i64, order_id: i64, total: &str, prices: &[&str]) -> Envelope {
    let event = integration::order::OrderCreated {
        order: order_ref(order_id),
        customer_id: None,
        customer_email: format!("buyer{order_id}@example.com"),
        currency: "USD".into(),
        subtotal: total.into(),
        discount_amount: "0.00".into(),
        shipping_cost: "0.00".into(),
        tax_amount: "0.00".into(),
        total: total.into(),
        items: prices
            .iter()
            .enumerate()
            .map(|(n, price)| integration::order::OrderLine {
                order_item_id: n as i64 + 1,
                product_id: 900 + n as i64,
                variant_id: None,
                sku: Some(format!("SKU-{n}")),
                quantity: 1,
                unit_price: (*price).into(),
                total_price: (*price).into(),
            })
            .collect(),
        source: "web".into(),
        reservation_id: None,
    };
    Envelope::new("order", Some(project), None, &event).expect("an envelope")
}

#[tokio::test]
async fn a_batch_of_placed_orders_is_invoiced_at_once_and_only_once() {
    use kernel::events::EventHandler;
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "amal", "Amal Atelier").await;
    let b = owner_with_project(&app, "bilal", "Bilal Bikes").await;
    let billing = app
        .platform
        .lookup::<integration::billing::SharedBilling>()
        .expect("billing is provided");
    // Before the batch: a manual invoice in A (number 1), an order of A already invoiced
    // (number 2) and a payment made at checkout for order 5003 of A, before its invoice.
    invoice(&app, &a, "5.00", json!({})).await;
    invoice(
        &app,
        &a,
        "9.00",
        json!({"source_type": "order", "source_id": 5002}),
    )
    .await;
    let paid = billing.start_payment(&scope_of(&a), &json!({"source_type": "order", "source_id": 5003, "amount": "30.00", "token": "tok_ok", "idempotency_key": "order-5003-pay"})).await.expect("paid");
    assert_eq!(paid["status"], "completed");

    let (pa, pb) = (a.project_id(), b.project_id());
    let first = placed(pa, 5001, "12.50", &["10.00", "2.50"]);
    let twice = placed(pb, 6001, "4.00", &["4.00"]);
    let batch = [
        first.clone(),
        twice.clone(),
        placed(pa, 5002, "9.00", &["9.00"]), // already invoiced
        placed(pa, 5003, "30.00", &["10.00", "20.00"]), // paid before
        placed(pb, 6002, "3.00", &["1.00", "1.00", "1.00"]),
        twice.clone(),                       // the same event again
        placed(pb, 6001, "4.00", &["4.00"]), // another event for the same order
        placed(pa, 5004, "7.00", &["7.00"]),
    ];
    let invoicer = zv_billing::order_invoices::OrderInvoicer {
        ctx: crate::harness::service_context(&app, "billing").await,
    };
    let refs: Vec<&Envelope> = batch.iter().collect();
    invoicer.handle_all(&refs).await.expect("invoiced");
    invoicer
        .handle_all(&refs)
        .await
        .expect("a redelivered batch is harmless");
    invoicer
        .handle(&first)
        .await
        .expect("a redelivered event too");

    let year = chrono::Utc::now().format("%Y").to_string();
    let row = |n: u32, source: Option<i64>, total: &str, lines: usize, paid: &str| {
        (
            format!("INV-{year}-{n:03}"),
            source,
            total.to_owned(),
            lines,
            paid.to_owned(),
        )
    };
    assert_eq!(
        invoice_rows(&app, &a).await,
        vec![
            row(1, None, "5.00", 1, "PENDING"),
            row(2, Some(5002), "9.00", 1, "PENDING"),
            row(3, Some(5001), "12.50", 2, "PENDING"),
            row(4, Some(5003), "30.00", 2, "PAID"),
            row(5, Some(5004), "7.00", 1, "PENDING"),
        ],
        "gapless in each project, one invoice per order, the early payment attached"
    );
    assert_eq!(
        invoice_rows(&app, &b).await,
        vec![
            row(1, Some(6001), "4.00", 1, "PENDING"),
            row(2, Some(6002), "3.00", 3, "PENDING"),
        ]
    );
    let created: Vec<(i64, String)> = events(&app, "invoice.created")
        .await
        .iter()
        .filter_map(|e| {
            Some((
                e["sourceId"].as_i64()?,
                e["invoiceNumber"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let announced = |n: u32, source: i64| (source, format!("INV-{year}-{n:03}"));
    assert_eq!(
        created,
        vec![
            announced(2, 5002),
            announced(3, 5001),
            announced(1, 6001),
            announced(4, 5003),
            announced(2, 6002),
            announced(5, 5004),
        ],
        "one invoice.created per invoice, in the batch's order"
    );
}

/// (number, source id, total, lines, payment status) of each invoice of the owner's project,
/// by number.
async fn invoice_rows(
    app: &TestApp,
    owner: &Owner,
) -> Vec<(String, Option<i64>, String, usize, String)> {
    let list = get(app, owner, "invoices/?ordering=invoice_number&page_size=50").await;
    list["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["invoice_number"].as_str().unwrap_or_default().to_owned(),
                i["source_id"].as_i64(),
                i["total_amount"].as_str().unwrap_or_default().to_owned(),
                i["items"].as_array().map_or(0, Vec::len),
                i["payment_status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
