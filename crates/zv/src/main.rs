//! `zv`: the one binary of the platform.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use kernel::config::Config;
use kernel::platform::PlatformOverrides;

#[cfg(feature = "alloc-mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "alloc-jemalloc")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "zv", version, about = "ZoneVast business platform")]
struct Cli {
    /// Configuration file (default: ./zonevast.toml when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway and every service in one process.
    Up,
    /// Run one service on its own (no gateway in front).
    Serve {
        /// The service to run, e.g. `auth`.
        service: String,
        /// Listen address (default: the configured `listen`).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Create missing databases and apply every service's migrations.
    Migrate,
    /// Print the effective configuration (secrets redacted).
    Config,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage JWT signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Event bus operations (RabbitMQ mode).
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
}

#[derive(Subcommand)]
enum EventsCommand {
    /// Move a consumer's dead-lettered events back to its queue (after fixing the cause).
    ReplayDead {
        /// The consuming service, e.g. `auth`.
        #[arg(long)]
        consumer: String,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an active, verified user.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long, env = "ZV_NEW_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long)]
        superuser: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new current signing key; old keys keep verifying until their tokens expire.
    Rotate,
}

#[tokio::main]
async fn main() {
    if let Err(err) = run().await {
        eprintln!("error: {err:#}");
        std::process::exit(1);
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Events {
            command: EventsCommand::ReplayDead { consumer },
        } => {
            let Some(url) = &config.amqp_url else {
                anyhow::bail!("no broker configured (ZV_AMQP_URL): events run in-process");
            };
            let broker = kernel::amqp::Broker::new(url.expose(), &config.amqp_namespace);
            let moved = broker.replay_dead(&consumer).await?;
            println!("{moved} event(s) moved back to {}", broker.queue(&consumer));
        }
        Command::Config => {
            println!("{}", serde_json::to_string_pretty(&config.redacted_json())?);
        }
        Command::Up => {
            kernel::observe::init_tracing(&config.log_format, &config.log_level);
            let listener = tokio::net::TcpListener::bind(&config.listen).await?;
            let (app, _) = zv::build_app(config, PlatformOverrides::default()).await?;
            tracing::info!(address = %listener.local_addr()?, "ZoneVast is up");
            zv::serve(listener, app, zv::shutdown_signal()).await?;
        }
        Command::Serve { service, listen } => {
            kernel::observe::init_tracing(&config.log_format, &config.log_level);
            let listener =
                tokio::net::TcpListener::bind(listen.as_deref().unwrap_or(&config.listen)).await?;
            let app = zv::build_service_app(config, &service).await?;
            tracing::info!(address = %listener.local_addr()?, service, "service is up");
            zv::serve(listener, app, zv::shutdown_signal()).await?;
        }
        Command::Migrate => {
            kernel::observe::init_tracing("pretty", &config.log_level);
            for (service, migrator) in zv::MIGRATIONS {
                let pool = kernel::db::open_service_pool(&config, service, migrator).await?;
                kernel::events::install(&pool).await?;
                pool.close().await;
                println!("migrated: {}", config.database_name(service));
            }
        }
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    email,
                    password,
                    superuser,
                },
        } => {
            let pool =
                kernel::db::open_service_pool(&config, zv_auth::SPEC.name, &zv_auth::MIGRATOR)
                    .await?;
            let user = zv_auth::create_user(&pool, &username, &email, &password, superuser)
                .await
                .map_err(|e| anyhow::anyhow!("{}", e.body()))?;
            println!("created user {} (id {})", user.username, user.id);
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => {
            let kid = kernel::jwt::KeyRing::rotate(&config.data_dir, config.jwt.refresh_ttl_secs)?;
            println!("new signing key {kid}; restart running processes to sign with it");
        }
    }
    Ok(())
}
