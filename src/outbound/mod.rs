//! Outbound fetches of URLs that a client or an upstream chose: a client's
//! `jwks_uri` and `sector_identifier_uri`, back-channel logout, and the eID
//! connectors' discovery, key sets and token requests (review M3).
//!
//! One [`Fetcher`] owns the one HTTP client that makes them. It checks the
//! URL ([`Policy::check_url`]: `https`, an IP literal of no refused class),
//! resolves the host itself and hands the connection only the addresses it
//! checked ([`guard`]), uses no proxy, follows no redirect, reads at most
//! the cap of the use ([`Use::cap`]; a larger `Content-Length` is refused
//! before reading), and gives up after its timeouts. Every failure is the
//! same [`FetchError`] to the caller ("could not be fetched"): its
//! [`Reason`] goes to the log and, for back-channel logout, to the
//! delivery's `last_error`, never to a client. A GET that failed is not
//! tried again for [`Limits::failure_ttl`] (per URL, per instance).
//!
//! Loopback is allowed only in development, while Civitas's own issuer is
//! `localhost` ([`Policy::for_issuer`]).

pub mod guard;
mod upstream;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use url::Url;

pub use guard::{AddressClass, Policy, Refusal, classify};
pub use upstream::Upstream;

/// Most bytes read of a client's key set (`jwks_uri`).
pub const JWKS_CAP: usize = 64 * 1024;
/// Most bytes read of a sector identifier document.
pub const SECTOR_DOCUMENT_CAP: usize = 64 * 1024;
/// Most bytes read of an eID provider's answer (discovery, key set, token
/// response): larger, for key sets with certificate chains.
pub const EID_CAP: usize = 256 * 1024;

/// What a fetch is for: its cap, and its name in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A client's `jwks_uri`, before its assertion's signature is checked.
    ClientJwks,
    /// A client's `sector_identifier_uri`, at registration and update.
    SectorDocument,
    /// A logout token POSTed to a `backchannel_logout_uri`; the answer's
    /// body is never read, only its status.
    BackchannelLogout,
    /// An upstream eID provider: discovery, key set, token request.
    Eid,
}

impl Use {
    /// The most bytes of an answer's body read for this use.
    #[must_use]
    pub const fn cap(self) -> usize {
        match self {
            Self::ClientJwks => JWKS_CAP,
            Self::SectorDocument => SECTOR_DOCUMENT_CAP,
            Self::BackchannelLogout => 0,
            Self::Eid => EID_CAP,
        }
    }

    /// Its name in the log.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ClientJwks => "jwks_uri",
            Self::SectorDocument => "sector_identifier_uri",
            Self::BackchannelLogout => "backchannel_logout_uri",
            Self::Eid => "eid",
        }
    }
}

/// Why a fetch failed: for the log and the operator, never for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The URL, or an address its host resolved to, is refused.
    Refused(Refusal),
    /// The host did not resolve.
    NotResolved,
    /// No connection, or TLS or HTTP failed on it.
    Connection,
    /// The connect or the total timeout passed.
    Timeout,
    /// The answer's status was not a success (a redirect included: none is
    /// followed).
    Status(u16),
    /// The body is larger than the use's cap.
    TooLarge,
    /// The body is not the JSON expected.
    NotJson,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(r) => write!(f, "refused: the URL {r}"),
            Self::NotResolved => f.write_str("the host did not resolve"),
            Self::Connection => f.write_str("the connection failed"),
            Self::Timeout => f.write_str("timed out"),
            Self::Status(s) => write!(f, "answered HTTP {s}"),
            Self::TooLarge => f.write_str("the body is larger than the cap"),
            Self::NotJson => f.write_str("the body is not the JSON expected"),
        }
    }
}

/// A fetch failed. Its message is the same whatever the reason, so that an
/// answer built from it tells nothing of the network behind Civitas.
#[derive(Debug, Clone, thiserror::Error)]
#[error("could not be fetched")]
pub struct FetchError {
    reason: Reason,
    cached: bool,
}

impl FetchError {
    fn new(reason: Reason) -> Self {
        Self {
            reason,
            cached: false,
        }
    }

