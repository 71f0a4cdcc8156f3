//! Layered configuration: defaults → `zonevast.toml` → `ZV_*` environment variables.
//!
//! Nested keys use a double underscore in the environment (`ZV_JWT__ACCESS_TTL_SECS`).
//! Secrets are wrapped in [`Secret`] so that printing the configuration never shows them.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configuration value that must never be printed or logged.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that needs it (a connection, a signature).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A printable form: URLs keep everything but their password, anything else is masked.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut url) if url.has_host() => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                url.to_string()
            }
            _ if self.0.is_empty() => String::new(),
            _ => "***".to_owned(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", self.redacted())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// Address `zv up` listens on.
    pub listen: String,
    /// PostgreSQL server URL; per-service databases are created on it.
    pub database_url: Secret,
    /// Prepended to every database name so several instances can share one server.
    pub database_prefix: String,
    /// Maximum connections per service pool.
    pub database_max_connections: u32,
    /// A pool connection idle this long is closed, so a burst's connections (and the memory
    /// they hold here and in PostgreSQL) are given back soon after it.
    pub database_idle_timeout_secs: u64,
    /// The in-process cache's budget (without Redis): cached reads, revocations, throttles.
    pub memory_cache_bytes: u64,
    /// Keys and files live here.
    pub data_dir: PathBuf,
    /// Optional Redis: cache, revocation list and rate limits move there.
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub redis_namespace: String,
    /// RabbitMQ for events (`amqp://user:pass@host:5672/%2f`); unset: events run in-process.
    pub amqp_url: Option<Secret>,
    /// Prefix of the exchanges and queues, so several deployments can share one broker.
    pub amqp_namespace: String,
    /// Public base URL used for absolute links (pagination `next`); defaults to the request's host.
    pub public_base_url: Option<String>,
    /// Browser origins allowed by CORS (`*` allows any origin, without credentials).
    pub cors_allowed_origins: Vec<String>,
    /// Trust the first `X-Forwarded-For` address as the client IP (only behind a proxy you run).
    pub trust_forwarded_for: bool,
    /// `json` (default) or `pretty`.
    pub log_format: String,
    /// A `tracing` filter, e.g. `info,sqlx=warn`.
    pub log_level: String,
    /// How long the gateway waits for a service before answering 504.
    pub upstream_timeout_secs: u64,
    pub jwt: JwtConfig,
    pub rate_limit: RateLimitConfig,
    pub limits: LimitsConfig,
    pub mail: MailConfig,
    /// S3-compatible endpoint (`http://127.0.0.1:9000`); files go there instead of `data_dir`.
    pub s3_endpoint: Option<String>,
    pub s3_bucket: String,
    pub s3_region: String,
    pub s3_access_key_id: Option<Secret>,
    pub s3_secret_access_key: Option<Secret>,
    pub storage: StorageConfig,
    pub project: ProjectConfig,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageConfig {
    /// Where public objects are served from (a CDN in production); defaults to this platform's
    /// `/api/v1/project/media`.
    pub public_base_url: Option<String>,
    /// Largest direct (through the platform) upload; bigger files use a presigned URL.
    pub direct_upload_max_bytes: u64,
    /// Storage quota of a new project.
    pub default_quota_bytes: i64,
    /// Allowed file extensions (contract project.md §6.3); an empty list allows all known ones.
    pub allowed_extensions: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ProjectConfig {
    /// Features a new project gets when the request names none (empty = every seeded one).
    pub default_features: Vec<String>,
    pub max_owned_per_user: i64,
    pub invitation_ttl_hours: i64,
    pub max_pending_invitations: i64,
    /// Base URL of the web app, for invitation links.
    pub web_base_url: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            public_base_url: None,
            direct_upload_max_bytes: 10 << 20,
            default_quota_bytes: 10 << 30,
            allowed_extensions: Vec::new(),
        }
    }
}

