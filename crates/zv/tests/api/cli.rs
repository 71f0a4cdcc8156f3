//! The `zv` binary itself: configuration printing, user creation, start-up and graceful
//! shutdown.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{server_url, test_config, TestApp, PASSWORD};

fn zv() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zv"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ZV_LOG_FORMAT", "json");
    cmd
}

#[test]
fn config_prints_the_effective_values_without_secrets() {
    let output = zv()
        .arg("config")
        .env(
            "ZV_DATABASE_URL",
            "postgres://zv:hunter2@db.internal:5432/postgres",
        )
        .env(
            "ZV_MAIL__SMTP_URL",
            "smtps://mailer:s3cr3t@smtp.example.com",
        )
        .env("ZV_JWT__ACCESS_TTL_SECS", "600")
        .output()
        .expect("zv config");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("hunter2") && !text.contains("s3cr3t"),
        "{text}"
    );
    let config: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(
        config["database_url"],
        "postgres://zv:***@db.internal:5432/postgres"
    );
    assert_eq!(config["jwt"]["access_ttl_secs"], 600);
    let bad = zv()
        .arg("config")
        .env("ZV_DATABASE_PREFIX", "bad-prefix;")
        .output()
        .expect("zv config");
    assert!(
        !bad.status.success(),
        "invalid configuration is refused at start-up"
    );
}

#[tokio::test]
async fn user_create_makes_an_active_user_the_platform_accepts() {
    let app = TestApp::spawn().await;
    let config = app.config();
    let output = zv()
        .args([
            "user",
            "create",
            "--username",
            "founder",
            "--email",
            "founder@example.com",
            "--superuser",
        ])
        .env("ZV_NEW_USER_PASSWORD", PASSWORD)
        .env("ZV_DATABASE_URL", server_url())
        .env("ZV_DATABASE_PREFIX", &config.database_prefix)
        .env("ZV_DATA_DIR", &config.data_dir)
        .output()
        .expect("zv user create");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (access, _) = app.login("founder").await;
    let (_, me, _) = app.get("/api/v1/auth/auth/user/", Some(&access)).await;
    assert_eq!(
        (me["is_superuser"].clone(), me["is_verified"].clone()),
        (json!(true), json!(true))
    );
    let again = zv()
        .args([
            "user",
            "create",
            "--username",
            "FOUNDER",
            "--email",
            "x@example.com",
            "--password",
            PASSWORD,
        ])
        .env("ZV_DATABASE_URL", server_url())
        .env("ZV_DATABASE_PREFIX", &config.database_prefix)
        .env("ZV_DATA_DIR", &config.data_dir)
        .output()
        .expect("zv user create");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
}

#[tokio::test]
async fn up_serves_and_shuts_down_gracefully_on_sigterm() {
    let config = test_config();
    let mut child = zv()
        .arg("up")
        .env("ZV_LISTEN", "127.0.0.1:0")
        .env("ZV_DATABASE_URL", server_url())
        .env("ZV_DATABASE_PREFIX", &config.database_prefix)
        .env("ZV_DATA_DIR", &config.data_dir)
        .stderr(Stdio::piped())
        .spawn()
        .expect("zv up");
    // The start-up log line names the bound address; the pipe is drained until the process ends.
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&line) {
                if let Some(address) = json["address"].as_str() {
                    let _ = tx.send(address.to_owned());
                }
            }
        }
    });
    let address = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("an address line");
    let health = reqwest::get(format!("http://{address}/health/"))
        .await
        .expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    let ready: serde_json::Value = reqwest::get(format!("http://{address}/ready/"))
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["broker"], "in_process", "{ready}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "zv up did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit: {status}");
    // Clean up the databases this process created.
    let cleanup = TestApp::spawn_with(|c| {
        c.database_prefix = config.database_prefix.clone();
        c.data_dir = config.data_dir.clone();
    })
    .await;
    drop(cleanup);
}

