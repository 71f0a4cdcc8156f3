//! Order payments, refunds and returns (order.md §6, §7, §9): payments checked against what is
//! due and booked by billing once, refunds asked once per key, returns that restock once and
//! refund what was charged.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{read, stock_of, until, CrossTenant, TenantResource, TestApp};
use crate::projects::{owner_with_project, Owner};

const API: &str = "/api/v1/order/";

async fn call(
    app: &TestApp,
    owner: &Owner,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.call(method, &format!("{API}{path}"), body, &owner.access)
        .await
}

/// A placed order (pickup, so it ships without an address) and its invoice id.
async fn placed(app: &TestApp, owner: &Owner, product: i64, quantity: i64) -> (Value, i64) {
    let (status, order) = call(app, owner, Method::POST, "orders/", json!({
        "customer_email": "buyer@example.com", "shipping_method": "pickup", "payment_method": "cash",
        "items": [{"product_id": product, "quantity": quantity}]})).await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    let path = format!("{API}orders/{}/", order["id"]);
    let with_invoice = until(app, owner, &path, "the invoice reaches the order", |o| {
        o["invoice_id"].is_i64()
    })
    .await;
    (order, with_invoice["invoice_id"].as_i64().expect("invoice"))
}

#[tokio::test]
async fn a_shipped_order_is_returned_restocked_and_refunded_once() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "reem", "Reem Rooms").await;
    let lamp = crate::carts::product_in_stock(&app, &owner, "Lamp", "25.00", 4).await;
    let (order, invoice) = placed(&app, &owner, lamp, 2).await;
    let id = order["id"].as_i64().expect("id");
    let order_path = format!("{API}orders/{id}/");

    // Not shipped yet: nothing to return.
    let (status, body) = call(
        &app,
        &owner,
        Method::POST,
        "order-returns/",
        json!({"order": id}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("order_not_returnable")
        )
    );

    // Paid in billing, then shipped.
    let (status, paid) = app
        .call(
            Method::POST,
            &format!("/api/v1/billing/m/invoices/{invoice}/payments/"),
            json!({"method": "cash"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    until(&app, &owner, &order_path, "the order is paid", |o| {
        o["payment_status"] == "paid"
    })
    .await;
    let (status, shipped) = call(
        &app,
        &owner,
        Method::POST,
        &format!("orders/{id}/fulfillments/"),
        json!({"carrier": "Aramex", "tracking_number": "AR1"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{shipped}");
    assert_eq!(stock_of(&app, &owner, lamp).await.0, 2);

    // More than was shipped, more money than was paid, foreign lines: refused, nothing made.
    let item = read(&app, &owner, &order_path).await["items"][0]["id"].clone();
    for (body, code) in [
        (
            json!({"order": id, "return_type": "partial", "items": [{"order_item_id": item, "quantity": 3}]}),
            "return_quantity_exceeded",
        ),
        (
            json!({"order": id, "refund_amount": "60.00"}),
            "amount_exceeds_refundable",
        ),
    ] {
        let (status, refused) = call(&app, &owner, Method::POST, "order-returns/", body).await;
        assert_eq!(
            (status, refused["code"].clone()),
            (StatusCode::UNPROCESSABLE_ENTITY, json!(code)),
            "{refused}"
        );
    }
    for body in [
        json!({"order": id, "return_type": "partial", "items": [{"order_item_id": 999_999}]}),
        json!({"order": id, "return_type": "partial", "items": [{"order_item_id": item, "quantity": 0}]}),
        json!({"order": id, "return_type": "partial", "items": [{"order_item_id": item, "rating": 9}]}),
        json!({"order": id, "return_type": "gift"}),
        json!({"order": id, "refund_amount": "-1"}),
        json!({"order": id, "reason": "NOT_A_REASON"}),
    ] {
        let (status, refused) = call(&app, &owner, Method::POST, "order-returns/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    }
    assert_eq!(
        read(&app, &owner, &format!("{API}order-returns/")).await["count"],
        0
    );

    // One lamp back: the charged share is refunded.
    let (status, first) = call(&app, &owner, Method::POST, "order-returns/", json!({
        "order": order["order_number"], "return_type": "partial", "reason": "DAMAGED", "notes": "Cracked shade",
        "items": [{"order_item_id": item, "quantity": 1, "rating": 2}]})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(
        (
            first["status"].clone(),
            first["refund_amount"].clone(),
            first["reason"]["reason"].clone()
        ),
        (json!("pending"), json!("25.00"), json!("DAMAGED"))
    );
    assert!(first["return_number"]
        .as_str()
        .expect("number")
        .starts_with("RET-"));
    let (status, refused) = call(
        &app,
        &owner,
        Method::POST,
        "order-returns/",
        json!({
        "order": id, "return_type": "partial", "items": [{"order_item_id": item, "quantity": 2}]}),
    )
    .await;
    assert_eq!(
        (status, refused["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("return_quantity_exceeded")
        )
    );
    let rid = first["id"].as_i64().expect("id");
    let (status, approved) = call(
        &app,
        &owner,
        Method::POST,
        &format!("order-returns/{rid}/approve/"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, approved["status"].clone()),
        (StatusCode::OK, json!("processing"))
    );
    // Completed three times at once: restocked once, refunded once.
    let complete = format!("order-returns/{rid}/complete/");
    let done = futures::future::join_all(
        (0..3).map(|_| call(&app, &owner, Method::POST, &complete, json!({}))),
    )
    .await;
    for (status, body) in &done {
        assert_eq!(
            (*status, body["status"].clone()),
            (StatusCode::OK, json!("completed")),
            "{body}"
        );
    }
    assert_eq!(done[0].1["restocked"], true);
    assert_eq!(stock_of(&app, &owner, lamp).await.0, 3);
    let now = read(&app, &owner, &order_path).await;
    assert_eq!(
        (now["status"].clone(), now["fulfillment_status"].clone()),
        (json!("shipped"), json!("partially_returned"))
    );
    assert_eq!(now["items"][0]["returned_quantity"], 1);
    let (status, body) = call(
        &app,
        &owner,
        Method::POST,
        &format!("order-returns/{rid}/cancel/"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_transition")
        )
    );

    // Billing gives the money back once; the order follows.
    let invoice_path = format!("/api/v1/billing/m/invoices/{invoice}/");
    until(
        &app,
        &owner,
        &invoice_path,
        "billing books the refund",
        |i| i["amount_refunded"] == "25.00",
    )
    .await;
    until(
        &app,
        &owner,
        &order_path,
        "the order hears of the refund",
        |o| o["amount_refunded"] == "25.00" && o["payment_status"] == "partially_refunded",
    )
    .await;

    // The rest comes back: the order is returned, the stock is whole, everything refunded.
    let (status, rest) = call(
        &app,
        &owner,
        Method::POST,
        "order-returns/",
        json!({"order": id}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rest}");
    assert_eq!(
        (rest["return_type"].clone(), rest["refund_amount"].clone()),
        (json!("full"), json!("25.00"))
    );
    assert_eq!(rest["items"][0]["quantity"], 1);
    let (status, _) = call(
        &app,
        &owner,
        Method::POST,
        &format!("order-returns/{}/complete/", rest["id"]),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let now = read(&app, &owner, &order_path).await;
    assert_eq!(
        (now["status"].clone(), now["fulfillment_status"].clone()),
        (json!("returned"), json!("returned"))
    );
    assert_eq!(stock_of(&app, &owner, lamp).await.0, 4);
    until(
        &app,
        &owner,
        &invoice_path,
        "billing books the second refund",
        |i| i["amount_refunded"] == "50.00",
    )
    .await;
    let (status, body) = call(
        &app,
        &owner,
        Method::POST,
        "order-returns/",
        json!({"order": id}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("order_not_returnable")
        )
    );
    let history = now["status_history"].as_array().expect("history");
    assert_eq!(
        history
            .iter()
            .filter(|h| h["event"] == "return_completed")
            .count(),
        2
    );
    assert_eq!(
        read(
            &app,
            &owner,
            &format!("{API}return-items/?order_return={rid}")
        )
        .await["count"],
        1
    );
    assert_eq!(
        read(&app, &owner, &format!("{API}return-reasons/")).await["count"],
        5
    );
}

#[tokio::test]
async fn payments_are_held_to_what_is_due_and_billing_books_them_once() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "sami", "Sami Sports").await;
    let ball = crate::carts::product_in_stock(&app, &owner, "Ball", "10.00", 10).await;
    let (order, invoice) = placed(&app, &owner, ball, 2).await;
    let id = order["id"].as_i64().expect("id");
    let order_path = format!("{API}orders/{id}/");
    let pay = |body: Value| {
        let app = &app;
        let owner = &owner;
        async move {
            call(
                app,
                owner,
                Method::POST,
                &format!("orders/{id}/payments/"),
                body,
            )
            .await
        }
    };

    // Hostile and excessive payments change nothing.
    for body in [
        json!({"payment_method": "cash", "amount": "-1"}),
        json!({"payment_method": "cash", "amount": "ten"}),
        json!({"payment_method": "bitcoin", "amount": "1"}),
        json!({"payment_method": "cash"}),
    ] {
        let (status, refused) = pay(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    }
    let (status, refused) =
        pay(json!({"payment_method": "cash", "amount": "25.00", "status": "completed"})).await;
    assert_eq!(
        (status, refused["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("amount_exceeds_due")
        )
    );
    assert_eq!(
        read(&app, &owner, &format!("{API}orders/{id}/payments/")).await["count"],
        0
    );

    // A pending payment completes later; completed ones are immutable.
    let (status, first) = pay(json!({"payment_method": "cash", "amount": "5.00"})).await;
    assert_eq!(
        (status, first["status"].clone()),
        (StatusCode::CREATED, json!("pending")),
        "{first}"
    );
    let pid = first["id"].as_i64().expect("id");
    let (status, done) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("payments/{pid}/"),
        json!({"status": "completed"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["billing_transaction_id"], format!("ORD-{id}-{pid}"));
    assert!(done["payment_date"].is_string());
    let (status, body) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("payments/{pid}/"),
        json!({"amount": "6.00"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("payment_immutable"))
    );
    let (status, _) = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("payments/{pid}/"),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Five clerks take the remaining 15.00 at once: one is accepted.
    let answers = futures::future::join_all((0..5).map(|_| {
        pay(json!({"payment_method": "credit_card", "amount": "15.00", "status": "completed"}))
    }))
    .await;
    let accepted = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(accepted, 1, "{answers:?}");
    assert!(answers
        .iter()
        .all(|(s, b)| *s == StatusCode::CREATED || b["code"] == "amount_exceeds_due"));

    // Billing books both on the invoice, once; the order is paid and confirmed.
    let invoice_path = format!("/api/v1/billing/m/invoices/{invoice}/");
    until(
        &app,
        &owner,
        &invoice_path,
        "billing books the payments",
        |i| i["amount_paid"] == "20.00",
    )
    .await;
    let now = until(&app, &owner, &order_path, "the order is paid", |o| {
        o["payment_status"] == "paid" && o["status"] == "confirmed"
    })
    .await;
    assert_eq!(now["amount_due"], "0.00");
    let (status, body) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("orders/{id}/payment/"),
        json!({"payment_status": "pending"}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("payment_status_derived")
        )
    );
    let (status, body) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("orders/{id}/payment/"),
        json!({"payment_status": "paid"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "paid again is a no-op: {body}");
    let payments = read(&app, &owner, &format!("{API}payments/?order={id}")).await;
    assert_eq!(payments["count"], 2);

    // Cancelled with a refund: billing gives back all of it, once, however often it is asked.
    for _ in 0..2 {
        let (status, cancelled) = call(
            &app,
            &owner,
            Method::POST,
            &format!("orders/{id}/cancel/"),
            json!({"reason": "Customer changed their mind", "refund": true}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{cancelled}");
        assert_eq!(
            (
                cancelled["refund_processed"].clone(),
                cancelled["refund_amount"].clone()
            ),
            (json!(true), json!("20.00"))
        );
    }
    until(
        &app,
        &owner,
        &invoice_path,
        "billing books the refund",
        |i| i["amount_refunded"] == "20.00",
    )
    .await;
    until(&app, &owner, &order_path, "the order is refunded", |o| {
        o["payment_status"] == "refunded"
    })
    .await;
    assert_eq!(stock_of(&app, &owner, ball).await.0, 10);
}

#[tokio::test]
async fn payments_and_returns_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "yara", "Yara Yarns").await;
    let b = owner_with_project(&app, "zaid", "Zaid Zips").await;
    let wool = crate::carts::product_in_stock(&app, &a, "Wool", "4.00", 5).await;
    let (order, _) = placed(&app, &a, wool, 1).await;
    let id = order["id"].as_i64().expect("id");
    let (_, payment) = call(
        &app,
        &a,
        Method::POST,
        &format!("orders/{id}/payments/"),
        json!({"payment_method": "cash", "amount": "1.00"}),
    )
    .await;
    let (status, body) = call(
        &app,
        &a,
        Method::PATCH,
        &format!("orders/{id}/status/"),
        json!({"status": "confirmed"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &app,
        &a,
        Method::POST,
        &format!("orders/{id}/fulfillments/"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, ret) = call(
        &app,
        &a,
        Method::POST,
        "order-returns/",
        json!({"order": id, "refund_method": "none"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ret}");
    let reasons = read(&app, &a, &format!("{API}return-reasons/")).await;
    for (name, path, row, update) in [
        (
            "payments",
            "payments",
            payment.clone(),
            json!({"notes": "mine"}),
        ),
        (
            "order-returns",
            "order-returns",
            ret.clone(),
            json!({"note": "mine"}),
        ),
        (
            "return-reasons",
            "return-reasons",
            reasons["results"][0].clone(),
            json!({"name": "Mine"}),
        ),
    ] {
        CrossTenant {
            app: &app,
            owner: &a.access,
            owner_item: format!("{API}{path}/{}/", row["id"]),
            outsider: &b.access,
            project_a: a.project_id(),
        }
        .check(&TenantResource {
            name,
            lists: vec![format!("{API}{path}/")],
            id: row["id"].clone(),
            items: vec![format!("{API}{path}/{}/", row["id"])],
            readable: true,
            public_read: false,
            update: Some((Method::PATCH, update)),
            delete: false,
            restore: None,
        })
        .await;
    }
    for path in [
        format!("orders/{id}/payments/"),
        format!("order-returns/{}/complete/", ret["id"]),
    ] {
        let (status, _) = call(
            &app,
            &b,
            Method::POST,
            &path,
            json!({"payment_method": "cash", "amount": "1.00"}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = call(
        &app,
        &b,
        Method::POST,
        "order-returns/",
        json!({"order": id}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
