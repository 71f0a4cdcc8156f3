//! Starts the real app on port 0 with its own databases, data directory and mail outbox.

use std::path::PathBuf;
use std::sync::Arc;

use kernel::config::{Config, Secret};
use kernel::mailer::MemoryMailer;
use kernel::platform::PlatformOverrides;
use kernel::service::MountedService;
use kernel::Platform;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::PgPool;

pub const PASSWORD: &str = "Corr3ct-horse";

pub fn server_url() -> String {
    std::env::var("ZV_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn redis_url() -> String {
    std::env::var("ZV_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub mailer: Arc<MemoryMailer>,
    pub platform: Platform,
    pub pool: PgPool,
    owner: bool,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

/// Test defaults: limits high enough not to interfere unless a test lowers them.
pub fn test_config() -> Config {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut config = Config {
        database_url: Secret::new(server_url()),
        database_prefix: format!("t{}_", &id[..12]),
        database_max_connections: 5,
        data_dir: std::env::temp_dir().join(format!("zv-test-{id}")),
        redis_namespace: format!("zvtest{}", &id[..12]),
        ..Config::default()
    };
    config.rate_limit.anonymous_per_minute = 10_000;
    config.rate_limit.user_per_minute = 10_000;
    config.rate_limit.login_per_minute = 1_000;
    config.rate_limit.login_ip_per_minute = 1_000;
    config.rate_limit.register_per_hour = 1_000;
    config.cors_allowed_origins = vec!["https://shop.example.com".into()];
    config
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_config(test_config(), true).await
    }

    pub async fn spawn_with(change: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        change(&mut config);
        Self::spawn_config(config, true).await
    }

    /// With extra services mounted next to the platform's (gateway failure tests).
    pub async fn spawn_with_services(extra: fn(&Platform, PgPool) -> Vec<MountedService>) -> Self {
        let mut config = test_config();
        // Short enough for the slow-service test, long enough for a login (its password hash)
        // on a loaded machine.
        config.upstream_timeout_secs = 5;
        let mailer = Arc::new(MemoryMailer::default());
        let platform = Platform::new(
            config,
            PlatformOverrides {
                mailer: Some(mailer.clone()),
            },
        )
        .await
        .expect("platform");
        let auth = zv_auth::build(&platform).await.expect("auth");
        let pool = auth_pool(platform.config()).await;
        let router = zv::build_app_with(platform.clone(), extra(&platform, auth.pool))
            .await
            .expect("app");
        Self::serve(router, platform, mailer, pool, true).await
    }

    /// A second instance sharing `config` (same databases, keys and Redis namespace).
    pub async fn spawn_sibling(config: Config) -> Self {
        Self::spawn_config(config, false).await
    }

    /// With the mailer the configuration asks for (no in-memory outbox).
    pub async fn spawn_with_configured_mailer(change: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        change(&mut config);
        let (router, platform) = zv::build_app(config, PlatformOverrides::default())
            .await
            .expect("app starts");
        let pool = auth_pool(platform.config()).await;
        Self::serve(
            router,
            platform,
            Arc::new(MemoryMailer::default()),
            pool,
            true,
        )
        .await
    }

    async fn spawn_config(config: Config, owner: bool) -> Self {
        let mailer = Arc::new(MemoryMailer::default());
        let (router, platform) = zv::build_app(
            config,
            PlatformOverrides {
                mailer: Some(mailer.clone()),
            },
        )
        .await
        .expect("app starts");
        let pool = auth_pool(platform.config()).await;
        Self::serve(router, platform, mailer, pool, owner).await
    }

    async fn serve(
        router: axum::Router,
        platform: Platform,
        mailer: Arc<MemoryMailer>,
        pool: PgPool,
        owner: bool,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(zv::serve(listener, router, async {
            let _ = rx.await;
        }));
        TestApp {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            mailer,
            platform,
            pool,
            owner,
            shutdown: Some(tx),
        }
    }

    pub fn config(&self) -> Config {
        self.platform.config().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> (StatusCode, Value, HeaderMap) {
        let response = req.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, body, headers)
    }

    pub async fn post(
        &self,
        path: &str,
        body: Value,
        token: Option<&str>,
    ) -> (StatusCode, Value, HeaderMap) {
        let mut req = self.client.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value, HeaderMap) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        self.send(req).await
    }

    /// Any method with a JSON body (none for `Value::Null`) and a bearer token.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
        token: &str,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if !body.is_null() {
            req = req.json(&body);
        }
        let (status, body, _) = self.send(req).await;
        (status, body)
    }

    pub async fn project_pool(&self) -> PgPool {
        service_pool(self.platform.config(), "project").await
    }

    /// An active, verified user, as `zv user create` makes them.
    pub async fn user(&self, username: &str, superuser: bool) -> i64 {
        zv_auth::create_user(
            &self.pool,
            username,
            &format!("{username}@example.com"),
            PASSWORD,
            superuser,
        )
        .await
        .expect("user created")
        .id
    }

    /// Logs in and returns (access, refresh).
    pub async fn login(&self, username: &str) -> (String, String) {
        let (status, body, _) = self
            .post(
                "/api/v1/auth/auth/token/",
                json!({"username": username, "password": PASSWORD}),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login failed: {body}");
        (s(&body["access"]), s(&body["refresh"]))
    }

    /// The verified claims of an access token.
    pub fn claims(&self, access: &Value) -> kernel::jwt::Claims {
        self.platform
            .keys()
            .verify(&s(access), kernel::jwt::TokenType::Access)
            .expect("valid access token")
    }

    /// The code in the newest mail to `email`.
    pub fn last_code(&self, email: &str) -> String {
        let mail = self
            .mailer
            .sent()
            .into_iter()
            .rev()
            .find(|m| m.to == email)
            .expect("a mail");
        mail.body
            .chars()
            .filter(char::is_ascii_digit)
            .take(6)
            .collect()
    }
}

pub fn s(v: &Value) -> String {
    v.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("not a string: {v}"))
}

