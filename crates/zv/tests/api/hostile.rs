//! Hostile requests (conventions §8, DESIGN §4): one request, however built, answers a 4xx in
//! the contract's shape and leaves the process serving. Fragment cycles, nesting of any depth
//! in the query text, the variables or directive arguments, alias, directive and fragment
//! bombs on every GraphQL endpoint; NUL characters anywhere a string reaches SQL; JSON bodies
//! nested too deep, followed by garbage, or empty.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{service_pool, TestApp};
use crate::projects::owner_with_project;

const GRAPHQL: [&str; 5] = ["product", "inventory", "order", "billing", "project"];

fn nested(open: &str, inner: &str, close: &str, depth: usize) -> String {
    format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
}

/// Documents that crashed or could crash a process, or cost it far more than their size.
fn hostile_documents() -> Vec<(&'static str, Value)> {
    let deep = 5_000;
    let q = |query: String| json!({ "query": query });
    let mut aliases = String::from("{");
    for i in 0..1_000 {
        aliases.push_str(&format!(" a{i}: __typename"));
    }
    aliases.push('}');
    let directives = format!("{{ __typename {} }}", "@skip(if: false) ".repeat(500));
    // Each fragment spreads the next twice: 2^24 fields once expanded.
    let mut bomb = String::from("query { ...F0 }");
    for i in 0..24 {
        bomb.push_str(&format!(
            " fragment F{i} on Query {{ __typename ...F{n} ...F{n} }}",
            n = i + 1
        ));
    }
    bomb.push_str(" fragment F24 on Query { __typename }");
    vec![
        (
            "self-spread",
            q("query { __typename ...A } fragment A on Query { ...A }".into()),
        ),
        (
            "cycle",
            q(
                "query { __typename ...A } fragment A on Query { ...B } fragment B on Query { ...A }"
                    .into(),
            ),
        ),
        ("unknown fragment", q("{ __typename ...Nope }".into())),
        (
            "unused fragment",
            q("{ __typename } fragment U on Query { __typename }".into()),
        ),
        (
            "deep list argument",
            q(format!(
                "{{ __type(name: {}) {{ name }} }}",
                nested("[", "\"x\"", "]", deep)
            )),
        ),
        (
            "deep input object",
            q(format!(
                "{{ __type(name: {}) {{ name }} }}",
                nested("{a:", "1", "}", deep)
            )),
        ),
        (
            "deep directive argument",
            q(format!(
                "{{ __typename @skip(if: {}) }}",
                nested("[", "true", "]", deep)
            )),
        ),
        (
            "deep selection",
            q(format!(
                "{{ __schema {} }}",
                nested("{ types ", "{ name }", "}", deep)
            )),
        ),
        (
            "deep variables",
            json!({
                "query": "query($v: String) { __type(name: $v) { name } }",
                "variables": {"v": serde_json::from_str::<Value>(&nested("[", "1", "]", 100)).unwrap()},
            }),
        ),
        ("aliases", q(aliases)),
        ("directives", q(directives)),
        ("fragment bomb", q(bomb)),
    ]
}

async fn graphql(app: &TestApp, service: &str, body: &Value) -> (StatusCode, Value) {
    let req = app
        .client
        .post(app.url(&format!("/graphql/{service}")))
        .json(body);
    let (status, body, _) = tokio::time::timeout(Duration::from_secs(10), app.send(req))
        .await
        .expect("answered, not hung");
    (status, body)
}

