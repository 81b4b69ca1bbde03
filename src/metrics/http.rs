//! Responses per endpoint: counters by method and status, and a latency
//! histogram. Recording a response costs a map look-up by the route
//! template, a short scan and a few relaxed atomic additions; no lock and
//! no allocation once the endpoint, method and status have been seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;

use super::labels::HttpMethod;

/// The endpoint label of requests that matched no route: one value, so that
/// scanning for paths creates no series.
pub const UNMATCHED: &str = "unmatched";

/// At most this many endpoints are kept; later ones count as
/// [`UNMATCHED`]. The router has far fewer routes: this is a safety net.
const MAX_ENDPOINTS: usize = 256;

/// Upper bounds of the latency buckets, in seconds (Prometheus's defaults
/// from 1 ms), and in microseconds for comparison.
pub(super) const BUCKETS: [(&str, u64); 13] = [
    ("0.001", 1_000),
    ("0.0025", 2_500),
    ("0.005", 5_000),
    ("0.01", 10_000),
    ("0.025", 25_000),
    ("0.05", 50_000),
    ("0.1", 100_000),
    ("0.25", 250_000),
    ("0.5", 500_000),
    ("1", 1_000_000),
    ("2.5", 2_500_000),
    ("5", 5_000_000),
    ("10", 10_000_000),
];

/// The responses of one method and status at one endpoint.
#[derive(Debug)]
pub(super) struct Series {
    pub(super) method: HttpMethod,
    pub(super) status: u16,
    pub(super) count: AtomicU64,
}

/// One route template's figures.
#[derive(Debug)]
pub struct Endpoint {
    name: Arc<str>,
    /// Copy-on-write: a new (method, status) pair replaces the list; the
    /// counters themselves are shared between the old and the new list.
    series: ArcSwap<Vec<Arc<Series>>>,
    /// Per bucket (not cumulative), the last one for slower than 10 s.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Endpoint {
    fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            series: ArcSwap::from_pointee(Vec::new()),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// The route template (or [`UNMATCHED`]).
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn name_arc(&self) -> Arc<str> {
        Arc::clone(&self.name)
    }

