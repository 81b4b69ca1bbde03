//! The in-process ephemeral store: sharded maps with lazy expiry.
//!
//! Sixteen independently locked shards keep contention low on the hot paths
//! (each lock is held for one map operation, never across an `.await`).
//! Expired entries are dropped when read and swept from a shard every few
//! hundred writes, so memory stays bounded by the live entries.
//!
//! Expiry uses the monotonic clock: a TTL is a duration, not a wall-clock
//! deadline, exactly as Redis treats it.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Ephemeral, EphemeralError, Key, ttl_millis};

const SHARDS: usize = 16;
const SWEEP_EVERY: u32 = 512;

struct Entry {
    value: Vec<u8>,
    expires: Instant,
}

#[derive(Default)]
struct Shard {
    map: Mutex<HashMap<Key, Entry>>,
    writes: AtomicU32,
}

/// In-process ephemeral state for a single instance.
#[derive(Clone)]
pub struct MemoryStore {
    shards: Arc<[Shard; SHARDS]>,
    hasher: RandomState,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            shards: Arc::new(std::array::from_fn(|_| Shard::default())),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &Key) -> &Shard {
        let i = usize::try_from(self.hasher.hash_one(key) % SHARDS as u64).unwrap_or(0);
        &self.shards[i]
    }

    fn lock<'a>(shard: &'a Shard) -> MutexGuard<'a, HashMap<Key, Entry>> {
        // A panic while holding the lock cannot leave a map half-updated
        // (every operation is a single map call), so poisoning is ignored.
        shard
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn deadline(ttl: Duration) -> Result<Instant, EphemeralError> {
        let ms = ttl_millis(ttl)?;
        Ok(Instant::now() + Duration::from_millis(ms))
    }

    fn after_write(shard: &Shard, map: &mut HashMap<Key, Entry>) {
        if shard
            .writes
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            let now = Instant::now();
            map.retain(|_, e| e.expires > now);
        }
    }

    /// Number of live entries (for tests and metrics).
    #[must_use]
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.shards
            .iter()
            .map(|s| Self::lock(s).values().filter(|e| e.expires > now).count())
            .sum()
    }

    /// Is the store empty?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Ephemeral for MemoryStore {
    async fn put(&self, key: &Key, value: &[u8], ttl: Duration) -> Result<(), EphemeralError> {
        let expires = Self::deadline(ttl)?;
        let shard = self.shard(key);
        let mut map = Self::lock(shard);
        map.insert(
            key.clone(),
            Entry {
                value: value.to_vec(),
                expires,
            },
        );
        Self::after_write(shard, &mut map);
        Ok(())
    }

    async fn put_new(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let expires = Self::deadline(ttl)?;
        let now = Instant::now();
        let shard = self.shard(key);
        let mut map = Self::lock(shard);
        if map.get(key).is_some_and(|e| e.expires > now) {
            return Ok(false);
        }
        map.insert(
            key.clone(),
            Entry {
                value: value.to_vec(),
                expires,
            },
        );
        Self::after_write(shard, &mut map);
        Ok(true)
    }

    async fn put_existing(
        &self,
        key: &Key,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, EphemeralError> {
        let expires = Self::deadline(ttl)?;
        let now = Instant::now();
        let shard = self.shard(key);
        let mut map = Self::lock(shard);
        let Some(entry) = map.get_mut(key).filter(|e| e.expires > now) else {
            return Ok(false);
        };
        *entry = Entry {
            value: value.to_vec(),
            expires,
        };
        Self::after_write(shard, &mut map);
        Ok(true)
    }

    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = Instant::now();
        let map = Self::lock(self.shard(key));
        Ok(map
            .get(key)
            .filter(|e| e.expires > now)
            .map(|e| e.value.clone()))
    }

    async fn take(&self, key: &Key) -> Result<Option<Vec<u8>>, EphemeralError> {
        let now = Instant::now();
        let mut map = Self::lock(self.shard(key));
        Ok(map.remove(key).filter(|e| e.expires > now).map(|e| e.value))
    }

    async fn delete(&self, key: &Key) -> Result<(), EphemeralError> {
        Self::lock(self.shard(key)).remove(key);
        Ok(())
    }

    async fn incr(&self, key: &Key, ttl: Duration) -> Result<u64, EphemeralError> {
        let expires = Self::deadline(ttl)?;
        let now = Instant::now();
        let shard = self.shard(key);
        let mut map = Self::lock(shard);
        let entry = map
            .entry(key.clone())
            .and_modify(|e| {
                if e.expires <= now {
                    *e = Entry {
                        value: 0u64.to_be_bytes().to_vec(),
                        expires,
                    };
                }
            })
            .or_insert_with(|| Entry {
                value: 0u64.to_be_bytes().to_vec(),
                expires,
            });
        let current = <[u8; 8]>::try_from(entry.value.as_slice()).map_or(0, u64::from_be_bytes);
        let next = current.saturating_add(1);
        entry.value = next.to_be_bytes().to_vec();
        Self::after_write(shard, &mut map);
        Ok(next)
    }

    async fn ping(&self) -> Result<(), EphemeralError> {
        Ok(())
    }
}
