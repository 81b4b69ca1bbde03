//! Captures what Civitas logs, at debug level, while a test asks for it:
//! the test binary's one global subscriber writes into a buffer only
//! between `start` and `Capture::finish`.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// How many captures are running.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);
static BUFFER: Mutex<Vec<u8>> = Mutex::new(Vec::new());
static INSTALLED: OnceLock<()> = OnceLock::new();

struct Sink;

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if ACTIVE.load(Ordering::Relaxed) > 0 {
            BUFFER.lock().unwrap().extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A running capture.
pub struct Capture;

/// Starts capturing every log line of the process (all crates, debug and
/// above, with span fields).
pub fn start() -> Capture {
    INSTALLED.get_or_init(|| {
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| Sink)
            .with_filter(tracing_subscriber::filter::filter_fn(|m| {
                ACTIVE.load(Ordering::Relaxed) > 0 && *m.level() <= tracing::Level::DEBUG
            }));
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    });
    ACTIVE.fetch_add(1, Ordering::SeqCst);
    Capture
}

impl Capture {
    /// Stops this capture; everything logged while any capture ran.
    pub fn finish(self) -> String {
        ACTIVE.fetch_sub(1, Ordering::SeqCst);
        String::from_utf8_lossy(&BUFFER.lock().unwrap()).into_owned()
    }
}
