//! Metrics and logs: `/metrics` on its own listener in the Prometheus text
//! format, counters that move as flows run, the per-day response counts
//! that instances add to `endpoint_stats`, and JSON log lines.

use std::sync::Arc;

use civitas::clock::{Clock as _, ManualClock, SharedClock, SystemClock, UnixTime};
use serde_json::json;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;

async fn spawn(stack: Stack) -> Option<TestApp> {
    let env = TestEnv::new(stack).await?;
    Some(env.spawn_with_metrics(Arc::new(SystemClock)).await)
}

async fn scrape(app: &TestApp) -> String {
    let res = app
        .http
        .get(app.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}

/// The value of `series` (name and labels exactly as rendered); 0 if the
/// series does not exist yet.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.parse().unwrap())
}

fn requests(endpoint: &str, method: &str, status: u16) -> String {
    format!(
        r#"civitas_http_requests_total{{endpoint="{endpoint}",method="{method}",status="{status}"}}"#
    )
}

async fn metrics_are_served_on_their_own_listener_only(stack: Stack) {
    let Some(app) = spawn(stack).await else {
        return;
    };
    let res = app
        .http
        .get(app.metrics_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = res.text().await.unwrap();
    assert!(text.contains("# TYPE civitas_http_requests_total counter"));
    assert!(text.contains("# TYPE civitas_http_request_duration_seconds histogram"));
    assert!(text.contains(&format!(
        "civitas_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
    assert_eq!(value(&text, "civitas_db_pool_max_connections"), 10.0);
    assert!(value(&text, "civitas_db_pool_connections") >= 1.0);

    // Not on the public listener: there it is an unknown path, counted as such.
    assert_eq!(app.get("/metrics").await.status(), 404);
    assert_eq!(app.get("/no/such/page").await.status(), 404);
    let text = scrape(&app).await;
    assert_eq!(value(&text, &requests("unmatched", "GET", 404)), 2.0);
    assert!(!text.contains("/no/such/page"), "paths never become labels");
    // And the metrics listener serves nothing else.
    let res = app
        .http
        .get(app.metrics_url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

async fn token_requests_move_the_grant_request_and_latency_counters(stack: Stack) {
    let Some(app) = spawn(stack).await else {
        return;
    };
    let reg = app
        .register_ok(&json!({"grant_types": ["client_credentials"], "scope": "payments:read"}))
        .await;
    let (id, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    let token = |form: Vec<(&'static str, &'static str)>| {
        app.http
            .post(app.url("/token"))
            .basic_auth(id, Some(secret))
            .form(&form)
            .send()
    };
    let issued = r#"civitas_tokens_issued_total{grant_type="client_credentials"}"#;
    let count = r#"civitas_http_request_duration_seconds_count{endpoint="/token"}"#;
    let inf = r#"civitas_http_request_duration_seconds_bucket{endpoint="/token",le="+Inf"}"#;
    let before = scrape(&app).await;
    assert_eq!(value(&before, &requests("/token", "POST", 200)), 0.0);

    let res = token(vec![("grant_type", "client_credentials")])
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let after = scrape(&app).await;
    assert_eq!(value(&after, issued) - value(&before, issued), 1.0);
    assert_eq!(value(&after, &requests("/token", "POST", 200)), 1.0);
    assert_eq!(value(&after, count) - value(&before, count), 1.0);
    assert_eq!(value(&after, inf) - value(&before, inf), 1.0);
    let sum = value(
        &after,
        r#"civitas_http_request_duration_seconds_sum{endpoint="/token"}"#,
    );
    assert!(sum > 0.0 && sum < 30.0, "{sum}");

    // A refused request: the 4xx series moves, the tokens issued do not.
    let res = token(vec![("grant_type", "password")]).await.unwrap();
    assert_eq!(res.status(), 400);
    let res = token(vec![
        ("grant_type", "client_credentials"),
        ("scope", "admin"),
    ])
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    let refused = scrape(&app).await;
    assert_eq!(value(&refused, &requests("/token", "POST", 400)), 2.0);
    assert_eq!(value(&refused, &requests("/token", "POST", 200)), 1.0);
    assert_eq!(value(&refused, issued), value(&after, issued));
    assert_eq!(value(&refused, count) - value(&before, count), 3.0);

    // A route with a parameter is counted under its template, never its id.
    let res = app
        .http
        .get(app.url(&format!("/register/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let text = scrape(&app).await;
    assert_eq!(
        value(&text, &requests("/register/{client_id}", "GET", 401)),
        1.0
    );
    assert!(!text.contains(id), "client ids never become labels");
}

async fn sign_ins_and_refused_ceremonies_are_counted(stack: Stack) {
    let Some(app) = spawn(stack).await else {
        return;
    };
    let sign_ins = |method: &str, level: &str| {
        format!(r#"civitas_sign_ins_total{{method="{method}",level="{level}"}}"#)
    };
    let failures = |ceremony: &str, reason: &str| {
        format!(r#"civitas_ceremony_failures_total{{ceremony="{ceremony}",reason="{reason}"}}"#)
    };
    let mut key = SoftAuthenticator::new(&app.base, false);
    Browser::new(&app)
        .create_account(&mut key, "Mia", "mia@example.eu", None)
        .await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, &sign_ins("passkey_registration", "low")), 1.0);
    assert_eq!(value(&text, &sign_ins("passkey", "low")), 0.0);

    // Sign in, then replay the assertion.
    let mut b = Browser::new(&app);
    b.page("/signin").await;
    let (_, begin) = b.post_json("/passkeys/signin/begin", &json!({})).await;
    let assertion = key.get(&begin["options"]);
    let body = json!({"ceremony": begin["ceremony"], "credential": assertion});
    assert_eq!(b.post_json("/passkeys/signin/finish", &body).await.0, 200);
    assert_eq!(b.post_json("/passkeys/signin/finish", &body).await.0, 400);
    // The same assertion under a fresh ceremony does not verify.
    let (_, begin) = b.post_json("/passkeys/signin/begin", &json!({})).await;
    let body = json!({"ceremony": begin["ceremony"], "credential": assertion});
    assert_eq!(b.post_json("/passkeys/signin/finish", &body).await.0, 400);
    // A request without the page's CSRF token.
    b.csrf = "forged".into();
    assert_eq!(
        b.post_json("/passkeys/signin/begin", &json!({})).await.0,
        403
    );

    let text = scrape(&app).await;
    assert_eq!(value(&text, &sign_ins("passkey", "low")), 1.0);
    assert_eq!(value(&text, &sign_ins("passkey", "substantial")), 0.0);
    assert_eq!(value(&text, &failures("passkey_signin", "expired")), 1.0);
    assert_eq!(value(&text, &failures("passkey_signin", "rejected")), 1.0);
    assert_eq!(value(&text, &failures("passkey_signin", "csrf")), 1.0);
    assert_eq!(
        value(&text, &failures("passkey_registration", "expired")),
        0.0
    );
    assert_eq!(
        value(&text, &requests("/passkeys/signin/finish", "POST", 400)),
        2.0
    );
}

async fn a_lost_database_is_counted_as_unavailable(stack: Stack) {
    let Some(app) = spawn(stack).await else {
        return;
    };
    let series = r#"civitas_database_errors_total{kind="unavailable"}"#;
    assert_eq!(value(&scrape(&app).await, series), 0.0);
    app.app().db.close().await;
    let res = app
        .register(&json!({"redirect_uris": ["https://portal.example.eu/cb"]}))
        .await;
    assert_eq!(res.status(), 503);
    let text = scrape(&app).await;
    assert_eq!(value(&text, series), 1.0);
    assert_eq!(
        value(&text, r#"civitas_database_errors_total{kind="other"}"#),
        0.0
    );
    assert_eq!(
        value(&text, r#"civitas_cache_errors_total{kind="unavailable"}"#),
        0.0
    );
    assert_eq!(value(&text, &requests("/register", "POST", 503)), 1.0);
}

/// The rows of one day, as `(endpoint, status_class) -> count`.
async fn day_rows(app: &TestApp, day: i64) -> std::collections::BTreeMap<(String, String), i64> {
    civitas::metrics::endpoint_stats(&app.app().db, day, day)
        .await
        .unwrap()
        .into_iter()
        .map(|(d, endpoint, class, count)| {
            assert_eq!(d, day);
            ((endpoint, class), count)
        })
        .collect()
}

async fn hits(app: &TestApp, path: &str, n: usize) {
    for _ in 0..n {
        app.get(path).await;
    }
}

async fn endpoint_stats_add_up_across_flushes_and_instances(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    // 2024-03-01, noon.
    let noon = UnixTime(1_709_294_400);
    let day = civitas::metrics::unix_day(noon);
    let clock = ManualClock::new(noon);
    let shared: SharedClock = Arc::new(clock.clone());
    let a = env.spawn_with(shared.clone(), "").await;
    let b = env.spawn_with(shared, "").await;
    let key = |e: &str, c: &str| (e.to_owned(), c.to_owned());
    let flush = |app: &TestApp| {
        let app = app.app().clone();
        let now = clock.now();
        async move {
            app.metrics
                .flush_endpoint_stats(&app.db, now)
                .await
                .unwrap()
        }
    };

    hits(&a, "/healthz", 3).await;
    hits(&a, "/nowhere", 2).await;
    assert_eq!(flush(&a).await, 5);
    let rows = day_rows(&a, day).await;
    assert_eq!(rows[&key("/healthz", "2xx")], 3);
    assert_eq!(rows[&key("unmatched", "4xx")], 2);
    assert_eq!(rows.len(), 2, "{rows:?}");

    // A second flush adds only what was served since the first.
    hits(&a, "/healthz", 2).await;
    assert_eq!(flush(&a).await, 2);
    assert_eq!(flush(&a).await, 0, "nothing new");
    assert_eq!(day_rows(&a, day).await[&key("/healthz", "2xx")], 5);

    // Another instance adds to the same rows.
    hits(&b, "/healthz", 4).await;
    hits(&b, "/nowhere", 1).await;
    assert_eq!(flush(&b).await, 5);
    let rows = day_rows(&b, day).await;
    assert_eq!(rows[&key("/healthz", "2xx")], 9);
    assert_eq!(rows[&key("unmatched", "4xx")], 3);

    // The next day gets rows of its own.
    clock.advance(86_400);
    hits(&a, "/healthz", 1).await;
    assert_eq!(flush(&a).await, 1);
    assert_eq!(day_rows(&a, day).await[&key("/healthz", "2xx")], 9);
    assert_eq!(day_rows(&a, day + 1).await[&key("/healthz", "2xx")], 1);
    let both = civitas::metrics::endpoint_stats(&a.app().db, day, day + 1)
        .await
        .unwrap();
    assert_eq!(both.len(), 3, "{both:?}");
    assert_eq!(both.first().map(|r| r.0), Some(day), "ordered by day");

    // A graceful shutdown adds what was served since the last flush.
    hits(&b, "/healthz", 2).await;
    b.stop().await;
    assert_eq!(day_rows(&a, day + 1).await[&key("/healthz", "2xx")], 3);
}

on_both_stacks!(
    metrics_are_served_on_their_own_listener_only,
    token_requests_move_the_grant_request_and_latency_counters,
    sign_ins_and_refused_ceremonies_are_counted,
    a_lost_database_is_counted_as_unavailable,
    endpoint_stats_add_up_across_flushes_and_instances,
);

/// Captured log output.
#[derive(Clone, Default)]
struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Capture {
    type Writer = Self;
    fn make_writer(&'w self) -> Self {
        self.clone()
    }
}

/// The JSON format on a real request: the subscriber `civitas serve`
/// installs for `log.format = "json"`, here for this thread only (the
/// runtime of this test runs the server on it too).
#[tokio::test(flavor = "current_thread")]
async fn json_logs_carry_the_request_span_with_opentelemetry_names() {
    let out = Capture::default();
    let subscriber = civitas::logging::subscriber(
        civitas::config::LogFormat::Json,
        tracing_subscriber::EnvFilter::new("civitas=debug"),
        out.clone(),
    );
    // tracing caches each callsite's interest. With a single dispatcher
    // registered it asks only the default of the thread that first reaches
    // the callsite: another test's server thread, which has none. A second
    // (silent) dispatcher makes it ask every registered one.
    let _silent = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();
    let app = TestApp::spawn(Stack::Embedded).await.unwrap();
    let res = app.get("/register/some-client?code=SECRET-CODE-123").await;
    assert_eq!(res.status(), 401);
    let request_id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    app.stop().await;

    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let response = lines
        .iter()
        .find(|l| l["message"] == "response" && l["span"]["request_id"] == request_id.as_str())
        .unwrap_or_else(|| panic!("no response line for {request_id} in {text}"));
    let span = &response["span"];
    assert_eq!(span["http.request.method"], "GET");
    assert_eq!(span["url.path"], "/register/some-client");
    assert_eq!(span["http.route"], "/register/{client_id}");
    assert_eq!(span["http.response.status_code"], 401);
    assert!(response["duration_ms"].is_u64());
    assert!(response["timestamp"].is_string() && response["level"] == "DEBUG");
    assert!(
        !text.contains("SECRET-CODE-123"),
        "query strings are never logged"
    );
}
