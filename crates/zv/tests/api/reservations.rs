//! Reservations (inventory.md §6): hold, confirm, release, expire; allocation across
//! warehouses and batches; idempotency; and the adversarial concurrency the contract's rule zero
//! asks for (never oversold, all-or-nothing, deadlock-free), across two app instances.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{service_pool, CrossTenant, TenantResource, TestApp};
use crate::inventory::{create, product};
use crate::projects::{member, owner_with_project, Owner};

const API: &str = "/api/v1/inventory/";

async fn post(app: &TestApp, owner: &Owner, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, &format!("{API}{path}"), body, &owner.access)
        .await
}

async fn row(app: &TestApp, owner: &Owner, id: &Value) -> Value {
    let (status, row, _) = app
        .get(&format!("{API}stock/{id}/"), Some(&owner.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{row}");
    row
}

/// (quantity, reserved) of a stock row.
async fn levels(app: &TestApp, owner: &Owner, id: &Value) -> (i64, i64) {
    let r = row(app, owner, id).await;
    (
        r["quantity"].as_i64().expect("quantity"),
        r["reserved_quantity"].as_i64().expect("reserved"),
    )
}

/// Rows whose level differs from their ledger, or whose reserved units differ from what the
/// active reservations hold on them; and rows out of bounds (never, by the CHECKs).
pub async fn reconciliation(app: &TestApp) -> (i64, i64, i64) {
    let pool = service_pool(app.platform.config(), "inventory").await;
    let ledger: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stock_items s WHERE s.quantity <> \
           COALESCE((SELECT sum(m.quantity) FROM movements m WHERE m.inventory_id = s.id), 0)",
    )
    .fetch_one(&pool)
    .await
    .expect("ledger");
    let reserved: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stock_items s WHERE s.reserved_quantity <> \
           COALESCE((SELECT sum(a.quantity) FROM reservation_allocations a \
             JOIN reservation_items i ON i.id = a.item_id \
             JOIN reservations r ON r.id = i.reservation_id \
             WHERE a.inventory_id = s.id AND r.status = 'active'), 0)",
    )
    .fetch_one(&pool)
    .await
    .expect("reserved");
    let bounds: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM stock_items WHERE quantity < 0 OR reserved_quantity < 0 \
         OR reserved_quantity > quantity",
    )
    .fetch_one(&pool)
    .await
    .expect("bounds");
    (ledger, reserved, bounds)
}

