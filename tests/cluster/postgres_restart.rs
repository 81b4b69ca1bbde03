//! PostgreSQL restarted under load (`pg_ctl restart -m fast`): the pool
//! reconnects by itself, a request that fails meanwhile gets a clear 503
//! (never another 5xx), and everything answered with success is still
//! there afterwards: every refresh token issued, every consent, every
//! registered client.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use civitas::testkit::{Citizen, FlowError, Rp};
use sha2::{Digest as _, Sha256};
use sqlx::Connection as _;
use tokio::sync::Mutex;

use crate::instance::{Instance, REGISTRATION_TOKEN};
use crate::load::{Tally, client, is_clear_503, register_machine, send};
use crate::services::free_port;

const CALLBACK: &str = "https://portal.agency.example/callback";

/// Is this failure of a flow step the database being away (503)?
fn unavailable(e: &FlowError) -> bool {
    match e {
        FlowError::Status { status, body, .. } if *status == 503 => {
            // JSON endpoints name the database; pages say "temporarily unavailable".
            body.contains("database") || body.contains("emporarily unavailable")
        }
        _ => false,
    }
}

/// A citizen who signs in (creating the account and consenting the first
/// time) and gets tokens with a refresh token; the refresh token.
async fn signed_in(
    http: &reqwest::Client,
    base: &str,
    rp: &Rp,
    n: usize,
) -> Result<String, FlowError> {
    let mut citizen = Citizen::new(
        http.clone(),
        base,
        base,
        &format!("Citizen {n}"),
        &format!("citizen{n}@example.org"),
    );
    let request = rp.request("openid offline_access");
    let params = citizen.authorize(rp, &request).await?;
    let code = civitas::testkit::citizen::query_param(&params, "code")
        .ok_or_else(|| FlowError::Unexpected(format!("no code: {params:?}")))?;
    let tokens = rp.exchange(http, base, &code, &request.verifier).await?;
    tokens["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| FlowError::Unexpected(format!("no refresh token: {tokens}")))
}

fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_loses_nothing_answered_with_success() {
    let _serial = crate::serial().await;
    let port = free_port();
    let Some(stack) = crate::Stack::start(port) else {
        return;
    };
    let solo = Instance::start_on(&stack.shared, "solo", port).await;
    let base = solo.base();
    let http = client();
    let rp = Rp::register(
        &http,
        &base,
        Some(REGISTRATION_TOKEN),
        &serde_json::json!({
            "client_name": "Permit portal",
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access",
        }),
    )
    .await
    .expect("register the portal");

    // Refresh-token chains, one per citizen, rotated under load.
    let mut chains = Vec::new();
    for n in 0..3 {
        chains.push(
            signed_in(&http, &base, &rp, n)
                .await
                .expect("a citizen signs in"),
        );
    }

    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Every refresh token answered with success, and every client registered.
    let issued: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(chains.clone()));
    let finals: Arc<Mutex<Vec<String>>> = Arc::default();
    let clients: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for start in chains {
        let (tally, stop, issued, finals) =
            (tally.clone(), stop.clone(), issued.clone(), finals.clone());
        let (http, base, rp) = (http.clone(), base.clone(), rp.clone());
        tasks.push(tokio::spawn(async move {
            let mut current = start;
            while !stop.load(Ordering::Relaxed) {
                tally.sent();
                match rp.refresh(&http, &base, &current).await {
                    Ok(t) => {
                        current = t["refresh_token"].as_str().expect("successor").to_owned();
                        issued.lock().await.push(current.clone());
                        tally.ok_op("refresh");
                    }
                    // The same token is tried again, as a client would.
                    Err(e) if unavailable(&e) => tally.expected_op("refresh 503"),
                    Err(e) => tally.unexpected("refresh", e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            finals.lock().await.push(current);
        }));
    }
    for _ in 0..2 {
        let (tally, stop, clients) = (tally.clone(), stop.clone(), clients.clone());
        let (http, base) = (http.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                tally.sent();
                match register_machine(&http, &base).await {
                    Ok(r) if r.status == 201 => {
                        let b = r.json();
                        clients.lock().await.push((
                            b["client_id"].as_str().unwrap().to_owned(),
                            b["registration_access_token"].as_str().unwrap().to_owned(),
                        ));
                        tally.succeeded("register", &r);
                    }
                    Ok(r) if is_clear_503(&r, "database") => tally.expected_failure("register", &r),
                    Ok(r) => tally.unexpected("register", format!("{} {}", r.status, r.body)),
                    Err(e) => tally.unexpected("register", e),
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }
    {
        // New citizens consent (and get refresh tokens) throughout, slowly
        // enough to stay under the per-address registration limit.
        let (tally, stop, issued) = (tally.clone(), stop.clone(), issued.clone());
        let (http, base, rp) = (http.clone(), base.clone(), rp.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 100;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                tally.sent();
                match signed_in(&http, &base, &rp, n).await {
                    Ok(refresh) => {
                        issued.lock().await.push(refresh);
                        tally.ok_op("citizen flow");
                    }
                    Err(e) if unavailable(&e) => tally.expected_op("citizen flow 503"),
                    Err(e) => tally.unexpected("citizen flow", e.to_string()),
                }
                tokio::time::sleep(Duration::from_millis(1500)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = tally.snapshot().succeeded;
    let mut pg = stack.pg;
    let restart = Instant::now();
    let pg = tokio::task::spawn_blocking(move || {
        pg.ctl("restart");
        pg
    })
    .await
    .unwrap();
    eprintln!("PostgreSQL restarted in {:?}", restart.elapsed());
    let restarted = tally.snapshot().succeeded;
    // The pool reconnects: requests succeed again soon.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tally.snapshot().succeeded < restarted + 20 {
        assert!(
            Instant::now() < deadline,
            "no successes after the restart:\n{}",
            solo.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "serving again {:?} after the restart began",
        restart.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(30), t)
            .await
            .expect("load task ended")
            .expect("load task");
    }
    let t = tally.snapshot();
    eprintln!(
        "sent {}, succeeded {} ({before} before the restart), 503 {}, unexpected {}\n{:#?}",
        t.sent, t.succeeded, t.expected_failures, t.unexpected_count, t.by_status
    );
    assert_eq!(
        t.unexpected_count,
        0,
        "unexpected answers:\n{}\n{}",
        t.unexpected.join("\n"),
        solo.log()
    );
    assert_eq!(t.sent, t.succeeded + t.expected_failures);

    // Nothing answered with success is lost.
    let issued = issued.lock().await.clone();
    let clients = clients.lock().await.clone();
    sqlx::any::install_default_drivers();
    let mut db = sqlx::AnyConnection::connect(&pg.url())
        .await
        .expect("connect");
    let mut missing = Vec::new();
    for token in &issued {
        let found: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM refresh_tokens WHERE token_hash = $1")
                .bind(hash(token))
                .fetch_one(&mut db)
                .await
                .unwrap();
        if found != 1 {
            missing.push(hash(token));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} refresh tokens lost",
        missing.len(),
        issued.len()
    );
    let consents: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM consents WHERE client_id = $1")
        .bind(&rp.client_id)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let flows = t.by_status.get("citizen flow ok").copied().unwrap_or(0) + 3;
    assert!(
        u64::try_from(consents).unwrap() >= flows,
        "{consents} consents stored for {flows} citizens who consented"
    );
    // The newest refresh token of every chain still works.
    for token in finals.lock().await.iter() {
        rp.refresh(&http, &base, token)
            .await
            .expect("the last refresh token of a chain is redeemable");
    }
    // Every client registered with 201 is readable.
    for (id, rat) in &clients {
        let r = send(http.get(format!("{base}/register/{id}")).bearer_auth(rat))
            .await
            .unwrap();
        assert_eq!(
            r.status, 200,
            "client {id} registered with 201 is gone: {}",
            r.body
        );
    }
    eprintln!(
        "durable: {} refresh tokens, {consents} consents, {} clients",
        issued.len(),
        clients.len()
    );
}