    /// Why (for logs and the operator only).
    #[must_use]
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// Was this the remembered failure of an earlier fetch (no request made)?
    #[must_use]
    pub fn was_cached(&self) -> bool {
        self.cached
    }
}

/// The fetcher's timeouts and failure memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// To establish the connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// For the whole request, body included.
    pub timeout: Duration,
    /// How long a failed GET is answered from memory.
    pub failure_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            timeout: Duration::from_secs(5),
            failure_ttl: Duration::from_secs(30),
        }
    }
}

/// Most failures remembered; beyond it the expired ones go, then all.
const MAX_FAILURES: usize = 10_000;

/// The one way Civitas fetches a URL a client or an upstream chose.
#[derive(Clone)]
pub struct Fetcher {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    policy: Policy,
    limits: Limits,
    failures: Mutex<HashMap<String, (Instant, Reason)>>,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("policy", &self.inner.policy)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

/// The HTTP client could not be built (the TLS backend failed to start).
#[derive(Debug, thiserror::Error)]
#[error("the outbound HTTP client could not be built: {0}")]
pub struct BuildError(String);

impl Fetcher {
    /// The fetcher of an instance whose own issuer is `issuer`, with the
    /// default [`Limits`].
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn for_issuer(issuer: &str) -> Result<Self, BuildError> {
        Self::new(Policy::for_issuer(issuer), Limits::default())
    }

    /// A fetcher applying `policy` within `limits`.
    ///
    /// # Errors
    /// If the HTTP client cannot be built.
    pub fn new(policy: Policy, limits: Limits) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .dns_resolver(Arc::new(guard::GuardedResolver::new(policy)))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.timeout)
            .user_agent(concat!("civitas/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BuildError(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                policy,
                limits,
                failures: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// What this fetcher may connect to.
    #[must_use]
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// GETs `url` and parses its body as JSON, reading at most the cap of
    /// `use_`.
    ///
    /// # Errors
    /// [`FetchError`], for every failure alike.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        use_: Use,
    ) -> Result<T, FetchError> {
        if let Some(e) = self.remembered(url) {
            log_failure(use_, url, &e);
            return Err(e);
        }
        let result = match self.get(url, use_).await {
            Ok(body) => serde_json::from_slice(&body).map_err(|_| Reason::NotJson),
            Err(reason) => Err(reason),
        };
        result.map_err(|reason| self.failed(url, use_, reason, true))
    }

    /// POSTs `form` to `url`; success is a 2xx answer, whose body is not read.
    /// Never answered from the failure memory (a POST's callers retry on
    /// their own schedule).
    ///
    /// # Errors
    /// [`FetchError`], for every failure alike.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        use_: Use,
    ) -> Result<(), FetchError> {
        let result = async {
            let url = self.checked(url)?;
            let res = self
                .inner
                .http
                .post(url)
                .form(form)
                .send()
                .await
                .map_err(|e| reason_of(&e))?;
            if res.status().is_success() {
                Ok(())
            } else {
                Err(Reason::Status(res.status().as_u16()))
            }
        }
        .await;
        result.map_err(|reason| self.failed(url, use_, reason, false))
    }

    /// Sends `request` as it is (any method; any status is returned), reading
    /// at most the cap of `use_`: for the `openidconnect` crate ([`Upstream`]).
    /// A failed GET is remembered like [`Self::get_json`]'s.
    pub(crate) async fn execute(
        &self,
        request: openidconnect::HttpRequest,
        use_: Use,
    ) -> Result<openidconnect::HttpResponse, FetchError> {
        let url = request.uri().to_string();
        let get = request.method() == openidconnect::http::Method::GET;
        if get && let Some(e) = self.remembered(&url) {
            log_failure(use_, &url, &e);
            return Err(e);
        }
        let result = async {
            let request = reqwest::Request::try_from(request)
                .map_err(|_| Reason::Refused(Refusal::NotAUrl))?;
            self.inner
                .policy
                .check_url(request.url())
                .map_err(Reason::Refused)?;
            let res = self
                .inner
                .http
                .execute(request)
                .await
                .map_err(|e| reason_of(&e))?;
            let (status, version, headers) = (res.status(), res.version(), res.headers().clone());
            let body = read_capped(res, use_.cap()).await?;
            let mut response = openidconnect::http::Response::new(body.to_vec());
            *response.status_mut() = status;
            *response.version_mut() = version;
            *response.headers_mut() = headers;
            Ok(response)
        }
        .await;
        result.map_err(|reason| self.failed(&url, use_, reason, get))
    }

