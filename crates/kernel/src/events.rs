//! Integration events (DESIGN §6): the envelope, the transactional outbox each publishing
//! service writes in the same transaction as its change, the relay that hands pending rows to
//! the bus in order, and the inbox that makes a consumer apply each event once.
//!
//! A service only ever calls [`Outbox::record`] inside its transaction and [`Outbox::flush`]
//! after commit; which bus carries the events (in-process here, a broker later) is the
//! platform's business, so swapping the transport does not touch services.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use tokio::sync::Notify;
use uuid::Uuid;

/// An event's payload type: its name on the bus and its schema version.
pub trait IntegrationEvent: Serialize + DeserializeOwned {
    const TYPE: &'static str;
    const VERSION: i32 = 1;

    /// Events with the same key reach consumers in commit order; events with different keys
    /// may be delivered side by side (one order's events against another's). `None` (the
    /// default) keeps the event in the outbox's total order: everything before it is delivered
    /// first, everything after it waits.
    fn ordering_key(&self) -> Option<String> {
        None
    }
}

/// What travels on the bus.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub event_type: String,
    pub version: i32,
    pub occurred_at: DateTime<Utc>,
    pub project_id: Option<i64>,
    pub source: String,
    /// The user whose request caused it (audit), if any.
    #[serde(default)]
    pub actor_id: Option<i64>,
    #[serde(default)]
    pub request_id: Option<String>,
    /// [`IntegrationEvent::ordering_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub data: Value,
}

impl Envelope {
    pub fn new<E: IntegrationEvent>(
        source: &str,
        project_id: Option<i64>,
        actor_id: Option<i64>,
        event: &E,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            id: Uuid::now_v7(),
            event_type: E::TYPE.to_owned(),
            version: E::VERSION,
            occurred_at: Utc::now(),
            project_id,
            source: source.to_owned(),
            actor_id,
            request_id: crate::observe::current_request_id(),
            key: event.ordering_key(),
            data: serde_json::to_value(event)?,
        })
    }

    /// The payload as its type, when the envelope carries that type.
    pub fn decode<E: IntegrationEvent>(&self) -> Option<Result<E, serde_json::Error>> {
        (self.event_type == E::TYPE).then(|| serde_json::from_value(self.data.clone()))
    }
}

/// A consumer's reaction to one event. Errors leave the event pending (it is retried).
#[async_trait]
pub trait EventHandler: Send + Sync {
    async fn handle(&self, envelope: &Envelope) -> anyhow::Result<()>;

    /// Whether [`handle_all`](Self::handle_all) applies several events at once (in one
    /// transaction): an in-process relay then hands this handler all its events of a batch in
    /// one call instead of one call per event.
    fn batches(&self) -> bool {
        false
    }

    /// Applies `envelopes`, in commit order; a batching handler does it all or nothing (one
    /// transaction). When it fails, the relay applies them one by one with
    /// [`handle`](Self::handle) to find the event that fails (each applied once: the inbox).
    async fn handle_all(&self, envelopes: &[&Envelope]) -> anyhow::Result<()> {
        for envelope in envelopes {
            self.handle(envelope).await?;
        }
        Ok(())
    }
}

/// What [`EventBus::dispatch_batched`] left undone, by position in the batch: events a handler
/// failed on, and events after them that it did not try.
#[derive(Default)]
pub struct BatchOutcome {
    pub failed: std::collections::HashMap<usize, anyhow::Error>,
    pub untried: std::collections::HashSet<usize>,
}

struct Subscription {
    consumer: &'static str,
    patterns: Vec<&'static str>,
    handler: Arc<dyn EventHandler>,
}

/// `order.*` matches `order.placed`; `#` matches everything; otherwise exact.
fn matches(pattern: &str, event_type: &str) -> bool {
    pattern == "#"
        || pattern == event_type
        || pattern.strip_suffix(".*").is_some_and(|prefix| {
            event_type
                .strip_prefix(prefix)
                .is_some_and(|r| r.starts_with('.'))
        })
}

/// A subscription pattern as an AMQP topic binding: `x.*` here matches any depth below `x`,
/// which a topic exchange spells `x.#`; `#` and exact names are the same.
fn topic_pattern(pattern: &'static str) -> String {
    match pattern.strip_suffix(".*") {
        Some(prefix) => format!("{prefix}.#"),
        None => pattern.to_owned(),
    }
}

