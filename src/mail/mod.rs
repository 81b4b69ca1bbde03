//! Outgoing mail: one-time email verification codes.
//!
//! By default mail goes to an outbox folder (`data/outbox`), one `.eml` file
//! per message, which developers and tests read. In production,
//! `mail.smtp_url` sends through an SMTP relay (lettre, STARTTLS or TLS).

use std::path::PathBuf;

use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

use crate::clock::UnixTime;
use crate::config::MailSettings;
use crate::secrets::random_token;

/// Why mail could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The configuration is wrong (bad SMTP URL or sender).
    #[error("mail configuration: {0}")]
    Config(String),
    /// The message could not be written or sent.
    #[error("mail could not be sent: {0}")]
    Send(String),
}

/// A message.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub body: String,
}

/// Where mail goes.
#[derive(Clone)]
pub enum Mailer {
    /// Files in a folder.
    Outbox(PathBuf),
    /// An SMTP relay.
    Smtp {
        /// The transport.
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The sender.
        from: String,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Outbox(p) => f.debug_tuple("Outbox").field(p).finish(),
            Self::Smtp { from, .. } => f
                .debug_struct("Smtp")
                .field("from", from)
                .finish_non_exhaustive(),
        }
    }
}

impl Mailer {
    /// The mailer the settings describe.
    ///
    /// # Errors
    /// If the SMTP URL is invalid.
    pub fn from_settings(settings: &MailSettings) -> Result<Self, MailError> {
        match &settings.smtp_url {
            None => Ok(Self::Outbox(settings.outbox_dir.clone())),
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
                    .map_err(|e| MailError::Config(e.to_string()))?
                    .build();
                Ok(Self::Smtp {
                    transport,
                    from: settings.from.clone(),
                })
            }
        }
    }

    /// Sends `mail`.
    ///
    /// # Errors
    /// If it cannot be written or sent.
    pub async fn send(&self, mail: &Mail, now: UnixTime) -> Result<(), MailError> {
        match self {
            Self::Outbox(dir) => {
                tokio::fs::create_dir_all(dir)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))?;
                let file = dir.join(format!("{}-{}.eml", now.0, random_token(6)));
                let text = format!(
                    "To: {}\nSubject: {}\n\n{}\n",
                    mail.to, mail.subject, mail.body
                );
                tokio::fs::write(&file, text)
                    .await
                    .map_err(|e| MailError::Send(e.to_string()))
            }
            Self::Smtp { transport, from } => {
                let message = Message::builder()
                    .from(from.parse().map_err(|e: lettre::address::AddressError| {
                        MailError::Config(e.to_string())
                    })?)
                    .to(mail
                        .to
                        .parse()
                        .map_err(|e: lettre::address::AddressError| {
                            MailError::Send(e.to_string())
                        })?)
                    .subject(&mail.subject)
                    .body(mail.body.clone())
                    .map_err(|e| MailError::Send(e.to_string()))?;
                transport
                    .send(message)
                    .await
                    .map(|_| ())
                    .map_err(|e| MailError::Send(e.to_string()))
            }
        }
    }
}
