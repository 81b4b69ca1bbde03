//! Citizen accounts: an internal opaque id, a display name and an email.
//!
//! Credentials (passkeys, eID bindings) and sessions refer to the account id,
//! never to the email or display name, which the citizen may change.

pub mod email;
pub mod erasure;
pub mod export;
pub mod lock;
pub mod recovery;
pub mod roles;
pub mod summary;

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::Row as _;

use crate::clock::{SharedClock, UnixTime};
use crate::secrets::random_token;
use crate::store::{Database, StoreError, flag};

/// Why an operator's action on an account failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// No such account (or it was erased).
    #[error("no such account")]
    NotFound,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ephemeral store failed (sessions could not be ended).
    #[error(transparent)]
    Cache(#[from] crate::ephemeral::EphemeralError),
    /// The eID binding could not be read (export).
    #[error(transparent)]
    Eid(#[from] crate::eid::EidError),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// An account's internal identifier (128 random bits).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    /// A new identifier.
    #[must_use]
    pub fn generate() -> Self {
        Self(random_token(16))
    }

    /// Wraps a stored identifier.
    #[must_use]
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The identifier.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountId({})", self.0)
    }
}

/// A citizen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Internal identifier.
    pub id: AccountId,
    /// The name the citizen chose to be greeted with.
    pub display_name: String,
    /// Contact address, if given.
    pub email: Option<String>,
    /// Has the citizen proved control of the address?
    pub email_verified: bool,
    /// When the account was created.
    pub created_at: UnixTime,
}

/// The account store.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub(crate) db: Database,
    pub(crate) clock: SharedClock,
}

impl Accounts {
    /// The store on `db`.
    #[must_use]
    pub fn new(db: Database, clock: SharedClock) -> Self {
        Self { db, clock }
    }

    /// Creates an account.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn create(
        &self,
        display_name: &str,
        email: Option<&str>,
    ) -> Result<Account, StoreError> {
        let account = Account {
            id: AccountId::generate(),
            display_name: display_name.to_owned(),
            email: email.map(str::to_owned),
            email_verified: false,
            created_at: self.clock.now(),
        };
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "INSERT INTO accounts (account_id, display_name, email, email_verified, created_at) \
             VALUES ($1, $2, $3, 0, $4)",
        )
        .bind(account.id.as_str())
        .bind(&account.display_name)
        .bind(account.email.clone())
        .bind(account.created_at.0)
        .execute(&mut *tx)
        .await?;
        let event = crate::audit::Event::citizen(crate::audit::Kind::AccountCreated, &account.id);
        crate::audit::record(&mut tx, &event, account.created_at).await?;
        tx.commit().await?;
        Ok(account)
    }

    /// The account with this id.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn get(&self, id: &AccountId) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(
            "SELECT account_id, display_name, email, email_verified, created_at FROM accounts WHERE account_id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|r| {
            Ok(Account {
                id: AccountId::new(r.try_get::<String, _>("account_id")?),
                display_name: r.try_get("display_name")?,
                email: r.try_get("email")?,
                email_verified: flag(r.try_get("email_verified")?),
                created_at: UnixTime(r.try_get("created_at")?),
            })
        })
        .transpose()
    }

    /// Records that the citizen proved control of their email address.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn mark_email_verified(&self, id: &AccountId) -> Result<(), StoreError> {
        let mut tx = self.db.begin().await?;
        sqlx::query("UPDATE accounts SET email_verified = 1 WHERE account_id = $1")
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
        let event = crate::audit::Event::citizen(crate::audit::Kind::EmailVerified, id);
        crate::audit::record(&mut tx, &event, self.clock.now()).await?;
        tx.commit().await?;
        Ok(())
    }
}
