//! Operational metrics of one instance, in the Prometheus text format, and
//! the per-day response counts that every instance adds to the database.
//!
//! [`Metrics`] is a field of [`crate::app::Civitas`], so each instance (and
//! each test) counts for itself. The hot path is lock-free: counters are
//! relaxed atomics in fixed arrays, and the per-endpoint series sit in
//! copy-on-write maps (`arc-swap`) keyed by bounded label values (route
//! templates, methods, status codes). A scrape reads them and the database
//! pool's gauges; it never blocks a request.
//!
//! No HTTP here: `web` records each response ([`Endpoint::record`]) and
//! serves [`Metrics::render`] on the metrics listener. `docs/operations.md`
//! lists every metric.

mod exposition;
mod http;
mod labels;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use exposition::CONTENT_TYPE;
pub use http::{Endpoint, UNMATCHED};
pub use labels::{
    Dependency, DependencyError, EidFailure, FailureKind, HttpMethod, PasskeyCeremony,
    PasskeyFailure, SignInMethod, TokenGrant, status_class,
};
pub use stats::{endpoint_stats, unix_day};

use exposition::{Exposition, Kind};
use labels::level_label;

use crate::assurance::Level;
use crate::clock::UnixTime;
use crate::store::{Database, StoreError};

/// How often each instance adds its responses to `endpoint_stats`.
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn counters<const N: usize>() -> [AtomicU64; N] {
    std::array::from_fn(|_| AtomicU64::new(0))
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// The database pool at scrape time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUsage {
    /// Open connections, in use or idle.
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// The most the pool opens (`database.max_connections`).
    pub max: u32,
}

impl PoolUsage {
    /// Reads `db`'s pool.
    #[must_use]
    pub fn of(db: &Database) -> Self {
        let pool = db.pool();
        Self {
            size: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        }
    }
}

/// One instance's counters.
#[derive(Debug)]
pub struct Metrics {
    endpoints: http::Endpoints,
    tokens: [AtomicU64; TokenGrant::ALL.len()],
    /// By method, then level (low, substantial, high, none).
    sign_ins: [[AtomicU64; 4]; SignInMethod::ALL.len()],
    passkey_failures: [[AtomicU64; PasskeyFailure::ALL.len()]; PasskeyCeremony::ALL.len()],
    eid_failures: [AtomicU64; EidFailure::ALL.len()],
    /// By dependency (database, cache), then kind.
    dependency_errors: [[AtomicU64; FailureKind::ALL.len()]; 2],
    flush_failures: AtomicU64,
    flushed: stats::Flushed,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every counter at zero.
    #[must_use]
    pub fn new() -> Self {
        Self {
            endpoints: http::Endpoints::new(),
            tokens: counters(),
            sign_ins: std::array::from_fn(|_| counters()),
            passkey_failures: std::array::from_fn(|_| counters()),
            eid_failures: counters(),
            dependency_errors: std::array::from_fn(|_| counters()),
            flush_failures: AtomicU64::new(0),
            flushed: stats::Flushed::default(),
        }
    }

    /// The figures of the endpoint whose route template is `route`
    /// (`None`: the request matched no route), for [`Endpoint::record`].
    #[must_use]
    pub fn endpoint(&self, route: Option<&str>) -> Arc<Endpoint> {
        self.endpoints.get(route)
    }

    /// The token endpoint issued tokens for `grant`.
    pub fn token_issued(&self, grant: TokenGrant) {
        add(&self.tokens[grant as usize]);
    }

    /// A browser session was established by `method` at `level` (`None`
    /// for a recovery session).
    pub fn signed_in(&self, method: SignInMethod, level: Option<Level>) {
        let level = level.map_or(3, |l| l as usize);
        add(&self.sign_ins[method as usize][level]);
    }

    /// A passkey ceremony step was refused.
    pub fn passkey_failed(&self, ceremony: PasskeyCeremony, reason: PasskeyFailure) {
        add(&self.passkey_failures[ceremony as usize][reason as usize]);
    }

    /// An eID flow failed.
    pub fn eid_failed(&self, reason: EidFailure) {
        add(&self.eid_failures[reason as usize]);
    }

    /// An error answer was caused by a failed dependency.
    pub fn dependency_failed(&self, e: DependencyError) {
        add(&self.dependency_errors[e.dependency as usize][e.kind as usize]);
    }