/// The event bus behind every outbox: in-process by default (`zv up`: delivery calls every
/// matching consumer's handler), or RabbitMQ when a broker is configured (delivery publishes;
/// each consuming service reads its own queue, see `kernel::amqp`).
#[derive(Default)]
pub struct EventBus {
    subscriptions: RwLock<Vec<Subscription>>,
    broker: Option<Arc<crate::amqp::Broker>>,
    /// Consumers whose queue is being read (with a broker), and their tasks.
    started: std::sync::Mutex<Vec<(&'static str, tokio::task::JoinHandle<()>)>>,
}

impl EventBus {
    /// A bus carried by RabbitMQ.
    pub fn with_broker(broker: crate::amqp::Broker) -> Self {
        Self {
            subscriptions: RwLock::default(),
            broker: Some(Arc::new(broker)),
            started: std::sync::Mutex::default(),
        }
    }

    pub fn broker(&self) -> Option<&Arc<crate::amqp::Broker>> {
        self.broker.as_ref()
    }

    /// With a broker: starts one consumer per consuming service, on the union of its patterns
    /// (after the services have subscribed; a later call starts only consumers that subscribed
    /// since). In-process: nothing to start.
    pub fn start(self: &Arc<Self>) {
        let Some(broker) = &self.broker else {
            return;
        };
        let mut consumers: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        if let Ok(subs) = self.subscriptions.read() {
            for s in subs.iter() {
                match consumers.iter_mut().find(|(c, _)| *c == s.consumer) {
                    Some((_, patterns)) => patterns.extend(s.patterns.iter().copied()),
                    None => consumers.push((s.consumer, s.patterns.clone())),
                }
            }
        }
        let Ok(mut started) = self.started.lock() else {
            return;
        };
        for (consumer, mut patterns) in consumers {
            if started.iter().any(|(c, _)| *c == consumer) {
                continue;
            }
            patterns.sort_unstable();
            patterns.dedup();
            let patterns = patterns.into_iter().map(topic_pattern).collect();
            let task = broker.spawn_consumer(self.clone(), consumer, patterns);
            started.push((consumer, task));
        }
    }