impl Default for ProjectConfig {
    fn default() -> Self {
        Self {
            default_features: Vec::new(),
            max_owned_per_user: 10,
            invitation_ttl_hours: 7 * 24,
            max_pending_invitations: 50,
            web_base_url: "http://localhost:8000".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct JwtConfig {
    pub access_ttl_secs: i64,
    pub refresh_ttl_secs: i64,
    /// A rotated refresh token reused within this window returns the same successor pair.
    pub refresh_reuse_grace_secs: i64,
    pub leeway_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimitConfig {
    pub enabled: bool,
    pub anonymous_per_minute: u32,
    pub user_per_minute: u32,
    pub login_per_minute: u32,
    pub login_ip_per_minute: u32,
    pub register_per_hour: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LimitsConfig {
    pub json_body_bytes: usize,
    pub multipart_body_bytes: usize,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct MailConfig {
    /// `log` writes mails to the log; `smtp` sends them through `smtp_url`.
    pub mode: String,
    /// e.g. `smtps://user:pass@smtp.example.com:465` or `smtp://localhost:25`.
    pub smtp_url: Option<Secret>,
    pub from: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8000".into(),
            database_url: Secret::new("postgres://postgres@127.0.0.1:5432/postgres"),
            database_prefix: String::new(),
            database_max_connections: 10,
            database_idle_timeout_secs: 60,
            memory_cache_bytes: 64 << 20,
            data_dir: PathBuf::from("./data"),
            redis_url: None,
            redis_namespace: "zv".into(),
            amqp_url: None,
            amqp_namespace: "zv".into(),
            public_base_url: None,
            cors_allowed_origins: vec!["http://localhost:3000".into()],
            trust_forwarded_for: false,
            log_format: "json".into(),
            log_level: "info,sqlx=warn".into(),
            upstream_timeout_secs: 30,
            jwt: JwtConfig::default(),
            rate_limit: RateLimitConfig::default(),
            limits: LimitsConfig::default(),
            mail: MailConfig::default(),
            s3_endpoint: None,
            s3_bucket: "zonevast".into(),
            s3_region: "us-east-1".into(),
            s3_access_key_id: None,
            s3_secret_access_key: None,
            storage: StorageConfig::default(),
            project: ProjectConfig::default(),
        }
    }
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            access_ttl_secs: 15 * 60,
            refresh_ttl_secs: 7 * 24 * 3600,
            refresh_reuse_grace_secs: 10,
            leeway_secs: 30,
        }
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            anonymous_per_minute: 100,
            user_per_minute: 1000,
            login_per_minute: 5,
            login_ip_per_minute: 30,
            register_per_hour: 10,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            json_body_bytes: 2 * 1024 * 1024,
            multipart_body_bytes: 10 * 1024 * 1024,
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            mode: "log".into(),
            smtp_url: None,
            from: "ZoneVast <no-reply@zonevast.local>".into(),
        }
    }
}

impl Config {
    /// Defaults, then `file` (or `./zonevast.toml` when present), then `ZV_*` variables.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        let default_file = Path::new("zonevast.toml");
        match file {
            Some(path) => {
                anyhow::ensure!(path.exists(), "config file {} not found", path.display());
                figment = figment.merge(Toml::file(path));
            }
            None if default_file.exists() => figment = figment.merge(Toml::file(default_file)),
            None => {}
        }
        let config: Config = figment
            .merge(Env::prefixed("ZV_").split("__"))
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.jwt.access_ttl_secs > 0,
            "jwt.access_ttl_secs must be positive"
        );
        anyhow::ensure!(
            self.jwt.refresh_ttl_secs > self.jwt.access_ttl_secs,
            "jwt.refresh_ttl_secs must exceed the access lifetime"
        );
        anyhow::ensure!(
            self.database_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "database_prefix may hold only letters, digits and '_'"
        );
        anyhow::ensure!(
            matches!(self.mail.mode.as_str(), "log" | "smtp" | "memory"),
            "mail.mode must be log or smtp"
        );
        anyhow::ensure!(
            self.mail.mode != "smtp" || self.mail.smtp_url.is_some(),
            "mail.mode = smtp needs mail.smtp_url"
        );
        anyhow::ensure!(
            self.s3_endpoint.is_none()
                || (self.s3_access_key_id.is_some() && self.s3_secret_access_key.is_some()),
            "s3_endpoint needs s3_access_key_id and s3_secret_access_key"
        );
        Ok(())
    }

    /// The database name of a service (`zv_auth_db` with the configured prefix).
    pub fn database_name(&self, service: &str) -> String {
        format!("{}zv_{}_db", self.database_prefix, service)
    }

    /// The effective configuration as JSON, secrets redacted.
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let url = Secret::new("postgres://zv:hunter2@db:5432/postgres");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.redacted(), "postgres://zv:***@db:5432/postgres");
        assert_eq!(Secret::new("plain-token").redacted(), "***");
        let mut config = Config::default();
        config.mail.smtp_url = Some(Secret::new("smtp://u:topsecret@mail:25"));
        assert!(!config.redacted_json().to_string().contains("topsecret"));
    }

    #[test]
    fn database_names_take_the_prefix() {
        let config = Config {
            database_prefix: "staging_".into(),
            ..Config::default()
        };
        assert_eq!(config.database_name("auth"), "staging_zv_auth_db");
    }
}
