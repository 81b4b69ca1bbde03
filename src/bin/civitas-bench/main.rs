//! `civitas-bench`: drives a Civitas server over HTTP and reports, per
//! scenario, requests per second, latency (p50, p99, max), errors, and the
//! server's CPU time per request; with the raw cost of the signatures on this
//! machine measured in the same run, so endpoint figures can be read as a
//! ratio to that limit. Results go to a JSON file and a table.
//!
//! It starts the `civitas` binary next to it as a child process (so the
//! server's CPU and memory are its own) on a fresh SQLite database with the
//! in-process cache, or on PostgreSQL with Redis (`--backend postgres`).
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods
)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const REGISTRATION_TOKEN: &str = "bench-registration-token-0123456789";

struct Args {
    duration: Duration,
    connections: usize,
    backend: String,
    out: String,
}

fn args() -> Args {
    let mut a = Args {
        duration: Duration::from_secs(5),
        connections: 32,
        backend: "sqlite".into(),
        out: "bench-results.json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_default();
        match flag.as_str() {
            "--duration" => a.duration = Duration::from_secs(value.parse().expect("seconds")),
            "--connections" => a.connections = value.parse().expect("a number"),
            "--backend" => a.backend = value,
            "--out" => a.out = value,
            _ => panic!(
                "usage: civitas-bench [--duration S] [--connections N] [--backend sqlite|postgres] [--out FILE]"
            ),
        }
    }
    a
}

/// Signatures per second on one thread, for one second.
fn rate(mut sign: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        sign();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn crypto_baseline() -> Value {
    use ring::rand::SystemRandom;
    use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
    let rng = SystemRandom::new();
    let msg = vec![7u8; 300];
    let es = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref(),
        &rng,
    )
    .unwrap();
    let ed =
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
    let rsa_der = openssl::rsa::Rsa::generate(2048).unwrap();
    let rsa_der = openssl::pkey::PKey::from_rsa(rsa_der)
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    let rsa = RsaKeyPair::from_pkcs8(&rsa_der).unwrap();
    let mut sig = vec![0u8; rsa.public().modulus_len()];
    let jose = josekit::jws::ES256
        .signer_from_jwk(&josekit::jwk::KeyPair::to_jwk_key_pair(
            &josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256)
                .unwrap(),
        ))
        .unwrap();
    json!({
        "es256_ring": rate(|| { es.sign(&rng, &msg).unwrap(); }),
        "eddsa_ring": rate(|| { ed.sign(&msg); }),
        "rs256_ring": rate(|| { rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, &msg, &mut sig).unwrap(); }),
        "es256_josekit_openssl": rate(|| { josekit::jws::JwsSigner::sign(&jose, &msg).unwrap(); }),
    })
}

fn proc_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields
        .get(11)
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    ticks / 100.0
}

fn proc_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

struct Server {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
    startup_ms: u128,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_server(backend: &str) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exe = std::env::current_exe().unwrap().with_file_name("civitas");
    let (db, cache) = match backend {
        "postgres" => {
            let name = format!("civitas_bench_{}", std::process::id());
            let _ = Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-c",
                    &format!("DROP DATABASE IF EXISTS {name}"),
                ])
                .output();
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-U",
                    "postgres",
                    "-c",
                    &format!("CREATE DATABASE {name}"),
                ])
                .output()
                .expect("psql");
            (
                format!("postgres://postgres@127.0.0.1:5432/{name}"),
                "redis://127.0.0.1:6379".to_owned(),
            )
        }
        _ => (
            format!("sqlite:{}", dir.path().join("bench.db").display()),
            "memory".to_owned(),
        ),
    };
    let base = format!("http://localhost:{port}");
    let started = Instant::now();
    let child = Command::new(exe)
        .arg("serve")
        .current_dir(dir.path())
        .env("CIVITAS_ISSUER", &base)
        .env("CIVITAS_LISTEN", format!("127.0.0.1:{port}"))
        .env("CIVITAS_DATABASE_URL", db)
        .env("CIVITAS_CACHE_URL", cache)
        .env(
            "CIVITAS_CACHE_PREFIX",
            format!("bench{}", std::process::id()),
        )
        .env("CIVITAS_KEYS_DIR", dir.path().join("keys"))
        .env("CIVITAS_REGISTRATION_TOKEN", REGISTRATION_TOKEN)
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("start civitas (build it first: cargo build --release)");
    let http = reqwest::Client::new();
    loop {
        if http
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
        startup_ms: started.elapsed().as_millis(),
    }
}

#[derive(Clone)]
enum Req {
    Get(String),
    Form(String, Vec<(String, String)>, Option<(String, String)>),
}