#[tokio::test]
async fn hostile_graphql_documents_answer_400_and_the_process_lives() {
    let app = TestApp::spawn().await;
    for service in GRAPHQL {
        for (name, document) in hostile_documents() {
            let (status, body) = graphql(&app, service, &document).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{service} {name}: {body}");
            assert!(body.get("data").is_none(), "{service} {name}: {body}");
            assert!(
                body["errors"][0]["message"].is_string(),
                "{service} {name}: {body}"
            );
        }
        let (status, body) = graphql(&app, service, &json!({"query": "{ __typename }"})).await;
        assert_eq!(
            (status, body["data"]["__typename"].clone()),
            (StatusCode::OK, json!("Query"))
        );
    }
    // The reports' own documents, on the types they named.
    let product = [
        "{ products { id ...A } } fragment A on Product { ...B } fragment B on Product { ...A }",
        &format!(
            "{{ products(ids: {}) {{ id }} }}",
            nested("[", "1", "]", 5_000)
        ),
        &format!(
            "{{ products(filter: {}) {{ id }} }}",
            nested("{a:", "1", "}", 5_000)
        ),
    ];
    for query in product {
        let (status, body) = graphql(&app, "product", &json!({ "query": query })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let cycle = graphql(
        &app,
        "product",
        &json!({"query": "query { __typename ...A } fragment A on Query { ...A }"}),
    )
    .await;
    assert!(
        cycle.1["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("Cannot spread fragment \"A\" within itself")),
        "{}",
        cycle.1
    );
    // A body over the limit is refused before it is read whole.
    let huge = json!({ "query": format!("{{ __typename }} # {}", "x".repeat(2 << 20)) });
    let (status, _) = graphql(&app, "order", &huge).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // Legitimate documents with fragments still run.
    let (status, body) = graphql(
        &app,
        "product",
        &json!({"query": "query { ...A ...B } fragment A on Query { __typename ...B } fragment B on Query { __typename }"}),
    )
    .await;
    assert_eq!(
        (status, body["data"]["__typename"].clone()),
        (StatusCode::OK, json!("Query"))
    );
    let (status, body) = graphql(&app, "inventory", &json!({"query": INTROSPECTION})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["__schema"]["types"]
        .as_array()
        .is_some_and(|t| !t.is_empty()));
}

/// The introspection query GraphiQL and code generators send (fragments nested 8 deep).
const INTROSPECTION: &str = r#"query IntrospectionQuery { __schema { queryType { name } mutationType { name }
  types { ...FullType } directives { name description locations args { ...InputValue } } } }
fragment FullType on __Type { kind name description
  fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue } interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
  kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }"#;