    /// Stops reading the broker's queues (shutdown; unacknowledged events are redelivered to
    /// the next reader).
    pub fn stop(&self) {
        if let Ok(mut started) = self.started.lock() {
            for (_, task) in started.drain(..) {
                task.abort();
            }
        }
    }
    /// Registers `consumer` (one name per consuming service) for the event types in `patterns`.
    pub fn subscribe(
        &self,
        consumer: &'static str,
        patterns: &[&'static str],
        handler: Arc<dyn EventHandler>,
    ) {
        if let Ok(mut subs) = self.subscriptions.write() {
            subs.push(Subscription {
                consumer,
                patterns: patterns.to_vec(),
                handler,
            });
        }
    }

    /// Hands an event over: published to the broker (confirmed), or in-process delivered to
    /// every matching consumer that does not take batches (the relay hands those theirs with
    /// [`dispatch_batched`](Self::dispatch_batched) first). An error leaves it pending in the
    /// outbox (retried).
    pub async fn deliver(&self, envelope: &Envelope) -> anyhow::Result<()> {
        match &self.broker {
            Some(broker) => broker.publish(envelope).await,
            None => self.run(envelope, None, false).await,
        }
    }

    /// Runs the matching handlers (of `consumer` only, when given); the first failure is
    /// returned (the event is retried, and consumers' inboxes make the repeat harmless for
    /// those that succeeded).
    pub async fn dispatch(
        &self,
        envelope: &Envelope,
        consumer: Option<&str>,
    ) -> anyhow::Result<()> {
        self.run(envelope, consumer, true).await
    }

    /// In-process: hands each handler that [batches](EventHandler::batches) its events of
    /// `envelopes` (commit order) in one call.
    pub async fn dispatch_batched(&self, envelopes: &[&Envelope]) -> BatchOutcome {
        let mut outcome = BatchOutcome::default();
        let handlers: Vec<Subscription> = match self.subscriptions.read() {
            Ok(subs) => subs
                .iter()
                .filter(|s| s.handler.batches())
                .map(|s| Subscription {
                    consumer: s.consumer,
                    patterns: s.patterns.clone(),
                    handler: s.handler.clone(),
                })
                .collect(),
            Err(_) => return outcome,
        };
        for s in handlers {
            let (at, mine): (Vec<usize>, Vec<&Envelope>) = envelopes
                .iter()
                .enumerate()
                .filter(|(_, e)| s.patterns.iter().any(|p| matches(p, &e.event_type)))
                .map(|(i, e)| (i, *e))
                .unzip();
            if mine.is_empty() {
                continue;
            }
            if s.handler.handle_all(&mine).await.is_ok() {
                continue;
            }
            // One of them fails the batch: one by one, to tell which.
            for (i, envelope) in mine.iter().enumerate() {
                if let Err(e) = s.handler.handle(envelope).await {
                    let e = anyhow::anyhow!(
                        "{} failed on {} {}: {e:#}",
                        s.consumer,
                        envelope.event_type,
                        envelope.id
                    );
                    outcome.failed.entry(at[i]).or_insert(e);
                    outcome.untried.extend(at[i + 1..].iter().copied());
                    break;
                }
            }
        }
        outcome
    }

    async fn run(
        &self,
        envelope: &Envelope,
        consumer: Option<&str>,
        batching_too: bool,
    ) -> anyhow::Result<()> {
        let handlers: Vec<(&'static str, Arc<dyn EventHandler>)> = match self.subscriptions.read() {
            Ok(subs) => subs
                .iter()
                .filter(|s| consumer.is_none_or(|c| c == s.consumer))
                .filter(|s| batching_too || !s.handler.batches())
                .filter(|s| s.patterns.iter().any(|p| matches(p, &envelope.event_type)))
                .map(|s| (s.consumer, s.handler.clone()))
                .collect(),
            Err(_) => anyhow::bail!("event bus lock poisoned"),
        };
        for (consumer, handler) in handlers {
            handler.handle(envelope).await.map_err(|e| {
                anyhow::anyhow!(
                    "{consumer} failed on {} {}: {e:#}",
                    envelope.event_type,
                    envelope.id
                )
            })?;
        }
        Ok(())
    }
}

/// Outbox and inbox tables; created by every service that publishes or consumes. Serialised by
/// an advisory lock so processes starting together do not race on the catalog.
pub async fn install(pool: &PgPool) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(7201)")
        .execute(&mut *tx)
        .await?;
    for ddl in [
        "CREATE TABLE IF NOT EXISTS zv_outbox (
            id BIGSERIAL PRIMARY KEY,
            event_id UUID NOT NULL UNIQUE,
            event_type TEXT NOT NULL,
            project_id BIGINT,
            envelope JSONB NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            published_at TIMESTAMPTZ,
            attempts INT NOT NULL DEFAULT 0,
            last_error TEXT,
            dead_at TIMESTAMPTZ)",
        "CREATE INDEX IF NOT EXISTS zv_outbox_pending ON zv_outbox (id)
            WHERE published_at IS NULL AND dead_at IS NULL",
        "CREATE INDEX IF NOT EXISTS zv_outbox_dead ON zv_outbox (id)
            WHERE published_at IS NULL AND dead_at IS NOT NULL",
        "CREATE TABLE IF NOT EXISTS zv_inbox (
            consumer TEXT NOT NULL,
            event_id UUID NOT NULL,
            event_type TEXT NOT NULL,
            processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id))",
    ] {
        sqlx::query(ddl).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// After this many failed deliveries an event is set aside (`dead_at`) and logged, so one
/// poison event does not stop the others.
const MAX_ATTEMPTS: i32 = 10;

/// How many ordering keys a relay delivers at once (in-process: handlers running side by side;
/// with a broker: publishes awaiting their confirms).
const PARALLEL_KEYS: usize = 8;

/// An outbox row being relayed.
struct Pending {
    id: i64,
    attempts: i32,
    envelope: anyhow::Result<Envelope>,
}

impl Pending {
    fn key(&self) -> Option<&str> {
        self.envelope.as_ref().ok().and_then(|e| e.key.as_deref())
    }
}

/// What became of one relayed row.
struct Outcome {
    id: i64,
    dead: bool,
    result: anyhow::Result<()>,
}

/// Events as the four array parameters of an outbox `INSERT`, for a statement that writes
/// them together with the change they announce (one round trip; they exist if and only if
/// the change does). [`Outbox::record_all`] is the statement on its own.
pub struct OutboxRows {
    ids: Vec<Uuid>,
    types: Vec<String>,
    projects: Vec<Option<i64>>,
    bodies: Vec<Value>,
}

impl OutboxRows {
    pub fn of(envelopes: &[Envelope]) -> anyhow::Result<Self> {
        Ok(Self {
            ids: envelopes.iter().map(|e| e.id).collect(),
            types: envelopes.iter().map(|e| e.event_type.clone()).collect(),
            projects: envelopes.iter().map(|e| e.project_id).collect(),
            bodies: envelopes
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The `INSERT` of these rows, in their order, from parameters `$first` to `$first + 3`
    /// (bound by [`bind`](Self::bind) after the statement's own `first - 1` parameters);
    /// with `only_if`, a condition of the statement, only when it holds.
    pub fn insert(first: usize, only_if: Option<&str>) -> String {
        let [a, b, c, d] = [first, first + 1, first + 2, first + 3];
        let only_if = only_if.map(|c| format!("WHERE {c} ")).unwrap_or_default();
        format!(
            "INSERT INTO zv_outbox (event_id, event_type, project_id, envelope) \
             SELECT e.id, e.type, e.project, e.body \
             FROM unnest(${a}::uuid[], ${b}::text[], ${c}::bigint[], ${d}::jsonb[]) \
               WITH ORDINALITY AS e(id, type, project, body, n) {only_if}ORDER BY n"
        )
    }

    /// Binds the four arrays, in the order of [`insert`](Self::insert)'s parameters.
    pub fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.ids)
            .bind(&self.types)
            .bind(&self.projects)
            .bind(&self.bodies)
    }
}

/// How long delivered events stay in the outbox (for inspection), and how often a relay
/// deletes those past it.
pub const KEEP_PUBLISHED: Duration = Duration::from_secs(24 * 3600);
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// How often an idle relay looks for events another process left behind; the writers of
/// this process wake it as soon as they commit.
pub const RELAY_SAFETY_POLL: Duration = Duration::from_secs(30);

/// A service's outbox: where its events are written and from where they are relayed.
#[derive(Clone)]
pub struct Outbox {
    inner: Arc<OutboxInner>,
}

struct OutboxInner {
    pool: PgPool,
    source: &'static str,
    bus: Arc<EventBus>,
    wake: Notify,
    relay_lock: tokio::sync::Mutex<()>,
}

impl Outbox {
    pub fn new(pool: PgPool, source: &'static str, bus: Arc<EventBus>) -> Self {
        Self {
            inner: Arc::new(OutboxInner {
                pool,
                source,
                bus,
                wake: Notify::new(),
                relay_lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn source(&self) -> &'static str {
        self.inner.source
    }

    /// Writes `event` in the caller's transaction: it exists if and only if the change does.
    pub async fn record<E: IntegrationEvent>(
        &self,
        tx: &mut PgConnection,
        project_id: Option<i64>,
        actor_id: Option<i64>,
        event: &E,
    ) -> anyhow::Result<Envelope> {
        let envelope = self.envelope(project_id, actor_id, event)?;
        self.record_all(tx, std::slice::from_ref(&envelope)).await?;
        Ok(envelope)
    }

    /// `event` in its envelope from this service, to be written with [`record_all`](Self::record_all).
    pub fn envelope<E: IntegrationEvent>(
        &self,
        project_id: Option<i64>,
        actor_id: Option<i64>,
        event: &E,
    ) -> anyhow::Result<Envelope> {
        Ok(Envelope::new(
            self.inner.source,
            project_id,
            actor_id,
            event,
        )?)
    }

    /// Writes several events in the caller's transaction with one statement, in the given
    /// order (the order they are relayed in).
    pub async fn record_all(
        &self,
        tx: &mut PgConnection,
        envelopes: &[Envelope],
    ) -> anyhow::Result<()> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let rows = OutboxRows::of(envelopes)?;
        let insert = OutboxRows::insert(1, None);
        rows.bind(sqlx::query(&insert)).execute(tx).await?;
        Ok(())
    }

    /// After commit: delivers what is pending now, so in-process consumers see the change
    /// before the response leaves. A failure is logged and left to the background relay.
    pub async fn flush(&self) {
        if let Err(e) = self.relay_pending().await {
            tracing::warn!(source = self.inner.source, error = %format!("{e:#}"), "event relay deferred");
            self.inner.wake.notify_one();
        }
    }

    /// After commit, when no consumer needs the change before the response leaves: the
    /// background relay delivers it now, and the request does not wait for it.
    pub fn nudge(&self) {
        self.inner.wake.notify_one();
    }

    /// Delivers pending events until none is left or one fails; returns how many were
    /// delivered. Events of one ordering key (or without one) leave in commit order; within a
    /// batch, the runs of keyed events are delivered key by key, up to [`PARALLEL_KEYS`] keys at
    /// once. A failure stops its key's run and the relay after the current run of keys: what
    /// follows waits for the retry.
    pub async fn relay_pending(&self) -> anyhow::Result<usize> {
        let _one_relay_per_process = self.inner.relay_lock.lock().await;
        let mut delivered = 0;
        loop {
            let mut tx = self.inner.pool.begin().await?;
            // One relay of this outbox at a time across processes, so events leave in commit
            // order; another process relaying now will take what is pending.
            let mine: bool =
                sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(7202, hashtext($1))")
                    .bind(self.inner.source)
                    .fetch_one(&mut *tx)
                    .await?;
            if !mine {
                return Ok(delivered);
            }
            let batch: Vec<(i64, Value, i32)> = sqlx::query_as(
                "SELECT id, envelope, attempts FROM zv_outbox \
                 WHERE published_at IS NULL AND dead_at IS NULL \
                 ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED",
            )
            .fetch_all(&mut *tx)
            .await?;
            if batch.is_empty() {
                return Ok(delivered);
            }
            let pending: Vec<Pending> = batch
                .into_iter()
                .map(|(id, raw, attempts)| Pending {
                    id,
                    attempts,
                    envelope: serde_json::from_value(raw).map_err(anyhow::Error::from),
                })
                .collect();
            let (pending, mut outcomes) = self.deliver_to_batching(pending).await;
            outcomes.extend(self.deliver_batch(pending).await);
            let mut failure = None;
            let mut published = Vec::new();
            for outcome in outcomes {
                match outcome.result {
                    Ok(()) => published.push(outcome.id),
                    Err(e) => {
                        sqlx::query(
                            "UPDATE zv_outbox SET attempts = attempts + 1, last_error = $2, \
                             dead_at = CASE WHEN $3 THEN now() END WHERE id = $1",
                        )
                        .bind(outcome.id)
                        .bind(format!("{e:#}"))
                        .bind(outcome.dead)
                        .execute(&mut *tx)
                        .await?;
                        if outcome.dead {
                            tracing::error!(outbox_id = outcome.id, error = %format!("{e:#}"), "event set aside after repeated failures");
                        } else {
                            failure.get_or_insert(e);
                        }
                    }
                }
            }
            // Every delivered event of the batch marked in one statement.
            if !published.is_empty() {
                sqlx::query("UPDATE zv_outbox SET published_at = now() WHERE id = ANY($1)")
                    .bind(&published)
                    .execute(&mut *tx)
                    .await?;
            }
            delivered += published.len();
            tx.commit().await?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
    }

    /// In-process: hands the batch's events to the handlers that take batches, first. Returns
    /// the events left for the others (those no batching handler failed on or left untried) and
    /// the outcome of each event a batching handler failed on; an untried event stays pending.
    async fn deliver_to_batching(&self, pending: Vec<Pending>) -> (Vec<Pending>, Vec<Outcome>) {
        if self.inner.bus.broker().is_some() {
            return (pending, Vec::new());
        }
        let envelopes: Vec<&Envelope> = pending
            .iter()
            .filter_map(|p| p.envelope.as_ref().ok())
            .collect();
        let mut done = self.inner.bus.dispatch_batched(&envelopes).await;
        if done.failed.is_empty() {
            return (pending, Vec::new());
        }
        let mut left = Vec::with_capacity(pending.len());
        let mut outcomes = Vec::new();
        let mut at = 0;
        for p in pending {
            if p.envelope.is_err() {
                left.push(p);
                continue;
            }
            let i = at;
            at += 1;
            if let Some(e) = done.failed.remove(&i) {
                outcomes.push(Outcome {
                    id: p.id,
                    dead: p.attempts + 1 >= MAX_ATTEMPTS,
                    result: Err(e),
                });
            } else if !done.untried.contains(&i) {
                left.push(p);
            }
        }
        (left, outcomes)
    }

    /// Delivers a batch (in commit order) as runs: consecutive keyed events are grouped by key
    /// and the groups delivered side by side; an event without a key is a run of its own. Stops
    /// after the first run in which a delivery failed. Returns the outcome of every event tried.
    async fn deliver_batch(&self, batch: Vec<Pending>) -> Vec<Outcome> {
        use futures::StreamExt;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut groups: Vec<Vec<Pending>> = Vec::new();
        let mut by_key: std::collections::HashMap<String, usize> = Default::default();
        let mut events = batch.into_iter().peekable();
        while events.peek().is_some() || !groups.is_empty() {
            let next_is_keyed = events.peek().and_then(Pending::key).map(str::to_owned);
            if let Some(key) = next_is_keyed {
                let Some(event) = events.next() else { break };
                match by_key.get(&key) {
                    Some(&i) => groups[i].push(event),
                    None => {
                        by_key.insert(key, groups.len());
                        groups.push(vec![event]);
                    }
                }
                continue;
            }
            // The run of keyed events ends here (an unkeyed event, or the end of the batch).
            let run: Vec<Vec<Pending>> = if groups.is_empty() {
                match events.next() {
                    Some(unkeyed) => vec![vec![unkeyed]],
                    None => break,
                }
            } else {
                by_key.clear();
                std::mem::take(&mut groups)
            };
            let results: Vec<(Vec<Outcome>, bool)> = futures::stream::iter(run)
                .map(|group| self.deliver_in_order(group))
                .buffer_unordered(PARALLEL_KEYS)
                .collect()
                .await;
            let mut stopped = false;
            for (group, failed) in results {
                outcomes.extend(group);
                stopped |= failed;
            }
            if stopped {
                break;
            }
        }
        outcomes
    }

    /// Delivers events one after another, stopping at the first failure that does not set its
    /// event aside (`true` when it stopped).
    async fn deliver_in_order(&self, events: Vec<Pending>) -> (Vec<Outcome>, bool) {
        let mut outcomes = Vec::with_capacity(events.len());
        for event in events {
            let result = match &event.envelope {
                Ok(envelope) => self.inner.bus.deliver(envelope).await,
                Err(e) => Err(anyhow::anyhow!("undecodable envelope: {e:#}")),
            };
            // A handler that keeps failing sets its event aside; a broker that cannot be
            // reached is an outage, never a reason to drop events (the broker's consumers have
            // their own dead-letter queues).
            let dead = result.is_err()
                && event.attempts + 1 >= MAX_ATTEMPTS
                && self.inner.bus.broker().is_none();
            let stop = result.is_err() && !dead;
            outcomes.push(Outcome {
                id: event.id,
                dead,
                result,
            });
            if stop {
                return (outcomes, true);
            }
        }
        (outcomes, false)
    }

    /// Relays in the background when woken (a [`nudge`](Self::nudge), a failed
    /// [`flush`](Self::flush)) and otherwise every [`RELAY_SAFETY_POLL`], for events another
    /// process left behind: an idle outbox costs one poll per interval. While delivery fails
    /// it retries after 1 s, doubling up to 10 s.
    pub fn spawn_relay(&self) -> tokio::task::JoinHandle<()> {
        const FIRST_RETRY: Duration = Duration::from_secs(1);
        // Capped low: after an outage, delivery resumes within seconds.
        const LAST_RETRY: Duration = Duration::from_secs(10);
        let outbox = self.clone();
        tokio::spawn(async move {
            // At start: what a previous run left pending.
            let mut wait = Duration::ZERO;
            let mut retry = FIRST_RETRY;
            let mut pruned = tokio::time::Instant::now();
            loop {
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = tokio::time::Instant::now();
                    outbox.prune().await;
                }
                tokio::select! {
                    _ = outbox.inner.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                let relayed = outbox.relay_pending().await;
                outbox.record_lag().await;
                match relayed {
                    Ok(_) => {
                        wait = RELAY_SAFETY_POLL;
                        retry = FIRST_RETRY;
                    }
                    Err(e) => {
                        tracing::warn!(source = outbox.inner.source, error = %format!("{e:#}"), "event relay failed");
                        wait = retry;
                        retry = (retry * 2).min(LAST_RETRY);
                    }
                }
            }
        })
    }

    /// Deletes the events delivered more than [`KEEP_PUBLISHED`] ago, so the outbox holds what
    /// is pending, what was set aside and a day of history, not everything ever written.
    pub async fn prune(&self) {
        let pruned = sqlx::query(
            "DELETE FROM zv_outbox WHERE published_at < now() - make_interval(secs => $1)",
        )
        .bind(KEEP_PUBLISHED.as_secs_f64())
        .execute(&self.inner.pool)
        .await;
        if let Err(e) = pruned {
            tracing::warn!(source = self.inner.source, error = %e, "outbox not pruned");
        }
    }

    /// Publishes the outbox's lag as gauges: `zv_outbox_pending` (events not yet delivered),
    /// `zv_outbox_oldest_pending_seconds` (age of the oldest) and `zv_outbox_dead` (set aside),
    /// labelled by service.
    pub async fn record_lag(&self) {
        // Read through the partial indexes: the cost follows what is pending or set aside,
        // not the table's published history.
        let lag: Result<(i64, f64, i64), sqlx::Error> = sqlx::query_as(
            "SELECT p.n, COALESCE(EXTRACT(EPOCH FROM now() - p.oldest), 0)::float8, \
               (SELECT count(*) FROM zv_outbox WHERE published_at IS NULL AND dead_at IS NOT NULL) \
             FROM (SELECT count(*) AS n, min(created_at) AS oldest FROM zv_outbox \
                   WHERE published_at IS NULL AND dead_at IS NULL) p",
        )
        .fetch_one(&self.inner.pool)
        .await;
        match lag {
            Ok((pending, oldest, dead)) => {
                let service = self.inner.source;
                metrics::gauge!("zv_outbox_pending", "service" => service).set(pending as f64);
                metrics::gauge!("zv_outbox_oldest_pending_seconds", "service" => service)
                    .set(oldest);
                metrics::gauge!("zv_outbox_dead", "service" => service).set(dead as f64);
            }
            Err(e) => {
                tracing::warn!(source = self.inner.source, error = %e, "outbox lag unavailable")
            }
        }
    }

    /// Events not yet delivered (for readiness and tests).
    pub async fn pending(&self) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM zv_outbox WHERE published_at IS NULL AND dead_at IS NULL",
        )
        .fetch_one(&self.inner.pool)
        .await?)
    }
}

/// Starts a consumer's transaction for `envelope`: `None` when this consumer has already
/// applied it (redelivery), else a transaction in which the inbox row is already written, so
/// the consumer's change and the inbox mark commit together.
pub async fn begin_once<'a>(
    pool: &'a PgPool,
    consumer: &str,
    envelope: &Envelope,
) -> anyhow::Result<Option<Transaction<'a, Postgres>>> {
    let mut tx = pool.begin().await?;
    Ok(first_time(&mut tx, consumer, envelope).await?.then_some(tx))
}

