//! Relying parties: registration (RFC 7591), configuration management
//! (RFC 7592) and the operator's own client commands.
//!
//! Secrets are generated here with 256 bits of entropy, returned once, and
//! stored only as SHA-256 hashes ([`crate::secrets`]). Subjects are pairwise
//! for every client unless the operator sets `public` (OIDC Core §8), in a
//! sector fixed at registration ([`sector`]).

pub mod fetched;
pub mod metadata;
pub mod sector;
mod store;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use metadata::{
    ADMIN_SCOPE, AuthMethod, ClientMetadata, GrantType, IDENTIFIERS_SCOPE, MetadataRequest,
    RedirectUri,
};

use crate::audit::{self, Actor, Event, Kind};
use crate::clock::{SharedClock, UnixTime};
use crate::outbound::Fetcher;
use crate::secrets::{Secret, SecretHash, random_token};
use crate::store::{Database, StoreError};

/// Why a client operation failed. The first four map one-to-one to RFC 7591
/// §3.2.2 and RFC 6750 §3.1 error codes.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `invalid_redirect_uri`: a redirect URI is not acceptable.
    #[error("{0}")]
    InvalidRedirectUri(String),
    /// `invalid_client_metadata`: another member is not acceptable.
    #[error("{0}")]
    InvalidMetadata(String),
    /// The initial or registration access token is missing or wrong, or
    /// names no client (indistinguishable on purpose).
    #[error("the access token is missing, invalid or revoked")]
    Unauthorized,
    /// No such client (operator commands only; the API says `Unauthorized`).
    #[error("no client `{0}`")]
    NotFound(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A client identifier: opaque, server-generated, compared exactly.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    /// A new random identifier (128 bits).
    #[must_use]
    pub fn generate() -> Self {
        Self(random_token(16))
    }

    /// Wraps an identifier received from a caller or the database.
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

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How the client's end-user identifiers are formed (OIDC Core §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    /// A different `sub` per sector: the default for every client.
    Pairwise,
    /// The same `sub` everywhere: only by the operator's decision.
    Public,
}

impl SubjectType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pairwise => "pairwise",
            Self::Public => "public",
        }
    }
}

/// A registered relying party.
#[derive(Debug, Clone)]
pub struct Client {
    /// Its identifier.
    pub client_id: ClientId,
    /// Its validated metadata.
    pub metadata: ClientMetadata,
    /// Marked first-party by the operator: consent is not asked.
    pub first_party: bool,
    /// Pairwise unless the operator decided otherwise.
    pub subject_type: SubjectType,
    /// Allowed the admin API (scope `civitas:admin`) by the operator; never
    /// through registration metadata.
    pub admin: bool,
    /// Allowed national identifiers in clear in the admin API's export
    /// (scope `civitas:admin:identifiers`) by the operator, on the command
    /// line only; effective only while `admin` holds too.
    pub admin_identifiers: bool,
    /// When it was registered.
    pub created_at: UnixTime,
    /// When its metadata last changed.
    pub updated_at: UnixTime,
    sector: String,
    secret_hash: Option<SecretHash>,
    registration_token_hash: Option<SecretHash>,
}

impl Client {
    /// Its pairwise sector, fixed at registration ([`sector`]).
    #[must_use]
    pub fn sector(&self) -> &str {
        &self.sector
    }

    /// Does `presented` match this client's secret (constant-time)?
    #[must_use]
    pub fn verify_secret(&self, presented: &str) -> bool {
        self.secret_hash
            .as_ref()
            .is_some_and(|h| h.verify(presented))
    }

    /// Is `uri` exactly one of the registered redirect URIs?
    #[must_use]
    pub fn has_redirect_uri(&self, uri: &str) -> bool {
        self.metadata
            .redirect_uris
            .iter()
            .any(|r| r.as_str() == uri)
    }

    /// Has a secret been issued?
    #[must_use]
    pub fn has_secret(&self) -> bool {
        self.secret_hash.is_some()
    }
}