async fn auth_pool(config: &Config) -> PgPool {
    service_pool(config, "auth").await
}

/// A small pool on a service's database (tests reach behind the API only to set up time).
pub async fn service_pool(config: &Config, service: &str) -> PgPool {
    let options =
        kernel::db::connect_options(config, &config.database_name(service)).expect("options");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("pool")
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if !self.owner {
            return;
        }
        let config = self.platform.config().clone();
        let data_dir: PathBuf = config.data_dir.clone();
        // Runs outside the test's runtime, which is shutting down.
        let _ = std::thread::spawn(move || {
            let _ = std::fs::remove_dir_all(&data_dir);
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                use sqlx::Connection;
                let Ok(options) = server_url().parse::<sqlx::postgres::PgConnectOptions>() else {
                    return;
                };
                if let Ok(mut conn) = sqlx::PgConnection::connect_with(&options).await {
                    for (service, _) in zv::MIGRATIONS {
                        let db = config.database_name(service);
                        let _ =
                            sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                                .execute(&mut conn)
                                .await;
                    }
                }
            });
        })
        .join();
    }
}

/// A tenant resource as the cross-tenant check sees it: a record made in project A.
pub struct TenantResource {
    pub name: &'static str,
    /// A list the outsider can ask for (their own project's, or one naming project A).
    pub lists: Vec<String>,
    /// The record's id as list results show it.
    pub id: Value,
    /// Paths naming the record (A's URL, and the outsider's own URL with A's id).
    pub items: Vec<String>,
    /// Whether GET on the item paths is a route.
    pub readable: bool,
    /// Public catalogue data: anyone naming project A in `X-Project-ID` may read its public
    /// rows, so only the outsider's own scope must not show it.
    pub public_read: bool,
    /// An update the outsider tries (method, body).
    pub update: Option<(reqwest::Method, Value)>,
    pub delete: bool,
    pub restore: Option<String>,
}

