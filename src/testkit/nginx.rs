//! nginx (from Debian's packages) as the round-robin load balancer in front
//! of several Civitas instances, for the cluster tests and the benchmark.
//! Everything it writes (configuration, pid, logs, temporary files) stays in
//! its own temporary directory; it is killed when dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary, if installed.
#[must_use]
pub fn binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// A running nginx.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Nginx {
    /// Starts nginx on `listen`, passing every request round-robin to
    /// `upstreams` over keep-alive connections, with the headers a trusted
    /// proxy sets (`X-Forwarded-For`, `X-Forwarded-Proto`, the original
    /// `Host`). A request whose upstream fails before answering (refused or
    /// reset connection, timeout) or answers 502 or 503 is retried on the
    /// next one, POSTs included (`non_idempotent`): an instance that is
    /// shutting down closes its idle keep-alive connections, and a request
    /// nginx had just sent on one was never processed.
    ///
    /// # Errors
    /// If nginx is missing, does not start, or does not listen within 10 s.
    pub fn start(listen: SocketAddr, upstreams: &[SocketAddr]) -> std::io::Result<Self> {
        let bin = binary().ok_or_else(|| std::io::Error::other("nginx is not installed"))?;
        let dir = tempfile::tempdir()?;
        let d = dir.path().display().to_string();
        let servers: String = upstreams
            .iter()
            .map(|u| format!("    server {u} max_fails=1 fail_timeout=2s;\n"))
            .collect();
        let conf = format!(
            r#"daemon off;
master_process off;
worker_rlimit_nofile 16384;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  upstream civitas {{
{servers}    keepalive 64;
  }}
  server {{
    listen {listen} backlog=4096;
    location / {{
      proxy_pass http://civitas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_connect_timeout 2s;
      proxy_read_timeout 30s;
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 3;
    }}
  }}
}}
"#
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut nginx = Self {
            child,
            addr: listen,
            dir,
        };
        let started = Instant::now();
        while std::net::TcpStream::connect_timeout(&listen, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "nginx exited with {status}: {}",
                    nginx.error_log()
                )));
            }
            if started.elapsed() > Duration::from_secs(10) {
                return Err(std::io::Error::other("nginx did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    /// Its URL with the host name `localhost` (an issuer must be a domain name).
    #[must_use]
    pub fn base(&self) -> String {
        format!("http://localhost:{}", self.addr.port())
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its error log, for a failed test's report.
    #[must_use]
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
