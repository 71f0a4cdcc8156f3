//! The inventory service's reference data: warehouses (one default), location types,
//! locations (a tree inside one warehouse), vendors, batches (dates), roles and tenancy.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{CrossTenant, TenantResource, TestApp};
use crate::projects::{member, owner_with_project, Owner};

const API: &str = "/api/v1/inventory/";

async fn create(app: &TestApp, owner: &Owner, path: &str, body: Value) -> Value {
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
