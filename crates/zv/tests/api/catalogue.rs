//! The resource machinery through the product service's reference resources: CRUD, trash and
//! restore, translations, full-text search, public reads, roles, hostile input, tenancy.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{count_queries, s, CrossTenant, TenantResource, TestApp};
use crate::projects::{member, owner_with_project, Owner};

const CATEGORIES: &str = "/api/v1/product/products/categories/";

pub(crate) async fn create(app: &TestApp, owner: &Owner, path: &str, body: Value) -> Value {
    let (status, created) = app.call(Method::POST, path, body, &owner.access).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created
}

#[tokio::test]
async fn categories_form_a_tree_with_trash_and_restore() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "cleo", "Cleo Computers").await;
    let root = create(
        &app,
        &owner,
        CATEGORIES,
        json!({"name": "Computers", "name_ar": "حواسيب", "order": 2}),
    )
    .await;
    assert_eq!(root["slug"], "computers");
    assert_eq!(
        (root["level"].clone(), root["path"].clone()),
        (json!(0), json!([root["id"]]))
    );
    assert_eq!(root["created_by"], owner.id);
    let laptops = create(
        &app,
        &owner,
        CATEGORIES,
        json!({"name": "Laptops", "parent_id": root["id"]}),
    )
    .await;
    let gaming = create(
        &app,
        &owner,
        CATEGORIES,
        json!({"name": "Gaming Laptops", "parent": laptops["id"]}),
    )
    .await;
    assert_eq!(gaming["level"], 2);
    assert_eq!(
        gaming["path"],
        json!([root["id"], laptops["id"], gaming["id"]])
    );
    let (_, detail, _) = app
        .get(&format!("{CATEGORIES}{}/", root["id"]), Some(&owner.access))
        .await;
    assert_eq!(
        detail["children"],
        json!([{"id": laptops["id"], "name": "Laptops", "slug": "laptops"}])
    );
    // Same name again: the next free slug; an explicit duplicate is refused.
    let again = create(&app, &owner, CATEGORIES, json!({"name": "Computers"})).await;
    assert_eq!(again["slug"], "computers-2");
    let (status, dup) = app
        .call(
            Method::POST,
            CATEGORIES,
            json!({"name": "X", "slug": "computers"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{dup}");
    assert!(dup["slug"].is_array());

    // No cycles: not its own parent, not below itself.
    for parent in [&root["id"], &gaming["id"]] {
        let (status, body) = app
            .call(
                Method::PATCH,
                &format!("{CATEGORIES}{}/", root["id"]),
                json!({"parent": parent}),
                &owner.access,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["parent"][0], "Category cannot be its own ancestor.");
    }
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("{CATEGORIES}{}/", root["id"]),
            json!({"parent": 999_999}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["parent"][0].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("Invalid pk \"999999\" - object does not exist.")
        )
    );

    // Protected while it has children; a leaf goes to the trash and comes back.
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("{CATEGORIES}{}/", laptops["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("protected"))
    );
    let gaming_path = format!("{CATEGORIES}{}/", gaming["id"]);
    let (status, _) = app
        .call(Method::DELETE, &gaming_path, Value::Null, &owner.access)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.get(&gaming_path, Some(&owner.access)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, trash, _) = app
        .get(&format!("{CATEGORIES}trash/"), Some(&owner.access))
        .await;
    assert_eq!(
        (trash["count"].clone(), trash["results"][0]["id"].clone()),
        (json!(1), gaming["id"].clone())
    );
    assert!(trash["results"][0]["deleted_at"].is_string());
    let (status, restored) = app
        .call(
            Method::POST,
            &format!("{gaming_path}restore/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, restored["deleted_at"].clone()),
        (StatusCode::OK, Value::Null)
    );
    let (status, again) = app
        .call(
            Method::POST,
            &format!("{gaming_path}restore/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, again["id"].clone()),
        (StatusCode::OK, gaming["id"].clone()),
        "restoring a live row is a no-op"
    );
    // A slug taken while it was in the trash blocks its restore.
    let (_, _) = app
        .call(Method::DELETE, &gaming_path, Value::Null, &owner.access)
        .await;
    create(&app, &owner, CATEGORIES, json!({"name": "Gaming Laptops"})).await;
    let (status, body) = app
        .call(
            Method::POST,
            &format!("{gaming_path}restore/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("restore_conflict"))
    );

    // Roots only, ordering, absolute page links.
    let (_, roots, _) = app
        .get(
            &format!("{CATEGORIES}?parent=null&ordering=-order"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(roots["results"][0]["id"], root["id"], "{roots}");
    let (_, page, _) = app
        .get(&format!("{CATEGORIES}?page_size=1"), Some(&owner.access))
        .await;
    assert!(
        s(&page["next"]).starts_with("http://")
            && s(&page["next"]).contains("/api/v1/product/products/categories/?page_size=1&page=2"),
        "{page}"
    );
    // The root-level alias.
    let (status, alias, _) = app
        .get("/api/v1/product/categories/", Some(&owner.access))
        .await;
    assert_eq!(
        (status, alias["count"].clone()),
        (StatusCode::OK, page["count"].clone())
    );
}

#[tokio::test]
async fn translations_search_and_public_reads() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "lina", "Lina Lights").await;
    let brands = "/api/v1/product/products/brands/";
    let laptop = create(&app, &owner, brands, json!({"name_en": "Laptop House", "name_ar": "بيت الحاسوب", "description": "Portable computers"})).await;
    create(
        &app,
        &owner,
        brands,
        json!({"name": "Lamp World", "name_fr": "Monde des lampes"}),
    )
    .await;
    let id = laptop["id"].clone();
    // Language: Accept-Language, the URL prefix, fallback to English; raw twins always.
    let req = app
        .client
        .get(app.url(&format!("{brands}{id}/")))
        .bearer_auth(&owner.access)
        .header("Accept-Language", "ar-SA,ar;q=0.9");
    let (_, ar, _) = app.send(req).await;
    assert_eq!(
        (ar["name"].clone(), ar["name_en"].clone()),
        (json!("بيت الحاسوب"), json!("Laptop House"))
    );
    let (_, fr, _) = app
        .get(
            &format!("/fr/api/v1/product/products/brands/{id}/"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (fr["name"].clone(), fr["name_fr"].clone()),
        (json!("Laptop House"), Value::Null)
    );
    // Writing `name` under a language writes that language only.
    let req = app
        .client
        .patch(app.url(&format!("{brands}{id}/")))
        .bearer_auth(&owner.access)
        .header("Accept-Language", "fr")
        .json(&json!({"name": "Maison du portable"}));
    let (status, patched, _) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(
        (patched["name_fr"].clone(), patched["name_en"].clone()),
        (json!("Maison du portable"), json!("Laptop House"))
    );

    // Search: Arabic, English stems, French, substrings; relevance without ordering.
    for (term, expect) in [
        ("الحاسوب", 1),
        ("computer", 1),
        ("lampes", 1),
        ("Hou", 1),
        ("zzz", 0),
        ("Laptop World", 0),
    ] {
        let (status, found, _) = app
            .get(
                &format!("{brands}?search={}", urlencode(term)),
                Some(&owner.access),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(found["count"], expect, "{term}: {found}");
    }

    // Public reads: anonymous with X-Project-ID sees active rows only; writes need a member.
    let collections = "/api/v1/product/products/collections/";
    create(&app, &owner, collections, json!({"name": "Summer"})).await;
    create(
        &app,
        &owner,
        collections,
        json!({"name": "Hidden", "is_active": false}),
    )
    .await;
    let anon = |path: &str| {
        app.client
            .get(app.url(path))
            .header("X-Project-ID", owner.project_id())
    };
    let (status, public, _) = app.send(anon(collections)).await;
    assert_eq!(
        (status, public["count"].clone()),
        (StatusCode::OK, json!(1)),
        "{public}"
    );
    let (_, members_view, _) = app.get(collections, Some(&owner.access)).await;
    assert_eq!(members_view["count"], 2);
    let (status, body, _) = app.get(collections, None).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("project_required"))
    );
    let (status, _, _) = app
        .send(
            app.client
                .get(app.url(collections))
                .header("X-Project-ID", 987_654),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let req = app
        .client
        .post(app.url(collections))
        .header("X-Project-ID", owner.project_id())
        .json(&json!({"name": "x"}));
    let (status, _, _) = app.send(req).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A signed-in non-member reads publicly too.
    app.user("nora", false).await;
    let (nora, _) = app.login("nora").await;
    let (status, seen, _) = app.send(anon(collections).bearer_auth(&nora)).await;
    assert_eq!((status, seen["count"].clone()), (StatusCode::OK, json!(1)));

    // Editors and viewers read; only owners and admins write.
    let (_, editor) = member(&app, &owner, "ed", "editor").await;
    let (status, _) = app
        .call(Method::POST, brands, json!({"name": "Mine"}), &editor)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{brands}{id}/"),
            Value::Null,
            &editor,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app.get(&format!("{brands}{id}/"), Some(&editor)).await;
    assert_eq!(status, StatusCode::OK);
    let (_, admin) = member(&app, &owner, "ada", "admin").await;
    let (status, _) = app
        .call(Method::POST, brands, json!({"name": "Admin brand"}), &admin)
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn hostile_input_changes_nothing() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "hana", "Hana Hardware").await;
    let tags = "/api/v1/product/products/tags/";
    let sale = create(
        &app,
        &owner,
        tags,
        json!({"name": "Sale", "color": "#ff0000"}),
    )
    .await;
    assert_eq!(sale["color"], "#FF0000");
    for body in [
        json!({"name": "SALE"}),
        json!({"name": "x", "color": "red"}),
        json!({"name": ""}),
        json!({"name": "x".repeat(101)}),
        json!({"name": 5}),
        json!({}),
        json!([{"name": "list"}]),
    ] {
        let (status, out) = app
            .call(Method::POST, tags, body.clone(), &owner.access)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {out}");
    }
    let sql = "'; DROP TABLE tags; --";
    let odd = create(&app, &owner, tags, json!({"name": sql})).await;
    assert_eq!(odd["name"], sql, "stored as text, never as SQL");
    for query in [
        "?nosuch=1",
        "?name__regex=x",
        "?ordering=password",
        "?page_size=abc",
    ] {
        let (status, body, _) = app
            .get(&format!("{tags}{query}"), Some(&owner.access))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    for query in ["?page=9999", "?page=0"] {
        let (status, _, _) = app
            .get(&format!("{tags}{query}"), Some(&owner.access))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{query}: Invalid page.");
    }
    let (status, big, _) = app
        .get(&format!("{tags}?page_size=1000"), Some(&owner.access))
        .await;
    assert_eq!((status, big["count"].clone()), (StatusCode::OK, json!(2)));
    let (status, _, _) = app.get(&format!("{tags}abc/"), Some(&owner.access)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("{tags}{}/", sale["id"]),
            json!({"name": "sale"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "same tag, new case: {body}");
    let (_, list, _) = app.get(tags, Some(&owner.access)).await;
    assert_eq!(list["count"], 2, "nothing else was created");
    // Read-only and unknown fields are ignored.
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("{tags}{}/", sale["id"]),
            json!({"id": 999, "project_id": 1, "created_by": 5, "bogus": true}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["id"].clone(), body["created_by"].clone()),
        (StatusCode::OK, sale["id"].clone(), json!(owner.id))
    );
}

#[tokio::test]
async fn catalogue_resources_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "amir", "Amir A").await;
    let b = owner_with_project(&app, "bilal", "Bilal B").await;
    for (path, body) in [
        (
            "/api/v1/product/products/categories/",
            json!({"name": "Phones"}),
        ),
        ("/api/v1/product/products/tags/", json!({"name": "New"})),
        ("/api/v1/product/products/brands/", json!({"name": "Acme"})),
        (
            "/api/v1/product/products/collections/",
            json!({"name": "Winter"}),
        ),
    ] {
        let row = create(&app, &a, path, body).await;
        let id = &row["id"];
        // One row in the trash too: B cannot see or restore it either.
        let trashed = create(&app, &a, path, json!({"name": "Old"})).await;
        let (status, _) = app
            .call(
                Method::DELETE,
                &format!("{path}{}/", trashed["id"]),
                Value::Null,
                &a.access,
            )
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let alias = path.replace("/products/", "/");
        CrossTenant {
            app: &app,
            owner: &a.access,
            owner_item: format!("{path}{id}/"),
            outsider: &b.access,
            project_a: a.project_id(),
        }
        .check(&TenantResource {
            name: path,
            lists: vec![path.to_owned(), format!("{path}trash/"), alias.clone()],
            id: id.clone(),
            items: vec![format!("{path}{id}/"), format!("{alias}{id}/")],
            readable: true,
            public_read: true,
            update: Some((Method::PATCH, json!({"name": "Mine"}))),
            delete: true,
            restore: Some(format!("{path}{}/restore/", trashed["id"])),
        })
        .await;
        let (_, trash, _) = app.get(&format!("{path}trash/"), Some(&a.access)).await;
        assert_eq!(trash["count"], 1, "{path}: still in A's trash");
    }
}

const PRODUCTS: &str = "/api/v1/product/products/";

#[tokio::test]
async fn products_price_tag_and_publish() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "pia", "Pia Phones").await;
    let category = create(
        &app,
        &owner,
        CATEGORIES,
        json!({"name": "Phones", "name_ar": "هواتف"}),
    )
    .await;
    let brand = create(
        &app,
        &owner,
        "/api/v1/product/products/brands/",
        json!({"name": "Zed"}),
    )
    .await;
    let phone = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"title": "Zed Phone X", "name_ar": "هاتف زد", "content": "A phone", "price": "99.99",
               "cost_price": 50, "sku": "ZED-X1", "category_id": category["id"], "brand": brand["id"],
               "tags": ["Sale", "new", "sale"], "stock_quantity": 5, "status": "ACTIVE",
               "metadata": {"color": "black"}}),
    )
    .await;
    assert_eq!(phone["name"], "Zed Phone X");
    assert_eq!(phone["description"], "A phone");
    assert_eq!(
        (
            phone["price"].clone(),
            phone["final_price"].clone(),
            phone["cost_price"].clone()
        ),
        (json!("99.99"), json!("99.99"), json!("50.00"))
    );
    assert_eq!(
        phone["category"],
        json!({"id": category["id"], "name": "Phones", "slug": "phones"})
    );
    assert_eq!(phone["brand"]["name"], "Zed");
    assert_eq!(phone["tags"], json!(["new", "Sale"]));
    assert_eq!(
        (phone["status"].clone(), phone["stock_status"].clone()),
        (json!("active"), json!("low_stock"))
    );
    assert_eq!(phone["additional_data"], json!({"color": "black"}));
    let id = phone["id"].clone();
    let item = format!("{PRODUCTS}{id}/");
    // The gateway alias and the public view (no cost, no internal data).
    let (status, via_alias, _) = app
        .get(&format!("/api/v1/products/{id}/"), Some(&owner.access))
        .await;
    assert_eq!(
        (status, via_alias["sku"].clone()),
        (StatusCode::OK, json!("ZED-X1"))
    );
    create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Secret draft", "price": "1", "status": "draft"}),
    )
    .await;
    let anon = |path: &str| {
        app.client
            .get(app.url(path))
            .header("X-Project-ID", owner.project_id())
    };
    let (_, public, _) = app.send(anon(PRODUCTS)).await;
    assert_eq!(public["count"], 1, "drafts are not public: {public}");
    assert_eq!(
        (
            public["results"][0]["cost_price"].clone(),
            public["results"][0]["additional_data"].clone()
        ),
        (Value::Null, Value::Null)
    );
    let req = anon(&item).header("Accept-Language", "ar");
    let (_, arabic, _) = app.send(req).await;
    assert_eq!(
        (arabic["name"].clone(), arabic["category"]["name"].clone()),
        (json!("هاتف زد"), json!("هواتف")),
        "relations are named in the request's language too"
    );
    let (_, english, _) = app.send(anon(&item)).await;
    assert_eq!(
        english["category"],
        json!({"id": category["id"], "name": "Phones", "slug": category["slug"]})
    );

    // SKU: unique per project, case-insensitive; a format.
    for (sku, field) in [("zed-x1", "sku"), ("bad sku!", "sku")] {
        let (status, body) = app
            .call(
                Method::POST,
                PRODUCTS,
                json!({"name": "Dup", "price": "1", "sku": sku}),
                &owner.access,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body[field].is_array(), "{body}");
    }
    // Money is exact: more than two decimals, text, negatives and floats that are not numbers.
    for price in [
        json!("12.345"),
        json!("abc"),
        json!(-1),
        json!("1e400"),
        json!(null),
        json!(true),
    ] {
        let (status, body) = app
            .call(Method::PATCH, &item, json!({"price": price}), &owner.access)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{price}: {body}");
    }
    let (status, body) = app
        .call(
            Method::POST,
            PRODUCTS,
            json!({"name": "No price"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["price"][0].clone()),
        (StatusCode::BAD_REQUEST, json!("This field is required."))
    );

    // A price change: history and price.changed; stock is read-only after create.
    let (status, updated) = app
        .call(
            Method::PATCH,
            &item,
            json!({"price": 89.5, "stock_quantity": 999, "tags": "sale"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(
        (updated["price"].clone(), updated["tags"].clone()),
        (json!("89.50"), json!(["Sale"]))
    );
    let pool = crate::harness::service_pool(app.platform.config(), "product").await;
    let history: (String, String) = sqlx::query_as(
        "SELECT old_price::text, new_price::text FROM price_history WHERE product_id = $1",
    )
    .bind(id.as_i64())
    .fetch_one(&pool)
    .await
    .expect("history");
    assert_eq!(history, ("99.9900".to_owned(), "89.5000".to_owned()));
    let events: Vec<(String, Value)> =
        sqlx::query_as("SELECT event_type, envelope FROM zv_outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("outbox");
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "product.created",
            "product.created",
            "price.changed",
            "product.updated"
        ]
    );
    let created = &events[0].1["data"];
    assert_eq!(
        (
            created["productId"].clone(),
            created["initialStock"].clone(),
            created["price"].clone()
        ),
        (id.clone(), json!(5), json!("99.99"))
    );
    assert_eq!(created["categoryId"], category["id"]);
    assert_eq!(
        events[2].1["data"],
        json!({"productId": id, "variantId": null, "oldPrice": "99.99", "newPrice": "89.50", "changedBy": owner.id})
    );
    let (_, stock, _) = app.get(&item, Some(&owner.access)).await;
    assert_eq!(stock["stock_quantity"], 5);

    // The search vector follows the text it is made of (written by a trigger since migration
    // 0010), and an update of other columns (the stock sum) keeps it.
    let (status, _) = app
        .call(
            Method::PATCH,
            &item,
            json!({"description": "Waterproof hiking boots"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    sqlx::query("UPDATE products SET stock_quantity = stock_quantity + 1 WHERE id = $1")
        .bind(id.as_i64())
        .execute(&pool)
        .await
        .expect("stock sum");

    // Filters, ordering, search.
    create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Cheap Case", "price": "5", "tags": ["accessory"], "sku": "CASE-1"}),
    )
    .await;
    for (query, expect) in [
        ("?min_price=10", 1),
        ("?max_price=10&status=created", 1),
        ("?tags=SALE", 1),
        ("?tags=accessory,sale", 2),
        (&format!("?category={}", category["id"]) as &str, 1),
        ("?search=case-1", 1),
        ("?search=phone", 1),
        ("?search=waterproof", 1),
        ("?search=hikes", 1),
        (&format!("?ids={id}") as &str, 1),
        ("?price__gte=5&ordering=price", 2),
    ] {
        let (status, found, _) = app
            .get(&format!("{PRODUCTS}{query}"), Some(&owner.access))
            .await;
        assert_eq!(
            (status, found["count"].clone()),
            (StatusCode::OK, json!(expect)),
            "{query}: {found}"
        );
    }
    for query in ["?min_price=cheap", "?ids=1,x", "?color=red"] {
        let (status, _, _) = app
            .get(&format!("{PRODUCTS}{query}"), Some(&owner.access))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
    }

    // Delete, trash, restore, with their events.
    let (status, _) = app
        .call(Method::DELETE, &item, Value::Null, &owner.access)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.send(anon(&item)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{item}restore/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let last: Vec<String> =
        sqlx::query_scalar("SELECT event_type FROM zv_outbox ORDER BY id DESC LIMIT 2")
            .fetch_all(&pool)
            .await
            .expect("outbox");
    assert_eq!(last, ["product.restored", "product.deleted"]);

    // Tenancy.
    let other = owner_with_project(&app, "omar", "Omar O").await;
    CrossTenant {
        app: &app,
        owner: &owner.access,
        owner_item: item.clone(),
        outsider: &other.access,
        project_a: owner.project_id(),
    }
    .check(&TenantResource {
        name: "product",
        lists: vec![
            PRODUCTS.into(),
            format!("{PRODUCTS}trash/"),
            format!("{PRODUCTS}?ids={id}"),
            "/api/v1/products/".into(),
        ],
        id: id.clone(),
        items: vec![item.clone(), format!("/api/v1/products/{id}/")],
        readable: true,
        public_read: true,
        update: Some((Method::PATCH, json!({"price": "0.01"}))),
        delete: true,
        restore: Some(format!("{item}restore/")),
    })
    .await;
    // Relations of another project are invalid references.
    let (_, foreign_category) = app
        .call(
            Method::POST,
            CATEGORIES,
            json!({"name": "Theirs"}),
            &other.access,
        )
        .await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &item,
            json!({"category": foreign_category["id"]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[tokio::test]
async fn variants_barcodes_and_shipping() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "vic", "Vic Variants").await;
    let schema = create(
        &app,
        &owner,
        "/api/v1/product/products/schemas/",
        json!({"name": "Phone", "attributes": [
            {"key": "color", "type": "select", "options": ["Black", "White"], "required": true},
            {"key": "storage", "type": "number"},
            {"key": "warranty", "type": "text", "variant": false}]}),
    )
    .await;
    let (status, bad) = app
        .call(
            Method::POST,
            "/api/v1/product/products/variant-schemas/",
            json!({"name": "x", "attributes": [{"key": "Bad Key"}]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    let phone = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Phone", "price": "100", "sku": "PH-1", "schema_id": schema["id"]}),
    )
    .await;
    let pid = phone["id"].clone();
    let nested = format!("{PRODUCTS}{pid}/variants/");
    let black = create(&app, &owner, &nested, json!({"sku": "PH-1-BLK", "name": "Black", "price": "110", "attributes": {"color": "Black", "storage": 128}})).await;
    assert_eq!(
        (black["product"].clone(), black["selling_price"].clone()),
        (pid.clone(), json!("110.00"))
    );
    // Schema rules, twins, SKUs shared with products.
    for (body, field) in [
        (json!({"attributes": {"color": "Red"}}), "attributes"),
        (json!({"attributes": {"storage": 64}}), "attributes"),
        (
            json!({"attributes": {"color": "Black", "warranty": "2y"}}),
            "attributes",
        ),
        (
            json!({"attributes": {"color": "White", "storage": "big"}}),
            "attributes",
        ),
        (
            json!({"attributes": {"color": "Black", "storage": 128}}),
            "non_field_errors",
        ),
        (
            json!({"sku": "ph-1", "attributes": {"color": "White"}}),
            "sku",
        ),
        (
            json!({"sku": "PH-1-blk", "attributes": {"color": "White"}}),
            "sku",
        ),
    ] {
        let (status, out) = app
            .call(Method::POST, &nested, body.clone(), &owner.access)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {out}");
        assert!(out[field].is_array(), "{body}: {out}");
    }
    let (status, out) = app
        .call(
            Method::POST,
            PRODUCTS,
            json!({"name": "Other", "price": "1", "sku": "ph-1-BLK"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, out["sku"][0].clone()),
        (
            StatusCode::BAD_REQUEST,
            json!("A product with this SKU already exists.")
        )
    );
    let white = create(
        &app,
        &owner,
        &nested,
        json!({"name": "White", "attributes": {"color": "White"}}),
    )
    .await;
    let (_, listed, _) = app.get(&nested, Some(&owner.access)).await;
    assert_eq!(listed["count"], 2);
    let (_, product, _) = app
        .get(&format!("{PRODUCTS}{pid}/"), Some(&owner.access))
        .await;
    assert_eq!(product["variants_count"], 2);
    // A variant price change is history too.
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/product/products/variants/{}/", white["id"]),
            json!({"selling_price": "95"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // Barcodes: check digits, inferred types, uniqueness, the variant must belong to the product.
    let barcodes = "/api/v1/product/products/barcodes/";
    let code = create(&app, &owner, barcodes, json!({"product_id": pid, "variant": black["id"], "barcode": "4006381333931", "is_primary": true})).await;
    assert_eq!(code["barcode_type"], "EAN13");
    for body in [
        json!({"product": pid, "barcode": "4006381333932"}),
        json!({"product": pid, "barcode": "4006381333931"}),
        json!({"product": pid, "barcode": "123", "barcode_type": "ean8"}),
        json!({"product": pid, "barcode": "X", "barcode_type": "PDF417"}),
    ] {
        let (status, out) = app
            .call(Method::POST, barcodes, body.clone(), &owner.access)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {out}");
        assert!(out["barcode"].is_array(), "{out}");
    }
    let other = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Case", "price": "5"}),
    )
    .await;
    let (status, out) = app
        .call(
            Method::POST,
            barcodes,
            json!({"product": other["id"], "variant": black["id"], "barcode": "ABC-1"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, out["variant"].is_array()),
        (StatusCode::BAD_REQUEST, true),
        "{out}"
    );
    let second = create(
        &app,
        &owner,
        barcodes,
        json!({"product": pid, "barcode": "96385074", "is_primary": true}),
    )
    .await;
    assert_eq!(second["barcode_type"], "EAN8");
    let (_, first, _) = app
        .get(&format!("{barcodes}{}/", code["id"]), Some(&owner.access))
        .await;
    assert_eq!(first["is_primary"], false, "one primary per product");
    let (_, scan, _) = app
        .get(
            &format!("{barcodes}?barcode=4006381333931"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(scan["count"], 1);
    let (_, variant, _) = app
        .get(
            &format!("/api/v1/product/products/variants/{}/", black["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(variant["barcodes"], json!(["4006381333931"]));

    // Shipping is for members; a product-specific profile becomes the product's.
    let ship = create(
        &app,
        &owner,
        "/api/v1/product/products/shipping/",
        json!({"product": pid, "length": 10, "weight": 0.2, "weight_unit": "KG"}),
    )
    .await;
    let (_, product, _) = app
        .get(&format!("{PRODUCTS}{pid}/"), Some(&owner.access))
        .await;
    assert_eq!(product["shipping"], ship["id"]);
    let (status, _, _) = app
        .send(
            app.client
                .get(app.url("/api/v1/product/products/shipping/"))
                .header("X-Project-ID", owner.project_id()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not public");
    let (_, for_product, _) = app
        .get(
            &format!("/api/v1/product/products/shipping/?product={pid}"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(for_product["count"], 1);
    // The schema is protected while used.
    let (status, out) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/product/products/schemas/{}/", schema["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, out["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("protected"))
    );

    // Deleting the product takes its live variants; restoring brings them back.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/product/products/variants/{}/", white["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{PRODUCTS}{pid}/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .get(
            &format!("/api/v1/product/products/variants/{}/", black["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{PRODUCTS}{pid}/restore/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed, _) = app.get(&nested, Some(&owner.access)).await;
    assert_eq!(
        listed["results"]
            .as_array()
            .map(|r| r.iter().map(|v| v["id"].clone()).collect::<Vec<_>>()),
        Some(vec![black["id"].clone()]),
        "only the cascade comes back"
    );
    let pool = crate::harness::service_pool(app.platform.config(), "product").await;
    let restored: Value =
        sqlx::query_scalar("SELECT envelope FROM zv_outbox WHERE event_type = 'product.restored'")
            .fetch_one(&pool)
            .await
            .expect("event");
    assert_eq!(restored["data"]["variantIds"], json!([black["id"]]));

    // Tenancy on each.
    let b = owner_with_project(&app, "bo", "Bo B").await;
    for (path, id, update) in [
        (
            "/api/v1/product/products/variants/",
            black["id"].clone(),
            json!({"name": "Mine"}),
        ),
        (
            "/api/v1/product/products/barcodes/",
            second["id"].clone(),
            json!({"is_primary": false}),
        ),
        (
            "/api/v1/product/products/schemas/",
            schema["id"].clone(),
            json!({"name": "Mine"}),
        ),
        (
            "/api/v1/product/products/shipping/",
            ship["id"].clone(),
            json!({"length": 1}),
        ),
    ] {
        CrossTenant {
            app: &app,
            owner: &owner.access,
            owner_item: format!("{path}{id}/"),
            outsider: &b.access,
            project_a: owner.project_id(),
        }
        .check(&TenantResource {
            name: path,
            lists: vec![path.to_owned(), format!("{path}trash/")],
            id: id.clone(),
            items: vec![format!("{path}{id}/")],
            readable: true,
            public_read: path != "/api/v1/product/products/shipping/",
            update: Some((Method::PATCH, update)),
            delete: true,
            restore: None,
        })
        .await;
    }
    let (status, _, _) = app
        .get(&format!("{PRODUCTS}{pid}/variants/"), Some(&b.access))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{PRODUCTS}{pid}/variants/"),
            json!({"name": "x"}),
            &b.access,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "another project's product is not a valid reference"
    );
}

#[tokio::test]
async fn public_reads_are_cached_and_every_write_invalidates() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "cara", "Cara Cache").await;
    let shirt = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Shirt", "price": "10"}),
    )
    .await;
    let item = format!("{PRODUCTS}{}/", shirt["id"]);
    let anon = |path: &str| {
        app.client
            .get(app.url(path))
            .header("X-Project-ID", owner.project_id())
    };
    // GraphQL reads of the public are cached under the same version as REST's.
    let anon_gql = |query: &str| {
        app.client
            .post(app.url("/graphql/product"))
            .header("X-Project-ID", owner.project_id())
            .json(&json!({"query": query, "variables": {"id": shirt["id"]}}))
    };
    let titles = "query($id: ID!) { products { title } product(id: $id) { title } }";
    let (_, first, _) = app.send(anon(PRODUCTS)).await;
    let (_, detail, _) = app.send(anon(&item)).await;
    let (_, graph, _) = app.send(anon_gql(titles)).await;
    assert_eq!(
        (first["results"][0]["name"].clone(), detail["name"].clone()),
        (json!("Shirt"), json!("Shirt"))
    );
    assert_eq!(graph["data"]["product"]["title"], "Shirt", "{graph}");
    // Behind the API's back: the cached public answers do not change…
    let pool = crate::harness::service_pool(app.platform.config(), "product").await;
    sqlx::query("UPDATE products SET name_en = 'Changed behind' WHERE id = $1")
        .bind(shirt["id"].as_i64())
        .execute(&pool)
        .await
        .expect("update");
    let (_, cached, _) = app.send(anon(PRODUCTS)).await;
    let (_, cached_item, _) = app.send(anon(&item)).await;
    assert_eq!(
        (
            cached["results"][0]["name"].clone(),
            cached_item["name"].clone()
        ),
        (json!("Shirt"), json!("Shirt"))
    );
    let (_, graph_cached, _) = app.send(anon_gql(titles)).await;
    assert_eq!(graph_cached, graph);
    // …members read live data, and other languages are other entries.
    let (_, live, _) = app.get(&item, Some(&owner.access)).await;
    assert_eq!(live["name"], "Changed behind");
    let (_, graph_member, _) = app.send(anon_gql(titles).bearer_auth(&owner.access)).await;
    assert_eq!(graph_member["data"]["product"]["title"], "Changed behind");
    let (_, other_doc, _) = app
        .send(anon_gql(
            "query($id: ID!) { product(id: $id) { id title } }",
        ))
        .await;
    assert_eq!(other_doc["data"]["product"]["title"], "Changed behind");
    // A write through the API is visible to the very next public read.
    let (status, _) = app
        .call(Method::PATCH, &item, json!({"name": "Polo"}), &owner.access)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, fresh, _) = app.send(anon(PRODUCTS)).await;
    let (_, fresh_item, _) = app.send(anon(&item)).await;
    assert_eq!(
        (
            fresh["results"][0]["name"].clone(),
            fresh_item["name"].clone()
        ),
        (json!("Polo"), json!("Polo"))
    );
    let (_, graph_fresh, _) = app.send(anon_gql(titles)).await;
    assert_eq!(graph_fresh["data"]["products"][0]["title"], "Polo");
    // Through GraphQL too.
    let (_, renamed, _) = app
        .send(
            anon_gql(
                "mutation($id: ID!) { updateProduct(id: $id, input: {title: \"Tee\"}) { id } }",
            )
            .bearer_auth(&owner.access),
        )
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    let (_, graph_fresh, _) = app.send(anon_gql(titles)).await;
    assert_eq!(graph_fresh["data"]["product"]["title"], "Tee");
    // Writes to related resources invalidate too (the product shows its category's name).
    let category = create(&app, &owner, CATEGORIES, json!({"name": "Tops"})).await;
    app.call(
        Method::PATCH,
        &item,
        json!({"category": category["id"]}),
        &owner.access,
    )
    .await;
    let (_, with_category, _) = app.send(anon(&item)).await;
    assert_eq!(with_category["category"]["name"], "Tops");
    app.call(
        Method::PATCH,
        &format!("{CATEGORIES}{}/", category["id"]),
        json!({"name": "Shirts & Tops"}),
        &owner.access,
    )
    .await;
    let (_, renamed, _) = app.send(anon(&item)).await;
    assert_eq!(renamed["category"]["name"], "Shirts & Tops");
    // Deleting is visible at once.
    app.call(Method::DELETE, &item, Value::Null, &owner.access)
        .await;
    let (status, _, _) = app.send(anon(&item)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, empty, _) = app.send(anon(PRODUCTS)).await;
    assert_eq!(empty["count"], 0);
}

#[tokio::test]
async fn discounts_collections_pricing_and_bulk_updates() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "dina", "Dina Deals").await;
    let discounts = "/api/v1/product/products/discounts/";
    let electronics = create(&app, &owner, CATEGORIES, json!({"name": "Electronics"})).await;
    let tvs = create(
        &app,
        &owner,
        CATEGORIES,
        json!({"name": "TVs", "parent": electronics["id"]}),
    )
    .await;
    let tv = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "TV", "price": "200", "category": tvs["id"], "sku": "TV-1"}),
    )
    .await;
    let mug = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Mug", "price": "10"}),
    )
    .await;
    assert_eq!(tv["final_price"], "200.00");

    // Rules of a discount.
    for body in [
        json!({"name": "x", "discount_type": "percentage", "value": "150"}),
        json!({"name": "x", "discount_type": "fixed", "value": "0"}),
        json!({"name": "x", "discount_type": "bogus", "value": "5"}),
        json!({"name": "x", "discount_type": "fixed", "value": "5", "starts_at": "2030-01-02T00:00:00Z", "ends_at": "2030-01-01T00:00:00Z"}),
        json!({"name": "x", "discount_type": "fixed", "value": "5", "applies_to": "categories", "category_ids": [999_999]}),
        json!({"name": "x", "discount_type": "fixed", "value": "5", "category_ids": "all"}),
    ] {
        let (status, out) = app
            .call(Method::POST, discounts, body.clone(), &owner.access)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {out}");
    }
    // 10% on the category tree (the TV's parent category), 15 off the TV itself: the larger wins.
    let tenth = create(&app, &owner, discounts, json!({"name": "Ten", "discount_type": "percentage", "value": 10, "applies_to": "categories", "category_ids": [electronics["id"]]})).await;
    assert_eq!(tenth["status"], "active");
    let (_, tv_now, _) = app
        .get(&format!("{PRODUCTS}{}/", tv["id"]), Some(&owner.access))
        .await;
    assert_eq!(
        tv_now["final_price"], "180.00",
        "descendant categories included"
    );
    let fifteen = create(
        &app,
        &owner,
        discounts,
        json!({"name": "Fifteen", "discount_type": "fixed_amount", "value": "25"}),
    )
    .await;
    assert_eq!(fifteen["discount_type"], "fixed");
    let (status, linked) = app
        .call(
            Method::POST,
            &format!("{discounts}{}/products/", fifteen["id"]),
            json!({"product_ids": [tv["id"], mug["id"]]}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, linked["product_ids"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(2))
    );
    let (_, tv_now, _) = app
        .get(&format!("{PRODUCTS}{}/", tv["id"]), Some(&owner.access))
        .await;
    assert_eq!(tv_now["final_price"], "175.00");
    let (_, mug_now, _) = app
        .get(&format!("{PRODUCTS}{}/", mug["id"]), Some(&owner.access))
        .await;
    assert_eq!(mug_now["final_price"], "0.00", "never below zero");
    // Expired and scheduled discounts do not apply; unlinking removes one.
    create(&app, &owner, discounts, json!({"name": "Old", "discount_type": "percentage", "value": 90, "applies_to": "all", "ends_at": "2020-01-01T00:00:00Z"})).await;
    create(&app, &owner, discounts, json!({"name": "Soon", "discount_type": "percentage", "value": 90, "applies_to": "all", "starts_at": "2999-01-01T00:00:00Z"})).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{discounts}{}/products/", fifteen["id"]),
            json!({"product_ids": [mug["id"]]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, mug_now, _) = app
        .get(&format!("{PRODUCTS}{}/", mug["id"]), Some(&owner.access))
        .await;
    assert_eq!(mug_now["final_price"], "10.00");
    let (_, statuses, _) = app
        .get(&format!("{discounts}?status=expired"), Some(&owner.access))
        .await;
    assert_eq!(statuses["count"], 1);

    // Pricing: what order and pos charge; unknown and hidden products are unavailable.
    let draft = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Draft", "price": "1", "status": "draft"}),
    )
    .await;
    let body = json!({"items": [{"product_id": tv["id"], "quantity": 1}, {"product_id": 999_999, "quantity": 1}, {"product_id": draft["id"], "quantity": 2}]});
    let req = app
        .client
        .post(app.url("/api/v1/product/products/pricing/"))
        .header("X-Project-ID", owner.project_id())
        .json(&body);
    let (status, priced, _) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{priced}");
    let items = &priced["items"];
    assert_eq!(
        (
            items[0]["unit_price"].clone(),
            items[0]["list_price"].clone(),
            items[0]["discount_id"].clone()
        ),
        (json!("175.00"), json!("200.00"), fifteen["id"].clone())
    );
    assert_eq!(
        (items[0]["is_available"].clone(), items[0]["sku"].clone()),
        (json!(true), json!("TV-1"))
    );
    assert_eq!(
        (
            items[1]["is_available"].clone(),
            items[2]["is_available"].clone()
        ),
        (json!(false), json!(false))
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/product/products/pricing/",
            json!({"items": []}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Collections keep products in order.
    let summer = create(
        &app,
        &owner,
        "/api/v1/product/products/collections/",
        json!({"name": "Summer"}),
    )
    .await;
    let path = format!(
        "/api/v1/product/products/collections/{}/products/",
        summer["id"]
    );
    app.call(
        Method::POST,
        &path,
        json!({"product_ids": [mug["id"]], "position": 2}),
        &owner.access,
    )
    .await;
    app.call(
        Method::POST,
        &path,
        json!({"product_ids": [tv["id"]], "position": 1}),
        &owner.access,
    )
    .await;
    let (_, members, _) = app.get(&path, Some(&owner.access)).await;
    let ids: Vec<Value> = members["results"]
        .as_array()
        .map(|r| r.iter().map(|p| p["id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(ids, vec![tv["id"].clone(), mug["id"].clone()]);
    let (_, collection, _) = app
        .get(
            &format!("/api/v1/product/products/collections/{}/", summer["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(collection["product_count"], 2);
    let (status, body) = app
        .call(
            Method::POST,
            &path,
            json!({"product_ids": [123_456]}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["product_ids"].is_array()),
        (StatusCode::BAD_REQUEST, true)
    );

    // Bulk updates: each item alone.
    let (status, bulk) = app
        .call(
            Method::POST,
            "/api/v1/product/products/bulk_update/",
            json!({"updates": [{"id": tv["id"], "price": "210"}, {"id": mug["id"], "price": "-1"}, {"id": 999_999, "price": "1"}, {"price": "1"}]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{bulk}");
    assert_eq!(
        (bulk["updated"].clone(), bulk["failed"].clone()),
        (json!(1), json!(3))
    );
    assert!(bulk["errors"][0]["errors"]["price"].is_array(), "{bulk}");
    let (_, history, _) = app
        .get(
            &format!(
                "/api/v1/product/products/price-history/?product={}",
                tv["id"]
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (
            history["count"].clone(),
            history["results"][0]["new_price"].clone()
        ),
        (json!(1), json!("210.00"))
    );
    let (status, _, _) = app
        .send(
            app.client
                .get(app.url("/api/v1/product/products/price-history/"))
                .header("X-Project-ID", owner.project_id()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "members only");
    let (_, tag_counts, _) = app
        .get("/api/v1/product/products/tags/", Some(&owner.access))
        .await;
    assert_eq!(tag_counts["count"], 0);

    // Tenancy: another project cannot link, price or bulk-update these.
    let other = owner_with_project(&app, "odin", "Odin O").await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{discounts}{}/products/", fifteen["id"]),
            json!({"product_ids": [tv["id"]]}),
            &other.access,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = app
        .call(
            Method::POST,
            "/api/v1/product/products/pricing/",
            json!({"items": [{"product_id": tv["id"], "quantity": 1}]}),
            &other.access,
        )
        .await;
    assert_eq!(theirs["items"][0]["is_available"], false);
    let (_, bulk) = app
        .call(
            Method::POST,
            "/api/v1/product/products/bulk_update/",
            json!({"updates": [{"id": tv["id"], "price": "1"}]}),
            &other.access,
        )
        .await;
    assert_eq!(bulk["updated"], 0);
    let (_, links, _) = app
        .get(
            &format!(
                "/api/v1/product/products/product-collections/?collection={}",
                summer["id"]
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(links["count"], 2, "the membership rows are a resource too");
    let (_, links, _) = app
        .get(
            &format!(
                "/api/v1/product/product-collections/?collection={}",
                summer["id"]
            ),
            Some(&other.access),
        )
        .await;
    assert_eq!(links["count"], 0);
    let id = tenth["id"].clone();
    CrossTenant {
        app: &app,
        owner: &owner.access,
        owner_item: format!("{discounts}{id}/"),
        outsider: &other.access,
        project_a: owner.project_id(),
    }
    .check(&TenantResource {
        name: "discount",
        lists: vec![discounts.to_owned(), format!("{discounts}trash/")],
        id: id.clone(),
        items: vec![format!("{discounts}{id}/")],
        readable: true,
        public_read: true,
        update: Some((Method::PATCH, json!({"value": "1"}))),
        delete: true,
        restore: None,
    })
    .await;
}

#[tokio::test]
async fn graphql_product_queries_shapes_and_batching() {
    let queries = count_queries();
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "gil", "Gil Gadgets").await;
    let gql = |query: &str| json!({"query": query});
    let category = create(&app, &owner, CATEGORIES, json!({"name": "Audio"})).await;
    let laptop = create(&app, &owner, PRODUCTS, json!({"name": "Laptop", "name_ar": "حاسوب", "price": "99.99", "status": "active", "category": category["id"], "tags": ["pro"]})).await;
    for i in 0..4 {
        create(
            &app,
            &owner,
            PRODUCTS,
            json!({"name": format!("Thing {i}"), "price": "1"}),
        )
        .await;
    }
    create(
        &app,
        &owner,
        &format!("{PRODUCTS}{}/variants/", laptop["id"]),
        json!({"name": "16GB", "sku": "LT-16"}),
    )
    .await;

    // Anonymous liveness and introspection.
    let (status, body, _) = app
        .post("/graphql/product", gql("{ __typename }"), None)
        .await;
    assert_eq!(
        (status, body["data"]["__typename"].clone()),
        (StatusCode::OK, json!("Query"))
    );
    let (_, types, _) = app
        .post(
            "/graphql/product",
            gql("{ __schema { types { name } } }"),
            None,
        )
        .await;
    assert!(types["data"]["__schema"]["types"]
        .as_array()
        .is_some_and(|t| t.len() > 10));

    // Flat shape: prices are decimal strings.
    let (status, flat, _) = app
        .post(
            "/graphql/product",
            gql("{ products { id name title price } }"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{flat}");
    let products = flat["data"]["products"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(products.len(), 5);
    let lt = products
        .iter()
        .find(|p| p["title"] == "Laptop")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (lt["price"].clone(), lt["name"].clone(), lt["id"].clone()),
        (
            json!("99.99"),
            json!("Laptop"),
            json!(laptop["id"].to_string())
        )
    );
    // Edges-as-nodes with the documented arguments.
    let q = r#"{ products(filter: {status: "active"}, pagination: {offset: 0, limit: 20}, orderBy: "created_at:DESC") { edges { id title slug status createdAt } pageInfo { totalCount hasNextPage hasPreviousPage } } }"#;
    let (_, edges, _) = app
        .post("/graphql/product", gql(q), Some(&owner.access))
        .await;
    assert_eq!(
        edges["data"]["products"]["pageInfo"]["totalCount"], 1,
        "{edges}"
    );
    assert_eq!(edges["data"]["products"]["edges"][0]["slug"], "laptop");
    // Relay: pages do not overlap; the documented {"id"} cursor is accepted.
    let (_, page1, _) = app
        .post("/graphql/product", gql("{ products(first: 2) { edges { node { id } cursor } pageInfo { hasNextPage endCursor } totalCount } }"), Some(&owner.access))
        .await;
    assert_eq!(
        (
            page1["data"]["products"]["totalCount"].clone(),
            page1["data"]["products"]["pageInfo"]["hasNextPage"].clone()
        ),
        (json!(5), json!(true))
    );
    let after = s(&page1["data"]["products"]["pageInfo"]["endCursor"]);
    let (_, page2, _) = app
        .post(
            "/graphql/product",
            gql(&format!(
                r#"{{ products(first: 2, after: "{after}") {{ edges {{ node {{ id }} }} }} }}"#
            )),
            Some(&owner.access),
        )
        .await;
    let ids = |p: &Value| -> Vec<Value> {
        p["data"]["products"]["edges"]
            .as_array()
            .map(|e| e.iter().map(|x| x["node"]["id"].clone()).collect())
            .unwrap_or_default()
    };
    assert!(
        ids(&page1).iter().all(|id| !ids(&page2).contains(id)),
        "{page1} {page2}"
    );
    // Translations through the language of the request.
    let q = format!(
        "{{ product(id: {}) {{ title title_en title_ar titleAr titleEn: title(language: \"en\") categoryId category {{ name }} tags {{ name }} }} }}",
        laptop["id"]
    );
    let req = app
        .client
        .post(app.url("/graphql/product"))
        .bearer_auth(&owner.access)
        .header("Accept-Language", "ar")
        .json(&gql(&q));
    let (_, ar, _) = app.send(req).await;
    let p = &ar["data"]["product"];
    assert_eq!(
        (
            p["title"].clone(),
            p["title_en"].clone(),
            p["titleAr"].clone()
        ),
        (json!("حاسوب"), json!("Laptop"), json!("حاسوب")),
        "{ar}"
    );
    assert_eq!(p["titleEn"], "Laptop", "the language argument: {ar}");
    assert_eq!(
        (
            p["category"]["name"].clone(),
            p["categoryId"].clone(),
            p["tags"].clone()
        ),
        (
            json!("Audio"),
            category["id"].clone(),
            json!([{"name": "pro"}])
        )
    );
    // The whole query in one language, and a product by slug.
    let q = r#"{ product(slug: "laptop", language: "ar") { id title } products(language: "en") { title } }"#;
    let (_, by_slug, _) = app
        .post("/graphql/product", gql(q), Some(&owner.access))
        .await;
    assert_eq!(by_slug["data"]["product"]["title"], "حاسوب", "{by_slug}");
    assert_eq!(by_slug["data"]["product"]["id"], laptop["id"].to_string());
    assert!(by_slug["data"]["products"]
        .as_array()
        .is_some_and(|p| p.iter().any(|x| x["title"] == "Laptop")));
    let (_, bad_lang, _) = app
        .post(
            "/graphql/product",
            gql(r#"{ products(language: "xx") { id } }"#),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        bad_lang["errors"][0]["extensions"]["code"], "VALIDATION_ERROR",
        "{bad_lang}"
    );

    // Errors: anonymous writes, unknown fields, missing rows.
    let (status, anon, _) = app
        .post(
            "/graphql/product",
            gql(r#"mutation { createProduct(input: {title: "Test", price: "1"}) { id } }"#),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{anon}");
    assert_eq!(
        (
            anon["data"]["createProduct"].clone(),
            anon["errors"][0]["extensions"]["code"].clone()
        ),
        (Value::Null, json!("UNAUTHENTICATED"))
    );
    let (status, bad, _) = app
        .post(
            "/graphql/product",
            gql("{ products { xyz } }"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(s(&bad["errors"][0]["message"]).contains("xyz"), "{bad}");
    assert!(bad.get("data").is_none());
    let (_, invalid, _) = app
        .post(
            "/graphql/product",
            gql(r#"mutation { createProduct(input: {title: ""}) { id } }"#),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        invalid["errors"][0]["extensions"]["code"], "VALIDATION_ERROR",
        "{invalid}"
    );

    // Create, delete, trash, restore.
    let (_, made, _) = app
        .post("/graphql/product", gql(r#"mutation { createProduct(input: {title: "Speaker", price: 25, categoryId: 999999}) { id } }"#), Some(&owner.access))
        .await;
    assert_eq!(
        made["errors"][0]["extensions"]["code"], "VALIDATION_ERROR",
        "foreign keys are checked: {made}"
    );
    let (_, made, _) = app
        .post("/graphql/product", gql(r#"mutation { createProduct(input: {title: "Speaker", price: 25}) { id price finalPrice } }"#), Some(&owner.access))
        .await;
    let id = s(&made["data"]["createProduct"]["id"]);
    assert_eq!(made["data"]["createProduct"]["finalPrice"], "25.00");
    let (_, deleted, _) = app
        .post(
            "/graphql/product",
            gql(&format!("mutation {{ deleteProduct(id: {id}) }}")),
            Some(&owner.access),
        )
        .await;
    assert_eq!(deleted["data"]["deleteProduct"], true);
    let (_, gone, _) = app
        .post(
            "/graphql/product",
            gql(&format!("{{ product(id: {id}) {{ id }} }}")),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (
            gone["data"]["product"].clone(),
            gone["errors"][0]["extensions"]["code"].clone()
        ),
        (Value::Null, json!("NOT_FOUND"))
    );
    let (_, trash, _) = app
        .post(
            "/graphql/product",
            gql("{ products(trashed: true) { id } }"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(trash["data"]["products"][0]["id"], id);
    let (_, back, _) = app
        .post(
            "/graphql/product",
            gql(&format!(
                "mutation {{ restoreProduct(id: {id}) {{ deleted_at deletedAt }} }}"
            )),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        back["data"]["restoreProduct"]["deletedAt"],
        Value::Null,
        "{back}"
    );
    let (_, meta, _) = app
        .post(
            "/graphql/product",
            gql("{ _productsMeta { count } }"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(meta["data"]["_productsMeta"]["count"], 6);

    // No N+1: the statements a page costs do not grow with its size.
    let page = r#"{ products(limit: LIMIT, orderBy: "created_at:ASC") { id title category { id name parent { id } } brand { name } tags { id name } variants { id sku product { id } } images { url } } }"#;
    let run = |limit: usize| {
        let app = &app;
        let access = owner.access.clone();
        let queries = queries.clone();
        async move {
            let before = queries.load(std::sync::atomic::Ordering::SeqCst);
            let (status, body, _) = app
                .post(
                    "/graphql/product",
                    gql(&page.replace("LIMIT", &limit.to_string())),
                    Some(&access),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body["errors"].is_null(), "{body}");
            (
                queries.load(std::sync::atomic::Ordering::SeqCst) - before,
                body,
            )
        }
    };
    for i in 0..45 {
        create(&app, &owner, PRODUCTS, json!({"name": format!("Bulk {i}"), "price": "2", "tags": ["bulk"], "category": category["id"]})).await;
    }
    // Background jobs (relays, the reservation sweeper, the order reconciler) also run
    // statements now and then: each size is measured three times and the fewest counted.
    let mut small = usize::MAX;
    let mut large = usize::MAX;
    let mut body = Value::Null;
    for _ in 0..3 {
        small = small.min(run(2).await.0);
        let (n, b) = run(50).await;
        large = large.min(n);
        body = b;
    }
    assert_eq!(body["data"]["products"].as_array().map(Vec::len), Some(50));
    assert!(small > 0, "the counter sees queries");
    assert_eq!(
        small, large,
        "statements per page: {small} for 2 rows, {large} for 50"
    );
    assert!(
        large <= 8,
        "count, page, and one query per relation (category, its parent, tags, variants and \
         their product, images; no brand ids, no query): {large}"
    );
    let laptop_row = body["data"]["products"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["title"] == "Laptop").cloned())
        .unwrap_or_default();
    assert_eq!(laptop_row["variants"][0]["sku"], "LT-16");
    assert_eq!(laptop_row["variants"][0]["product"]["id"], laptop_row["id"]);
    assert_eq!(laptop_row["category"]["name"], "Audio");
    assert_eq!(laptop_row["tags"][0]["name"], "pro");

    // What a row already shows (its joined category, its tags' names) is not read again:
    // the statements of the REST page (count, page, tags of the page), the same answers.
    let shown = r#"{ products(limit: 50, orderBy: "created_at:ASC") { id category { id name } tags { id name } } }"#;
    let mut fewest = usize::MAX;
    let mut answer = Value::Null;
    for _ in 0..3 {
        let before = queries.load(std::sync::atomic::Ordering::SeqCst);
        let (_, b, _) = app
            .post("/graphql/product", gql(shown), Some(&owner.access))
            .await;
        fewest = fewest.min(queries.load(std::sync::atomic::Ordering::SeqCst) - before);
        answer = b;
    }
    assert_eq!(fewest, 3, "count, page, tags of the page: {answer}");
    let pick = |b: &Value| -> Vec<(Value, Value, Value)> {
        b["data"]["products"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| {
                        let c = &r["category"];
                        (
                            r["id"].clone(),
                            json!([c["id"], c["name"]]),
                            r["tags"].clone(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    assert_eq!(pick(&answer), pick(&body), "{answer}");
    // One product: the same from its own row.
    let one = format!(
        "{{ product(id: {}) {{ category {{ id name }} tags {{ id name }} }} }}",
        laptop["id"]
    );
    let before = queries.load(std::sync::atomic::Ordering::SeqCst);
    let (_, single, _) = app
        .post("/graphql/product", gql(&one), Some(&owner.access))
        .await;
    let spent = queries.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(
        (
            single["data"]["product"]["category"]["name"].clone(),
            single["data"]["product"]["tags"].clone()
        ),
        (
            json!("Audio"),
            json!([{"id": laptop["tag_ids"][0].to_string(), "name": "pro"}])
        ),
        "{single}"
    );
    assert!(spent <= 3, "the row and its tags: {spent}");
}

#[tokio::test]
async fn pricing_follows_the_project_currency() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "cyra", "Cyra Cafe").await;
    let cup = create(
        &app,
        &owner,
        PRODUCTS,
        json!({"name": "Cup", "price": "2.50"}),
    )
    .await;
    let price = || {
        let app = &app;
        let access = owner.access.clone();
        let id = cup["id"].clone();
        async move {
            let (status, body) = app
                .call(
                    Method::POST,
                    &format!("{PRODUCTS}pricing/"),
                    json!({"items": [{"product_id": id, "quantity": 1}]}),
                    &access,
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body["currency"].clone()
        }
    };
    assert_eq!(
        price().await,
        "USD",
        "the default until the project sets one"
    );
    let setting = format!("/api/v1/project/{}/settings/currency/", owner.username());
    let (status, body) = app
        .call(
            Method::PATCH,
            &setting,
            json!({"value": "EUR"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        price().await,
        "EUR",
        "the setting reaches the catalogue by its event"
    );
    // A late, older event does not undo a newer one.
    let pool = crate::harness::service_pool(app.platform.config(), "product").await;
    let follower = zv_product::settings::SettingsFollower { pool };
    let stale = kernel::events::Envelope {
        id: uuid::Uuid::now_v7(),
        event_type: "project.settings_changed".into(),
        version: 1,
        occurred_at: chrono::Utc::now() - chrono::Duration::hours(1),
        project_id: Some(owner.project_id()),
        source: "project".into(),
        actor_id: None,
        request_id: None,
        key: None,
        data: json!({"project_id": owner.project_id(), "key": "currency", "value": "GBP", "previous_value": "USD"}),
    };
    kernel::events::EventHandler::handle(&follower, &stale)
        .await
        .expect("handled");
    assert_eq!(price().await, "EUR");
}
