//! Redis stopped under load: what needs it answers a clear 503 at once,
//! what does not keeps working, `/readyz` names the cache, and the same
//! instance serves again soon after Redis is back, without a restart.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::instance::Instance;
use crate::load::{Reply, client, is_clear_503, machine, send};
use crate::services::free_port;

const UP: u8 = 0;
const DOWN: u8 = 1;
const BACK: u8 = 2;

/// No request may take longer than this, whatever state Redis is in.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// After Redis is back, the instance must serve again within this.
const RECOVER_WITHIN: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Obs {
    op: &'static str,
    /// The phase when the request was sent and when it was answered.
    phases: (u8, u8),
    result: Result<Reply, String>,
}

/// A CSRF token and its cookie, as the sign-in page would have set them.
const CSRF: &str = "0123456789abcdef0123456789abcdef";

fn signin_begin(http: &reqwest::Client, base: &str) -> reqwest::RequestBuilder {
    http.post(format!("{base}/passkeys/signin/begin"))
        .header("cookie", format!("civitas_csrf={CSRF}"))
        .header("x-csrf-token", CSRF)
        .json(&serde_json::json!({}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_stopped_under_load_gives_clear_503s_and_service_resumes_without_restart() {
    let _serial = crate::serial().await;
    let port = free_port();
    let Some(mut stack) = crate::Stack::start(port) else {
        return;
    };
    let solo = Instance::start_on(&stack.shared, "solo", port).await;
    let base = solo.base();
    let http = client();
    let m = machine(&http, &base).await;
    let web = send(
        http.post(format!("{base}/register"))
            .bearer_auth(crate::instance::REGISTRATION_TOKEN)
            .json(&serde_json::json!({
                "client_name": "Permit portal",
                "redirect_uris": ["https://portal.agency.example/callback"],
            })),
    )
    .await
    .unwrap();
    assert_eq!(web.status, 201, "{}", web.body);
    let web_id = web.json()["client_id"].as_str().unwrap().to_owned();
    let authorize = format!(
        "{base}/authorize?response_type=code&client_id={web_id}&scope=openid\
         &redirect_uri=https%3A%2F%2Fportal.agency.example%2Fcallback&state=s1\
         &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
    );

    let phase = Arc::new(AtomicU8::new(UP));
    let stop = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<Obs>>> = Arc::default();
    let mut tasks = Vec::new();
    // (operation, pause between requests, concurrent tasks)
    let plan: [(&'static str, u64, usize); 4] = [
        ("token", 20, 3),
        ("signin_begin", 400, 1),
        ("authorize", 150, 2),
        ("readyz", 100, 1),
    ];
    for (op, pause, n) in plan {
        for _ in 0..n {
            let (phase, stop, seen, http) =
                (phase.clone(), stop.clone(), seen.clone(), http.clone());
            let (base, m, authorize) = (base.clone(), m.clone(), authorize.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let before = phase.load(Ordering::Relaxed);
                    let result = match op {
                        "token" => m.token(&http, &base).await,
                        "signin_begin" => send(signin_begin(&http, &base)).await,
                        "authorize" => send(http.get(&authorize)).await,
                        _ => send(http.get(format!("{base}/readyz"))).await,
                    };
                    let after = phase.load(Ordering::Relaxed);
                    seen.lock().unwrap().push(Obs {
                        op,
                        phases: (before, after),
                        result,
                    });
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }));
        }
    }

    tokio::time::sleep(Duration::from_secs(3)).await;
    stack.redis.stop();
    phase.store(DOWN, Ordering::Relaxed);
    eprintln!("redis stopped");
    tokio::time::sleep(Duration::from_secs(6)).await;
    // The phase moves on before Redis is started again: `resume` returns
    // only once Redis answers, and a request answered in between would
    // otherwise count as one made while Redis was down.
    phase.store(BACK, Ordering::Relaxed);
    stack.redis.resume();
    let resumed = Instant::now();
    eprintln!("redis started again on port {}", stack.redis.port);

    // The same instance serves what needs Redis again, without a restart.
    let recovered = loop {
        let ready = send(http.get(format!("{base}/readyz"))).await;
        let begin = send(signin_begin(&http, &base)).await;
        if ready.is_ok_and(|r| r.status == 200) && begin.is_ok_and(|r| r.status == 200) {
            break resumed.elapsed();
        }
        assert!(
            resumed.elapsed() < RECOVER_WITHIN,
            "not serving within {RECOVER_WITHIN:?} of Redis coming back:\n{}",
            solo.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("serving again {recovered:?} after Redis came back");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(15), t)
            .await
            .expect("load task ended")
            .expect("load task");
    }

    let seen = seen.lock().unwrap();
    let mut problems = Vec::new();
    let mut counts = std::collections::BTreeMap::<String, u32>::new();
    for o in seen.iter() {
        let label = match &o.result {
            Ok(r) => format!("{} {:?} {}", o.op, o.phases, r.status),
            Err(_) => format!("{} {:?} no answer", o.op, o.phases),
        };
        *counts.entry(label).or_default() += 1;
        let r = match &o.result {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("{}: no answer: {e}", o.op));
                continue;
            }
        };
        if r.elapsed > ANSWER_WITHIN {
            problems.push(format!("{}: answered after {:?}", o.op, r.elapsed));
        }
        if r.status >= 500 && r.status != 503 {
            problems.push(format!("{}: {} {}", o.op, r.status, r.body));
        }
        let steady_down = o.phases == (DOWN, DOWN);
        let steady_up = o.phases == (UP, UP);
        match o.op {
            // Tokens for machines need the database only.
            "token" if r.status != 200 => {
                problems.push(format!("token {:?}: {} {}", o.phases, r.status, r.body));
            }
            "signin_begin" if steady_down && !is_clear_503(r, "cache") => {
                problems.push(format!("signin_begin while down: {} {}", r.status, r.body));
            }
            "signin_begin" if r.status == 503 && !is_clear_503(r, "cache") => {
                problems.push(format!("signin_begin 503 without a clear body: {}", r.body));
            }
            "signin_begin" if steady_up && r.status != 200 => {
                problems.push(format!("signin_begin while up: {} {}", r.status, r.body));
            }
            "authorize" if steady_down && r.status != 503 => {
                problems.push(format!("authorize while down: {}", r.status));
            }
            "authorize" if steady_up && !(200..400).contains(&r.status) => {
                problems.push(format!("authorize while up: {}", r.status));
            }
            "readyz" if steady_down => {
                let b = r.json();
                if r.status != 503 || b["cache"] != "unavailable" || b["database"] != "ok" {
                    problems.push(format!("readyz while down: {} {}", r.status, r.body));
                }
            }
            "readyz" if steady_up && r.status != 200 => {
                problems.push(format!("readyz while up: {} {}", r.status, r.body));
            }
            _ => {}
        }
    }
    eprintln!("outcomes (operation (phase sent, phase answered) status): {counts:#?}");
    for (op, phase) in [
        ("signin_begin", (DOWN, DOWN)),
        ("authorize", (DOWN, DOWN)),
        ("readyz", (DOWN, DOWN)),
        ("token", (DOWN, DOWN)),
        ("signin_begin", (BACK, BACK)),
    ] {
        assert!(
            seen.iter().any(|o| o.op == op && o.phases == phase),
            "no {op} request ran in phase {phase:?}"
        );
    }
    // After recovery, everything succeeds again.
    let settled = seen
        .iter()
        .filter(|o| o.phases == (BACK, BACK) && o.op != "signin_begin")
        .rev()
        .take(20);
    for o in settled {
        let r = o.result.as_ref().unwrap();
        assert!(
            (200..400).contains(&r.status),
            "{} after recovery: {} {}",
            o.op,
            r.status,
            r.body
        );
    }
    assert!(
        problems.is_empty(),
        "{} problems, first ones:\n{}",
        problems.len(),
        problems
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