/// Makes a reservation overdue (time passes).
async fn overdue(app: &TestApp, id: &Value) {
    let pool = service_pool(app.platform.config(), "inventory").await;
    sqlx::query("UPDATE reservations SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(id.as_i64().expect("id"))
        .execute(&pool)
        .await
        .expect("overdue");
}

#[tokio::test]
async fn reservations_hold_confirm_release_and_expire() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "rana", "Rana Retail").await;
    let tea = product(&app, &owner, "Tea").await;
    let cups = product(&app, &owner, "Cups").await;
    let main = create(
        &app,
        &owner,
        "warehouses/",
        json!({"name": "Main", "is_default": true}),
    )
    .await;
    let north = create(
        &app,
        &owner,
        "warehouses/",
        json!({"name": "North", "priority": 1}),
    )
    .await;
    let tea_row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": tea, "quantity": 10}),
    )
    .await;
    // Cups: 3 in Main; in North a lot expiring later (4), one sooner (2), one expired (9).
    let cups_main = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": cups, "quantity": 3, "warehouse_id": main["id"]}),
    )
    .await;
    let late = create(
        &app,
        &owner,
        "batches/",
        json!({"batch_number": "L-LATE", "expiry_date": "2999-12-31"}),
    )
    .await;
    let soon = create(
        &app,
        &owner,
        "batches/",
        json!({"batch_number": "L-SOON", "expiry_date": "2998-01-01"}),
    )
    .await;
    let gone = create(
        &app,
        &owner,
        "batches/",
        json!({"batch_number": "L-GONE", "expiry_date": "2001-01-01"}),
    )
    .await;
    let cups_late = create(&app, &owner, "stock/", json!({"product_id": cups, "quantity": 4, "warehouse_id": north["id"], "batch_id": late["id"]})).await;
    let cups_soon = create(&app, &owner, "stock/", json!({"product_id": cups, "quantity": 2, "warehouse_id": north["id"], "batch_id": soon["id"]})).await;
    let cups_gone = create(&app, &owner, "stock/", json!({"product_id": cups, "quantity": 9, "warehouse_id": north["id"], "batch_id": gone["id"]})).await;

    // Default warehouse first, then FEFO inside North; the expired lot is never allocated.
    let (status, held) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-1", "items": [
            {"product_id": tea, "quantity": 4},
            {"product_id": cups, "quantity": 4},
            {"product_id": cups, "quantity": 2}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["status"], "active");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(
        held["reservation_number"]
            .as_str()
            .is_some_and(|n| n.starts_with(&format!("RES-{year}-"))),
        "{held}"
    );
    assert!(held["expires_at"].is_string(), "24 h by default: {held}");
    let items = held["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "lines of one product are summed: {held}");
    let cups_line = items
        .iter()
        .find(|i| i["product_id"] == cups)
        .expect("cups line");
    assert_eq!(cups_line["quantity"], 6);
    let allocation: Vec<(Value, Value)> = cups_line["allocations"]
        .as_array()
        .expect("allocations")
        .iter()
        .map(|a| (a["inventory_id"].clone(), a["quantity"].clone()))
        .collect();
    assert_eq!(
        allocation,
        vec![
            (cups_main["id"].clone(), json!(3)),
            (cups_soon["id"].clone(), json!(2)),
            (cups_late["id"].clone(), json!(1)),
        ]
    );
    assert_eq!(
        cups_line["available_quantity"],
        9 + 3,
        "the expired lot still counts on hand"
    );
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (10, 4));
    assert_eq!(
        row(&app, &owner, &tea_row["id"]).await["available_quantity"],
        6
    );

    // The same order again: the same lines → the same reservation; other lines → 409.
    let (status, again) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-1", "items": [
            {"product_id": cups, "quantity": 6}, {"product_id": tea, "quantity": 4}
        ]}),
    )
    .await;
    assert_eq!(
        (status, again["id"].clone()),
        (StatusCode::OK, held["id"].clone())
    );
    let (status, other) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-1", "items": [{"product_id": tea, "quantity": 1}]}),
    )
    .await;
    assert_eq!(
        (status, other["code"].clone()),
        (StatusCode::CONFLICT, json!("reservation_exists"))
    );

    // Short: every short line is listed, nothing is held.
    let (status, short) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-2", "items": [
            {"product_id": tea, "quantity": 7}, {"product_id": cups, "quantity": 1}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{short}");
    assert_eq!(short["code"], "insufficient_stock");
    assert_eq!(
        short["details"]["lines"],
        json!([{"product_id": tea, "variant_id": null, "warehouse_id": null, "requested": 7, "available": 6}])
    );
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (10, 4));
    assert_eq!(levels(&app, &owner, &cups_late["id"]).await, (4, 1));
    // Held units cannot be taken by hand.
    let (status, _) = post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "OUT", "quantity": 7, "inventory_id": tea_row["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // An expired lot is booked out only as a write-off.
    let (status, expired_out) = post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "OUT", "quantity": 1, "inventory_id": cups_gone["id"]}),
    )
    .await;
    assert_eq!(
        (status, expired_out["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("batch_expired"))
    );
    let (status, _) = post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "OUT", "reason_code": "expiry", "quantity": 9, "inventory_id": cups_gone["id"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // Confirm: one OUT sale per allocation, referenced by the order.
    let id = held["id"].clone();
    let (status, confirmed) = post(
        &app,
        &owner,
        &format!("reservations/{id}/confirm/"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(confirmed["status"], "confirmed");
    assert!(confirmed["confirmed_at"].is_string());
    let movement_ids = confirmed["movement_ids"].as_array().expect("ids").clone();
    assert_eq!(movement_ids.len(), 4, "tea + three cups rows");
    assert_eq!(confirmed["movement_id"], movement_ids[0]);
    let (_, sales, _) = app
        .get(
            &format!("{API}movements/?reference=ORD-1"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(sales["count"], 4);
    assert!(sales["results"]
        .as_array()
        .expect("results")
        .iter()
        .all(|m| m["reason_code"] == "sale" && m["reservation_id"] == id));
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (6, 0));
    assert_eq!(levels(&app, &owner, &cups_late["id"]).await, (3, 0));
    // Repeating it changes nothing; a confirmed reservation is not released.
    let (status, twice) = post(
        &app,
        &owner,
        &format!(
            "reservations/{}/confirm/",
            held["reservation_number"].as_str().expect("number")
        ),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, twice["movement_ids"].clone()),
        (StatusCode::OK, json!(movement_ids))
    );
    let (status, refused) = post(
        &app,
        &owner,
        &format!("reservations/{id}/release/"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, refused["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("reservation_not_active")
        )
    );
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (6, 0));

    // Release gives the units back, once.
    let (_, second) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-3", "items": [{"product_id": tea, "quantity": 2}]}),
    )
    .await;
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (6, 2));
    let (status, released) = post(
        &app,
        &owner,
        &format!("reservations/{}/release/", second["id"]),
        json!({"reason": "order_cancelled"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(
        (
            released["status"].clone(),
            released["release_reason"].clone(),
            released["items_released"].clone()
        ),
        (json!("released"), json!("order_cancelled"), json!(1))
    );
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (6, 0));
    let (status, _) = post(
        &app,
        &owner,
        &format!("reservations/{}/release/", second["id"]),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "released twice: the current state");
    let (status, late_confirm) = post(
        &app,
        &owner,
        &format!("reservations/{}/confirm/", second["id"]),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, late_confirm["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("reservation_not_active")
        )
    );

    // PATCH moves the expiry of an active reservation within 30 days; null holds it.
    let (_, third) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-4", "items": [{"product_id": tea, "quantity": 5}]}),
    )
    .await;
    let path = format!("{API}reservations/{}/", third["id"]);
    for (at, expected) in [
        (json!("2001-01-01T00:00:00Z"), StatusCode::BAD_REQUEST),
        (
            json!((chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339()),
            StatusCode::BAD_REQUEST,
        ),
        (json!("soon"), StatusCode::BAD_REQUEST),
        (json!(null), StatusCode::OK),
        (
            json!((chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339()),
            StatusCode::OK,
        ),
    ] {
        let (status, body) = app
            .call(
                Method::PATCH,
                &path,
                json!({"expires_at": at}),
                &owner.access,
            )
            .await;
        assert_eq!(status, expected, "{at}: {body}");
    }
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("{API}reservations/{id}/"),
            json!({"expires_at": null}),
            &owner.access,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a confirmed one does not change"
    );
    let (status, _) = app
        .call(Method::DELETE, &path, Value::Null, &owner.access)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "never deleted");

    // Its time runs out: a request that needs its units expires it first (lazy expiry)…
    overdue(&app, &third["id"]).await;
    let (status, fourth) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-5", "items": [{"product_id": tea, "quantity": 6}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{fourth}");
    let (_, third_now, _) = app.get(&path, Some(&owner.access)).await;
    assert_eq!(
        (
            third_now["status"].clone(),
            third_now["release_reason"].clone()
        ),
        (json!("expired"), json!("expired"))
    );
    let (status, body) = post(
        &app,
        &owner,
        &format!("reservations/{}/confirm/", third["id"]),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("reservation_expired")
        )
    );
    // …confirming an overdue one expires it…
    overdue(&app, &fourth["id"]).await;
    let (status, body) = post(
        &app,
        &owner,
        &format!("reservations/{}/confirm/", fourth["id"]),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("reservation_expired")
        )
    );
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (6, 0));
    // …and the sweeper expires the rest.
    let (_, fifth) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": tea, "quantity": 1}], "reference": "cart:42"}),
    )
    .await;
    overdue(&app, &fifth["id"]).await;
    let ctx = crate::harness::service_context(&app, "inventory").await;
    assert_eq!(
        zv_inventory::reservations::sweep(&ctx)
            .await
            .expect("sweep"),
        1
    );
    let (_, swept, _) = app
        .get(
            &format!("{API}reservations/{}/", fifth["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(swept["status"], "expired");
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (6, 0));

    // Lists filter by status (alias pending = active), order, product.
    let (_, active, _) = app
        .get(
            &format!("{API}reservations/?status=expired"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(active["count"], 3);
    let (_, by_product, _) = app
        .get(
            &format!("{API}reservations/?product_id={cups}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(by_product["count"], 1);

    // release-by-order: the compensation when a create answer was lost.
    post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "ORD-9", "items": [{"product_id": tea, "quantity": 2}]}),
    )
    .await;
    let (status, body) = post(
        &app,
        &owner,
        "reservations/release-by-order/",
        json!({"order_id": "ORD-9"}),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"released": 1})));
    assert_eq!(levels(&app, &owner, &tea_row["id"]).await, (6, 0));
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

