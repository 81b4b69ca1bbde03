//! `civitas-bench`: drives Civitas over HTTP and reports, per scenario,
//! requests per second, latency (p50, p99, max), errors, and the server's
//! CPU time per request; with the raw cost of the signatures on this machine
//! measured in the same run, so that endpoint figures read as a ratio to
//! that limit. Results go to a JSON file and a table (docs/performance.md).
//!
//! It starts the `civitas` binary next to it as child processes (so the
//! server's CPU and memory are its own): one instance on a fresh SQLite
//! database with the in-process cache, or on PostgreSQL with Redis
//! (`--backend postgres`); with `--instances 2` or more, behind nginx.
#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod crypto;
mod load;
mod scenarios;
mod server;

use std::time::Duration;

use civitas::testkit::citizen::http_client;
use serde_json::{Value, json};

use load::Worker;
use scenarios::{AssertionKey, BasicForm, Flow, Get, PrivateKeyJwt, Refresh, Userinfo};
use server::{Cluster, REGISTRATION_TOKEN};

const USAGE: &str = "usage: civitas-bench [--duration S] [--connections N] [--backend sqlite|postgres] \
     [--instances N] [--only a,b] [--out FILE]\n\
     scenarios: discovery jwks cc_basic cc_private_key_jwt introspection userinfo refresh flow";

const SCENARIOS: [&str; 8] = [
    "discovery",
    "jwks",
    "cc_basic",
    "cc_private_key_jwt",
    "introspection",
    "userinfo",
    "refresh",
    "flow",
];

struct Args {
    duration: Duration,
    connections: usize,
    backend: String,
    instances: usize,
    only: Option<Vec<String>>,
    out: String,
}

fn args() -> Args {
    let mut a = Args {
        duration: Duration::from_secs(5),
        connections: 32,
        backend: "sqlite".into(),
        instances: 1,
        only: None,
        out: "bench-results.json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{USAGE}"));
        match flag.as_str() {
            "--duration" => a.duration = Duration::from_secs(value.parse().expect("seconds")),
            "--connections" => a.connections = value.parse().expect("a number"),
            "--backend" => a.backend = value,
            "--instances" => a.instances = value.parse().expect("a number"),
            "--only" => {
                let names: Vec<String> = value.split(',').map(str::to_owned).collect();
                if let Some(bad) = names.iter().find(|n| !SCENARIOS.contains(&n.as_str())) {
                    panic!("unknown scenario `{bad}`\n{USAGE}");
                }
                a.only = Some(names);
            }
            "--out" => a.out = value,
            _ => panic!("{USAGE}"),
        }
    }
    a
}

struct Bench<'a> {
    cluster: &'a Cluster,
    args: &'a Args,
    results: Vec<Value>,
}

impl Bench<'_> {
    fn wanted(&self, name: &str) -> bool {
        self.args
            .only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == name))
    }

    /// Runs one scenario and records it; its throughput.
    async fn measure<W: Worker>(&mut self, name: &str, workers: Vec<W>, rate: Option<f64>) -> f64 {
        let (cpu0, lb0) = (self.cluster.cpu_seconds(), self.cluster.lb_cpu_seconds());
        let out = load::run(workers, self.args.duration, rate).await;
        let cpu = self.cluster.cpu_seconds() - cpu0;
        let lb = self.cluster.lb_cpu_seconds() - lb0;
        let n = out.latencies.len();
        let per_cpu = if cpu > 0.0 { n as f64 / cpu } else { 0.0 };
        let r = json!({
            "scenario": name,
            "target_rate": rate,
            "requests": n,
            "errors": out.errors,
            "first_error": out.first_error,
            "rps": out.rps(),
            "p50_ms": out.quantile_ms(0.50),
            "p99_ms": out.quantile_ms(0.99),
            "max_ms": out.max_ms(),
            "server_cpu_seconds": cpu,
            "server_cpu_us_per_request": if n == 0 { 0.0 } else { cpu * 1e6 / n as f64 },
            "requests_per_server_cpu_second": per_cpu,
            "load_balancer_cpu_seconds": lb,
        });
        println!(
            "{:<34} {:>8.0}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  errors {:>4}  {:>7.0} per server CPU-s",
            name,
            out.rps(),
            out.quantile_ms(0.50),
            out.quantile_ms(0.99),
            out.max_ms(),
            out.errors,
            per_cpu
        );
        if let Some(e) = &out.first_error {
            println!(
                "    first error: {}",
                e.chars().take(300).collect::<String>()
            );
        }
        self.results.push(r);
        out.rps()
    }
}

