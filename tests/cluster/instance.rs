//! `civitas serve` as a child process, configured by `CIVITAS_*` variables
//! as an operator would, with its output in a log file. Dropping the guard
//! kills it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::services::{free_port, tail, wait_exit};

/// The operator's initial access token in every cluster test.
pub const REGISTRATION_TOKEN: &str = "cluster-initial-access-token-0123456789";

/// What the instances of one test share.
#[derive(Clone, Debug)]
pub struct Shared {
    /// The public issuer URL (the load balancer's, or a lone instance's).
    pub issuer: String,
    pub database_url: String,
    pub cache_url: String,
    pub cache_prefix: String,
    pub keys_dir: PathBuf,
    /// Where logs and outboxes go.
    pub dir: PathBuf,
}

pub struct Instance {
    pub port: u16,
    pub name: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Instance {
    /// Starts `civitas serve` on a new port and waits until `/readyz` is 200.
    pub async fn start(shared: &Shared, name: &str) -> Self {
        Self::start_on(shared, name, free_port()).await
    }

    /// Starts `civitas serve` on `port` and waits until `/readyz` is 200.
    pub async fn start_on(shared: &Shared, name: &str, port: u16) -> Self {
        let log = shared.dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_civitas"));
        // Only the settings below: an inherited CIVITAS_* variable (the
        // tests' own CIVITAS_SOAK_SECS, CIVITAS_TEST_POSTGRES) would be an
        // unknown setting, or change the instance.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("CIVITAS_") {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .arg("serve")
            .current_dir(&shared.dir)
            .env("CIVITAS_ISSUER", &shared.issuer)
            .env("CIVITAS_LISTEN", format!("127.0.0.1:{port}"))
            // Several instances on one host: each its own metrics port.
            .env("CIVITAS_METRICS_LISTEN", "127.0.0.1:0")
            .env("CIVITAS_DATABASE_URL", &shared.database_url)
            .env("CIVITAS_CACHE_URL", &shared.cache_url)
            .env("CIVITAS_CACHE_PREFIX", &shared.cache_prefix)
            .env("CIVITAS_KEYS_DIR", &shared.keys_dir)
            .env("CIVITAS_REGISTRATION_TOKEN", REGISTRATION_TOKEN)
            .env("CIVITAS_MAIL__OUTBOX_DIR", shared.dir.join("outbox"))
            .env("RUST_LOG", "warn,civitas=info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start civitas");
        let mut instance = Self {
            port,
            name: name.to_owned(),
            child: Some(child),
            log,
        };
        instance.wait_ready(Duration::from_secs(60)).await;
        instance
    }

    async fn wait_ready(&mut self, limit: Duration) {
        let http = crate::load::client();
        let start = Instant::now();
        loop {
            if http
                .get(self.url("/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!(
                    "{} exited during start-up ({status}):\n{}",
                    self.name,
                    tail(&self.log, 30)
                );
            }
            assert!(
                start.elapsed() < limit,
                "{} not ready within {limit:?}:\n{}",
                self.name,
                tail(&self.log, 30)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The instance's own address (not the issuer's).
    pub fn base(&self) -> String {
        format!("http://localhost:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Sends SIGTERM, as an orchestrator does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM {}", self.pid());
    }

    /// Waits for the process to exit, up to `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take().expect("running");
        let (child, status) = tokio::task::spawn_blocking(move || {
            let s = wait_exit(&mut child, limit);
            (child, s)
        })
        .await
        .expect("wait for the instance");
        if status.is_none() {
            self.child = Some(child);
        }
        status
    }

    pub fn log(&self) -> String {
        tail(&self.log, 40)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            if std::thread::panicking() {
                eprintln!(
                    "--- last lines of {} ({}) ---\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log, 25)
                );
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
