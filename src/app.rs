//! The composed domain: every service an instance needs, built once at
//! start-up from its [`Settings`]. No HTTP here; `web` holds an
//! `Arc<Civitas>` as its state and `cli` uses it for operator commands.

use std::sync::Arc;

use bytes::Bytes;

use crate::accounts::Accounts;
use crate::clients::Clients;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::ephemeral::{Cache, Ephemeral as _, EphemeralError};
use crate::keys::{KeyError, KeyManager};
use crate::oidc::Provider;
use crate::oidc::discovery::{DiscoveryInput, ProviderMetadata};
use crate::oidc::subject::PairwiseKey;
use crate::sessions::Sessions;
use crate::store::{Database, StoreError};

/// Why an instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Configuration.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Database connection or migration.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Cache URL.
    #[error(transparent)]
    Cache(#[from] EphemeralError),
    /// Signing keys.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// WebAuthn relying-party configuration.
    #[error(transparent)]
    Passkeys(#[from] crate::passkeys::PasskeyError),
    /// Mail configuration.
    #[error(transparent)]
    Mail(#[from] crate::mail::MailError),
    /// The eID connector key.
    #[error("eID connector: {0}")]
    Eid(String),
    /// The outbound HTTP client.
    #[error(transparent)]
    Outbound(#[from] crate::outbound::BuildError),
    /// The listen address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
}

/// One instance's services.
#[derive(Debug)]
pub struct Civitas {
    /// Its settings.
    pub settings: Settings,
    /// The time.
    pub clock: SharedClock,
    /// Durable storage.
    pub db: Database,
    /// Ephemeral state.
    pub cache: Cache,
    /// Signing keys.
    pub keys: Arc<KeyManager>,
    /// Relying parties.
    pub clients: Clients,
    /// Citizens.
    pub accounts: Accounts,
    /// Browser sessions.
    pub sessions: Sessions,
    /// The OpenID Provider.
    pub oidc: Provider,
    /// Passkey ceremonies and credentials.
    pub passkeys: crate::passkeys::Passkeys,
    /// Outgoing mail.
    pub mailer: crate::mail::Mailer,
    /// Keys of the eID binding table.
    pub eid_keys: crate::eid::EidKeys,
    /// National eID connectors.
    pub eid: crate::eid::connector::Connectors,
    /// Organizations and representation mandates.
    pub mandates: crate::mandates::Mandates,
    /// This instance's operational metrics.
    pub metrics: crate::metrics::Metrics,
    discovery: Bytes,
    /// Set once a graceful shutdown has begun: `/readyz` then answers 503.
    draining: std::sync::atomic::AtomicBool,
}

/// Health of the instance's dependencies (`/readyz`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Does the database answer?
    pub database: bool,
    /// Does the cache answer?
    pub cache: bool,
    /// Is the instance shutting down (finishing in-flight requests)?
    pub draining: bool,
}

impl Civitas {
    /// Connects to the database (applying migrations), opens the cache and
    /// loads (or on first start generates) the signing keys.
    ///
    /// # Errors
    /// If any of them fails.
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartError> {
        let db = Database::connect(&settings.database_url, &settings.database).await?;
        db.migrate().await?;
        let adopted = crate::audit::adopt_legacy(&db, clock.now()).await?;
        if adopted > 0 {
            tracing::info!(
                entries = adopted,
                "audit entries of an earlier version chained"
            );
        }
        crate::clients::sector::fill_legacy(&db).await?;
        let cache = Cache::open(&settings.cache_url, &settings.cache_prefix)?;
        let keys = KeyManager::open(
            &settings.keys_dir,
            clock.clone(),
            key_retention_secs(&settings),
        )?;
        let discovery = ProviderMetadata::new(&DiscoveryInput {
            issuer: &settings.issuer,
            registration_enabled: settings.registration_token.is_some(),
        })
        .to_bytes();
        let keys = Arc::new(keys);
        let outbound = crate::outbound::Fetcher::for_issuer(&settings.issuer)?;
        let clients = Clients::new(db.clone(), clock.clone(), outbound.clone());
        let accounts = Accounts::new(db.clone(), clock.clone());
        let sessions = Sessions::new(cache.clone(), clock.clone(), settings.sessions.clone());
        let pairwise = PairwiseKey::load(&db, clock.now()).await?;
        let eid_keys = crate::eid::EidKeys::load(&db, clock.now()).await?;
        recompute_bindings(&db, &eid_keys).await?;
        let mandates = crate::mandates::Mandates::new(db.clone(), eid_keys.clone(), clock.clone());
        let oidc = Provider::new(
            Arc::new(settings.clone()),
            clock.clone(),
            db.clone(),
            cache.clone(),
            keys.clone(),
            clients.clone(),
            accounts.clone(),
            pairwise,
            eid_keys.clone(),
            mandates.clone(),
            outbound.clone(),
        );
        let passkeys = crate::passkeys::Passkeys::new(
            &settings.issuer,
            settings.passkeys.ceremony_timeout,
            db.clone(),
            cache.clone(),
            clock.clone(),
        )?;
        let mailer = crate::mail::Mailer::from_settings(&settings.mail)?;
        let eid = crate::eid::connector::Connectors::new(
            settings.eid.connectors.clone(),
            &settings.keys_dir,
            &settings.issuer,
            cache.clone(),
            clock.clone(),
            &outbound,
        )
        .map_err(StartError::Eid)?;
        Ok(Self {
            metrics: crate::metrics::Metrics::new(),
            mandates,
            passkeys,
            mailer,
            eid_keys,
            eid,
            clients,
            accounts,
            sessions,
            oidc,
            keys,
            settings,
            clock,
            db,
            cache,
            discovery,
            draining: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Marks the instance as shutting down: from now on it reports not ready,
    /// so that a load balancer that checks `/readyz` sends it nothing new.
    pub fn start_draining(&self) {
        self.draining
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// The discovery document, serialised at start-up.
    #[must_use]
    pub fn discovery(&self) -> Bytes {
        self.discovery.clone()
    }

    /// Checks the database and the cache, each within `timeout`.
    pub async fn readiness(&self, timeout: std::time::Duration) -> Readiness {
        let db = tokio::time::timeout(timeout, self.db.ping());
        let cache = tokio::time::timeout(timeout, self.cache.ping());
        let (db, cache) = tokio::join!(db, cache);
        Readiness {
            database: matches!(db, Ok(Ok(()))),
            cache: matches!(cache, Ok(Ok(()))),
            draining: self.draining.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Brings bindings stored by earlier versions to the canonical identifier
/// form, once (later start-ups find nothing to do); logs counts only.
async fn recompute_bindings(db: &Database, keys: &crate::eid::EidKeys) -> Result<(), StoreError> {
    let done = crate::eid::recompute_bindings(db, keys).await?;
    if done.updated > 0 {
        tracing::info!(
            bindings = done.updated,
            "eID bindings recomputed with canonical identifiers"
        );
    }
    if done.conflicting > 0 || done.unusable > 0 {
        tracing::warn!(
            conflicting = done.conflicting,
            unusable = done.unusable,
            "eID bindings left in their earlier form (identifier_version = 0): see docs/representation.md"
        );
    }
    Ok(())
}

/// How long a retired key stays published: the longest lifetime of a token it
/// may have signed, plus one reload interval for instances that switched late.
#[must_use]
pub fn key_retention_secs(settings: &Settings) -> u64 {
    (settings.longest_signed_token_ttl() + settings.keys.reload_interval).as_secs()
}
