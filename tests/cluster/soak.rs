//! A soak run through the load balancer: a steady rate of mixed requests for
//! `CIVITAS_SOAK_SECS` seconds; zero 5xx, every request accounted for, and
//! the instances' memory flat after warm-up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use civitas::testkit::citizen::{query_param, validate_id_token};
use civitas::testkit::{Citizen, FlowError, Rp};
use tokio::sync::Mutex;

use crate::load::{Machine, Tally, client, machine, send};

/// Requests per second, all instances together.
const RATE: u64 = 200;
/// At most this many requests in flight; a full window delays the next one.
const IN_FLIGHT: usize = 128;
/// A complete sign-in every this many requests (one every 2.5 s: under the
/// per-address limit of 60 passkey ceremonies a minute, all from 127.0.0.1).
const FLOW_EVERY: u64 = 500;

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

/// A citizen signs in again (new browser, passkey assertion, consent
/// remembered) through the load balancer, and the relying party redeems
/// the code and validates the ID token.
async fn sign_in(
    http: &reqwest::Client,
    lb: &str,
    rp: &Rp,
    citizen: &Mutex<Citizen>,
    jwks: &serde_json::Value,
) -> Result<(), FlowError> {
    let mut citizen = citizen.lock().await;
    citizen.forget_cookies();
    let request = rp.request("openid");
    let params = citizen.authorize(rp, &request).await?;
    let code = query_param(&params, "code")
        .ok_or_else(|| FlowError::Unexpected(format!("no code: {params:?}")))?;
    let tokens = rp.exchange(http, lb, &code, &request.verifier).await?;
    let now = i64::try_from(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap_or_default()
            .as_secs(),
    )
    .unwrap_or_default();
    validate_id_token(
        tokens["id_token"].as_str().unwrap_or_default(),
        jwks,
        lb,
        &rp.client_id,
        &request.nonce,
        now,
    )?;
    Ok(())
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
    let rp = Rp::register(
        &http,
        &lb,
        Some(crate::instance::REGISTRATION_TOKEN),
        &serde_json::json!({
            "client_name": "Permit portal",
            "redirect_uris": ["https://portal.agency.example/callback"],
            "scope": "openid",
        }),
    )
    .await
    .expect("register the portal");
    let jwks = send(http.get(format!("{lb}/jwks"))).await.unwrap().json();
    // Citizens with an account and a passkey (and consent given once).
    let mut citizens = Vec::new();
    for i in 0..4 {
        let mut c = Citizen::new(
            http.clone(),
            &lb,
            &lb,
            &format!("Citizen {i}"),
            &format!("c{i}@example.org"),
        );
        let request = rp.request("openid");
        c.authorize(&rp, &request).await.expect("first sign-in");
        citizens.push(Arc::new(Mutex::new(c)));
    }
    let (rp, jwks) = (Arc::new(rp), Arc::new(jwks));
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
        if n.is_multiple_of(FLOW_EVERY) {
            let citizen =
                citizens[usize::try_from(n / FLOW_EVERY).unwrap() % citizens.len()].clone();
            let (rp, jwks) = (rp.clone(), jwks.clone());
            tasks.spawn(async move {
                tally.sent();
                match sign_in(&http, &lb, &rp, &citizen, &jwks).await {
                    Ok(()) => tally.ok_op("sign-in flow"),
                    Err(e) => tally.unexpected("sign-in flow", e.to_string()),
                }
                drop(permit);
            });
            continue;
        }
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
        t.by_status.get("sign-in flow ok").copied().unwrap_or(0) >= secs / 3,
        "too few sign-in flows completed"
    );
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
