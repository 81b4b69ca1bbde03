//! Starting and stopping a server: binds, spawns the background tasks, serves
//! with graceful shutdown. Used by `civitas serve` and by the tests, which
//! start instances in-process on port 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app::{Civitas, StartError};
use crate::clock::SharedClock;
use crate::config::Settings;

/// How long in-flight requests may take to finish after a stop signal; the
/// instance exits after that even if some are still running.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// A server running in the background of the current runtime.
#[derive(Debug)]
pub struct RunningServer {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The address of its metrics listener, if it has one.
    pub metrics_addr: Option<SocketAddr>,
    /// Its services.
    pub app: Arc<Civitas>,
    stop: watch::Sender<bool>,
    /// The audit upkeep stops last, after the requests that write entries.
    audit_stop: watch::Sender<bool>,
    audit: JoinHandle<()>,
    server: JoinHandle<std::io::Result<()>>,
    metrics_server: Option<JoinHandle<std::io::Result<()>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// How long a background task may take to finish after the stop signal.
const TASK_GRACE: Duration = Duration::from_secs(5);

impl RunningServer {
    /// Reports not ready, keeps serving for `drain_delay`, then stops
    /// accepting connections, lets in-flight
    /// requests finish (for at most [`SHUTDOWN_GRACE`]), stops the background
    /// tasks and the metrics listener, adds the last responses to
    /// `endpoint_stats` and closes the database pool. Idle keep-alive
    /// connections are closed at once; a busy one after its current response.
    ///
    /// # Errors
    /// If the server task failed, or in-flight requests were still running
    /// after the grace period (they are then cut off).
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.app.start_draining();
        // Keep serving while load balancers notice `/readyz` saying draining.
        let delay = self.app.settings.drain_delay;
        if !delay.is_zero() {
            tracing::info!(
                seconds = delay.as_secs(),
                "draining: still serving until load balancers notice"
            );
            tokio::time::sleep(delay).await;
        }
        let _ = self.stop.send(true);
        let mut server = self.server;
        let result = match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => Err(std::io::Error::other(e)),
            Err(_) => {
                server.abort();
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "in-flight requests did not finish within {}s; they were cut off",
                        SHUTDOWN_GRACE.as_secs()
                    ),
                ))
            }
        };
        // The background tasks end at the stop signal, after finishing what
        // they are doing; one that takes longer than a few seconds is cut
        // off. The audit task is stopped only now that no request writes
        // entries any more: it seals them and signs a last checkpoint.
        for mut t in self.tasks {
            if tokio::time::timeout(TASK_GRACE, &mut t).await.is_err() {
                t.abort();
            }
        }
        let _ = self.audit_stop.send(true);
        let mut audit = self.audit;
        if tokio::time::timeout(TASK_GRACE, &mut audit).await.is_err() {
            tracing::warn!("the audit upkeep did not finish its last checkpoint within 5 s");
            audit.abort();
        }
        if let Some(metrics) = self.metrics_server {
            // It stopped accepting with the public listener; a scrape in
            // progress is small.
            if tokio::time::timeout(Duration::from_secs(5), metrics)
                .await
                .is_err()
            {
                tracing::warn!("the metrics listener did not stop within 5 s");
            }
        }
        flush_endpoint_stats(&self.app).await;
        self.app.db.close().await;
        result
    }

    /// Waits until `signal` completes, then shuts down gracefully.
    ///
    /// # Errors
    /// If the server task failed.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        signal.await;
        tracing::info!("shutting down: finishing in-flight requests");
        self.shutdown().await
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Binds `settings.listen` and `settings.metrics.listen`, and serves.
///
/// # Errors
/// If an address cannot be bound or the services cannot start.
pub async fn start(settings: Settings, clock: SharedClock) -> Result<RunningServer, StartError> {
    let listener = bind(settings.listen_addr()?).await?;
    let metrics = bind(settings.metrics_addr()?).await?;
    start_with_metrics(listener, Some(metrics), settings, clock).await
}

