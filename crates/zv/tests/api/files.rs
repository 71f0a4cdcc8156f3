//! Attachments in both storage modes: direct and presigned uploads, signed downloads, type
//! checks by content, hostile names, size limits and quota, deletion.

use reqwest::multipart::{Form, Part};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{s, TestApp};
use crate::projects::{member, owner_with_project, Owner};

/// A small valid PNG (8-byte signature, IHDR, IEND) padded to `len` bytes.
pub fn png_of(len: usize) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend_from_slice(&[
        0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0,
    ]);
    bytes.resize(len.max(bytes.len()), 0);
    bytes
}

pub fn png() -> Vec<u8> {
    png_of(600)
}

fn pdf_of(len: usize) -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    bytes.resize(len, b' ');
    bytes
}

/// `direct-upload` with `fields` then the file.
pub async fn upload(
    app: &TestApp,
    token: &str,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = Form::new();
    for (k, v) in fields {
        form = form.text((*k).to_owned(), (*v).to_owned());
    }
    form = form.part("file", Part::bytes(bytes).file_name(name.to_owned()));
    let req = app
        .client
        .post(app.url("/api/v1/project/attachment/direct-upload/"))
        .bearer_auth(token)
        .multipart(form);
    let (status, body, _) = app.send(req).await;
    (status, body)
}

/// The URL with one hex digit of its signature changed.
fn tamper(url: &str) -> String {
    let at = url.find("ignature=").expect("a signature") + "ignature=".len();
    let mut out = url.to_owned();
    let flipped = if &url[at..at + 1] == "0" { "1" } else { "0" };
    out.replace_range(at..at + 1, flipped);
    out
}

async fn fetch(app: &TestApp, url: &str) -> (StatusCode, Vec<u8>, reqwest::header::HeaderMap) {
    let response = app.client.get(url).send().await.expect("fetch");
    let status = response.status();
    let headers = response.headers().clone();
    (
        status,
        response.bytes().await.expect("bytes").to_vec(),
        headers,
    )
}

async fn usage(app: &TestApp, project_id: i64) -> (i64, i64) {
    let pool = app.project_pool().await;
    sqlx::query_as("SELECT storage_used_bytes, storage_reserved_bytes FROM projects WHERE id = $1")
        .bind(project_id)
        .fetch_one(&pool)
        .await
        .expect("usage")
}

