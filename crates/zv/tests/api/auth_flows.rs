//! The auth flows end to end through the gateway.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{s, TestApp, PASSWORD};

#[tokio::test]
async fn register_verify_login_profile_refresh_logout() {
    let app = TestApp::spawn().await;
    let (status, body, _) = app
        .post(
            "/api/v1/auth/auth/register/",
            json!({"username": "amal", "email": "Amal@Example.com", "password": PASSWORD, "first_name": "Amal"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["username"], "amal");

    // Unverified accounts cannot log in.
    let (status, body, _) = app
        .post(
            "/api/v1/auth/login/",
            json!({"username": "amal", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["code"], "no_active_account");

    let code = app.last_code("Amal@Example.com");
    assert_eq!(code.len(), 6);
    let (status, body, _) = app
        .post(
            "/api/v1/auth/auth/verify-otp/",
            json!({"email": "amal@example.com", "otp": code}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Single use.
    let (status, body, _) = app
        .post(
            "/api/v1/auth/verify_otp",
            json!({"email": "amal@example.com", "otp": code}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_otp"))
    );

    // Login by email, case-insensitive, on the `login/` spelling with a stale bearer attached.
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .bearer_auth("stale.token.value")
        .json(&json!({"username": "AMAL@example.COM", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["success"], true);
    assert_eq!(body["token"], body["access"]);
    assert_eq!(body["user"]["username"], "amal");
    assert_eq!(body["user"]["project_id"], serde_json::Value::Null);
    let (access, refresh) = (s(&body["access"]), s(&body["refresh"]));

    for path in [
        "/api/v1/auth/auth/user/",
        "/api/v1/auth/user",
        "/api/v1/auth/me/",
        "/api/v1/users/me/",
    ] {
        let (status, body, _) = app.get(path, Some(&access)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["email"], "Amal@Example.com");
        assert_eq!(body["is_verified"], true);
        assert!(body["last_login"].is_string());
    }

    let (status, body, _) = app
        .send(
            app.client
                .patch(app.url("/api/v1/auth/auth/user/"))
                .bearer_auth(&access)
                .json(&json!({"last_name": "Haddad", "is_superuser": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["last_name"], "Haddad");
    assert_eq!(body["is_superuser"], false, "read-only fields are ignored");

    let (status, pair, _) = app
        .post(
            "/api/v1/auth/auth/token/refresh/",
            json!({"refresh": refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_ne!(pair["refresh"], json!(refresh), "refresh rotates");
    let (status, _, _) = app
        .get("/api/v1/auth/auth/user/", Some(&s(&pair["access"])))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body, _) = app
        .post(
            "/api/v1/auth/auth/token/verify/",
            json!({"token": s(&pair["access"])}),
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    let new_access = s(&pair["access"]);
    let (status, body, _) = app
        .post("/api/v1/auth/auth/logout/", json!({}), Some(&new_access))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "detail": "Successfully logged out"})
    );
    // The access token of the logged-out session dies at once, and so does the family.
    let (status, body, _) = app.get("/api/v1/auth/auth/user/", Some(&new_access)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNAUTHORIZED, json!("token_not_valid"))
    );
    let (status, body, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": s(&pair["refresh"])}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "Token is blacklisted");
}

#[tokio::test]
async fn registration_rejects_duplicates_and_weak_passwords_without_side_effects() {
    let app = TestApp::spawn().await;
    app.user("taken", false).await;
    let cases = [
        (
            json!({"username": "Taken", "email": "new@example.com", "password": PASSWORD}),
            "username_exists",
        ),
        (
            json!({"username": "fresh", "email": "TAKEN@example.com", "password": PASSWORD}),
            "email_exists",
        ),
    ];
    for (input, code) in cases {
        let (status, body, _) = app.post("/api/v1/auth/register/", input, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], code);
        assert!(body["error"].is_string());
    }
    let (status, body, _) = app
        .post(
            "/api/v1/auth/register/",
            json!({"username": "bad name!", "email": "nope", "password": "12345678"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["username"].is_array() && body["email"].is_array(),
        "{body}"
    );
    let (status, body, _) = app
        .post(
            "/api/v1/auth/register/",
            json!({"username": "fresh", "email": "fresh@example.com", "password": "12345678"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["password"].is_array(), "{body}");
    let (status, body, _) = app.post("/api/v1/auth/register/", json!({}), None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["username"], json!(["This field is required."]));
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(users, 1, "nothing was created");
    assert!(app.mailer.sent().is_empty());
}

#[tokio::test]
async fn password_reset_revokes_sessions_and_otp_dies_after_five_wrong_tries() {
    let app = TestApp::spawn().await;
    app.user("rana", false).await;
    let (old_access, old_refresh) = app.login("rana").await;

    let (status, body, _) = app
        .post(
            "/api/v1/auth/send-otp/",
            json!({"email": "nobody@example.com"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::NOT_FOUND, json!("user_not_found"))
    );
    let (status, _, _) = app
        .post(
            "/api/v1/auth/auth/password/reset/",
            json!({"email": "rana@example.com"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let code = app.last_code("rana@example.com");
    // Resend cooldown.
    let (status, _, headers) = app
        .post(
            "/api/v1/auth/send-otp/",
            json!({"email": "rana@example.com"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(headers.contains_key("retry-after"));

    let (status, body, _) = app
        .post(
            "/api/v1/auth/auth/password/reset/",
            json!({"email": "rana@example.com", "otp": code, "new_password": "N3w-password!"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["detail"], "Password has been reset.");
    let (status, _, _) = app.get("/api/v1/auth/auth/user/", Some(&old_access)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "old sessions are revoked");
    let (status, _, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": old_refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = app
        .post(
            "/api/v1/auth/token/",
            json!({"username": "rana", "password": "N3w-password!"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // A fresh code, guessed wrong five times, no longer works even when right.
    sqlx::query("UPDATE otp_codes SET created_at = created_at - interval '2 minutes'")
        .execute(&app.pool)
        .await
        .expect("age codes");
    let (status, _, _) = app
        .post(
            "/api/v1/auth/send-otp/",
            json!({"email": "rana@example.com"}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let code = app.last_code("rana@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let (status, _, _) = app
            .post(
                "/api/v1/auth/password/reset/",
                json!({"email": "rana@example.com", "otp": wrong, "new_password": "An0ther-pass"}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
    let (status, body, _) = app
        .post(
            "/api/v1/auth/password/reset/",
            json!({"email": "rana@example.com", "otp": code, "new_password": "An0ther-pass"}),
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_otp"))
    );
}

#[tokio::test]
async fn password_change_keeps_the_caller_session_only() {
    let app = TestApp::spawn().await;
    app.user("omar", false).await;
    let (phone, _) = app.login("omar").await;
    let (laptop, _) = app.login("omar").await;
    let (status, body, _) = app
        .post(
            "/api/v1/auth/password/change/",
            json!({"old_password": "wrong-one", "new_password": "Br4nd-new-pass"}),
            Some(&laptop),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"current_password": ["Current password is incorrect."]})
    );
    let (status, body, _) = app
        .post(
            "/api/v1/auth/password/change/",
            json!({"current_password": PASSWORD, "new_password": "Br4nd-new-pass"}),
            Some(&laptop),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        app.get("/api/v1/auth/user/", Some(&laptop)).await.0,
        StatusCode::OK
    );
    assert_eq!(
        app.get("/api/v1/auth/user/", Some(&phone)).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn change_project_needs_membership_and_refresh_rederives_the_role() {
    let app = TestApp::spawn().await;
    let user = app.user("lina", false).await;
    let root = app.user("root", true).await;
    use zv_auth::data::memberships::{upsert_member, upsert_project};
    upsert_project(&app.pool, 11, root).await.expect("project");
    upsert_project(&app.pool, 12, root).await.expect("project");
    upsert_project(&app.pool, 13, user).await.expect("project");
    upsert_member(&app.pool, 11, user, kernel::rbac::Role::Editor)
        .await
        .expect("member");
    let (access, _) = app.login("lina").await;

    let (status, body, _) = app
        .post(
            "/api/v1/auth/auth/token/change_project/",
            json!({"project_id": 12}),
            Some(&access),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], "not_project_member");
    let (status, body, _) = app
        .post(
            "/api/v1/auth/change-project/",
            json!({"project_id": 999}),
            Some(&access),
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_project_member"))
    );
    let (status, body, _) = app
        .post(
            "/api/v1/auth/change_project/",
            json!({"project_id": "x"}),
            Some(&access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["project_id"].is_array());

    let (status, pair, _) = app
        .post(
            "/api/v1/auth/token/change_project/",
            json!({"project_id": 11}),
            Some(&access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    let claims = app.claims(&pair["access"]);
    assert_eq!(
        (claims.project_id, claims.role),
        (Some(11), Some(kernel::rbac::Role::Editor))
    );

    // Promoted, then refreshed: the new access token carries the new role.
    upsert_member(&app.pool, 11, user, kernel::rbac::Role::Admin)
        .await
        .expect("promote");
    let (status, next, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": s(&pair["refresh"])}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims = app.claims(&next["access"]);
    assert_eq!(claims.role, Some(kernel::rbac::Role::Admin));

    // Removed from the project: the next refresh drops project and role.
    sqlx::query("DELETE FROM memberships WHERE user_id = $1")
        .bind(user)
        .execute(&app.pool)
        .await
        .expect("remove");
    let (_, last, _) = app
        .post(
            "/api/v1/auth/token/refresh/",
            json!({"refresh": s(&next["refresh"])}),
            None,
        )
        .await;
    let claims = app.claims(&last["access"]);
    assert_eq!((claims.project_id, claims.role), (None, None));

    // Superusers may enter any existing project, as admin.
    let (root_access, _) = app.login("root").await;
    let (status, pair, _) = app
        .post(
            "/api/v1/auth/token/change_project/",
            json!({"project_id": 13}),
            Some(&root_access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims = app.claims(&pair["access"]);
    assert_eq!(claims.role, Some(kernel::rbac::Role::Admin));
    // The owner of record is owner without a membership row.
    let (status, pair, _) = app
        .post(
            "/api/v1/auth/token/change_project/",
            json!({"project_id": 12}),
            Some(&root_access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims = app.claims(&pair["access"]);
    assert_eq!(claims.role, Some(kernel::rbac::Role::Owner));
}

#[tokio::test]
async fn staff_list_users_with_auth_pagination() {
    let app = TestApp::spawn().await;
    app.user("staffer", true).await;
    for name in ["ali", "alia", "basma"] {
        app.user(name, false).await;
    }
    let (plain, _) = app.login("ali").await;
    let (status, body, _) = app.get("/api/v1/auth/auth/users/", Some(&plain)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("permission_denied"))
    );
    let (staff, _) = app.login("staffer").await;
    let (status, body, _) = app
        .get("/api/v1/auth/auth/users/?search=ali&limit=1", Some(&staff))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 2);
    assert_eq!(body["total_pages"], 2);
    assert_eq!(body["next"], 2);
    assert_eq!(body["previous"], serde_json::Value::Null);
    assert_eq!(body["results"][0]["username"], "ali");
    let (status, body, _) = app.get("/api/v1/auth/users/?page=9", Some(&staff)).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (StatusCode::NOT_FOUND, json!("Invalid page."))
    );
    let (status, body, _) = app.get("/api/v1/auth/users/?bogus=1", Some(&staff)).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"bogus": ["Unknown filter."]})
        )
    );
    let (status, _, _) = app.get("/api/v1/auth/users/?limit=0", Some(&staff)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn profile_and_addresses_are_the_callers_own() {
    let app = TestApp::spawn().await;
    app.user("maha", false).await;
    app.user("other", false).await;
    let (maha, _) = app.login("maha").await;
    let (other, _) = app.login("other").await;

    let (status, body, _) = app.get("/api/v1/auth/profile/", Some(&maha)).await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));
    let (status, profile, _) = app
        .post(
            "/api/v1/auth/profile/",
            json!({"bio": "Shop owner", "date_of_birth": "1990-05-01", "gender": "female"}),
            Some(&maha),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{profile}");
    assert_eq!(profile["birth_date"], "1990-05-01");
    let (status, body, _) = app
        .post("/api/v1/auth/profile/", json!({}), Some(&maha))
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("profile_exists"))
    );
    let (status, body, _) = app
        .send(
            app.client
                .patch(app.url("/api/v1/auth/profile/"))
                .bearer_auth(&maha)
                .json(&json!({"gender": "robot", "phone": "1".repeat(40)})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["gender"].is_array() && body["phone"].is_array(),
        "{body}"
    );
    let id = profile["id"].as_i64().expect("id");
    let (status, _, _) = app
        .get(&format!("/api/v1/auth/profile/{id}/"), Some(&other))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's profile does not exist for them"
    );
    let (status, body, _) = app
        .send(
            app.client
                .put(app.url(&format!("/api/v1/auth/profile/{id}/")))
                .bearer_auth(&maha)
                .json(&json!({"company_name": "Maha Mobiles"})),
        )
        .await;
    assert_eq!(
        (status, body["company_name"].clone(), body["bio"].clone()),
        (StatusCode::OK, json!("Maha Mobiles"), json!("Shop owner"))
    );

    // Addresses: the first is default, one default at a time, deleting the default moves it.
    let (status, home, _) = app
        .post(
            "/api/v1/auth/address/",
            json!({"address_line1": "1 Rainbow St", "city": "Amman"}),
            Some(&maha),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{home}");
    assert_eq!(
        (home["is_default"].clone(), home["country"].clone()),
        (json!(true), json!("Jordan"))
    );
    let (_, work, _) = app
        .post(
            "/api/v1/auth/address/",
            json!({"address_type": "work", "street_address": "Tech Park", "is_default": true}),
            Some(&maha),
        )
        .await;
    assert_eq!(work["is_default"], true);
    let (_, list, _) = app.get("/api/v1/auth/address/", Some(&maha)).await;
    let defaults: Vec<bool> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["is_default"] == true)
        .collect();
    assert_eq!(defaults, vec![false, true]);
    let (status, body, _) = app
        .post(
            "/api/v1/auth/address/",
            json!({"address_type": "castle"}),
            Some(&maha),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["address_type"].is_array());
    let work_id = work["id"].as_i64().expect("id");
    for (method, token) in [("GET", &other), ("DELETE", &other)] {
        let req = app
            .client
            .request(
                method.parse().expect("method"),
                app.url(&format!("/api/v1/auth/address/{work_id}/")),
            )
            .bearer_auth(token);
        assert_eq!(
            app.send(req).await.0,
            StatusCode::NOT_FOUND,
            "{method} of another user's address"
        );
    }
    let (status, _, _) = app
        .send(
            app.client
                .delete(app.url(&format!("/api/v1/auth/address/{work_id}/")))
                .bearer_auth(&maha),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, me, _) = app.get("/api/v1/auth/auth/user/", Some(&maha)).await;
    assert_eq!(me["address"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        me["address"][0]["is_default"], true,
        "the remaining address became default"
    );
    assert_eq!(me["profile"]["company_name"], "Maha Mobiles");
    let (status, body, _) = app
        .post(
            "/api/v1/auth/profile/remove-picture/",
            json!({}),
            Some(&maha),
        )
        .await;
    assert_eq!(
        (status, body["message"].clone()),
        (
            StatusCode::OK,
            json!("Profile picture removed successfully")
        )
    );
    let (status, _, _) = app.get("/api/v1/auth/address/", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn countries_and_regions_are_public_reference_data() {
    let app = TestApp::spawn().await;
    let (status, _, _) = app
        .get("/api/v1/auth/country/", Some("stale.bearer.token"))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an invalid bearer is refused even on public reads"
    );
    let (status, page, _) = app.get("/api/v1/auth/country/", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["count"], 249);
    assert_eq!(page["limit"], 10);
    assert_eq!(page["results"].as_array().map(Vec::len), Some(10));
    assert_eq!(page["next"], 2);
    let (status, jordan, _) = app.get("/api/v1/auth/country/jordan/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (
            jordan["code2"].clone(),
            jordan["code3"].clone(),
            jordan["tld"].clone()
        ),
        (json!("JO"), json!("JOR"), json!(".jo"))
    );
    assert_eq!(jordan["translations"]["ar"], "الأردن");
    let (_, found, _) = app
        .get("/api/v1/auth/auth/country/?search=Jordanie", None)
        .await;
    assert_eq!(
        found["results"][0]["slug"], "jordan",
        "search covers translations"
    );
    let (status, regions, _) = app.get("/api/v1/auth/region/jordan/", None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = regions
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names.len(), 12, "Jordan's twelve governorates");
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "ordered by name");
    assert!(regions[0]["display_name"]
        .as_str()
        .is_some_and(|d| d.ends_with(", Jordan")));
    for path in [
        "/api/v1/auth/country/atlantis/",
        "/api/v1/auth/region/atlantis/",
    ] {
        assert_eq!(app.get(path, None).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, body, _) = app.get("/api/v1/auth/country/?page=99", None).await;
    assert_eq!(
        (status, body["detail"].clone()),
        (StatusCode::NOT_FOUND, json!("Invalid page."))
    );
    let (status, body, _) = app.get("/api/v1/auth/country/?continent=AS", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::BAD_REQUEST,
            json!({"continent": ["Unknown filter."]})
        )
    );
}

fn png(extra: usize) -> Vec<u8> {
    let mut bytes = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    bytes.extend(std::iter::repeat_n(7u8, extra));
    bytes
}

async fn upload(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    field: &str,
    bytes: Vec<u8>,
) -> (StatusCode, serde_json::Value) {
    let part = reqwest::multipart::Part::bytes(bytes).file_name("avatar.png");
    let form = reqwest::multipart::Form::new().part(field.to_owned(), part);
    let mut req = app.client.post(app.url(path)).multipart(form);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let (status, body, _) = app.send(req).await;
    (status, body)
}

#[tokio::test]
async fn profile_pictures_upload_replace_and_download() {
    let app = TestApp::spawn().await;
    app.user("pic", false).await;
    let (access, _) = app.login("pic").await;

    let (status, body) = upload(
        &app,
        "/api/v1/auth/auth/user/upload-image/",
        Some(&access),
        "image",
        png(100),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true);
    let first = s(&body["image_url"]);
    assert_eq!(body["profile_picture_url"], body["image_url"]);
    assert!(
        first.starts_with(&format!("{}/api/v1/auth/media/profile_images/", app.base)),
        "{first}"
    );
    let response = app.client.get(&first).send().await.expect("download");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(response.bytes().await.expect("bytes").to_vec(), png(100));

    // Replacing the picture deletes the old object.
    let (status, profile) = upload(
        &app,
        "/api/v1/auth/profile/upload_picture/",
        Some(&access),
        "profile_picture",
        png(10),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{profile}");
    assert_ne!(profile["profile_picture_url"], json!(first));
    assert_eq!(
        app.client.get(&first).send().await.expect("get").status(),
        StatusCode::NOT_FOUND
    );
    let (_, me, _) = app.get("/api/v1/auth/auth/user/", Some(&access)).await;
    assert_eq!(
        me["profile"]["profile_picture_url"],
        profile["profile_picture_url"]
    );

    let svg = b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>".to_vec();
    let (status, body) = upload(
        &app,
        "/api/v1/auth/user/upload-image",
        Some(&access),
        "image",
        svg,
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_image_type"))
    );
    let (status, body) = upload(
        &app,
        "/api/v1/auth/user/upload-image",
        Some(&access),
        "other",
        png(1),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("no_image"))
    );
    let (status, body) = upload(
        &app,
        "/api/v1/auth/user/upload-image",
        Some(&access),
        "image",
        png(5 * 1024 * 1024),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("image_too_large"))
    );
    let (status, _) = upload(
        &app,
        "/api/v1/auth/user/upload-image",
        None,
        "image",
        png(1),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, me_after, _) = app.get("/api/v1/auth/auth/user/", Some(&access)).await;
    assert_eq!(
        me_after["profile"]["profile_picture"], me["profile"]["profile_picture"],
        "failed uploads changed nothing"
    );

    // Only profile pictures are served, and paths cannot climb out.
    for path in [
        "/api/v1/auth/media/keys/signing-keys.json",
        "/api/v1/auth/media/profile_images/..%2F..%2Fkeys%2Fsigning-keys.json",
        "/api/v1/auth/media/profile_images/%2e%2e/%2e%2e/keys/signing-keys.json",
    ] {
        let (status, body, _) = app.get(path, None).await;
        // The last form is resolved by the client to a non-public path (401); none is served.
        assert!(
            matches!(status, StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED),
            "{path}: {status}"
        );
        assert!(!body.to_string().contains("private_key"), "{path}");
    }
}

#[tokio::test]
async fn concurrent_registrations_of_one_username_never_500() {
    let app = TestApp::spawn().await;
    let attempts = (0..12).map(|i| {
        app.post(
            "/api/v1/auth/register/",
            json!({"username": "race", "email": format!("race{i}@example.com"), "password": PASSWORD}),
            None,
        )
    });
    let results = futures::future::join_all(attempts).await;
    let created = results
        .iter()
        .filter(|r| r.0 == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        1,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    for (status, body, _) in results.iter().filter(|r| r.0 != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(users, 1);
}
