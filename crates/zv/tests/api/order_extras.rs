//! Shipping methods, tags, notes, history, statistics, custom statuses and the project tax
//! rate on orders (order.md §2.1, §3.3, §8, §12).

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{service_pool, TestApp};
use crate::projects::{member, owner_with_project, Owner};

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

async fn order(app: &TestApp, owner: &Owner, product: i64, quantity: i64, method: &str) -> Value {
    let (status, order) = call(
        app,
        owner,
        Method::POST,
        "orders/",
        json!({
        "customer_email": "c@example.com", "shipping_method": method,
        "items": [{"product_id": product, "quantity": quantity}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    order
}

#[tokio::test]
async fn shipping_methods_tags_notes_statuses_and_statistics() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "wael", "Wael Wares").await;
    let pen = crate::carts::product_in_stock(&app, &owner, "Pen", "10.00", 50).await;

    // Seeded methods, read publicly; only admins write.
    let (status, methods, _) = app
        .get(&format!("{API}shipping-methods/"), Some(&owner.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{methods}");
    let codes: Vec<&str> = methods["results"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|m| m["code"].as_str())
        .collect();
    assert_eq!(codes, ["pickup", "standard", "express", "overnight"]);
    let req = app
        .client
        .get(app.url(&format!("{API}shipping-methods/")))
        .header("X-Project-ID", owner.project_id());
    let (status, public, _) = app.send(req).await;
    assert_eq!(
        (status, public["count"].clone()),
        (StatusCode::OK, json!(4))
    );
    let (_, editor) = member(&app, &owner, "edna", "editor").await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{API}shipping-methods/"),
            json!({"code": "drone", "cost": "1.00"}),
            &editor,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, courier) = call(&app, &owner, Method::POST, "shipping-methods/", json!({
        "code": "courier", "name": "Courier", "cost": "5.00", "estimated_days": 1, "free_over": "50.00"})).await;
    assert_eq!(status, StatusCode::CREATED, "{courier}");
    for body in [
        json!({"code": "courier"}),
        json!({"code": "x", "cost": "-1"}),
        json!({"code": "y", "estimated_days": -2}),
    ] {
        let (status, body) = call(&app, &owner, Method::POST, "shipping-methods/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // Free over 50, else its cost; an inactive method is refused.
    let big = order(&app, &owner, pen, 6, "courier").await;
    assert_eq!(
        (big["shipping_cost"].clone(), big["total"].clone()),
        (json!("0.00"), json!("60.00"))
    );
    let small = order(&app, &owner, pen, 2, "courier").await;
    assert_eq!(
        (small["shipping_cost"].clone(), small["total"].clone()),
        (json!("5.00"), json!("25.00"))
    );
    call(
        &app,
        &owner,
        Method::PATCH,
        &format!("shipping-methods/{}/", courier["id"]),
        json!({"is_active": false}),
    )
    .await;
    let (status, body) = call(
        &app,
        &owner,
        Method::POST,
        "orders/",
        json!({"shipping_method": "courier",
        "items": [{"product_id": pen, "quantity": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let id = small["id"].as_i64().expect("id");

    // Tags.
    let (status, vip) = call(
        &app,
        &owner,
        Method::POST,
        "tags/",
        json!({"name": "VIP", "color": "#FF0000"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{vip}");
    for body in [
        json!({"name": "vip"}),
        json!({"name": "Red", "color": "red"}),
    ] {
        let (status, body) = call(&app, &owner, Method::POST, "tags/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, tagged) = call(
        &app,
        &owner,
        Method::POST,
        &format!("orders/{id}/tags/"),
        json!({"tag_ids": [vip["id"]]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{tagged}");
    assert_eq!(tagged["tags"][0]["name"], "VIP");
    let (status, _) = call(
        &app,
        &owner,
        Method::POST,
        &format!("orders/{id}/tags/"),
        json!({"tag_ids": [999_999]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, read, _) = app
        .get(&format!("{API}orders/{id}/"), Some(&owner.access))
        .await;
    assert_eq!(read["tags"][0]["color"], "#FF0000");

    // Notes and history.
    let (status, note) = call(
        &app,
        &owner,
        Method::POST,
        &format!("orders/{id}/notes/"),
        json!({"note": "Gift wrap", "is_internal": true}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(
        (
            note["created_by_display"].clone(),
            note["is_internal"].clone()
        ),
        (json!("wael@example.com"), json!(true))
    );
    for body in [
        json!({"note": ""}),
        json!({"note": "x".repeat(5001)}),
        json!({"note": "ok", "is_internal": "yes"}),
    ] {
        let (status, _) = call(
            &app,
            &owner,
            Method::POST,
            &format!("orders/{id}/notes/"),
            body,
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (_, notes, _) = app
        .get(&format!("{API}orders/{id}/notes/"), Some(&owner.access))
        .await;
    assert_eq!(notes["count"], 1);
    let (_, history, _) = app
        .get(&format!("{API}orders/{id}/history/"), Some(&owner.access))
        .await;
    let events: Vec<&str> = history["results"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|h| h["event"].as_str())
        .collect();
    assert_eq!(events, ["placed", "note"]);

    // Custom statuses label a main status; the main status moves through the status route.
    let (_, statuses, _) = app
        .get(&format!("{API}statuses/"), Some(&owner.access))
        .await;
    assert_eq!(statuses["count"], 9);
    let confirmed = statuses["results"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|s| s["main_status"] == "confirmed")
        .cloned()
        .expect("confirmed");
    let (status, body) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("orders/{id}/"),
        json!({"status_id": confirmed["id"]}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_transition")
        )
    );
    let (status, moved) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("orders/{id}/status/"),
        json!({"status_id": confirmed["id"]}),
    )
    .await;
    assert_eq!(
        (status, moved["status"].clone()),
        (StatusCode::OK, json!("confirmed")),
        "{moved}"
    );
    let (_, packed) = call(
        &app,
        &owner,
        Method::POST,
        "statuses/",
        json!({"name": "Packed", "main_status": "confirmed", "order": 25}),
    )
    .await;
    let (status, labelled) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("orders/{id}/"),
        json!({"status_id": packed["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{labelled}");
    assert_eq!(labelled["status_detail"]["name"], "Packed");

    // GraphQL: the custom status, tags and the main status side by side.
    let (status, gql, _) = app.post("/graphql/order", json!({"query": format!(
        "{{ order(id: {id}) {{ mainStatus status {{ name }} tags payments {{ id }} }} statuses(limit: 3) {{ name }} }}")}),
        Some(&owner.access)).await;
    assert_eq!(status, StatusCode::OK, "{gql}");
    assert!(gql["errors"].is_null(), "{gql}");
    assert_eq!(gql["data"]["order"]["mainStatus"], "confirmed");
    assert_eq!(gql["data"]["order"]["status"]["name"], "Packed");
    assert_eq!(gql["data"]["order"]["tags"][0]["name"], "VIP");
    let (_, gql, _) = app
        .post(
            "/graphql/order",
            json!({"query": format!(
        "mutation {{ removeOrderTags(id: {id}, relatedIds: [{}]) }}", vip["id"])}),
            Some(&owner.access),
        )
        .await;
    assert_eq!(gql["data"]["removeOrderTags"], true, "{gql}");

    // Statistics over the period.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (status, stats, _) = app
        .get(
            &format!("{API}orders/statistics/?date_from={today}&date_to={today}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["total_orders"], 2);
    assert_eq!(stats["pending_orders"], 1);
    assert_eq!(stats["confirmed_orders"], 1);
    assert_eq!(stats["most_popular_products"][0]["total_sold"], 8);
    let (status, _, _) = app
        .get(
            &format!("{API}orders/statistics/?date_from=yesterday"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // An order is named by its number too, in the 0a47ee5 3-digit form as well.
    let number = small["order_number"].as_str().expect("number").to_owned();
    let (status, by_number, _) = app
        .get(&format!("{API}orders/{number}/"), Some(&owner.access))
        .await;
    assert_eq!(
        (status, by_number["id"].clone()),
        (StatusCode::OK, json!(id))
    );
    let year = &number[4..8];
    let short = format!(
        "ORD-{year}-{:03}",
        number[9..].parse::<i64>().expect("digits")
    );
    let (status, by_short, _) = app
        .get(&format!("{API}orders/{short}/"), Some(&owner.access))
        .await;
    assert_eq!(
        (status, by_short["id"].clone()),
        (StatusCode::OK, json!(id)),
        "{short}"
    );
    let (status, _, _) = app
        .get(
            &format!("{API}orders/ORD-1999-999999/"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The 0a47ee5 prefix reaches the same orders.
    let (status, same, _) = app
        .get(
            &format!("{API}online_orders/orders/{id}/"),
            Some(&owner.access),
        )
        .await;
    assert_eq!((status, same["id"].clone()), (StatusCode::OK, json!(id)));
}

#[tokio::test]
async fn the_project_tax_rate_applies_to_the_discounted_subtotal() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "tala", "Tala Tea").await;
    let tea = crate::carts::product_in_stock(&app, &owner, "Tea", "12.50", 20).await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/{}/settings/", owner.username()),
            json!({"key": "tax_rate", "value": "8"}),
            &owner.access,
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let pool = service_pool(&app.config(), "order").await;
    for _ in 0..200 {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM order_settings WHERE key = 'tax_rate'")
                .fetch_one(&pool)
                .await
                .expect("count");
        if n == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // 3 × 12.50 = 37.50, tax 8 % = 3.00, shipping 9.99 untaxed.
    let placed = order(&app, &owner, tea, 3, "standard").await;
    assert_eq!(
        (
            placed["subtotal"].clone(),
            placed["tax_amount"].clone(),
            placed["total"].clone()
        ),
        (json!("37.50"), json!("3.00"), json!("50.49"))
    );
    assert_eq!(placed["items"][0]["tax_amount"], "3.00");
    // Manual discounts need the override permission; the tax follows the discount.
    let (status, discounted) = call(
        &app,
        &owner,
        Method::POST,
        "orders/",
        json!({"discount_amount": "7.50",
        "items": [{"product_id": tea, "quantity": 3}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{discounted}");
    assert_eq!(
        (
            discounted["tax_amount"].clone(),
            discounted["total"].clone()
        ),
        (json!("2.40"), json!("32.40"))
    );
    let (_, clerk) = member(&app, &owner, "kamal", "editor").await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{API}orders/"),
            json!({"discount_amount": "1.00",
        "items": [{"product_id": tea, "quantity": 1}]}),
            &clerk,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

async fn reserved(app: &TestApp, owner: &Owner, product: i64) -> i64 {
    let (_, rows, _) = app
        .get(
            &format!("/api/v1/inventory/stock/?product_id={product}"),
            Some(&owner.access),
        )
        .await;
    rows["results"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["reserved_quantity"].as_i64().unwrap_or(0))
        .sum()
}

#[tokio::test]
async fn lines_of_a_pending_order_move_its_reservation_and_totals() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "hadi", "Hadi Homeware").await;
    let cup = crate::carts::product_in_stock(&app, &owner, "Cup", "5.00", 10).await;
    let plate = crate::carts::product_in_stock(&app, &owner, "Plate", "8.00", 3).await;
    let placed = order(&app, &owner, cup, 2, "pickup").await;
    let id = placed["id"].as_i64().expect("id");
    let items = format!("orders/{id}/items/");

    // The same product and price joins its line; the reservation follows.
    let (status, line) = call(
        &app,
        &owner,
        Method::POST,
        &items,
        json!({"product_id": cup, "quantity": 3}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    assert_eq!(
        (line["quantity"].clone(), line["order_total"].clone()),
        (json!(5), json!("25.00"))
    );
    assert_eq!(reserved(&app, &owner, cup).await, 5);
    // Short stock changes nothing.
    let (status, short) = call(
        &app,
        &owner,
        Method::POST,
        &items,
        json!({"product_id": plate, "quantity": 4}),
    )
    .await;
    assert_eq!(
        (status, short["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("insufficient_stock")
        ),
        "{short}"
    );
    assert_eq!(reserved(&app, &owner, plate).await, 0);
    let (status, plates) = call(
        &app,
        &owner,
        Method::POST,
        &items,
        json!({"product_id": plate, "quantity": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{plates}");
    assert_eq!(plates["order_total"], "41.00");
    assert_eq!(reserved(&app, &owner, plate).await, 2);

    // Change and remove.
    let cup_line = line["id"].as_i64().expect("line");
    let (status, changed) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("{items}{cup_line}/"),
        json!({"quantity": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (changed["total"].clone(), changed["order_total"].clone()),
        (json!("5.00"), json!("21.00"))
    );
    assert_eq!(reserved(&app, &owner, cup).await, 1);
    for (body, expected) in [
        (json!({"quantity": 0}), StatusCode::BAD_REQUEST),
        (json!({"quantity": 10_001}), StatusCode::BAD_REQUEST),
    ] {
        let (status, _) = call(
            &app,
            &owner,
            Method::PATCH,
            &format!("{items}{cup_line}/"),
            body,
        )
        .await;
        assert_eq!(status, expected);
    }
    let (status, _) = call(
        &app,
        &owner,
        Method::PATCH,
        &format!("{items}999999/"),
        json!({"quantity": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(
        &app,
        &owner,
        Method::DELETE,
        &format!("{items}{}/", plates["id"]),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(reserved(&app, &owner, plate).await, 0);
    let (_, now, _) = app
        .get(&format!("{API}orders/{id}/"), Some(&owner.access))
        .await;
    assert_eq!(
        (now["total"].clone(), now["items_count"].clone()),
        (json!("5.00"), json!(1))
    );
    let (_, flat, _) = app
        .get(
            &format!("{API}order-products/?order={id}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(flat["count"], 1);
    let (status, body) = call(
        &app,
        &owner,
        Method::POST,
        "order-products/",
        json!({"order_id": id}),
    )
    .await;
    assert!(status.is_client_error(), "{status} {body}");
    let (_, gql, _) = app.post("/graphql/order", json!({"query": format!("{{ order(id: {id}) {{ orderProducts {{ quantity unitPrice }} }} }}")}), Some(&owner.access)).await;
    assert_eq!(
        gql["data"]["order"]["orderProducts"][0]["quantity"], 1,
        "{gql}"
    );

    // Billing follows on the unpaid invoice.
    for _ in 0..200 {
        let (_, inv, _) = app
            .get(
                &format!("/api/v1/billing/m/invoices/?order={id}"),
                Some(&owner.access),
            )
            .await;
        if inv["results"][0]["total_amount"] == "5.00" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, inv, _) = app
        .get(
            &format!("/api/v1/billing/m/invoices/?order={id}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(inv["results"][0]["total_amount"], "5.00", "{inv}");
    assert_eq!(inv["results"][0]["items"].as_array().map(Vec::len), Some(1));

    // Once confirmed, the lines are fixed.
    call(
        &app,
        &owner,
        Method::PATCH,
        &format!("orders/{id}/status/"),
        json!({"status": "confirmed"}),
    )
    .await;
    let (status, body) = call(
        &app,
        &owner,
        Method::POST,
        &items,
        json!({"product_id": cup}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("order_not_editable")
        )
    );
}