    /// Counts one response and its latency.
    pub fn record(&self, method: HttpMethod, status: u16, elapsed: Duration) {
        let found = self
            .series
            .load()
            .iter()
            .find(|s| s.method == method && s.status == status)
            .map(|s| s.count.fetch_add(1, Ordering::Relaxed))
            .is_some();
        if !found {
            self.add_series(method, status);
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS
            .iter()
            .position(|(_, bound)| micros <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The slow path: the first response of a (method, status) pair.
    #[cold]
    fn add_series(&self, method: HttpMethod, status: u16) {
        let mut counted = false;
        self.series.rcu(|list| {
            if let Some(s) = list
                .iter()
                .find(|s| s.method == method && s.status == status)
            {
                // Another thread added it meanwhile.
                if !counted {
                    s.count.fetch_add(1, Ordering::Relaxed);
                    counted = true;
                }
                return Arc::clone(list);
            }
            let mut list = Vec::clone(list);
            list.push(Arc::new(Series {
                method,
                status,
                count: AtomicU64::new(1),
            }));
            Arc::new(list)
        });
    }

    /// The (method, status, count) series, sorted.
    pub(super) fn series(&self) -> Vec<(HttpMethod, u16, u64)> {
        let mut out: Vec<_> = self
            .series
            .load()
            .iter()
            .map(|s| (s.method, s.status, s.count.load(Ordering::Relaxed)))
            .collect();
        out.sort_unstable();
        out
    }

    /// The histogram: per-bucket counts (not cumulative) and the sum.
    pub(super) fn latency(&self) -> ([u64; BUCKETS.len() + 1], Duration) {
        let counts = std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed));
        let sum = Duration::from_micros(self.sum_micros.load(Ordering::Relaxed));
        (counts, sum)
    }
}

/// The endpoints seen so far, by route template.
#[derive(Debug)]
pub(super) struct Endpoints {
    map: ArcSwap<HashMap<Arc<str>, Arc<Endpoint>>>,
}

impl Endpoints {
    pub(super) fn new() -> Self {
        Self {
            map: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// The endpoint of `route`, created on first use; `None` is
    /// [`UNMATCHED`].
    pub(super) fn get(&self, route: Option<&str>) -> Arc<Endpoint> {
        let name = route.unwrap_or(UNMATCHED);
        if let Some(e) = self.map.load().get(name) {
            return Arc::clone(e);
        }
        self.insert(name)
    }

    #[cold]
    fn insert(&self, name: &str) -> Arc<Endpoint> {
        let mut found = None;
        self.map.rcu(|map| {
            let key = if map.len() >= MAX_ENDPOINTS && !map.contains_key(name) {
                UNMATCHED
            } else {
                name
            };
            if let Some(e) = map.get(key) {
                found = Some(Arc::clone(e));
                return Arc::clone(map);
            }
            let endpoint = Arc::new(Endpoint::new(key));
            found = Some(Arc::clone(&endpoint));
            let mut map = HashMap::clone(map);
            map.insert(Arc::clone(&endpoint.name), endpoint);
            Arc::new(map)
        });
        found.unwrap_or_else(|| Arc::new(Endpoint::new(UNMATCHED)))
    }

    /// Every endpoint, sorted by name.
    pub(super) fn all(&self) -> Vec<Arc<Endpoint>> {
        let mut all: Vec<_> = self.map.load().values().cloned().collect();
        all.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_counted_by_method_and_status_and_timed() {
        let endpoints = Endpoints::new();
        let token = endpoints.get(Some("/token"));
        token.record(HttpMethod::Post, 200, Duration::from_micros(800));
        token.record(HttpMethod::Post, 200, Duration::from_millis(30));
        token.record(HttpMethod::Post, 400, Duration::from_secs(11));
        endpoints
            .get(Some("/token"))
            .record(HttpMethod::Get, 405, Duration::ZERO);
        assert_eq!(
            token.series(),
            [
                (HttpMethod::Get, 405, 1),
                (HttpMethod::Post, 200, 2),
                (HttpMethod::Post, 400, 1)
            ]
        );
        let (buckets, sum) = token.latency();
        assert_eq!(buckets[0], 2, "800 µs and zero are within 1 ms");
        assert_eq!(buckets[5], 1, "30 ms is within 50 ms");
        assert_eq!(buckets[BUCKETS.len()], 1, "11 s is beyond the last bound");
        assert_eq!(
            sum,
            Duration::from_micros(800) + Duration::from_millis(30) + Duration::from_secs(11)
        );
    }

    #[test]
    fn unmatched_and_excess_endpoints_share_one_series() {
        let endpoints = Endpoints::new();
        assert_eq!(endpoints.get(None).name(), UNMATCHED);
        for i in 0..MAX_ENDPOINTS + 10 {
            endpoints.get(Some(&format!("/route/{i}")));
        }
        assert_eq!(endpoints.all().len(), MAX_ENDPOINTS);
        assert_eq!(endpoints.get(Some("/one/too/many")).name(), UNMATCHED);
        assert_eq!(endpoints.get(Some("/route/3")).name(), "/route/3");
    }

    #[test]
    fn concurrent_first_responses_are_all_counted() {
        let endpoints = Arc::new(Endpoints::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let endpoints = Arc::clone(&endpoints);
                std::thread::spawn(move || {
                    for status in 200..240 {
                        endpoints
                            .get(Some("/x"))
                            .record(HttpMethod::Get, status, Duration::ZERO);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let series = endpoints.get(Some("/x")).series();
        assert_eq!(series.len(), 40);
        assert!(series.iter().all(|(_, _, n)| *n == 4), "{series:?}");
    }
}
