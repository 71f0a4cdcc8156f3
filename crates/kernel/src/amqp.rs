//! The RabbitMQ transport of the event bus (DESIGN §6), used when `ZV_AMQP_URL` is set.
//!
//! - One durable topic exchange `{ns}.events`; an event's routing key is its type.
//! - Publishing waits for the broker's confirm, with persistent messages, so the relay marks an
//!   outbox row sent only once the broker holds the event.
//! - Each consuming service has one durable queue `{ns}.{consumer}`, bound to its patterns and
//!   read one message at a time (prefetch 1), so the consumer sees events in the order they
//!   were published. A handler's success acks the message. A failure puts it back after a
//!   growing pause (it stays at the head of the queue), and after [`MAX_ATTEMPTS`] it is
//!   dead-lettered to `{ns}.{consumer}.dead` through the `{ns}.dead` exchange.
//! - Connections are re-established with backoff. An event published but not yet confirmed is
//!   still pending in the outbox, so a broken connection loses nothing; a redelivery after a
//!   crash is absorbed by the consumer's inbox.
//! - Every call that waits on the broker is bounded by [`BROKER_TIMEOUT`]: the client library
//!   can leave an acknowledgement or a confirm waiting forever on a connection that broke
//!   under it, which would stop a consumer (or a relay) for good. A call that times out, or
//!   finds its connection already broken, counts as a broken connection: the consumer
//!   reconnects and the broker redelivers what was not acknowledged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
    BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::events::{Envelope, EventBus};

/// Deliveries of one event to one consumer before it is dead-lettered.
pub const MAX_ATTEMPTS: u32 = 5;

/// The longest any call waits on the broker (connecting, declaring, a publish's confirm, an
/// acknowledgement) before its connection is treated as broken.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs one call to the broker on `connection`: refused at once when the connection is
/// already broken, and given up after [`BROKER_TIMEOUT`].
async fn bounded<T>(
    connection: &Connection,
    what: &str,
    call: impl std::future::Future<Output = lapin::Result<T>>,
) -> anyhow::Result<T> {
    anyhow::ensure!(
        connection.status().connected(),
        "the connection to the broker is broken ({what})"
    );
    within(what, call).await
}

/// Waits for `call` at most [`BROKER_TIMEOUT`].
async fn within<T>(
    what: &str,
    call: impl std::future::Future<Output = lapin::Result<T>>,
) -> anyhow::Result<T> {
    match tokio::time::timeout(BROKER_TIMEOUT, call).await {
        Ok(outcome) => Ok(outcome?),
        Err(_) => anyhow::bail!("the broker did not answer within {BROKER_TIMEOUT:?} ({what})"),
    }
}

/// A connection to the broker for one process: the publishing channel, and the consumers.
pub struct Broker {
    url: String,
    namespace: String,
    publisher: Mutex<Option<(Arc<Connection>, Channel)>>,
}

impl Broker {
    pub fn new(url: &str, namespace: &str) -> Self {
        Self {
            url: url.to_owned(),
            namespace: namespace.to_owned(),
            publisher: Mutex::new(None),
        }
    }

