//! Captures what Civitas logs, at debug level, while a test asks for it:
//! the test binary's one global subscriber writes into a buffer only
//! between `start` and `Capture::finish`. And what must never be logged
//! when a dependency fails.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use civitas::clock::SystemClock;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestEnv};
use crate::on_both_stacks;

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
            // A dynamic filter: a plain `filter_fn` would cache "never" for
            // every callsite first reached while no capture runs.
            .with_filter(tracing_subscriber::filter::dynamic_filter_fn(|m, _| {
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

/// A relay that takes the connection and then refuses every recipient,
/// quoting the address back, as real relays do ("550 5.1.1 <a@b>: …").
/// Its port, and the recipients it was offered.
async fn refusing_relay() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let offered = Arc::new(Mutex::new(Vec::new()));
    let seen = offered.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 relay.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let command = line.to_ascii_uppercase();
                    let reply = if command.starts_with("EHLO") || command.starts_with("HELO") {
                        "250 relay.test".to_owned()
                    } else if command.starts_with("MAIL FROM") {
                        "250 2.1.0 Ok".to_owned()
                    } else if let Some(to) = line.get("RCPT TO:".len()..) {
                        if !command.starts_with("RCPT TO:") {
                            "502 5.5.2 not recognized".to_owned()
                        } else {
                            seen.lock().unwrap().push(to.trim().to_owned());
                            format!("550 5.1.1 {}: Recipient address rejected", to.trim())
                        }
                    } else if command.starts_with("QUIT") {
                        let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        "250 Ok".to_owned()
                    };
                    let _ = write.write_all(format!("{reply}\r\n").as_bytes()).await;
                }
            });
        }
    });
    (port, offered)
}

/// A relay's refusal commonly quotes the recipient; the log line of the
/// failed send names the kind of failure only.
async fn a_refused_verification_mail_leaves_no_address_in_the_log(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let (port, offered) = refusing_relay().await;
    let app = env
        .spawn_with(
            Arc::new(SystemClock),
            &format!("mail.smtp_url = \"smtp://127.0.0.1:{port}\""),
        )
        .await;
    let address = "refused-recipient-7731@example.eu";
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut key, "Rita", address, None).await;
    b.page("/account").await;

    let capture = start();
    let res = b.post_form("/account/email/send", &[]).await;
    let text = capture.finish();
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.ends_with("notice=error"), "{location}");
    assert_eq!(
        offered.lock().unwrap().as_slice(),
        [format!("<{address}>")],
        "the relay was offered the address, and refused it"
    );
    let line = text
        .lines()
        .find(|l| l.contains("verification code not sent") && l.contains("/account/email/send"))
        .unwrap_or_else(|| panic!("no line for the failed send: {text}"));
    assert!(line.contains("error.type=\"mail_send\""), "{line}");
    let leaked: Vec<&str> = text
        .lines()
        .filter(|l| l.to_lowercase().contains("refused-recipient-7731"))
        .collect();
    assert!(leaked.is_empty(), "the address is in the log: {leaked:?}");
}

on_both_stacks!(a_refused_verification_mail_leaves_no_address_in_the_log);
