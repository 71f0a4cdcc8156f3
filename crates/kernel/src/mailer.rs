//! Outgoing mail behind one interface: the log (default in `zv up`), SMTP, or an in-memory
//! outbox that a test harness can read.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailConfig;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: Mail) -> anyhow::Result<()>;
}

pub type SharedMailer = Arc<dyn Mailer>;

/// Writes each mail to the log (development mode).
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        tracing::info!(target: "mail", to = %mail.to, subject = %mail.subject, body = %mail.body, "mail");
        Ok(())
    }
}

/// Keeps mails in memory, newest last.
#[derive(Default)]
pub struct MemoryMailer {
    sent: Mutex<Vec<Mail>>,
}

impl MemoryMailer {
    pub fn sent(&self) -> Vec<Mail> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        self.sent
            .lock()
            .map_err(|_| anyhow::anyhow!("mail outbox poisoned"))?
            .push(mail);
        Ok(())
    }
}

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpMailer {
    pub fn new(url: &str, from: &str) -> anyhow::Result<Self> {
        Ok(Self {
            transport: AsyncSmtpTransport::<Tokio1Executor>::from_url(url)?.build(),
            from: from.parse()?,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: Mail) -> anyhow::Result<()> {
        let message = Message::builder()
            .from(self.from.clone())
            .to(mail.to.parse()?)
            .subject(mail.subject)
            .body(mail.body)?;
        self.transport.send(message).await?;
        Ok(())
    }
}

/// The mailer the configuration asks for.
pub fn from_config(config: &MailConfig) -> anyhow::Result<SharedMailer> {
    Ok(match (config.mode.as_str(), &config.smtp_url) {
        ("smtp", Some(url)) => Arc::new(SmtpMailer::new(url.expose(), &config.from)?),
        ("memory", _) => Arc::new(MemoryMailer::default()),
        _ => Arc::new(LogMailer),
    })
}
