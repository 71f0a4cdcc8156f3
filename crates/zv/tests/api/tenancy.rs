//! Invitations, and the cross-tenant check applied to every project resource.

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::files::{png, upload};
use crate::harness::{s, CrossTenant, TenantResource, TestApp};
use crate::projects::{add_member, owner_with_project, switch};

/// The invitation token in the newest mail to `email`.
fn invitation_token(app: &TestApp, email: &str) -> String {
    let mail = app
        .mailer
        .sent()
        .into_iter()
        .rev()
        .find(|m| m.to == email)
        .expect("an invitation mail");
    let link = mail
        .body
        .split_whitespace()
        .find(|w| w.contains("/invitations/"))
        .expect("a link");
    link.rsplit('/').next().expect("token").to_owned()
}

#[tokio::test]
async fn invitations_from_invite_to_membership() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "ivan", "Ivan Imports").await;
    let base = format!("/api/v1/project/{}/account/invitations/", owner.username());
    let nina = app.user("nina", false).await;
    app.user("mallory", false).await;

    let (status, inv) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "Nina@Example.com", "role": "editor", "message": "Join us"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{inv}");
    assert_eq!(inv["status"], "pending");
    assert!(inv.get("token").is_none(), "the token is only mailed");
    let first = invitation_token(&app, "Nina@Example.com");
    // Inviting the same address again refreshes the pending one (new token, 200).
    let (status, again) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "nina@example.com", "role": "viewer"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, again["id"].clone(), again["role"].clone()),
        (StatusCode::OK, inv["id"].clone(), json!("viewer"))
    );
    let token = invitation_token(&app, "nina@example.com");
    assert_ne!(token, first);
    let (status, _, _) = app
        .get(&format!("/api/v1/project/invitations/{first}/"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "the old token is dead");

    app.user("nina2", false).await;
    let (_, pending) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "nina2@example.com"}),
            &owner.access,
        )
        .await;
    let (nina2, _) = app.login("nina2").await;
    let (_, mine, _) = app
        .get("/api/v1/project/invitations/mine/", Some(&nina2))
        .await;
    assert_eq!(mine[0]["id"], pending["id"], "{mine}");
    // Public view: masked email, project, inviter.
    let (status, public, _) = app
        .get(&format!("/api/v1/project/invitations/{token}/"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{public}");
    assert_eq!(public["email"], "N***@Example.com", "as first given");
    assert_eq!(public["project"]["username"], owner.username());
    assert_eq!(public["invited_by"]["username"], "ivan");

    // Someone else cannot accept it; the invited user can, once.
    let (mallory, _) = app.login("mallory").await;
    let accept = format!("/api/v1/project/invitations/{token}/accept/");
    let (status, body) = app.call(Method::POST, &accept, Value::Null, &mallory).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("invitation_email_mismatch"))
    );
    let (status, _, _) = app.post(&accept, Value::Null, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (nina_access, _) = app.login("nina").await;
    let (status, accepted) = app
        .call(Method::POST, &accept, Value::Null, &nina_access)
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["member"]["user_id"], nina);
    assert_eq!(accepted["member"]["role"], "viewer");
    assert_eq!(accepted["project"]["id"], owner.project_id());
    let (status, body) = app
        .call(Method::POST, &accept, Value::Null, &nina_access)
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("invitation_not_pending"))
    );
    let (_, mine, _) = app
        .get("/api/v1/project/invitations/mine/", Some(&nina_access))
        .await;
    assert_eq!(mine, json!([]), "nothing pending any more");
    let (_, users, _) = app
        .get(
            &format!(
                "/api/v1/project/{}/account/users/?search=nina",
                owner.username()
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (users["count"].clone(), users["results"][0]["id"].clone()),
        (json!(1), json!(nina))
    );
    // Membership reached auth: she can switch into the project.
    let (nina_project, _) = switch(&app, &nina_access, owner.project_id()).await;
    assert_eq!(
        app.claims(&json!(nina_project)).role.map(|r| r.to_string()),
        Some("viewer".into())
    );
    // Inviting a member → 409.
    let (status, body) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "nina@example.com"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("already_member"))
    );

    // Expiry: a pending invitation past its time answers 410 and lists as expired.
    let (_, late) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "late@example.com"}),
            &owner.access,
        )
        .await;
    let late_token = invitation_token(&app, "late@example.com");
    let pool = app.project_pool().await;
    sqlx::query("UPDATE invitations SET expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(late["id"].as_i64().expect("id"))
        .execute(&pool)
        .await
        .expect("expire");
    let (status, public, _) = app
        .get(&format!("/api/v1/project/invitations/{late_token}/"), None)
        .await;
    assert_eq!(
        (status, public["status"].clone()),
        (StatusCode::OK, json!("expired"))
    );
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/invitations/{late_token}/accept/"),
            Value::Null,
            &mallory,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "wrong address first: {body}");
    let (_, list, _) = app
        .get(&format!("{base}?status=expired"), Some(&owner.access))
        .await;
    assert_eq!(list["count"], 1);
    // Re-inviting after expiry makes a new pending invitation.
    let (status, _) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "late@example.com"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    // Revoke and decline.
    let (_, revocable) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "rev@example.com"}),
            &owner.access,
        )
        .await;
    let rev_token = invitation_token(&app, "rev@example.com");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("{base}{}/", revocable["id"]),
            Value::Null,
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body, _) = app
        .post(
            &format!("/api/v1/project/invitations/{rev_token}/decline/"),
            Value::Null,
            None,
        )
        .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::CONFLICT, json!("invitation_not_pending"))
    );
    let (_, _) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "no@example.com"}),
            &owner.access,
        )
        .await;
    let no_token = invitation_token(&app, "no@example.com");
    let (status, body, _) = app
        .post(
            &format!("/api/v1/project/invitations/{no_token}/decline/"),
            Value::Null,
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!("declined"))
    );

    // Invalid input and the admin rule.
    for body in [
        json!({}),
        json!({"email": "not an email"}),
        json!({"email": "x@example.com", "role": "owner"}),
        json!({"email": "x@example.com", "message": "m".repeat(501)}),
    ] {
        let (status, out) = app.call(Method::POST, &base, body, &owner.access).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{out}");
    }
    let admin = app.user("adam", false).await;
    add_member(&app, &owner, admin, "admin").await;
    let (adam, _) = app.login("adam").await;
    let (adam, _) = switch(&app, &adam, owner.project_id()).await;
    let (status, _) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "boss@example.com", "role": "admin"}),
            &adam,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "only the owner invites admins"
    );
    let (status, _) = app
        .call(
            Method::POST,
            &base,
            json!({"email": "staff@example.com", "role": "editor"}),
            &adam,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn no_project_resource_crosses_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "alice", "Alice A").await;
    let b = owner_with_project(&app, "brian", "Brian B").await;
    let (au, bu) = (a.username(), b.username());
    let check = |owner_item: String| CrossTenant {
        app: &app,
        owner: &a.access,
        owner_item,
        outsider: &b.access,
        project_a: a.project_id(),
    };

    // The project itself.
    let pa = a.project_id();
    check(format!("/api/v1/project/projects/{pa}/"))
        .check(&TenantResource {
            name: "project",
            lists: vec![
                "/api/v1/project/projects/".into(),
                "/api/v1/projects/".into(),
            ],
            id: json!(pa),
            items: vec![
                format!("/api/v1/project/projects/{pa}/"),
                format!(
                    "/api/v1/project/projects/{}/",
                    s(&a.project["unique_identifier"])
                ),
                format!("/api/v1/projects/{pa}/"),
            ],
            readable: true,
            public_read: false,
            update: Some((Method::PATCH, json!({"title": "Taken"}))),
            delete: true,
            restore: None,
        })
        .await;

    // A member.
    let mia = app.user("mia", false).await;
    let membership = add_member(&app, &a, mia, "viewer").await;
    check(format!(
        "/api/v1/project/{au}/account/collaborators/?user_id={mia}"
    ))
    .check(&TenantResource {
        name: "member",
        lists: vec![
            format!("/api/v1/project/{au}/account/collaborators/"),
            format!("/api/v1/project/{bu}/account/collaborators/"),
            format!("/api/v1/project/account/collaborators/?project={pa}"),
            format!("/api/v1/project/{au}/account/users/"),
        ],
        id: json!(membership),
        items: vec![
            format!("/api/v1/project/{au}/account/collaborators/{membership}/"),
            format!("/api/v1/project/{bu}/account/collaborators/{membership}/"),
            format!("/api/v1/project/account/collaborators/{membership}/"),
        ],
        readable: false,
        public_read: false,
        update: Some((Method::PATCH, json!({"role": "admin"}))),
        delete: true,
        restore: None,
    })
    .await;

    // An invitation.
    let (_, inv) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/{au}/account/invitations/"),
            json!({"email": "guest@example.com"}),
            &a.access,
        )
        .await;
    check(format!(
        "/api/v1/project/{au}/account/invitations/?email=guest@example.com"
    ))
    .check(&TenantResource {
        name: "invitation",
        lists: vec![
            format!("/api/v1/project/{au}/account/invitations/"),
            format!("/api/v1/project/{bu}/account/invitations/"),
        ],
        id: inv["id"].clone(),
        items: vec![
            format!("/api/v1/project/{au}/account/invitations/{}/", inv["id"]),
            format!("/api/v1/project/{bu}/account/invitations/{}/", inv["id"]),
        ],
        readable: false,
        public_read: false,
        update: None,
        delete: true,
        restore: None,
    })
    .await;

    // A setting (by id and by key).
    let (_, setting) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/{au}/settings/"),
            json!({"key": "secret.plan", "value": "gold"}),
            &a.access,
        )
        .await;
    let sid = setting["id"].clone();
    check(format!("/api/v1/project/{au}/settings/{sid}/"))
        .check(&TenantResource {
            name: "setting",
            lists: vec![
                format!("/api/v1/project/{au}/settings/"),
                format!("/api/v1/project/{bu}/settings/"),
            ],
            id: sid.clone(),
            items: vec![
                format!("/api/v1/project/{au}/settings/{sid}/"),
                format!("/api/v1/project/{au}/settings/secret.plan/"),
                format!("/api/v1/project/{bu}/settings/{sid}/"),
            ],
            readable: true,
            public_read: false,
            update: Some((Method::PATCH, json!({"value": "stolen"}))),
            delete: true,
            restore: None,
        })
        .await;

    // An attachment.
    let (status, file) = upload(
        &app,
        &a.access,
        "logo.png",
        png(),
        &[("entity_type", "product")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let fid = file["id"].clone();
    check(format!("/api/v1/project/attachment/{fid}/"))
        .check(&TenantResource {
            name: "attachment",
            lists: vec![
                "/api/v1/project/attachment/".into(),
                format!("/api/v1/project/attachment/?ids={fid}"),
                format!("/api/v1/project/attachment/?project={pa}"),
                format!("/api/v1/project/attachment/?tenant_project_id={pa}"),
            ],
            id: fid.clone(),
            items: vec![format!("/api/v1/project/attachment/{fid}/")],
            readable: true,
            public_read: false,
            update: Some((Method::PATCH, json!({"description": "mine"}))),
            delete: true,
            restore: None,
        })
        .await;
    for (method, path, body) in [
        (
            Method::POST,
            format!("/api/v1/project/attachment/{fid}/download-url/"),
            json!({}),
        ),
        (
            Method::POST,
            format!("/api/v1/project/attachment/{fid}/delete/"),
            Value::Null,
        ),
        (
            Method::POST,
            "/api/v1/project/attachment/confirm-upload/".to_owned(),
            json!({"attachment_id": fid}),
        ),
    ] {
        let (status, out) = app.call(method, &path, body, &b.access).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {out}");
    }
    // `X-Project: <username>` names a project like `X-Project-ID`: members only.
    let (alice_plain, _) = app.login("alice").await;
    let named = |token: &str, project: &str| {
        app.client
            .get(app.url("/api/v1/project/attachment/"))
            .bearer_auth(token)
            .header("X-Project", project)
    };
    let (status, list, _) = app.send(named(&alice_plain, &au)).await;
    assert_eq!((status, list["count"].clone()), (StatusCode::OK, json!(1)));
    let (status, body, _) = app.send(named(&b.access, &au)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::FORBIDDEN, json!("not_project_member"))
    );
    let (status, _, _) = app
        .get(
            &format!("/api/v1/project/attachment/?project={pa}"),
            Some(&alice_plain),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // GraphQL reads go through the same scope.
    let (status, gql, _) = app
        .post(
            "/graphql/project",
            json!({"query": format!("{{ attachment(id: {fid}) {{ id }} }}")}),
            Some(&b.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{gql}");
    assert_eq!(gql["errors"][0]["extensions"]["code"], "NOT_FOUND", "{gql}");
}
