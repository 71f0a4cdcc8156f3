//! Database plumbing: per-service databases created on demand, pools, migrations, and the
//! mapping of constraint violations to 4xx errors.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};

use crate::config::Config;
use crate::error::{ApiError, FieldErrors};

/// Connect options for `database` on the configured server.
pub fn connect_options(config: &Config, database: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(server_options(config)?
        .database(database)
        .application_name("zonevast")
        .log_statements(tracing::log::LevelFilter::Debug)
        .log_slow_statements(tracing::log::LevelFilter::Warn, Duration::from_millis(500)))
}

/// The configured server. One on this machine (a loopback address or a socket directory) is
/// reached without TLS unless the URL or `PGSSLMODE` asks for it: encryption that never leaves
/// the machine protects nothing and costs both sides CPU on every round trip.
fn server_options(config: &Config) -> anyhow::Result<PgConnectOptions> {
    let url = config.database_url.expose();
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("invalid ZV_DATABASE_URL: {e}"))?;
    let chosen =
        url.to_ascii_lowercase().contains("sslmode=") || std::env::var_os("PGSSLMODE").is_some();
    Ok(if !chosen && on_this_machine(options.get_host()) {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

/// Whether `host` is this machine: a loopback address, `localhost` or a Unix socket directory.
fn on_this_machine(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.starts_with('/')
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Creates `database` on the server if it does not exist yet (safe when raced).
pub async fn ensure_database(config: &Config, database: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&server_options(config)?)
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach PostgreSQL: {e}"))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(database)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        // Identifiers cannot be bound; the name is validated by `Config::validate`.
        let created = sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&mut conn)
            .await;
        match created {
            Ok(_) => tracing::info!(database, "created database"),
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    conn.close().await.ok();
    Ok(())
}

/// How long a pooled connection may sit unused before it is checked again on its way out.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(10);

/// Opens the service's pool, creating the database and applying migrations first.
pub async fn open_service_pool(
    config: &Config,
    service: &str,
    migrator: &Migrator,
) -> anyhow::Result<PgPool> {
    let database = config.database_name(service);
    ensure_database(config, &database).await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A connection in use moments ago is alive: only one idle for a while is checked
        // before it is given out (a round trip to the server that every statement on its own
        // connection would otherwise pay).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= CHECK_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .idle_timeout(Duration::from_secs(
            config.database_idle_timeout_secs.max(1),
        ))
        .connect_with(connect_options(config, &database)?)
        .await?;
    migrator
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrating {database}: {e}"))?;
    Ok(pool)
}

/// A named constraint and the field error it stands for.
pub struct ConstraintField {
    pub constraint: &'static str,
    pub field: &'static str,
    pub message: &'static str,
}

/// Maps a database error to the platform error: constraint violations become 4xx (named ones to
/// the field the caller gave), lost races 409, an exhausted pool 503, anything else 500.
pub fn map_db_error(err: sqlx::Error, known: &[ConstraintField]) -> ApiError {
    match &err {
        sqlx::Error::RowNotFound => return ApiError::not_found(),
        sqlx::Error::PoolTimedOut => {
            return ApiError::service_unavailable("The database is busy. Try again shortly.")
        }
        sqlx::Error::Database(db) => {
            if let Some(name) = db.constraint() {
                if let Some(known) = known.iter().find(|k| k.constraint == name) {
                    return ApiError::validation(FieldErrors::single(known.field, known.message));
                }
            }
            match db.code().as_deref() {
                Some("23505") => {
                    return ApiError::validation(FieldErrors::single(
                        "non_field_errors",
                        "A record with these values already exists.",
                    ))
                }
                Some("23503") => {
                    return ApiError::validation(FieldErrors::single(
                        "non_field_errors",
                        "A referenced record does not exist.",
                    ))
                }
                Some("23514") | Some("23502") | Some("22003") | Some("22001") | Some("22P02") => {
                    return ApiError::validation(FieldErrors::single(
                        "non_field_errors",
                        "The values are not valid.",
                    ))
                }
                Some("40001") | Some("40P01") => {
                    return ApiError::conflict(
                        "conflict",
                        "A concurrent update won. Retry the request.",
                    )
                    .transient()
                }
                // `lock_timeout` elapsed: nothing changed, the caller may retry.
                Some("55P03") => {
                    return ApiError::service_unavailable(
                        "The records are busy. Nothing was changed; retry shortly.",
                    )
                }
                _ => {}
            }
        }
        _ => {}
    }
    ApiError::internal(err)
}

/// Runs `op` (one whole transaction) again when it lost a deadlock or serialization race, at
/// most `RETRIES` more times, then answers 503 (contract inventory.md §2).
pub async fn retry_transient<T, F, Fut>(mut op: F) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ApiError>>,
{
    const RETRIES: usize = 3;
    let mut attempt = 0;
    loop {
        match op().await {
            Err(e) if e.is_transient() && attempt < RETRIES => {
                attempt += 1;
                tracing::debug!(attempt, "transient database conflict, retrying");
            }
            Err(e) if e.is_transient() => {
                return Err(ApiError::service_unavailable(
                    "The records are busy. Nothing was changed; retry shortly.",
                ))
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::on_this_machine;

    #[test]
    fn loopback_hosts_and_sockets_are_this_machine() {
        for host in [
            "127.0.0.1",
            "127.3.2.1",
            "::1",
            "[::1]",
            "localhost",
            "LocalHost",
            "/var/run/postgresql",
        ] {
            assert!(on_this_machine(host), "{host}");
        }
        for host in [
            "10.0.0.5",
            "db.example.com",
            "192.168.1.2",
            "2001:db8::1",
            "",
        ] {
            assert!(!on_this_machine(host), "{host}");
        }
    }
}
