//! The project service through the gateway: projects, members, roles, and membership
//! reaching auth (change_project, refresh, the kernel's scope check).

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{s, TestApp};

/// A user who owns a fresh project: (user id, project-scoped access, refresh, project body).
pub struct Owner {
    pub id: i64,
    pub access: String,
    pub refresh: String,
    pub project: Value,
}

impl Owner {
    pub fn project_id(&self) -> i64 {
        self.project["id"].as_i64().expect("project id")
    }

    pub fn username(&self) -> String {
        s(&self.project["username"])
    }
}

/// Creates `username`, a project titled `title` owned by them, and switches into it.
/// A new user (id, unscoped access token) and the project they created.
async fn user_and_project(app: &TestApp, username: &str, title: &str) -> (i64, String, Value) {
    let id = app.user(username, false).await;
    let (access, _) = app.login(username).await;
    let (status, project, _) = app
        .post(
            "/api/v1/project/projects/",
            json!({"title": title}),
            Some(&access),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{project}");
    (id, access, project)
}

pub async fn owner_with_project(app: &TestApp, username: &str, title: &str) -> Owner {
    let (id, access, project) = user_and_project(app, username, title).await;
    let (access, refresh) = switch(app, &access, project["id"].as_i64().expect("id")).await;
    Owner {
        id,
        access,
        refresh,
        project,
    }
}

/// [`owner_with_project`] where auth learns of new projects asynchronously (the RabbitMQ bus):
/// the switch is retried until auth's projection has the membership (15 s at most).
pub async fn owner_with_project_eventually(app: &TestApp, username: &str, title: &str) -> Owner {
    let (id, access, project) = user_and_project(app, username, title).await;
    for _ in 0..150 {
        let (status, body, _) = app
            .post(
                "/api/v1/auth/auth/token/change_project/",
                json!({"project_id": project["id"]}),
                Some(&access),
            )
            .await;
        if status == StatusCode::OK {
            return Owner {
                id,
                access: s(&body["access"]),
                refresh: s(&body["refresh"]),
                project,
            };
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("auth's projection did not learn of the project within 15 s");
}

/// auth's change_project: a pair scoped to `project_id`.
pub async fn switch(app: &TestApp, access: &str, project_id: i64) -> (String, String) {
    let (status, body, _) = app
        .post(
            "/api/v1/auth/auth/token/change_project/",
            json!({"project_id": project_id}),
            Some(access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "change_project: {body}");
    (s(&body["access"]), s(&body["refresh"]))
}

/// Adds `user_id` to the owner's project with `role`; returns the membership id.
pub async fn add_member(app: &TestApp, owner: &Owner, user_id: i64, role: &str) -> i64 {
    let (status, body) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/project/{}/account/collaborators/",
                owner.username()
            ),
            json!({"user_id": user_id, "role": role}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"].as_i64().expect("membership id")
}

/// A user who is a member of the owner's project with `role`, logged in and switched into it.
pub async fn member(app: &TestApp, owner: &Owner, username: &str, role: &str) -> (i64, String) {
    let id = app.user(username, false).await;
    add_member(app, owner, id, role).await;
    let (access, _) = app.login(username).await;
    let (access, _) = switch(app, &access, owner.project_id()).await;
    (id, access)
}

#[tokio::test]
async fn project_lifecycle_and_public_lookups() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "olivia", "Olivia's Bakery & Café").await;
    let p = &owner.project;
    assert_eq!(p["title"], "Olivia's Bakery & Café");
    assert_eq!(p["display_name"], p["title"]);
    assert_eq!(p["name"], p["title"]);
    assert_eq!(p["username"], "olivia-s-bakery-caf");
    assert_eq!(p["role"], "owner");
    assert_eq!(p["owner_id"], owner.id);
    let ident = s(&p["unique_identifier"]);
    assert!(ident.len() == 6 && ident.chars().next().is_some_and(|c| c.is_ascii_uppercase()));
    assert_eq!(
        p["supported_languages"],
        json!([{"code": "en", "name": "English"}])
    );
    assert_eq!(p["features"].as_array().map(Vec::len), Some(9));

    // The same title again gets the next free username.
    let (_, second, _) = app
        .post(
            "/api/v1/project/projects/",
            json!({"name": "Olivia's Bakery & Café"}),
            Some(&owner.access),
        )
        .await;
    assert_eq!(second["username"], "olivia-s-bakery-caf-2");

    // Detail by identifier and by id, with owner and settings.
    for key in [ident.clone(), owner.project_id().to_string()] {
        let (status, detail, _) = app
            .get(
                &format!("/api/v1/project/projects/{key}/"),
                Some(&owner.access),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{detail}");
        assert_eq!(detail["owner"]["id"], owner.id);
        assert_eq!(detail["settings"]["currency"], "USD");
        assert_eq!(detail["settings"]["language"], "en");
    }
    // Both mounts and the gateway alias.
    // Page links are the public path and query.
    let (_, first, _) = app
        .get("/api/v1/project/projects/?page_size=1", Some(&owner.access))
        .await;
    assert_eq!(
        first["next"],
        "/api/v1/project/projects/?page_size=1&page=2"
    );
    let (_, second, _) = app
        .get(s(&first["next"]).as_str(), Some(&owner.access))
        .await;
    assert_eq!(
        second["previous"],
        "/api/v1/project/projects/?page_size=1&page=1"
    );
    for path in ["/api/v1/project/project/projects/", "/api/v1/projects/"] {
        let (status, list, _) = app.get(path, Some(&owner.access)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(list["count"], 2, "{path}: {list}");
    }

    // Update: title, languages, features; unknown feature → 400 and nothing changes.
    let path = format!("/api/v1/project/projects/{ident}/");
    let (status, bad) = app
        .call(
            Method::PATCH,
            &path,
            json!({"title": "X", "features_add": ["teleport"]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(bad["features_add"][0], "Unknown feature: teleport");
    let (status, updated) = app
        .call(
            Method::PATCH,
            &path,
            json!({"display_name": "Olivia Bakes", "supported_languages": ["en", "ar"],
                   "default_language": "ar", "features_remove": ["blog", "pos"]}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["title"], "Olivia Bakes");
    assert_eq!(updated["default_language"], "ar");
    assert!(!updated["features"]
        .as_array()
        .expect("features")
        .contains(&json!("blog")));
    let (_, detail, _) = app.get(&path, Some(&owner.access)).await;
    assert_eq!(
        detail["settings"]["language"], "ar",
        "language setting follows the project"
    );

    let (status, openapi, _) = app.get("/api/v1/project/openapi.json", None).await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/api/v1/project/projects/",
        "/api/v1/project/attachment/direct-upload/",
        "/api/v1/project/invitations/{token}/accept/",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} documented");
    }
    // Public lookups.
    let username = owner.username();
    let (status, public, _) = app
        .get(
            &format!("/api/v1/project/projects/by-username/{username}/"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(public["title"], "Olivia Bakes");
    let (status, info, _) = app
        .get(&format!("/api/v1/project/info/{username}/"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["unique_identifier"], ident);
    let (status, missing, _) = app
        .get("/api/v1/project/projects/by-username/nope-nope/", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["error"], "Project not found");
    let (status, langs, _) = app.get("/api/v1/project/data/languages/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(langs
        .as_array()
        .is_some_and(|l| l.contains(&json!({"code": "ar", "name": "العربية"}))));

    // Hostile and invalid input changes nothing.
    for body in [
        json!({}),
        json!({"title": ""}),
        json!({"title": "x".repeat(256)}),
        json!({"title": "ok", "username": "API"}),
        json!({"title": "ok", "username": "admin"}),
        json!({"title": "ok", "username": "a'; DROP TABLE projects;--"}),
        json!({"title": "ok", "supported_languages": ["xx"]}),
        json!({"title": "ok", "default_language": "fr"}),
        json!({"title": 12}),
    ] {
        let (status, body, _) = app
            .post(
                "/api/v1/project/projects/",
                body.clone(),
                Some(&owner.access),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (_, list, _) = app
        .get("/api/v1/project/projects/", Some(&owner.access))
        .await;
    assert_eq!(list["count"], 2);

    // Delete (owner): gone for everyone, name held.
    let (status, _) = app
        .call(Method::DELETE, &path, Value::Null, &owner.access)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    // Tokens of sessions acting in the project are stale at once; a new login sees a 404.
    let (fresh, _) = app.login("olivia").await;
    let (status, _, _) = app.get(&path, Some(&fresh)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app
        .get(&format!("/api/v1/project/info/{username}/"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, taken, _) = app
        .post(
            "/api/v1/project/projects/",
            json!({"title": "again", "username": username}),
            Some(&fresh),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(taken["username"].is_array(), "{taken}");
    // A token scoped to the deleted project is refused: the session was marked stale, and
    // refreshing no longer yields that project.
    let (status, _, _) = app
        .get("/api/v1/project/attachment/", Some(&owner.access))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, pair, _) = app
        .post(
            "/api/v1/auth/auth/token/refresh/",
            json!({"refresh": owner.refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(app.claims(&pair["access"]).project_id, None);
}

#[tokio::test]
async fn membership_changes_reach_auth_on_the_next_request() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "owen", "Owen Tools").await;
    let pid = owner.project_id();
    let bob = app.user("bob", false).await;
    let (bob_plain, _) = app.login("bob").await;

    // Not a member yet: change_project and X-Project-ID refuse.
    let (status, _, _) = app
        .post(
            "/api/v1/auth/auth/token/change_project/",
            json!({"project_id": pid}),
            Some(&bob_plain),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let membership = add_member(&app, &owner, bob, "viewer").await;
    // Same user twice → 409.
    let (status, dup) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/project/{}/account/collaborators/",
                owner.username()
            ),
            json!({"user": bob}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, dup["code"].clone()),
        (StatusCode::CONFLICT, json!("already_member"))
    );

    let (bob_access, bob_refresh) = switch(&app, &bob_plain, pid).await;
    assert_eq!(
        app.claims(&json!(bob_access)).role.map(|r| r.to_string()),
        Some("viewer".into())
    );
    let with_header =
        |req: reqwest::RequestBuilder| req.bearer_auth(&bob_plain).header("X-Project-ID", pid);
    let (status, _, _) = app
        .send(with_header(
            app.client.get(app.url("/api/v1/project/attachment/")),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "X-Project-ID works once a member");

    // Viewer cannot write.
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/{}/settings/", owner.username()),
            json!({"key": "x", "value": 1}),
            &bob_access,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Promote to admin: the old project token is refused at once, a refresh carries the role.
    let (status, changed) = app
        .call(
            Method::PATCH,
            &format!(
                "/api/v1/project/{}/account/collaborators/{membership}/",
                owner.username()
            ),
            json!({"role": "admin"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["role"], "admin");
    assert_eq!(changed["group"]["name"], "Admins");
    let (status, _, _) = app
        .get("/api/v1/project/attachment/", Some(&bob_access))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "stale role must not be used"
    );
    let (status, pair, _) = app
        .post(
            "/api/v1/auth/auth/token/refresh/",
            json!({"refresh": bob_refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.claims(&pair["access"]).role.map(|r| r.to_string()),
        Some("admin".into())
    );
    let bob_admin = s(&pair["access"]);

    // Admin rules: may add members but not grant admin, not delete the project.
    let carol = app.user("carol", false).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/project/{}/account/collaborators/",
                owner.username()
            ),
            json!({"user_id": carol, "role": "admin"}),
            &bob_admin,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/project/{}/account/collaborators/",
                owner.username()
            ),
            json!({"user_id": carol, "role": "owner"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "owner is never granted");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/project/projects/{pid}/"),
            Value::Null,
            &bob_admin,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The owner can neither leave nor be demoted.
    let (_, members, _) = app
        .get(
            &format!(
                "/api/v1/project/{}/account/collaborators/?role=owner",
                owner.username()
            ),
            Some(&owner.access),
        )
        .await;
    let owner_membership = members["results"][0]["id"].as_i64().expect("owner row");
    let owner_path = format!(
        "/api/v1/project/{}/account/collaborators/{owner_membership}/",
        owner.username()
    );
    for (method, body) in [
        (Method::DELETE, Value::Null),
        (Method::PATCH, json!({"role": "viewer"})),
    ] {
        let (status, body) = app.call(method, &owner_path, body, &owner.access).await;
        assert_eq!(
            (status, body["code"].clone()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!("owner_cannot_leave")
            )
        );
    }

    // check_membership for self and (with view_member) for others; alias with ?project=.
    let (_, mine, _) = app
        .get(
            &format!("/api/v1/project/account/collaborators/check_membership/?project={pid}"),
            Some(&bob_admin),
        )
        .await;
    assert_eq!(
        (mine["is_member"].clone(), mine["role"].clone()),
        (json!(true), json!("admin"))
    );
    let (_, theirs, _) = app
        .get(
            &format!(
                "/api/v1/project/{}/account/collaborators/check_membership/?user={carol}",
                owner.username()
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(theirs["is_member"], false);
    let (_, groups, _) = app
        .get(
            &format!("/api/v1/project/{}/groups/", owner.username()),
            Some(&owner.access),
        )
        .await;
    let names: Vec<&str> = groups
        .as_array()
        .expect("bare array")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names, ["Owners", "Admins", "Editors", "Viewers"]);
    let viewers = &groups[3]["permissions"];
    assert!(viewers
        .as_array()
        .is_some_and(|p| p.contains(&json!("project.view_project"))
            && !p.contains(&json!("project.add_member"))));

    // Removal: the next X-Project-ID request is refused; the project token too; the refresh
    // loses the project. (A fresh session: tokens of a session that acted in the project are
    // all marked stale.)
    let (bob_again, bob_refresh) = switch(&app, &bob_admin, pid).await;
    let (bob_plain, _) = app.login("bob").await;
    let with_header =
        |req: reqwest::RequestBuilder| req.bearer_auth(&bob_plain).header("X-Project-ID", pid);
    let (status, _, _) = app
        .send(with_header(
            app.client.get(app.url("/api/v1/project/attachment/")),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/project/{}/account/collaborators/{membership}/",
                owner.username()
            ),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, _) = app
        .send(with_header(
            app.client.get(app.url("/api/v1/project/attachment/")),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "not_project_member");
    let (status, _, _) = app
        .get("/api/v1/project/attachment/", Some(&bob_again))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = app
        .get(
            &format!("/api/v1/project/projects/{pid}/"),
            Some(&bob_plain),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "former members see nothing");
    let (status, pair, _) = app
        .post(
            "/api/v1/auth/auth/token/refresh/",
            json!({"refresh": bob_refresh}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{pair}");
    assert_eq!(
        app.claims(&pair["access"]).project_id,
        None,
        "the refresh drops the project"
    );

    // Leaving: a member removes themself.
    let (dave, dave_access) = member(&app, &owner, "dave", "viewer").await;
    let (_, rows, _) = app
        .get(
            &format!(
                "/api/v1/project/{}/account/collaborators/?user_id={dave}",
                owner.username()
            ),
            Some(&owner.access),
        )
        .await;
    let dave_row = rows["results"][0]["id"].as_i64().expect("row");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!(
                "/api/v1/project/{}/account/collaborators/{dave_row}/",
                owner.username()
            ),
            Value::Null,
            &dave_access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Nothing left undelivered.
    let pool = app.project_pool().await;
    let pending: i64 =
        sqlx::query_scalar("SELECT count(*) FROM zv_outbox WHERE published_at IS NULL")
            .fetch_one(&pool)
            .await
            .expect("outbox");
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn editors_and_viewers_hold_only_their_grants() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "erin", "Erin Ltd").await;
    let (_, editor) = member(&app, &owner, "eddie", "editor").await;
    let (_, viewer) = member(&app, &owner, "vera", "viewer").await;
    let u = owner.username();
    let someone = app.user("sam", false).await;
    let pid = owner.project_id();
    let writes = [
        (
            Method::PATCH,
            format!("/api/v1/project/projects/{pid}/"),
            json!({"title": "Mine now"}),
        ),
        (
            Method::POST,
            format!("/api/v1/project/{u}/account/collaborators/"),
            json!({"user_id": someone}),
        ),
        (
            Method::POST,
            format!("/api/v1/project/{u}/account/invitations/"),
            json!({"email": "x@example.com"}),
        ),
        (
            Method::POST,
            format!("/api/v1/project/{u}/settings/"),
            json!({"key": "theme", "value": "dark"}),
        ),
        (
            Method::PATCH,
            format!("/api/v1/project/{u}/settings/currency/"),
            json!({"value": "EUR"}),
        ),
        (
            Method::DELETE,
            format!("/api/v1/project/projects/{pid}/"),
            Value::Null,
        ),
    ];
    for token in [&editor, &viewer] {
        for (method, path, body) in &writes {
            let (status, body) = app.call(method.clone(), path, body.clone(), token).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        }
        // Reads are allowed.
        for path in [
            format!("/api/v1/project/projects/{pid}/"),
            format!("/api/v1/project/{u}/settings/"),
            format!("/api/v1/project/{u}/features/"),
        ] {
            let (status, _, _) = app.get(&path, Some(token)).await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
    }
    let (_, project, _) = app
        .get(
            &format!("/api/v1/project/projects/{pid}/"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(project["title"], "Erin Ltd", "nothing changed");
}

#[tokio::test]
async fn settings_are_typed_and_unique() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "sally", "Sally Shop").await;
    let base = format!("/api/v1/project/{}/settings/", owner.username());
    let (status, list, _) = app.get(&base, Some(&owner.access)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["count"], 5);
    let (status, created) = app
        .call(
            Method::POST,
            &base,
            json!({"key": "theme.color", "value": {"primary": "#123456"}, "description": "Brand"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["project"], owner.project_id());
    let (status, dup) = app
        .call(
            Method::POST,
            &base,
            json!({"key": "theme.color", "value": 1}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(dup["code"], "setting_exists");
    assert_eq!(
        dup["error"],
        "Setting 'theme.color' already exists for this project."
    );
    for body in [
        json!({"key": "Bad Key", "value": 1}),
        json!({"key": "ok"}),
        json!({"key": "currency2", "value": null}),
        json!({"key": "big", "value": "x".repeat(17 * 1024)}),
    ] {
        let (status, body) = app.call(Method::POST, &base, body, &owner.access).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    for (key, value) in [
        ("currency", json!("usd")),
        ("timezone", json!("Mars/Olympus Mons!")),
        ("marketplace.user_listings", json!("yes")),
        ("language", json!("fr")),
    ] {
        let (status, body) = app
            .call(
                Method::PATCH,
                &format!("{base}{key}/"),
                json!({"value": value}),
                &owner.access,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{key}: {body}");
    }
    let (status, eur) = app
        .call(
            Method::PATCH,
            &format!("{base}currency/"),
            json!({"value": "EUR"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, eur["value"].clone()),
        (StatusCode::OK, json!("EUR"))
    );
    let (status, _) = app
        .call(
            Method::PATCH,
            &format!("{base}currency/"),
            json!({"key": "money"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "keys are immutable");
    // Deleting a documented key resets it; a free key goes.
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{base}currency/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, reset, _) = app
        .get(&format!("{base}currency/"), Some(&owner.access))
        .await;
    assert_eq!(reset["value"], "USD");
    let id = created["id"].as_i64().expect("id");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{base}{id}/"),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.get(&format!("{base}{id}/"), Some(&owner.access)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, features, _) = app
        .get(
            &format!("/api/v1/project/{}/features/", owner.username()),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(features["count"], 9);
    assert_eq!(features["results"][0]["enabled"], true);
}
