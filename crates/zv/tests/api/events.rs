//! The event path of `zv up`: outbox written with the change, relayed in order, retried while
//! a consumer fails, applied once by an inbox; and races on membership and invitations.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use kernel::events::{begin_once, Envelope, EventBus, EventHandler, Outbox};
use reqwest::Method;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::harness::{s, TestApp};
use crate::projects::owner_with_project;

/// Fails its first `failures` deliveries, then records what it sees (once per event id).
struct Flaky {
    failures: AtomicUsize,
    seen: Mutex<Vec<String>>,
    pool: sqlx::PgPool,
}

#[async_trait]
impl EventHandler for Flaky {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            anyhow::bail!("consumer down");
        }
        let Some(tx) = begin_once(&self.pool, "flaky", envelope).await? else {
            return Ok(());
        };
        tx.commit().await?;
        self.seen
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(envelope.data["title"].as_str().unwrap_or("").to_owned());
        Ok(())
    }
}

/// A pool on a schema of its own in the project database, with the outbox tables: no relay of
/// the platform reads them, so the test's relay is the only one.
async fn outbox_of_its_own(app: &TestApp, schema: &str) -> sqlx::PgPool {
    let config = app.platform.config().clone();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&app.project_pool().await)
        .await
        .expect("schema");
    let options = kernel::db::connect_options(&config, &config.database_name("project"))
        .expect("options")
        .options([("search_path", schema)]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("pool");
    kernel::events::install(&pool).await.expect("tables");
    pool
}