/// Serves on an already bound listener (tests bind port 0 first, so that the
/// issuer URL can name the port), without a metrics listener.
///
/// # Errors
/// If the services cannot start.
pub async fn start_on(
    listener: TcpListener,
    settings: Settings,
    clock: SharedClock,
) -> Result<RunningServer, StartError> {
    start_with_metrics(listener, None, settings, clock).await
}

/// Serves on an already bound listener, and `/metrics` on `metrics` if
/// given (`settings.metrics.listen` is then not used).
///
/// # Errors
/// If the services cannot start.
pub async fn start_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    settings: Settings,
    clock: SharedClock,
) -> Result<RunningServer, StartError> {
    let local = |l: &TcpListener, name: &str| {
        l.local_addr().map_err(|source| StartError::Listen {
            addr: name.to_owned(),
            source,
        })
    };
    let addr = local(&listener, &settings.listen)?;
    let metrics_addr = match &metrics {
        Some(l) => Some(local(l, &settings.metrics.listen)?),
        None => None,
    };
    let app = Arc::new(Civitas::build(settings, clock).await?);
    let (stop, stopped) = watch::channel(false);
    let router = crate::web::router(app.clone());
    let mut signal = stopped.clone();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = signal.wait_for(|s| *s).await;
        })
        .await
    });
    let metrics_server = metrics.map(|listener| {
        let router = crate::web::metrics::router(app.clone());
        let mut signal = stopped.clone();
        tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = signal.wait_for(|s| *s).await;
                })
                .await
        })
    });
    let tasks = vec![
        tokio::spawn(reload_keys(app.clone(), stopped.clone())),
        tokio::spawn(deliver_logouts(app.clone(), stopped.clone())),
        tokio::spawn(record_endpoint_stats(app.clone(), stopped)),
    ];
    let anchor = start_checkpoint(&app).await;
    let (audit_stop, audit_stopped) = watch::channel(false);
    let audit = tokio::spawn(audit_upkeep(app.clone(), anchor, audit_stopped));
    Ok(RunningServer {
        addr,
        metrics_addr,
        app,
        stop,
        audit_stop,
        audit,
        server,
        metrics_server,
        tasks,
    })
}

/// Re-reads the keys directory every reload interval, or sooner when a key's
/// state is due to change (activation or end of publication).
async fn reload_keys(app: Arc<Civitas>, mut stopped: watch::Receiver<bool>) {
    let interval = app
        .settings
        .keys
        .reload_interval
        .max(Duration::from_secs(1));
    loop {
        let wait = app
            .keys
            .secs_until_next_change()
            .map_or(interval, |s| interval.min(Duration::from_secs(s.max(1))));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        match app.keys.refresh() {
            Ok(true) => tracing::info!("signing keys reloaded"),
            Ok(false) => {}
            Err(e) => {
                tracing::error!(error = %e, "signing keys could not be reloaded; keeping the current ones")
            }
        }
    }
}

/// How often each instance seals the audit entries written meanwhile.
const SEAL_EVERY: Duration = Duration::from_millis(200);

/// How soon a checkpoint that could not be signed (the database failed) is
/// tried again.
const CHECKPOINT_RETRY: Duration = Duration::from_secs(5);

/// Before serving: seals what an instance that stopped or crashed left,
/// and signs (and exports) a checkpoint of the head, so that those entries
/// are covered at once. A failure is logged; the upkeep tries again.
async fn start_checkpoint(app: &Civitas) -> crate::audit::anchor::Anchor {
    let mut anchor = crate::audit::anchor::Anchor::new(app.settings.audit.checkpoint_file.clone());
    if let Err(e) = crate::audit::seal(&app.db).await {
        tracing::warn!(error = %e, "audit entries could not be sealed at start; retrying");
    }
    match anchor.checkpoint(&app.db, &app.keys, app.clock.now()).await {
        Ok(_) => {}
        Err(e) if e.is_refusal() => tracing::error!(error = %e, "audit checkpoint refused"),
        Err(e) => {
            tracing::warn!(error = %e, "audit checkpoint could not be signed at start; retrying")
        }
    }
    anchor
}

