//! The inventory service's reference data: warehouses (one default), location types,
//! locations (a tree inside one warehouse), vendors, batches (dates), roles and tenancy.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{CrossTenant, TenantResource, TestApp};
use crate::projects::{member, owner_with_project, Owner};

const API: &str = "/api/v1/inventory/";

/// A product of the owner's project (the inventory service checks products against the
/// product service), with its id.
pub async fn product(app: &TestApp, owner: &Owner, name: &str) -> i64 {
    let (status, created) = app
        .call(
            Method::POST,
            "/api/v1/product/products/",
            json!({"name": name, "price": "10.00", "status": "active"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().expect("product id")
}

pub async fn create(app: &TestApp, owner: &Owner, path: &str, body: Value) -> Value {
    let (status, created) = app
        .call(Method::POST, &format!("{API}{path}"), body, &owner.access)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {created}");
    created
}

#[tokio::test]
async fn warehouses_locations_and_batches_keep_their_rules() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "wafa", "Wafa Wholesale").await;
    let main = create(
        &app,
        &owner,
        "warehouses/",
        json!({"name": "Main", "name_ar": "الرئيسي", "address": "Cairo", "code": "MAIN", "is_default": true}),
    )
    .await;
    assert_eq!(main["is_default"], true);
    let north = create(
        &app,
        &owner,
        "warehouses/",
        json!({"name": "North", "location": "Alexandria", "code": "NORTH"}),
    )
    .await;
    assert_eq!(
        north["address"], "Alexandria",
        "the 0a47ee5 `location` alias"
    );
    // A new default takes the flag from the old one.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("{API}warehouses/{}/", north["id"]),
            json!({"is_default": true}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, list, _) = app
        .get(
            &format!("{API}warehouses/?is_default=true"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["id"], north["id"]);
    let (status, dup) = app
        .call(
            Method::POST,
            &format!("{API}warehouses/"),
            json!({"name": "Again", "code": "main"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "codes are unique case-insensitively: {dup}"
    );
    assert!(dup["code"].is_array(), "{dup}");

    // Locations: type and parent in the same warehouse, no cycles.
    let shelf = create(
        &app,
        &owner,
        "location-types/",
        json!({"name": "Shelf", "warehouse_id": main["id"]}),
    )
    .await;
    let aisle = create(
        &app,
        &owner,
        "locations/",
        json!({"name": "Aisle A", "warehouse": main["id"], "code": "A"}),
    )
    .await;
    let bin = create(
        &app,
        &owner,
        "locations/",
        json!({"name": "A-12-B", "warehouse": main["id"], "parent_id": aisle["id"], "location_type": shelf["id"], "capacity": 40}),
    )
    .await;
    for (body, field) in [
        (
            json!({"name": "X", "warehouse": north["id"], "parent": aisle["id"]}),
            "parent",
        ),
        (
            json!({"name": "X", "warehouse": north["id"], "location_type": shelf["id"]}),
            "location_type",
        ),
        (
            json!({"name": "X", "warehouse": main["id"], "capacity": -1}),
            "capacity",
        ),
        (json!({"name": "X", "warehouse": 987_654}), "warehouse"),
    ] {
        let (status, err) = app
            .call(
                Method::POST,
                &format!("{API}locations/"),
                body.clone(),
                &owner.access,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(err[field].is_array(), "{body}: {err}");
    }
    let (status, err) = app
        .call(
            Method::PATCH,
            &format!("{API}locations/{}/", aisle["id"]),
            json!({"parent": bin["id"]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no cycles: {err}");
    let (_, children, _) = app
        .get(
            &format!("{API}locations/?parent={}", aisle["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(children["count"], 1);

    // Vendors and batches: unique numbers, dates in order, expiry flags.
    let vendor = create(
        &app,
        &owner,
        "vendors/",
        json!({"name": "Acme Supply", "email": "sales@acme.test"}),
    )
    .await;
    let batch = create(
        &app,
        &owner,
        "batches/",
        json!({"batch_number": "LOT-1", "expiry_date": "2020-01-31", "manufacture_date": "2019-12-01", "vendor_id": vendor["id"], "product_id": 7, "quantity": 100}),
    )
    .await;
    assert_eq!(batch["expiry_date"], "2020-01-31");
    assert_eq!(batch["is_expired"], true);
    let fresh = create(
        &app,
        &owner,
        "batches/",
        json!({"batch_number": "LOT-2", "expiry_date": "2999-12-31"}),
    )
    .await;
    assert_eq!(fresh["is_expired"], false);
    let (_, expired, _) = app
        .get(
            &format!("{API}batches/?is_expired=true"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(expired["count"], 1);
    for body in [
        json!({"batch_number": "LOT-1"}),
        json!({"batch_number": "LOT-3", "expiry_date": "31/12/2030"}),
        json!({"batch_number": "LOT-4", "expiry_date": "2030-01-01", "manufacture_date": "2030-02-01"}),
    ] {
        let (status, err) = app
            .call(
                Method::POST,
                &format!("{API}batches/"),
                body.clone(),
                &owner.access,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
    }
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("{API}batches/{}/", fresh["id"]),
            json!({"manufacture_date": "3000-01-01"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "checked against the stored expiry"
    );

    // Roles: viewers and editors read, only owners and admins write; anonymous is refused.
    let (_, viewer) = member(&app, &owner, "vera", "viewer").await;
    let (_, editor) = member(&app, &owner, "eddy", "editor").await;
    for token in [&viewer, &editor] {
        let (status, _, _) = app.get(&format!("{API}warehouses/"), Some(token)).await;
        assert_eq!(status, StatusCode::OK);
        let (status, _) = app
            .call(
                Method::POST,
                &format!("{API}vendors/"),
                json!({"name": "Nope"}),
                token,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    }
    let (status, _, _) = app.get(&format!("{API}warehouses/"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn inventory_reference_data_does_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "amal", "Amal Assets").await;
    let b = owner_with_project(&app, "badr", "Badr Bazaar").await;
    let warehouse = create(&app, &a, "warehouses/", json!({"name": "A's"})).await;
    for (path, body) in [
        ("warehouses/", json!({"name": "Depot"})),
        (
            "location-types/",
            json!({"name": "Bin", "warehouse": warehouse["id"]}),
        ),
        (
            "locations/",
            json!({"name": "Dock", "warehouse": warehouse["id"]}),
        ),
        ("vendors/", json!({"name": "Supplier"})),
        ("batches/", json!({"batch_number": "A-1"})),
    ] {
        let row = create(&app, &a, path, body.clone()).await;
        let mut trashed_body = body.clone();
        if let Some(n) = trashed_body.get_mut("batch_number") {
            *n = json!("A-OLD");
        }
        let trashed = create(&app, &a, path, trashed_body).await;
        let (status, _) = app
            .call(
                Method::DELETE,
                &format!("{API}{path}{}/", trashed["id"]),
                Value::Null,
                &a.access,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let list = format!("{API}{path}");
        CrossTenant {
            app: &app,
            owner: &a.access,
            owner_item: format!("{list}{}/", row["id"]),
            outsider: &b.access,
            project_a: a.project_id(),
        }
        .check(&TenantResource {
            name: "inventory reference data",
            lists: vec![list.clone(), format!("{list}trash/")],
            id: row["id"].clone(),
            items: vec![format!("{list}{}/", row["id"])],
            readable: true,
            public_read: false,
            update: Some((Method::PATCH, json!({"notes": "mine", "name": "Mine"}))),
            delete: true,
            restore: Some(format!("{list}{}/restore/", trashed["id"])),
        })
        .await;
    }
}

/// Every stock row's quantity equals the sum of its movements (inventory.md §2).
async fn ledger_differences(app: &TestApp) -> i64 {
    let pool = crate::harness::service_pool(app.platform.config(), "inventory").await;
    sqlx::query_scalar(
        "SELECT count(*) FROM stock_items s WHERE s.quantity <> \
           COALESCE((SELECT sum(m.quantity) FROM movements m WHERE m.inventory_id = s.id), 0)",
    )
    .fetch_one(&pool)
    .await
    .expect("reconciliation")
}

#[tokio::test]
async fn movements_keep_the_ledger_and_never_go_negative() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "lina", "Lina Logistics").await;
    let p101 = product(&app, &owner, "Tea").await;
    let p102 = product(&app, &owner, "Sugar").await;
    let p999 = product(&app, &owner, "Salt").await;
    let row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": p101, "quantity": 50, "low_stock_threshold": 5}),
    )
    .await;
    assert_eq!(
        (row["quantity"].clone(), row["available_quantity"].clone()),
        (json!(50), json!(50))
    );
    assert_eq!(row["stock_status"], "in_stock");
    let (_, warehouses, _) = app
        .get(&format!("{API}warehouses/"), Some(&owner.access))
        .await;
    assert_eq!(
        warehouses["results"][0]["name"], "Main Warehouse",
        "created on first booking"
    );
    assert_eq!(warehouses["results"][0]["is_default"], true);
    let (status, dup) = app
        .call(
            Method::POST,
            &format!("{API}stock/"),
            json!({"product_id": p101}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(dup["non_field_errors"].is_array(), "{dup}");

    let out = create(
        &app,
        &owner,
        "movements/",
        json!({"movement_type": "OUT", "quantity": 10, "product_id": p101, "reference": "ORD-1"}),
    )
    .await;
    assert_eq!(
        (
            out["quantity"].clone(),
            out["previous_quantity"].clone(),
            out["new_quantity"].clone(),
            out["reason_code"].clone()
        ),
        (json!(-10), json!(50), json!(40), json!("sale"))
    );
    let movement = out["id"].clone();
    let (status, short) = app
        .call(
            Method::POST,
            &format!("{API}movements/"),
            json!({"movement_type": "out", "quantity": 41, "inventory_id": row["id"]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{short}");
    assert_eq!(short["code"], "insufficient_stock");
    assert_eq!(short["details"]["available"], 40);

    // Hostile input changes nothing.
    for body in [
        json!({"movement_type": "IN", "quantity": 0, "product_id": p101}),
        json!({"movement_type": "IN", "quantity": -5, "product_id": p101}),
        json!({"movement_type": "IN", "quantity": 1_000_001, "product_id": p101}),
        json!({"movement_type": "IN", "quantity": "many", "product_id": p101}),
        json!({"movement_type": "FOO", "quantity": 1, "product_id": p101}),
        json!({"movement_type": "IN", "reason_code": "sale", "quantity": 1, "product_id": p101}),
        json!({"movement_type": "IN", "quantity": 1, "inventory_id": 987_654}),
        json!({"movement_type": "IN", "quantity": 1}),
        json!({"movement_type": "IN", "quantity": 1, "product_id": p101, "warehouse_id": 987_654}),
        json!({"movement_type": "ADJUSTMENT", "quantity": 0, "product_id": p101}),
        json!({"movement_type": "IN", "quantity": 1, "product_id": "1; DROP TABLE stock_items"}),
    ] {
        let (status, err) = app
            .call(
                Method::POST,
                &format!("{API}movements/"),
                body.clone(),
                &owner.access,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
    }
    let (_, now, _) = app
        .get(&format!("{API}stock/{}/", row["id"]), Some(&owner.access))
        .await;
    assert_eq!(now["quantity"], 40);
    let (_, ledger, _) = app
        .get(
            &format!("{API}movements/?product_id={p101}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(ledger["count"], 2, "the initial IN and the OUT: {ledger}");

    // Adjustments are signed; reserved or missing units cannot be taken.
    create(&app, &owner, "movements/", json!({"movement_type": "ADJUST", "quantity": -40, "inventory_id": row["id"], "reason_code": "count"})).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{API}movements/"),
            json!({"movement_type": "ADJUSTMENT", "quantity": -1, "inventory_id": row["id"]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = app
        .call(
            Method::POST,
            &format!("{API}movements/"),
            json!({"movement_type": "OUT", "quantity": 1, "product_id": p999}),
            &owner.access,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "no row, nothing available: {body}"
    );
    let (_, empty, _) = app
        .get(&format!("{API}items/{}/", row["id"]), Some(&owner.access))
        .await;
    assert_eq!(
        (empty["quantity"].clone(), empty["stock_status"].clone()),
        (json!(0), json!("out_of_stock"))
    );

    // The ledger is immutable; a row holding units cannot be deleted.
    for method in [Method::PATCH, Method::DELETE] {
        let (status, body) = app
            .call(
                method.clone(),
                &format!("{API}movements/{movement}/"),
                json!({"quantity": 1}),
                &owner.access,
            )
            .await;
        assert_eq!(
            (status, body["code"].clone()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!("movement_immutable")
            ),
            "{method}"
        );
    }
    let full = create(
        &app,
        &owner,
        "inventory/",
        json!({"product_id": p102, "quantity": 3}),
    )
    .await;
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("{API}stock/{}/", full["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("stock_not_empty"))
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{API}stock/{}/", row["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "an empty row can go");
    assert_eq!(ledger_differences(&app).await, 0);

    // Viewers read the ledger; editors ("staff") and up move stock.
    let (_, viewer) = member(&app, &owner, "vito", "viewer").await;
    let (status, _, _) = app.get(&format!("{API}movements/"), Some(&viewer)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{API}movements/"),
            json!({"movement_type": "IN", "quantity": 1, "product_id": p101}),
            &viewer,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn concurrent_decreases_never_oversell() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "omran", "Omran Outlet").await;
    let p7 = product(&app, &owner, "Rice").await;
    let row = create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": p7, "quantity": 50}),
    )
    .await;
    let mut sends = Vec::new();
    for n in 0..200 {
        let app = &app;
        let token = owner.access.clone();
        let id = row["id"].clone();
        sends.push(async move {
            app.call(
                Method::POST,
                &format!("{API}movements/"),
                json!({"movement_type": "OUT", "quantity": 1, "inventory_id": id, "reference": format!("ORD-{n}")}),
                &token,
            )
            .await
            .0
        });
    }
    let statuses = futures::future::join_all(sends).await;
    let sold = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNPROCESSABLE_ENTITY)
        .count();
    assert_eq!((sold, refused), (50, 150), "{statuses:?}");
    let (_, after, _) = app
        .get(&format!("{API}stock/{}/", row["id"]), Some(&owner.access))
        .await;
    assert_eq!(after["quantity"], 0);
    assert_eq!(ledger_differences(&app).await, 0);
}

#[tokio::test]
async fn stock_and_movements_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "adam", "Adam Depot").await;
    let b = owner_with_project(&app, "bana", "Bana Store").await;
    let p5 = product(&app, &a, "Oil").await;
    let p6 = product(&app, &a, "Flour").await;
    let row = create(&app, &a, "stock/", json!({"product_id": p5, "quantity": 9})).await;
    let empty = create(&app, &a, "stock/", json!({"product_id": p6})).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{API}stock/{}/", empty["id"]),
            Value::Null,
            &a.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    CrossTenant {
        app: &app,
        owner: &a.access,
        owner_item: format!("{API}stock/{}/", row["id"]),
        outsider: &b.access,
        project_a: a.project_id(),
    }
    .check(&TenantResource {
        name: "stock",
        lists: vec![
            format!("{API}stock/"),
            format!("{API}items/"),
            format!("{API}stock/trash/"),
        ],
        id: row["id"].clone(),
        items: vec![
            format!("{API}stock/{}/", row["id"]),
            format!("{API}inventory/{}/", row["id"]),
        ],
        readable: true,
        public_read: false,
        update: Some((Method::PATCH, json!({"low_stock_threshold": 1}))),
        delete: true,
        restore: Some(format!("{API}stock/{}/restore/", empty["id"])),
    })
    .await;
    // B cannot move A's stock by naming A's row.
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{API}movements/"),
            json!({"movement_type": "OUT", "quantity": 1, "inventory_id": row["id"]}),
            &b.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, ledger, _) = app.get(&format!("{API}movements/"), Some(&a.access)).await;
    let movement = ledger["results"][0]["id"].clone();
    CrossTenant {
        app: &app,
        owner: &a.access,
        owner_item: format!("{API}movements/{movement}/"),
        outsider: &b.access,
        project_a: a.project_id(),
    }
    .check(&TenantResource {
        name: "movements",
        lists: vec![format!("{API}movements/")],
        id: movement.clone(),
        items: vec![format!("{API}movements/{movement}/")],
        readable: true,
        public_read: false,
        update: None,
        delete: false,
        restore: None,
    })
    .await;
    let (_, still, _) = app
        .get(&format!("{API}stock/{}/", row["id"]), Some(&a.access))
        .await;
    assert_eq!(still["quantity"], 9);
}