/// What the operator decides about a client, beyond its metadata.
#[derive(Debug, Clone, Copy)]
pub struct OperatorOptions {
    /// Skip consent.
    pub first_party: bool,
    /// Pairwise or public subjects.
    pub subject_type: SubjectType,
    /// Issue a registration access token (RFC 7592)?
    pub registration_token: bool,
    /// May obtain `civitas:admin` tokens (client_credentials) for the admin API.
    pub admin: bool,
}

impl Default for OperatorOptions {
    /// Dynamically registered clients: third-party, pairwise, manageable.
    fn default() -> Self {
        Self {
            first_party: false,
            subject_type: SubjectType::Pairwise,
            registration_token: true,
            admin: false,
        }
    }
}

/// A client together with the secrets issued to it just now (returned once).
#[derive(Debug)]
pub struct Issued {
    /// The client as stored.
    pub client: Client,
    /// Its new secret, if its authentication method uses one and one was issued.
    pub client_secret: Option<Secret>,
    /// Its new registration access token, if one was issued.
    pub registration_access_token: Option<Secret>,
}

/// The client registry.
#[derive(Debug, Clone)]
pub struct Clients {
    db: Database,
    clock: SharedClock,
    outbound: Fetcher,
    recent: Arc<Mutex<HashMap<String, (Instant, Client)>>>,
}

/// How long [`Clients::get_recent`] may answer from memory.
const RECENT_TTL: Duration = Duration::from_secs(5);

impl Clients {
    /// The registry on `db`; `outbound` fetches sector documents.
    #[must_use]
    pub fn new(db: Database, clock: SharedClock, outbound: Fetcher) -> Self {
        Self {
            db,
            clock,
            outbound,
            recent: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Registers a client with validated metadata.
    ///
    /// # Errors
    /// A URI Civitas would not fetch ([`fetched::check_uris`]), a sector
    /// document that cannot be fetched or does not list every redirect URI,
    /// or a database failure.
    #[tracing::instrument(skip_all, fields(client_id))]
    pub async fn register(
        &self,
        metadata: ClientMetadata,
        options: OperatorOptions,
        actor: &Actor,
    ) -> Result<Issued, ClientError> {
        fetched::check_uris(&metadata, &self.outbound)?;
        fetched::verify_sector(&metadata, &self.outbound).await?;
        let now = self.clock.now();
        let client_secret = metadata
            .token_endpoint_auth_method
            .uses_secret()
            .then(Secret::generate);
        let registration_access_token = options.registration_token.then(Secret::generate);
        let client_id = ClientId::generate();
        let client = Client {
            sector: sector::derive(&metadata, &client_id),
            client_id,
            metadata,
            first_party: options.first_party,
            subject_type: options.subject_type,
            admin: options.admin,
            admin_identifiers: false,
            created_at: now,
            updated_at: now,
            secret_hash: client_secret.as_ref().map(Secret::hash),
            registration_token_hash: registration_access_token.as_ref().map(Secret::hash),
        };
        tracing::Span::current().record("client_id", client.client_id.as_str());
        let event = Event::by(Kind::ClientRegistered, actor.clone())
            .client(client.client_id.as_str())
            .with("first_party", client.first_party)
            .with("subject_type", client.subject_type.as_str())
            .with("admin", client.admin)
            .with("redirect_uris", client.metadata.redirect_uris.len());
        let events = audit::with_admin_action(event, "client.register");
        store::insert_client(&self.db, &client, &events).await?;
        tracing::info!("client registered");
        Ok(Issued {
            client,
            client_secret,
            registration_access_token,
        })
    }

    /// The client with this id, if any.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn get(&self, client_id: &str) -> Result<Option<Client>, ClientError> {
        Ok(store::get_client(&self.db, client_id).await?)
    }

    /// The client with this id, answered from memory if it was read in the
    /// last five seconds: a secret reset, a change or a deletion made on
    /// another instance reaches this one within five seconds. For the hot
    /// paths that only read a client already known: client authentication,
    /// and the steps of an authorization request after `/authorize` checked
    /// the client and its redirect URI against the database. Registration
    /// management and that first check never use it.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn get_recent(&self, client_id: &str) -> Result<Option<Client>, ClientError> {
        {
            let recent = self
                .recent
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some((at, client)) = recent.get(client_id)
                && at.elapsed() < RECENT_TTL
            {
                return Ok(Some(client.clone()));
            }
        }
        let client = self.get(client_id).await?;
        let mut recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if recent.len() > 10_000 {
            recent.retain(|_, (at, _)| at.elapsed() < RECENT_TTL);
        }
        match &client {
            Some(c) => {
                recent.insert(client_id.to_owned(), (Instant::now(), c.clone()));
            }
            None => {
                recent.remove(client_id);
            }
        }
        Ok(client)
    }

