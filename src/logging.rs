//! The log subscriber: human-readable text, or one JSON object per line
//! (`log.format`). The level filter is `RUST_LOG` (default
//! `info,sqlx=warn`).
//!
//! In JSON, an event's fields are top-level keys next to `timestamp`,
//! `level` and `message`, and the fields of the request it happened in are
//! under `span`. The request span's fields carry OpenTelemetry's semantic
//! names (`http.request.method`, `url.path`, `http.route`,
//! `http.response.status_code`) plus `request_id`, so that an OpenTelemetry
//! layer can later be added to the subscriber without changing the places
//! that log.

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// The `RUST_LOG` filter, or [`DEFAULT_FILTER`].
#[must_use]
pub fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// A subscriber writing `format` to `writer`, filtered by `filter`.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(writer);
    match format {
        LogFormat::Text => Box::new(builder.finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ),
    }
}

/// Installs the process-wide subscriber writing `format` to standard
/// output, unless one is installed already.
pub fn init(format: LogFormat) {
    use tracing_subscriber::util::SubscriberInitExt as _;
    let _ = subscriber(format, filter_from_env(), std::io::stdout).try_init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Captured output.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Self;
        fn make_writer(&'w self) -> Self {
            self.clone()
        }
    }

    #[test]
    fn json_lines_carry_the_event_and_its_span_fields() {
        let out = Capture::default();
        let sub = subscriber(LogFormat::Json, EnvFilter::new("info"), out.clone());
        tracing::subscriber::with_default(sub, || {
            let span = tracing::info_span!(
                "request",
                http.request.method = "POST",
                url.path = "/token",
                http.response.status_code = tracing::field::Empty,
            );
            let _entered = span.enter();
            span.record("http.response.status_code", 200);
            tracing::info!(client_id = "c1", "token issued");
            tracing::debug!("filtered out");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line = &lines[0];
        assert_eq!(line["message"], "token issued");
        assert_eq!(line["client_id"], "c1");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["span"]["http.request.method"], "POST");
        assert_eq!(line["span"]["url.path"], "/token");
        assert_eq!(line["span"]["http.response.status_code"], 200);
    }

    #[test]
    fn text_lines_are_not_json() {
        let out = Capture::default();
        let sub = subscriber(LogFormat::Text, EnvFilter::new("info"), out.clone());
        tracing::subscriber::with_default(sub, || tracing::info!("hello"));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("hello"));
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }
}
