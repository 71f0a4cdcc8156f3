//! Coupons, payment methods, user subscriptions and `/graphql/billing` (billing.md §5–§7, §9).

use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{service_pool, CrossTenant, TenantResource, TestApp};
use crate::projects::{member, owner_with_project, Owner};

const API: &str = "/api/v1/billing/m/";

async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Value,
) -> (StatusCode, Value) {
    app.call(method, &format!("{API}{path}"), body, token).await
}

async fn post(app: &TestApp, owner: &Owner, path: &str, body: Value) -> (StatusCode, Value) {
    call(app, &owner.access, Method::POST, path, body).await
}

async fn created(app: &TestApp, owner: &Owner, path: &str, body: Value) -> Value {
    let (status, row) = post(app, owner, path, body).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {row}");
    row
}

async fn get(app: &TestApp, owner: &Owner, path: &str) -> Value {
    let (status, body) = call(app, &owner.access, Method::GET, path, Value::Null).await;
    assert_eq!(status, StatusCode::OK, "GET {path}: {body}");
    body
}

async fn graphql(app: &TestApp, token: &str, query: &str, variables: Value) -> (StatusCode, Value) {
    let req = app
        .client
        .post(app.url("/graphql/billing"))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}));
    let (status, body, _) = app.send(req).await;
    (status, body)
}

