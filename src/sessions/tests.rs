//! Sessions against both stores, with a pinned clock. The races are made
//! deterministic by running the steps of `current` one at a time: load,
//! then what another request does, then the touch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use super::{Ended, Sessions, TOUCH_EVERY, key};
use crate::accounts::AccountId;
use crate::clock::{Clock as _, ManualClock, UnixTime};
use crate::config::SessionSettings;
use crate::ephemeral::{Cache, Ephemeral as _};
use crate::secrets::random_token;

/// The in-process store, and Redis (`CIVITAS_TEST_REDIS`, by default on
/// 127.0.0.1) if it answers; under `CI=true` a missing Redis is a failure.
async fn caches() -> Vec<Cache> {
    let mut caches = vec![Cache::open("memory", "unused").unwrap()];
    let url =
        std::env::var("CIVITAS_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let redis = Cache::open(&url, &format!("civitas-unit-{}", random_token(9))).unwrap();
    match redis.ping().await {
        Ok(()) => caches.push(redis),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and Redis at {url} is not reachable: {e}")
        }
        Err(e) => eprintln!("SKIPPED on Redis: {e} (set CI=true to make this a failure)"),
    }
    caches
}

fn sessions(cache: Cache) -> (Sessions, ManualClock) {
    let clock = ManualClock::new(UnixTime(1_800_000_000));
    let sessions = Sessions::new(cache, Arc::new(clock.clone()), SessionSettings::default());
    (sessions, clock)
}

#[tokio::test]
async fn a_session_ended_after_it_was_read_is_not_brought_back_by_its_touch() {
    for cache in caches().await {
        let (sessions, clock) = sessions(cache.clone());
        let (_, cookie) = sessions
            .establish_recovery(AccountId::generate(), crate::assurance::Level::Low, None)
            .await
            .unwrap();
        let cookie = cookie.expose();
        clock.advance(TOUCH_EVERY + 1);

        // A request reads the session; its touch is due.
        let read = sessions.load(cookie).await.unwrap().expect("live");
        // The citizen signs out meanwhile.
        assert!(sessions.end(cookie).await.unwrap().is_some());
        // The request's touch finds nothing to restart.
        assert_eq!(sessions.touch(cookie, read).await.unwrap(), None);
        assert_eq!(cache.get(&key(cookie)).await.unwrap(), None, "{cache:?}");
        assert_eq!(sessions.current(cookie).await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_session_ended_before_its_level_is_raised_is_not_brought_back() {
    for cache in caches().await {
        let (sessions, _) = sessions(cache.clone());
        let (_, cookie) = sessions
            .establish_recovery(AccountId::generate(), crate::assurance::Level::Low, None)
            .await
            .unwrap();
        let cookie = cookie.expose();
        // A level change read the session, then the citizen signed out.
        let mut read = sessions.current(cookie).await.unwrap().expect("live");
        assert!(sessions.end(cookie).await.unwrap().is_some());
        read.acr = crate::assurance::Level::High.uri().to_owned();
        assert!(!sessions.rewrite(cookie, &read).await.unwrap());
        assert_eq!(cache.get(&key(cookie)).await.unwrap(), None, "{cache:?}");
        assert_eq!(sessions.raise_acr(cookie, "x").await.unwrap(), None);
    }
}

#[tokio::test]
async fn a_live_session_is_touched_at_most_once_a_minute() {
    for cache in caches().await {
        let (sessions, clock) = sessions(cache);
        let (first, cookie) = sessions
            .establish_recovery(AccountId::generate(), crate::assurance::Level::Low, None)
            .await
            .unwrap();
        let cookie = cookie.expose();
        clock.advance(TOUCH_EVERY - 1);
        let s = sessions.current(cookie).await.unwrap().unwrap();
        assert_eq!(s.last_seen, first.last_seen, "not yet");
        clock.advance(1);
        let s = sessions.current(cookie).await.unwrap().unwrap();
        assert_eq!(s.last_seen, clock.now());
        let stored = sessions.load(cookie).await.unwrap().unwrap();
        assert_eq!(stored.last_seen, clock.now(), "written back");
        assert!(stored.restricted, "the rest of the session is kept");
    }
}

#[test]
fn markers_are_read_in_the_current_and_the_earlier_format() {
    let at = |t| UnixTime(t);
    assert_eq!(Ended::decode(b"before:100"), Ended::Before(100));
    assert_eq!(
        Ended::decode(Ended::Before(7).encode().as_bytes()),
        Ended::Before(7)
    );
    assert_eq!(Ended::decode(b"all"), Ended::All);
    // The earlier format: the bare time of the lock, "at or before".
    let legacy = Ended::decode(b"100");
    assert!(legacy.ends(at(100)) && !legacy.ends(at(101)));
    assert!(Ended::Before(100).ends(at(99)) && !Ended::Before(100).ends(at(100)));
    assert!(Ended::All.ends(at(i64::MAX)));
    // Unreadable: every session ends.
    for garbage in [&b"before:x"[..], b"", b"\xff", b"later"] {
        assert_eq!(Ended::decode(garbage), Ended::All);
    }
    assert_eq!(
        Ended::decode(b"9223372036854775807"),
        Ended::Before(i64::MAX)
    );
}
