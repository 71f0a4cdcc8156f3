//! How product pages are read: final prices kept on the row (and still right when a discount
//! starts or ends with no write), cached public pages that never reach the database.

use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::catalogue::create;
use crate::harness::{count_queries, read, service_pool, TestApp};
use crate::projects::{owner_with_project, Owner};

const PRODUCTS: &str = "/api/v1/product/products/";
const DISCOUNTS: &str = "/api/v1/product/products/discounts/";

/// The final price a member reads.
async fn final_price(app: &TestApp, owner: &Owner, id: &Value) -> Value {
    read(app, owner, &format!("{PRODUCTS}{id}/")).await["final_price"].clone()
}

#[tokio::test]
async fn final_prices_are_kept_on_the_row_and_follow_the_clock() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "fay", "Fay Fabrics").await;
    let db = service_pool(app.platform.config(), "product").await;
    let stored = |id: i64| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, Option<String>>(
                "SELECT round(final_price, 2)::text FROM products WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&db)
            .await
            .expect("row")
        }
    };
    let scarf = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Scarf", "price": "40"}),
    )
    .await;
    let id = scarf["id"].as_i64().expect("id");
    assert_eq!(scarf["final_price"], "40.00");
    assert_eq!(
        stored(id).await.as_deref(),
        Some("40.00"),
        "priced on insert"
    );

    // A rule written: every product of the project is priced again in that transaction.
    create(
        &app,
        &owner,
        DISCOUNTS,
        json!({"name": "Quarter off", "discount_type": "percentage", "value": "25", "applies_to": "all"}),
    )
    .await;
    assert_eq!(
        stored(id).await.as_deref(),
        Some("30.00"),
        "repriced by the rule"
    );
    assert_eq!(final_price(&app, &owner, &scarf["id"]).await, "30.00");
    // A price written: the row carries the new final price.
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("{PRODUCTS}{id}/"),
            json!({"price": "80"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored(id).await.as_deref(), Some("60.00"));

    // A discount that starts in two seconds: nothing is written when it starts, yet the price
    // read after that moment is the discounted one (the row's price is only good until then).
    let starts = chrono::Utc::now() + chrono::Duration::seconds(2);
    create(
        &app,
        &owner,
        DISCOUNTS,
        json!({"name": "Flash", "discount_type": "fixed", "value": "50", "applies_to": "all",
               "starts_at": starts.to_rfc3339()}),
    )
    .await;
    assert_eq!(final_price(&app, &owner, &scarf["id"]).await, "60.00");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        stored(id).await.as_deref(),
        Some("60.00"),
        "no write happened"
    );
    assert_eq!(final_price(&app, &owner, &scarf["id"]).await, "30.00");
    let page = read(&app, &owner, PRODUCTS).await;
    assert_eq!(page["results"][0]["final_price"], "30.00", "{page}");

    // Rows written behind the API (bulk loads) are priced too.
    sqlx::query(
        "INSERT INTO products (project_id, name_en, slug, price) VALUES ($1, 'Bulk', 'bulk', 100)",
    )
    .bind(owner.project_id())
    .execute(&db)
    .await
    .expect("insert");
    let bulk: Option<String> = sqlx::query_scalar(
        "SELECT round(final_price, 2)::text FROM products WHERE slug = 'bulk' AND project_id = $1",
    )
    .bind(owner.project_id())
    .fetch_one(&db)
    .await
    .expect("bulk");
    assert_eq!(
        bulk.as_deref(),
        Some("50.00"),
        "both discounts active: 50 off wins"
    );
}

#[tokio::test]
async fn a_cached_public_page_makes_no_database_round_trip() {
    let queries = count_queries();
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "cass", "Cass Cameras").await;
    for n in 0..3 {
        create(
            &app,
            &owner,
            PRODUCTS,
            json!({"name": format!("Camera {n}"), "price": "10", "status": "active"}),
        )
        .await;
    }
    let read = || async {
        let req = app
            .client
            .get(app.url(PRODUCTS))
            .header("X-Project-ID", owner.project_id());
        let before = queries.load(Ordering::SeqCst);
        let (status, page, _) = app.send(req).await;
        assert_eq!((status, page["count"].clone()), (StatusCode::OK, json!(3)));
        queries.load(Ordering::SeqCst) - before
    };
    assert!(read().await > 0, "the first read fills the cache");
    // Background jobs run statements now and then: the fewest of three reads is counted.
    let mut fewest = usize::MAX;
    for _ in 0..3 {
        fewest = fewest.min(read().await);
    }
    assert_eq!(fewest, 0, "a cache hit reads no row");
}

#[tokio::test]
async fn a_deleted_project_is_not_public_any_more() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "dora", "Dora Dresses").await;
    create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Dress", "price": "30", "status": "active"}),
    )
    .await;
    let public = || {
        app.client
            .get(app.url(PRODUCTS))
            .header("X-Project-ID", owner.project_id())
    };
    // Read once: the project is now remembered as live.
    let (status, page, _) = app.send(public()).await;
    assert_eq!((status, page["count"].clone()), (StatusCode::OK, json!(1)));
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/project/projects/{}/", owner.project_id()),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, _) = app.send(public()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}