    fn forget(&self, client_id: &str) {
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(client_id);
    }

    /// Every client, oldest first.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn list(&self) -> Result<Vec<Client>, ClientError> {
        Ok(store::list_clients(&self.db).await?)
    }

    /// The client `client_id` if `token` is its registration access token
    /// (RFC 7592 §1). Unknown client and wrong token are the same error.
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`].
    pub async fn authorize_management(
        &self,
        client_id: &str,
        token: &str,
    ) -> Result<Client, ClientError> {
        let client = self
            .get(client_id)
            .await?
            .ok_or(ClientError::Unauthorized)?;
        match &client.registration_token_hash {
            Some(h) if h.verify(token) => Ok(client),
            _ => Err(ClientError::Unauthorized),
        }
    }

    /// Replaces a client's metadata (RFC 7592 §2.2). A client that moves to a
    /// secret-based method without having a secret gets one; a client that
    /// leaves them loses its secret. Its pairwise sector stays: metadata
    /// that would give another one is refused ([`sector::check_update`]).
    /// A client an earlier version stored without a sector gets it first,
    /// from its metadata as stored before this edit, even if the edit is
    /// then refused.
    ///
    /// # Errors
    /// Metadata outside the client's sector, a URI Civitas would not fetch,
    /// a sector document that cannot be fetched or does not list every
    /// redirect URI, or a database failure.
    pub async fn update(
        &self,
        client: &Client,
        metadata: ClientMetadata,
        actor: &Actor,
    ) -> Result<Issued, ClientError> {
        // Stored now if the row had none (written by an earlier version).
        let stored = store::fix_sector(&self.db, client.client_id.as_str())
            .await?
            .ok_or(ClientError::Unauthorized)?;
        if let Err(e) = sector::check_update(&stored, &metadata, &client.client_id) {
            // Protocol review H1: the way to read another sector's subjects.
            tracing::warn!(client_id = %client.client_id, "update refused: it would leave the client's pairwise sector");
            return Err(e);
        }
        fetched::check_uris(&metadata, &self.outbound)?;
        fetched::verify_sector(&metadata, &self.outbound).await?;
        let mut updated = client.clone();
        updated.sector = stored;
        let uses_secret = metadata.token_endpoint_auth_method.uses_secret();
        let client_secret = (uses_secret && client.secret_hash.is_none()).then(Secret::generate);
        if let Some(s) = &client_secret {
            updated.secret_hash = Some(s.hash());
        }
        if !uses_secret {
            updated.secret_hash = None;
        }
        updated.metadata = metadata;
        updated.updated_at = self.clock.now();
        let event = Event::by(Kind::ClientChanged, actor.clone())
            .client(updated.client_id.as_str())
            .with("change", "metadata");
        if !store::update_client(&self.db, &updated, &event).await? {
            return Err(ClientError::Unauthorized);
        }
        self.forget(updated.client_id.as_str());
        tracing::info!(client_id = %updated.client_id, "client updated");
        Ok(Issued {
            client: updated,
            client_secret,
            registration_access_token: None,
        })
    }

    /// Deletes a client; `false` if there was none.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn delete(&self, client_id: &str, actor: &Actor) -> Result<bool, ClientError> {
        let event = Event::by(Kind::ClientDeleted, actor.clone()).client(client_id);
        let events = audit::with_admin_action(event, "client.delete");
        let deleted = store::delete_client(&self.db, client_id, &events, self.clock.now()).await?;
        self.forget(client_id);
        if deleted {
            tracing::info!(client_id, "client deleted");
        }
        Ok(deleted)
    }

    /// Issues a new secret to a confidential client (operator command),
    /// replacing the old one at once.
    ///
    /// # Errors
    /// If the client does not exist, does not use a secret, or the database fails.
    pub async fn reset_secret(
        &self,
        client_id: &str,
        actor: &Actor,
    ) -> Result<Secret, ClientError> {
        let client = self
            .get(client_id)
            .await?
            .ok_or_else(|| ClientError::NotFound(client_id.into()))?;
        if !client.metadata.token_endpoint_auth_method.uses_secret() {
            return Err(ClientError::InvalidMetadata(
                "this client does not authenticate with a secret".into(),
            ));
        }
        let secret = Secret::generate();
        let event = Event::by(Kind::ClientChanged, actor.clone())
            .client(client_id)
            .with("change", "secret_reset");
        let now = self.clock.now();
        if !store::set_secret(&self.db, client_id, &secret.hash(), &event, now).await? {
            return Err(ClientError::NotFound(client_id.into()));
        }
        self.forget(client_id);
        Ok(secret)
    }
}

impl Clients {
    /// Allows or forbids `client_id` the admin API (operator command only).
    /// Takes effect at the next admin call: the API reads the flag from the
    /// database at every call, so a token issued before a demotion stops
    /// working at once. `false` if there is no such client.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn set_admin(
        &self,
        client_id: &str,
        admin: bool,
        actor: &Actor,
    ) -> Result<bool, ClientError> {
        let event = Event::by(Kind::ClientChanged, actor.clone())
            .client(client_id)
            .with("change", "admin")
            .with("admin", admin);
        let done = store::set_flag(
            &self.db,
            client_id,
            store::OperatorFlag::Admin,
            admin,
            &event,
            self.clock.now(),
        )
        .await?;
        self.forget(client_id);
        Ok(done)
    }

    /// Is `client_id` allowed the admin API now? Read from the database,
    /// never from the recent-clients cache.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn is_admin(&self, client_id: &str) -> Result<bool, ClientError> {
        Ok(store::is_admin(&self.db, client_id).await?)
    }

    /// Allows or forbids `client_id` national identifiers in clear in the
    /// admin API's export (operator command only; never through metadata
    /// or the admin API). Read from the database at every call, like
    /// [`Self::set_admin`]; it counts only while the client is admin too.
    /// `false` if there is no such client.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn set_admin_identifiers(
        &self,
        client_id: &str,
        allowed: bool,
        actor: &Actor,
    ) -> Result<bool, ClientError> {
        let event = Event::by(Kind::ClientChanged, actor.clone())
            .client(client_id)
            .with("change", "admin_identifiers")
            .with("admin_identifiers", allowed);
        let done = store::set_flag(
            &self.db,
            client_id,
            store::OperatorFlag::AdminIdentifiers,
            allowed,
            &event,
            self.clock.now(),
        )
        .await?;
        self.forget(client_id);
        Ok(done)
    }

    /// May `client_id` read national identifiers through the admin API now:
    /// admin, and marked for identifiers? Read from the database, never
    /// from the recent-clients cache.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn may_read_identifiers(&self, client_id: &str) -> Result<bool, ClientError> {
        Ok(store::may_read_identifiers(&self.db, client_id).await?)
    }

    /// Replaces the registration access token `old` of `client` with a new
    /// one, only if `old` is still the current one (two concurrent uses of
    /// one token: the second is refused).
    ///
    /// # Errors
    /// [`ClientError::Unauthorized`] if the token changed meanwhile.
    pub async fn rotate_registration_token(
        &self,
        client: &Client,
        old: &str,
    ) -> Result<Issued, ClientError> {
        let token = Secret::generate();
        let rotated = store::replace_registration_token(
            &self.db,
            client.client_id.as_str(),
            &SecretHash::of(old),
            &token.hash(),
        )
        .await?;
        if !rotated {
            return Err(ClientError::Unauthorized);
        }
        let mut client = client.clone();
        client.registration_token_hash = Some(token.hash());
        Ok(Issued {
            client,
            client_secret: None,
            registration_access_token: Some(token),
        })
    }
}

/// The verified claims Civitas can release (OpenID Connect for Identity
/// Assurance 1.0), from an eID binding.
pub const VERIFIABLE_CLAIMS: &[&str] = &[
    "given_name",
    "family_name",
    "birthdate",
    "nationalities",
    "person_identifier",
];

impl Clients {
    /// The verified claims the operator allowed `client_id` to receive, each
    /// with its legal basis.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn allowed_claims(
        &self,
        client_id: &str,
    ) -> Result<Vec<(String, String)>, ClientError> {
        Ok(store::allowed_claims(&self.db, client_id).await?)
    }

    /// Replaces the verified claims `client_id` may receive (operator decision).
    ///
    /// # Errors
    /// An unknown client or claim, an empty legal basis, or a store failure.
    pub async fn allow_claims(
        &self,
        client_id: &str,
        claims: &[String],
        legal_basis: &str,
        actor: &Actor,
    ) -> Result<(), ClientError> {
        if self.get(client_id).await?.is_none() {
            return Err(ClientError::NotFound(client_id.into()));
        }
        if let Some(bad) = claims
            .iter()
            .find(|c| !VERIFIABLE_CLAIMS.contains(&c.as_str()))
        {
            return Err(ClientError::InvalidMetadata(format!(
                "`{bad}` is not one of {VERIFIABLE_CLAIMS:?}"
            )));
        }
        if legal_basis.trim().is_empty() && !claims.is_empty() {
            return Err(ClientError::InvalidMetadata(
                "a legal basis is required".into(),
            ));
        }
        let event = Event::by(Kind::ClientChanged, actor.clone())
            .client(client_id)
            .with("change", "allowed_claims")
            .with("claims", claims.to_vec())
            .with("legal_basis", legal_basis.trim());
        let events = audit::with_admin_action(event, "client.allow_claims");
        store::set_allowed_claims(
            &self.db,
            client_id,
            claims,
            legal_basis.trim(),
            self.clock.now(),
            &events,
        )
        .await?;
        tracing::info!(client_id, count = claims.len(), "verified claims allowed");
        Ok(())
    }
}

impl Clients {
    /// May `client_id` exchange tokens for ones whose audience is `resource`
    /// (RFC 8693 `may_act`, decided by the operator)?
    ///
    /// # Errors
    /// If the database fails.
    pub async fn may_exchange(&self, client_id: &str, resource: &str) -> Result<bool, ClientError> {
        Ok(store::may_exchange(&self.db, client_id, resource).await?)
    }

    /// Allows `client_id` to exchange tokens for `resource` (a downstream
    /// client's id or an absolute URI).
    ///
    /// # Errors
    /// An unknown client, a resource that is not an absolute URI without
    /// fragment (RFC 8707 §2), or a store failure.
    pub async fn allow_exchange(
        &self,
        client_id: &str,
        resource: &str,
        actor: &Actor,
    ) -> Result<(), ClientError> {
        if self.get(client_id).await?.is_none() {
            return Err(ClientError::NotFound(client_id.into()));
        }
        // A downstream client's id, or an absolute resource URI (RFC 8707 §2).
        let is_client = self.get(resource).await?.is_some();
        let is_uri = url::Url::parse(resource)
            .is_ok_and(|u| u.fragment().is_none() && !u.cannot_be_a_base());
        if !is_client && !is_uri {
            return Err(ClientError::InvalidMetadata(format!(
                "`{resource}` is neither a registered client nor an absolute URI without fragment"
            )));
        }
        let event = Event::by(Kind::ClientChanged, actor.clone())
            .client(client_id)
            .with("change", "allow_exchange")
            .with("resource", resource);
        store::allow_exchange(&self.db, client_id, resource, self.clock.now(), &event).await?;
        Ok(())
    }
}