/// Presign, POST the form where the response says, confirm.
async fn presigned_upload(
    app: &TestApp,
    owner: &Owner,
    name: &str,
    declared: usize,
    content_type: &str,
    bytes: Vec<u8>,
) -> (Value, StatusCode, Value) {
    let (status, presign) = app
        .call(
            Method::POST,
            "/api/v1/project/attachment/presigned-url/",
            json!({"file_name": name, "file_size": declared, "content_type": content_type, "entity_type": "invoice"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{presign}");
    let mut form = Form::new();
    for (k, v) in presign["fields"].as_object().expect("fields") {
        form = form.text(k.clone(), s(v));
    }
    form = form.part(
        "file",
        Part::bytes(bytes)
            .file_name(name.to_owned())
            .mime_str(content_type)
            .expect("mime"),
    );
    let response = app
        .client
        .post(s(&presign["upload_url"]))
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let upload_status = response.status();
    let text = response.text().await.unwrap_or_default();
    (presign, upload_status, json!(text))
}

async fn confirm(app: &TestApp, owner: &Owner, id: &Value) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/v1/project/attachment/confirm-upload/",
        json!({"attachment_id": id}),
        &owner.access,
    )
    .await
}

/// What both storage modes must do.
async fn exercise_storage(app: &TestApp, owner: &Owner) {
    let pid = owner.project_id();
    // Public product image: readable by anyone at file_url.
    let (status, image) = upload(
        app,
        &owner.access,
        "../../etc/passwd.png",
        png(),
        &[("entity_type", "product"), ("entity_id", "42")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{image}");
    assert_eq!(
        image["original_name"], "passwd.png",
        "names are labels, never paths"
    );
    assert_eq!(image["visibility"], "public");
    assert_eq!(image["mime_type"], "image/png");
    assert_eq!(image["dimensions"], json!({"width": 1, "height": 1}));
    assert_eq!(image["file_info"]["size"], 600);
    assert_eq!(image["method"], "direct_upload");
    let key = s(&image["s3_key"]);
    assert!(
        key.starts_with(&format!("project/{pid}/public/attachments/")) && !key.contains(".."),
        "{key}"
    );
    assert_eq!(image["checksum_sha256"].as_str().map(str::len), Some(64));
    let (status, bytes, headers) = fetch(app, &s(&image["file_url"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(bytes, png());
    if let Some(nosniff) = headers.get("x-content-type-options") {
        assert_eq!(nosniff, "nosniff");
    }

    // Private document: a signed URL works, a tampered one does not.
    let (status, doc) = upload(
        app,
        &owner.access,
        "contract.pdf",
        pdf_of(3000),
        &[("entity_type", "invoice"), ("base_path", "contracts/2026")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{doc}");
    assert_eq!(doc["visibility"], "private");
    assert_eq!(doc["dimensions"], Value::Null);
    assert!(s(&doc["s3_key"]).starts_with(&format!("project/{pid}/private/contracts/2026/")));
    let url = s(&doc["file_url"]);
    let (status, bytes, _) = fetch(app, &url).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 3000));
    let tampered = tamper(&url);
    let (status, _, _) = fetch(app, &tampered).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let unsigned = url.split('?').next().expect("path").to_owned();
    let (status, _, _) = fetch(app, &unsigned).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, dl) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/attachment/{}/download-url/", doc["id"]),
            json!({"expires_in": 120}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{dl}");
    let (status, bytes, _) = fetch(app, &s(&dl["download_url"])).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 3000));
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/attachment/{}/download-url/", doc["id"]),
            json!({"expires_in": 10}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Presigned: POST the form to the store, then confirm (twice is harmless).
    let (presign, up, out) = presigned_upload(
        app,
        owner,
        "scan.pdf",
        5000,
        "application/pdf",
        pdf_of(5000),
    )
    .await;
    assert!(up.is_success(), "{up} {out}");
    let (status, confirmed) = confirm(app, owner, &presign["attachment_id"]).await;
    assert_eq!(status, StatusCode::OK, "{confirmed}");
    assert_eq!(
        (
            confirmed["upload_status"].clone(),
            confirmed["status"].clone()
        ),
        (json!("completed"), json!("uploaded"))
    );
    let (status, again) = confirm(app, owner, &presign["attachment_id"]).await;
    assert_eq!(
        (status, again["id"].clone()),
        (StatusCode::OK, confirmed["id"].clone())
    );
    // The store enforces the policy: more bytes than declared are refused.
    let (_, up, _) =
        presigned_upload(app, owner, "big.pdf", 100, "application/pdf", pdf_of(200)).await;
    assert!(up.is_client_error(), "policy must cap the size: {up}");
    // Nothing uploaded → upload_missing; a lie about the type → 415 and failed.
    let (status, missing) = app
        .call(Method::POST, "/api/v1/project/attachment/presigned-url/", json!({"file_name": "x.pdf", "file_size": 10, "content_type": "application/pdf", "entity_type": "invoice"}), &owner.access)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = confirm(app, owner, &missing["attachment_id"]).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("upload_missing"))
    );
    let (lie, up, _) =
        presigned_upload(app, owner, "fake.pdf", 700, "application/pdf", png_of(700)).await;
    assert!(up.is_success());
    let (status, body) = confirm(app, owner, &lie["attachment_id"]).await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!("unsupported_file_type")
        )
    );
    let (_, failed, _) = app
        .get(
            &format!("/api/v1/project/attachment/{}/", lie["attachment_id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(failed["upload_status"], "failed");

    // Listing and filters.
    let (_, products, _) = app
        .get(
            "/api/v1/project/attachment/?entity_type=product&entity_id=42",
            Some(&owner.access),
        )
        .await;
    assert_eq!(products["count"], 1);
    let (_, completed, _) = app
        .get(
            "/api/v1/project/attachment/?upload_status=completed&ordering=-size",
            Some(&owner.access),
        )
        .await;
    assert_eq!(completed["count"], 3);
    assert_eq!(completed["results"][0]["size"], 5000);

    // Usage follows uploads; deleting frees it and removes the object.
    let (used, reserved) = usage(app, pid).await;
    assert_eq!(
        (used, reserved),
        (600 + 3000 + 5000, 110),
        "unconfirmed presigns keep their reservations"
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/project/attachment/{}/", doc["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .get(
            &format!("/api/v1/project/attachment/{}/", doc["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.platform
            .storage()
            .size(&s(&doc["s3_key"]))
            .await
            .expect("head"),
        None,
        "object removed"
    );
    let (used, _) = usage(app, pid).await;
    assert_eq!(used, 600 + 5000);
    let (status, out) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/attachment/{}/delete/", image["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, out["message"].clone()),
        (StatusCode::OK, json!("Attachment deleted successfully"))
    );

    let (_, spare) = upload(
        app,
        &owner.access,
        "spare.png",
        png(),
        &[("entity_type", "general")],
    )
    .await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/project/attachment/{}/delete/", spare["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Visibility change moves the object.
    let (_, secret) = upload(
        app,
        &owner.access,
        "p.png",
        png(),
        &[("entity_type", "profile")],
    )
    .await;
    let (status, public) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/project/attachment/{}/", secret["id"]),
            json!({"visibility": "public", "file_name": "../me.png"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{public}");
    assert_eq!(public["original_name"], "me.png");
    let (status, bytes, _) = fetch(app, &s(&public["file_url"])).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 600));
    assert_eq!(
        app.platform
            .storage()
            .size(&s(&secret["s3_key"]))
            .await
            .expect("head"),
        None
    );
}

#[tokio::test]
async fn files_on_the_local_filesystem() {
    let app = TestApp::spawn_with(|c| c.storage.direct_upload_max_bytes = 64 * 1024).await;
    let owner = owner_with_project(&app, "fiona", "Fiona Files").await;
    exercise_storage(&app, &owner).await;
    let pid = owner.project_id();
    let (used_before, _) = usage(&app, pid).await;

    // Content decides: lies, unknown types, empty and missing files are refused.
    for (name, bytes, status) in [
        (
            "evil.png",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "tool.exe",
            b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "notes.txt",
            b"hello\x00world".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "x.svg",
            b"just text".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        ("empty.png", Vec::new(), StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        let (got, body) = upload(
            &app,
            &owner.access,
            name,
            bytes,
            &[("entity_type", "general")],
        )
        .await;
        assert_eq!(got, status, "{name}: {body}");
    }
    let (status, body) = upload(
        &app,
        &owner.access,
        "big.png",
        png_of(100 * 1024),
        &[("entity_type", "product")],
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::PAYLOAD_TOO_LARGE, json!("file_too_large"))
    );
    assert!(
        s(&body["detail"]).contains("64KB") && s(&body["detail"]).contains("presigned"),
        "{body}"
    );
    for fields in [
        [("entity_type", "Bad Type")],
        [("base_path", "../../etc")],
        [("visibility", "world")],
    ] {
        let mut all = vec![("entity_type", "general")];
        all.extend(fields);
        let (status, body) = upload(&app, &owner.access, "ok.png", png(), &all).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{fields:?}: {body}");
    }
    let req = app
        .client
        .post(app.url("/api/v1/project/attachment/direct-upload/"))
        .bearer_auth(&owner.access)
        .multipart(Form::new().text("entity_type", "general"));
    let (status, body, _) = app.send(req).await;
    assert_eq!(
        (status, body["file"][0].clone()),
        (StatusCode::BAD_REQUEST, json!("No file was submitted."))
    );
    let req = app
        .client
        .post(app.url("/api/v1/project/attachment/direct-upload/"))
        .bearer_auth(&owner.access)
        .json(&json!({"file": "x"}));
    let (status, _, _) = app.send(req).await;
    assert!(status.is_client_error());
    assert_eq!(
        usage(&app, pid).await,
        (used_before, 110),
        "refused uploads leave usage alone"
    );

    // SVG is served sandboxed.
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec();
    let (status, body) = upload(
        &app,
        &owner.access,
        "logo.svg",
        svg,
        &[("entity_type", "product")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (_, _, headers) = fetch(&app, &s(&body["file_url"])).await;
    assert_eq!(
        headers
            .get("content-security-policy")
            .map(|v| v.to_str().unwrap_or("")),
        Some("sandbox")
    );
    assert_eq!(
        headers
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("")),
        Some("image/svg+xml")
    );

    // Quota: one conditional update decides, 507 when it would not fit.
    let pool = app.project_pool().await;
    sqlx::query("UPDATE projects SET storage_quota_bytes = storage_used_bytes + storage_reserved_bytes + 1000 WHERE id = $1")
        .bind(pid)
        .execute(&pool)
        .await
        .expect("quota");
    let (status, body) = app
        .call(Method::POST, "/api/v1/project/attachment/presigned-url/", json!({"file_name": "a.pdf", "file_size": 1001, "content_type": "application/pdf", "entity_type": "invoice"}), &owner.access)
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (
            StatusCode::INSUFFICIENT_STORAGE,
            json!("storage_quota_exceeded")
        )
    );
    assert!(
        s(&body["detail"]).starts_with("Project storage quota exceeded. Current:"),
        "{body}"
    );
    let (status, _) = upload(
        &app,
        &owner.access,
        "p.png",
        png_of(2000),
        &[("entity_type", "general")],
    )
    .await;
    assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE);

    // Local POST policy: a forged field is refused.
    let (status, presign) = app
        .call(Method::POST, "/api/v1/project/attachment/presigned-url/", json!({"file_name": "a.pdf", "file_size": 500, "content_type": "application/pdf", "entity_type": "invoice"}), &owner.access)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut form = Form::new();
    for (k, v) in presign["fields"].as_object().expect("fields") {
        let v = if k == "key" {
            format!("project/{}/public/evil.pdf", pid + 1)
        } else {
            s(v)
        };
        form = form.text(k.clone(), v);
    }
    form = form.part("file", Part::bytes(pdf_of(500)).file_name("a.pdf"));
    let response = app
        .client
        .post(s(&presign["upload_url"]))
        .multipart(form)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn file_permissions_follow_roles() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "rita", "Rita Repairs").await;
    let (_, editor) = member(&app, &owner, "ed", "editor").await;
    let (_, viewer) = member(&app, &owner, "vic", "viewer").await;
    let (status, _) = upload(&app, &viewer, "a.png", png(), &[("entity_type", "repair")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, mine) = upload(&app, &editor, "a.png", png(), &[("entity_type", "repair")]).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, theirs) = upload(
        &app,
        &owner.access,
        "b.png",
        png(),
        &[("entity_type", "repair")],
    )
    .await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/project/attachment/{}/", theirs["id"]),
            Value::Null,
            &editor,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "editors delete only their own files"
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/project/attachment/{}/", mine["id"]),
            Value::Null,
            &editor,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, list, _) = app.get("/api/v1/project/attachment/", Some(&viewer)).await;
    assert_eq!((status, list["count"].clone()), (StatusCode::OK, json!(1)));

    // Logo: a completed image of the project, public at once.
    let (status, project) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/project/projects/{}/", owner.project_id()),
            json!({"logo_id": theirs["id"]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{project}");
    assert_eq!(project["logo"]["id"], theirs["id"]);
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/project/projects/{}/", owner.project_id()),
            json!({"logo_id": 999_999}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // A new project may take a logo the caller uploaded elsewhere: it is copied in.
    let (status, copy, _) = app
        .post(
            "/api/v1/project/projects/",
            json!({"title": "Rita Two", "logo_id": theirs["id"]}),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    assert_ne!(copy["logo"]["id"], theirs["id"]);
    let (status, bytes, _) = fetch(&app, &s(&copy["logo"]["url"])).await;
    assert_eq!((status, bytes.len()), (StatusCode::OK, 600));
}

fn s3_endpoint() -> String {
    std::env::var("ZV_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

#[tokio::test]
async fn files_on_an_s3_compatible_store() {
    // `scripts/s3-server.sh start` runs s3s-fs with the bucket `zv-test`.
    let app = TestApp::spawn_with(|c| {
        c.s3_endpoint = Some(s3_endpoint());
        c.s3_bucket = "zv-test".into();
        c.s3_access_key_id = Some(kernel::config::Secret::new("zvtest"));
        c.s3_secret_access_key = Some(kernel::config::Secret::new("zvtestsecret"));
    })
    .await;
    assert!(app.platform.storage().is_s3());
    let owner = owner_with_project(&app, "sasha", "Sasha S3").await;
    exercise_storage(&app, &owner).await;
    // Private URLs are the store's own SigV4 URLs.
    let (_, doc) = upload(
        &app,
        &owner.access,
        "c.pdf",
        pdf_of(1000),
        &[("entity_type", "invoice")],
    )
    .await;
    let url = s(&doc["file_url"]);
    assert!(
        url.starts_with(&s3_endpoint()) && url.contains("X-Amz-Signature"),
        "{url}"
    );
}
