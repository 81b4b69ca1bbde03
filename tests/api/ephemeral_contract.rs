//! The ephemeral-state contract, run on the in-process store and on Redis.

use std::sync::Arc;
use std::time::Duration;

use civitas::ephemeral::{Cache, Ephemeral, EphemeralError, Key, Namespace};

use crate::helpers::{Stack, production_available, redis_url, unique};

fn open(stack: Stack) -> Cache {
    match stack {
        Stack::Embedded => Cache::open("memory", "unused").unwrap(),
        Stack::Production => Cache::open(&redis_url(), &unique("civitas-test")).unwrap(),
    }
}

const MINUTE: Duration = Duration::from_secs(60);

async fn put_then_get_returns_the_value_and_put_replaces_it(stack: Stack) {
    let cache = open(stack);
    let key = Key::new(Namespace::Test, "a");
    assert_eq!(cache.get(&key).await.unwrap(), None);
    cache.put(&key, b"one", MINUTE).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"one"[..]));
    cache.put(&key, b"two", MINUTE).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"two"[..]));
    cache.delete(&key).await.unwrap();
    assert_eq!(cache.get(&key).await.unwrap(), None);
}

async fn take_returns_a_value_once_even_under_concurrent_takers(stack: Stack) {
    let cache = Arc::new(open(stack));
    for round in 0..5 {
        let key = Key::new(Namespace::Code, format!("code-{round}"));
        cache.put(&key, b"grant", MINUTE).await.unwrap();
        let takers: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                let key = key.clone();
                tokio::spawn(async move { cache.take(&key).await.unwrap() })
            })
            .collect();
        let mut winners = 0;
        for t in takers {
            if let Some(v) = t.await.unwrap() {
                assert_eq!(v, b"grant");
                winners += 1;
            }
        }
        assert_eq!(winners, 1, "exactly one taker must get the value");
        assert_eq!(cache.take(&key).await.unwrap(), None);
    }
}

async fn put_new_admits_only_the_first_writer(stack: Stack) {
    let cache = open(stack);
    let key = Key::new(Namespace::Replay, "jti-1");
    assert!(cache.put_new(&key, b"1", MINUTE).await.unwrap());
    assert!(!cache.put_new(&key, b"2", MINUTE).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"1"[..]));
}

async fn put_existing_replaces_only_a_live_value(stack: Stack) {
    let cache = open(stack);
    let key = Key::new(Namespace::Session, "s1");
    assert!(!cache.put_existing(&key, b"one", MINUTE).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap(), None, "nothing is created");
    cache.put(&key, b"one", MINUTE).await.unwrap();
    assert!(cache.put_existing(&key, b"two", MINUTE).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"two"[..]));
    // Taken (a sign-out) or deleted: a later replace cannot bring it back.
    assert_eq!(
        cache.take(&key).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    assert!(!cache.put_existing(&key, b"three", MINUTE).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap(), None);
    cache.put(&key, b"four", MINUTE).await.unwrap();
    cache.delete(&key).await.unwrap();
    assert!(!cache.put_existing(&key, b"five", MINUTE).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap(), None);
    // The replacement carries its own TTL; once expired, nothing is replaced.
    cache.put(&key, b"six", MINUTE).await.unwrap();
    assert!(
        cache
            .put_existing(&key, b"seven", Duration::from_millis(300))
            .await
            .unwrap()
    );
    wait_until_gone(&cache, &key).await;
    assert!(!cache.put_existing(&key, b"eight", MINUTE).await.unwrap());
    assert_eq!(cache.get(&key).await.unwrap(), None);
}

/// Waits (at most 5 s) until `key` has expired.
async fn wait_until_gone(cache: &Cache, key: &Key) {
    let started = std::time::Instant::now();
    while cache.get(key).await.unwrap().is_some() {
        assert!(started.elapsed() < Duration::from_secs(5), "never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn a_value_taken_while_it_is_replaced_stays_taken(stack: Stack) {
    let cache = Arc::new(open(stack));
    for round in 0..20 {
        let key = Key::new(Namespace::Session, format!("race-{round}"));
        cache.put(&key, b"read", MINUTE).await.unwrap();
        let toucher = {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move { cache.put_existing(&key, b"touched", MINUTE).await })
        };
        let taker = {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move { cache.take(&key).await })
        };
        let replaced = toucher.await.unwrap().unwrap();
        let taken = taker.await.unwrap().unwrap();
        // Whichever ran first, the value is gone after both.
        assert!(taken.is_some(), "the taker always gets a value");
        assert_eq!(cache.get(&key).await.unwrap(), None, "replaced: {replaced}");
    }
}