async fn run(name: &str, server: &Server, req: Req, args: &Args) -> Value {
    let pid = server.child.id();
    let cpu0 = proc_cpu_seconds(pid);
    let deadline = Instant::now() + args.duration;
    let mut tasks = Vec::new();
    for _ in 0..args.connections {
        let req = req.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            while Instant::now() < deadline {
                let t = Instant::now();
                let res = match &req {
                    Req::Get(url) => http.get(url).send().await,
                    Req::Form(url, form, auth) => {
                        let mut r = http.post(url).form(form);
                        if let Some((u, p)) = auth {
                            r = r.basic_auth(u, Some(p));
                        }
                        r.send().await
                    }
                };
                match res {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let (mut lat, mut errors) = (Vec::new(), 0);
    for t in tasks {
        let (l, e) = t.await.unwrap();
        lat.extend(l);
        errors += e;
    }
    let cpu = proc_cpu_seconds(pid) - cpu0;
    lat.sort();
    let n = lat.len().max(1);
    let pct = |p: f64| lat[((n as f64 * p) as usize).min(n - 1)].as_secs_f64() * 1e3;
    let rps = lat.len() as f64 / args.duration.as_secs_f64();
    let result = json!({
        "scenario": name,
        "requests": lat.len(),
        "errors": errors,
        "rps": rps,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        "server_cpu_seconds": cpu,
        "server_cpu_us_per_request": if lat.is_empty() { 0.0 } else { cpu * 1e6 / lat.len() as f64 },
        "requests_per_server_cpu_second": if cpu > 0.0 { lat.len() as f64 / cpu } else { 0.0 },
    });
    println!(
        "{:<28} {:>9.0} req/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {:>4}  {:>7.0} req per server CPU-s",
        name,
        rps,
        result["p50_ms"].as_f64().unwrap(),
        result["p99_ms"].as_f64().unwrap(),
        result["max_ms"].as_f64().unwrap(),
        errors,
        result["requests_per_server_cpu_second"].as_f64().unwrap()
    );
    result
}

#[tokio::main]
async fn main() {
    let args = args();
    println!("crypto baseline (single thread, signatures per second):");
    let crypto = crypto_baseline();
    println!("  {crypto}");
    let server = start_server(&args.backend).await;
    let pid = server.child.id();
    let idle_rss = proc_kib(pid, "VmRSS:");
    println!(
        "server ready in {} ms; idle RSS {} KiB; backend {}",
        server.startup_ms, idle_rss, args.backend
    );
    let http = reqwest::Client::new();
    let reg: Value = http
        .post(format!("{}/register", server.base))
        .bearer_auth(REGISTRATION_TOKEN)
        .json(&json!({"grant_types": ["client_credentials"], "scope": "payments:read"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (id, secret) = (
        reg["client_id"].as_str().unwrap().to_owned(),
        reg["client_secret"].as_str().unwrap().to_owned(),
    );
    let token: Value = http
        .post(format!("{}/token", server.base))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap().to_owned();
    let b = &server.base;
    let form = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let mut results = Vec::new();
    results.push(
        run(
            "discovery",
            &server,
            Req::Get(format!("{b}/.well-known/openid-configuration")),
            &args,
        )
        .await,
    );
    results.push(run("jwks", &server, Req::Get(format!("{b}/jwks")), &args).await);
    results.push(
        run(
            "client_credentials (basic)",
            &server,
            Req::Form(
                format!("{b}/token"),
                form(&[("grant_type", "client_credentials")]),
                Some((id.clone(), secret.clone())),
            ),
            &args,
        )
        .await,
    );
    results.push(
        run(
            "introspection",
            &server,
            Req::Form(
                format!("{b}/introspect"),
                form(&[("token", &access)]),
                Some((id.clone(), secret.clone())),
            ),
            &args,
        )
        .await,
    );
    let peak_rss = proc_kib(pid, "VmHWM:");
    println!("peak RSS {peak_rss} KiB");
    let cc = results[2]["requests_per_server_cpu_second"]
        .as_f64()
        .unwrap_or(0.0);
    let es = crypto["es256_ring"].as_f64().unwrap_or(1.0);
    println!(
        "client_credentials tokens per server CPU-second / ES256 (ring) signatures per second: {:.2}",
        cc / es
    );
    let report = json!({
        "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) },
        "backend": args.backend,
        "connections": args.connections,
        "duration_s": args.duration.as_secs(),
        "crypto_per_second": crypto,
        "startup_ms": server.startup_ms,
        "idle_rss_kib": idle_rss,
        "peak_rss_kib": peak_rss,
        "scenarios": results,
        "ratio_client_credentials_to_es256": cc / es,
    });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    println!("results written to {}", args.out);
}