#[tokio::test]
async fn outbox_survives_a_failing_consumer_and_inbox_dedupes() {
    let app = TestApp::spawn().await;
    // A schema of its own: no relay of the platform reads these outbox tables, so this
    // test's relay is the only one.
    let pool = outbox_of_its_own(&app, "outbox_test").await;
    let bus = Arc::new(EventBus::default());
    let flaky = Arc::new(Flaky {
        failures: AtomicUsize::new(3),
        seen: Mutex::new(Vec::new()),
        pool: pool.clone(),
    });
    bus.subscribe("flaky", &["project.created"], flaky.clone());
    let outbox = Outbox::new(pool.clone(), "test", bus.clone());

    // Three events in three committed transactions, one rolled back.
    for (i, commit) in [(1, true), (2, true), (3, false), (4, true)] {
        let mut tx = pool.begin().await.expect("tx");
        let event = integration::project::ProjectCreated {
            project_id: 900 + i,
            owner_id: 1,
            username: format!("p{i}"),
            title: format!("t{i}"),
        };
        outbox
            .record(&mut tx, Some(900 + i), None, &event)
            .await
            .expect("record");
        if commit {
            tx.commit().await.expect("commit");
        } else {
            tx.rollback().await.expect("rollback");
        }
    }
    // The consumer is down: nothing is lost, nothing is marked sent.
    for _ in 0..3 {
        assert!(outbox.relay_pending().await.is_err());
    }
    assert_eq!(outbox.pending().await.expect("pending"), 3);
    assert!(flaky.seen.lock().expect("seen").is_empty());
    // It comes back: everything arrives, in commit order, the rolled-back one never.
    assert_eq!(outbox.relay_pending().await.expect("relay"), 3);
    assert_eq!(*flaky.seen.lock().expect("seen"), ["t1", "t2", "t4"]);
    assert_eq!(outbox.pending().await.expect("pending"), 0);
    // Redelivery (a relay that died before marking) is applied once.
    let envelope: Value = sqlx::query_scalar("SELECT envelope FROM zv_outbox ORDER BY id LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("row");
    let envelope: Envelope = serde_json::from_value(envelope).expect("envelope");
    bus.deliver(&envelope).await.expect("redeliver");
    assert_eq!(flaky.seen.lock().expect("seen").len(), 3);
    let attempts: i32 = sqlx::query_scalar("SELECT attempts FROM zv_outbox ORDER BY id LIMIT 1")
        .fetch_one(&pool)
        .await
        .expect("attempts");
    assert_eq!(attempts, 3, "failures are counted on the waiting event");
    // The envelope of DESIGN §6.
    assert_eq!(envelope.event_type, "project.created");
    assert_eq!(envelope.version, 1);
    assert_eq!(envelope.source, "test");
    assert_eq!(envelope.id.get_version_num(), 7);
}

#[tokio::test]
async fn the_project_service_events_carry_the_contract_payloads() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "evan", "Evan Events").await;
    let pid = owner.project_id();
    let bob = app.user("bob", false).await;
    let (_, member) = app
        .call(
            Method::POST,
            &format!(
                "/api/v1/project/{}/account/collaborators/",
                owner.username()
            ),
            json!({"user_id": bob, "role": "editor"}),
            &owner.access,
        )
        .await;
    app.call(
        Method::PATCH,
        &format!(
            "/api/v1/project/{}/account/collaborators/{}/",
            owner.username(),
            member["id"]
        ),
        json!({"role": "viewer"}),
        &owner.access,
    )
    .await;
    // auth's user.updated refreshes the member's snapshot in the project service.
    let (bob_access, _) = app.login("bob").await;
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/v1/auth/auth/user/",
            json!({"first_name": "Robert", "username": "rob"}),
            &bob_access,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, members, _) = app
        .get(
            &format!(
                "/api/v1/project/{}/account/collaborators/?user_id={bob}",
                owner.username()
            ),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        members["results"][0]["user"]["first_name"], "Robert",
        "{members}"
    );
    assert_eq!(members["results"][0]["user"]["username"], "rob");
    let auth_pool = crate::harness::service_pool(app.platform.config(), "auth").await;
    let user_event: Value =
        sqlx::query_scalar("SELECT envelope FROM zv_outbox WHERE event_type = 'user.updated'")
            .fetch_one(&auth_pool)
            .await
            .expect("user.updated");
    assert_eq!(
        user_event["data"]["changed"],
        json!(["username", "first_name"])
    );
    assert_eq!(user_event["project_id"], Value::Null);
    app.call(
        Method::DELETE,
        &format!(
            "/api/v1/project/{}/account/collaborators/{}/",
            owner.username(),
            member["id"]
        ),
        Value::Null,
        &owner.access,
    )
    .await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/project/projects/{pid}/"),
        Value::Null,
        &owner.access,
    )
    .await;
    let pool = app.project_pool().await;
    let rows: Vec<(String, Value, Option<chrono::DateTime<chrono::Utc>>)> =
        sqlx::query_as("SELECT event_type, envelope, published_at FROM zv_outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("outbox");
    let types: Vec<&str> = rows.iter().map(|(t, _, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "project.created",
            "project.member_added",
            "project.member_added",
            "project.member_updated",
            "project.member_removed",
            "project.deleted"
        ]
    );
    assert!(rows.iter().all(|(_, _, published)| published.is_some()));
    let created = &rows[0].1;
    assert_eq!(
        created["data"],
        json!({"project_id": pid, "owner_id": owner.id, "username": owner.username(), "title": "Evan Events"})
    );
    assert_eq!(created["project_id"], pid);
    assert_eq!(created["actor_id"], owner.id);
    assert!(
        created["request_id"].is_string(),
        "events carry the request id: {created}"
    );
    assert_eq!(
        rows[3].1["data"],
        json!({"project_id": pid, "user_id": bob, "role": "viewer", "previous_role": "editor"})
    );
    // Auth applied each once.
    let auth = crate::harness::service_pool(app.platform.config(), "auth").await;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM zv_inbox WHERE consumer = 'auth'")
        .fetch_one(&auth)
        .await
        .expect("inbox");
    assert_eq!(applied, 6);
}