/// Proves that a user of project B can neither list, read, update, delete nor restore a record
/// of project A (404, or absent from their lists), with their project token or by naming A in
/// `X-Project-ID`, and that the record is unchanged for its owner afterwards.
pub struct CrossTenant<'a> {
    pub app: &'a TestApp,
    /// Token of a member of project A.
    pub owner: &'a str,
    /// The same record's path as A's member reads it.
    pub owner_item: String,
    /// Token of a user of project B only (scoped to B).
    pub outsider: &'a str,
    pub project_a: i64,
}

impl CrossTenant<'_> {
    fn stable(body: &Value) -> Value {
        let mut body = body.clone();
        if let Some(map) = body.as_object_mut() {
            // Signed URLs are fresh on every read.
            map.remove("file_url");
        }
        body
    }

    pub async fn check(&self, res: &TenantResource) {
        use reqwest::Method;
        let app = self.app;
        let (status, before, _) = app.get(&self.owner_item, Some(self.owner)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: the owner reads it first: {before}",
            res.name
        );
        for list in &res.lists {
            let (status, body, _) = app.get(list, Some(self.outsider)).await;
            match status {
                StatusCode::OK => {
                    let rows = body["results"]
                        .as_array()
                        .or(body.as_array())
                        .cloned()
                        .unwrap_or_default();
                    assert!(
                        !rows.iter().any(|r| r["id"] == res.id),
                        "{}: {list} shows project A's record to an outsider: {body}",
                        res.name
                    );
                }
                StatusCode::NOT_FOUND | StatusCode::FORBIDDEN => {}
                other => panic!("{}: list {list} answered {other}: {body}", res.name),
            }
        }
        for item in &res.items {
            if res.readable {
                let (status, body, _) = app.get(item, Some(self.outsider)).await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{}: GET {item}: {body}",
                    res.name
                );
            }
            if res.readable && !res.public_read {
                let req = app
                    .client
                    .get(app.url(item))
                    .bearer_auth(self.outsider)
                    .header("X-Project-ID", self.project_a);
                let (status, body, _) = app.send(req).await;
                // Member routes tell a signed-in outsider they are not a member. Two kinds are
                // not: the project service's (the path names the project, and a non-member
                // does not learn it exists) and orders (their routes serve customers too:
                // another's order is not found).
                let answer = (status, body["code"].clone());
                let member_only = (StatusCode::FORBIDDEN, Value::from("not_project_member"));
                let not_found = (StatusCode::NOT_FOUND, Value::from("not_found"));
                let fine = if res.name == "orders" {
                    answer == not_found
                } else if item.starts_with("/api/v1/project") {
                    answer == not_found || answer == member_only
                } else {
                    answer == member_only
                };
                assert!(fine, "{}: GET {item} naming project A: {body}", res.name);
            }
            if let Some((method, body)) = &res.update {
                let (status, out) = app
                    .call(method.clone(), item, body.clone(), self.outsider)
                    .await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{}: {method} {item}: {out}",
                    res.name
                );
            }
            if res.delete {
                let (status, out) = app
                    .call(Method::DELETE, item, Value::Null, self.outsider)
                    .await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{}: DELETE {item}: {out}",
                    res.name
                );
            }
        }
        if let Some(restore) = &res.restore {
            let (status, out) = app
                .call(Method::POST, restore, Value::Null, self.outsider)
                .await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{}: restore: {out}",
                res.name
            );
        }
        let (status, after, _) = app.get(&self.owner_item, Some(self.owner)).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}: still there for its owner",
            res.name
        );
        assert_eq!(
            Self::stable(&before),
            Self::stable(&after),
            "{}: unchanged",
            res.name
        );
    }
}

/// Polls `check` every 50 ms until it gives a value (20 s at most): for effects that travel
/// through events (in-process relays in the background, or the broker).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    for _ in 0..400 {
        if let Some(v) = check().await {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("not within 20 s: {what}");
}