/// Keeps the audit log: seals the entries written since the last round
/// every [`SEAL_EVERY`]; signs a checkpoint of the chain's head every
/// `audit.checkpoint_interval` (the first was signed at start), and exports
/// the ones it stored to `audit.checkpoint_file` and the log; removes
/// entries past `audit.retention` every hour. Stopped after the server has
/// finished its requests, it seals and signs once more, so that what they
/// wrote is covered.
async fn audit_upkeep(
    app: Arc<Civitas>,
    mut anchor: crate::audit::anchor::Anchor,
    mut stopped: watch::Receiver<bool>,
) {
    let interval = app.settings.audit.checkpoint_interval;
    let mut next_checkpoint = tokio::time::Instant::now() + interval;
    let mut last_prune = None::<tokio::time::Instant>;
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(SEAL_EVERY) => false,
            _ = stopped.wait_for(|s| *s) => true,
        };
        if let Err(e) = crate::audit::seal(&app.db).await {
            tracing::warn!(error = %e, "audit entries could not be sealed; retrying");
            if !stopping {
                continue;
            }
        }
        let now = app.clock.now();
        if stopping || tokio::time::Instant::now() >= next_checkpoint {
            let result = anchor.checkpoint(&app.db, &app.keys, now).await;
            // A refusal (the log was tampered with) is reported once an
            // interval; a passing failure is tried again soon.
            next_checkpoint = tokio::time::Instant::now()
                + match &result {
                    Err(e) if !e.is_refusal() => CHECKPOINT_RETRY.min(interval),
                    _ => interval,
                };
            match result {
                Ok(_) => {}
                Err(e) if e.is_refusal() => tracing::error!(error = %e, "audit checkpoint refused"),
                Err(e) => {
                    tracing::warn!(error = %e, "audit checkpoint could not be signed; retrying")
                }
            }
        }
        if stopping {
            return;
        }
        if last_prune.is_none_or(|t| t.elapsed() >= Duration::from_secs(3_600)) {
            last_prune = Some(tokio::time::Instant::now());
            let cutoff = crate::clock::UnixTime(
                now.0 - i64::try_from(app.settings.audit.retention.as_secs()).unwrap_or(i64::MAX),
            );
            match crate::audit::retention::prune(&app.db, &app.keys, cutoff, now).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(entries = n, "audit entries past retention removed"),
                Err(e) if e.is_refusal() => tracing::error!(error = %e, "audit retention refused"),
                Err(e) => tracing::warn!(error = %e, "audit retention could not run"),
            }
        }
    }
}

/// Sends due back-channel logout tokens, every second.
async fn deliver_logouts(app: Arc<Civitas>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        if let Err(e) = app.oidc.deliver_logouts().await {
            tracing::warn!(error = %e, "back-channel logout queue could not be processed");
        }
    }
}

/// Adds this instance's responses to `endpoint_stats` every
/// [`crate::metrics::FLUSH_INTERVAL`]; shutdown adds the rest.
async fn record_endpoint_stats(app: Arc<Civitas>, mut stopped: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(crate::metrics::FLUSH_INTERVAL) => {}
            _ = stopped.wait_for(|s| *s) => return,
        }
        flush_endpoint_stats(&app).await;
    }
}

async fn flush_endpoint_stats(app: &Civitas) {
    if let Err(e) = app
        .metrics
        .flush_endpoint_stats(&app.db, app.clock.now())
        .await
    {
        tracing::warn!(error = %e, "response counts could not be written to endpoint_stats; retrying at the next flush");
    }
}
