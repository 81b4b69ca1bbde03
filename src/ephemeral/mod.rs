//! Ephemeral state: authorization codes, sessions, ceremony challenges,
//! replay caches and rate counters.
//!
//! One trait, [`Ephemeral`], with two implementations: [`MemoryStore`] (the
//! default, for a single instance) and [`RedisStore`] (shared by several
//! instances). [`Cache`] is what the application holds: it picks one at
//! start-up and dispatches without dynamic allocation.
//!
//! Invariants, checked by the contract tests on both implementations:
//! - every value has a TTL; nothing ephemeral lives forever;
//! - [`Ephemeral::take`] is atomic: a value taken by one caller (on any
//!   instance) can never be taken again;
//! - [`Ephemeral::put_new`] succeeds for exactly one caller per key and TTL
//!   window (replay caches: a `jti` seen once is refused after);
//! - [`Ephemeral::put_existing`] writes only over a live value, atomically:
//!   a value taken or deleted meanwhile stays gone (a session ended by a
//!   sign-out is never brought back by a request that read it before).
//!
//! Keys are built by [`Key`] only, so the namespace and prefix rules live in
//! one place.

mod memory;
mod redis_store;

use std::fmt;
use std::time::Duration;

pub use memory::MemoryStore;
pub use redis_store::RedisStore;

/// What ephemeral state is for; the first segment of every key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A pending authorization request, while the user authenticates.
    AuthRequest,
    /// An authorization code.
    Code,
    /// An OP browser session.
    Session,
    /// A WebAuthn ceremony challenge.
    Challenge,
    /// A replay cache of seen identifiers (`jti` of client assertions).
    Replay,
    /// A rate-limit counter.
    Rate,
    /// Contract tests and diagnostics.
    Test,
}

impl Namespace {
    fn as_str(self) -> &'static str {
        match self {
            Self::AuthRequest => "authreq",
            Self::Code => "code",
            Self::Session => "session",
            Self::Challenge => "challenge",
            Self::Replay => "replay",
            Self::Rate => "rate",
            Self::Test => "test",
        }
    }
}

/// A key in the ephemeral store: namespace plus identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Key {
    namespace: Namespace,
    id: String,
}

impl Key {
    /// The key for `id` in `namespace`.
    #[must_use]
    pub fn new(namespace: Namespace, id: impl Into<String>) -> Self {
        Self {
            namespace,
            id: id.into(),
        }
    }

    /// The full key under `prefix`, as written to Redis.
    fn qualified(&self, prefix: &str) -> String {
        format!("{prefix}:{}:{}", self.namespace.as_str(), self.id)
    }
}

impl fmt::Debug for Key {
    /// Identifiers may be secrets (codes): only the namespace is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}:…)", self.namespace.as_str())
    }
}

/// Why an ephemeral operation failed.
#[derive(Debug, thiserror::Error)]
pub enum EphemeralError {
    /// The shared cache could not be reached or timed out.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// A TTL of zero was asked for; every value must expire.
    #[error("a TTL of zero was given")]
    ZeroTtl,
}

/// Short-lived key-value state with TTLs and atomic take.
pub trait Ephemeral: Send + Sync {
    /// Stores `value` under `key` for `ttl`, replacing any value.
    fn put(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<(), EphemeralError>> + Send;

    /// Stores `value` only if `key` holds nothing; `true` if it was stored.
    fn put_new(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, EphemeralError>> + Send;

    /// Replaces the value under `key`, and its TTL, only if `key` holds a
    /// value that has not expired; `true` if it was replaced. Atomic: a
    /// value taken or deleted before never comes back.
    fn put_existing(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> impl Future<Output = Result<bool, EphemeralError>> + Send;

    /// The value under `key`, if any and not expired.
    fn get(
        &self,
        key: &Key,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, EphemeralError>> + Send;

    /// Removes and returns the value under `key`, atomically: of all callers
    /// on all instances, at most one gets it.
    fn take(
        &self,
        key: &Key,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, EphemeralError>> + Send;

    /// Removes the value under `key`, if any.
    fn delete(&self, key: &Key) -> impl Future<Output = Result<(), EphemeralError>> + Send;

    /// Adds one to the counter under `key` and returns the new count. The
    /// first increment starts a window of `ttl`; later ones do not extend it.
    fn incr(
        &self,
        key: &Key,
        ttl: Duration,
    ) -> impl Future<Output = Result<u64, EphemeralError>> + Send;

    /// Is the store reachable?
    fn ping(&self) -> impl Future<Output = Result<(), EphemeralError>> + Send;
}

/// The ephemeral store an instance uses, chosen by `cache_url`.
#[derive(Debug, Clone)]
pub enum Cache {
    /// In-process (`memory`): one instance only.
    Memory(MemoryStore),
    /// Redis (`redis://…`): shared by every instance.
    Redis(RedisStore),
}

impl Cache {
    /// Opens the store named by `url` (`memory` or `redis://…`), with every key
    /// under `prefix`.
    ///
    /// # Errors
    /// If the Redis URL is malformed.
    pub fn open(url: &str, prefix: &str) -> Result<Self, EphemeralError> {
        if url == "memory" {
            Ok(Self::Memory(MemoryStore::new()))
        } else {
            Ok(Self::Redis(RedisStore::open(url, prefix)?))
        }
    }

    /// A short name of the implementation, for logs.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Redis(_) => "redis",
        }
    }
}

macro_rules! dispatch {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            Cache::Memory(s) => s.$method($($arg),*).await,
            Cache::Redis(s) => s.$method($($arg),*).await,
        }
    };
}

impl Ephemeral for Cache {
    async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        dispatch!(self.put(key, value, ttl))
    }
    async fn put_new(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        dispatch!(self.put_new(key, value, ttl))
    }
    async fn put_existing(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        dispatch!(self.put_existing(key, value, ttl))
    }
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        dispatch!(self.get(key))
    }
    async fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        dispatch!(self.take(key))
    }
    async fn delete(&self, key: &Key) -> Result<(), EphemeralError> {
        dispatch!(self.delete(key))
    }
    async fn incr(&self, key: &Key, ttl: Duration) -> Result<u64, EphemeralError> {
        dispatch!(self.incr(key, ttl))
    }
    async fn ping(&self) -> Result<(), EphemeralError> {
        dispatch!(self.ping())
    }
}

/// Refuses a zero TTL, and rounds a TTL up to whole milliseconds (at least 1).
fn ttl_millis(ttl: Duration) -> Result<u64, EphemeralError> {
    if ttl.is_zero() {
        return Err(EphemeralError::ZeroTtl);
    }
    Ok(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
}

/// A rate limit: at most `limit` events per `window` for `subject` (an IP
/// address, an account). Counted in the shared store, so the limit holds
/// across instances. `true` while within the limit.
///
/// # Errors
/// If the store is unavailable.
pub async fn within_limit(
    cache: &Cache,
    subject: &str,
    limit: u64,
    window: Duration,
) -> Result<bool, EphemeralError> {
    Ok(cache
        .incr(&Key::new(Namespace::Rate, subject), window)
        .await?
        <= limit)
}
