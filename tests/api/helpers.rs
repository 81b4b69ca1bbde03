//! The test harness: starts Civitas in-process on port 0 against a fresh
//! database (an SQLite file in a temporary directory, or a new PostgreSQL
//! database) and a fresh cache (in-process, or Redis under a unique prefix).
//!
//! PostgreSQL and Redis are expected on 127.0.0.1 (override with
//! `CIVITAS_TEST_POSTGRES` and `CIVITAS_TEST_REDIS`). Without them, tests on
//! the production stack print why they skip; with `CI=true` they fail instead.

use std::net::TcpStream;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use civitas::app::Civitas;
use civitas::clock::{SharedClock, SystemClock};
use civitas::config::Settings;
use civitas::startup::RunningServer;
use sqlx::Connection as _;

/// The operator's initial access token in every test instance.
pub const REGISTRATION_TOKEN: &str = "test-initial-access-token-0123456789";

/// Which storage and cache an instance runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stack {
    /// SQLite with the in-process cache: the embedded default.
    Embedded,
    /// PostgreSQL with Redis: production.
    Production,
}

fn postgres_admin_url() -> String {
    std::env::var("CIVITAS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("CIVITAS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn reachable(url: &str, default_port: u16) -> bool {
    let u = url::Url::parse(url).expect("service URL");
    let addr = format!(
        "{}:{}",
        u.host_str().unwrap_or("127.0.0.1"),
        u.port().unwrap_or(default_port)
    );
    addr.parse()
        .is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}

/// Are PostgreSQL and Redis here? Outside CI a missing service skips the
/// production-stack tests with a printed reason; under `CI=true` it fails them.
pub fn production_available() -> bool {
    static AVAILABLE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = AVAILABLE.get_or_init(|| {
        let mut missing = Vec::new();
        if !reachable(&postgres_admin_url(), 5432) {
            missing.push(format!("PostgreSQL at {}", postgres_admin_url()));
        }
        if !reachable(&redis_url(), 6379) {
            missing.push(format!("Redis at {}", redis_url()));
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join(" and "))
        }
    });
    match result {
        Ok(()) => true,
        Err(missing) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and {missing} is not reachable: these tests must run in CI")
        }
        Err(missing) => {
            eprintln!("SKIPPED: {missing} is not reachable (set CI=true to make this a failure)");
            false
        }
    }
}

/// A fresh, unique name.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        civitas::secrets::random_token(9)
            .to_lowercase()
            .replace(['-', '_'], "x")
    )
}

/// A PostgreSQL database made for one test, dropped when the test ends.
struct PgDatabase {
    name: String,
}

impl PgDatabase {
    async fn create() -> Self {
        sqlx::any::install_default_drivers();
        let name = unique("civitas_t");
        let mut conn = sqlx::AnyConnection::connect(&postgres_admin_url())
            .await
            .expect("connect to PostgreSQL");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        Self { name }
    }

