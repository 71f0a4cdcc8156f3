//! Events through RabbitMQ (`ZV_AMQP_URL`): the outbox publishes with confirms, each consuming
//! service reads its own durable queue, a redelivered event is applied once, and a consumer
//! that keeps failing has the event dead-lettered while the others go on.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kernel::config::Secret;
use kernel::events::{begin_once, Envelope, EventHandler};
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::harness::{eventually_true, service_pool, TestApp};

pub const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// An app whose events go through the broker at `url`, in a namespace of its own.
pub async fn app_on_broker(url: &str) -> (TestApp, String) {
    let mut namespace = String::new();
    let app = TestApp::spawn_with(|c| {
        namespace = format!("zvtest.{}", c.database_prefix.trim_end_matches('_'));
        c.amqp_url = Some(Secret::new(url));
        c.amqp_namespace = namespace.clone();
    })
    .await;
    (app, namespace)
}

/// Messages in a queue (`None`: no such queue).
async fn messages(queue: &str) -> Option<u32> {
    let connection = lapin::Connection::connect(BROKER, lapin::ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let found = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .ok()
        .map(|q| q.message_count());
    let _ = connection.close(0, "".into()).await;
    found
}

/// Stops the app's consumers (they would declare their queues again) and removes what the test
/// declared on the shared broker.
pub async fn clean(app: &TestApp, namespace: &str, consumers: &[&str]) {
    app.platform.events().stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let connection = lapin::Connection::connect(BROKER, lapin::ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    // The platform's own consumers, and the test's.
    let platform = [
        "auth",
        "project",
        "product",
        "inventory",
        "order",
        "billing",
    ];
    for c in platform.iter().chain(consumers.iter()) {
        for q in [format!("{namespace}.{c}"), format!("{namespace}.{c}.dead")] {
            let _ = channel
                .queue_delete(q.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
    }
    for e in ["events", "dead"] {
        let _ = channel
            .exchange_delete(
                format!("{namespace}.{e}").as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
    let _ = connection.close(0, "".into()).await;
}

/// Waits until the product service's catalogue prices `project` in `code`.
async fn catalogue_currency(pool: &sqlx::PgPool, project: i64, code: &str) {
    eventually_true(&format!("the catalogue prices in {code}"), || async {
        zv_product::settings::currency(pool, project)
            .await
            .is_ok_and(|c| c == code)
    })
    .await;
}

/// Fails while `broken`; counts every call.
struct Failing {
    calls: Arc<AtomicUsize>,
    broken: Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl EventHandler for Failing {
    async fn handle(&self, _: &Envelope) -> anyhow::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        anyhow::ensure!(
            !self.broken.load(Ordering::SeqCst),
            "this consumer is broken"
        );
        Ok(())
    }
}

struct Once {
    pool: sqlx::PgPool,
    applied: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl EventHandler for Once {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        if let Some(tx) = begin_once(&self.pool, "probe_once", envelope).await? {
            tx.commit().await?;
            self.applied.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

#[tokio::test]
async fn events_cross_rabbitmq_once_and_failures_are_dead_lettered() {
    let (app, ns) = app_on_broker(BROKER).await;
    let events = app.platform.events().clone();
    let broker = events.broker().cloned().expect("a broker bus");
    // Two more consumers beside the services': one that always fails, one that counts.
    let failures = Arc::new(AtomicUsize::new(0));
    let applied = Arc::new(AtomicUsize::new(0));
    let pool = service_pool(app.platform.config(), "product").await;
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    events.subscribe(
        "probe_failing",
        &["project.settings_changed"],
        Arc::new(Failing {
            calls: failures.clone(),
            broken: broken.clone(),
        }),
    );
    events.subscribe(
        "probe_once",
        &["project.*"],
        Arc::new(Once {
            pool: pool.clone(),
            applied: applied.clone(),
        }),
    );
    events.start();
    eventually_true("the probe queues exist", || async {
        messages(&format!("{ns}.probe_failing")).await.is_some()
            && messages(&format!("{ns}.probe_once")).await.is_some()
    })
    .await;

    // A setting changed in the project service reaches the product service through the broker.
    // Auth learns of the new project from the broker, a moment after the response.
    let owner = crate::projects::owner_with_project_eventually(&app, "rabia", "Rabia Retail").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            &format!("/api/v1/project/{}/settings/currency/", owner.username()),
            json!({"value": "EUR"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let project = owner.project_id();
    catalogue_currency(&pool, project, "EUR").await;
    let outbox = app.project_pool().await;
    let unsent: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM zv_outbox WHERE published_at IS NULL AND dead_at IS NULL",
    )
    .fetch_one(&outbox)
    .await
    .expect("outbox");
    assert_eq!(unsent, 0, "every event confirmed by the broker");

    // The failing consumer tried it five times, then it went to its dead-letter queue; the
    // other consumers were not held up.
    eventually_true("the event is dead-lettered", || async {
        messages(&format!("{ns}.probe_failing.dead")).await == Some(1)
    })
    .await;
    assert_eq!(
        failures.load(Ordering::SeqCst),
        kernel::amqp::MAX_ATTEMPTS as usize
    );
    assert_eq!(messages(&format!("{ns}.probe_failing")).await, Some(0));
    // Once the cause is fixed, an operator replays the dead letters (`zv events replay-dead`).
    broken.store(false, Ordering::SeqCst);
    assert_eq!(
        broker.replay_dead("probe_failing").await.expect("replay"),
        1
    );
    eventually_true("the replayed event is handled", || async {
        failures.load(Ordering::SeqCst) == kernel::amqp::MAX_ATTEMPTS as usize + 1
    })
    .await;
    assert_eq!(messages(&format!("{ns}.probe_failing.dead")).await, Some(0));
    assert_eq!(messages(&format!("{ns}.probe_failing")).await, Some(0));

    // A redelivered event (published again by a relay that crashed before marking it sent)
    // is applied once.
    eventually_true("the counting consumer saw the project's events", || async {
        applied.load(Ordering::SeqCst) >= 2
    })
    .await;
    let seen = applied.load(Ordering::SeqCst);
    let again = Envelope::new(
        "project",
        Some(project),
        None,
        &integration::project::FeaturesChanged {
            project_id: project,
            features: vec!["pos".into()],
        },
    )
    .expect("envelope");
    for _ in 0..3 {
        broker.publish(&again).await.expect("published");
    }
    eventually_true("the new event is applied", || async {
        applied.load(Ordering::SeqCst) == seen + 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        applied.load(Ordering::SeqCst),
        seen + 1,
        "three copies, one effect"
    );
    assert_eq!(messages(&format!("{ns}.probe_once")).await, Some(0));

    clean(
        &app,
        &ns,
        &["auth", "project", "product", "probe_failing", "probe_once"],
    )
    .await;
}

/// A TCP relay to the broker that can be cut: while down it drops every connection and
/// refuses new ones.
struct Cable {
    url: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::broadcast::Sender<()>,
}

impl Cable {
    async fn new() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (cut, _) = tokio::sync::broadcast::channel(4);
        let (flag, signal) = (up.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !flag.load(Ordering::SeqCst) {
                    continue;
                }
                let mut cut = signal.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect("127.0.0.1:5672").await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.recv() => {}
                    }
                });
            }
        });
        Self {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            up,
            cut,
        }
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        let _ = self.cut.send(());
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

/// Counts each event once per id (the inbox) and every call.
struct Tally {
    pool: sqlx::PgPool,
    calls: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl EventHandler for Tally {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(mut tx) = begin_once(&self.pool, "probe_tally", envelope).await? {
            sqlx::query("INSERT INTO probe_tally (event_id) VALUES ($1)")
                .bind(envelope.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn nothing_is_lost_or_doubled_while_the_broker_is_away() {
    let cable = Cable::new().await;
    let (app, ns) = app_on_broker(&cable.url).await;
    let pool = service_pool(app.platform.config(), "product").await;
    sqlx::query("CREATE TABLE probe_tally (n BIGSERIAL, event_id UUID NOT NULL)")
        .execute(&pool)
        .await
        .expect("tally table");
    let calls = Arc::new(AtomicUsize::new(0));
    let events = app.platform.events().clone();
    events.subscribe(
        "probe_tally",
        &["project.settings_changed"],
        Arc::new(Tally {
            pool: pool.clone(),
            calls: calls.clone(),
        }),
    );
    events.start();
    eventually_true("the tally queue exists", || async {
        messages(&format!("{ns}.probe_tally")).await.is_some()
    })
    .await;
    let owner = crate::projects::owner_with_project_eventually(&app, "bruno", "Bruno Books").await;
    let setting = format!("/api/v1/project/{}/settings/currency/", owner.username());
    let change = |code: &'static str| {
        let app = &app;
        let setting = setting.clone();
        let access = owner.access.clone();
        async move {
            let (status, body) = app
                .call(Method::PATCH, &setting, json!({"value": code}), &access)
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
    };
    change("EUR").await;
    eventually_true("the first change is tallied", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM probe_tally")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 1)
    })
    .await;

    // The broker goes away: writes still succeed, their events wait in the outbox.
    cable.down();
    let codes = [
        "GBP", "JPY", "SAR", "AED", "EGP", "USD", "CHF", "CAD", "AUD", "TRY",
    ];
    for code in codes {
        change(code).await;
    }
    let outbox = app.project_pool().await;
    let pending = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM zv_outbox WHERE published_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(&outbox)
        .await
        .expect("outbox")
    };
    assert!(
        pending().await >= codes.len() as i64,
        "held while the broker is away"
    );
    // Readiness tells: the platform still serves, the broker is missing.
    let (status, ready, _) = app.get("/ready/", None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    assert_eq!(
        (ready["status"].clone(), ready["checks"]["broker"].clone()),
        (json!("degraded"), json!("unavailable"))
    );
    // The lag is visible to operators.
    let gauge = |text: &str, name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{service=\"project\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let metrics = || async {
        app.client
            .get(app.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    eventually_true("the outbox lag is published", || async {
        let text = metrics().await;
        gauge(&text, "zv_outbox_pending").is_some_and(|n| n >= codes.len() as f64)
            && gauge(&text, "zv_outbox_oldest_pending_seconds").is_some_and(|s| s > 0.0)
    })
    .await;

    // It comes back: every event arrives, each applied once, in order.
    cable.restore();
    eventually_true("the outbox drains", || async { pending().await == 0 }).await;
    let (_, ready, _) = app.get("/ready/", None).await;
    assert_eq!(
        (ready["status"].clone(), ready["checks"]["broker"].clone()),
        (json!("ready"), json!("ok"))
    );
    eventually_true("every change is tallied", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM probe_tally")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 1 + codes.len() as i64)
    })
    .await;
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM probe_tally")
        .fetch_one(&pool)
        .await
        .expect("tally");
    assert_eq!(distinct, 1 + codes.len() as i64, "none twice");
    assert!(calls.load(Ordering::SeqCst) >= distinct as usize);
    let applied: Vec<uuid::Uuid> =
        sqlx::query_scalar("SELECT event_id FROM probe_tally ORDER BY n")
            .fetch_all(&pool)
            .await
            .expect("tally");
    let published: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT event_id FROM zv_outbox WHERE event_type = 'project.settings_changed' ORDER BY id",
    )
    .fetch_all(&outbox)
    .await
    .expect("outbox");
    assert_eq!(applied, published, "in commit order");
    // A relay that dies after publishing but before marking the rows sent publishes them
    // again: the consumers' inboxes absorb the copies.
    sqlx::query(
        "UPDATE zv_outbox SET published_at = NULL WHERE event_type = 'project.settings_changed'",
    )
    .execute(&outbox)
    .await
    .expect("reset");
    change("EUR").await;
    eventually_true("the outbox drains again", || async { pending().await == 0 }).await;
    eventually_true("only the new change is new", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM probe_tally")
            .fetch_one(&pool)
            .await
            .is_ok_and(|n| n == 2 + codes.len() as i64)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM probe_tally")
        .fetch_one(&pool)
        .await
        .expect("tally");
    assert_eq!(
        total,
        2 + codes.len() as i64,
        "republished copies applied once"
    );
    eventually_true("the lag is back to zero", || async {
        gauge(&metrics().await, "zv_outbox_pending") == Some(0.0)
    })
    .await;
    let project = owner.project_id();
    catalogue_currency(&pool, project, "EUR").await;
    clean(&app, &ns, &["auth", "project", "product", "probe_tally"]).await;
}

/// Stock written while the broker is away: every `inventory.stock_changed` arrives once the
/// broker is back, each applied exactly once, and the catalogue ends at the true level.
#[tokio::test]
async fn inventory_changes_written_during_an_outage_arrive_exactly_once() {
    let cable = Cable::new().await;
    let (app, ns) = app_on_broker(&cable.url).await;
    let pool = service_pool(app.platform.config(), "product").await;
    sqlx::query("CREATE TABLE probe_tally (n BIGSERIAL, event_id UUID NOT NULL)")
        .execute(&pool)
        .await
        .expect("tally table");
    let calls = Arc::new(AtomicUsize::new(0));
    let events = app.platform.events().clone();
    events.subscribe(
        "probe_tally",
        &["inventory.stock_changed"],
        Arc::new(Tally {
            pool: pool.clone(),
            calls: calls.clone(),
        }),
    );
    events.start();
    eventually_true("the tally queue exists", || async {
        messages(&format!("{ns}.probe_tally")).await.is_some()
    })
    .await;
    let owner = crate::projects::owner_with_project_eventually(&app, "ilyas", "Ilyas Ink").await;
    let pen = crate::inventory::product(&app, &owner, "Pen").await;
    let row = crate::inventory::create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": pen, "quantity": 100}),
    )
    .await;
    let inventory = service_pool(app.platform.config(), "inventory").await;
    let tallied = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM probe_tally")
            .fetch_one(&pool)
            .await
            .expect("tally")
    };
    eventually_true("the initial level is tallied", || async {
        tallied().await == 1
    })
    .await;

    // The broker goes away while sales and reservations are written, concurrently.
    cable.down();
    let writes = (0..40).map(|n| {
        let app = &app;
        let token = owner.access.clone();
        let id = row["id"].clone();
        async move {
            let (path, body) = if n % 4 == 0 {
                (
                    "reservations/",
                    json!({"items": [{"product_id": pen, "quantity": 2}]}),
                )
            } else {
                (
                    "movements/",
                    json!({"movement_type": "OUT", "quantity": 1, "inventory_id": id}),
                )
            };
            app.call(
                Method::POST,
                &format!("/api/v1/inventory/{path}"),
                body,
                &token,
            )
            .await
            .0
        }
    });
    let statuses = futures::future::join_all(writes).await;
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "{statuses:?}"
    );
    let pending = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM zv_outbox WHERE published_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(&inventory)
        .await
        .expect("outbox")
    };
    assert!(pending().await >= 40, "held in the outbox");
    assert_eq!(
        tallied().await,
        1,
        "nothing crossed while the broker was away"
    );

    cable.restore();
    eventually_true("the inventory outbox drains", || async {
        pending().await == 0
    })
    .await;
    let published: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM zv_outbox WHERE event_type = 'inventory.stock_changed'",
    )
    .fetch_one(&inventory)
    .await
    .expect("outbox");
    assert_eq!(published, 41);
    eventually_true("every change is tallied", || async {
        tallied().await == published
    })
    .await;
    let distinct: i64 = sqlx::query_scalar("SELECT count(DISTINCT event_id) FROM probe_tally")
        .fetch_one(&pool)
        .await
        .expect("tally");
    assert_eq!(distinct, published, "each once");
    // The catalogue shows the true level: 100 − 30 sold − 20 held.
    let (_, now, _) = app
        .get(
            &format!("/api/v1/inventory/stock/{}/", row["id"]),
            Some(&owner.access),
        )
        .await;
    assert_eq!(now["available_quantity"], 50);
    let shown = || async {
        let (_, p, _) = app
            .get(
                &format!("/api/v1/product/products/{pen}/"),
                Some(&owner.access),
            )
            .await;
        p["stock_quantity"].clone()
    };
    let mut followed = false;
    for _ in 0..400 {
        if shown().await == 50 {
            followed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if !followed {
        // What the product service holds, for the record of a failure.
        let level: Option<(i32, i64)> =
            sqlx::query_as("SELECT available, version FROM stock_levels WHERE product_id = $1")
                .bind(pen)
                .fetch_optional(&pool)
                .await
                .expect("levels");
        let applied: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM zv_inbox WHERE consumer = 'product' \
             AND event_type = 'inventory.stock_changed'",
        )
        .fetch_one(&pool)
        .await
        .expect("inbox");
        let queued = messages(&format!("{ns}.product")).await;
        panic!(
            "not within 20 s: the catalogue follows (it shows {}; its level and version {level:?}, \
             stock changes applied {applied} of {published}, waiting in its queue {queued:?})",
            shown().await
        );
    }
    clean(
        &app,
        &ns,
        &["auth", "project", "product", "inventory", "probe_tally"],
    )
    .await;
}

/// The sale through RabbitMQ: orders placed while the broker is away get their invoices once it
/// is back, one each; a payment then reaches the order through the broker too.
#[tokio::test]
async fn checkout_during_an_outage_invoices_every_order_once() {
    let cable = Cable::new().await;
    let (app, ns) = app_on_broker(&cable.url).await;
    let owner = crate::projects::owner_with_project_eventually(&app, "salma", "Salma Soaps").await;
    let soap = crate::inventory::product(&app, &owner, "Soap").await;
    crate::inventory::create(
        &app,
        &owner,
        "stock/",
        json!({"product_id": soap, "quantity": 50}),
    )
    .await;
    let billing = service_pool(app.platform.config(), "billing").await;
    let invoices = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM invoices WHERE source_type = 'order'")
            .fetch_one(&billing)
            .await
            .expect("invoices")
    };
    cable.down();
    let orders = (0..12).map(|_| {
        let app = &app;
        let token = owner.access.clone();
        async move {
            app.call(
                Method::POST,
                "/api/v1/order/orders/",
                json!({"items": [{"product_id": soap, "quantity": 2}]}),
                &token,
            )
            .await
        }
    });
    let placed = futures::future::join_all(orders).await;
    assert!(
        placed.iter().all(|(s, _)| *s == StatusCode::CREATED),
        "{placed:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        invoices().await,
        0,
        "nothing crossed while the broker was away"
    );
    cable.restore();
    eventually_true("every order is invoiced", || async {
        invoices().await == 12
    })
    .await;
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT source_id) FROM invoices WHERE source_type = 'order'",
    )
    .fetch_one(&billing)
    .await
    .expect("distinct");
    assert_eq!(distinct, 12, "one invoice per order");
    // The payment's event reaches the order through the broker.
    let order = placed[0].1.clone();
    let invoice: i64 = sqlx::query_scalar(
        "SELECT id FROM invoices WHERE source_type = 'order' AND source_id = $1",
    )
    .bind(order["id"].as_i64())
    .fetch_one(&billing)
    .await
    .expect("invoice");
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/billing/m/invoices/{invoice}/payments/"),
            json!({"method": "cash"}),
            &owner.access,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    eventually_true("the order is paid and confirmed", || async {
        let (_, o, _) = app
            .get(
                &format!("/api/v1/order/orders/{}/", order["id"]),
                Some(&owner.access),
            )
            .await;
        o["payment_status"] == "paid" && o["status"] == "confirmed"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(invoices().await, 12, "none twice");
    clean(
        &app,
        &ns,
        &[
            "auth",
            "project",
            "product",
            "inventory",
            "order",
            "billing",
        ],
    )
    .await;
}
