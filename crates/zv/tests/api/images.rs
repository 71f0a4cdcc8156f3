//! Product images (product.md §2.4): files through the project's attachments, one primary per
//! product, order, limits, the multipart product create, hostile files and tenancy.

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

use crate::files::{png, upload};
use crate::harness::{s, service_pool, CrossTenant, TenantResource, TestApp};
use crate::projects::{member, owner_with_project, Owner};

const PRODUCTS: &str = "/api/v1/product/products/";

async fn product(app: &TestApp, owner: &Owner, body: Value) -> i64 {
    let (status, created) = app.call(Method::POST, PRODUCTS, body, &owner.access).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    created["id"].as_i64().expect("id")
}

/// Multipart POST with text `fields` and one file part.
async fn form_post(
    app: &TestApp,
    token: &str,
    path: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &str, Vec<u8>)>,
) -> (StatusCode, Value) {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    if let Some((field, name, bytes)) = file {
        form = form.part(
            field.to_owned(),
            Part::bytes(bytes).file_name(name.to_owned()),
        );
    }
    let req = app
        .client
        .post(app.url(path))
        .bearer_auth(token)
        .multipart(form);
    let (status, body, _) = app.send(req).await;
    (status, body)
}

fn images_of(product: i64) -> String {
    format!("{PRODUCTS}{product}/images/")
}

/// (live image rows, primaries) of a product, from the database.
async fn counts(pool: &PgPool, product: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE is_primary) FROM product_images \
         WHERE product = $1 AND deleted_at IS NULL",
    )
    .bind(product)
    .fetch_one(pool)
    .await
    .expect("counts")
}

/// (live attachments, used bytes) of a project.
async fn attachments(app: &TestApp, project: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM attachments WHERE project_id = $1 AND deleted_at IS NULL), \
                (SELECT storage_used_bytes FROM projects WHERE id = $1)",
    )
    .bind(project)
    .fetch_one(&app.project_pool().await)
    .await
    .expect("attachments")
}