    /// The fetcher as the `openidconnect` crate's HTTP client, for `use_`.
    #[must_use]
    pub fn upstream(&self, use_: Use) -> Upstream {
        Upstream::new(self.clone(), use_)
    }

    fn checked(&self, url: &str) -> Result<Url, Reason> {
        let url = Url::parse(url).map_err(|_| Reason::Refused(Refusal::NotAUrl))?;
        self.inner.policy.check_url(&url).map_err(Reason::Refused)?;
        Ok(url)
    }

    async fn get(&self, url: &str, use_: Use) -> Result<Bytes, Reason> {
        let url = self.checked(url)?;
        let res = self
            .inner
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| reason_of(&e))?;
        if !res.status().is_success() {
            return Err(Reason::Status(res.status().as_u16()));
        }
        read_capped(res, use_.cap()).await
    }

    /// The failure of `url` remembered within the failure TTL, if any.
    fn remembered(&self, url: &str) -> Option<FetchError> {
        let failures = self
            .inner
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        failures
            .get(url)
            .filter(|(at, _)| at.elapsed() < self.inner.limits.failure_ttl)
            .map(|(_, reason)| FetchError {
                reason: *reason,
                cached: true,
            })
    }

    /// Logs a failure, remembers it if `remember`, and gives the error.
    fn failed(&self, url: &str, use_: Use, reason: Reason, remember: bool) -> FetchError {
        let error = FetchError::new(reason);
        log_failure(use_, url, &error);
        if remember {
            let mut failures = self
                .inner
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if failures.len() >= MAX_FAILURES {
                let ttl = self.inner.limits.failure_ttl;
                failures.retain(|_, (at, _)| at.elapsed() < ttl);
                if failures.len() >= MAX_FAILURES {
                    failures.clear();
                }
            }
            failures.insert(url.to_owned(), (Instant::now(), reason));
        }
        error
    }
}

/// Logs a failed fetch by its host only (a path or query may carry what the
/// log should not): `warn` for a refused address, which someone chose to
/// aim inside the network, `debug` for the rest.
fn log_failure(use_: Use, url: &str, error: &FetchError) {
    let host = Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let (reason, cached) = (error.reason(), error.was_cached());
    match reason {
        Reason::Refused(Refusal::Address(_)) if !cached => tracing::warn!(
            outbound.use = use_.as_str(),
            server.address = %host,
            reason = %reason,
            "outbound fetch refused: the URL aims inside the network"
        ),
        _ => tracing::debug!(
            outbound.use = use_.as_str(),
            server.address = %host,
            reason = %reason,
            cached,
            "outbound fetch failed"
        ),
    }
}

/// The reason in a reqwest error: the resolver's refusal travels in its
/// source chain.
fn reason_of(error: &reqwest::Error) -> Reason {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<guard::RefusedAddress>() {
            return Reason::Refused(Refusal::Address(refused.0));
        }
        if e.downcast_ref::<guard::NotResolved>().is_some() {
            return Reason::NotResolved;
        }
        source = e.source();
    }
    if error.is_timeout() {
        Reason::Timeout
    } else {
        Reason::Connection
    }
}

/// Reads `res`'s body, at most `cap` bytes: a larger `Content-Length` is
/// refused before reading, and reading stops at the first chunk past it.
async fn read_capped(mut res: reqwest::Response, cap: usize) -> Result<Bytes, Reason> {
    let cap_u64 = u64::try_from(cap).unwrap_or(u64::MAX);
    if res.content_length().is_some_and(|n| n > cap_u64) {
        return Err(Reason::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| reason_of(&e))? {
        if body.len() + chunk.len() > cap {
            return Err(Reason::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
}