#[tokio::test]
async fn races_on_members_and_invitations_have_one_winner() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "rachel", "Race Co").await;
    let bob = app.user("bob", false).await;
    let path = format!(
        "/api/v1/project/{}/account/collaborators/",
        owner.username()
    );
    let adds =
        (0..8).map(|_| app.call(Method::POST, &path, json!({"user_id": bob}), &owner.access));
    let statuses: Vec<StatusCode> = futures::future::join_all(adds)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );

    // Two accepts of one invitation: one member, one 409.
    app.user("nina", false).await;
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/project/{}/account/invitations/", owner.username()),
            json!({"email": "nina"}),
            &owner.access,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "by username, resolved to the account's email"
    );
    let mail = app
        .mailer
        .sent()
        .into_iter()
        .rev()
        .find(|m| m.to == "nina@example.com")
        .expect("mail");
    let token = mail
        .body
        .split_whitespace()
        .find(|w| w.contains("/invitations/"))
        .and_then(|l| l.rsplit('/').next())
        .expect("token")
        .to_owned();
    let (nina, _) = app.login("nina").await;
    let accept = format!("/api/v1/project/invitations/{token}/accept/");
    let accepts = (0..6).map(|_| app.call(Method::POST, &accept, Value::Null, &nina));
    let statuses: Vec<StatusCode> = futures::future::join_all(accepts)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
        "{statuses:?}"
    );

    // The quota holds under concurrent reservations: exactly five 1000-byte uploads fit.
    let pool = app.project_pool().await;
    sqlx::query("UPDATE projects SET storage_quota_bytes = storage_used_bytes + storage_reserved_bytes + 5000 WHERE id = $1")
        .bind(owner.project_id())
        .execute(&pool)
        .await
        .expect("quota");
    let body = json!({"file_name": "a.pdf", "file_size": 1000, "content_type": "application/pdf", "entity_type": "invoice"});
    let presigns = (0..10).map(|_| {
        app.call(
            Method::POST,
            "/api/v1/project/attachment/presigned-url/",
            body.clone(),
            &owner.access,
        )
    });
    let statuses: Vec<StatusCode> = futures::future::join_all(presigns)
        .await
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::INSUFFICIENT_STORAGE)
            .count(),
        5,
        "{statuses:?}"
    );

    // The per-user project limit holds under concurrency.
    let creates = (0..12).map(|i| {
        app.post(
            "/api/v1/project/projects/",
            json!({"title": format!("Shop {i}")}),
            Some(&owner.access),
        )
    });
    let created = futures::future::join_all(creates)
        .await
        .into_iter()
        .filter(|(s, _, _)| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 9, "10 owned at most, one existed already");
    let (status, body, _) = app
        .post(
            "/api/v1/project/projects/",
            json!({"title": "one more"}),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        (status, s(&body["code"])),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            "project_limit_reached".to_owned()
        )
    );
}