#[tokio::test]
async fn images_keep_one_primary_in_order() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "ines", "Ines Images").await;
    let pool = service_pool(&app.config(), "product").await;
    let id = product(
        &app,
        &owner,
        json!({"name": "Lamp", "price": "10.00", "status": "active"}),
    )
    .await;

    // 1: an uploaded file becomes the primary image; the attachment is the project's.
    let (status, first) = form_post(
        &app,
        &owner.access,
        &images_of(id),
        &[("alt_text", "The lamp")],
        Some(("image", "lamp.png", png())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["is_primary"], true);
    assert_eq!(first["alt_text"], "The lamp");
    assert_eq!(first["position"], 0);
    assert!(
        s(&first["url"]).contains("/api/v1/project/media/project/"),
        "{first}"
    );
    let (entity_type, entity_id, visibility): (String, Option<String>, String) =
        sqlx::query_as("SELECT entity_type, entity_id, visibility FROM attachments WHERE id = $1")
            .bind(first["attachment_id"].as_i64().expect("attachment"))
            .fetch_one(&app.project_pool().await)
            .await
            .expect("attachment row");
    assert_eq!(
        (entity_type.as_str(), entity_id, visibility.as_str()),
        ("product", Some(id.to_string()), "public")
    );
    // The public URL serves the file itself.
    let bytes = app
        .client
        .get(s(&first["url"]))
        .send()
        .await
        .expect("file")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(bytes.as_ref(), png().as_slice());

    // 2: an existing public image attachment of the project, by id.
    let (status, attachment) = upload(
        &app,
        &owner.access,
        "side.png",
        png(),
        &[("entity_type", "product")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{attachment}");
    let (status, second) = app
        .call(
            Method::POST,
            &images_of(id),
            json!({"attachment_id": attachment["id"], "alt_text": "Side"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    assert_eq!(second["is_primary"], false);
    assert_eq!(second["position"], 1);

    // 3: an external URL asked to be primary takes the flag from the first.
    let (status, third) = app
        .call(
            Method::POST,
            &images_of(id),
            json!({"url": "https://cdn.example.com/lamp-top.jpg", "is_primary": true}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{third}");
    assert_eq!(third["is_primary"], true);
    assert_eq!(counts(&pool, id).await, (3, 1));

    // Anonymous readers see them by position, in the list and on the product.
    let req = app
        .client
        .get(app.url(&images_of(id)))
        .header("X-Project-ID", owner.project_id());
    let (status, list, _) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let order: Vec<Value> = list["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(
        order,
        vec![
            first["id"].clone(),
            second["id"].clone(),
            third["id"].clone()
        ]
    );
    let (_, shown, _) = app
        .get(&format!("{PRODUCTS}{id}/"), Some(&owner.access))
        .await;
    assert_eq!(shown["images"].as_array().map(Vec::len), Some(3), "{shown}");
    assert_eq!(shown["images"][2]["is_primary"], true);

    // PATCH moves the primary flag; the file and the product cannot be changed.
    let (status, patched) = app
        .call(
            Method::PATCH,
            &format!("{}{}/", images_of(id), second["id"]),
            json!({"is_primary": true, "url": "https://evil.example/x.png", "product": 1, "position": 5}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["is_primary"], true);
    assert_eq!(patched["position"], 5);
    assert_eq!(patched["url"], second["url"]);
    assert_eq!(patched["product"], id);
    assert_eq!(counts(&pool, id).await, (3, 1));

    // Un-flagging the primary hands the flag to the lowest position.
    let (status, unflagged) = app
        .call(
            Method::PATCH,
            &format!("{}{}/", images_of(id), second["id"]),
            json!({"is_primary": false}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{unflagged}");
    let (_, now_first, _) = app
        .get(
            &format!("{}{}/", images_of(id), first["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(now_first["is_primary"], true, "{now_first}");

    // Deleting the primary promotes the lowest position; an uploaded file goes with its image,
    // a linked attachment stays.
    let (used_files, used_bytes) = attachments(&app, owner.project_id()).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{}{}/", images_of(id), first["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(counts(&pool, id).await, (2, 1));
    let (_, promoted, _) = app
        .get(
            &format!("{}{}/", images_of(id), third["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(promoted["is_primary"], true, "position 2 < 5: {promoted}");
    assert_eq!(
        attachments(&app, owner.project_id()).await,
        (used_files - 1, used_bytes - png().len() as i64)
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{}{}/", images_of(id), second["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        attachments(&app, owner.project_id()).await.0,
        used_files - 1,
        "a linked attachment is not the image's to delete"
    );

    // The pricing snapshot carries the primary image.
    let (status, priced) = app
        .call(
            Method::POST,
            &format!("{PRODUCTS}pricing/"),
            json!({"items": [{"product_id": id, "quantity": 1}]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{priced}");
    assert_eq!(priced["items"][0]["image_url"], third["url"]);
}

#[tokio::test]
async fn hostile_images_change_nothing() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "hana", "Hana Home").await;
    let other = owner_with_project(&app, "omar", "Omar Outlet").await;
    let pool = service_pool(&app.config(), "product").await;
    let id = product(&app, &owner, json!({"name": "Chair", "price": "5.00"})).await;
    let before_files = attachments(&app, owner.project_id()).await;

    // A PDF named .png, a PDF as itself, an empty file, a script URL, a foreign attachment.
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.resize(400, b' ');
    // An empty file has no image signature either.
    for (name, bytes) in [
        ("fake.png", pdf.clone()),
        ("doc.pdf", pdf.clone()),
        ("empty.png", Vec::new()),
    ] {
        let (status, body) = form_post(
            &app,
            &owner.access,
            &images_of(id),
            &[],
            Some(("image", name, bytes)),
        )
        .await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{name}: {body}");
    }
    let (status, foreign) = upload(
        &app,
        &other.access,
        "theirs.png",
        png(),
        &[("entity_type", "product")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{foreign}");
    let (status, private) = upload(
        &app,
        &owner.access,
        "private.png",
        png(),
        &[("entity_type", "general"), ("visibility", "private")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{private}");
    for (body, field) in [
        (json!({"url": "javascript:alert(1)"}), "url"),
        (json!({"url": "ftp://example.com/a.png"}), "url"),
        (json!({"attachment_id": foreign["id"]}), "attachment_id"),
        (json!({"attachment_id": private["id"]}), "attachment_id"),
        (json!({"attachment_id": "x"}), "attachment_id"),
        (json!({"alt_text": "nothing to show"}), "image"),
    ] {
        let (status, err) = app
            .call(Method::POST, &images_of(id), body.clone(), &owner.access)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
        assert!(err[field].is_array(), "{body}: {err}");
    }
    let (status, _) = app
        .call(
            Method::POST,
            &images_of(id),
            json!({"url": "https://cdn.example.com/a.png", "alt_text": "x".repeat(256)}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(counts(&pool, id).await, (0, 0));
    assert_eq!(
        attachments(&app, owner.project_id()).await,
        (before_files.0 + 1, before_files.1 + png().len() as i64),
        "only the private upload made above is stored"
    );

    // Unknown product, another product's image, a staff member's write.
    let (status, _) = app
        .call(
            Method::POST,
            &images_of(987_654),
            json!({"url": "https://cdn.example.com/a.png"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let other_id = product(&app, &owner, json!({"name": "Desk", "price": "9.00"})).await;
    let (_, image) = app
        .call(
            Method::POST,
            &images_of(id),
            json!({"url": "https://cdn.example.com/chair.png"}),
            &owner.access,
        )
        .await;
    let (status, _, _) = app
        .get(
            &format!("{}{}/", images_of(other_id), image["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{}{}/", images_of(other_id), image["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, staff) = member(&app, &owner, "stan", "editor").await;
    let (status, _) = app
        .call(
            Method::POST,
            &images_of(id),
            json!({"url": "https://cdn.example.com/b.png"}),
            &staff,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(counts(&pool, id).await, (1, 1));

    // At most 50: the 51st is refused, even when sent concurrently.
    let mut sends = Vec::new();
    for n in 0..60 {
        let app = &app;
        let token = owner.access.clone();
        sends.push(async move {
            app.call(
                Method::POST,
                &images_of(id),
                json!({"url": format!("https://cdn.example.com/{n}.png"), "is_primary": n % 7 == 0}),
                &token,
            )
            .await
            .0
        });
    }
    let statuses = futures::future::join_all(sends).await;
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 49, "{statuses:?}");
    assert!(statuses
        .iter()
        .all(|s| *s == StatusCode::CREATED || *s == StatusCode::BAD_REQUEST));
    assert_eq!(counts(&pool, id).await, (50, 1));
}

#[tokio::test]
async fn multipart_create_takes_an_image() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "mona", "Mona Market").await;
    let pool = service_pool(&app.config(), "product").await;
    let (status, created) = form_post(
        &app,
        &owner.access,
        PRODUCTS,
        &[
            ("name", "Mug"),
            ("price", "4.50"),
            ("tags", "kitchen, gift"),
            ("is_active", "true"),
            ("alt_text", "A mug"),
        ],
        Some(("image", "mug.png", png())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "Mug");
    assert_eq!(created["price"], "4.50");
    assert_eq!(created["tags"], json!(["gift", "kitchen"]));
    assert_eq!(created["images"][0]["is_primary"], true, "{created}");
    assert_eq!(created["images"][0]["alt_text"], "A mug");
    let id = created["id"].as_i64().expect("id");
    assert_eq!(counts(&pool, id).await, (1, 1));

    // Form fields without a file; repeated tags.
    let form = Form::new()
        .text("name", "Plate")
        .text("price", "3")
        .text("tags", "kitchen")
        .text("tags", "white");
    let req = app
        .client
        .post(app.url(PRODUCTS))
        .bearer_auth(&owner.access)
        .multipart(form);
    let (status, plate, _) = app.send(req).await;
    assert_eq!(status, StatusCode::CREATED, "{plate}");
    assert_eq!(plate["tags"], json!(["kitchen", "white"]));
    assert_eq!(plate["images"], json!([]));

    // A refused file or invalid fields create nothing, and store nothing.
    let products_before: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&pool)
        .await
        .expect("count");
    let files_before = attachments(&app, owner.project_id()).await;
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.resize(400, b' ');
    for (fields, file, expected) in [
        (
            vec![("name", "Bad"), ("price", "1")],
            ("image", "x.png", pdf.clone()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            vec![("name", "Bad"), ("price", "-1")],
            ("image", "ok.png", png()),
            StatusCode::BAD_REQUEST,
        ),
        (
            vec![("name", "Bad"), ("price", "1")],
            ("photo", "ok.png", png()),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = form_post(&app, &owner.access, PRODUCTS, &fields, Some(file)).await;
        assert_eq!(status, expected, "{fields:?}: {body}");
    }
    let products_after: i64 = sqlx::query_scalar("SELECT count(*) FROM products")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(products_after, products_before);
    assert_eq!(attachments(&app, owner.project_id()).await, files_before);
}

#[tokio::test]
async fn images_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "adel", "Adel Art").await;
    let b = owner_with_project(&app, "basma", "Basma Books").await;
    let id = product(
        &app,
        &a,
        json!({"name": "Print", "price": "20.00", "status": "active"}),
    )
    .await;
    let (status, image) = form_post(
        &app,
        &a.access,
        &images_of(id),
        &[],
        Some(("image", "print.png", png())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    let b_product = product(&app, &b, json!({"name": "Book", "price": "8.00"})).await;
    CrossTenant {
        app: &app,
        owner: &a.access,
        owner_item: format!("{}{}/", images_of(id), image["id"]),
        outsider: &b.access,
        project_a: a.project_id(),
    }
    .check(&TenantResource {
        name: "product images",
        lists: vec![images_of(id), images_of(b_product)],
        id: image["id"].clone(),
        items: vec![
            format!("{}{}/", images_of(id), image["id"]),
            format!("{}{}/", images_of(b_product), image["id"]),
        ],
        readable: true,
        public_read: true,
        update: Some((Method::PATCH, json!({"alt_text": "mine"}))),
        delete: true,
        restore: None,
    })
    .await;
    // B cannot link A's image to B's product through A's attachment either.
    let (status, err) = app
        .call(
            Method::POST,
            &images_of(b_product),
            json!({"attachment_id": image["attachment_id"]}),
            &b.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert!(err["attachment_id"].is_array(), "{err}");
}

#[tokio::test]
async fn graphql_inputs_tags_and_images() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "gina", "Gina Goods").await;
    let gql = |query: &str, variables: Value| json!({"query": query, "variables": variables});
    let post = |body: Value| {
        let app = &app;
        let token = owner.access.clone();
        async move {
            let (status, body, _) = app.post("/graphql/product", body, Some(&token)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body
        }
    };

    // Typed input, under the older clients' type name, with both spellings of the fields.
    let made = post(gql(
        "mutation($input: CreateProductInput!) { createProduct(input: $input) { id title tags { name } } }",
        json!({"input": {"title": "Kettle", "title_ar": "غلاية", "price": "30.00", "tags": ["kitchen"], "isActive": true, "status": "active"}}),
    ))
    .await;
    assert!(made["errors"].is_null(), "{made}");
    let id = s(&made["data"]["createProduct"]["id"]);
    assert_eq!(
        made["data"]["createProduct"]["tags"],
        json!([{"name": "kitchen"}])
    );
    let (status, unknown, _) = app
        .post(
            "/graphql/product",
            gql(
                "mutation { createProduct(input: {title: \"X\", price: 1, secret: 1}) { id } }",
                Value::Null,
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        s(&unknown["errors"][0]["message"]).contains("secret"),
        "the input type names its fields: {unknown}"
    );

    // Computed values are read when selected (and only then).
    let listed = post(gql(
        "{ products { title finalPrice stockStatus variantsCount } }",
        Value::Null,
    ))
    .await;
    assert_eq!(
        listed["data"]["products"][0],
        json!({"title": "Kettle", "finalPrice": "30.00", "stockStatus": "out_of_stock", "variantsCount": 0}),
        "{listed}"
    );

    // Tags linked and unlinked by id.
    let (_, tag) = app
        .call(
            Method::POST,
            "/api/v1/product/products/tags/",
            json!({"name": "gift"}),
            &owner.access,
        )
        .await;
    let added = post(gql(
        "mutation($id: ID!, $tags: [ID!]!) { addProductTags(id: $id, relatedIds: $tags) }",
        json!({"id": id, "tags": [tag["id"]]}),
    ))
    .await;
    assert_eq!(added["data"]["addProductTags"], true, "{added}");
    let (_, row, _) = app
        .get(&format!("{PRODUCTS}{id}/"), Some(&owner.access))
        .await;
    assert_eq!(row["tags"], json!(["gift", "kitchen"]));
    let removed = post(gql(
        "mutation($id: ID!) { removeProductTags(id: $id, relatedIds: [$id]) }",
        json!({"id": tag["id"].to_string()}),
    ))
    .await;
    assert_eq!(
        removed["data"]["removeProductTags"],
        Value::Null,
        "a tag id is not a product: {removed}"
    );
    let removed = post(gql(
        &format!(
            "mutation {{ removeProductTags(id: {id}, relatedIds: [{}]) }}",
            tag["id"]
        ),
        Value::Null,
    ))
    .await;
    assert_eq!(removed["data"]["removeProductTags"], true, "{removed}");
    let (_, row, _) = app
        .get(&format!("{PRODUCTS}{id}/"), Some(&owner.access))
        .await;
    assert_eq!(row["tags"], json!(["kitchen"]));

    // Images: added by URL or attachment, validation problems in the payload, removed.
    let (status, attachment) = upload(
        &app,
        &owner.access,
        "kettle.png",
        png(),
        &[("entity_type", "product")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{attachment}");
    let add = "mutation($p: ID!, $i: ProductImageInput!) { addProductImage(productId: $p, input: $i) { productImage { id url isPrimary altText } errors { field message } } }";
    let first = post(gql(
        add,
        json!({"p": id, "i": {"attachmentId": attachment["id"], "altText": "Front"}}),
    ))
    .await;
    let image = &first["data"]["addProductImage"];
    assert_eq!(image["errors"], json!([]), "{first}");
    assert_eq!(image["productImage"]["isPrimary"], true);
    assert_eq!(image["productImage"]["altText"], "Front");
    let bad = post(gql(add, json!({"p": id, "i": {"url": "javascript:x"}}))).await;
    assert_eq!(bad["data"]["addProductImage"]["productImage"], Value::Null);
    assert_eq!(
        bad["data"]["addProductImage"]["errors"][0]["field"], "url",
        "{bad}"
    );
    let second = post(gql(
        add,
        json!({"p": id, "i": {"url": "https://cdn.example.com/k.png", "isPrimary": true}}),
    ))
    .await;
    assert_eq!(
        second["data"]["addProductImage"]["productImage"]["isPrimary"],
        true
    );
    let listed = post(gql(
        "query($id: ID!) { product(id: $id) { images { id isPrimary position } } }",
        json!({"id": id}),
    ))
    .await;
    let images = listed["data"]["product"]["images"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(images.len(), 2, "{listed}");
    assert_eq!(images.iter().filter(|i| i["isPrimary"] == true).count(), 1);
    let gone = post(gql(
        "mutation($id: ID!) { removeProductImage(id: $id) }",
        json!({"id": second["data"]["addProductImage"]["productImage"]["id"]}),
    ))
    .await;
    assert_eq!(gone["data"]["removeProductImage"], true, "{gone}");
    let listed = post(gql(
        "query($id: ID!) { product(id: $id) { images { isPrimary } } }",
        json!({"id": id}),
    ))
    .await;
    assert_eq!(
        listed["data"]["product"]["images"],
        json!([{"isPrimary": true}]),
        "the remaining image is primary again"
    );
    // Images have no generic mutations: only the checked ones above write them.
    let (status, generic, _) = app
        .post(
            "/graphql/product",
            gql(
                "mutation { createProductImage(input: {url: \"https://x\"}) { id } }",
                Value::Null,
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{generic}");
}

#[tokio::test]
async fn oversized_images_are_refused_and_store_nothing() {
    let app = TestApp::spawn_with(|c| c.storage.direct_upload_max_bytes = 4096).await;
    let owner = owner_with_project(&app, "olga", "Olga Optics").await;
    let pool = service_pool(&app.config(), "product").await;
    let id = product(&app, &owner, json!({"name": "Lens", "price": "1.00"})).await;
    let before = attachments(&app, owner.project_id()).await;
    let (status, body) = form_post(
        &app,
        &owner.access,
        &images_of(id),
        &[],
        Some(("image", "big.png", crate::files::png_of(20_000))),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["code"], "file_too_large");
    assert_eq!(counts(&pool, id).await, (0, 0));
    assert_eq!(attachments(&app, owner.project_id()).await, before);
}
