//! Private services for one test: a Redis server, a PostgreSQL cluster and an
//! nginx load balancer, each a child process of the test on ports of its own,
//! so that the machine's shared PostgreSQL and Redis (used by the `api` test
//! binary) are never stopped or restarted. Each is a guard: dropping it kills
//! the process, even when the test fails.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Is this a CI run (`CI=true`), where a missing tool is a failure?
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `true` if every tool in `missing` is present; otherwise panics under
/// `CI=true`, or prints why the test skips and returns `false`.
pub fn tools_present(missing: &[String]) -> bool {
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    assert!(
        !ci(),
        "CI=true and {what} missing: the cluster tests must run in CI (.ci/run installs them)"
    );
    eprintln!("SKIPPED: {what} missing (set CI=true to make this a failure)");
    false
}

/// The tools every cluster test needs, or the names of those missing.
pub fn missing_tools() -> Vec<String> {
    let mut missing = Vec::new();
    if which("redis-server").is_none() {
        missing.push("redis-server".to_owned());
    }
    if postgres_bin_dir().is_none() {
        missing.push("PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin)".to_owned());
    }
    if civitas::testkit::nginx::binary().is_none() {
        missing.push("nginx (/usr/sbin/nginx)".to_owned());
    }
    missing
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The newest `/usr/lib/postgresql/<version>/bin` that holds `initdb`.
pub fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind port 0")
        .local_addr()
        .expect("local address")
        .port()
}

/// Polls `ready` every 50 ms until it holds, or panics after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ready() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn accepts(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// Waits for a child to exit, up to `limit`; `None` if it is still running.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if start.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs a command to completion within `limit`; its status and output.
fn run(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd:?}: {e}"));
    let status = wait_exit(&mut child, limit);
    let mut out = String::new();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
        out.push_str("(timed out) ");
    }
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    (status.is_some_and(|s| s.success()), out)
}

/// The last `n` lines of a log file, for failure messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A private `redis-server` that keeps nothing on disk. It can be stopped
/// and started again on the same port.
pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            dir: tempfile::tempdir().expect("temporary directory"),
            child: None,
        };
        r.resume();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            Duration::from_millis(200),
        ) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// Starts the server (again) on its port and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "Redis is already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .arg("--logfile")
            .arg(self.dir.path().join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        wait_until("Redis answers PING", Duration::from_secs(10), || {
            self.ping()
        });
    }

    /// Kills the server and waits until its port is closed.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        wait_until("Redis port closed", Duration::from_secs(5), || {
            !accepts(self.port)
        });
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A private PostgreSQL cluster (trust authentication for `postgres`) in a
/// temporary directory, run by the `postgres` user when the test runs as root.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    running: bool,
}

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

impl Postgres {
    pub fn start() -> Self {
        let bin = postgres_bin_dir().expect("PostgreSQL binaries");
        let dir = tempfile::Builder::new()
            .prefix("civitas-pg")
            .tempdir()
            .expect("temporary directory");
        if running_as_root() {
            let (ok, out) = run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path()),
                Duration::from_secs(10),
            );
            assert!(ok, "chown the PostgreSQL directory: {out}");
        }
        let mut pg = Self {
            port: free_port(),
            bin,
            dir,
            running: false,
        };
        let data = pg.data();
        let (ok, out) = run(
            pg.as_postgres("initdb").arg("-D").arg(&data).args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]),
            Duration::from_secs(60),
        );
        assert!(ok, "initdb: {out}");
        pg.ctl("start");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_postgres(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    /// `pg_ctl start`, `stop` (fast) or `restart` (fast), waiting for it.
    pub fn ctl(&mut self, action: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=100",
            self.port,
            self.dir.path().display()
        );
        let mut cmd = self.as_postgres("pg_ctl");
        cmd.arg("-D")
            .arg(self.data())
            .args(["-o", &opts, "-w", "-t", "60", "-m", "fast", "-l"])
            .arg(self.dir.path().join("postgres.log"))
            .arg(action);
        let (ok, out) = run(&mut cmd, Duration::from_secs(70));
        assert!(
            ok,
            "pg_ctl {action}: {out}\n{}",
            tail(&self.dir.path().join("postgres.log"), 20)
        );
        self.running = action != "stop";
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let mut cmd = self.as_postgres("pg_ctl");
            cmd.arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "-t", "20", "stop"]);
            let _ = run(&mut cmd, Duration::from_secs(25));
        }
    }
}
