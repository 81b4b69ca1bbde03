//! Metrics over HTTP: the router of the separate metrics listener
//! (`GET /metrics`, never mounted on the public router), and the layer that
//! counts and times every response of the public router.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::{HeaderValue, Request, Response, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tower::{Layer, Service};

use crate::app::Civitas;
use crate::metrics::{DependencyError, Endpoint, HttpMethod, PoolUsage};

/// The router of the metrics listener: `/metrics` and nothing else.
pub fn router(app: Arc<Civitas>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(app)
}

async fn metrics(State(app): State<Arc<Civitas>>) -> axum::response::Response {
    let body = app.metrics.render(PoolUsage::of(&app.db));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// A failed dependency behind an error answer, carried from `error.rs` to
/// [`Record`] in a response extension.
#[derive(Debug, Clone, Copy)]
pub(super) struct DependencyFailure(pub(super) DependencyError);

/// Counts every response by route template, method and status, times it,
/// and counts the dependency failures error answers report. It sits inside
/// the internal-error logger (which replaces those answers) and outside
/// panic catching, so it sees the final status of every response.
#[derive(Clone)]
pub(super) struct RecordLayer {
    app: Arc<Civitas>,
}

impl RecordLayer {
    pub(super) fn new(app: Arc<Civitas>) -> Self {
        Self { app }
    }
}

impl<S> Layer<S> for RecordLayer {
    type Service = Record<S>;

    fn layer(&self, inner: S) -> Record<S> {
        Record {
            inner,
            app: Arc::clone(&self.app),
        }
    }
}

/// The service of [`RecordLayer`].
#[derive(Clone)]
pub(super) struct Record<S> {
    inner: S,
    app: Arc<Civitas>,
}

impl<S, B, R> Service<Request<B>> for Record<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Recorded<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The route template, never the path: bounded, and free of ids.
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let endpoint = self.app.metrics.endpoint(route);
        let method = HttpMethod::parse(req.method().as_str());
        Recorded {
            inner: self.inner.call(req),
            endpoint,
            app: Arc::clone(&self.app),
            method,
            start: Instant::now(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Record`].
    pub(super) struct Recorded<F> {
        #[pin]
        inner: F,
        endpoint: Arc<Endpoint>,
        app: Arc<Civitas>,
        method: HttpMethod,
        start: Instant,
    }
}

impl<F, R, E> Future for Recorded<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(res) = &result {
            this.endpoint
                .record(*this.method, res.status().as_u16(), this.start.elapsed());
            if let Some(DependencyFailure(e)) = res.extensions().get() {
                this.app.metrics.dependency_failed(*e);
            }
        }
        Poll::Ready(result)
    }
}
