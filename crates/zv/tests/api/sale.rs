//! A whole sale through the gateway, once with the in-process bus (`zv up`) and once with every
//! event crossing RabbitMQ: a customer's cart → checkout → stock held → invoice → payment →
//! the order paid and confirmed → shipped (stock out) → delivered → a return (restocked) →
//! the refund on the invoice and the order. Every step that travels by event is awaited, and
//! at the end nothing exists twice.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::carts::{address, customer, product_in_stock, shop, As};
use crate::harness::{read, service_pool, stock_of, until, TestApp};
use crate::projects::owner_with_project_eventually;

const ORDER: &str = "/api/v1/order/";
const BILLING: &str = "/api/v1/billing/m/";

async fn the_whole_sale(app: &TestApp) {
    let owner = owner_with_project_eventually(app, "hala", "Hala Home").await;
    let project = owner.project_id();
    // The project's shipping methods are seeded from `project.created`.
    until(
        app,
        &owner,
        &format!("{ORDER}shipping-methods/"),
        "the shipping methods are seeded",
        |m| m["count"].as_i64() >= Some(4),
    )
    .await;
    let kettle = product_in_stock(app, &owner, "Kettle", "30.00", 5).await;
    let (customer_id, access) = customer(app, "nadia").await;
    let me = As::User(&access);
    let cart = format!("{ORDER}cart/carts/current/");

    // The cart and its checkout.
    let (status, line) = shop(
        app,
        project,
        me,
        Method::POST,
        &format!("{cart}items/"),
        json!({"product_id": kettle, "quantity": 2}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    assert_eq!(line["total_price"], "60.00");
    let (status, placed) = shop(
        app,
        project,
        me,
        Method::POST,
        &format!("{cart}checkout/"),
        json!({"payment_method": "cash_on_delivery", "shipping_address": address(),
               "customer_email": "nadia@example.com"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{placed}");
    assert_eq!(placed["status"], "pending");
    let id = placed["id"].as_i64().expect("order id");
    let order_path = format!("{ORDER}orders/{id}/");
    let order = read(app, &owner, &order_path).await;
    assert_eq!(order["customer_id"], customer_id);
    assert_eq!(order["subtotal"], "60.00");
    let total = order["total"].as_str().expect("total").to_owned();
    assert_eq!(
        stock_of(app, &owner, kettle).await,
        (5, 2),
        "the order holds its units"
    );

    // The invoice follows the order, and the order learns of it.
    let invoice = until(
        app,
        &owner,
        &format!("{BILLING}invoices/?order={id}"),
        "the order's invoice",
        |l| l["count"] == 1,
    )
    .await["results"][0]
        .clone();
    assert_eq!(
        (
            invoice["total_amount"].clone(),
            invoice["amount_due"].clone(),
            invoice["status"].clone()
        ),
        (json!(total), json!(total), json!("sent"))
    );
    let invoice_id = invoice["id"].as_i64().expect("invoice id");
    until(
        app,
        &owner,
        &order_path,
        "the order knows its invoice",
        |o| o["invoice_id"] == invoice_id,
    )
    .await;

    // The customer sees their own order.
    let (status, mine) = shop(app, project, me, Method::GET, &order_path, Value::Null, &[]).await;
    assert_eq!(
        (status, mine["order_number"].clone()),
        (StatusCode::OK, order["order_number"].clone())
    );

    // Paid at the till: the invoice is paid, the order paid and confirmed.
    let (status, payment) = app
        .call(
            Method::POST,
            &format!("{BILLING}invoices/{invoice_id}/payments/"),
            json!({"method": "cash"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{payment}");
    assert_eq!(payment["amount"], json!(total));
    until(
        app,
        &owner,
        &order_path,
        "the order is paid and confirmed",
        |o| o["payment_status"] == "paid" && o["status"] == "confirmed",
    )
    .await;

    // Shipped: the held units leave the stock, and the catalogue follows.
    let (status, shipped) = app
        .call(
            Method::POST,
            &format!("{order_path}fulfillments/"),
            json!({"carrier": "Aramex", "tracking_number": "AR-77"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shipped}");
    assert_eq!(stock_of(app, &owner, kettle).await, (3, 0));
    until(
        app,
        &owner,
        &format!("/api/v1/product/products/{kettle}/"),
        "the catalogue shows the units sold",
        |p| p["stock_quantity"] == 3,
    )
    .await;
    let (status, delivered) = app
        .call(
            Method::PATCH,
            &format!("{order_path}status/"),
            json!({"status": "delivered"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{delivered}");

    // The customer sends one kettle back; the shop approves and completes the return.
    let item = order["items"][0]["id"].clone();
    let (status, asked) = shop(
        app,
        project,
        me,
        Method::POST,
        &format!("{ORDER}order-returns/"),
        json!({"order": id, "return_type": "partial", "reason": "DEFECTIVE",
               "items": [{"order_item_id": item, "quantity": 1}]}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{asked}");
    assert_eq!(asked["refund_amount"], "30.00");
    for step in ["approve", "complete"] {
        let (status, body) = app
            .call(
                Method::POST,
                &format!("{ORDER}order-returns/{}/{step}/", asked["id"]),
                json!({}),
                &owner.access,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{step}: {body}");
    }
    assert_eq!(stock_of(app, &owner, kettle).await, (4, 0), "restocked");

    // Billing gives the money back once, and the order hears of it.
    let invoice_path = format!("{BILLING}invoices/{invoice_id}/");
    let refunded = until(app, &owner, &invoice_path, "the refund is booked", |i| {
        i["amount_refunded"] == "30.00"
    })
    .await;
    assert_eq!(refunded["payment_status"], "PARTIALLY_REFUNDED");
    let after = until(app, &owner, &order_path, "the order sees the refund", |o| {
        o["payment_status"] == "partially_refunded"
    })
    .await;
    assert_eq!(
        (after["status"].clone(), after["fulfillment_status"].clone()),
        (json!("delivered"), json!("partially_returned"))
    );

    // The order's history tells the story; nothing happened twice.
    let history = read(app, &owner, &format!("{order_path}history/")).await;
    let events: Vec<&str> = history["results"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|h| h["event"].as_str())
        .collect();
    for step in ["placed", "payment", "fulfilled", "return_completed"] {
        assert!(events.contains(&step), "{step} in {events:?}");
    }
    let billing = service_pool(app.platform.config(), "billing").await;
    let (invoices, payments, refunds): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM invoices WHERE source_type = 'order' AND source_id = $1), \
                (SELECT count(*) FROM transactions WHERE invoice_id = $2 AND transaction_type = 'payment'), \
                (SELECT count(*) FROM transactions WHERE invoice_id = $2 AND transaction_type = 'refund')",
    )
    .bind(id)
    .bind(invoice_id)
    .fetch_one(&billing)
    .await
    .expect("billing counts");
    assert_eq!((invoices, payments, refunds), (1, 1, 1));
    let movements = read(
        app,
        &owner,
        &format!("/api/v1/inventory/movements/?product_id={kettle}"),
    )
    .await;
    let kinds: Vec<String> = movements["results"]
        .as_array()
        .expect("movements")
        .iter()
        .map(|m| format!("{} {}", m["movement_type"], m["quantity"]))
        .collect();
    assert_eq!(movements["count"], 3, "received, sold, returned: {kinds:?}");
}

#[tokio::test]
async fn a_whole_sale_with_the_in_process_bus() {
    let app = TestApp::spawn().await;
    the_whole_sale(&app).await;
}

#[tokio::test]
async fn a_whole_sale_through_rabbitmq() {
    let (app, namespace) = crate::broker::app_on_broker(crate::broker::BROKER).await;
    the_whole_sale(&app).await;
    crate::broker::clean(&app, &namespace, &[]).await;
}
