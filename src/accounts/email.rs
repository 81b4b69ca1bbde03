//! Email verification: a six-digit one-time code, mailed, valid for fifteen
//! minutes and five attempts. Until it is entered, `email_verified` is false
//! wherever the address is released.
//!
//! Accounts can be made with any address, so besides the web layer's limits
//! per account and client address, one destination gets at most
//! [`MAILS_PER_ADDRESS`] codes an hour, whichever accounts ask: the counter
//! is keyed by the SHA-256 of the lower-cased address, never the address.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AccountId, Accounts};
use crate::ephemeral::{Cache, Ephemeral as _, EphemeralError, Key, Namespace, within_limit};
use crate::mail::{Mail, MailError, Mailer};
use crate::secrets::SecretHash;

const CODE_TTL: Duration = Duration::from_secs(15 * 60);
const MAX_ATTEMPTS: u32 = 5;

/// Codes mailed to one address per [`ADDRESS_WINDOW`], across accounts.
pub const MAILS_PER_ADDRESS: u64 = 5;
/// The window of [`MAILS_PER_ADDRESS`].
pub const ADDRESS_WINDOW: Duration = Duration::from_secs(60 * 60);

/// Why verification failed.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// The account has no email address.
    #[error("there is no email address to verify")]
    NoAddress,
    /// The code is wrong, expired or used up.
    #[error("the code is not valid; request a new one")]
    BadCode,
    /// The address got [`MAILS_PER_ADDRESS`] codes within the window.
    #[error("too many codes were sent to this address recently")]
    AddressRateLimited,
    /// Mail could not be sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The ephemeral store failed.
    #[error(transparent)]
    Cache(#[from] EphemeralError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl EmailError {
    /// What kind of failure this is, for a log line: never its text, which
    /// for mail is often a relay's answer quoting the recipient.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NoAddress => "no_address",
            Self::BadCode => "bad_code",
            Self::AddressRateLimited => "address_rate_limited",
            Self::Mail(MailError::Config(_)) => "mail_config",
            Self::Mail(MailError::Send(_)) => "mail_send",
            Self::Cache(_) => "cache",
            Self::Store(_) => "store",
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Pending {
    hash: String,
    attempts: u32,
}

fn key(account: &AccountId) -> Key {
    Key::new(Namespace::Challenge, format!("email:{}", account.as_str()))
}

/// The per-destination counter's subject: a hash, so the shared store
/// never holds the address.
fn destination(address: &str) -> String {
    let hash = SecretHash::of(&address.trim().to_lowercase());
    format!("email-to:{}", hash.as_str())
}

fn six_digits() -> String {
    let b: [u8; 4] = crate::secrets::random_bytes();
    format!("{:06}", u32::from_be_bytes(b) % 1_000_000)
}

impl Accounts {
    /// Mails a new code to the account's address (replacing any earlier one),
    /// unless that address already got [`MAILS_PER_ADDRESS`] codes within
    /// [`ADDRESS_WINDOW`].
    ///
    /// # Errors
    /// [`EmailError::NoAddress`], [`EmailError::AddressRateLimited`], or if
    /// mail or the store fails.
    pub async fn send_email_code(
        &self,
        cache: &Cache,
        mailer: &Mailer,
        account: &AccountId,
    ) -> Result<(), EmailError> {
        let acc = self.get(account).await?.ok_or(EmailError::NoAddress)?;
        let to = acc.email.ok_or(EmailError::NoAddress)?;
        if !within_limit(cache, &destination(&to), MAILS_PER_ADDRESS, ADDRESS_WINDOW).await? {
            return Err(EmailError::AddressRateLimited);
        }
        let code = six_digits();
        let pending = Pending {
            hash: SecretHash::of(&code).as_str().to_owned(),
            attempts: 0,
        };
        cache
            .put(
                &key(account),
                &serde_json::to_vec(&pending).unwrap_or_default(),
                CODE_TTL,
            )
            .await?;
        let mail = Mail {
            to,
            subject: "Your Civitas verification code".into(),
            body: format!(
                "Your code to verify this email address at Civitas is {code}.\nIt is valid for 15 minutes.\n\
                 If you did not ask for it, you can ignore this message."
            ),
        };
        mailer.send(&mail, self.clock.now()).await?;
        Ok(())
    }

    /// Checks a code; on success the address is verified.
    ///
    /// # Errors
    /// [`EmailError::BadCode`] for a wrong, expired or exhausted code.
    pub async fn verify_email_code(
        &self,
        cache: &Cache,
        account: &AccountId,
        code: &str,
    ) -> Result<(), EmailError> {
        let Some(bytes) = cache.take(&key(account)).await? else {
            return Err(EmailError::BadCode);
        };
        let Ok(mut pending) = serde_json::from_slice::<Pending>(&bytes) else {
            return Err(EmailError::BadCode);
        };
        if SecretHash::from_stored(pending.hash.clone()).verify(code.trim()) {
            self.mark_email_verified(account).await?;
            return Ok(());
        }
        pending.attempts += 1;
        if pending.attempts < MAX_ATTEMPTS {
            // Put it back for the remaining attempts (with a fresh window; the
            // attempt count, not the time, bounds the guessing).
            cache
                .put(
                    &key(account),
                    &serde_json::to_vec(&pending).unwrap_or_default(),
                    CODE_TTL,
                )
                .await?;
        }
        Err(EmailError::BadCode)
    }
}