#[tokio::test]
async fn nul_characters_are_refused_naming_the_field_and_nothing_is_written() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "nadia", "Nadia Nuts").await;
    let nul = "a\u{0}b";
    let posts = [
        (
            "/api/v1/product/products/",
            json!({"name": nul, "price": "1.00"}),
            "name",
        ),
        (
            "/api/v1/product/products/categories/",
            json!({"name": nul}),
            "name",
        ),
        (
            "/api/v1/inventory/warehouses/",
            json!({"name": "Main", "code": nul}),
            "code",
        ),
        ("/api/v1/project/projects/", json!({"title": nul}), "title"),
        (
            "/api/v1/order/orders/",
            json!({"customer_email": nul, "items": [{"product_id": 1, "quantity": 1}]}),
            "customer_email",
        ),
        (
            "/api/v1/product/products/",
            json!({"name": "ok", "price": "1.00", "translations": {"ar": {"name": nul}}}),
            "translations.ar.name",
        ),
    ];
    for (path, body, field) in posts {
        let (status, answer) = app.call(Method::POST, path, body, &owner.access).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(
            answer[field],
            json!(["Null characters are not allowed."]),
            "{path}: {answer}"
        );
    }
    let (status, answer, _) = app
        .get(
            "/api/v1/product/products/?search=a%00b",
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(
        answer["search"],
        json!(["Null characters are not allowed."])
    );
    // A form field.
    let form = reqwest::multipart::Form::new()
        .text("name", nul.to_owned())
        .text("price", "2.00");
    let req = app
        .client
        .post(app.url("/api/v1/product/products/"))
        .bearer_auth(&owner.access)
        .multipart(form);
    let (status, answer, _) = app.send(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert_eq!(answer["name"], json!(["Null characters are not allowed."]));
    // GraphQL: a literal and a variable.
    for body in [
        json!({"query": "mutation { createProduct(input: {name: \"a\\u0000b\", price: \"1\"}) { id } }"}),
        json!({"query": "mutation($n: String) { createProduct(input: {name: $n, price: \"1\"}) { id } }", "variables": {"n": nul}}),
    ] {
        let req = app
            .client
            .post(app.url("/graphql/product"))
            .bearer_auth(&owner.access)
            .json(&body);
        let (status, answer, _) = app.send(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["code"],
            "VALIDATION_ERROR"
        );
    }
    // Nothing was written anywhere.
    let config = app.config();
    for (service, table) in [
        ("product", "products"),
        ("product", "categories"),
        ("inventory", "warehouses"),
        ("order", "orders"),
    ] {
        let pool = service_pool(&config, service).await;
        let count: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .expect("count");
        let expected = i64::from(table == "warehouses"); // the project's default warehouse
        assert!(count <= expected, "{service}.{table}: {count}");
    }
    let (_, projects, _) = app
        .get("/api/v1/project/projects/", Some(&owner.access))
        .await;
    assert_eq!(projects["count"], 1, "{projects}");
}

#[tokio::test]
async fn json_bodies_deep_trailing_or_empty_are_answered_in_the_contracts_shape() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "jamal", "Jamal Jams").await;
    let send = |path: &str, body: String| {
        app.client
            .post(app.url(path))
            .bearer_auth(&owner.access)
            .header("content-type", "application/json")
            .body(body)
    };
    let deep = format!("{{\"name\": {}}}", nested("[", "1", "]", 5_000));
    let (status, answer, _) = app.send(send("/api/v1/product/products/", deep)).await;
    assert_eq!(
        (status, answer["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("parse_error"))
    );
    let (status, answer, _) = app
        .send(send(
            "/api/v1/product/products/",
            r#"{"name":"x","price":"1.00"}}}"#.into(),
        ))
        .await;
    assert_eq!(
        (status, answer["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("parse_error"))
    );
    let (_, list, _) = app
        .get("/api/v1/product/products/", Some(&owner.access))
        .await;
    assert_eq!(list["count"], 0, "nothing was created");
    // An action with a JSON content type and no body is `{}`.
    let (status, answer, _) = app.send(send("/api/v1/auth/logout/", String::new())).await;
    assert!(status.is_success(), "{status} {answer}");
    // A query string nested or repeated beyond reason is a 400, not a crash.
    let long = format!("/api/v1/product/products/?search={}", "%5B".repeat(5_000));
    let (status, _, _) = app.get(&long, Some(&owner.access)).await;
    assert!(status.is_client_error() || status.is_success(), "{status}");
    let (status, _, _) = app.get("/api/v1/product/health/", None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_public_view_is_the_same_for_strangers_and_names_no_one() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "omar", "Omar Olives").await;
    let project = owner.project_id();
    let (status, made) = app
        .call(
            Method::POST,
            "/api/v1/product/products/",
            json!({"name": "Olive oil", "price": "9.00", "cost_price": "4.00", "status": "active"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["created_by"], owner.id, "members see who wrote it");
    let id = made["id"].as_i64().expect("id");
    app.user("stranger", false).await;
    let (stranger, _) = app.login("stranger").await;
    let read = |path: String, token: Option<String>| {
        let mut req = app
            .client
            .get(app.url(&path))
            .header("X-Project-ID", project.to_string());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        app.send(req)
    };
    for path in [
        format!("/api/v1/product/products/{id}/"),
        "/api/v1/product/products/".to_owned(),
    ] {
        let (status, anonymous, _) = read(path.clone(), None).await;
        assert_eq!(status, StatusCode::OK, "{anonymous}");
        let (status, signed_in, _) = read(path.clone(), Some(stranger.clone())).await;
        assert_eq!(status, StatusCode::OK, "{signed_in}");
        assert_eq!(anonymous, signed_in, "{path}: one public view");
        let row = anonymous["results"][0].clone();
        let row = if row.is_null() {
            anonymous.clone()
        } else {
            row
        };
        assert_eq!(row["name"], "Olive oil");
        assert!(row.get("created_by").is_none(), "{path}: {row}");
        assert!(row.get("updated_by").is_none(), "{path}: {row}");
        assert!(row["cost_price"].is_null(), "{path}: {row}");
    }
    // A members-only resource: the stranger is told they are not a member.
    for path in [
        "/api/v1/inventory/warehouses/",
        "/api/v1/billing/invoices/",
        "/api/v1/inventory/reservations/",
    ] {
        let (status, body, _) = read(path.to_owned(), Some(stranger.clone())).await;
        assert_eq!(
            (status, body["code"].clone()),
            (StatusCode::FORBIDDEN, json!("not_project_member")),
            "{path}: {body}"
        );
    }
}

#[tokio::test]
async fn smaller_findings_answer_as_the_contract_says() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "lina", "Lina Lamps").await;
    // A too-long name gets one error.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/v1/product/products/",
            json!({"name": "x".repeat(10_000), "price": "1.00"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["name"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(
        !body["name"][0].as_str().unwrap_or("").contains("required"),
        "{body}"
    );
    // GraphQL: updating a missing id is HTTP 200, the field null and NOT_FOUND.
    let req = app
        .client
        .post(app.url("/graphql/product"))
        .bearer_auth(&owner.access)
        .json(&json!({"query": "mutation { updateProduct(id: \"999999\", input: {name: \"x\"}) { id } }"}));
    let (status, body, _) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["updateProduct"], Value::Null, "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{body}"
    );
    // A workflow mutation with bad input: its field is null, the error says why.
    let req = app
        .client
        .post(app.url("/graphql/billing"))
        .bearer_auth(&owner.access)
        .json(&json!({"query": "mutation { createTransaction(input: {}) { id } }"}));
    let (status, body, _) = app.send(req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"].is_object(), "{body}");
    assert!(
        !body.to_string().contains("non-null types require"),
        "{body}"
    );
    // An action with a JSON content type and no body.
    app.user("leila", false).await;
    let (other, _) = app.login("leila").await;
    let req = app
        .client
        .post(app.url("/api/v1/auth/logout/"))
        .bearer_auth(&other)
        .header("content-type", "application/json");
    let (status, body, _) = app.send(req).await;
    assert!(status.is_success(), "{status} {body}");
}

#[tokio::test]
async fn the_login_throttle_counts_an_account_however_it_is_named() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limit.enabled = true;
        c.rate_limit.login_per_minute = 4;
        c.rate_limit.login_ip_per_minute = 1_000;
    })
    .await;
    app.user("karim", false).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        let name = if i % 2 == 0 {
            "karim"
        } else {
            "KARIM@example.com"
        };
        let (status, _, _) = app
            .post(
                "/api/v1/auth/login/",
                json!({"username": name, "password": "wrong-password"}),
                None,
            )
            .await;
        statuses.push(status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn what_the_fuzzer_found_answers_400() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "fuzzy", "Fuzzy Felts").await;
    // A body that is JSON but not an object, on routes that add to it.
    for (path, body) in [
        ("/api/v1/order/orders/1/payments/", json!([null, null])),
        ("/api/v1/order/orders/1/fulfillments/", json!([1])),
        ("/api/v1/product/products/", json!("a string")),
        ("/api/v1/inventory/warehouses/", json!(7)),
    ] {
        let (status, answer) = app.call(Method::POST, path, body, &owner.access).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert_eq!(
            answer["non_field_errors"][0], "Invalid data. Expected a dictionary.",
            "{path}: {answer}"
        );
    }
    // A measure at the edge of what a double holds.
    let (status, answer) = app
        .call(
            Method::POST,
            "/api/v1/product/products/shipping/",
            json!({"dimension_unit": "cm", "length": 1.797_693_134_862_315_7e308, "width": null}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(answer["length"].is_array(), "{answer}");
}