/// SMTP mode against a real SMTP server: Python's standard-library debugging server, which
/// prints every message it receives.
#[tokio::test]
async fn smtp_mode_delivers_the_verification_code() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port();
    let mut server = Command::new("python3")
        .args([
            "-W",
            "ignore",
            "-u",
            "-m",
            "smtpd",
            "-n",
            "-c",
            "DebuggingServer",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m smtpd (Python ≤ 3.11)");
    let stdout = server.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let app = TestApp::spawn_with_configured_mailer(|c| {
        c.mail.mode = "smtp".into();
        c.mail.smtp_url = Some(kernel::config::Secret::new(format!(
            "smtp://127.0.0.1:{port}"
        )));
    })
    .await;
    let (status, body, _) = app
        .post(
            "/api/v1/auth/register/",
            json!({"username": "mailme", "email": "mailme@example.com", "password": PASSWORD}),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut received = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            received.push(line);
            if received.iter().any(|l| l.contains("Your code is")) {
                break;
            }
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let text = received.join("\n");
    assert!(text.contains("mailme@example.com"), "{text}");
    assert!(
        text.contains("Subject: Verify your ZoneVast account"),
        "{text}"
    );
    let code: String = text
        .split("Your code is ")
        .nth(1)
        .map(|rest| rest.chars().take(6).collect())
        .unwrap_or_default();
    let (status, _, _) = app
        .post(
            "/api/v1/auth/verify-otp/",
            json!({"email": "mailme@example.com", "otp": code}),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the mailed code activates the account"
    );
}

#[test]
fn events_replay_needs_a_broker_and_moves_dead_letters() {
    let output = zv()
        .args(["events", "replay-dead", "--consumer", "auth"])
        .output()
        .expect("zv");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("no broker configured"),
        "{output:?}"
    );
    // Against RabbitMQ, a consumer without queues in that namespace is named in the error
    // (the broker tests replay real dead letters).
    let namespace = format!("zvtest.cli{}", std::process::id());
    let output = zv()
        .args(["events", "replay-dead", "--consumer", "nobody"])
        .env("ZV_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
        .env("ZV_AMQP_NAMESPACE", &namespace)
        .output()
        .expect("zv");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains(&format!("no dead-letter queue {namespace}.nobody.dead")),
        "{output:?}"
    );
}

#[tokio::test]
async fn a_database_on_this_machine_is_reached_without_tls_unless_asked() {
    let app = TestApp::spawn().await;
    let ssl = |pool: sqlx::PgPool| async move {
        sqlx::query_scalar::<_, bool>("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&pool)
            .await
            .expect("pg_stat_ssl")
    };
    let config = app.platform.config();
    let pool = crate::harness::service_pool(config, "order").await;
    assert!(!ssl(pool).await, "a loopback server, no sslmode: plain");
    // Asked for in the URL: the server's TLS is used (the test server offers it).
    let mut asked = config.clone();
    asked.database_url = kernel::config::Secret::new(format!("{}?sslmode=require", server_url()));
    let offered: bool = sqlx::query_scalar("SELECT current_setting('ssl') = 'on'")
        .fetch_one(&crate::harness::service_pool(config, "order").await)
        .await
        .expect("ssl setting");
    if offered {
        let pool = crate::harness::service_pool(&asked, "order").await;
        assert!(ssl(pool).await, "sslmode=require in the URL is honoured");
    }
}

/// Pooled connections are not checked with a round trip before each use (only after sitting
/// unused for `kernel::db::CHECK_IDLE_AFTER`): one the server dropped moments after its last
/// use is still replaced when next taken, and the statement runs.
#[tokio::test]
async fn a_pooled_connection_the_server_dropped_is_replaced() {
    let app = TestApp::spawn().await;
    let config = app.platform.config();
    let pool = crate::harness::service_pool(config, "order").await;
    let other = crate::harness::service_pool(config, "order").await;
    let backend = || async {
        sqlx::query_scalar::<_, i32>("SELECT pg_backend_pid()")
            .fetch_one(&pool)
            .await
    };
    let first = backend().await.expect("first statement");
    let dropped: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1, 5000)")
        .bind(first)
        .fetch_one(&other)
        .await
        .expect("terminate");
    assert!(dropped, "the backend is gone");
    let second = backend().await.expect("a live connection");
    assert_ne!(first, second);
}