#[tokio::test]
async fn graphql_adapts_the_same_functions() {
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "gina", "Gina Graph").await;
    let q = |query: &str| json!({"query": query});
    // The quick-start query and both connection shapes.
    let (status, body, _) = app
        .post(
            "/graphql/project",
            q("{ projects(pagination: {limit: 5}) { totalCount edges { id name uniqueIdentifier role } pageInfo { hasNextPage totalCount } } }"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let projects = &body["data"]["projects"];
    assert_eq!(projects["totalCount"], 1);
    assert_eq!(projects["edges"][0]["name"], "Gina Graph");
    assert_eq!(
        projects["edges"][0]["uniqueIdentifier"],
        owner.project["unique_identifier"]
    );
    assert_eq!(projects["edges"][0]["role"], "owner");
    assert_eq!(projects["pageInfo"]["hasNextPage"], false);
    let (_, body, _) = app
        .post(
            "/graphql/project",
            q(r#"mutation { createProject(title: "Second") { role name username } }"#),
            Some(&owner.access),
        )
        .await;
    assert_eq!(body["data"]["createProject"]["role"], "owner", "{body}");
    assert_eq!(body["data"]["createProject"]["username"], "second");
    let (_, body, _) = app
        .post("/graphql/project", q("{ projects(first: 1) { edges { node { name } cursor } pageInfo { hasNextPage endCursor } } }"), Some(&owner.access))
        .await;
    assert_eq!(
        body["data"]["projects"]["pageInfo"]["hasNextPage"], true,
        "{body}"
    );
    let after = s(&body["data"]["projects"]["pageInfo"]["endCursor"]);
    let (_, next, _) = app
        .post(
            "/graphql/project",
            q(&format!(
                r#"{{ projects(first: 1, after: "{after}") {{ edges {{ node {{ name }} }} }} }}"#
            )),
            Some(&owner.access),
        )
        .await;
    assert_ne!(
        next["data"]["projects"]["edges"][0]["node"]["name"],
        body["data"]["projects"]["edges"][0]["node"]["name"],
        "{next}"
    );
    let (_, body, _) = app
        .post("/graphql/project", q(r#"{ projects(filter: {title: {contains: "sec"}}, orderBy: "title") { totalCount } }"#), Some(&owner.access))
        .await;
    assert_eq!(body["data"]["projects"]["totalCount"], 1, "{body}");
    let (_, body, _) = app
        .post(
            "/graphql/project",
            q(r#"{ projects(filter: {secret: {eq: 1}}) { totalCount } }"#),
            Some(&owner.access),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "VALIDATION_ERROR",
        "{body}"
    );
    let (_, body, _) = app
        .post(
            "/graphql/project",
            q(r#"mutation { setProjectSetting(key: "theme", value: "dark") { key value } }"#),
            Some(&owner.access),
        )
        .await;
    assert_eq!(body["data"]["setProjectSetting"]["value"], "dark", "{body}");
    let (_, body, _) = app
        .post(
            "/graphql/project",
            q("{ projectSettings { totalCount } }"),
            Some(&owner.access),
        )
        .await;
    assert_eq!(body["data"]["projectSettings"]["totalCount"], 6, "{body}");
    // The same rules: a viewer cannot write, anonymous is 401.
    let (status, body, _) = app
        .post("/graphql/project", q("{ projects { totalCount } }"), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "anonymous: the error is in the body: {body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
    let req = app
        .client
        .post(app.url("/graphql/project"))
        .bearer_auth("not-a-jwt")
        .json(&q("{ projects { totalCount } }"));
    let (status, _, _) = app.send(req).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an invalid bearer is HTTP 401"
    );
    let (_, viewer) = crate::projects::member(&app, &owner, "vic", "viewer").await;
    let (_, body, _) = app
        .post(
            "/graphql/project",
            q(r#"mutation { updateProject(title: "Hijack") { title } }"#),
            Some(&viewer),
        )
        .await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "FORBIDDEN",
        "{body}"
    );
    let (_, body, _) = app
        .post(
            "/graphql/project",
            q("{ members { totalCount edges { role user { username } } } }"),
            Some(&viewer),
        )
        .await;
    assert_eq!(body["data"]["members"]["totalCount"], 2, "{body}");
}

/// Applies each event once (inbox), counting every call; the call for `hold_at` waits until
/// released, so a relay can be killed while it is delivering that batch.
struct Holding {
    pool: sqlx::PgPool,
    calls: AtomicUsize,
    hold_at: i64,
    holding: tokio::sync::Notify,
    release: tokio::sync::Notify,
    held_once: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl EventHandler for Holding {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let Some(mut tx) = begin_once(&self.pool, "holding", envelope).await? else {
            return Ok(());
        };
        sqlx::query("INSERT INTO applied (n) VALUES ($1)")
            .bind(envelope.project_id)
            .execute(&mut *tx)
            .await?;
        if envelope.project_id == Some(self.hold_at) && !self.held_once.swap(true, Ordering::SeqCst)
        {
            self.holding.notify_one();
            self.release.notified().await;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_relay_killed_mid_batch_loses_nothing_and_doubles_nothing() {
    let app = TestApp::spawn().await;
    let config = app.platform.config().clone();
    sqlx::query("CREATE SCHEMA relay_kill")
        .execute(&app.project_pool().await)
        .await
        .expect("schema");
    let options = kernel::db::connect_options(&config, &config.database_name("project"))
        .expect("options")
        .options([("search_path", "relay_kill")]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .expect("pool");
    kernel::events::install(&pool).await.expect("tables");
    sqlx::query("CREATE TABLE applied (n BIGINT NOT NULL)")
        .execute(&pool)
        .await
        .expect("table");
    let bus = Arc::new(EventBus::default());
    let consumer = Arc::new(Holding {
        pool: pool.clone(),
        calls: AtomicUsize::new(0),
        hold_at: 150,
        holding: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
        held_once: std::sync::atomic::AtomicBool::new(false),
    });
    bus.subscribe("holding", &["project.created"], consumer.clone());
    let outbox = Outbox::new(pool.clone(), "kill", bus.clone());
    for i in 1..=300 {
        let mut tx = pool.begin().await.expect("tx");
        let event = integration::project::ProjectCreated {
            project_id: i,
            owner_id: 1,
            username: format!("p{i}"),
            title: format!("t{i}"),
        };
        outbox
            .record(&mut tx, Some(i), None, &event)
            .await
            .expect("record");
        tx.commit().await.expect("commit");
    }
    // The relay delivers the first batch (1–100), then dies while delivering the 50th event
    // of the second: events 101–149 were delivered, but their batch was never marked sent.
    let relay = {
        let outbox = outbox.clone();
        tokio::spawn(async move { outbox.relay_pending().await })
    };
    consumer.holding.notified().await;
    relay.abort();
    assert!(relay.await.is_err(), "killed");
    let applied = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM applied")
            .fetch_one(&pool)
            .await
            .expect("count")
    };
    assert_eq!(
        applied().await,
        149,
        "the held event's own transaction died with it"
    );
    assert_eq!(
        outbox.pending().await.expect("pending"),
        200,
        "the second batch is pending again"
    );
    // A new relay delivers the rest: 101–149 again (absorbed by the inbox), then 150–300. (It
    // may find the dead relay's transaction still open for a moment: it then relays nothing
    // and is asked again.)
    let mut relayed = 0;
    for _ in 0..100 {
        relayed += outbox.relay_pending().await.expect("relay");
        if outbox.pending().await.expect("pending") == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(relayed, 200);
    assert_eq!(applied().await, 300);
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT n) FROM applied")
        .fetch_one(&pool)
        .await
        .expect("distinct");
    assert_eq!(distinct, 300, "each event applied exactly once");
    assert_eq!(
        consumer.calls.load(Ordering::SeqCst),
        150 + 200,
        "101–150 were delivered twice"
    );
    assert_eq!(outbox.pending().await.expect("pending"), 0);
}

/// An event of the test: `seq` is its place in commit order; `key` its ordering key.
#[derive(serde::Serialize, serde::Deserialize)]
struct Probe {
    key: Option<u32>,
    seq: u32,
}

impl kernel::events::IntegrationEvent for Probe {
    const TYPE: &'static str = "probe.keyed";

    fn ordering_key(&self) -> Option<String> {
        self.key.map(|k| format!("k{k}"))
    }
}

/// Records the order of deliveries and how many ran at once; fails the first delivery of
/// `fail_seq`.
struct Recorder {
    delivered: Mutex<Vec<(Option<u32>, u32)>>,
    in_flight: AtomicUsize,
    most_at_once: AtomicUsize,
    fail_seq: u32,
    failed: std::sync::atomic::AtomicBool,
}

impl Recorder {
    fn failing_once_at(fail_seq: u32) -> Self {
        Self {
            delivered: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            most_at_once: AtomicUsize::new(0),
            fail_seq,
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let probe: Probe = serde_json::from_value(envelope.data.clone())?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        // Uneven handling times, so keys overtake each other when they may.
        tokio::time::sleep(std::time::Duration::from_millis(u64::from(probe.seq % 4))).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if probe.seq == self.fail_seq && !self.failed.swap(true, Ordering::SeqCst) {
            anyhow::bail!("this consumer failed once");
        }
        self.delivered
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push((probe.key, probe.seq));
        Ok(())
    }
}

#[tokio::test]
async fn keyed_events_keep_their_order_per_key_and_unkeyed_events_wait_for_all() {
    let app = TestApp::spawn().await;
    let pool = outbox_of_its_own(&app, "relay_keys").await;
    let bus = Arc::new(EventBus::default());
    let recorder = Arc::new(Recorder::failing_once_at(63));
    bus.subscribe("recorder", &["probe.keyed"], recorder.clone());
    let outbox = Outbox::new(pool.clone(), "keys", bus.clone());
    // 250 events over 6 keys, with unkeyed events at 40, 41 and 150 (two batches and more).
    let unkeyed = [40, 41, 150];
    for seq in 0..250u32 {
        let key = (!unkeyed.contains(&seq)).then_some(seq % 6);
        let mut tx = pool.begin().await.expect("tx");
        outbox
            .record(&mut tx, Some(1), None, &Probe { key, seq })
            .await
            .expect("record");
        tx.commit().await.expect("commit");
    }
    // Event 63 (key 3) fails once: the relay stops after its run of keys and reports it.
    assert!(
        outbox.relay_pending().await.is_err(),
        "the failure surfaces"
    );
    let first: Vec<(Option<u32>, u32)> = recorder.delivered.lock().expect("lock").clone();
    assert!(
        !first.iter().any(|(k, s)| *k == Some(3) && *s >= 63),
        "nothing of key 3 overtook its failed event"
    );
    assert!(
        !first.iter().any(|(_, s)| *s == 150),
        "the unkeyed event after the failure waits"
    );
    // The retry delivers the rest.
    outbox.relay_pending().await.expect("retry");
    assert_eq!(outbox.pending().await.expect("pending"), 0);
    let delivered = recorder.delivered.lock().expect("lock").clone();
    let mut seqs: Vec<u32> = delivered.iter().map(|(_, s)| *s).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..250).collect::<Vec<_>>(), "every event once");
    for key in 0..6 {
        let of_key: Vec<u32> = delivered
            .iter()
            .filter(|(k, _)| *k == Some(key))
            .map(|(_, s)| *s)
            .collect();
        assert!(
            of_key.windows(2).all(|w| w[0] < w[1]),
            "key {key} in commit order: {of_key:?}"
        );
    }
    for barrier in unkeyed {
        let at = delivered
            .iter()
            .position(|(_, s)| *s == barrier)
            .expect("delivered");
        assert!(
            delivered[..at].iter().all(|(_, s)| *s < barrier),
            "nothing after {barrier} before it"
        );
        assert_eq!(
            at, barrier as usize,
            "everything before {barrier} came first"
        );
    }
    assert!(
        recorder.most_at_once.load(Ordering::SeqCst) > 1,
        "different keys were delivered side by side"
    );
    assert!(
        delivered.windows(2).any(|w| w[0].1 > w[1].1),
        "keys overtook each other"
    );
}

/// Idle costs nothing: once a write's events are delivered, the relays make no statement until
/// their slow safety poll (30 s), where they used to poll every 2 s.
#[tokio::test]
async fn an_idle_platform_runs_almost_no_sql() {
    use std::time::Duration;
    let statements = crate::harness::count_statements(false);
    let app = TestApp::spawn().await;
    let owner = owner_with_project(&app, "ida", "Ida Idle").await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/v1/product/products/",
            json!({"name": "Lamp", "price": "10"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = statements.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle = statements.load(Ordering::SeqCst) - before;
    // A sweeper's tick may land in the window; six relays polling every 2 s made about 60.
    assert!(idle <= 6, "{idle} statements in 5 idle seconds");
}

/// `count` unkeyed probes (seq 0, 1, …) written in one transaction with one statement.
async fn unkeyed_probes(outbox: &Outbox, pool: &sqlx::PgPool, count: u32) -> Vec<Envelope> {
    let mut tx = pool.begin().await.expect("tx");
    let envelopes: Vec<Envelope> = (0..count)
        .map(|seq| outbox.envelope(Some(1), None, &Probe { key: None, seq }))
        .collect::<anyhow::Result<_>>()
        .expect("envelopes");
    outbox
        .record_all(&mut tx, &envelopes)
        .await
        .expect("record");
    tx.commit().await.expect("commit");
    envelopes
}

/// Takes the relay's batches (one call per batch) and fails on one poisoned event every time.
struct Batcher {
    calls: AtomicUsize,
    applied: Mutex<Vec<u32>>,
    poison: u32,
}

#[async_trait]
impl EventHandler for Batcher {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        let probe: Probe = serde_json::from_value(envelope.data.clone())?;
        if probe.seq == self.poison {
            anyhow::bail!("poisoned event");
        }
        self.applied
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?
            .push(probe.seq);
        Ok(())
    }

    fn batches(&self) -> bool {
        true
    }

    /// All or nothing, as in one transaction.
    async fn handle_all(&self, envelopes: &[&Envelope]) -> anyhow::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let mut seqs = Vec::with_capacity(envelopes.len());
        for envelope in envelopes {
            let probe: Probe = serde_json::from_value(envelope.data.clone())?;
            if probe.seq == self.poison {
                anyhow::bail!("poisoned event in the batch");
            }
            seqs.push(probe.seq);
        }
        self.applied
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned lock"))?
            .extend(seqs);
        Ok(())
    }
}

#[tokio::test]
async fn a_batching_consumer_takes_a_batch_at_once_and_a_poisoned_event_is_set_aside_alone() {
    let app = TestApp::spawn().await;
    let pool = outbox_of_its_own(&app, "relay_batches").await;
    let bus = Arc::new(EventBus::default());
    let batcher = Arc::new(Batcher {
        calls: AtomicUsize::new(0),
        applied: Mutex::new(Vec::new()),
        poison: 7,
    });
    let other = Arc::new(Recorder::failing_once_at(u32::MAX));
    bus.subscribe("batcher", &["probe.keyed"], batcher.clone());
    bus.subscribe("other", &["probe.keyed"], other.clone());
    let outbox = Outbox::new(pool.clone(), "batches", bus.clone());
    unkeyed_probes(&outbox, &pool, 20).await;

    // The batcher gets the whole batch in one call and stops at the poisoned event.
    assert!(
        outbox.relay_pending().await.is_err(),
        "the failure surfaces"
    );
    assert_eq!(
        batcher.calls.load(Ordering::SeqCst),
        1,
        "one call for the batch"
    );
    assert_eq!(
        *batcher.applied.lock().expect("lock"),
        (0..7).collect::<Vec<_>>()
    );
    let charged: Vec<(i32, bool)> =
        sqlx::query_as("SELECT attempts, published_at IS NOT NULL FROM zv_outbox ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("rows");
    assert_eq!(charged[7], (1, false), "the poisoned event is charged");
    assert!(
        charged[8..].iter().all(|c| *c == (0, false)),
        "the events after it wait, uncharged: {charged:?}"
    );
    // Retried until it is set aside: then everything else arrives once, at both consumers.
    for _ in 0..12 {
        if outbox.relay_pending().await.is_ok() {
            break;
        }
    }
    assert_eq!(outbox.pending().await.expect("pending"), 0);
    let dead: Vec<i64> = sqlx::query_scalar("SELECT id FROM zv_outbox WHERE dead_at IS NOT NULL")
        .fetch_all(&pool)
        .await
        .expect("dead");
    assert_eq!(dead.len(), 1, "only the poisoned event is set aside");
    let everything_but_7: Vec<u32> = (0..20).filter(|s| *s != 7).collect();
    let mut applied = batcher.applied.lock().expect("lock").clone();
    applied.sort_unstable();
    assert_eq!(applied, everything_but_7, "the batcher, once each");
    let mut seen: Vec<u32> = other
        .delivered
        .lock()
        .expect("lock")
        .iter()
        .map(|d| d.1)
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, everything_but_7, "the other consumer, once each");
}

#[tokio::test]
async fn delivered_events_leave_the_outbox_after_a_day_and_pending_ones_stay() {
    let app = TestApp::spawn().await;
    let pool = outbox_of_its_own(&app, "outbox_prune").await;
    let bus = Arc::new(EventBus::default());
    let outbox = Outbox::new(pool.clone(), "prune", bus.clone());
    let envelopes = unkeyed_probes(&outbox, &pool, 3).await;
    assert_eq!(outbox.relay_pending().await.expect("relay"), 3);
    // The first was delivered two days ago, the second an hour ago; the third waits again.
    for (n, state) in [
        (0, "published_at = now() - interval '2 days'"),
        (1, "published_at = now() - interval '1 hour'"),
        (2, "published_at = NULL"),
    ] {
        sqlx::query(&format!(
            "UPDATE zv_outbox SET {state} WHERE id = (SELECT id FROM zv_outbox ORDER BY id OFFSET {n} LIMIT 1)"
        ))
        .execute(&pool)
        .await
        .expect("age");
    }
    outbox.prune().await;
    let left: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM zv_outbox ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("rows");
    assert_eq!(left, [envelopes[1].id, envelopes[2].id]);
    assert_eq!(outbox.pending().await.expect("pending"), 1);
}
