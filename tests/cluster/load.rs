//! Load for the cluster tests: an HTTP client, a tally that accounts for
//! every request sent, and the machine client's calls.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::instance::REGISTRATION_TOKEN;

/// An HTTP client that does not follow redirects, resolves `localhost` to
/// 127.0.0.1 (the issuer's host), and gives up on a request after 10 s.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("localhost", ([127, 0, 0, 1], 0).into())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// One answer: status, body, and how long it took.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub content_type: String,
    pub elapsed: Duration,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Sends `req`; a transport error (no answer at all) is `Err`.
pub async fn send(req: reqwest::RequestBuilder) -> Result<Reply, String> {
    let start = Instant::now();
    let res = req.send().await.map_err(|e| format!("{e:?}"))?;
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = res.text().await.map_err(|e| format!("body: {e}"))?;
    Ok(Reply {
        status,
        body,
        content_type,
        elapsed: start.elapsed(),
    })
}

/// Every request sent under load, and what became of it.
#[derive(Default)]
pub struct Tally {
    inner: Mutex<Inner>,
}

#[derive(Default, Debug)]
pub struct Inner {
    pub sent: u64,
    pub succeeded: u64,
    pub expected_failures: u64,
    /// `operation status` → count, for the report.
    pub by_status: BTreeMap<String, u64>,
    /// Descriptions of failures that should not have happened (first 20).
    pub unexpected: Vec<String>,
    pub unexpected_count: u64,
    pub slowest: Duration,
}

impl Tally {
    pub fn sent(&self) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).sent += 1;
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().unwrap_or_else(|e| e.into_inner()));
    }

    pub fn succeeded(&self, op: &str, reply: &Reply) {
        self.with(|i| {
            i.succeeded += 1;
            *i.by_status
                .entry(format!("{op} {}", reply.status))
                .or_default() += 1;
            i.slowest = i.slowest.max(reply.elapsed);
        });
    }

    pub fn expected_failure(&self, op: &str, reply: &Reply) {
        self.with(|i| {
            i.expected_failures += 1;
            *i.by_status
                .entry(format!("{op} {}", reply.status))
                .or_default() += 1;
            i.slowest = i.slowest.max(reply.elapsed);
        });
    }

    /// A success with no reply to keep (a flow of several requests).
    pub fn ok_op(&self, op: &str) {
        self.with(|i| {
            i.succeeded += 1;
            *i.by_status.entry(format!("{op} ok")).or_default() += 1;
        });
    }

    /// An expected failure with no reply to keep.
    pub fn expected_op(&self, op: &str) {
        self.with(|i| {
            i.expected_failures += 1;
            *i.by_status.entry(op.to_owned()).or_default() += 1;
        });
    }

    pub fn unexpected(&self, op: &str, what: String) {
        self.with(|i| {
            i.unexpected_count += 1;
            *i.by_status.entry(format!("{op} unexpected")).or_default() += 1;
            if i.unexpected.len() < 20 {
                i.unexpected.push(format!("{op}: {what}"));
            }
        });
    }

    pub fn snapshot(&self) -> Inner {
        let i = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        Inner {
            sent: i.sent,
            succeeded: i.succeeded,
            expected_failures: i.expected_failures,
            by_status: i.by_status.clone(),
            unexpected: i.unexpected.clone(),
            unexpected_count: i.unexpected_count,
            slowest: i.slowest,
        }
    }
}

/// A registered machine client (`client_credentials`, `client_secret_basic`).
#[derive(Clone, Debug)]
pub struct Machine {
    pub client_id: String,
    pub secret: String,
}

/// Registers a machine client at `base`; the response, whatever it is.
pub async fn register_machine(http: &reqwest::Client, base: &str) -> Result<Reply, String> {
    send(
        http.post(format!("{base}/register"))
            .bearer_auth(REGISTRATION_TOKEN)
            .json(&json!({
                "client_name": "Payments back-end",
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
                "scope": "payments:read",
            })),
    )
    .await
}

/// Registers a machine client and panics if that fails.
pub async fn machine(http: &reqwest::Client, base: &str) -> Machine {
    let reply = register_machine(http, base).await.expect("POST /register");
    assert_eq!(reply.status, 201, "registration: {}", reply.body);
    let body = reply.json();
    Machine {
        client_id: body["client_id"].as_str().expect("client_id").to_owned(),
        secret: body["client_secret"]
            .as_str()
            .expect("client_secret")
            .to_owned(),
    }
}

impl Machine {
    /// `client_credentials` at `base`.
    pub async fn token(&self, http: &reqwest::Client, base: &str) -> Result<Reply, String> {
        send(
            http.post(format!("{base}/token"))
                .basic_auth(&self.client_id, Some(&self.secret))
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("scope", "payments:read"),
                ]),
        )
        .await
    }

    /// Introspection of `token` at `base`.
    pub async fn introspect(
        &self,
        http: &reqwest::Client,
        base: &str,
        token: &str,
    ) -> Result<Reply, String> {
        send(
            http.post(format!("{base}/introspect"))
                .basic_auth(&self.client_id, Some(&self.secret))
                .form(&[("token", token)]),
        )
        .await
    }
}

/// Is this a 503 whose JSON body says the service is unavailable and names
/// what is missing (`needle`, for example "cache")?
pub fn is_clear_503(reply: &Reply, needle: &str) -> bool {
    reply.status == 503
        && reply.content_type.starts_with("application/json")
        && reply.json()["error"] == "temporarily_unavailable"
        && reply.json()["error_description"]
            .as_str()
            .is_some_and(|d| d.contains(needle))
}
