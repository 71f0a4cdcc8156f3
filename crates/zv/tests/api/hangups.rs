//! Clients that hang up (DESIGN §4): a write, once started, runs to its end whoever is still
//! listening. Placements, checkouts and payments whose clients give up after 1–40 ms each end
//! placed or failed, nothing stays `placing`, and the stock held is exactly what the live
//! orders hold.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::carts::{address, customer, product_in_stock, shop, As};
use crate::harness::{service_pool, stock_of, until, TestApp};
use crate::projects::owner_with_project;
use crate::reservations::reconciliation;

/// Sends `req`, giving up after `patience` (the connection is dropped mid-request); whether
/// the client stayed for the answer.
async fn impatient(req: reqwest::RequestBuilder, patience: Duration) -> bool {
    req.timeout(patience).send().await.is_ok()
}

/// A spread of patiences over 5..=300 ms: from before the write reaches its service to the
/// middle of its saga.
fn patience(i: usize) -> Duration {
    Duration::from_millis(5 + (i as u64 * 7919) % 296)
}

#[tokio::test]
async fn writes_whose_clients_hang_up_run_to_their_end() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "hana", "Hana Hardware").await;
    let project = owner.project_id();
    let nail = product_in_stock(&app, &owner, "Nail", "1.00", 10_000).await;

    // 100 placements by the owner.
    let placements = (0..100).map(|i| {
        let req = app
            .client
            .post(app.url("/api/v1/order/orders/"))
            .bearer_auth(&owner.access)
            .json(&json!({"items": [{"product_id": nail, "quantity": 1}]}));
        impatient(req, patience(i))
    });
    // 20 customers' checkouts.
    let mut checkouts = Vec::new();
    for i in 0..20 {
        let (_, access) = customer(&app, &format!("buyer{i}")).await;
        let (status, line) = shop(
            &app,
            project,
            As::User(&access),
            Method::POST,
            "/api/v1/order/cart/carts/current/items/",
            json!({"product_id": nail, "quantity": 1}),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{line}");
        let req = app
            .client
            .post(app.url("/api/v1/order/cart/carts/current/checkout/"))
            .bearer_auth(&access)
            .header("X-Project-ID", project.to_string())
            .json(
                &json!({"payment_method": "cash_on_delivery", "shipping_address": address(),
                          "customer_email": format!("buyer{i}@example.com")}),
            );
        checkouts.push(impatient(req, patience(i + 100)));
    }
    // Eight clients at a time, so that requests reach their service before patience runs out.
    use futures::StreamExt;
    let (placed, checked): (Vec<bool>, Vec<bool>) = futures::future::join(
        futures::stream::iter(placements)
            .buffer_unordered(8)
            .collect(),
        futures::stream::iter(checkouts)
            .buffer_unordered(4)
            .collect(),
    )
    .await;
    let gave_up = placed
        .iter()
        .chain(&checked)
        .filter(|answered| !**answered)
        .count();

    let orders = service_pool(&app.config(), "order").await;
    let settled = async {
        loop {
            let placing: i64 =
                sqlx::query_scalar("SELECT count(*) FROM orders WHERE status = 'placing'")
                    .fetch_one(&orders)
                    .await
                    .expect("count");
            if placing == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(3), settled)
        .await
        .expect("every placement and checkout settles within moments, not at the reconciler");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE status NOT IN ('failed', 'cancelled')",
    )
    .fetch_one(&orders)
    .await
    .expect("live orders");
    assert!(
        gave_up > 0 && live > 0,
        "{gave_up} clients gave up, {live} orders live"
    );
    let states: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT status, coalesce(reservation_id, ''), count(*) FROM orders GROUP BY 1, 2 ORDER BY 1",
    )
    .fetch_all(&orders)
    .await
    .expect("states");
    assert_eq!(
        stock_of(&app, &owner, nail).await,
        (10_000, live),
        "{gave_up} gave up: {states:?}"
    );
    assert_eq!(reconciliation(&app).await, (0, 0, 0));

    // Payments whose clients hang up: each invoice paid once or not at all, never half.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status NOT IN ('failed', 'cancelled') ORDER BY id LIMIT 30",
    )
    .fetch_all(&orders)
    .await
    .expect("ids");
    let mut invoices = Vec::new();
    for id in &ids {
        let list = until(
            &app,
            &owner,
            &format!("/api/v1/billing/invoices/?order={id}"),
            "the order's invoice",
            |l| l["count"] == 1,
        )
        .await;
        invoices.push(list["results"][0]["id"].as_i64().expect("invoice id"));
    }
    let payments = invoices.iter().enumerate().map(|(i, invoice)| {
        let req = app
            .client
            .post(app.url(&format!("/api/v1/billing/invoices/{invoice}/payments/")))
            .bearer_auth(&owner.access)
            .json(&json!({"method": "cash"}));
        impatient(req, patience(i + 200))
    });
    futures::future::join_all(payments).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let billing = service_pool(&app.config(), "billing").await;
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT i.status, (SELECT count(*) FROM transactions t \
           WHERE t.invoice_id = i.id AND t.transaction_type = 'payment') \
         FROM invoices i WHERE i.id = ANY($1)",
    )
    .bind(&invoices)
    .fetch_all(&billing)
    .await
    .expect("invoices");
    assert_eq!(rows.len(), invoices.len());
    for (status, paid) in &rows {
        assert!(
            (status == "paid" && *paid == 1) || (status != "paid" && *paid == 0),
            "{status} with {paid} payments: {rows:?}"
        );
    }
    let (status, body, _) = app.get("/api/v1/order/health/", None).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, Value::from("healthy"))
    );
}