    fn exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    fn dead_exchange(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    /// The queue of a consuming service.
    pub fn queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.namespace)
    }

    /// The dead-letter queue of a consuming service.
    pub fn dead_queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}.dead", self.namespace)
    }

    /// A new connection with one channel, and the events exchange declared.
    async fn open(&self) -> anyhow::Result<(Connection, Channel)> {
        let connect = Connection::connect(&self.url, ConnectionProperties::default());
        let connection = within("connect", connect).await?;
        let channel = bounded(&connection, "channel", connection.create_channel()).await?;
        let declare = channel.exchange_declare(
            self.exchange().as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        );
        bounded(&connection, "exchange", declare).await?;
        Ok((connection, channel))
    }

    /// Whether the broker answers (readiness): the publishing connection is up, or a new one
    /// opens within 2 s.
    pub async fn reachable(&self) -> bool {
        if self
            .publisher
            .lock()
            .await
            .as_ref()
            .is_some_and(|(c, _)| c.status().connected())
        {
            return true;
        }
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            Connection::connect(&self.url, ConnectionProperties::default()),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => {
                let _ = connection.close(200, "readiness check".into()).await;
                true
            }
            _ => false,
        }
    }

    /// Publishes one event and waits for the broker to confirm it. On any failure the
    /// connection is dropped, so the next attempt reconnects.
    pub async fn publish(&self, envelope: &Envelope) -> anyhow::Result<()> {
        // The lock guards the connection only: publishes from several keys share the channel
        // and wait for their confirms side by side.
        let (connection, channel) = {
            let mut slot = self.publisher.lock().await;
            if slot.as_ref().is_none_or(|(c, _)| !c.status().connected()) {
                let (connection, channel) = self.open().await?;
                let confirms = channel.confirm_select(ConfirmSelectOptions::default());
                bounded(&connection, "confirms", confirms).await?;
                *slot = Some((Arc::new(connection), channel));
            }
            let Some((connection, channel)) = slot.as_ref() else {
                anyhow::bail!("no publishing channel");
            };
            (connection.clone(), channel.clone())
        };
        let payload = serde_json::to_vec(envelope)?;
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(envelope.id.to_string().as_str().into())
            .with_type(envelope.event_type.as_str().into());
        let confirmed = async {
            channel
                .basic_publish(
                    self.exchange().as_str().into(),
                    envelope.event_type.as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties,
                )
                .await?
                .await
        };
        let outcome = match bounded(&connection, "publish", confirmed).await {
            Ok(confirm) if confirm.is_ack() => Ok(()),
            Ok(_) => Err(anyhow::anyhow!("the broker refused the event")),
            Err(e) => Err(e),
        };
        if outcome.is_err() {
            // Drop the connection this publish used (not a newer one another publish opened).
            let mut slot = self.publisher.lock().await;
            if slot
                .as_ref()
                .is_some_and(|(c, _)| Arc::ptr_eq(c, &connection))
            {
                *slot = None;
            }
        }
        outcome
    }

    /// Declares the queue of `consumer` (bound to `patterns`) and its dead-letter queue.
    async fn declare_queue(
        &self,
        channel: &Channel,
        consumer: &str,
        patterns: &[String],
    ) -> anyhow::Result<()> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.dead_exchange().as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let queue = self.queue(consumer);
        let dead = self.dead_queue(consumer);
        channel
            .queue_declare(dead.as_str().into(), durable, FieldTable::default())
            .await?;
        channel
            .queue_bind(
                dead.as_str().into(),
                self.dead_exchange().as_str().into(),
                queue.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(self.dead_exchange().as_str().into()),
        );
        // Dead letters keep their event type as routing key unless told otherwise.
        arguments.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(queue.as_str().into()),
        );
        channel
            .queue_declare(queue.as_str().into(), durable, arguments)
            .await?;
        for pattern in patterns {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange().as_str().into(),
                    pattern.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Consumes `consumer`'s queue until the connection breaks.
    async fn consume(
        &self,
        bus: &EventBus,
        consumer: &'static str,
        patterns: &[String],
    ) -> anyhow::Result<()> {
        let (connection, channel) = self.open().await?;
        let declared = self.declare_queue(&channel, consumer, patterns);
        bounded(&connection, "queue", async { Ok(declared.await) }).await??;
        let qos = channel.basic_qos(1, BasicQosOptions::default());
        bounded(&connection, "qos", qos).await?;
        let consume = channel.basic_consume(
            self.queue(consumer).as_str().into(),
            format!("{consumer}-{}", Uuid::now_v7().simple())
                .as_str()
                .into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        );
        let mut deliveries = bounded(&connection, "consume", consume).await?;
        tracing::info!(consumer, queue = %self.queue(consumer), "consuming events");
        // Failed deliveries per event (this process's count; a restart starts again).
        let mut failures: HashMap<Uuid, u32> = HashMap::new();
        while let Some(delivery) = deliveries.next().await {
            let delivery = delivery?;
            let envelope = match serde_json::from_slice::<Envelope>(&delivery.data) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(consumer, error = %e, "unreadable event dead-lettered");
                    let nack = delivery.nack(BasicNackOptions {
                        requeue: false,
                        ..BasicNackOptions::default()
                    });
                    bounded(&connection, "nack", nack).await?;
                    continue;
                }
            };
            match bus.dispatch(&envelope, Some(consumer)).await {
                Ok(()) => {
                    failures.remove(&envelope.id);
                    let ack = delivery.ack(BasicAckOptions::default());
                    bounded(&connection, "ack", ack).await?;
                }
                Err(e) => {
                    let attempts = failures.entry(envelope.id).or_default();
                    *attempts += 1;
                    let dead = *attempts >= MAX_ATTEMPTS;
                    tracing::warn!(consumer, event = %envelope.id, attempts = *attempts, dead, error = %format!("{e:#}"), "event handler failed");
                    if dead {
                        failures.remove(&envelope.id);
                    } else {
                        tokio::time::sleep(retry_pause(*attempts)).await;
                    }
                    let nack = delivery.nack(BasicNackOptions {
                        requeue: !dead,
                        ..BasicNackOptions::default()
                    });
                    bounded(&connection, "nack", nack).await?;
                }
            }
        }
        anyhow::bail!("the broker closed the consumer")
    }

    /// Moves every dead-lettered event of `consumer` back to its queue (after the handler has
    /// been fixed): each is republished with a confirm before it leaves the dead-letter queue,
    /// so a failure midway loses nothing. Returns how many were moved.
    pub async fn replay_dead(&self, consumer: &str) -> anyhow::Result<u32> {
        let (connection, channel) = self.open().await?;
        let dead = self.dead_queue(consumer);
        // A passive declare fails (and closes its channel) when the queue does not exist.
        let probe = connection.create_channel().await?;
        let exists = probe
            .queue_declare(
                dead.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .is_ok();
        anyhow::ensure!(
            exists,
            "no dead-letter queue {dead}: is {consumer:?} a consuming service of this namespace?"
        );
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        let mut moved = 0;
        while let Some(message) = channel
            .basic_get(dead.as_str().into(), BasicGetOptions::default())
            .await?
        {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    self.queue(consumer).as_str().into(),
                    BasicPublishOptions::default(),
                    &message.delivery.data,
                    message.delivery.properties.clone(),
                )
                .await?
                .await?;
            anyhow::ensure!(confirm.is_ack(), "the broker refused a replayed event");
            message.delivery.ack(BasicAckOptions::default()).await?;
            moved += 1;
        }
        let _ = connection.close(200, "replayed".into()).await;
        Ok(moved)
    }

    /// Runs `consumer` forever, reconnecting with backoff (capped at 5 s, so consumption resumes
    /// within seconds of the broker's return, as the outbox relays do).
    pub fn spawn_consumer(
        self: &Arc<Self>,
        bus: Arc<EventBus>,
        consumer: &'static str,
        patterns: Vec<String>,
    ) -> tokio::task::JoinHandle<()> {
        let broker = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                let started = std::time::Instant::now();
                if let Err(e) = broker.consume(&bus, consumer, &patterns).await {
                    tracing::warn!(consumer, error = %format!("{e:#}"), "event consumer disconnected; reconnecting");
                }
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(200);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        })
    }
}

/// 100 ms, 200 ms, 400 ms… between attempts of a failing handler.
fn retry_pause(attempts: u32) -> Duration {
    Duration::from_millis(100 * 2u64.pow(attempts.min(8)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An acknowledgement or confirm the client library never resolves (its connection broke
    /// under it) gives up after the timeout instead of holding its consumer forever.
    #[tokio::test(start_paused = true)]
    async fn a_call_the_broker_never_answers_gives_up() {
        let started = tokio::time::Instant::now();
        let outcome = within("ack", std::future::pending::<lapin::Result<()>>()).await;
        let error = outcome.expect_err("gave up");
        assert!(error.to_string().contains("did not answer"), "{error}");
        assert_eq!(started.elapsed(), BROKER_TIMEOUT);
        assert!(within("ack", async { lapin::Result::Ok(7) })
            .await
            .is_ok_and(|n| n == 7));
    }
}
