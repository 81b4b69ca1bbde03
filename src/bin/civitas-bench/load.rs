//! The load engine: one task per connection, each driving its own worker
//! (a scenario's step) for a set duration, either as fast as the server
//! answers (closed loop, for the maximum throughput) or at a fixed total rate
//! (open loop, for latency at a given load). In the open loop a step's
//! latency counts from when it was due, not when it started, so a stalled
//! server cannot hide its queue (no coordinated omission).

use std::time::{Duration, Instant};

/// One step of a scenario (a request, or a whole sign-in flow).
pub trait Worker: Send + 'static {
    /// Runs the step once; `Err` is counted as an error with its reason.
    fn step(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a run measured on the client side.
pub struct Outcome {
    pub latencies: Vec<Duration>,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile in milliseconds (latencies are sorted by `run`).
    pub fn quantile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let n = self.latencies.len();
        let i = ((n as f64 * p) as usize).min(n - 1);
        self.latencies[i].as_secs_f64() * 1e3
    }

    pub fn max_ms(&self) -> f64 {
        self.latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    }
}

/// Runs every worker on its own task for `duration`; with `rate`, the
/// workers together start `rate` steps per second, evenly spread.
pub async fn run<W: Worker>(workers: Vec<W>, duration: Duration, rate: Option<f64>) -> Outcome {
    let n = workers.len().max(1);
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::new();
    for (i, mut worker) in workers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut errors, mut first_error) = (Vec::new(), 0u64, None);
            // Open loop: worker i starts at i/rate and then every n/rate.
            let interval = rate.map(|r| Duration::from_secs_f64(n as f64 / r));
            let mut due = start + interval.map_or(Duration::ZERO, |iv| iv * i as u32 / n as u32);
            loop {
                if let Some(iv) = interval {
                    tokio::time::sleep_until(due.into()).await;
                    due += iv;
                }
                let began = if interval.is_some() {
                    due - interval.unwrap_or_default()
                } else {
                    Instant::now()
                };
                if began >= deadline {
                    break;
                }
                match worker.step().await {
                    Ok(()) => lat.push(began.elapsed()),
                    Err(e) => {
                        errors += 1;
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                    }
                }
            }
            (lat, errors, first_error)
        }));
    }
    let mut out = Outcome {
        latencies: Vec::new(),
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        match t.await {
            Ok((l, e, f)) => {
                out.latencies.extend(l);
                out.errors += e;
                if out.first_error.is_none() {
                    out.first_error = f;
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_error
                    .get_or_insert(format!("a worker panicked: {e}"));
            }
        }
    }
    out.elapsed = start.elapsed().min(duration.max(Duration::from_millis(1)));
    out.latencies.sort_unstable();
    out
}
