//! The Redis ephemeral store, shared by every instance.
//!
//! Single-use values are taken with `GETDEL` (one atomic command, Redis 6.2+),
//! first-writer-wins with `SET NX PX`, replace-if-present with `SET XX PX`,
//! counters with `SET NX PX` + `INCR` in a `MULTI` block. Every write
//! carries a TTL.
//!
//! The connection manager reconnects by itself after Redis comes back;
//! meanwhile each command fails within the response timeout, and callers
//! answer 503 rather than hang.

use std::time::Duration;

use redis::AsyncCommands as _;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Ephemeral, EphemeralError, Key, ttl_millis};

/// How long a command may take before the caller is told the cache is down.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Ephemeral state in Redis.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: redis::RedisError) -> EphemeralError {
    EphemeralError::Unavailable(e.to_string())
}

impl RedisStore {
    /// A store on `url`, keys under `prefix`. Connects lazily, so an instance
    /// can start (and report not-ready) while Redis is down.
    ///
    /// # Errors
    /// If the URL is malformed.
    pub fn open(url: &str, prefix: &str) -> Result<Self, EphemeralError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
        })
    }

    fn k(&self, key: &Key) -> String {
        key.qualified(&self.prefix)
    }

    /// Bounds every command by the response timeout, whatever state the
    /// connection is in.
    async fn run<T>(fut: impl Future<Output = redis::RedisResult<T>>) -> Result<T, EphemeralError> {
        match tokio::time::timeout(RESPONSE_TIMEOUT + CONNECT_TIMEOUT, fut).await {
            Ok(r) => r.map_err(unavailable),
            Err(_) => Err(EphemeralError::Unavailable("timed out".into())),
        }
    }
}

impl Ephemeral for RedisStore {
    async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        let ms = ttl_millis(ttl)?;
        let mut c = self.conn.clone();
        Self::run(c.pset_ex::<_, _, ()>(self.k(key), value, ms)).await
    }

    async fn put_new(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let ms = ttl_millis(ttl)?;
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.k(key)).arg(value).arg("NX").arg("PX").arg(ms);
        let reply: Option<String> = Self::run(cmd.query_async(&mut c)).await?;
        Ok(reply.is_some())
    }

    async fn put_existing(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let ms = ttl_millis(ttl)?;
        let mut c = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.k(key)).arg(value).arg("XX").arg("PX").arg(ms);
        let reply: Option<String> = Self::run(cmd.query_async(&mut c)).await?;
        Ok(reply.is_some())
    }

    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        let mut c = self.conn.clone();
        Self::run(c.get(self.k(key))).await
    }

    async fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        let mut c = self.conn.clone();
        Self::run(c.get_del(self.k(key))).await
    }

    async fn delete(&self, key: &Key) -> Result<(), EphemeralError> {
        let mut c = self.conn.clone();
        Self::run(c.del::<_, ()>(self.k(key))).await
    }

    async fn incr(&self, key: &Key, ttl: Duration) -> Result<u64, EphemeralError> {
        let ms = ttl_millis(ttl)?;
        let k = self.k(key);
        let mut c = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(&k)
            .arg(0)
            .arg("NX")
            .arg("PX")
            .arg(ms)
            .ignore()
            .incr(&k, 1u64);
        let (n,): (u64,) = Self::run(pipe.query_async(&mut c)).await?;
        Ok(n)
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        let mut c = self.conn.clone();
        Self::run(redis::cmd("PING").query_async::<String>(&mut c))
            .await
            .map(|_| ())
    }
}