#[tokio::test]
async fn adjust_changes_the_held_lines_all_or_nothing() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "adel", "Adel Appliances").await;
    let fan = product(&app, &owner, "Fan").await;
    let lamp = product(&app, &owner, "Lamp").await;
    let fan_row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": fan, "quantity": 5}),
    )
    .await;
    let lamp_row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": lamp, "quantity": 3}),
    )
    .await;
    let (_, held) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "A-1", "items": [{"product_id": fan, "quantity": 2}]}),
    )
    .await;
    let adjust = format!("reservations/{}/adjust/", held["id"]);
    // More lamps than there are: nothing changes.
    let (status, body) = post(
        &app,
        &owner,
        &adjust,
        json!({"items": [
            {"product_id": fan, "quantity": 5}, {"product_id": lamp, "quantity": 4}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(levels(&app, &owner, &fan_row["id"]).await, (5, 2));
    assert_eq!(levels(&app, &owner, &lamp_row["id"]).await, (3, 0));
    // Fans down to 1, three lamps added.
    let (status, body) = post(
        &app,
        &owner,
        &adjust,
        json!({"items": [
            {"product_id": fan, "quantity": 1}, {"product_id": lamp, "quantity": 3}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(levels(&app, &owner, &fan_row["id"]).await, (5, 1));
    assert_eq!(levels(&app, &owner, &lamp_row["id"]).await, (3, 3));
    // The order's create with the new lines is the same reservation.
    let (status, same) = post(
        &app,
        &owner,
        "reservations/",
        json!({"order_id": "A-1", "items": [
            {"product_id": lamp, "quantity": 3}, {"product_id": fan, "quantity": 1}
        ]}),
    )
    .await;
    assert_eq!(
        (status, same["id"].clone()),
        (StatusCode::OK, held["id"].clone())
    );
    // 0 removes a line.
    let (status, body) = post(
        &app,
        &owner,
        &adjust,
        json!({"items": [{"product_id": fan, "quantity": 0}]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(levels(&app, &owner, &fan_row["id"]).await, (5, 0));
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

#[tokio::test]
async fn hostile_reservations_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "hala", "Hala Hardware").await;
    let nails = product(&app, &owner, "Nails").await;
    let gone = product(&app, &owner, "Gone").await;
    let nails_row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": nails, "quantity": 5}),
    )
    .await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/product/products/{gone}/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let in_a_year = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    for (body, expected) in [
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"items": []}), StatusCode::BAD_REQUEST),
        (json!({"items": "all"}), StatusCode::BAD_REQUEST),
        (
            json!({"items": [{"product_id": nails, "quantity": 0}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": -3}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 1_000_001}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 600_000}, {"product_id": nails, "quantity": 600_000}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 1.5}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails}]}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"items": [{"quantity": 1}]}), StatusCode::BAD_REQUEST),
        (
            json!({"items": [{"product_id": 987_654_321, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": "1 OR 1=1", "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "variant_id": 987_654, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 1}], "expires_at": "2001-01-01T00:00:00Z"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 1}], "expires_at": in_a_year}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 1}], "order_id": "x".repeat(101)}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"items": [{"product_id": gone, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 6}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"items": [{"product_id": nails, "quantity": 1, "warehouse_id": 987_654}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (status, err) = post(&app, &owner, "reservations/", body.clone()).await;
        assert_eq!(status, expected, "{body}: {err}");
        if status == StatusCode::BAD_REQUEST {
            assert!(
                err.is_object() && err.get("detail").is_none_or(|d| d.is_string()),
                "{err}"
            );
        }
    }
    let (status, nested) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [
            {"product_id": nails, "quantity": 1}, {"product_id": nails, "quantity": 0}
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        nested["items"][0].as_object().is_some_and(|o| o.is_empty()),
        "{nested}"
    );
    assert!(nested["items"][1]["quantity"].is_array(), "{nested}");
    for path in [
        "reservations/987654/confirm/",
        "reservations/RES-1999-0001/release/",
        "reservations/1/explode/",
    ] {
        let (status, _) = post(&app, &owner, path, json!({})).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (_, list, _) = app
        .get(&format!("{API}reservations/"), Some(&owner.access))
        .await;
    assert_eq!(list["count"], 0);
    assert_eq!(levels(&app, &owner, &nails_row["id"]).await, (5, 0));
    // Numbers keep every digit past 9999.
    let pool = service_pool(app.platform.config(), "inventory").await;
    sqlx::query("SELECT setval(pg_get_serial_sequence('reservations', 'id'), 9998)")
        .execute(&pool)
        .await
        .expect("sequence");
    let mut numbers = Vec::new();
    for _ in 0..2 {
        let (status, held) = post(
            &app,
            &owner,
            "reservations/",
            json!({"items": [{"product_id": nails, "quantity": 1}]}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{held}");
        numbers.push(
            held["reservation_number"]
                .as_str()
                .unwrap_or_default()
                .rsplit('-')
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
        post(
            &app,
            &owner,
            &format!("reservations/{}/release/", held["id"]),
            json!({}),
        )
        .await;
    }
    assert_eq!(numbers, ["9999", "10000"]);
    // Viewers read; they do not reserve.
    let (_, viewer) = member(&app, &owner, "vera", "viewer").await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{API}reservations/"),
            json!({"items": [{"product_id": nails, "quantity": 1}]}),
            &viewer,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, editor) = member(&app, &owner, "eddy", "editor").await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("{API}reservations/"),
            json!({"items": [{"product_id": nails, "quantity": 1}]}),
            &editor,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "staff reserve: {body}");
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

#[tokio::test]
async fn untracked_and_deleted_products() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "tarek", "Tarek Trading").await;
    let (status, service) = app
        .call(
            Method::POST,
            "/api/v1/product/products/",
            json!({"name": "Gift wrapping", "price": "2.00", "status": "active", "track_inventory": false}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{service}");
    let (status, body) = post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "OUT", "quantity": 3, "product_id": service["id"]}),
    )
    .await;
    assert_eq!(
        (status, body["tracked"].clone()),
        (StatusCode::CREATED, json!(false)),
        "{body}"
    );
    let (status, held) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": service["id"], "quantity": 3}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["items"][0]["allocations"], json!([]));
    let (status, done) = post(
        &app,
        &owner,
        &format!("reservations/{}/confirm/", held["id"]),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, done["movement_ids"].clone()),
        (StatusCode::OK, json!([]))
    );
    let (_, ledger, _) = app
        .get(&format!("{API}movements/"), Some(&owner.access))
        .await;
    assert_eq!(
        ledger["count"], 0,
        "nothing booked for an untracked product"
    );

    // A product created with stock has it booked as an initial IN; its stock shows in the
    // catalogue once inventory says so.
    let (status, shelf) = app
        .call(
            Method::POST,
            "/api/v1/product/products/",
            json!({"name": "Shelf", "price": "30.00", "status": "active", "stock_quantity": 12, "low_stock_threshold": 2}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{shelf}");
    let (_, rows, _) = app
        .get(
            &format!("{API}stock/?product_id={}", shelf["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(rows["count"], 1, "{rows}");
    assert_eq!(
        (
            rows["results"][0]["quantity"].clone(),
            rows["results"][0]["low_stock_threshold"].clone()
        ),
        (json!(12), json!(2))
    );
    let (_, held) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": shelf["id"], "quantity": 5}]}),
    )
    .await;
    let shelf_path = format!("/api/v1/product/products/{}/", shelf["id"]);
    let mut seen = Value::Null;
    for _ in 0..100 {
        let (_, p, _) = app.get(&shelf_path, Some(&owner.access)).await;
        if p["stock_quantity"] == 7 {
            seen = p;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        seen["stock_quantity"], 7,
        "available units reach the catalogue"
    );
    assert_eq!(seen["stock_status"], "in_stock");

    // A deleted variant cannot be reserved (its product's other stock still can).
    let chair = product(&app, &owner, "Chair").await;
    let (status, oak) = app
        .call(
            Method::POST,
            &format!("/api/v1/product/products/{chair}/variants/"),
            json!({"name": "Oak", "sku": "CH-OAK"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{oak}");
    create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": chair, "variant_id": oak["id"], "quantity": 3}),
    )
    .await;
    let (status, body) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": chair, "variant_id": oak["id"], "quantity": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["items"][0]["product_name"], "Chair - Oak");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/product/products/variants/{}/", oak["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": chair, "variant_id": oak["id"], "quantity": 1}]}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("product_unavailable")
        )
    );
    let (status, body) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": chair, "variant_id": 987_654, "quantity": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // A deleted product's stock cannot move; a restored one can.
    let (status, _) = app
        .call(Method::DELETE, &shelf_path, Value::Null, &owner.access)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": shelf["id"], "quantity": 1}]}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("product_unavailable")
        )
    );
    let (status, body) = post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "IN", "quantity": 1, "product_id": shelf["id"]}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("product_unavailable")
        )
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{shelf_path}restore/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(
        &app,
        &owner,
        &format!("reservations/{}/confirm/", held["id"]),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

#[tokio::test]
async fn idempotency_keys_replay_and_never_double() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "ilham", "Ilham Imports").await;
    let soap = product(&app, &owner, "Soap").await;
    let soap_row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": soap, "quantity": 20}),
    )
    .await;
    let send = |key: &'static str, path: &'static str, body: Value| {
        let app = &app;
        let token = owner.access.clone();
        async move {
            app.send(
                app.client
                    .post(app.url(&format!("{API}{path}")))
                    .bearer_auth(token)
                    .header("Idempotency-Key", key)
                    .json(&body),
            )
            .await
        }
    };
    let out = json!({"movement_type": "OUT", "quantity": 3, "inventory_id": soap_row["id"]});
    let (status, first, headers) = send("k-1", "movements/", out.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert!(headers.get("idempotent-replayed").is_none());
    let (status, again, headers) = send("k-1", "movements/", out.clone()).await;
    assert_eq!(
        (status, again["id"].clone()),
        (StatusCode::CREATED, first["id"].clone())
    );
    assert_eq!(
        headers.get("idempotent-replayed").map(|v| v.to_str().ok()),
        Some(Some("true"))
    );
    let (status, reused, _) = send(
        "k-1",
        "movements/",
        json!({"movement_type": "OUT", "quantity": 4, "inventory_id": soap_row["id"]}),
    )
    .await;
    assert_eq!(
        (status, reused["code"].clone()),
        (StatusCode::CONFLICT, json!("idempotency_key_reused"))
    );
    // A key is scoped to its route; a refused request is replayed as refused.
    let big = json!({"items": [{"product_id": soap, "quantity": 100}]});
    let (status, _, _) = send("k-1", "reservations/", big.clone()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _, headers) = send("k-1", "reservations/", big).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(headers.get("idempotent-replayed").is_some());
    // Twenty concurrent retries of one reservation hold its units once.
    let hold = json!({"items": [{"product_id": soap, "quantity": 2}]});
    let tries = (0..20).map(|_| send("k-2", "reservations/", hold.clone()));
    let answers = futures::future::join_all(tries).await;
    let created: Vec<&Value> = answers
        .iter()
        .filter(|(s, _, _)| *s == StatusCode::CREATED)
        .map(|(_, b, _)| b)
        .collect();
    assert!(!created.is_empty());
    assert!(
        created.iter().all(|b| b["id"] == created[0]["id"]),
        "one reservation"
    );
    assert!(answers.iter().all(|(s, b, _)| *s == StatusCode::CREATED
        || (*s == StatusCode::CONFLICT && b["code"] == "idempotency_in_progress")));
    assert_eq!(levels(&app, &owner, &soap_row["id"]).await, (17, 2));
    let long: &'static str = "x".repeat(256).leak();
    let (status, _, _) = send(long, "movements/", out).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, ledger, _) = app
        .get(
            &format!("{API}movements/?inventory_id={}", soap_row["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(ledger["count"], 2, "the initial IN and one OUT");
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

/// Rule zero under fire: two app instances (two pools), hundreds of concurrent requests for
/// more than there is.
#[tokio::test]
async fn concurrent_reservations_never_oversell_across_instances() {
    let app = TestApp::spawn().await;
    let twin = TestApp::spawn_sibling(app.config()).await;
    let owner = owner_with_project(&app, "sami", "Sami Sports").await;
    let ball = product(&app, &owner, "Ball").await;
    let bat = product(&app, &owner, "Bat").await;
    let net = product(&app, &owner, "Net").await;
    // Ball: 60 + 40 in two warehouses (a line may split over both).
    let main = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": ball, "quantity": 60}),
    )
    .await;
    let north = create(&app, &owner, "warehouses/", json!({"name": "North"})).await;
    let ball_rows = [
        main,
        create(
            &app,
            &owner,
            "stock/",
            json!({"product_id": ball, "quantity": 40, "warehouse_id": north["id"]}),
        )
        .await,
    ];
    let bat_row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": bat, "quantity": 50}),
    )
    .await;
    let net_row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": net, "quantity": 50}),
    )
    .await;

    // 300 single-unit requests for 100 balls, half through each instance.
    let requests = (0..300).map(|n| {
        let target = if n % 2 == 0 { &app } else { &twin };
        let token = owner.access.clone();
        async move {
            target
                .call(
                    Method::POST,
                    &format!("{API}reservations/"),
                    json!({"order_id": format!("B-{n}"), "items": [{"product_id": ball, "quantity": 1}]}),
                    &token,
                )
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let won = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let lost = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!((won, lost), (100, 200), "{statuses:?}");
    let mut reserved = 0;
    for r in &ball_rows {
        let (quantity, held) = levels(&app, &owner, &r["id"]).await;
        assert_eq!(quantity, held, "every ball is held");
        reserved += held;
    }
    assert_eq!(reserved, 100, "exactly the stock");

    // Two-line requests in opposite orders on the same two rows: all or nothing, and no
    // deadlock (a deadlock would surface as 503 after the retries).
    let requests = (0..120).map(|n| {
        let target = if n % 2 == 0 { &app } else { &twin };
        let token = owner.access.clone();
        let items = if n % 2 == 0 {
            json!([{"product_id": bat, "quantity": 1}, {"product_id": net, "quantity": 1}])
        } else {
            json!([{"product_id": net, "quantity": 1}, {"product_id": bat, "quantity": 1}])
        };
        async move {
            target
                .call(
                    Method::POST,
                    &format!("{API}reservations/"),
                    json!({"items": items}),
                    &token,
                )
                .await
        }
    });
    let answers = futures::future::join_all(requests).await;
    let won = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let lost: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNPROCESSABLE_ENTITY)
        .map(|(_, b)| b)
        .collect();
    assert_eq!((won, lost.len()), (50, 70), "{answers:?}");
    assert!(lost.iter().all(|b| b["code"] == "insufficient_stock"));
    assert_eq!(levels(&app, &owner, &bat_row["id"]).await, (50, 50));
    assert_eq!(levels(&app, &owner, &net_row["id"]).await, (50, 50));

    // Confirms and releases racing each other and new reservations on both instances.
    let (_, list, _) = app
        .get(
            &format!("{API}reservations/?product_id={ball}&page_size=100"),
            Some(&owner.access),
        )
        .await;
    let ids: Vec<Value> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["id"].clone())
        .collect();
    assert_eq!(ids.len(), 100);
    let work = ids.iter().enumerate().map(|(n, id)| {
        let target = if n % 2 == 0 { &app } else { &twin };
        let token = owner.access.clone();
        let action = if n % 3 == 0 { "release" } else { "confirm" };
        async move {
            let (status, _) = target
                .call(
                    Method::POST,
                    &format!("{API}reservations/{id}/{action}/"),
                    json!({}),
                    &token,
                )
                .await;
            let (again, _) = target
                .call(
                    Method::POST,
                    &format!("{API}reservations/"),
                    json!({"items": [{"product_id": ball, "quantity": 1}]}),
                    &token,
                )
                .await;
            (status, again)
        }
    });
    let done = futures::future::join_all(work).await;
    assert!(done.iter().all(|(s, _)| *s == StatusCode::OK), "{done:?}");
    let released = ids.iter().enumerate().filter(|(n, _)| n % 3 == 0).count() as i64;
    let regained = done
        .iter()
        .filter(|(_, s)| *s == StatusCode::CREATED)
        .count() as i64;
    assert!(
        regained <= released,
        "only released units can be held again"
    );
    let mut on_hand = 0;
    let mut held = 0;
    for r in &ball_rows {
        let (quantity, reserved) = levels(&app, &owner, &r["id"]).await;
        on_hand += quantity;
        held += reserved;
    }
    assert_eq!(
        on_hand,
        100 - (100 - released),
        "confirmed units left the shelf"
    );
    assert_eq!(held, regained);
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

#[tokio::test]
async fn reservations_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "amal", "Amal Apparel").await;
    let b = owner_with_project(&app, "basil", "Basil Books").await;
    let shirt = product(&app, &a, "Shirt").await;
    let shirt_row = create(
        &app,
        &a,
        "stock/",
        json!({"product_id": shirt, "quantity": 4}),
    )
    .await;
    let (_, held) = post(
        &app,
        &a,
        "reservations/",
        json!({"order_id": "T-1", "items": [{"product_id": shirt, "quantity": 1}]}),
    )
    .await;
    CrossTenant {
        app: &app,
        owner: &a.access,
        owner_item: format!("{API}reservations/{}/", held["id"]),
        outsider: &b.access,
        project_a: a.project_id(),
    }
    .check(&TenantResource {
        name: "reservations",
        lists: vec![format!("{API}reservations/")],
        id: held["id"].clone(),
        items: vec![format!("{API}reservations/{}/", held["id"])],
        readable: true,
        public_read: false,
        update: Some((Method::PATCH, json!({"expires_at": null}))),
        delete: false,
        restore: None,
    })
    .await;
    // B can neither act on A's reservation nor reserve A's product.
    for action in ["confirm", "release", "adjust"] {
        let (status, _) = post(
            &app,
            &b,
            &format!("reservations/{}/{action}/", held["id"]),
            json!({"items": [{"product_id": shirt, "quantity": 2}]}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    let (status, _) = post(
        &app,
        &b,
        "reservations/",
        json!({"items": [{"product_id": shirt, "quantity": 1}]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "another project's product is unknown"
    );
    let (status, body) = post(
        &app,
        &b,
        "reservations/release-by-order/",
        json!({"order_id": "T-1"}),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"released": 0})));
    assert_eq!(levels(&app, &a, &shirt_row["id"]).await, (4, 1));
}

#[tokio::test]
async fn graphql_inventory_reads_and_works_the_stock() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "ghada", "Ghada Garden").await;
    let rake = product(&app, &owner, "Rake").await;
    let hose = product(&app, &owner, "Hose").await;
    let gql = |query: &str, variables: Value| json!({"query": query, "variables": variables});
    let ask = |body: Value| {
        let app = &app;
        let token = owner.access.clone();
        async move {
            let (status, answer, _) = app.post("/graphql/inventory", body, Some(&token)).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        }
    };
    // createInventory books the initial quantity; createInventoryMovement is POST movements/.
    let made = ask(gql(
        "mutation($p: ID!) { createInventory(input: {productId: $p, quantity: 9, lowStockThreshold: 3}) { id quantity availableQuantity stockStatus warehouse { name } } }",
        json!({"p": rake}),
    ))
    .await;
    let row = made["data"]["createInventory"].clone();
    assert_eq!(
        (row["quantity"].clone(), row["warehouse"]["name"].clone()),
        (json!(9), json!("Main Warehouse")),
        "{made}"
    );
    let moved = ask(gql(
        "mutation($p: ID!) { createInventoryMovement(input: {productId: $p, movementType: \"IN\", quantity: 4, reference: \"PO-1\"}) { quantity newQuantity reasonCode } }",
        json!({"p": hose}),
    ))
    .await;
    assert_eq!(
        moved["data"]["createInventoryMovement"],
        json!({"quantity": 4, "newQuantity": 4, "reasonCode": "restock"}),
        "{moved}"
    );

    // The workflow: reserve (payload errors when short), confirm, release.
    let short = ask(gql(
        "mutation($p: ID!) { reserveStock(input: {orderId: \"G-1\", productId: $p, quantity: 50}) { reservation { id } errors { field message } } }",
        json!({"p": rake}),
    ))
    .await;
    assert_eq!(
        short["data"]["reserveStock"]["reservation"],
        Value::Null,
        "{short}"
    );
    assert_eq!(
        short["data"]["reserveStock"]["errors"][0]["field"],
        "insufficientStock"
    );
    let held = ask(gql(
        "mutation($p: ID!, $h: ID!) { reserveStock(input: {orderId: \"G-1\", items: [{productId: $p, quantity: 2}, {productId: $h, quantity: 1}], expiresInMinutes: 30}) { reservation { id reservationNumber status items } errors { field message } } }",
        json!({"p": rake, "h": hose}),
    ))
    .await;
    let reservation = held["data"]["reserveStock"]["reservation"].clone();
    assert_eq!(reservation["status"], "active", "{held}");
    assert_eq!(held["data"]["reserveStock"]["errors"], json!([]));
    let confirmed = ask(gql(
        "mutation($r: ID!) { confirmReservation(reservationId: $r) { reservation { status } errors { field } } }",
        json!({"r": reservation["reservationNumber"]}),
    ))
    .await;
    assert_eq!(
        confirmed["data"]["confirmReservation"]["reservation"]["status"], "confirmed",
        "{confirmed}"
    );
    let refused = ask(gql(
        "mutation($r: ID!) { releaseReservation(reservationId: $r) { success errors { field message } } }",
        json!({"r": reservation["id"]}),
    ))
    .await;
    assert_eq!(
        refused["data"]["releaseReservation"]["success"], false,
        "{refused}"
    );
    assert_eq!(
        refused["data"]["releaseReservation"]["errors"][0]["field"],
        "reservationNotActive"
    );

    // adjustStock (0a47ee5 REMOVAL), updateLowStockThreshold, transferStock.
    let adjusted = ask(gql(
        "mutation($p: ID!) { adjustStock(input: {productId: $p, quantity: 2, type: \"REMOVAL\", reference: \"count\"}) { inventoryItem { quantity } movement { movementType quantity } errors { field } } }",
        json!({"p": rake}),
    ))
    .await;
    assert_eq!(
        adjusted["data"]["adjustStock"],
        json!({"inventoryItem": {"quantity": 5}, "movement": {"movementType": "ADJUSTMENT", "quantity": -2}, "errors": []}),
        "{adjusted}"
    );
    let limited = ask(gql(
        "mutation($p: ID!) { updateLowStockThreshold(input: {productId: $p, threshold: 6}) { inventoryItem { lowStockThreshold isLowStock } errors { field } } }",
        json!({"p": rake}),
    ))
    .await;
    assert_eq!(
        limited["data"]["updateLowStockThreshold"]["inventoryItem"],
        json!({"lowStockThreshold": 6, "isLowStock": true}),
        "{limited}"
    );
    let (_, north) = post(&app, &owner, "warehouses/", json!({"name": "North"})).await;
    let (_, rows, _) = app
        .get(
            &format!("{API}stock/?product_id={rake}"),
            Some(&owner.access),
        )
        .await;
    let from = rows["results"][0]["warehouse_id"].clone();
    let transferred = ask(gql(
        "mutation($p: ID!, $f: ID!, $t: ID!) { transferStock(input: {productId: $p, quantity: 1, fromWarehouseId: $f, toWarehouseId: $t}) { transfer { transferNumber toLocation } movement errors { field } } }",
        json!({"p": rake, "f": from, "t": north["id"]}),
    ))
    .await;
    let payload = transferred["data"]["transferStock"].clone();
    assert_eq!(payload["transfer"]["toLocation"], "North", "{transferred}");
    assert_eq!(payload["movement"]["quantity"], -1);
    assert_eq!(payload["movement"]["toLocation"], "North");

    // Reads: lists with where/orderBy, relations, meta, and the workflow queries.
    let listed = ask(gql(
        "query($p: Int!) { inventories(where: {productId: $p}) { id quantity reservedQuantity warehouse { name } } _inventoriesMeta { count } inventoryMovements(orderBy: \"-quantity\", limit: 2) { quantity } stockReservations { reservationNumber status } lowStockItems productInventory(productId: $p) }",
        json!({"p": rake}),
    ))
    .await;
    let data = listed["data"].clone();
    assert_eq!(
        data["inventories"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );
    assert_eq!(data["_inventoriesMeta"]["count"], 3);
    assert_eq!(data["inventoryMovements"][0]["quantity"], 9);
    assert_eq!(data["stockReservations"][0]["status"], "confirmed");
    assert_eq!(
        data["lowStockItems"].as_array().map(Vec::len),
        Some(3),
        "rake rows at 4 ≤ 6 and 1 ≤ 10, hose at 3 ≤ 10"
    );
    assert_eq!(data["productInventory"][0]["onHand"], 5);
    let aliased = ask(gql(
        "query($p: Int!) { inventoryItems(where: {productId: $p}) { id } inventoryItem(id: 1) { id } _inventoryItemsMeta { count } inventoryMovements(limit: 1, orderBy: \"created_at\") { type movementType quantityBefore quantityAfter } }",
        json!({"p": rake}),
    ))
    .await;
    assert_eq!(
        aliased["data"]["inventoryItems"].as_array().map(Vec::len),
        Some(2),
        "{aliased}"
    );
    assert_eq!(aliased["data"]["_inventoryItemsMeta"]["count"], 3);
    assert_eq!(
        aliased["data"]["inventoryMovements"][0],
        json!({"type": "IN", "movementType": "IN", "quantityBefore": 0, "quantityAfter": 9})
    );
    let fulfil = ask(gql(
        "query($p: ID!) { canFulfillOrder(items: [{productId: $p, quantity: 5}]) }",
        json!({"p": rake}),
    ))
    .await;
    assert_eq!(
        fulfil["data"]["canFulfillOrder"]["canFulfill"], true,
        "{fulfil}"
    );
    // The ledger stays immutable here too.
    let immutable = ask(gql(
        "mutation { deleteInventoryMovement(id: 1) }",
        Value::Null,
    ))
    .await;
    assert!(
        immutable["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("cannot be changed")),
        "{immutable}"
    );
    // Viewers read, and cannot reserve.
    let (_, viewer) = member(&app, &owner, "vika", "viewer").await;
    let (_, denied, _) = app
        .post(
            "/graphql/inventory",
            gql("mutation($p: ID!) { reserveStock(input: {productId: $p, quantity: 1}) { errors { field } } }", json!({"p": rake})),
            Some(&viewer),
        )
        .await;
    assert!(denied["errors"].is_array(), "{denied}");
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

/// A reservation is written at once from rows read without locks. When a row changes between
/// that read and the write, the whole statement is undone (its reservation id is spent,
/// nothing else remains) and the locked path writes the reservation from the row as it is
/// now: the held units and the event's version follow the change, nothing is held twice.
#[tokio::test]
async fn a_row_changed_between_read_and_write_is_held_under_locks_from_its_new_version() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "rhea", "Rhea Rugs").await;
    let rug = product(&app, &owner, "Rug").await;
    let stock = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": rug, "quantity": 10}),
    )
    .await;
    let row = stock["id"].as_i64().expect("row id");
    let pool = service_pool(app.platform.config(), "inventory").await;
    // (reservation ids spent, the row's version).
    let now = |pool: sqlx::PgPool| async move {
        sqlx::query_as::<_, (i64, i64)>(
            "SELECT (SELECT last_value - CASE WHEN is_called THEN 0 ELSE 1 END \
               FROM reservations_id_seq), (SELECT version FROM stock_items WHERE id = $1)",
        )
        .bind(row)
        .fetch_one(&pool)
        .await
        .expect("sequence and version")
    };
    let (ids_before, version_before) = now(pool.clone()).await;

    // Another writer changes the row and holds it until the reservation waits for it.
    let mut writer = pool.begin().await.expect("begin");
    sqlx::query("UPDATE stock_items SET version = version + 1 WHERE id = $1")
        .bind(row)
        .execute(&mut *writer)
        .await
        .expect("change");
    let body = json!({"order_id": "ORD-RACE", "items": [{"product_id": rug, "quantity": 4}]});
    let path = format!("{API}reservations/");
    let reserving = app.call(Method::POST, &path, body, &owner.access);
    let unblocking = async {
        crate::harness::eventually_true("the reservation waits for the row", || {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity \
                     WHERE datname = current_database() AND wait_event_type = 'Lock' \
                       AND query LIKE 'WITH h AS (INSERT INTO reservations%')",
                )
                .fetch_one(&pool)
                .await
                .expect("activity")
            }
        })
        .await;
        writer.commit().await.expect("commit");
    };
    let ((status, body), ()) = tokio::join!(reserving, unblocking);
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (quantity, reserved) = levels(&app, &owner, &stock["id"]).await;
    assert_eq!((quantity, reserved), (10, 4));
    let (ids_after, version) = now(pool.clone()).await;
    assert_eq!(version, version_before + 2, "the change, then the hold");
    // The undone statement's id is spent; one reservation, one line, one allocation remain.
    assert_eq!(ids_after, ids_before + 2);
    let (reservations, lines, allocations): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM reservations WHERE order_id = 'ORD-RACE'), \
           (SELECT count(*) FROM reservation_items i JOIN reservations r \
              ON r.id = i.reservation_id WHERE r.order_id = 'ORD-RACE'), \
           (SELECT count(*) FROM reservation_allocations WHERE inventory_id = $1)",
    )
    .bind(row)
    .fetch_one(&pool)
    .await
    .expect("counts");
    assert_eq!((reservations, lines, allocations), (1, 1, 1));
    // The stock event announces what was written, not the row first read: the product
    // service's copy of the row ends at its version and available units.
    let product = service_pool(app.platform.config(), "product").await;
    crate::harness::eventually_true("the product service has the row's last change", || {
        let product = product.clone();
        async move {
            sqlx::query_as::<_, (i64, i32)>(
                "SELECT version, available FROM stock_levels WHERE inventory_id = $1",
            )
            .bind(row)
            .fetch_optional(&product)
            .await
            .expect("levels")
                == Some((version_before + 2, 6))
        }
    })
    .await;
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}
