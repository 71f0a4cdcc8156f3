//! Transfers, restocks, bulk movements, reversals (inventory.md §5, §5.1) and the stock events
//! every change publishes (§8, §10).

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{service_pool, CrossTenant, TenantResource, TestApp};
use crate::inventory::{create, product};
use crate::projects::{member, owner_with_project, Owner};
use crate::reservations::reconciliation;

const API: &str = "/api/v1/inventory/";

async fn post(app: &TestApp, owner: &Owner, path: &str, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, &format!("{API}{path}"), body, &owner.access)
        .await
}

/// (quantity, reserved) of the one row of `product` in `warehouse`.
async fn level(
    app: &TestApp,
    owner: &Owner,
    product: i64,
    warehouse: &Value,
) -> Option<(i64, i64)> {
    let (_, rows, _) = app
        .get(
            &format!("{API}stock/?product_id={product}&warehouse={warehouse}"),
            Some(&owner.access),
        )
        .await;
    let row = rows["results"].as_array()?.first()?.clone();
    Some((
        row["quantity"].as_i64()?,
        row["reserved_quantity"].as_i64()?,
    ))
}

#[tokio::test]
async fn transfers_move_everything_or_nothing() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "tala", "Tala Textiles").await;
    let silk = product(&app, &owner, "Silk").await;
    let wool = product(&app, &owner, "Wool").await;
    let main = create(
        &app,
        &owner,
        "warehouses/",
        json!({"name": "Main", "is_default": true}),
    )
    .await;
    let north = create(&app, &owner, "warehouses/", json!({"name": "North"})).await;
    let shelf = create(
        &app,
        &owner,
        "locations/",
        json!({"name": "Shelf A", "warehouse_id": north["id"]}),
    )
    .await;
    create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": silk, "quantity": 10}),
    )
    .await;
    create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": wool, "quantity": 4}),
    )
    .await;

    let (status, moved) = post(
        &app,
        &owner,
        "transfers/",
        json!({
            "from_warehouse_id": main["id"], "to_warehouse_id": north["id"], "reason": "rebalance",
            "items": [{"product_id": silk, "quantity": 3}, {"product_id": wool, "quantity": 4}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{moved}");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(moved["transfer_number"]
        .as_str()
        .is_some_and(|n| n.starts_with(&format!("TRANSFER-{year}-"))));
    assert_eq!(
        moved["reference"], moved["transfer_number"],
        "the number by default"
    );
    assert_eq!(moved["status"], "completed");
    assert_eq!(
        (moved["from_location"].clone(), moved["to_location"].clone()),
        (json!("Main"), json!("North"))
    );
    assert_eq!(
        moved["items"][0],
        json!({"product_id": silk, "variant_id": null, "product_name": "Silk", "quantity": 3,
               "from_location_previous": 10, "from_location_new": 7,
               "to_location_previous": 0, "to_location_new": 3})
    );
    assert_eq!(level(&app, &owner, silk, &main["id"]).await, Some((7, 0)));
    assert_eq!(level(&app, &owner, silk, &north["id"]).await, Some((3, 0)));
    assert_eq!(level(&app, &owner, wool, &main["id"]).await, Some((0, 0)));
    let (_, halves, _) = app
        .get(
            &format!("{API}movements/?transfer_id={}", moved["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(halves["count"], 4);
    assert!(halves["results"]
        .as_array()
        .expect("results")
        .iter()
        .all(|m| m["movement_type"] == "TRANSFER"));

    // HEAD's strings: a warehouse name, and a location name (its warehouse follows).
    let (status, by_name) = post(
        &app,
        &owner,
        "transfers/",
        json!({
            "from_location": "Main", "to_location": "Shelf A", "reference": "REB-2",
            "items": [{"product_id": silk, "quantity": 2}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{by_name}");
    assert_eq!(
        (by_name["reference"].clone(), by_name["to_location"].clone()),
        (json!("REB-2"), json!("North - Shelf A"))
    );
    assert_eq!(by_name["to_location_id"], shelf["id"]);

    // Held units stay; one short line stops the whole transfer.
    let (_, _) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": silk, "quantity": 4}]}),
    )
    .await;
    for (body, expected) in [
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": north["id"],
                "items": [{"product_id": silk, "quantity": 1}, {"product_id": wool, "quantity": 1}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": north["id"],
                "items": [{"product_id": silk, "quantity": 2}]}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": main["id"],
                "items": [{"product_id": silk, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_location": "Main", "to_location": "Main",
                "items": [{"product_id": silk, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_location": "Atlantis", "to_location": "Main",
                "items": [{"product_id": silk, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": 987_654,
                "items": [{"product_id": silk, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": north["id"],
                "to_location_id": 987_654, "items": [{"product_id": silk, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": north["id"],
                "items": [{"product_id": silk, "quantity": 0}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": north["id"],
                "items": [{"product_id": silk, "quantity": -1}]}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"from_warehouse_id": main["id"], "to_warehouse_id": north["id"], "items": []}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"to_warehouse_id": north["id"], "items": [{"product_id": silk, "quantity": 1}]}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, err) = post(&app, &owner, "transfers/", body.clone()).await;
        assert_eq!(status, expected, "{body}: {err}");
    }
    assert_eq!(level(&app, &owner, silk, &main["id"]).await, Some((5, 4)));
    assert_eq!(level(&app, &owner, wool, &north["id"]).await, Some((4, 0)));
    let (_, list, _) = app
        .get(&format!("{API}transfers/"), Some(&owner.access))
        .await;
    assert_eq!(list["count"], 2);
    let (status, refused) = app
        .call(
            Method::PATCH,
            &format!("{API}transfers/{}/", moved["id"]),
            json!({"reason": "x"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, refused["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("record_immutable"))
    );
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

#[tokio::test]
async fn restocks_bulk_movements_and_reversals() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "rami", "Rami Repairs").await;
    let screw = product(&app, &owner, "Screw").await;
    let glue = product(&app, &owner, "Glue").await;
    let vendor = create(&app, &owner, "vendors/", json!({"name": "Bolt & Co"})).await;

    let (status, received) = post(
        &app,
        &owner,
        "restock/",
        json!({
            "vendor_id": vendor["id"], "supplier_reference": "PO-77", "received_date": "2026-11-20",
            "items": [{"product_id": screw, "quantity": 100, "unit_cost": "0.25"},
                      {"product_id": glue, "quantity": 5, "unit_cost": 3}]
        }),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{received}");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(received["restock_number"]
        .as_str()
        .is_some_and(|n| n.starts_with(&format!("RESTOCK-{year}-"))));
    assert_eq!(received["supplier"], "Bolt & Co", "the vendor's name");
    assert_eq!(received["total_cost"], "40.00");
    assert_eq!(
        (
            received["items"][0]["quantity_added"].clone(),
            received["items"][0]["previous_quantity"].clone(),
            received["items"][0]["new_quantity"].clone()
        ),
        (json!(100), json!(0), json!(100))
    );
    let (_, rows, _) = app
        .get(
            &format!("{API}stock/?product_id={screw}"),
            Some(&owner.access),
        )
        .await;
    assert!(rows["results"][0]["last_restocked_at"].is_string());
    for body in [
        json!({"items": [{"product_id": screw, "quantity": 1, "unit_cost": "-1"}]}),
        json!({"items": [{"product_id": screw, "quantity": 1}], "received_date": "yesterday"}),
        json!({"items": [{"product_id": screw, "quantity": 1}], "vendor_id": 987_654}),
        json!({"items": [{"product_id": 987_654_321, "quantity": 1}]}),
    ] {
        let (status, err) = post(&app, &owner, "restock/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
    }

    // Bulk OUT, reject: all or nothing.
    let (status, short) = post(
        &app,
        &owner,
        "movements/bulk/",
        json!({
            "movement_type": "OUT", "reason_code": "pos_sale", "reference": "POS-1",
            "items": [{"product_id": screw, "quantity": 10}, {"product_id": glue, "quantity": 6}]
        }),
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
    let (_, ledger, _) = app
        .get(
            &format!("{API}movements/?reference=POS-1"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(ledger["count"], 0);
    // Shortfall: what there is, reported.
    let (status, taken) = post(&app, &owner, "movements/bulk/", json!({
        "movement_type": "OUT", "reason_code": "repair", "reference": "repair:9", "on_insufficient": "shortfall",
        "items": [{"product_id": screw, "quantity": 10}, {"product_id": glue, "quantity": 6}]
    })).await;
    assert_eq!(status, StatusCode::CREATED, "{taken}");
    assert_eq!(taken["movements"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        taken["shortfall"],
        json!([{"product_id": glue, "variant_id": null, "requested": 6, "applied": 5}])
    );
    let pool = service_pool(app.platform.config(), "inventory").await;
    let shortfalls: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM zv_outbox WHERE event_type = 'inventory.shortfall'",
    )
    .fetch_one(&pool)
    .await
    .expect("outbox");
    assert_eq!(shortfalls, 1);
    let (status, added) = post(&app, &owner, "movements/bulk/", json!({
        "movement_type": "IN", "reason_code": "repair_return", "items": [{"product_id": glue, "quantity": 2}]
    })).await;
    assert_eq!(
        (status, added["shortfall"].clone()),
        (StatusCode::CREATED, json!([]))
    );
    for body in [
        json!({"movement_type": "ADJUSTMENT", "items": [{"product_id": glue, "quantity": 1}]}),
        json!({"movement_type": "OUT", "on_insufficient": "borrow", "items": [{"product_id": glue, "quantity": 1}]}),
        json!({"movement_type": "OUT", "reason_code": "restock", "items": [{"product_id": glue, "quantity": 1}]}),
    ] {
        let (status, _) = post(&app, &owner, "movements/bulk/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    // A reversal is the opposite movement, once.
    let sale = taken["movements"][0].clone();
    assert_eq!(sale["quantity"], -10);
    let reverse = format!("movements/{}/reverse/", sale["id"]);
    let (_, editor) = member(&app, &owner, "emad", "editor").await;
    let (status, _) = app
        .call(Method::POST, &format!("{API}{reverse}"), json!({}), &editor)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "admins and owners only");
    let (status, undone) = post(&app, &owner, &reverse, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{undone}");
    assert_eq!(
        (
            undone["quantity"].clone(),
            undone["reference"].clone(),
            undone["reversal_of"].clone()
        ),
        (
            json!(10),
            json!(format!("reverse:{}", sale["id"])),
            sale["id"].clone()
        )
    );
    let (status, again) = post(&app, &owner, &reverse, json!({})).await;
    assert_eq!(
        (status, again["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("movement_already_reversed")
        )
    );
    let (status, again) = post(
        &app,
        &owner,
        &format!("movements/{}/reverse/", undone["id"]),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, again["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("movement_is_reversal")
        )
    );
    // Reversing a receipt whose units are gone would go negative.
    let first_in = received["items"][1].clone();
    assert_eq!(first_in["product_id"], glue);
    let (_, glue_ledger, _) = app
        .get(
            &format!("{API}movements/?product_id={glue}&reason_code=restock"),
            Some(&owner.access),
        )
        .await;
    let receipt = glue_ledger["results"][0]["id"].clone();
    let (status, body) = post(
        &app,
        &owner,
        &format!("movements/{receipt}/reverse/"),
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("insufficient_stock")
        ),
        "{body}"
    );
    let (status, _) = post(&app, &owner, "movements/987654/reverse/", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Concurrent reversals of one movement: one wins.
    let (_, fresh) = post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "OUT", "quantity": 1, "product_id": screw}),
    )
    .await;
    let path = format!("movements/{}/reverse/", fresh["id"]);
    let tries = (0..10).map(|_| post(&app, &owner, &path, json!({})));
    let answers = futures::future::join_all(tries).await;
    assert_eq!(
        answers
            .iter()
            .filter(|(s, _)| *s == StatusCode::CREATED)
            .count(),
        1,
        "{answers:?}"
    );
    assert!(answers
        .iter()
        .all(|(s, _)| *s == StatusCode::CREATED || *s == StatusCode::UNPROCESSABLE_ENTITY));
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}

#[tokio::test]
async fn every_change_publishes_levels_and_crossings() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "kamal", "Kamal Kitchen").await;
    let pan = product(&app, &owner, "Pan").await;
    let row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": pan, "quantity": 12, "low_stock_threshold": 5}),
    )
    .await;
    let id = row["id"].clone();
    // 0 → 12 (above the threshold: restocked) → 6 → 4 (low) → 3 (still low: no second alert) → 0 (out) → 8 (restocked).
    for (kind, quantity) in [("OUT", 6), ("OUT", 2), ("OUT", 1), ("OUT", 3), ("IN", 8)] {
        let (status, body) = post(
            &app,
            &owner,
            "movements/",
            json!({"movement_type": kind, "quantity": quantity, "inventory_id": id}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // A reservation moves availability too: 8 → 2 (low).
    let (_, held) = post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": pan, "quantity": 6}]}),
    )
    .await;
    let pool = service_pool(app.platform.config(), "inventory").await;
    let events: Vec<(String, Value)> = sqlx::query_as(
        "SELECT event_type, envelope->'data' FROM zv_outbox WHERE event_type LIKE 'inventory.%' \
         AND event_type NOT LIKE 'inventory.reservation%' ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox");
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        vec![
            "inventory.stock_changed",
            "inventory.restocked",
            "inventory.stock_changed",
            "inventory.stock_changed",
            "inventory.low_stock",
            "inventory.stock_changed",
            "inventory.stock_changed",
            "inventory.out_of_stock",
            "inventory.stock_changed",
            "inventory.restocked",
            "inventory.stock_changed",
            "inventory.low_stock",
        ]
    );
    let levels: Vec<(i64, i64, i64)> = events
        .iter()
        .filter(|(k, _)| k == "inventory.stock_changed")
        .map(|(_, d)| {
            (
                d["availableQuantity"].as_i64().unwrap_or(-1),
                d["delta"].as_i64().unwrap_or(-1),
                d["version"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        levels,
        vec![
            (12, 12, 1),
            (6, -6, 2),
            (4, -2, 3),
            (3, -1, 4),
            (0, -3, 5),
            (8, 8, 6),
            (2, 0, 7)
        ]
    );
    let (_, alert) = &events[4];
    assert_eq!(alert["threshold"], 5);
    assert_eq!(alert["availableQuantity"], 4);
    let created: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM zv_outbox WHERE event_type = 'inventory.reservation_created'",
    )
    .fetch_one(&pool)
    .await
    .expect("outbox");
    assert_eq!(created, 1);
    post(
        &app,
        &owner,
        &format!("reservations/{}/release/", held["id"]),
        json!({}),
    )
    .await;
    let released: Value = sqlx::query_scalar("SELECT envelope->'data' FROM zv_outbox WHERE event_type = 'inventory.reservation_released'")
        .fetch_one(&pool)
        .await
        .expect("outbox");
    assert_eq!(
        released["items"],
        json!([{"productId": pan, "variantId": null, "quantity": 6}])
    );
    assert_eq!(released["reason"], "manual");
}

#[tokio::test]
async fn transfers_and_restocks_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "aziz", "Aziz Audio").await;
    let b = owner_with_project(&app, "bushra", "Bushra Bakery").await;
    let speaker = product(&app, &a, "Speaker").await;
    let (_, received) = post(
        &app,
        &a,
        "restock/",
        json!({"items": [{"product_id": speaker, "quantity": 6}]}),
    )
    .await;
    let main = received["warehouse_id"].clone();
    let north = create(&app, &a, "warehouses/", json!({"name": "North"})).await;
    let (_, moved) = post(&app, &a, "transfers/", json!({"from_warehouse_id": main, "to_warehouse_id": north["id"], "items": [{"product_id": speaker, "quantity": 2}]})).await;
    for (name, item) in [("transfers", &moved), ("restock", &received)] {
        CrossTenant {
            app: &app,
            owner: &a.access,
            owner_item: format!("{API}{name}/{}/", item["id"]),
            outsider: &b.access,
            project_a: a.project_id(),
        }
        .check(&TenantResource {
            name,
            lists: vec![format!("{API}{name}/")],
            id: item["id"].clone(),
            items: vec![format!("{API}{name}/{}/", item["id"])],
            readable: true,
            public_read: false,
            update: None,
            delete: false,
            restore: None,
        })
        .await;
    }
    // B cannot move A's stock between A's warehouses, nor book into them.
    let b_product = product(&app, &b, "Bread").await;
    let (status, _) = post(&app, &b, "transfers/", json!({"from_warehouse_id": main, "to_warehouse_id": north["id"], "items": [{"product_id": b_product, "quantity": 1}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(
        &app,
        &b,
        "restock/",
        json!({"warehouse_id": north["id"], "items": [{"product_id": b_product, "quantity": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post(
        &app,
        &b,
        "movements/bulk/",
        json!({"movement_type": "OUT", "items": [{"product_id": speaker, "quantity": 1}]}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, ledger, _) = app.get(&format!("{API}movements/"), Some(&a.access)).await;
    let first = ledger["results"][0]["id"].clone();
    let (status, _) = post(&app, &b, &format!("movements/{first}/reverse/"), json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(level(&app, &a, speaker, &north["id"]).await, Some((2, 0)));
}

#[tokio::test]
async fn counts_moves_alerts_and_availability() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "nadia", "Nadia Nursery").await;
    let seed = product(&app, &owner, "Seeds").await;
    let pot = product(&app, &owner, "Pot").await;
    let soil = product(&app, &owner, "Soil").await;
    let main = create(
        &app,
        &owner,
        "warehouses/",
        json!({"name": "Main", "is_default": true}),
    )
    .await;
    let lot = create(
        &app,
        &owner,
        "batches/",
        json!({"batch_number": "S-1", "expiry_date": "2999-01-01"}),
    )
    .await;
    let seeds = create(&app, &owner, "stock/", json!({"product_id": seed, "quantity": 20, "batch_id": lot["id"], "low_stock_threshold": 5})).await;
    let pots = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": pot, "quantity": 4, "low_stock_threshold": 10}),
    )
    .await;
    let soils = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": soil, "quantity": 0}),
    )
    .await;
    let path = |row: &Value| format!("{API}stock/{}/", row["id"]);
    // A row reads with its product, warehouse and batch, and its latest movements.
    assert_eq!(seeds["product"]["name"], "Seeds", "{seeds}");
    assert_eq!(
        (seeds["warehouse"].clone(), seeds["warehouse_id"].clone()),
        (
            json!({"id": main["id"], "name": "Main"}),
            main["id"].clone()
        )
    );
    assert_eq!(
        (seeds["batch"].clone(), seeds["batch_id"].clone()),
        (json!("S-1"), lot["id"].clone())
    );
    assert_eq!(seeds["quantity_on_hand"], 20);
    assert_eq!(seeds["recent_movements"][0]["reason_code"], "initial");

    // A count books the difference as an ADJUSTMENT; it cannot go below what is held.
    post(
        &app,
        &owner,
        "reservations/",
        json!({"items": [{"product_id": seed, "quantity": 6}]}),
    )
    .await;
    let (status, counted) = app
        .call(
            Method::PATCH,
            &path(&seeds),
            json!({"quantity": 18}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{counted}");
    assert_eq!(
        (
            counted["quantity"].clone(),
            counted["available_quantity"].clone()
        ),
        (json!(18), json!(12))
    );
    let (_, counts, _) = app
        .get(
            &format!(
                "{API}movements/?inventory_id={}&reason_code=count",
                seeds["id"]
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(counts["results"][0]["quantity"], -2);
    let (status, body) = app
        .call(
            Method::PATCH,
            &path(&seeds),
            json!({"quantity_on_hand": 5}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("insufficient_stock")
        )
    );
    let (status, _) = app
        .call(
            Method::PATCH,
            &path(&seeds),
            json!({"quantity": -1}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A row holding units does not move; an empty one does.
    let north = create(&app, &owner, "warehouses/", json!({"name": "North"})).await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &path(&pots),
            json!({"warehouse_id": north["id"]}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("stock_not_empty"))
    );
    let (status, body) = app
        .call(
            Method::PATCH,
            &path(&soils),
            json!({"warehouse_id": north["id"]}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["warehouse_id"].clone()),
        (StatusCode::OK, north["id"].clone()),
        "{body}"
    );
    let (status, _) = app
        .call(
            Method::PATCH,
            &path(&soils),
            json!({"warehouse_id": 987_654}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Warehouses and batches with units on hand stay.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("{API}warehouses/{}/", main["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("warehouse_not_empty")
        )
    );
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("{API}batches/{}/", lot["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("stock_not_empty"))
    );
    let (_, batch, _) = app
        .get(&format!("{API}batches/{}/", lot["id"]), Some(&owner.access))
        .await;
    assert_eq!(batch["quantity_on_hand"], 18);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{API}warehouses/{}/", north["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "an empty warehouse goes");

    // Alerts: soil (0) and pots (4 of 10, not above half) are critical; seeds (12 of 5) fine.
    let (status, alerts, _) = app
        .get(&format!("{API}alerts/low_stock/"), Some(&owner.access))
        .await;
    assert_eq!(status, StatusCode::OK, "{alerts}");
    assert_eq!(alerts["count"], 2);
    assert_eq!(alerts["results"][0]["product"]["name"], "Soil");
    assert_eq!(alerts["results"][0]["severity"], "critical");
    assert_eq!(
        alerts["results"][0]["suggested_action"],
        "Immediate restock recommended"
    );
    post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "IN", "quantity": 3, "inventory_id": pots["id"]}),
    )
    .await;
    let (_, warning, _) = app
        .get(
            &format!("{API}alerts/low-stock/?severity=warning"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(warning["count"], 1, "{warning}");
    assert_eq!(warning["results"][0]["product_id"], pot);
    let (_, arabic, _) = app
        .send(
            app.client
                .get(app.url(&format!("{API}alerts/low_stock/?severity=warning")))
                .bearer_auth(&owner.access)
                .header("Accept-Language", "ar"),
        )
        .await;
    assert_eq!(
        arabic["results"][0]["suggested_action"],
        "خطط لإعادة التخزين خلال 3 أيام"
    );
    let (status, _, _) = app
        .get(
            &format!("{API}alerts/low_stock/?severity=panic"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // 0a47ee5's batch number and HEAD's location name name a row; lists search the replica.
    let bin = create(
        &app,
        &owner,
        "locations/",
        json!({"name": "Bin 7", "warehouse_id": main["id"]}),
    )
    .await;
    let (status, booked) = post(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "IN", "quantity": 1, "product_id": seed, "batch": "S-1"}),
    )
    .await;
    assert_eq!(
        (status, booked["inventory_id"].clone()),
        (StatusCode::CREATED, seeds["id"].clone()),
        "{booked}"
    );
    let (status, binned) = post(&app, &owner, "movements/", json!({"movement_type": "IN", "quantity": 2, "product_id": soil, "warehouse_id": main["id"], "location": "Bin 7"})).await;
    assert_eq!(status, StatusCode::CREATED, "{binned}");
    let (_, row, _) = app
        .get(
            &format!("{API}stock/{}/", binned["inventory_id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (row["location_id"].clone(), row["location"].clone()),
        (bin["id"].clone(), json!("Main - Bin 7"))
    );
    for (body, field) in [
        (
            json!({"movement_type": "IN", "quantity": 1, "product_id": seed, "batch": "NOPE"}),
            "batch",
        ),
        (
            json!({"movement_type": "IN", "quantity": 1, "product_id": seed, "location": "Attic"}),
            "location",
        ),
    ] {
        let (status, err) = post(&app, &owner, "movements/", body).await;
        assert_eq!(
            (status, err[field].is_array()),
            (StatusCode::BAD_REQUEST, true),
            "{err}"
        );
    }
    let (_, found, _) = app
        .get(
            &format!("{API}stock/?search=seeds&ordering=product__name"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(found["count"], 1, "{found}");
    let (_, ordered, _) = app
        .get(
            &format!("{API}stock/?ordering=product__name"),
            Some(&owner.access),
        )
        .await;
    let names: Vec<Value> = ordered["results"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["product"]["name"].clone())
        .collect();
    assert_eq!(names.first(), Some(&json!("Pot")), "{names:?}");
    let (_, counts, _) = app
        .get(
            &format!("{API}movements/?movement_type=count"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        counts["count"], 1,
        "HEAD's lowercase type filters the reason"
    );
    let (_, ins, _) = app
        .get(
            &format!("{API}movements/?movement_type=in&product_id={soil}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(ins["count"], 1);
    let today = chrono::Utc::now().format("%Y-%m-%d");
    let (_, dated, _) = app
        .get(
            &format!("{API}movements/?date_from={today}&end_date={today}&product_id={soil}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(dated["count"], 1);
    let (_, none, _) = app
        .get(
            &format!("{API}movements/?date_to=2001-01-01"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(none["count"], 0);
    let (status, _, _) = app
        .get(
            &format!("{API}movements/?date_from=yesterday"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, pending, _) = app
        .get(
            &format!("{API}reservations/?status=pending"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(pending["count"], 1, "pending is the filter alias of active");

    // Availability per product, and whether an order can be fulfilled.
    let (status, levels, _) = app
        .get(
            &format!("{API}availability/?product_id={seed},{pot},{soil}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{levels}");
    assert_eq!(
        levels[0],
        json!({"product_id": seed, "variant_id": null, "on_hand": 19, "reserved": 6, "available": 13,
               "is_low_stock": false, "is_out_of_stock": false, "stock_status": "in_stock"})
    );
    assert_eq!(
        levels[2]["stock_status"], "low_stock",
        "soil: the 2 units put in Bin 7"
    );
    let (status, _, _) = app
        .get(
            &format!("{API}availability/?product_id=abc"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = post(&app, &owner, "availability/check/", json!({"items": [
        {"product_id": seed, "quantity": 10}, {"product_id": seed, "quantity": 4}, {"product_id": pot, "quantity": 7}
    ]})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer,
        json!({"can_fulfill": false, "unavailable_items": [
            {"product_id": seed, "variant_id": null, "requested_quantity": 14, "available_quantity": 13}
        ]})
    );
    let (_, yes) = post(
        &app,
        &owner,
        "availability/check/",
        json!({"items": [{"product_id": pot, "quantity": 7}]}),
    )
    .await;
    assert_eq!(yes["can_fulfill"], true);
    assert_eq!(reconciliation(&app).await, (0, 0, 0));
}