#[tokio::test]
async fn coupons_validate_and_redeem_within_their_limits() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "karim", "Karim Kitchens").await;
    let coupon = created(&app, &owner, "coupons/", json!({"key": "Summer-10", "discount_type": "percentage", "discount_value": "10",
        "start_date": "2020-01-01", "maximum_discount_amount": "15", "usage_limit": 5, "usage_limit_per_customer": 1, "description": "Summer"})).await;
    assert_eq!(
        (
            coupon["code"].clone(),
            coupon["status"].clone(),
            coupon["used_count"].clone(),
            coupon["max_discount_amount"].clone(),
            coupon["valid_from"].clone()
        ),
        (
            json!("Summer-10"),
            json!("active"),
            json!(0),
            json!("15.00"),
            json!("2020-01-01T00:00:00Z")
        ),
        "{coupon}"
    );
    // Codes are unique whatever their case; bad input changes nothing.
    let (status, dup) = post(
        &app,
        &owner,
        "coupons/",
        json!({"code": "summer-10", "discount_type": "fixed", "discount_value": "1"}),
    )
    .await;
    assert_eq!(
        (status, dup["code"].clone()),
        (StatusCode::BAD_REQUEST, json!(["already exists"]))
    );
    for body in [
        json!({"code": "ab", "discount_type": "fixed", "discount_value": "1"}),
        json!({"code": "no spaces", "discount_type": "fixed", "discount_value": "1"}),
        json!({"code": "PCT", "discount_type": "percentage", "discount_value": "101"}),
        json!({"code": "NEG", "discount_type": "fixed", "discount_value": "-1"}),
        json!({"code": "ZERO", "discount_type": "fixed", "discount_value": 0}),
        json!({"code": "KIND", "discount_type": "bogo", "discount_value": "1"}),
        json!({"code": "DATES", "discount_type": "fixed", "discount_value": "1", "valid_from": "2030-01-02", "valid_until": "2030-01-01"}),
        json!({"code": "DATE2", "discount_type": "fixed", "discount_value": "1", "valid_from": "soon"}),
        json!({"code": "LIM", "discount_type": "fixed", "discount_value": "1", "usage_limit": 0}),
    ] {
        let (status, answer) = post(&app, &owner, "coupons/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    assert_eq!(get(&app, &owner, "coupons/").await["count"], 1);
    let fixed = created(&app, &owner, "coupons/", json!({"code": "FIVE", "discount_type": "fixed_amount", "discount_value": "5", "min_order_amount": "20", "usage_limit": null})).await;
    assert_eq!(
        (fixed["discount_type"].clone(), fixed["usage_limit"].clone()),
        (json!("fixed"), Value::Null)
    );
    created(&app, &owner, "coupons/", json!({"code": "LATER", "discount_type": "fixed", "discount_value": "5", "valid_from": "2999-01-01"})).await;
    created(&app, &owner, "coupons/", json!({"code": "OLD", "discount_type": "fixed", "discount_value": "5", "valid_until": "2001-01-01"})).await;
    created(
        &app,
        &owner,
        "coupons/",
        json!({"code": "OFF", "discount_type": "fixed", "discount_value": "5", "is_active": false}),
    )
    .await;
    for (status, count) in [
        ("active", 2),
        ("scheduled", 1),
        ("expired", 1),
        ("inactive", 1),
    ] {
        assert_eq!(
            get(&app, &owner, &format!("coupons/?status={status}")).await["count"],
            count,
            "{status}"
        );
    }
    assert_eq!(
        get(
            &app,
            &owner,
            "coupons/?code=five&discount_type=fixed&is_active=true"
        )
        .await["count"],
        1
    );

    // Validate: no side effect; the refusals carry their codes.
    let (status, ok) = post(
        &app,
        &owner,
        "coupons/validate/",
        json!({"code": "summer-10", "order_amount": "200"}),
    )
    .await;
    assert_eq!(
        (
            status,
            ok["valid"].clone(),
            ok["discount_amount"].clone(),
            ok["final_amount"].clone(),
            ok["coupon"]["code"].clone()
        ),
        (
            StatusCode::OK,
            json!(true),
            json!("15.00"),
            json!("185.00"),
            json!("Summer-10")
        ),
        "capped at 15: {ok}"
    );
    let (_, small) = post(
        &app,
        &owner,
        "coupons/validate/",
        json!({"code": "SUMMER-10", "order_amount": 33.35}),
    )
    .await;
    assert_eq!(
        small["discount_amount"], "3.34",
        "rounded half away from zero"
    );
    for (code, amount, expected) in [
        ("NOPE", "10", "coupon_not_found"),
        ("OFF", "10", "coupon_inactive"),
        ("LATER", "10", "coupon_not_started"),
        ("OLD", "10", "coupon_expired"),
        ("FIVE", "19.99", "coupon_minimum_not_met"),
    ] {
        let (status, body) = post(
            &app,
            &owner,
            "coupons/validate/",
            json!({"code": code, "order_amount": amount}),
        )
        .await;
        assert_eq!(
            (status, body["valid"].clone(), body["code"].clone()),
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!(false),
                json!(expected)
            ),
            "{code}: {body}"
        );
        assert!(body["detail"].is_string());
    }
    let (status, _) = post(
        &app,
        &owner,
        "coupons/validate/",
        json!({"code": "FIVE", "order_amount": "lots"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&app, &owner, &format!("coupons/{}/", coupon["id"])).await["used_count"],
        0
    );

    // Redeem: once per source (a replay answers it), once per customer, then the release.
    let redeem = |customer: i64, order: i64| json!({"code": "SUMMER-10", "order_amount": "50", "customer_id": customer, "source_type": "order", "source_id": order});
    let (status, first) = post(&app, &owner, "coupons/redeem/", redeem(1, 100)).await;
    assert_eq!(
        (
            status,
            first["discount_amount"].clone(),
            first["coupon_id"].clone()
        ),
        (StatusCode::CREATED, json!("5.00"), coupon["id"].clone()),
        "{first}"
    );
    let (status, replay) = post(&app, &owner, "coupons/redeem/", redeem(1, 100)).await;
    assert_eq!(
        (status, replay["id"].clone()),
        (StatusCode::OK, first["id"].clone())
    );
    let (status, twice) = post(&app, &owner, "coupons/redeem/", redeem(1, 101)).await;
    assert_eq!(
        (status, twice["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("coupon_customer_limit_reached")
        )
    );
    let (status, _) = post(
        &app,
        &owner,
        "coupons/validate/",
        json!({"code": "SUMMER-10", "order_amount": "50", "customer_id": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, bad) = post(
        &app,
        &owner,
        "coupons/redeem/",
        json!({"code": "SUMMER-10", "order_amount": "50"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a source is required: {bad}"
    );
    assert_eq!(
        get(&app, &owner, &format!("coupons/{}/", coupon["id"])).await["used_count"],
        1
    );
    let release = format!("coupons/redemptions/{}/release/", first["id"]);
    let (status, freed) = post(&app, &owner, &release, json!({})).await;
    assert_eq!(
        (status, freed["released_at"].is_string()),
        (StatusCode::OK, true),
        "{freed}"
    );
    let (status, _) = post(&app, &owner, &release, json!({})).await;
    assert_eq!(status, StatusCode::OK, "releasing twice is fine");
    assert_eq!(
        get(&app, &owner, &format!("coupons/{}/", coupon["id"])).await["used_count"],
        0
    );
    let (status, again) = post(&app, &owner, "coupons/redeem/", redeem(1, 101)).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "the customer's use came back: {again}"
    );
    let pool = service_pool(app.platform.config(), "billing").await;
    let count = |t: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM zv_outbox WHERE event_type = $1")
                .bind(t)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        (
            count("coupon.redeemed").await,
            count("coupon.released").await
        ),
        (2, 1)
    );

    // Editors redeem; only owners and admins write coupons; viewers read.
    let (_, editor) = member(&app, &owner, "ehab", "editor").await;
    let (status, _) = call(
        &app,
        &editor,
        Method::POST,
        "coupons/",
        json!({"code": "EDIT", "discount_type": "fixed", "discount_value": "1"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        &editor,
        Method::POST,
        "coupons/redeem/",
        json!({"code": "FIVE", "order_amount": "30", "source_type": "pos", "source_id": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, viewer) = member(&app, &owner, "vicky", "viewer").await;
    let (status, _) = call(
        &app,
        &viewer,
        Method::POST,
        "coupons/redeem/",
        json!({"code": "FIVE", "order_amount": "30", "source_type": "pos", "source_id": 2}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&app, &viewer, Method::GET, "coupons/", Value::Null).await;
    assert_eq!(status, StatusCode::OK);

    // The same through the in-process Billing other services call.
    let billing = app
        .platform
        .lookup::<integration::billing::SharedBilling>()
        .expect("provided");
    let scope = scope_of(&owner);
    let valid = billing
        .validate_coupon(&scope, &json!({"code": "five", "order_amount": "40"}))
        .await
        .expect("valid");
    assert_eq!(valid["discount_amount"], "5.00");
    let used = billing
        .redeem_coupon(
            &scope,
            &json!({"code": "five", "order_amount": "40", "source_type": "order", "source_id": 9}),
        )
        .await
        .expect("redeemed");
    billing
        .release_redemption(&scope, used["id"].as_i64().unwrap())
        .await
        .expect("released");
    billing
        .release_redemption(&scope, used["id"].as_i64().unwrap())
        .await
        .expect("again");
    let refused = billing
        .validate_coupon(&scope, &json!({"code": "OLD", "order_amount": "40"}))
        .await
        .expect_err("expired");
    assert_eq!(refused.code(), "coupon_expired");
}

fn scope_of(owner: &Owner) -> kernel::auth::ProjectScope {
    let envelope = kernel::events::Envelope::new(
        "test",
        Some(owner.project_id()),
        Some(owner.id),
        &integration::billing::InvoiceSent(integration::billing::InvoiceEvent {
            invoice_id: 0,
            invoice_number: String::new(),
            source_type: "manual".into(),
            source_id: None,
            total: "0.00".into(),
            currency: "USD".into(),
        }),
    )
    .unwrap();
    kernel::auth::ProjectScope::for_event(&envelope).expect("scope")
}

#[tokio::test]
async fn concurrent_redeems_never_pass_the_usage_limit() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "rana", "Rana Rugs").await;
    let coupon = created(&app, &owner, "coupons/", json!({"code": "FLASH", "discount_type": "fixed", "discount_value": "3", "usage_limit": 7, "usage_limit_per_customer": null})).await;
    let answers = futures::future::join_all((0..40).map(|n| {
        let token = owner.access.clone();
        let app = &app;
        async move {
            app.call(Method::POST, &format!("{API}coupons/redeem/"), json!({"code": "flash", "order_amount": "30", "customer_id": n + 1, "source_type": "order", "source_id": n + 1}), &token).await
        }
    }))
    .await;
    let won = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::CREATED)
        .count();
    let lost: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s != StatusCode::CREATED)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won, 7, "{lost:?}");
    assert!(
        lost.iter()
            .all(|b| b["code"] == "coupon_usage_limit_reached"),
        "{lost:?}"
    );
    let after = get(&app, &owner, &format!("coupons/{}/", coupon["id"])).await;
    assert_eq!(
        (after["used_count"].clone(), after["status"].clone()),
        (json!(7), json!("exhausted"))
    );
}

#[tokio::test]
async fn payment_methods_keep_card_data_out() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "pari", "Pari Prints").await;
    let next_year = chrono::Datelike::year(&chrono::Utc::now()) + 1;
    let visa = created(&app, &owner, "payment-methods/", json!({"customer_id": 5, "payment_type": "credit_card", "card_last_four": "4242", "card_brand": "visa",
        "card_expiry_month": 12, "card_expiry_year": next_year, "is_default": true, "gateway_payment_method_id": "pm_test_1"})).await;
    assert_eq!(
        (
            visa["is_default"].clone(),
            visa["is_verified"].clone(),
            visa["is_active"].clone()
        ),
        (json!(true), json!(false), json!(true))
    );
    // Raw card data: refused, not stored, not echoed.
    for body in [
        json!({"customer_id": 5, "payment_type": "credit_card", "card_number": "4111111111111111", "card_last_four": "1111"}),
        json!({"customer_id": 5, "payment_type": "credit_card", "card_last_four": "4111 1111 1111 1111"}),
        json!({"customer_id": 5, "payment_type": "credit_card", "card_last_four": "1111", "cvv": "123"}),
        json!({"customer_id": 5, "payment_type": "bank_account", "account_number": "123456789012"}),
    ] {
        let (status, answer) = post(&app, &owner, "payment-methods/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            answer.to_string().contains("tokenise via the gateway"),
            "{answer}"
        );
        assert!(
            !answer.to_string().contains("4111111111111111")
                && !answer.to_string().contains("123456789012")
        );
    }
    for body in [
        json!({"customer_id": 5, "payment_type": "cash", "card_brand": "visa"}),
        json!({"customer_id": 5, "payment_type": "credit_card", "card_last_four": "4242", "bank_name": "X"}),
        json!({"customer_id": 5, "payment_type": "credit_card", "card_last_four": "42"}),
        json!({"customer_id": 5, "payment_type": "credit_card", "card_last_four": "4242", "card_expiry_year": 2001}),
        json!({"customer_id": 5, "payment_type": "credit_card", "card_last_four": "4242", "card_expiry_month": 13}),
        json!({"customer_id": 5, "payment_type": "crypto"}),
        json!({"payment_type": "cash"}),
    ] {
        let (status, answer) = post(&app, &owner, "payment-methods/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let pool = service_pool(app.platform.config(), "billing").await;
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_methods")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stored, 1, "refused inputs stored nothing");
    // One default per customer: a new default takes the flag.
    let bank = created(&app, &owner, "payment-methods/", json!({"customer": 5, "payment_type": "bank_account", "bank_name": "Arab Bank", "account_last_four": "9876", "is_default": true})).await;
    assert_eq!(
        get(&app, &owner, &format!("payment-methods/{}/", visa["id"])).await["is_default"],
        false
    );
    assert_eq!(
        get(
            &app,
            &owner,
            "payment-methods/?customer_id=5&is_default=true"
        )
        .await["results"][0]["id"],
        bank["id"]
    );
    let (status, back) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &format!("payment-methods/{}/", visa["id"]),
        json!({"is_default": true, "is_verified": true}),
    )
    .await;
    assert_eq!(
        (
            status,
            back["is_default"].clone(),
            back["is_verified"].clone()
        ),
        (StatusCode::OK, json!(true), json!(true))
    );
    assert_eq!(
        get(
            &app,
            &owner,
            "payment-methods/?customer_id=5&is_default=true"
        )
        .await["count"],
        1
    );
    // Editors create, but do not verify or delete.
    let (_, editor) = member(&app, &owner, "elie", "editor").await;
    let (status, wallet) = call(
        &app,
        &editor,
        Method::POST,
        "payment-methods/",
        json!({"customer_id": 6, "payment_type": "wallet"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{wallet}");
    let (status, _) = call(
        &app,
        &editor,
        Method::PATCH,
        &format!("payment-methods/{}/", wallet["id"]),
        json!({"is_verified": true}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(
        &app,
        &editor,
        Method::DELETE,
        &format!("payment-methods/{}/", wallet["id"]),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // In use by a payment in progress: kept.
    let (_, inv) = post(
        &app,
        &owner,
        "invoices/",
        json!({"total_amount": "10", "issue": true}),
    )
    .await;
    let (status, pending) = post(
        &app,
        &owner,
        &format!("invoices/{}/payments/", inv["id"]),
        json!({"payment_method_id": visa["id"], "gateway": "test", "token": "tok_3ds"}),
    )
    .await;
    assert_eq!(
        (
            status,
            pending["method"].clone(),
            pending["customer_id"].clone()
        ),
        (StatusCode::CREATED, json!("credit_card"), json!(5)),
        "{pending}"
    );
    let (status, in_use) = call(
        &app,
        &owner.access,
        Method::DELETE,
        &format!("payment-methods/{}/", visa["id"]),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, in_use["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("payment_method_in_use")
        )
    );
    let (status, _) = call(
        &app,
        &owner.access,
        Method::DELETE,
        &format!("payment-methods/{}/", bank["id"]),
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = post(
        &app,
        &owner,
        &format!("invoices/{}/payments/", inv["id"]),
        json!({"payment_method_id": bank["id"]}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "a deleted method is not used"
    );
}

#[tokio::test]
async fn subscriptions_follow_their_state_machine() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "sami", "Sami Studio").await;
    let subscriber = app.user("sara", false).await;
    let sub = created(&app, &owner, "subscriptions/", json!({"user": subscriber, "plan": "0b5c7a9e-1111-4f00-9c3e-000000000001", "catalog_item_name": "Pro",
        "billing_cycle": "monthly", "price": "19.99", "start_date": "2025-01-31T09:00:00Z", "status": "active"})).await;
    assert_eq!(
        (
            sub["user_id"].clone(),
            sub["subscription_status"].clone(),
            sub["next_billing_date"].clone(),
            sub["plan"].clone()
        ),
        (
            json!(subscriber),
            json!("active"),
            json!("2025-02-28T09:00:00Z"),
            json!({"id": "0b5c7a9e-1111-4f00-9c3e-000000000001", "name": "Pro", "price": "19.99", "billing_cycle": "monthly"})
        ),
        "{sub}"
    );
    let life = created(&app, &owner, "subscriptions/", json!({"user_id": subscriber, "catalog_item_id": "x", "catalog_item_name": "Forever", "renewal_period": "lifetime", "start_date": "2025-01-01T00:00:00Z"})).await;
    assert_eq!(
        (
            life["subscription_status"].clone(),
            life["next_billing_date"].clone()
        ),
        (json!("pending"), Value::Null)
    );
    for body in [
        json!({"user_id": subscriber, "catalog_item_id": "x", "catalog_item_name": "A", "start_date": "yesterday"}),
        json!({"user_id": subscriber, "catalog_item_id": "x", "catalog_item_name": "A", "start_date": "2025-01-01T00:00:00Z", "end_date": "2024-01-01T00:00:00Z"}),
        json!({"user_id": subscriber, "catalog_item_id": "x", "catalog_item_name": "A", "start_date": "2025-01-01T00:00:00Z", "status": "cancelled"}),
        json!({"user_id": subscriber, "catalog_item_id": "x", "catalog_item_name": "A", "start_date": "2025-01-01T00:00:00Z", "price": "-1"}),
        json!({"catalog_item_id": "x", "catalog_item_name": "A", "start_date": "2025-01-01T00:00:00Z"}),
    ] {
        let (status, answer) = post(&app, &owner, "subscriptions/", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
    }
    let at = |s: &Value, action: &str| format!("subscriptions/{}/{action}", s["id"]);
    let (status, paused) = post(&app, &owner, &at(&sub, "pause/"), json!({})).await;
    assert_eq!(
        (status, paused["subscription_status"].clone()),
        (StatusCode::OK, json!("paused"))
    );
    let (status, wrong) = post(&app, &owner, &at(&life, "pause/"), json!({})).await;
    assert_eq!(
        (status, wrong["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_transition")
        )
    );
    let (status, resumed) = post(&app, &owner, &at(&sub, "resume/"), json!({})).await;
    assert_eq!(
        (status, resumed["subscription_status"].clone()),
        (StatusCode::OK, json!("active"))
    );
    // Cancel at the period's end, then at once.
    let (status, later) = post(
        &app,
        &owner,
        &at(&sub, "cancel/"),
        json!({"reason": "too dear"}),
    )
    .await;
    assert_eq!(
        (
            status,
            later["status"].clone(),
            later["cancel_at_period_end"].clone()
        ),
        (StatusCode::OK, json!("active"), json!(true)),
        "{later}"
    );
    let (status, now) = post(
        &app,
        &owner,
        &at(&sub, "cancel/"),
        json!({"reason": "now", "cancel_immediately": true}),
    )
    .await;
    assert_eq!(
        (
            status,
            now["status"].clone(),
            now["cancelled_at"].is_string()
        ),
        (StatusCode::OK, json!("cancelled"), true),
        "{now}"
    );
    let (status, terminal) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &format!("subscriptions/{}/", sub["id"]),
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(
        (status, terminal["code"].clone()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!("invalid_transition")
        )
    );
    let (status, activated) = call(
        &app,
        &owner.access,
        Method::PATCH,
        &format!("subscriptions/{}/", life["id"]),
        json!({"subscription_status": "active"}),
    )
    .await;
    assert_eq!(
        (status, activated["subscription_status"].clone()),
        (StatusCode::OK, json!("active"))
    );
    assert_eq!(
        get(
            &app,
            &owner,
            &format!("subscriptions/?user={subscriber}&status=active")
        )
        .await["count"],
        1
    );
    assert_eq!(get(&app, &owner, "subscriptions/?plan=x").await["count"], 1);
    // Editors read, do not write; the subscriber reads their own without a role.
    let (_, editor) = member(&app, &owner, "eman", "editor").await;
    let (status, _) = call(&app, &editor, Method::POST, &at(&life, "pause/"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (access, _) = app.login("sara").await;
    let req = app
        .client
        .get(app.url(&format!("{API}subscriptions/mine/")))
        .bearer_auth(&access)
        .header("X-Project-ID", owner.project_id());
    let (status, mine, _) = app.send(req).await;
    assert_eq!(
        (status, mine["count"].clone()),
        (StatusCode::OK, json!(2)),
        "{mine}"
    );
    let (status, _) = call(&app, &access, Method::GET, "subscriptions/", Value::Null).await;
    assert!(
        matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
        ),
        "not the whole list: {status}"
    );
}

#[tokio::test]
async fn billing_graphql_serves_the_resources_and_workflows() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "ghada", "Ghada Gifts").await;
    let anon = app
        .client
        .post(app.url("/billing/graphql"))
        .json(&json!({"query": "{ __typename }"}));
    let (status, body, _) = app.send(anon).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"data": {"__typename": "Query"}}))
    );
    let token = owner.access.as_str();
    let (status, made) = graphql(&app, token, "mutation($i: InvoiceInput!) { createInvoice(input: $i) { id invoiceNumber total price totalAmount status payment amountDue } }",
        json!({"i": {"items": [{"description": "Mug", "quantity": 2, "unitPrice": "7.50"}], "issue": true, "customerName": "Hala"}})).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    let inv = made["data"]["createInvoice"].clone();
    assert_eq!(
        (
            inv["total"].clone(),
            inv["price"].clone(),
            inv["status"].clone(),
            inv["payment"].clone()
        ),
        (
            json!("15.00"),
            json!("15.00"),
            json!("sent"),
            json!("PENDING")
        ),
        "{made}"
    );
    let id = inv["id"].as_str().unwrap().to_owned();
    let (_, paid) = graphql(&app, token, "mutation($id: ID!) { recordInvoicePayment(invoiceId: $id, input: {amount: \"5\", gateway: \"test\", token: \"tok_3ds\"}) { transaction { id status amount } nextAction invoice { amountPaid } errors { field message } } }",
        json!({"id": id})).await;
    let payment = &paid["data"]["recordInvoicePayment"];
    assert_eq!(
        (
            payment["transaction"]["status"].clone(),
            payment["nextAction"]["type"].clone(),
            payment["invoice"]["amountPaid"].clone()
        ),
        (json!("processing"), json!("redirect"), json!("0.00")),
        "{paid}"
    );
    let (_, cash) = graphql(&app, token, "mutation($id: ID!) { recordInvoicePayment(invoiceId: $id, input: {amount: 10, method: \"cash\"}) { transaction { id amount } invoice { amountPaid payment } errors { field message } } }", json!({"id": id})).await;
    let cash = &cash["data"]["recordInvoicePayment"];
    assert_eq!(
        (
            cash["transaction"]["amount"].clone(),
            cash["invoice"]["payment"].clone()
        ),
        (json!("10.00"), json!("PARTIALLY_PAID")),
        "{cash}"
    );
    let (_, over) = graphql(&app, token, "mutation($id: ID!) { recordInvoicePayment(invoiceId: $id, input: {amount: \"999\"}) { transaction { id } errors { field message } } }", json!({"id": id})).await;
    assert_eq!(
        over["data"]["recordInvoicePayment"]["errors"][0]["field"], "amountExceedsDue",
        "{over}"
    );
    let keyed = "mutation($id: ID!) { recordInvoicePayment(invoiceId: $id, input: {amount: \"0.50\", idempotencyKey: \"pay-once\"}) { transaction { id } } }";
    let (_, k1) = graphql(&app, token, keyed, json!({"id": id})).await;
    let (_, k2) = graphql(&app, token, keyed, json!({"id": id})).await;
    assert_eq!(
        k1["data"]["recordInvoicePayment"]["transaction"]["id"],
        k2["data"]["recordInvoicePayment"]["transaction"]["id"],
        "{k1} {k2}"
    );
    let tx_id = cash["transaction"]["id"].as_str().unwrap().to_owned();
    let (_, refunded) = graphql(&app, token, "mutation($id: ID!) { refundTransaction(id: $id, amount: \"4\", reason: \"chipped\") { transaction { transactionType amount refundOfId } invoice { amountRefunded } errors { message } } }", json!({"id": tx_id})).await;
    let refunded = &refunded["data"]["refundTransaction"];
    assert_eq!(
        (
            refunded["transaction"]["transactionType"].clone(),
            refunded["invoice"]["amountRefunded"].clone()
        ),
        (json!("refund"), json!("4.00")),
        "{refunded}"
    );
    let (_, again) = graphql(&app, token, "mutation($id: ID!) { refundInvoice(invoiceId: $id, amount: \"1\", reason: \"x\") { transaction { amount } errors { message } } }", json!({"id": id})).await;
    assert_eq!(
        again["data"]["refundInvoice"]["transaction"]["amount"], "1.00",
        "{again}"
    );
    let (_, listed) = graphql(&app, token, "{ transactions(where: {transactionType: \"payment\"}, orderBy: \"-transactionDate\") { id amount status } _transactionsMeta { count } invoices(where: \"{\\\"payment\\\":\\\"PARTIALLY_REFUNDED\\\",\\\"total__gte\\\":10}\") { id } }", json!({})).await;
    assert_eq!(
        (
            listed["data"]["_transactionsMeta"]["count"].clone(),
            listed["data"]["transactions"].as_array().map(Vec::len),
            listed["data"]["invoices"][0]["id"].clone()
        ),
        (json!(5), Some(3), json!(id)),
        "{listed}"
    );
    let (_, other) = graphql(
        &app,
        token,
        "mutation { createInvoice(input: {totalAmount: \"3\"}) { id } }",
        json!({}),
    )
    .await;
    let other_id = other["data"]["createInvoice"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, sent) = graphql(&app, token, "mutation($id: ID!) { sendInvoice(id: $id, recipientEmail: \"h@example.com\") { invoice { status sentAt } errors { message } } }", json!({"id": other_id})).await;
    assert_eq!(
        sent["data"]["sendInvoice"]["invoice"]["status"], "sent",
        "{sent}"
    );
    let (_, void) = graphql(&app, token, "mutation($id: ID!) { cancelInvoice(id: $id, reason: \"dup\") { invoice { status cancelReason } errors { message } } }", json!({"id": other_id})).await;
    assert_eq!(
        void["data"]["cancelInvoice"]["invoice"]["cancelReason"], "dup",
        "{void}"
    );
    let (_, refused) = graphql(&app, token, "mutation($id: ID!) { cancelInvoice(id: $id, reason: \"no\") { invoice { status } errors { field message } } }", json!({"id": id})).await;
    assert_eq!(
        refused["data"]["cancelInvoice"]["errors"][0]["field"], "invoiceHasPayments",
        "{refused}"
    );

    // Coupons, payment methods, subscriptions.
    let (_, coupon) = graphql(&app, token, "mutation { createCoupon(input: {key: \"GQL5\", discountType: \"fixed\", discountValue: \"5\", usageLimit: 3}) { id key code discountValue status usedCount } }", json!({})).await;
    assert_eq!(
        (
            coupon["data"]["createCoupon"]["key"].clone(),
            coupon["data"]["createCoupon"]["discountValue"].clone()
        ),
        (json!("GQL5"), json!("5.00")),
        "{coupon}"
    );
    let (_, dup) = graphql(&app, token, "mutation { createCoupon(input: {code: \"gql5\", discountType: \"fixed\", discountValue: \"5\"}) { id } }", json!({})).await;
    assert_eq!(
        dup["errors"][0]["extensions"]["code"], "VALIDATION_ERROR",
        "{dup}"
    );
    let (_, valid) = graphql(&app, token, "{ validateCoupon(code: \"gql5\", orderAmount: \"12\") { valid discountAmount finalAmount message code coupon } }", json!({})).await;
    assert_eq!(
        (
            valid["data"]["validateCoupon"]["valid"].clone(),
            valid["data"]["validateCoupon"]["finalAmount"].clone()
        ),
        (json!(true), json!("7.00")),
        "{valid}"
    );
    let (_, invalid) = graphql(
        &app,
        token,
        "mutation { validateCoupon(code: \"nope\", orderAmount: 12) { valid code message } }",
        json!({}),
    )
    .await;
    assert_eq!(
        (
            invalid["data"]["validateCoupon"]["valid"].clone(),
            invalid["data"]["validateCoupon"]["code"].clone()
        ),
        (json!(false), json!("coupon_not_found")),
        "{invalid}"
    );
    let (_, pm) = graphql(&app, token, "mutation { createPaymentMethod(input: {customerId: 3, paymentType: \"debit_card\", cardLastFour: \"1234\", isDefault: true}) { id isDefault cardLastFour } }", json!({})).await;
    assert_eq!(pm["data"]["createPaymentMethod"]["isDefault"], true, "{pm}");
    let (_, raw) = graphql(&app, token, "mutation { createPaymentMethod(input: {customerId: 3, paymentType: \"debit_card\", cardLastFour: \"5555555555554444\"}) { id } }", json!({})).await;
    assert!(
        raw["data"]["createPaymentMethod"].is_null()
            && raw["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("tokenise"),
        "{raw}"
    );
    let (_, sub) = graphql(&app, token, "mutation { createUserSubscription(input: {userId: 4, catalogItemId: \"plan-1\", catalogItemName: \"Basic\", startDate: \"2025-03-31T00:00:00Z\", renewalPeriod: \"quarterly\", subscriptionStatus: \"active\"}) { id nextBillingDate subscriptionStatus } }", json!({})).await;
    let sub = sub["data"]["createUserSubscription"].clone();
    assert_eq!(sub["nextBillingDate"], "2025-06-30T00:00:00Z", "{sub}");
    let (_, cancelled) = graphql(&app, token, "mutation($id: ID!) { cancelUserSubscription(id: $id, reason: \"moving\", cancelImmediately: true) { userSubscription { subscriptionStatus cancelReason } errors { message } } }", json!({"id": sub["id"]})).await;
    assert_eq!(
        cancelled["data"]["cancelUserSubscription"]["userSubscription"]["subscriptionStatus"],
        "cancelled",
        "{cancelled}"
    );
    let (_, counts) = graphql(&app, token, "{ _couponsMeta { count } _paymentMethodsMeta { count } _userSubscriptionsMeta { count } paymentMethods(where: {customerId: 3}) { id } userSubscriptions { id plan } }", json!({})).await;
    assert_eq!(
        (
            counts["data"]["_couponsMeta"]["count"].clone(),
            counts["data"]["_paymentMethodsMeta"]["count"].clone(),
            counts["data"]["_userSubscriptionsMeta"]["count"].clone()
        ),
        (json!(1), json!(1), json!(1)),
        "{counts}"
    );

    // Another project sees none of it; anonymous writes are refused.
    let outsider = owner_with_project(&app, "hani", "Hani Hats").await;
    let (_, theirs) = graphql(&app, &outsider.access, "query($id: ID!) { invoice(id: $id) { id } invoices { id } transactions { id } coupons { id } }", json!({"id": id})).await;
    assert_eq!(
        (
            theirs["data"]["invoice"].clone(),
            theirs["data"]["invoices"].clone(),
            theirs["data"]["transactions"].clone(),
            theirs["data"]["coupons"].clone()
        ),
        (Value::Null, json!([]), json!([]), json!([])),
        "{theirs}"
    );
    let (_, foreign) = graphql(&app, &outsider.access, "mutation($id: ID!) { refundInvoice(invoiceId: $id, amount: \"1\") { transaction { id } errors { field } } }", json!({"id": id})).await;
    assert!(
        foreign["data"]["refundInvoice"]["transaction"].is_null(),
        "{foreign}"
    );
    let anon = app.client.post(app.url("/graphql/billing")).json(&json!({"query": "mutation { createCoupon(input: {key: \"ANON\", discountType: \"fixed\", discountValue: 1}) { id } }"}));
    let (_, body, _) = app.send(anon).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{body}"
    );
}

#[tokio::test]
async fn coupons_methods_and_subscriptions_do_not_cross_tenants() {
    let app = TestApp::spawn().await;
    let a = owner_with_project(&app, "adel", "Adel Audio").await;
    let b = owner_with_project(&app, "bushra", "Bushra Books").await;
    let coupon = created(
        &app,
        &a,
        "coupons/",
        json!({"code": "MINE", "discount_type": "fixed", "discount_value": "2", "usage_limit": 10}),
    )
    .await;
    let method = created(
        &app,
        &a,
        "payment-methods/",
        json!({"customer_id": 1, "payment_type": "cash"}),
    )
    .await;
    let sub = created(&app, &a, "subscriptions/", json!({"user_id": 1, "catalog_item_id": "p", "catalog_item_name": "P", "start_date": "2025-01-01T00:00:00Z", "status": "active"})).await;
    for (name, path, row, update) in [
        (
            "coupons",
            "coupons",
            &coupon,
            json!({"discount_value": "9"}),
        ),
        (
            "payment methods",
            "payment-methods",
            &method,
            json!({"is_default": true}),
        ),
        (
            "subscriptions",
            "subscriptions",
            &sub,
            json!({"notes": "mine"}),
        ),
    ] {
        CrossTenant {
            app: &app,
            owner: &a.access,
            owner_item: format!("{API}{path}/{}/", row["id"]),
            outsider: &b.access,
            project_a: a.project_id(),
        }
        .check(&TenantResource {
            name,
            lists: vec![format!("{API}{path}/"), format!("/api/v1/billing/{path}/")],
            id: row["id"].clone(),
            items: vec![format!("{API}{path}/{}/", row["id"])],
            readable: true,
            public_read: false,
            update: Some((Method::PATCH, update)),
            delete: true,
            restore: Some(format!("{API}{path}/{}/restore/", row["id"])),
        })
        .await;
    }
    // Project B cannot use A's coupon code, release A's redemption or act on A's subscription.
    let (status, used) = post(
        &app,
        &a,
        "coupons/redeem/",
        json!({"code": "MINE", "order_amount": "10", "source_type": "order", "source_id": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = post(
        &app,
        &b,
        "coupons/redeem/",
        json!({"code": "MINE", "order_amount": "10", "source_type": "order", "source_id": 2}),
    )
    .await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("coupon_not_found"))
    );
    let (status, _) = post(
        &app,
        &b,
        &format!("coupons/redemptions/{}/release/", used["id"]),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for action in ["cancel", "pause", "resume"] {
        let (status, _) = post(
            &app,
            &b,
            &format!("subscriptions/{}/{action}/", sub["id"]),
            json!({"cancel_immediately": true}),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{action}");
    }
    let after = get(&app, &a, &format!("coupons/{}/", coupon["id"])).await;
    assert_eq!(after["used_count"], 1);
    assert_eq!(
        get(&app, &a, &format!("subscriptions/{}/", sub["id"])).await["subscription_status"],
        "active"
    );
}