    fn url(&self) -> String {
        let mut u = url::Url::parse(&postgres_admin_url()).expect("postgres URL");
        u.set_path(&self.name);
        u.to_string()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::AnyConnection::connect(&postgres_admin_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// What instances of one test share: the database, the cache, the keys.
pub struct TestEnv {
    #[allow(dead_code)]
    pub stack: Stack,
    pub dir: tempfile::TempDir,
    pub database_url: String,
    pub cache_url: String,
    pub cache_prefix: String,
    _pg: Option<PgDatabase>,
}

impl TestEnv {
    /// A fresh environment, or `None` if the stack's services are missing
    /// outside CI (the reason is printed).
    pub async fn new(stack: Stack) -> Option<Arc<Self>> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let (database_url, cache_url, pg) = match stack {
            Stack::Embedded => (
                format!("sqlite:{}", dir.path().join("civitas.db").display()),
                "memory".to_owned(),
                None,
            ),
            Stack::Production => {
                if !production_available() {
                    return None;
                }
                let pg = PgDatabase::create().await;
                (pg.url(), redis_url(), Some(pg))
            }
        };
        Some(Arc::new(Self {
            stack,
            database_url,
            cache_url,
            cache_prefix: unique("civitas-test"),
            dir,
            _pg: pg,
        }))
    }

    pub fn keys_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("keys")
    }

    /// Settings for an instance of this environment listening on `port`, with
    /// `extra` TOML appended.
    pub fn settings(&self, port: u16, extra: &str) -> Settings {
        self.settings_for(&format!("http://localhost:{port}"), port, extra)
    }

    /// Settings for an instance on `port` that serves `issuer` (instances
    /// behind one load balancer share the public issuer URL).
    pub fn settings_for(&self, issuer: &str, port: u16, extra: &str) -> Settings {
        let toml = format!(
            "issuer = \"{issuer}\"\nlisten = \"127.0.0.1:{port}\"\ndatabase_url = {:?}\n\
             cache_url = {:?}\ncache_prefix = {:?}\nkeys_dir = {:?}\nregistration_token = {:?}\n\
             mail.outbox_dir = {:?}\n{extra}",
            self.database_url,
            self.cache_url,
            self.cache_prefix,
            self.keys_dir().display().to_string(),
            REGISTRATION_TOKEN,
            self.dir.path().join("outbox").display().to_string(),
        );
        let mut settings = Settings::from_toml(&toml).expect("test settings");
        // Each test's exported checkpoints in its own directory, unless it
        // names a file.
        if settings.audit.checkpoint_file
            == civitas::config::AuditSettings::default().checkpoint_file
        {
            settings.audit.checkpoint_file = self.checkpoint_file();
        }
        settings
    }

    /// Where instances of this environment export their checkpoints.
    pub fn checkpoint_file(&self) -> std::path::PathBuf {
        self.dir.path().join("audit-checkpoints.jsonl")
    }

    /// Starts an instance on a new port.
    pub async fn spawn(self: &Arc<Self>) -> TestApp {
        self.spawn_with(Arc::new(SystemClock), "").await
    }

    /// Starts an instance with a given clock and extra settings.
    pub async fn spawn_with(self: &Arc<Self>, clock: SharedClock, extra: &str) -> TestApp {
        self.spawn_serving(None, clock, extra, false).await
    }

    /// Starts an instance that also serves `/metrics` on a port of its own
    /// ([`TestApp::metrics_url`]).
    pub async fn spawn_with_metrics(self: &Arc<Self>, clock: SharedClock) -> TestApp {
        self.spawn_serving(None, clock, "", true).await
    }

    /// Starts another instance of the service whose public issuer is
    /// `issuer`, as behind a load balancer; it listens on a port of its own.
    pub async fn spawn_behind(self: &Arc<Self>, issuer: &str) -> TestApp {
        self.spawn_serving(Some(issuer), Arc::new(SystemClock), "", false)
            .await
    }

    async fn spawn_serving(
        self: &Arc<Self>,
        issuer: Option<&str>,
        clock: SharedClock,
        extra: &str,
        metrics: bool,
    ) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let metrics = match metrics {
            true => Some(
                tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind port 0"),
            ),
            false => None,
        };
        let port = listener.local_addr().expect("local address").port();
        let settings = match issuer {
            Some(i) => self.settings_for(i, port, extra),
            None => self.settings(port, extra),
        };
        let server = civitas::startup::start_with_metrics(listener, metrics, settings, clock)
            .await
            .expect("start Civitas");
        TestApp {
            base: format!("http://localhost:{port}"),
            metrics_base: server.metrics_addr.map(|a| format!("http://{a}")),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("HTTP client"),
            server: Some(server),
            env: self.clone(),
        }
    }
}

/// One running instance and a client for it.
pub struct TestApp {
    /// The issuer URL (`http://localhost:PORT`).
    pub base: String,
    /// The metrics listener (`http://127.0.0.1:PORT`), if it has one.
    pub metrics_base: Option<String>,
    /// An HTTP client that does not follow redirects.
    pub http: reqwest::Client,
    #[allow(dead_code)]
    pub env: Arc<TestEnv>,
    server: Option<RunningServer>,
}

impl TestApp {
    /// Starts one instance on a fresh environment; `None` if skipped.
    pub async fn spawn(stack: Stack) -> Option<Self> {
        Some(TestEnv::new(stack).await?.spawn().await)
    }

    /// The instance's services.
    pub fn app(&self) -> &Arc<Civitas> {
        &self.server.as_ref().expect("running").app
    }

    /// Stops the instance gracefully.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown().await.expect("clean shutdown");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `path` on the metrics listener.
    #[allow(dead_code)]
    pub fn metrics_url(&self, path: &str) -> String {
        let base = self.metrics_base.as_deref().expect("a metrics listener");
        format!("{base}{path}")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let res = self.get(path).await;
        assert!(res.status().is_success(), "GET {path}: {}", res.status());
        res.json().await.expect("JSON")
    }

    /// POST /register with the initial access token.
    pub async fn register(&self, metadata: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url("/register"))
            .bearer_auth(REGISTRATION_TOKEN)
            .json(metadata)
            .send()
            .await
            .expect("POST /register")
    }

    /// Registers a client and returns the client information response.
    pub async fn register_ok(&self, metadata: &serde_json::Value) -> serde_json::Value {
        let res = self.register(metadata).await;
        let status = res.status();
        let body: serde_json::Value = res.json().await.expect("JSON");
        assert_eq!(status, 201, "registration failed: {body}");
        body
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            // Abort without waiting; the runtime is ending with the test.
            drop(s);
        }
    }
}

/// Runs a test on the embedded stack and on the production stack.
#[macro_export]
macro_rules! on_both_stacks {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite_with_the_in_process_cache() {
                    super::$name($crate::helpers::Stack::Embedded).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_postgres_with_redis() {
                    if $crate::helpers::production_available() {
                        super::$name($crate::helpers::Stack::Production).await;
                    }
                }
            }
        )*
    };
}