    /// Adds the responses served since the last flush to `endpoint_stats`,
    /// on the day of `now`; returns how many it added. A failure is counted
    /// (`civitas_endpoint_stats_flush_failures_total`), and its responses
    /// are added by the next flush.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn flush_endpoint_stats(
        &self,
        db: &Database,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let result = self.flushed.flush(&self.endpoints, db, now).await;
        if result.is_err() {
            add(&self.flush_failures);
        }
        result
    }

    /// Every metric in the Prometheus text format 0.0.4 ([`CONTENT_TYPE`]).
    #[must_use]
    pub fn render(&self, pool: PoolUsage) -> String {
        let mut e = Exposition::default();
        e.family(
            "civitas_build_info",
            Kind::Gauge,
            "Always 1; the version of Civitas this instance runs.",
        );
        e.sample(
            "civitas_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
        self.render_http(&mut e);
        self.render_domain(&mut e);
        e.family(
            "civitas_db_pool_connections",
            Kind::Gauge,
            "Open database connections, in use or idle.",
        );
        e.sample("civitas_db_pool_connections", &[], pool.size.into());
        e.family(
            "civitas_db_pool_idle_connections",
            Kind::Gauge,
            "Idle database connections.",
        );
        e.sample("civitas_db_pool_idle_connections", &[], pool.idle.into());
        e.family(
            "civitas_db_pool_max_connections",
            Kind::Gauge,
            "The most connections the pool opens (database.max_connections).",
        );
        e.sample("civitas_db_pool_max_connections", &[], pool.max.into());
        e.finish()
    }

    fn render_http(&self, e: &mut Exposition) {
        let endpoints = self.endpoints.all();
        const REQUESTS: &str = "civitas_http_requests_total";
        e.family(
            REQUESTS,
            Kind::Counter,
            "Responses, by route template (unmatched: no route), method and status code.",
        );
        for endpoint in &endpoints {
            for (method, status, count) in endpoint.series() {
                let status = status.to_string();
                let labels = [
                    ("endpoint", endpoint.name()),
                    ("method", method.label()),
                    ("status", status.as_str()),
                ];
                e.sample(REQUESTS, &labels, count);
            }
        }
        const DURATION: &str = "civitas_http_request_duration_seconds";
        e.family(
            DURATION,
            Kind::Histogram,
            "Time to the response's headers, by route template.",
        );
        for endpoint in &endpoints {
            let (buckets, sum) = endpoint.latency();
            let mut cumulative = 0;
            for (i, count) in buckets.iter().enumerate() {
                cumulative += count;
                let le = http::BUCKETS.get(i).map_or("+Inf", |(le, _)| le);
                let labels = [("endpoint", endpoint.name()), ("le", le)];
                e.sample(&format!("{DURATION}_bucket"), &labels, cumulative);
            }
            let labels = [("endpoint", endpoint.name())];
            e.sample_f64(&format!("{DURATION}_sum"), &labels, sum.as_secs_f64());
            e.sample(&format!("{DURATION}_count"), &labels, cumulative);
        }
    }

    fn render_domain(&self, e: &mut Exposition) {
        const TOKENS: &str = "civitas_tokens_issued_total";
        e.family(
            TOKENS,
            Kind::Counter,
            "Successful token responses, by grant type.",
        );
        for grant in TokenGrant::ALL {
            let count = read(&self.tokens[grant as usize]);
            e.sample(TOKENS, &[("grant_type", grant.label())], count);
        }
        const SIGN_INS: &str = "civitas_sign_ins_total";
        e.family(
            SIGN_INS,
            Kind::Counter,
            "Browser sessions established, by method and level of assurance (none: a recovery session).",
        );
        for method in SignInMethod::ALL {
            let levels: &[Option<Level>] = if method.has_level() {
                &[
                    Some(Level::Low),
                    Some(Level::Substantial),
                    Some(Level::High),
                ]
            } else {
                &[None]
            };
            for level in levels {
                let count = read(&self.sign_ins[method as usize][level.map_or(3, |l| l as usize)]);
                let labels = [("method", method.label()), ("level", level_label(*level))];
                e.sample(SIGN_INS, &labels, count);
            }
        }
        const FAILURES: &str = "civitas_ceremony_failures_total";
        e.family(
            FAILURES,
            Kind::Counter,
            "Refused passkey ceremony steps and failed eID flows, by ceremony and reason.",
        );
        for ceremony in PasskeyCeremony::ALL {
            for reason in PasskeyFailure::ALL {
                let count = read(&self.passkey_failures[ceremony as usize][reason as usize]);
                let labels = [("ceremony", ceremony.label()), ("reason", reason.label())];
                e.sample(FAILURES, &labels, count);
            }
        }
        for reason in EidFailure::ALL {
            let count = read(&self.eid_failures[reason as usize]);
            e.sample(
                FAILURES,
                &[("ceremony", "eid"), ("reason", reason.label())],
                count,
            );
        }
        for (dependency, name, what) in [
            (
                Dependency::Database,
                "civitas_database_errors_total",
                "database",
            ),
            (
                Dependency::Cache,
                "civitas_cache_errors_total",
                "cache (ephemeral store)",
            ),
        ] {
            e.family(
                name,
                Kind::Counter,
                &format!("Error answers caused by the {what}: unavailable (503) or other (500)."),
            );
            for kind in FailureKind::ALL {
                let count = read(&self.dependency_errors[dependency as usize][kind as usize]);
                e.sample(name, &[("kind", kind.label())], count);
            }
        }
        const FLUSH: &str = "civitas_endpoint_stats_flush_failures_total";
        e.family(
            FLUSH,
            Kind::Counter,
            "Failed writes of the per-day response counts to the database (retried at the next flush).",
        );
        e.sample(FLUSH, &[], read(&self.flush_failures));
    }
}

#[cfg(test)]
mod tests;
