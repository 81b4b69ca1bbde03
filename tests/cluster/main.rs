//! Scale-out and fault tolerance with real processes: `civitas serve`
//! instances on a private PostgreSQL cluster and a private Redis, behind
//! nginx, while the tests stop, restart and signal them under load.
//!
//! Every service is started by the test on ports of its own and killed when
//! the test ends (pass or fail), so the machine's shared PostgreSQL and Redis
//! are never touched. The tests run one at a time (they measure timing and
//! memory on a small machine). Without `redis-server`, the PostgreSQL server
//! binaries or nginx they print `SKIPPED: …`; with `CI=true` they fail.
//!
//! Run: `CI=true cargo test --test cluster -- --nocapture`. The soak lasts
//! `CIVITAS_SOAK_SECS` seconds (default 120 with `CI=true`, 20 otherwise).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod instance;
mod load;
mod services;

mod postgres_restart;
mod redis_outage;
mod scale_out;
mod sigterm;
mod soak;

use civitas::testkit::nginx::Nginx;
use instance::{Instance, Shared};
use services::{Postgres, Redis};

/// One test at a time: they start processes, measure latency and memory.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The private services of one test and the settings its instances share.
pub struct Stack {
    pub pg: Postgres,
    pub redis: Redis,
    pub shared: Shared,
    _dir: tempfile::TempDir,
}

impl Stack {
    /// Starts PostgreSQL and Redis for a test whose public issuer is on
    /// `issuer_port` (the load balancer's, or a lone instance's), or `None`
    /// (printed) if the tools are missing outside CI.
    pub fn start(issuer_port: u16) -> Option<Self> {
        if !services::tools_present(&services::missing_tools()) {
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("civitas-cluster")
            .tempdir()
            .expect("temporary directory");
        let pg = Postgres::start();
        let redis = Redis::start();
        let shared = Shared {
            issuer: format!("http://localhost:{issuer_port}"),
            database_url: pg.url(),
            cache_url: redis.url(),
            cache_prefix: "civitas".to_owned(),
            keys_dir: dir.path().join("keys"),
            dir: dir.path().to_path_buf(),
        };
        Some(Self {
            pg,
            redis,
            shared,
            _dir: dir,
        })
    }
}

/// Two (or `n`) instances behind nginx on one stack.
pub struct Cluster {
    pub instances: Vec<Instance>,
    pub lb: Nginx,
    pub stack: Stack,
}

impl Cluster {
    pub async fn start(n: usize) -> Option<Self> {
        let lb_port = services::free_port();
        let stack = Stack::start(lb_port)?;
        let mut instances = Vec::new();
        // One after the other: the first generates the shared keys.
        for i in 0..n {
            instances.push(Instance::start(&stack.shared, &format!("instance-{i}")).await);
        }
        let upstreams: Vec<std::net::SocketAddr> = instances
            .iter()
            .map(|i| ([127, 0, 0, 1], i.port).into())
            .collect();
        let lb = Nginx::start(([127, 0, 0, 1], lb_port).into(), &upstreams).expect("nginx");
        Some(Self {
            instances,
            lb,
            stack,
        })
    }

    /// The load balancer's URL, which is also the issuer.
    pub fn base(&self) -> String {
        self.lb.base()
    }
}

/// Takes the one-test-at-a-time lock (a tokio lock: never poisoned when
/// another test failed, and fine to hold across `.await`).
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    SERIAL.lock().await
}