/// Registers a client at `base` with the benchmark's initial access token.
async fn register(base: &str, metadata: &Value) -> civitas::testkit::Rp {
    civitas::testkit::Rp::register(&http_client(), base, Some(REGISTRATION_TOKEN), metadata)
        .await
        .expect("registration")
}

fn flow_workers(
    people: Vec<(civitas::testkit::Citizen, Value)>,
    cluster: &Cluster,
    portal: &civitas::testkit::Rp,
    jwks: &Value,
) -> Vec<Flow> {
    let validator = std::sync::Arc::new(civitas::testkit::citizen::IdTokenValidator::new(
        jwks,
        &cluster.issuer,
        &portal.client_id,
    ));
    people
        .into_iter()
        .map(|(citizen, _)| Flow {
            http: http_client(),
            base: cluster.base.clone(),
            rp: portal.clone(),
            citizen,
            validator: validator.clone(),
        })
        .collect()
}

#[tokio::main]
async fn main() {
    let args = args();
    println!("crypto baseline (one thread, signatures per second):");
    let crypto = crypto::baseline();
    println!("  {crypto}");
    let cluster = Cluster::start(&args.backend, args.instances).await;
    let startup_ms: Vec<u128> = cluster.instances.iter().map(|i| i.startup_ms).collect();
    let idle_rss = cluster.rss_kib();
    println!(
        "{} instance(s) on {} ready in {startup_ms:?} ms (fresh database); idle RSS {idle_rss} KiB",
        args.instances, args.backend
    );
    let base = cluster.base.clone();
    let b = base.as_str();
    let n = args.connections;
    let token_url = format!("{}/token", cluster.issuer);

    // Clients and citizens, prepared before any clock starts.
    let machine = register(
        b,
        &json!({"grant_types": ["client_credentials"], "scope": "payments:read"}),
    )
    .await;
    let (id, secret) = (machine.client_id, machine.secret.expect("a client secret"));
    let (mut key, jwks) = AssertionKey::generate();
    let signed = register(
        b,
        &json!({"grant_types": ["client_credentials"], "scope": "payments:read",
                "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}),
    )
    .await;
    key.client_id = signed.client_id;
    let key = std::sync::Arc::new(key);
    let access: Value = http_client()
        .post(format!("{b}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = access["access_token"].as_str().unwrap().to_owned();
    let portal = scenarios::register_portal(b).await;
    let jwks: Value = http_client()
        .get(format!("{b}/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let mut bench = Bench {
        cluster: &cluster,
        args: &args,
        results: Vec::new(),
    };
    let form = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    let basic = |url: &str, f: Vec<(String, String)>| {
        (0..n)
            .map(|_| BasicForm {
                http: http_client(),
                url: url.to_owned(),
                form: f.clone(),
                client_id: id.clone(),
                secret: secret.clone(),
            })
            .collect::<Vec<_>>()
    };
    let gets = |url: String| {
        (0..n)
            .map(|_| Get {
                http: http_client(),
                url: url.clone(),
            })
            .collect::<Vec<_>>()
    };

    if bench.wanted("discovery") {
        bench
            .measure(
                "discovery",
                gets(format!("{b}/.well-known/openid-configuration")),
                None,
            )
            .await;
    }
    if bench.wanted("jwks") {
        bench.measure("jwks", gets(format!("{b}/jwks")), None).await;
    }
    let mut cc_max = 0.0;
    if bench.wanted("cc_basic") {
        cc_max = bench
            .measure(
                "client_credentials (basic)",
                basic(
                    &format!("{b}/token"),
                    form(&[("grant_type", "client_credentials")]),
                ),
                None,
            )
            .await;
    }
    if bench.wanted("cc_private_key_jwt") {
        let workers = (0..n)
            .map(|_| PrivateKeyJwt {
                http: http_client(),
                url: format!("{b}/token"),
                aud: token_url.clone(),
                client: key.clone(),
            })
            .collect();
        bench
            .measure("client_credentials (private_key_jwt)", workers, None)
            .await;
    }
    if bench.wanted("introspection") {
        bench
            .measure(
                "introspection",
                basic(&format!("{b}/introspect"), form(&[("token", &access)])),
                None,
            )
            .await;
    }
    if bench.wanted("userinfo") {
        let people =
            scenarios::citizens(b, &cluster.issuer, &portal, 1, "openid profile", "ui").await;
        let token = people[0].1["access_token"].as_str().unwrap().to_owned();
        let workers = (0..n)
            .map(|_| Userinfo {
                http: http_client(),
                url: format!("{b}/userinfo"),
                token: token.clone(),
            })
            .collect();
        bench.measure("userinfo", workers, None).await;
    }
    if bench.wanted("refresh") {
        let people = scenarios::citizens(
            b,
            &cluster.issuer,
            &portal,
            n,
            "openid offline_access",
            "rt",
        )
        .await;
        let workers = people
            .into_iter()
            .map(|(_, tokens)| Refresh {
                http: http_client(),
                base: base.clone(),
                rp: portal.clone(),
                token: tokens["refresh_token"].as_str().unwrap().to_owned(),
            })
            .collect();
        bench.measure("refresh token rotation", workers, None).await;
    }
    let mut flow_max = 0.0;
    let flow_people = if bench.wanted("flow") {
        scenarios::citizens(b, &cluster.issuer, &portal, n, "openid", "flow").await
    } else {
        Vec::new()
    };
    if bench.wanted("flow") {
        let workers = flow_workers(flow_people, &cluster, &portal, &jwks);
        flow_max = bench
            .measure("authorization-code flow with passkey", workers, None)
            .await;
    }

    // Latency at half of the measured maximum.
    if cc_max > 0.0 {
        bench
            .measure(
                "client_credentials (basic) at half load",
                basic(
                    &format!("{b}/token"),
                    form(&[("grant_type", "client_credentials")]),
                ),
                Some(cc_max / 2.0),
            )
            .await;
    }
    if flow_max > 0.0 {
        let people = scenarios::citizens(b, &cluster.issuer, &portal, n, "openid", "half").await;
        let workers = flow_workers(people, &cluster, &portal, &jwks);
        bench
            .measure(
                "authorization-code flow at half load",
                workers,
                Some(flow_max / 2.0),
            )
            .await;
    }

    let peak_rss = cluster.peak_rss_kib();
    let results = std::mem::take(&mut bench.results);
    drop(bench);
    let mut cluster = cluster;
    let restart_ms = if cluster.instances.len() == 1 {
        cluster.instances[0].restart().await;
        Some(cluster.instances[0].startup_ms)
    } else {
        None
    };
    println!(
        "peak RSS {peak_rss} KiB; ready in {restart_ms:?} ms after a restart on the existing database"
    );
    let per_cpu = |name: &str| {
        results
            .iter()
            .find(|r| r["scenario"] == name)
            .and_then(|r| r["requests_per_server_cpu_second"].as_f64())
            .unwrap_or(0.0)
    };
    let es = crypto["es256_fastest"].as_f64().unwrap_or(1.0);
    let cc = per_cpu("client_credentials (basic)");
    let ratios = json!({
        "client_credentials_per_server_cpu_s_over_es256": cc / es,
        "private_key_jwt_per_server_cpu_s_over_es256": per_cpu("client_credentials (private_key_jwt)") / es,
        "discovery_over_client_credentials": if cc > 0.0 { per_cpu("discovery") / cc } else { 0.0 },
        "jwks_over_client_credentials": if cc > 0.0 { per_cpu("jwks") / cc } else { 0.0 },
    });
    println!("ratios: {ratios}");
    let report = json!({
        "machine": {
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            "cpu_model": std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()
                .lines().find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1)).map(str::trim).unwrap_or_default(),
        },
        "backend": args.backend,
        "instances": args.instances,
        "connections": args.connections,
        "duration_s": args.duration.as_secs(),
        "crypto_per_second": crypto,
        "startup_ms_fresh_database": startup_ms,
        "startup_ms_existing_database": restart_ms,
        "idle_rss_kib": idle_rss,
        "peak_rss_kib": peak_rss,
        "scenarios": results,
        "ratios": ratios,
    });
    std::fs::write(&args.out, serde_json::to_vec_pretty(&report).unwrap()).unwrap();
    println!("results written to {}", args.out);
}