async fn values_expire_after_their_ttl(stack: Stack) {
    let cache = open(stack);
    let short = Key::new(Namespace::Test, "short");
    let new = Key::new(Namespace::Replay, "short");
    cache
        .put(&short, b"x", Duration::from_millis(300))
        .await
        .unwrap();
    assert!(
        cache
            .put_new(&new, b"x", Duration::from_millis(300))
            .await
            .unwrap()
    );
    assert!(cache.get(&short).await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(cache.get(&short).await.unwrap(), None);
    assert_eq!(cache.take(&short).await.unwrap(), None);
    // An expired replay entry no longer blocks (its window is over).
    assert!(cache.put_new(&new, b"y", MINUTE).await.unwrap());
}

async fn a_zero_ttl_is_refused(stack: Stack) {
    let cache = open(stack);
    let key = Key::new(Namespace::Test, "zero");
    assert!(matches!(
        cache.put(&key, b"x", Duration::ZERO).await,
        Err(EphemeralError::ZeroTtl)
    ));
    assert!(matches!(
        cache.put_new(&key, b"x", Duration::ZERO).await,
        Err(EphemeralError::ZeroTtl)
    ));
    assert!(matches!(
        cache.incr(&key, Duration::ZERO).await,
        Err(EphemeralError::ZeroTtl)
    ));
    cache.put(&key, b"x", MINUTE).await.unwrap();
    assert!(matches!(
        cache.put_existing(&key, b"y", Duration::ZERO).await,
        Err(EphemeralError::ZeroTtl)
    ));
    assert_eq!(cache.get(&key).await.unwrap().as_deref(), Some(&b"x"[..]));
}

async fn counters_count_within_their_window_and_restart_after(stack: Stack) {
    let cache = open(stack);
    let key = Key::new(Namespace::Rate, "ip:192.0.2.1");
    for expected in 1..=5 {
        assert_eq!(
            cache.incr(&key, Duration::from_millis(400)).await.unwrap(),
            expected
        );
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        cache.incr(&key, Duration::from_millis(400)).await.unwrap(),
        1
    );
}

async fn namespaces_do_not_collide(stack: Stack) {
    let cache = open(stack);
    cache
        .put(&Key::new(Namespace::Code, "same"), b"code", MINUTE)
        .await
        .unwrap();
    cache
        .put(&Key::new(Namespace::Session, "same"), b"session", MINUTE)
        .await
        .unwrap();
    assert_eq!(
        cache
            .take(&Key::new(Namespace::Code, "same"))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"code"[..])
    );
    assert_eq!(
        cache
            .get(&Key::new(Namespace::Session, "same"))
            .await
            .unwrap()
            .as_deref(),
        Some(&b"session"[..])
    );
}

async fn ping_answers(stack: Stack) {
    open(stack).ping().await.unwrap();
}

macro_rules! on_both_caches {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn in_process() {
                    super::$name(super::Stack::Embedded).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_redis() {
                    if super::production_available() {
                        super::$name(super::Stack::Production).await;
                    }
                }
            }
        )*
    };
}

on_both_caches!(
    put_then_get_returns_the_value_and_put_replaces_it,
    take_returns_a_value_once_even_under_concurrent_takers,
    put_new_admits_only_the_first_writer,
    put_existing_replaces_only_a_live_value,
    a_value_taken_while_it_is_replaced_stays_taken,
    values_expire_after_their_ttl,
    a_zero_ttl_is_refused,
    counters_count_within_their_window_and_restart_after,
    namespaces_do_not_collide,
    ping_answers,
);

#[tokio::test]
async fn redis_keys_carry_the_prefix_and_a_ttl() {
    if !production_available() {
        return;
    }
    let prefix = unique("civitas-test");
    let cache = Cache::open(&redis_url(), &prefix).unwrap();
    cache
        .put(&Key::new(Namespace::Session, "s1"), b"x", MINUTE)
        .await
        .unwrap();
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, [format!("{prefix}:session:s1")]);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 60_000, "ttl {ttl}");
}

#[tokio::test]
async fn an_unreachable_redis_fails_fast_instead_of_hanging() {
    // Nothing listens on port 1.
    let cache = Cache::open("redis://127.0.0.1:1", "civitas-test").unwrap();
    let started = std::time::Instant::now();
    let result = cache.get(&Key::new(Namespace::Test, "x")).await;
    assert!(
        matches!(result, Err(EphemeralError::Unavailable(_))),
        "{result:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "took {:?}",
        started.elapsed()
    );
}
