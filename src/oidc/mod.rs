//! The OpenID Provider: authorization, tokens, userinfo, introspection,
//! revocation and logout (OIDC Core 1.0, RFC 6749, RFC 7636, RFC 9700).
//!
//! No HTTP here: each operation takes parsed parameters and returns a domain
//! outcome (redirect with a code, show the sign-in page, an OAuth error …)
//! that `web` turns into a response. [`Provider`] holds the services the
//! protocol needs; its operations are spread over one file per endpoint.

pub mod authorize;
pub mod chooser;
mod client_auth;
pub mod consent;
pub mod discovery;
pub mod grants;
pub mod logout;
mod machine;
pub mod params;
pub mod pending;
pub mod representation;
pub mod subject;
pub mod token;
pub mod tokens;
pub mod userinfo;

use std::sync::Arc;

use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::ephemeral::{Cache, EphemeralError};
use crate::keys::{KeyError, KeyManager};
use crate::store::{Database, StoreError};

pub use client_auth::{ClientCredentials, JwksCache};

/// An OAuth 2.0 error (RFC 6749 §5.2, OIDC Core §3.1.2.6, RFC 6750 §3.1).
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// An error with its RFC code, for the client.
    #[error("{code}: {description}")]
    Protocol {
        /// The RFC error code.
        code: &'static str,
        /// What went wrong, for the developer.
        description: String,
    },
    /// A dependency is unreachable: retry later (503).
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Anything unexpected (500, logged, never shown).
    #[error("internal: {0}")]
    Internal(String),
}

impl OAuthError {
    /// An error with `code`.
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        Self::Protocol {
            code,
            description: description.into(),
        }
    }

    /// `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new("invalid_request", description)
    }

    /// `invalid_grant`.
    pub fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new("invalid_grant", description)
    }

    /// `invalid_client`.
    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new("invalid_client", description)
    }

    /// The RFC code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Protocol { code, .. } => code,
            Self::Unavailable(_) => "temporarily_unavailable",
            Self::Internal(_) => "server_error",
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                Self::Unavailable(e.to_string())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for OAuthError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

impl From<EphemeralError> for OAuthError {
    fn from(e: EphemeralError) -> Self {
        match e {
            EphemeralError::Unavailable(_) => Self::Unavailable(e.to_string()),
            EphemeralError::ZeroTtl => Self::Internal(e.to_string()),
        }
    }
}

impl From<KeyError> for OAuthError {
    fn from(e: KeyError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl From<crate::clients::ClientError> for OAuthError {
    fn from(e: crate::clients::ClientError) -> Self {
        match e {
            crate::clients::ClientError::Store(s) => s.into(),
            other => Self::Internal(other.to_string()),
        }
    }
}

/// The services the protocol uses.
#[derive(Debug, Clone)]
pub struct Provider {
    settings: Arc<Settings>,
    clock: SharedClock,
    db: Database,
    cache: Cache,
    keys: Arc<KeyManager>,
    clients: Clients,
    accounts: Accounts,
    pairwise: subject::PairwiseKey,
    eid_keys: crate::eid::EidKeys,
    mandates: crate::mandates::Mandates,
    outbound: crate::outbound::Fetcher,
    jwks_cache: JwksCache,
    endpoints: Arc<Endpoints>,
}

/// Absolute URLs of the endpoints, computed once.
#[derive(Debug)]
struct Endpoints {
    token: String,
    introspection: String,
    revocation: String,
}

impl Provider {
    /// The provider.
    #[allow(clippy::too_many_arguments)]
    #[must_use]
    pub fn new(
        settings: Arc<Settings>,
        clock: SharedClock,
        db: Database,
        cache: Cache,
        keys: Arc<KeyManager>,
        clients: Clients,
        accounts: Accounts,
        pairwise: subject::PairwiseKey,
        eid_keys: crate::eid::EidKeys,
        mandates: crate::mandates::Mandates,
        outbound: crate::outbound::Fetcher,
    ) -> Self {
        let url = |p: &str| format!("{}{p}", settings.issuer);
        let endpoints = Arc::new(Endpoints {
            token: url(discovery::paths::TOKEN),
            introspection: url(discovery::paths::INTROSPECTION),
            revocation: url(discovery::paths::REVOCATION),
        });
        Self {
            jwks_cache: JwksCache::new(outbound.clone()),
            outbound,
            settings,
            clock,
            db,
            cache,
            keys,
            clients,
            accounts,
            pairwise,
            eid_keys,
            mandates,
            endpoints,
        }
    }

    /// The issuer identifier.
    #[must_use]
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The pairwise key (for the account pages' view of subjects).
    #[must_use]
    pub fn pairwise(&self) -> &subject::PairwiseKey {
        &self.pairwise
    }
}
