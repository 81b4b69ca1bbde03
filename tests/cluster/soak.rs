//! A soak run through the load balancer: a steady rate of mixed requests for
//! `CIVITAS_SOAK_SECS` seconds; zero 5xx, every request accounted for, and
//! the instances' memory flat after warm-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::load::{Machine, Tally, client, machine, send};

/// Requests per second, all instances together.
const RATE: u64 = 200;
/// At most this many requests in flight; a full window delays the next one.
const IN_FLIGHT: usize = 128;

fn soak_secs() -> u64 {
    std::env::var("CIVITAS_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if crate::services::ci() { 120 } else { 20 })
}

/// One request of the mix; `true` if it is meant to fail (a wrong secret).
async fn one(http: &reqwest::Client, lb: &str, m: &Machine, n: u64, tally: &Tally) {
    let pick = n % 50;
    tally.sent();
    let (op, expect_fail, result) = match pick {
        // 2%: a client with the wrong secret, refused with 401.
        0 => {
            let wrong = Machine {
                client_id: m.client_id.clone(),
                secret: "not-the-secret".into(),
            };
            ("token wrong secret", true, wrong.token(http, lb).await)
        }
        1..=20 => ("token", false, m.token(http, lb).await),
        21..=34 => {
            let token = match m.token(http, lb).await {
                Ok(r) if r.status == 200 => {
                    r.json()["access_token"].as_str().unwrap_or("").to_owned()
                }
                Ok(r) => {
                    tally.unexpected(
                        "token for introspection",
                        format!("{} {}", r.status, r.body),
                    );
                    return;
                }
                Err(e) => {
                    tally.unexpected("token for introspection", e);
                    return;
                }
            };
            ("introspect", false, m.introspect(http, lb, &token).await)
        }
        35..=44 => (
            "discovery",
            false,
            send(http.get(format!("{lb}/.well-known/openid-configuration"))).await,
        ),
        _ => ("jwks", false, send(http.get(format!("{lb}/jwks"))).await),
    };
    match result {
        Ok(r) if expect_fail && r.status == 401 && r.json()["error"] == "invalid_client" => {
            tally.expected_failure(op, &r);
        }
        Ok(r) if !expect_fail && r.status == 200 => {
            if op == "introspect" && r.json()["active"] != true {
                tally.unexpected(op, format!("inactive: {}", r.body));
            } else {
                tally.succeeded(op, &r);
            }
        }
        Ok(r) => tally.unexpected(op, format!("{} {}", r.status, r.body)),
        Err(e) => tally.unexpected(op, e),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_through_the_load_balancer_has_no_5xx_flat_memory_and_counts_every_request() {
    let _serial = crate::serial().await;
    let Some(cluster) = crate::Cluster::start(2).await else {
        return;
    };
    let lb = cluster.base();
    let http = client();
    let m = machine(&http, &lb).await;
    let secs = soak_secs();
    let warmup = Duration::from_secs((secs / 6).clamp(5, 20));
    let total = warmup + Duration::from_secs(secs);
    eprintln!("soak: {RATE} requests/s for {warmup:?} of warm-up and {secs} s");

    let tally = Arc::new(Tally::default());
    let window = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = Instant::now();
    let mut warm_rss: Option<Vec<u64>> = None;
    let mut n = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    while start.elapsed() < total {
        ticker.tick().await;
        if warm_rss.is_none() && start.elapsed() >= warmup {
            let rss: Vec<u64> = cluster.instances.iter().map(|i| i.rss_kib()).collect();
            eprintln!("RSS after warm-up (KiB): {rss:?}");
            warm_rss = Some(rss);
        }
        let permit = window.clone().acquire_owned().await.unwrap();
        n += 1;
        let (http, lb, m, tally) = (http.clone(), lb.clone(), m.clone(), tally.clone());
        tasks.spawn(async move {
            one(&http, &lb, &m, n, &tally).await;
            drop(permit);
        });
        while tasks.try_join_next().is_some() {}
    }
    let elapsed = start.elapsed();
    tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(r) = tasks.join_next().await {
            r.expect("request task");
        }
    })
    .await
    .expect("every request answered");
    let end_rss: Vec<u64> = cluster.instances.iter().map(|i| i.rss_kib()).collect();
    let warm_rss = warm_rss.expect("warm-up measured");
    let t = tally.snapshot();
    eprintln!(
        "soak: {} requests in {elapsed:?} ({:.0}/s): {} succeeded, {} refused as expected, {} unexpected; slowest {:?}\n{:#?}",
        t.sent,
        t.sent as f64 / elapsed.as_secs_f64(),
        t.succeeded,
        t.expected_failures,
        t.unexpected_count,
        t.slowest,
        t.by_status
    );
    eprintln!("RSS at the end (KiB): {end_rss:?}, after warm-up {warm_rss:?}");

    assert_eq!(
        t.unexpected_count,
        0,
        "unexpected answers:\n{}",
        t.unexpected.join("\n")
    );
    assert_eq!(t.sent, n, "every request of the plan was sent");
    assert_eq!(
        t.sent,
        t.succeeded + t.expected_failures,
        "every request is accounted for"
    );
    assert!(t.expected_failures > 0, "the mix includes refusals");
    assert!(
        t.sent as f64 >= 0.8 * (RATE as f64) * elapsed.as_secs_f64(),
        "the rate fell below 80% of {RATE}/s: the server could not keep up"
    );
    for (i, (warm, end)) in warm_rss.iter().zip(&end_rss).enumerate() {
        // Flat: at most 10% or 8 MiB above the warm-up figure, whichever is larger.
        let margin = (warm / 10).max(8 * 1024);
        assert!(
            *end <= warm + margin,
            "instance-{i} grew from {warm} KiB to {end} KiB (margin {margin} KiB)"
        );
    }
}