/// Writes the inbox row of `envelope` for `consumer` in the caller's transaction: `false` when
/// the consumer has already applied it (a batch applies each of its events once this way).
pub async fn first_time(
    tx: &mut PgConnection,
    consumer: &str,
    envelope: &Envelope,
) -> anyhow::Result<bool> {
    Ok(sqlx::query(
        "INSERT INTO zv_inbox (consumer, event_id, event_type) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(consumer)
    .bind(envelope.id)
    .bind(&envelope.event_type)
    .execute(tx)
    .await?
    .rows_affected()
        == 1)
}

/// Writes the inbox rows of `envelopes` for `consumer` in one statement, in the caller's
/// transaction: the ids of those the consumer had not applied before.
pub async fn first_times(
    tx: &mut PgConnection,
    consumer: &str,
    envelopes: &[&Envelope],
) -> anyhow::Result<std::collections::HashSet<Uuid>> {
    if envelopes.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<Uuid> = envelopes.iter().map(|e| e.id).collect();
    let types: Vec<&str> = envelopes.iter().map(|e| e.event_type.as_str()).collect();
    let fresh: Vec<Uuid> = sqlx::query_scalar(
        "INSERT INTO zv_inbox (consumer, event_id, event_type) \
         SELECT $1, e.id, e.type FROM unnest($2::uuid[], $3::text[]) AS e(id, type) \
         ON CONFLICT DO NOTHING RETURNING event_id",
    )
    .bind(consumer)
    .bind(&ids)
    .bind(&types)
    .fetch_all(tx)
    .await?;
    Ok(fresh.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_on_dots() {
        assert!(matches("project.*", "project.created"));
        assert!(matches("project.*", "project.member_added"));
        assert!(!matches("project.*", "projects.created"));
        assert!(!matches("project.*", "project"));
        assert!(matches("#", "order.placed"));
        assert!(matches("order.placed", "order.placed"));
        assert!(!matches("order.placed", "order.placed2"));
    }
}
