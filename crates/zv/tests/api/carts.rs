//! Carts and checkout (order.md §11): signed-in customers who are not project members, guests
//! with a token, live prices and stock, coupons, merge, expiry, and checkout through the
//! placement saga (one order per cart, however often it is retried).

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{service_pool, TestApp};
use crate::inventory::create;
use crate::projects::{owner_with_project, Owner};

const CART: &str = "/api/v1/cart/carts/";

/// Who calls a customer route.
#[derive(Clone, Copy)]
pub enum As<'a> {
    User(&'a str),
    Guest(Option<&'a str>),
}

pub async fn shop(
    app: &TestApp,
    project: i64,
    who: As<'_>,
    method: Method,
    path: &str,
    body: Value,
    headers: &[(&str, String)],
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("X-Project-ID", project.to_string());
    match who {
        As::User(token) => req = req.bearer_auth(token),
        As::Guest(Some(token)) => req = req.header("X-Guest-Token", token),
        As::Guest(None) => {}
    }
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    if !body.is_null() {
        req = req.json(&body);
    }
    let (status, body, _) = app.send(req).await;
    (status, body)
}

/// A product at `price` with `stock` units, once the catalogue has heard of the stock.
pub async fn product_in_stock(
    app: &TestApp,
    owner: &Owner,
    name: &str,
    price: &str,
    stock: i64,
) -> i64 {
    let (status, made) = app
        .call(
            Method::POST,
            "/api/v1/product/products/",
            json!({"name": name, "price": price, "status": "active", "sku": name.to_uppercase()}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_i64().expect("id");
    if stock > 0 {
        create(
            app,
            owner,
            "stock/",
            json!({"product_id": id, "quantity": stock}),
        )
        .await;
    }
    for _ in 0..200 {
        let (_, p, _) = app
            .get(
                &format!("/api/v1/product/products/{id}/"),
                Some(&owner.access),
            )
            .await;
        if p["stock_quantity"].as_i64() == Some(stock) {
            return id;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the catalogue never showed the stock of {name}");
}

/// A signed-in user who is not a member of any project.
pub async fn customer(app: &TestApp, username: &str) -> (i64, String) {
    let id = app.user(username, false).await;
    let (access, _) = app.login(username).await;
    (id, access)
}

pub fn address() -> Value {
    json!({"first_name": "Lina", "address_line1": "4 Cedar Rd", "city": "Beirut", "country": "LB"})
}

#[tokio::test]
async fn a_customer_fills_a_cart_and_checks_out_once() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "karim", "Karim Clothing").await;
    let project = owner.project_id();
    let shirt = product_in_stock(&app, &owner, "Shirt", "20.00", 5).await;
    let mug = product_in_stock(&app, &owner, "Mug", "8.50", 3).await;
    let (lina_id, lina) = customer(&app, "lina").await;
    let me = As::User(&lina);

    // One active cart per customer: the second open answers the first.
    let (status, cart) = shop(&app, project, me, Method::POST, CART, json!({}), &[]).await;
    assert_eq!(status, StatusCode::CREATED, "{cart}");
    assert_eq!(cart["customer"]["id"], lina_id);
    assert_eq!(cart["is_guest"], false);
    assert_eq!(cart["currency"], "USD");
    let id = cart["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("cart_") && id.len() == 37, "{id}");
    let (status, again) = shop(&app, project, me, Method::POST, CART, json!({}), &[]).await;
    assert_eq!((status, again["id"].clone()), (StatusCode::OK, json!(id)));
    let c = format!("{CART}current/");

    // Lines: the same product twice is one line; prices come from the catalogue.
    let (status, line) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}items/"),
        json!({"product_id": shirt, "quantity": 2, "unit_price": "0.01"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{line}");
    assert_eq!(
        (
            line["unit_price"].clone(),
            line["total_price"].clone(),
            line["cart_totals"]["subtotal"].clone()
        ),
        (json!("20.00"), json!("40.00"), json!("40.00"))
    );
    assert_eq!(line["product"]["sku"], "SHIRT");
    let (_, line) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}items/"),
        json!({"product_id": shirt}),
        &[],
    )
    .await;
    assert_eq!(line["quantity"], 3);
    let (status, short) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}items/"),
        json!({"product_id": mug, "quantity": 4}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{short}");
    assert_eq!(short["code"], "insufficient_stock");
    assert_eq!(short["details"], json!({"requested": 4, "available": 3}));
    let (status, mug_line) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}items/"),
        json!({"product_id": mug, "quantity": 1}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{mug_line}");
    let mug_item = mug_line["id"].as_str().expect("item").to_owned();
    let (status, changed) = shop(
        &app,
        project,
        me,
        Method::PATCH,
        &format!("{c}items/{mug_item}/"),
        json!({"quantity": 2}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            changed["previous_quantity"].clone(),
            changed["quantity"].clone()
        ),
        (json!(1), json!(2))
    );
    assert_eq!(changed["cart_totals"]["subtotal"], "77.00");
    assert_eq!(changed["cart_totals"]["item_count"], 5);

    // Hostile lines change nothing.
    for body in [
        json!({"product_id": mug, "quantity": 0}),
        json!({"product_id": mug, "quantity": -1}),
        json!({"product_id": mug, "quantity": 10000}),
        json!({"product_id": "mug"}),
        json!({"product_id": mug, "variant_id": "x"}),
    ] {
        let (status, body) = shop(
            &app,
            project,
            me,
            Method::POST,
            &format!("{c}items/"),
            body,
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, body) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}items/"),
        json!({"product_id": 999_999}),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("product_unavailable")
        )
    );
    let (status, _) = shop(
        &app,
        project,
        me,
        Method::PATCH,
        &format!("{c}items/item_nope/"),
        json!({"quantity": 1}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Shipping, with the version guard.
    let (status, shipping) = shop(
        &app,
        project,
        me,
        Method::PUT,
        &format!("{c}shipping_address/"),
        address(),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{shipping}");
    assert_eq!(
        shipping["available_shipping_methods"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    let (status, bad) = shop(
        &app,
        project,
        me,
        Method::PUT,
        &format!("{c}shipping_address/"),
        json!({"city": "Beirut"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let (_, now) = shop(&app, project, me, Method::GET, &c, Value::Null, &[]).await;
    let version = now["version"].as_i64().expect("version");
    let (status, stale) = shop(
        &app,
        project,
        me,
        Method::PUT,
        &format!("{c}shipping_method/"),
        json!({"method": "standard"}),
        &[("If-Match", (version - 1).to_string())],
    )
    .await;
    assert_eq!(
        (status, stale["code"].clone()),
        (StatusCode::CONFLICT, json!("stale_version"))
    );
    let (status, method) = shop(
        &app,
        project,
        me,
        Method::PUT,
        &format!("{c}shipping_method/"),
        json!({"method": "standard"}),
        &[("If-Match", version.to_string())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{method}");
    assert_eq!(method["shipping_cost"], "9.99");
    assert_eq!(method["cart_totals"]["total"], "86.99");

    // Validation warns of low stock but lets it through.
    let (status, checked) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}validate/"),
        json!({}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{checked}");
    assert_eq!(checked["is_valid"], true);
    assert!(
        checked["warnings"]
            .as_array()
            .expect("warnings")
            .iter()
            .any(|w| w["code"] == "low_stock"),
        "{checked}"
    );

    // Checkout, retried: one order, the same answer.
    let (status, done) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}checkout/"),
        json!({"payment_method": "cash_on_delivery", "notes": "Ring twice"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    assert_eq!(done["status"], "pending");
    assert_eq!(done["payment_required"], false);
    assert_eq!(done["payment_methods"], json!([]));
    assert_eq!(done["cart_id"], json!(id));
    assert!(done["order_id"]
        .as_str()
        .expect("number")
        .starts_with("ORD-"));
    let (status, replay) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}{id}/checkout/"),
        json!({"payment_method": "cash_on_delivery"}),
        &[],
    )
    .await;
    assert_eq!((status, &replay), (StatusCode::OK, &done));

    let (_, order, _) = app
        .get(
            &format!("/api/v1/order/orders/{}/", done["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (
            order["source"].clone(),
            order["customer_id"].clone(),
            order["total"].clone(),
            order["shipping_cost"].clone(),
            order["reference"].clone(),
            order["customer_email"].clone()
        ),
        (
            json!("checkout"),
            json!(lina_id),
            json!("86.99"),
            json!("9.99"),
            json!(format!("cart:{id}")),
            json!("lina@example.com")
        )
    );
    assert_eq!(order["items"].as_array().map(Vec::len), Some(2));
    let (_, orders, _) = app.get("/api/v1/order/orders/", Some(&owner.access)).await;
    assert_eq!(orders["count"], 1);
    let (_, rows, _) = app
        .get(
            &format!("/api/v1/inventory/stock/?product_id={shirt}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(rows["results"][0]["reserved_quantity"], 3);

    // The converted cart takes no more writes; `current` starts anew.
    let (status, body) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}{id}/items/"),
        json!({"product_id": mug}),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("cart_converted"))
    );
    let (_, fresh) = shop(&app, project, me, Method::GET, &c, Value::Null, &[]).await;
    assert_ne!(fresh["id"], json!(id));
    assert_eq!(fresh["items"], json!([]));

    // Another customer sees none of it; staff read any cart and the abandoned list.
    let (_, other) = customer(&app, "nadim").await;
    let (status, _) = shop(
        &app,
        project,
        As::User(&other),
        Method::GET,
        &format!("{CART}{id}/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = shop(
        &app,
        project,
        As::User(&other),
        Method::POST,
        &format!("{CART}{id}/checkout/"),
        json!({"payment_method": "cash"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, read) = shop(
        &app,
        project,
        As::User(&owner.access),
        Method::GET,
        &format!("{CART}{id}/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(
        (status, read["status"].clone()),
        (StatusCode::OK, json!("converted"))
    );
    let (status, _) = shop(
        &app,
        project,
        As::User(&other),
        Method::GET,
        &format!("{CART}abandoned/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The customer reads their own orders (not the shop's internals) and may cancel a pending one.
    let order_id = done["id"].clone();
    let (status, mine) = shop(
        &app,
        project,
        me,
        Method::GET,
        "/api/v1/order/orders/",
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(
        (status, mine["count"].clone()),
        (StatusCode::OK, json!(1)),
        "{mine}"
    );
    assert!(mine["results"][0].get("reservation_id").is_none(), "{mine}");
    let (status, own) = shop(
        &app,
        project,
        me,
        Method::GET,
        &format!(
            "/api/v1/order/orders/{}/",
            done["order_id"].as_str().unwrap_or_default()
        ),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(
        (status, own["id"].clone()),
        (StatusCode::OK, order_id.clone()),
        "{own}"
    );
    let (status, theirs) = shop(
        &app,
        project,
        As::User(&other),
        Method::GET,
        "/api/v1/order/orders/",
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(
        (status, theirs["count"].clone()),
        (StatusCode::OK, json!(0))
    );
    let (status, _) = shop(
        &app,
        project,
        As::User(&other),
        Method::GET,
        &format!("/api/v1/order/orders/{order_id}/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = shop(
        &app,
        project,
        As::User(&other),
        Method::POST,
        &format!("/api/v1/order/orders/{order_id}/cancel/"),
        json!({"reason": "not mine"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = shop(
        &app,
        project,
        me,
        Method::GET,
        "/api/v1/order/order-returns/",
        Value::Null,
        &[],
    )
    .await;
    assert!(
        matches!(status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
        "{status}"
    );
    let (status, cancelled) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("/api/v1/order/orders/{order_id}/cancel/"),
        json!({"reason": "Found it cheaper"}),
        &[],
    )
    .await;
    assert_eq!(
        (status, cancelled["status"].clone()),
        (StatusCode::OK, json!("cancelled")),
        "{cancelled}"
    );
    let (_, rows, _) = app
        .get(
            &format!("/api/v1/inventory/stock/?product_id={shirt}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(rows["results"][0]["reserved_quantity"], 0);
}

#[tokio::test]
async fn guests_get_a_token_merge_into_an_account_and_expire() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "hala", "Hala Home").await;
    let project = owner.project_id();
    let lamp = product_in_stock(&app, &owner, "Lamp", "30.00", 10).await;
    let rug = product_in_stock(&app, &owner, "Rug", "99.00", 2).await;

    let (status, guest) = shop(
        &app,
        project,
        As::Guest(None),
        Method::POST,
        "/api/v1/cart/guest/",
        json!({}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{guest}");
    assert_eq!(guest["is_guest"], true);
    let token = guest["guest_token"].as_str().expect("token").to_owned();
    let guest_id = guest["id"].as_str().expect("id").to_owned();
    let g = As::Guest(Some(&token));
    let (status, _) = shop(
        &app,
        project,
        g,
        Method::POST,
        &format!("{CART}current/items/"),
        json!({"product_id": lamp, "quantity": 2}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = shop(
        &app,
        project,
        g,
        Method::POST,
        &format!("{CART}{guest_id}/items/"),
        json!({"product_id": rug}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, seen) = shop(
        &app,
        project,
        g,
        Method::GET,
        &format!("{CART}current/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(
        (
            seen["id"].clone(),
            seen["item_count"].clone(),
            seen["subtotal"].clone()
        ),
        (json!(guest_id), json!(3), json!("159.00"))
    );

    // No token, or someone else's: nothing.
    let (status, _) = shop(
        &app,
        project,
        As::Guest(None),
        Method::GET,
        &format!("{CART}current/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = shop(
        &app,
        project,
        As::Guest(Some("gt_forged")),
        Method::GET,
        &format!("{CART}{guest_id}/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = shop(
        &app,
        project + 1000,
        g,
        Method::GET,
        &format!("{CART}{guest_id}/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Guests must give an e-mail at checkout; nothing is placed without it.
    let (status, body) = shop(
        &app,
        project,
        g,
        Method::POST,
        &format!("{CART}current/checkout/"),
        json!({"payment_method": "cash", "shipping_address": address()}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Signing in merges the guest's lines into the account's cart (quantities summed).
    let (_, access) = customer(&app, "samir").await;
    let me = As::User(&access);
    shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}current/items/"),
        json!({"product_id": lamp, "quantity": 1}),
        &[],
    )
    .await;
    let (status, merged) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}merge/"),
        json!({"guest_cart_id": guest_id}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["items_merged"], 2);
    let lamp_line = merged["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|l| l["product_id"] == lamp)
        .cloned()
        .expect("lamp");
    assert_eq!(lamp_line["quantity"], 3);
    assert_eq!(merged["subtotal"], "189.00");
    let (status, body) = shop(
        &app,
        project,
        g,
        Method::POST,
        &format!("{CART}current/items/"),
        json!({"product_id": lamp}),
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("cart_converted"))
    );
    let (status, _) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}merge/"),
        json!({"guest_cart_id": guest_id}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "a merged cart merges once");

    // Thirty idle days: the guest's cart is gone (410); an account's `current` starts anew.
    let (status, other) = shop(
        &app,
        project,
        As::Guest(None),
        Method::POST,
        "/api/v1/cart/guest/",
        json!({}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let old_token = other["guest_token"].as_str().expect("token").to_owned();
    let pool = service_pool(&app.config(), "order").await;
    sqlx::query("UPDATE carts SET updated_at = now() - interval '31 days' WHERE project_id = $1")
        .bind(project)
        .execute(&pool)
        .await
        .expect("aged");
    let (status, body) = shop(
        &app,
        project,
        As::Guest(Some(&old_token)),
        Method::GET,
        &format!("{CART}current/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::GONE, json!("cart_expired"))
    );
    let (status, fresh) = shop(
        &app,
        project,
        me,
        Method::GET,
        &format!("{CART}current/"),
        Value::Null,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fresh["items"], json!([]));
}

#[tokio::test]
async fn a_cart_whose_stock_is_gone_cannot_check_out_and_concurrent_checkouts_place_one_order() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "tarek", "Tarek Tools").await;
    let project = owner.project_id();
    let saw = product_in_stock(&app, &owner, "Saw", "12.00", 4).await;
    let (_, access) = customer(&app, "maya").await;
    let me = As::User(&access);
    shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}current/items/"),
        json!({"product_id": saw, "quantity": 3}),
        &[],
    )
    .await;
    shop(
        &app,
        project,
        me,
        Method::PUT,
        &format!("{CART}current/shipping_method/"),
        json!({"method": "pickup"}),
        &[],
    )
    .await;

    // The stock is sold elsewhere meanwhile: validation and checkout refuse, nothing is placed.
    let (status, sold) = app
        .call(Method::POST, "/api/v1/order/orders/",
            json!({"customer_email": "walkin@example.com", "items": [{"product_id": saw, "quantity": 2}]}),
            &owner.access)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sold}");
    for _ in 0..200 {
        let (_, p, _) = app
            .get(
                &format!("/api/v1/product/products/{saw}/"),
                Some(&owner.access),
            )
            .await;
        if p["stock_quantity"] == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (status, checked) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}current/validate/"),
        json!({}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{checked}");
    assert_eq!(
        (checked["code"].clone(), checked["is_valid"].clone()),
        (json!("cart_invalid"), json!(false))
    );
    assert_eq!(checked["errors"][0]["code"], "insufficient_stock");
    assert_eq!(checked["errors"][0]["available_quantity"], 2);
    let (status, refused) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{CART}current/checkout/"),
        json!({"payment_method": "cash"}),
        &[],
    )
    .await;
    assert_eq!(
        (status, refused["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("cart_invalid"))
    );
    let (_, orders, _) = app.get("/api/v1/order/orders/", Some(&owner.access)).await;
    assert_eq!(orders["count"], 1);

    // Down to what is there, then eight checkouts at once: one order, eight equal answers.
    let (_, cart) = shop(
        &app,
        project,
        me,
        Method::GET,
        &format!("{CART}current/"),
        Value::Null,
        &[],
    )
    .await;
    let item = cart["items"][0]["id"].as_str().expect("item").to_owned();
    let (status, _) = shop(
        &app,
        project,
        me,
        Method::PATCH,
        &format!("{CART}current/items/{item}/"),
        json!({"quantity": 2}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let id = cart["id"].as_str().expect("id").to_owned();
    let path = format!("{CART}{id}/checkout/");
    let answers = futures::future::join_all((0..8).map(|_| {
        shop(
            &app,
            project,
            me,
            Method::POST,
            &path,
            json!({"payment_method": "cash"}),
            &[],
        )
    }))
    .await;
    let numbers: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert!(status.is_success(), "{status} {body}");
            body["order_id"].as_str().expect("number").to_owned()
        })
        .collect();
    assert_eq!(numbers.len(), 1, "{answers:?}");
    let (_, orders, _) = app
        .get("/api/v1/order/orders/?source=checkout", Some(&owner.access))
        .await;
    assert_eq!(orders["count"], 1);
    let (_, rows, _) = app
        .get(
            &format!("/api/v1/inventory/stock/?product_id={saw}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(rows["results"][0]["reserved_quantity"], 4);
}

#[tokio::test]
async fn a_coupon_discounts_the_cart_and_an_online_checkout_waits_for_payment() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "dina", "Dina Decor").await;
    let project = owner.project_id();
    let vase = product_in_stock(&app, &owner, "Vase", "20.00", 6).await;
    let (status, coupon) = app
        .call(
            Method::POST,
            "/api/v1/billing/m/coupons/",
            json!({"code": "SAVE10", "discount_type": "percentage", "discount_value": "10",
                   "usage_limit": 5, "usage_limit_per_customer": 5}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{coupon}");
    let (_, access) = customer(&app, "rami").await;
    let me = As::User(&access);
    let c = format!("{CART}current/");
    shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}items/"),
        json!({"product_id": vase, "quantity": 2}),
        &[],
    )
    .await;
    shop(
        &app,
        project,
        me,
        Method::PUT,
        &format!("{c}shipping_method/"),
        json!({"method": "pickup"}),
        &[],
    )
    .await;

    // A wrong code is refused with billing's reason; a good one takes 10 %; one coupon a cart.
    let (status, wrong) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}coupons/"),
        json!({"code": "NOPE"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{wrong}");
    assert_eq!(
        (wrong["code"].clone(), wrong["error"].clone()),
        (json!("coupon_not_found"), json!("Invalid coupon"))
    );
    let (status, applied) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}coupons/"),
        json!({"code": "save10"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{applied}");
    assert_eq!(
        (
            applied["discount_amount"].clone(),
            applied["cart_totals"]["total"].clone()
        ),
        (json!("4.00"), json!("36.00"))
    );
    let (status, again) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}coupons/"),
        json!({"code": "SAVE10"}),
        &[],
    )
    .await;
    assert_eq!(
        (status, again["code"].clone()),
        (StatusCode::CONFLICT, json!("coupon_already_applied"))
    );
    let (_, cart) = shop(&app, project, me, Method::GET, &c, Value::Null, &[]).await;
    assert_eq!(cart["applied_promotions"][0]["code"], "SAVE10");

    // Paid by card: the order waits for the payment, the coupon is used once.
    let (status, done) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}checkout/"),
        json!({"payment_method": "credit_card"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    assert_eq!(
        (done["status"].clone(), done["payment_required"].clone()),
        (json!("pending_payment"), json!(true))
    );
    assert!(done["expires_at"].is_string(), "{done}");
    assert_eq!(done["payment_methods"][0]["id"], "credit_card");
    assert!(
        done["payment_methods"][0]["payment_url"].is_string(),
        "{done}"
    );
    let (_, order, _) = app
        .get(
            &format!("/api/v1/order/orders/{}/", done["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (
            order["subtotal"].clone(),
            order["discount_amount"].clone(),
            order["total"].clone(),
            order["coupon_code"].clone()
        ),
        (
            json!("40.00"),
            json!("4.00"),
            json!("36.00"),
            json!("SAVE10")
        )
    );
    assert_eq!(order["items"][0]["discount"], "4.00");
    let coupon_path = format!("/api/v1/billing/m/coupons/{}/", coupon["id"]);
    assert_eq!(
        app.get(&coupon_path, Some(&owner.access)).await.1["used_count"],
        1
    );

    // Cancelled: the use is given back.
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/order/orders/{}/cancel/", done["id"]),
            json!({"reason": "Changed mind"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.get(&coupon_path, Some(&owner.access)).await.1["used_count"],
        0
    );
}

#[tokio::test]
async fn a_customer_asks_to_return_their_own_shipped_order() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "noor", "Noor Notebooks").await;
    let project = owner.project_id();
    let book = product_in_stock(&app, &owner, "Book", "15.00", 3).await;
    let (_, access) = customer(&app, "layla").await;
    let me = As::User(&access);
    let c = format!("{CART}current/");
    shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}items/"),
        json!({"product_id": book}),
        &[],
    )
    .await;
    shop(
        &app,
        project,
        me,
        Method::PUT,
        &format!("{c}shipping_method/"),
        json!({"method": "pickup"}),
        &[],
    )
    .await;
    let (status, done) = shop(
        &app,
        project,
        me,
        Method::POST,
        &format!("{c}checkout/"),
        json!({"payment_method": "cash"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{done}");
    let id = done["id"].clone();
    // Not shipped yet: refused; then the shop ships it.
    let (status, early) = shop(
        &app,
        project,
        me,
        Method::POST,
        "/api/v1/order/order-returns/",
        json!({"order": id}),
        &[],
    )
    .await;
    assert_eq!(
        (status, early["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("order_not_returnable")
        )
    );
    for (path, body) in [
        (
            format!("/api/v1/order/orders/{id}/status/"),
            json!({"status": "confirmed"}),
        ),
        (
            format!("/api/v1/order/orders/{id}/fulfillments/"),
            json!({}),
        ),
    ] {
        let (status, body) = app.call(Method::POST, &path, body, &owner.access).await;
        assert!(status.is_success(), "{status} {body}");
    }
    let (status, asked) = shop(
        &app,
        project,
        me,
        Method::POST,
        "/api/v1/order/order-returns/",
        json!({"order": id, "reason": "DEFECTIVE", "refund_amount": "999.00"}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{asked}");
    assert_eq!(
        (asked["status"].clone(), asked["refund_method"].clone()),
        (json!("pending"), json!("original"))
    );
    // Someone else's order is not theirs to return.
    let (_, other) = customer(&app, "omar").await;
    let (status, _) = shop(
        &app,
        project,
        As::User(&other),
        Method::POST,
        "/api/v1/order/order-returns/",
        json!({"order": id}),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, returns, _) = app
        .get("/api/v1/order/order-returns/", Some(&owner.access))
        .await;
    assert_eq!(returns["count"], 1);
}
