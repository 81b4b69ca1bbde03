//! Starting what the benchmark measures: one or more `civitas` processes
//! (the binary next to this one) on a fresh database, sharing a keys
//! directory, and nginx in front when there are several. Their CPU time and
//! memory are read from /proc.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use civitas::testkit::nginx::Nginx;

pub const REGISTRATION_TOKEN: &str = "bench-registration-token-0123456789";

/// User plus system CPU seconds of a process.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// A /proc/<pid>/status field in KiB (`VmRSS:`, `VmHWM:`).
pub fn kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn psql(sql: &str) {
    let out = Command::new("psql")
        .args(["-h", "127.0.0.1", "-U", "postgres", "-q", "-c", sql])
        .output()
        .expect("psql (PostgreSQL client)");
    assert!(
        out.status.success() || sql.starts_with("DROP"),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One `civitas serve` child.
pub struct Instance {
    child: Child,
    pub addr: SocketAddr,
    pub startup_ms: u128,
    env: Vec<(String, String)>,
}

impl Instance {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn spawn(env: &[(String, String)], addr: SocketAddr) -> Self {
        Self {
            child: Self::spawn_child(env, addr),
            addr,
            startup_ms: 0,
            env: env.to_vec(),
        }
    }

    fn spawn_child(env: &[(String, String)], addr: SocketAddr) -> Child {
        let exe = std::env::current_exe()
            .expect("own path")
            .with_file_name("civitas");
        Command::new(exe)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("CIVITAS_LISTEN", addr.to_string())
            // Several instances on one host: each its own metrics port.
            .env("CIVITAS_METRICS_LISTEN", "127.0.0.1:0")
            // The server's log level; `BENCH_SERVER_LOG=sqlx::query=debug`
            // shows every statement, for counting round trips.
            .env(
                "RUST_LOG",
                std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("start civitas (build it first: cargo build --release --bins)")
    }

    /// Waits for /readyz; the time from spawn to ready.
    async fn ready(&mut self, started: Instant) {
        let http = reqwest::Client::new();
        loop {
            let ok = http
                .get(format!("http://{}/readyz", self.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("civitas exited with {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "civitas did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        self.startup_ms = started.elapsed().as_millis();
    }

    /// Stops it (SIGKILL; the database stays) and starts it again on the
    /// same database and keys: the start-up time on an existing database.
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = Instant::now();
        self.child = Self::spawn_child(&self.env, self.addr);
        self.ready(started).await;
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The servers under test and where to reach them.
pub struct Cluster {
    pub instances: Vec<Instance>,
    pub nginx: Option<Nginx>,
    /// Where the load goes: the only instance, or nginx.
    pub base: String,
    /// The issuer (its host is the passkeys' relying-party id).
    pub issuer: String,
    database: Option<String>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` instances on `backend` (`sqlite` with the in-process
    /// cache, or `postgres` with Redis); with more than one, nginx in front.
    pub async fn start(backend: &str, n: usize) -> Self {
        assert!(
            n == 1 || backend == "postgres",
            "several instances need the shared backend: --backend postgres"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let front = free_port();
        let issuer = format!("http://localhost:{front}");
        let (db, cache, database) = if backend == "postgres" {
            let name = format!("civitas_bench_{}", std::process::id());
            psql(&format!("DROP DATABASE IF EXISTS {name}"));
            psql(&format!("CREATE DATABASE {name}"));
            (
                format!("postgres://postgres@127.0.0.1:5432/{name}?sslmode=disable"),
                "redis://127.0.0.1:6379".to_owned(),
                Some(name),
            )
        } else {
            (
                format!("sqlite:{}", dir.path().join("bench.db").display()),
                "memory".to_owned(),
                None,
            )
        };
        let env: Vec<(String, String)> = [
            ("CIVITAS_ISSUER", issuer.clone()),
            ("CIVITAS_DATABASE_URL", db),
            ("CIVITAS_CACHE_URL", cache),
            (
                "CIVITAS_CACHE_PREFIX",
                format!("bench{}", std::process::id()),
            ),
            (
                "CIVITAS_KEYS_DIR",
                dir.path().join("keys").display().to_string(),
            ),
            ("CIVITAS_REGISTRATION_TOKEN", REGISTRATION_TOKEN.to_owned()),
            (
                "CIVITAS_MAIL__OUTBOX_DIR",
                dir.path().join("outbox").display().to_string(),
            ),
            // The load comes from one address; the benchmark measures
            // throughput, not the per-address abuse limits.
            ("CIVITAS_LIMITS__SIGNIN_PER_MINUTE", "100000000".to_owned()),
            (
                "CIVITAS_LIMITS__REGISTER_PER_MINUTE",
                "100000000".to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut instances = Vec::new();
        for _ in 0..n {
            let port = if n == 1 { front } else { free_port() };
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let started = Instant::now();
            let mut instance = Instance::spawn(&env, addr);
            // The first start generates the shared keys; the others read them.
            instance.ready(started).await;
            instances.push(instance);
        }
        let nginx = (n > 1).then(|| {
            let upstreams: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();
            Nginx::start(([127, 0, 0, 1], front).into(), &upstreams).expect("nginx")
        });
        Self {
            instances,
            nginx,
            base: format!("http://127.0.0.1:{front}"),
            issuer,
            database,
            _dir: dir,
        }
    }

    /// Server CPU seconds so far, summed over the instances.
    pub fn cpu_seconds(&self) -> f64 {
        self.instances.iter().map(|i| cpu_seconds(i.pid())).sum()
    }

    /// nginx's CPU seconds so far (0 without it).
    pub fn lb_cpu_seconds(&self) -> f64 {
        self.nginx.as_ref().map_or(0.0, |n| cpu_seconds(n.pid()))
    }

    /// Resident memory now, summed over the instances (KiB).
    pub fn rss_kib(&self) -> u64 {
        self.instances.iter().map(|i| kib(i.pid(), "VmRSS:")).sum()
    }

    /// Peak resident memory of the largest instance (KiB).
    pub fn peak_rss_kib(&self) -> u64 {
        self.instances
            .iter()
            .map(|i| kib(i.pid(), "VmHWM:"))
            .max()
            .unwrap_or(0)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nginx = None;
        self.instances.clear();
        if let Some(name) = &self.database {
            psql(&format!("DROP DATABASE IF EXISTS {name}"));
        }
    }
}
