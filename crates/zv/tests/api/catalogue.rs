//! The resource machinery through the product service's reference resources: CRUD, trash and
//! restore, translations, full-text search, public reads, roles, hostile input, tenancy.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{s, CrossTenant, TenantResource, TestApp};
use crate::projects::{member, owner_with_project, Owner};

const CATEGORIES: &str = "/api/v1/product/products/categories/";

async fn create(app: &TestApp, owner: &Owner, path: &str, body: Value) -> Value {
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
