//! Billing (billing.md §3, §4) as the order flow uses it: an invoice for every placed order,
//! gapless numbers, payments and refunds on the ledger, and the order following its invoice.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{eventually, CrossTenant, TenantResource, TestApp};
use crate::inventory::create;
use crate::projects::{member, owner_with_project, Owner};

const API: &str = "/api/v1/billing/m/";

async fn post(app: &TestApp, owner: &Owner, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, path, body, &owner.access).await
}

#[tokio::test]
async fn a_sale_from_order_to_paid_invoice_to_refund() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "bassem", "Bassem Books").await;
    let (_, book) = post(
        &app,
        &owner,
        "/api/v1/product/products/",
        json!({"name": "Atlas", "price": "40.00", "status": "active"}),
    )
    .await;
    create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": book["id"], "quantity": 5}),
    )
    .await;
    let (status, order) = post(&app, &owner, "/api/v1/order/orders/", json!({"customer_email": "reader@example.com", "items": [{"product_id": book["id"], "quantity": 2}]})).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");

    // The invoice follows the order (once), and the order learns its id.
    let invoice = eventually("the order's invoice", || async {
        let (_, list, _) = app
            .get(
                &format!("{API}invoices/?order={}", order["id"]),
                Some(&owner.access),
            )
            .await;
        (list["count"] == 1).then(|| list["results"][0].clone())
    })
    .await;
    let year = chrono::Utc::now().format("%Y").to_string();
    assert_eq!(invoice["invoice_number"], format!("INV-{year}-001"));
    assert_eq!(
        (
            invoice["total_amount"].clone(),
            invoice["amount_due"].clone(),
            invoice["status"].clone(),
            invoice["payment_status"].clone()
        ),
        (
            json!("80.00"),
            json!("80.00"),
            json!("sent"),
            json!("PENDING")
        )
    );
    assert_eq!(invoice["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(invoice["customer"]["email"], "reader@example.com");
    let id = invoice["id"].clone();
    eventually("the order's invoice id", || async {
        let (_, o, _) = app
            .get(
                &format!("/api/v1/order/orders/{}/", order["id"]),
                Some(&owner.access),
            )
            .await;
        (o["invoice_id"] == id).then_some(o)
    })
    .await;

    // A partial payment, an overpayment refused, then the rest: paid, and the order confirmed.
    let pay = format!("{API}invoices/{id}/payments/");
    let (status, first) = post(
        &app,
        &owner,
        &pay,
        json!({"amount": "30.00", "method": "cash", "transaction_id": "ORD-1-1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (first["amount"].clone(), first["status"].clone()),
        (json!("30.00"), json!("completed"))
    );
    let (status, again) = post(
        &app,
        &owner,
        &pay,
        json!({"amount": "30.00", "method": "cash", "transaction_id": "ORD-1-1"}),
    )
    .await;
    assert_eq!(
        (status, again["id"].clone()),
        (StatusCode::CREATED, first["id"].clone()),
        "the same transaction id is the same payment"
    );
    let (status, clash) = post(
        &app,
        &owner,
        &pay,
        json!({"amount": "31.00", "transaction_id": "ORD-1-1"}),
    )
    .await;
    assert_eq!(
        (status, clash["code"].clone()),
        (StatusCode::CONFLICT, json!("duplicate_transaction_id"))
    );
    let (status, over) = post(&app, &owner, &pay, json!({"amount": "50.01"})).await;
    assert_eq!(
        (status, over["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("amount_exceeds_due")
        )
    );
    let (_, partly, _) = app
        .get(&format!("{API}invoices/{id}/"), Some(&owner.access))
        .await;
    assert_eq!(
        (partly["status"].clone(), partly["amount_due"].clone()),
        (json!("partially_paid"), json!("50.00"))
    );
    let (status, rest) = post(&app, &owner, &pay, json!({"method": "credit_card"})).await;
    assert_eq!(
        (status, rest["amount"].clone()),
        (StatusCode::CREATED, json!("50.00")),
        "the default amount is what is due"
    );
    let (_, paid, _) = app
        .get(&format!("{API}invoices/{id}/"), Some(&owner.access))
        .await;
    assert_eq!(
        (
            paid["status"].clone(),
            paid["payment_status"].clone(),
            paid["amount_due"].clone()
        ),
        (json!("paid"), json!("PAID"), json!("0.00"))
    );
    assert!(paid["paid_date"].is_string());
    let confirmed = eventually("the order is paid and confirmed", || async {
        let (_, o, _) = app
            .get(
                &format!("/api/v1/order/orders/{}/", order["id"]),
                Some(&owner.access),
            )
            .await;
        (o["payment_status"] == "paid" && o["status"] == "confirmed").then_some(o)
    })
    .await;
    assert_eq!(
        (
            confirmed["amount_paid"].clone(),
            confirmed["amount_due"].clone()
        ),
        (json!("80.00"), json!("0.00"))
    );

    // Refunds: owners and admins, at most what was paid.
    let (_, editor) = member(&app, &owner, "edna", "editor").await;
    let refund = format!("{API}invoices/{id}/refund/");
    let (status, _) = app
        .call(Method::POST, &refund, json!({"amount": "10"}), &editor)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, too_much) = post(
        &app,
        &owner,
        &refund,
        json!({"amount": "80.01", "reason": "x"}),
    )
    .await;
    assert_eq!(
        (status, too_much["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("amount_exceeds_refundable")
        )
    );
    let (status, back) = post(
        &app,
        &owner,
        &refund,
        json!({"amount": "20", "reason": "damaged cover"}),
    )
    .await;
    assert_eq!(
        (status, back["transaction_type"].clone()),
        (StatusCode::CREATED, json!("refund")),
        "{back}"
    );
    let (_, after, _) = app
        .get(&format!("{API}invoices/{id}/"), Some(&owner.access))
        .await;
    assert_eq!(
        (
            after["status"].clone(),
            after["payment_status"].clone(),
            after["amount_refunded"].clone()
        ),
        (
            json!("partially_paid"),
            json!("PARTIALLY_REFUNDED"),
            json!("20.00")
        )
    );
    eventually("the order sees the refund", || async {
        let (_, o, _) = app
            .get(
                &format!("/api/v1/order/orders/{}/", order["id"]),
                Some(&owner.access),
            )
            .await;
        (o["payment_status"] == "partially_refunded").then_some(o)
    })
    .await;
    for body in [
        json!({"amount": "-5"}),
        json!({"amount": "abc"}),
        json!({"amount": 0}),
        json!({"method": "gold"}),
    ] {
        let (status, _) = post(&app, &owner, &pay, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
}

#[tokio::test]
async fn invoice_numbers_are_gapless_under_concurrency() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "ghazi", "Ghazi Garage").await;
    let make = |n: usize| {
        let app = &app;
        let token = owner.access.clone();
        async move {
            let body = if n.is_multiple_of(5) {
                // Refused (a negative price): it takes no number.
                json!({"items": [{"description": "Oil", "quantity": 1, "unit_price": "-1"}]})
            } else {
                json!({"items": [{"description": "Oil change", "quantity": 2, "unit_price": "12.50", "tax_rate": 10}], "shipping_amount": "5", "issue": true})
            };
            app.call(Method::POST, &format!("{API}invoices/"), body, &token)
                .await
        }
    };
    let answers = futures::future::join_all((0..40).map(make)).await;
    let mut numbers: Vec<String> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b["invoice_number"].as_str().unwrap_or_default().to_owned())
        .collect();
    numbers.sort();
    let year = chrono::Utc::now().format("%Y").to_string();
    let expected: Vec<String> = (1..=32).map(|n| format!("INV-{year}-{n:03}")).collect();
    assert_eq!(numbers, expected);
    let one = answers
        .iter()
        .find(|(s, _)| *s == StatusCode::CREATED)
        .map(|(_, b)| b.clone())
        .unwrap_or_default();
    assert_eq!(
        (
            one["subtotal"].clone(),
            one["tax_amount"].clone(),
            one["total_amount"].clone(),
            one["status"].clone()
        ),
        (json!("25.00"), json!("2.50"), json!("32.50"), json!("sent")),
        "2 × 12.50, 10% tax, 5 shipping"
    );
    let (status, mismatch) = app
        .call(Method::POST, &format!("{API}invoices/"), json!({"items": [{"description": "x", "quantity": 1, "unit_price": "10"}], "total": "9"}), &owner.access)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(mismatch["total"].is_array(), "{mismatch}");
}

#[tokio::test]
async fn invoices_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "aisha", "Aisha Arts").await;
    let b = owner_with_project(&app, "badr", "Badr Bakes").await;
    let (_, invoice) = post(&app, &a, &format!("{API}invoices/"), json!({"items": [{"description": "Frame", "quantity": 1, "unit_price": "15"}], "issue": true})).await;
    CrossTenant {
        app: &app,
        owner: &a.access,
        owner_item: format!("{API}invoices/{}/", invoice["id"]),
        outsider: &b.access,
        project_a: a.project_id(),
    }
    .check(&TenantResource {
        name: "invoices",
        lists: vec![
            format!("{API}invoices/"),
            "/api/v1/billing/invoices/".into(),
        ],
        id: invoice["id"].clone(),
        items: vec![format!("{API}invoices/{}/", invoice["id"])],
        readable: true,
        public_read: false,
        update: Some((Method::PATCH, json!({"notes": "mine"}))),
        delete: false,
        restore: None,
    })
    .await;
    for action in ["payments", "refund"] {
        let (status, _) = post(
            &app,
            &b,
            &format!("{API}invoices/{}/{action}/", invoice["id"]),
            json!({"amount": "1"}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    let (_, still, _) = app
        .get(
            &format!("{API}invoices/{}/", invoice["id"]),
            Some(&a.access),
        )
        .await;
    assert_eq!(still["amount_paid"], "0.00");
}