/// GET `path` as `owner`, which must answer 200.
pub async fn read(app: &TestApp, owner: &crate::projects::Owner, path: &str) -> Value {
    let (status, body, _) = app.get(path, Some(&owner.access)).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Reads `path` as `owner` until `check` holds (see [`eventually`]).
pub async fn until(
    app: &TestApp,
    owner: &crate::projects::Owner,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    eventually(what, || async {
        let body = read(app, owner, path).await;
        check(&body).then_some(body)
    })
    .await
}

/// (on hand, held) over a product's stock rows.
pub async fn stock_of(app: &TestApp, owner: &crate::projects::Owner, product: i64) -> (i64, i64) {
    let rows = read(
        app,
        owner,
        &format!("/api/v1/inventory/stock/?product_id={product}"),
    )
    .await;
    rows["results"]
        .as_array()
        .expect("rows")
        .iter()
        .fold((0, 0), |(q, r), row| {
            (
                q + row["quantity"].as_i64().unwrap_or(0),
                r + row["reserved_quantity"].as_i64().unwrap_or(0),
            )
        })
}

/// [`eventually`] for a condition.
pub async fn eventually_true<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually(what, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// A service's context as its background jobs see it (pool and outbox of `service`), for tests
/// that run one round of a job (a sweeper, a reconciler) themselves.
pub async fn service_context(
    app: &TestApp,
    service: &'static str,
) -> kernel::service::ServiceContext {
    let pool = service_pool(app.platform.config(), service).await;
    kernel::service::ServiceContext {
        platform: app.platform.clone(),
        outbox: kernel::events::Outbox::new(pool.clone(), service, app.platform.events().clone()),
        pool,
    }
}

/// Counts the SQL statements sqlx runs, except those of the outbox (relays poll on a timer)
/// (each test is its own process under nextest).
pub fn count_queries() -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    count_statements(true)
}

/// Counts every SQL statement sqlx runs, or (`skip_outbox`) all but those naming the outbox.
pub fn count_statements(skip_outbox: bool) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    count_statements_split(skip_outbox).0
}

/// [`count_statements`], and apart those run while answering a request (inside its
/// `request` span: the handler and the in-process calls it makes, not the relays and
/// consumers that follow).
pub fn count_statements_split(
    skip_outbox: bool,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::registry::LookupSpan;
    struct Counter {
        all: Arc<AtomicUsize>,
        in_requests: Arc<AtomicUsize>,
        skip_outbox: bool,
    }
    impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> tracing_subscriber::Layer<S> for Counter {
        fn on_event(
            &self,
            event: &tracing::Event<'_>,
            ctx: tracing_subscriber::layer::Context<'_, S>,
        ) {
            if event.metadata().target() != "sqlx::query" {
                return;
            }
            struct Text(String);
            impl tracing::field::Visit for Text {
                fn record_debug(&mut self, _: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                    self.0.push_str(&format!("{value:?} "));
                }
                fn record_str(&mut self, _: &tracing::field::Field, value: &str) {
                    self.0.push_str(value);
                    self.0.push(' ');
                }
            }
            let mut text = Text(String::new());
            event.record(&mut text);
            let in_request = ctx
                .event_scope(event)
                .is_some_and(|mut scope| scope.any(|span| span.name() == "request"));
            // PRINT_SQL=1 (with --no-capture) shows what is counted.
            if std::env::var_os("PRINT_SQL").is_some() {
                let origin = if in_request { "request" } else { "background" };
                eprintln!("SQL ({origin}): {}", text.0);
            }
            if !(self.skip_outbox && text.0.contains("zv_outbox")) {
                self.all.fetch_add(1, SeqCst);
                if in_request {
                    self.in_requests.fetch_add(1, SeqCst);
                }
            }
        }
    }
    let all = Arc::new(AtomicUsize::new(0));
    let in_requests = Arc::new(AtomicUsize::new(0));
    let subscriber = tracing_subscriber::registry().with(Counter {
        all: all.clone(),
        in_requests: in_requests.clone(),
        skip_outbox,
    });
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test process");
    (all, in_requests)
}
