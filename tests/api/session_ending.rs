//! Locks, unlocks and erasures end an account's browser sessions, including
//! those of a sign-in that was in flight when the operator acted: it passed
//! its `locked_at` check before the lock committed and calls
//! `Sessions::establish` (or `establish_recovery`) after it. The clock is a
//! `ManualClock`, so "after" is a later second, exactly what a real race
//! produces, and every test is deterministic.

use std::sync::Arc;

use civitas::accounts::{Account, AccountId};
use civitas::clock::{Clock as _, ManualClock, SystemClock};
use civitas::ephemeral::{Ephemeral as _, Key, Namespace};
use reqwest::Method;
use serde_json::json;

use crate::admin::{admin, call};
use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;
use crate::rp;

/// A citizen with a passkey on `phone`, created over HTTP; the account.
async fn citizen(app: &TestApp, phone: &mut SoftAuthenticator) -> Account {
    let mut b = Browser::new(app);
    b.create_account(phone, "Lea", "lea@example.eu", None).await;
    let id = b.account_id().await;
    app.app().accounts.get(&id).await.unwrap().unwrap()
}

/// Does this browser's cookie still name a live session, both as the
/// library sees it and over HTTP (the account page, not a redirect to
/// sign in)?
async fn live(app: &TestApp, b: &rp::Browser) -> bool {
    let session = app.app().sessions.current(&b.cookie).await.unwrap();
    let res = app.browse(Some(b), "/account").await;
    let page = res.status() == 200;
    if !page {
        assert_eq!(res.status(), 303, "not signed in: a redirect");
        assert_eq!(res.headers()["location"], "/signin");
    }
    assert_eq!(session.is_some(), page, "the library and the page agree");
    page
}

/// A browser holding a recovery session of `account`, as the recovery-code
/// and eID recovery paths establish after their check.
async fn recovery_session(app: &TestApp, account: &AccountId) -> rp::Browser {
    let (session, cookie) = app
        .app()
        .sessions
        .establish_recovery(account.clone(), civitas::assurance::Level::Low, None)
        .await
        .unwrap();
    rp::Browser {
        account: app.app().accounts.get(account).await.unwrap().unwrap(),
        cookie: cookie.expose().to_owned(),
        sid: session.sid,
    }
}

async fn lock(app: &TestApp, token: &str, account: &AccountId, method: Method) -> bool {
    let (status, _, out) = call(
        app,
        Some(token),
        method,
        &format!("/admin/accounts/{}/lock", account.as_str()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    out["changed"].as_bool().unwrap()
}

async fn a_sign_in_in_flight_when_the_account_is_locked_never_yields_a_live_session(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let (_, token) = admin(&app).await;
    let mut phone = SoftAuthenticator::new(&app.base, false);
    let account = citizen(&app, &mut phone).await;
    let before = app.sign_in_as(&account, None).await;
    assert!(live(&app, &before).await);

    // The lock commits in second T.
    clock.advance(5);
    assert!(lock(&app, &token, &account.id, Method::PUT).await);
    assert!(!live(&app, &before).await);

    // Sign-ins that passed their check before the lock committed establish
    // their sessions in second T+1: a passkey sign-in, and a recovery code
    // or an eID recovery (a recovery session).
    clock.advance(1);
    let passkey = app.sign_in_as(&account, None).await;
    let recovery = recovery_session(&app, &account.id).await;
    assert!(
        !live(&app, &passkey).await,
        "a session established after the lock is ended"
    );
    assert!(!live(&app, &recovery).await);

    // However late it lands while the account stays locked.
    clock.advance(3_600);
    let late = app.sign_in_as(&account, None).await;
    assert!(!live(&app, &late).await);

    // And the sign-in itself is refused, as before.
    let (status, body) = Browser::new(&app).sign_in(&mut phone, None).await;
    assert_eq!((status, &body["error"]), (403, &json!("account_locked")));
}

async fn after_an_unlock_new_sign_ins_live_and_sessions_from_before_and_during_the_lock_stay_ended(
    stack: Stack,
) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let (_, token) = admin(&app).await;
    let mut phone = SoftAuthenticator::new(&app.base, false);
    let account = citizen(&app, &mut phone).await;
    let before = app.sign_in_as(&account, None).await;

    clock.advance(5);
    assert!(lock(&app, &token, &account.id, Method::PUT).await);
    clock.advance(1);
    let during = app.sign_in_as(&account, None).await;
    let during_recovery = recovery_session(&app, &account.id).await;

    clock.advance(60);
    assert!(lock(&app, &token, &account.id, Method::DELETE).await);
    // A passkey sign-in over HTTP in the very second of the unlock lives.
    let mut b = Browser::new(&app);
    let (status, body) = b.sign_in(&mut phone, None).await;
    assert_eq!(status, 200, "{body}");
    let fresh = rp::Browser {
        account: account.clone(),
        cookie: b.session_cookie().unwrap().to_owned(),
        sid: String::new(),
    };
    assert!(live(&app, &fresh).await, "a sign-in after the unlock lives");
    clock.advance(1);
    let later = app.sign_in_as(&account, None).await;
    assert!(live(&app, &later).await);
    // Sessions from before and during the lock never come back, even if
    // nothing loaded them while the account was locked.
    for (name, ended) in [
        ("before", &before),
        ("during", &during),
        ("during (recovery)", &during_recovery),
    ] {
        assert!(!live(&app, ended).await, "the session from {name} the lock");
    }
    assert!(live(&app, &fresh).await);
}

async fn a_repeated_lock_ends_sessions_again_after_the_marker_was_lost(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let (_, token) = admin(&app).await;
    let account = app.app().accounts.create("Ines", None).await.unwrap();
    assert!(lock(&app, &token, &account.id, Method::PUT).await);
    // The marker is gone (a cache failure after the lock committed, or a
    // Redis restart): an in-flight sign-in's session would live.
    let marker = Key::new(
        Namespace::Session,
        format!("locked:{}", account.id.as_str()),
    );
    app.app().cache.delete(&marker).await.unwrap();
    clock.advance(1);
    let in_flight = app.sign_in_as(&account, None).await;

    // The operator locks again: nothing changes in the database, but the
    // sessions end.
    assert!(!lock(&app, &token, &account.id, Method::PUT).await);
    assert!(!live(&app, &in_flight).await);
    clock.advance(1);
    let next = app.sign_in_as(&account, None).await;
    assert!(!live(&app, &next).await);
}

async fn an_erasure_ends_every_session_including_one_established_after_it(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let (_, token) = admin(&app).await;
    let mut phone = SoftAuthenticator::new(&app.base, false);
    let account = citizen(&app, &mut phone).await;
    let before = app.sign_in_as(&account, None).await;
    let recovery = recovery_session(&app, &account.id).await;

    clock.advance(5);
    let (status, _, out) = call(
        &app,
        Some(&token),
        Method::DELETE,
        &format!("/admin/accounts/{}", account.id.as_str()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    // A sign-in that found the passkey before the erasure committed.
    clock.advance(1);
    let (session, cookie) = app
        .app()
        .sessions
        .establish_recovery(account.id.clone(), civitas::assurance::Level::Low, None)
        .await
        .unwrap();
    let after = rp::Browser {
        account: account.clone(),
        cookie: cookie.expose().to_owned(),
        sid: session.sid,
    };
    let passkey = app.sign_in_as(&account, None).await;
    for b in [&before, &recovery, &after, &passkey] {
        assert!(
            app.app()
                .sessions
                .current(&b.cookie)
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(app.browse(Some(b), "/account").await.status(), 303);
    }
}

on_both_stacks!(
    a_sign_in_in_flight_when_the_account_is_locked_never_yields_a_live_session,
    after_an_unlock_new_sign_ins_live_and_sessions_from_before_and_during_the_lock_stay_ended,
    a_repeated_lock_ends_sessions_again_after_the_marker_was_lost,
    an_erasure_ends_every_session_including_one_established_after_it,
);

async fn a_marker_in_the_earlier_format_still_ends_sessions_begun_at_or_before_its_time(
    stack: Stack,
) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let account = app.app().accounts.create("Ines", None).await.unwrap();
    let at_the_lock = app.sign_in_as(&account, None).await;
    // Written by an instance of the earlier release: the bare time of the lock.
    let marker = Key::new(
        Namespace::Session,
        format!("locked:{}", account.id.as_str()),
    );
    let t = clock.now().0.to_string();
    app.app()
        .cache
        .put(&marker, t.as_bytes(), std::time::Duration::from_secs(600))
        .await
        .unwrap();
    clock.advance(1);
    let after = app.sign_in_as(&account, None).await;
    assert!(!live(&app, &at_the_lock).await);
    assert!(live(&app, &after).await);
}

on_both_stacks!(a_marker_in_the_earlier_format_still_ends_sessions_begun_at_or_before_its_time);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_marker_outlives_every_session_it_ends() {
    let Some(env) = TestEnv::new(Stack::Production).await else {
        return;
    };
    let app = env.spawn().await;
    let (_, token) = admin(&app).await;
    let account = app.app().accounts.create("Ines", None).await.unwrap();
    let mut conn = redis::Client::open(crate::helpers::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let key = format!(
        "{}:session:locked:{}",
        env.cache_prefix,
        account.id.as_str()
    );
    let absolute = app.app().settings.sessions.absolute_timeout;
    for method in [Method::PUT, Method::DELETE] {
        lock(&app, &token, &account.id, method).await;
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let ttl = std::time::Duration::from_millis(u64::try_from(ttl).unwrap());
        assert!(
            ttl > absolute + civitas::sessions::MARKER_LIFETIME_MARGIN / 2,
            "{ttl:?}"
        );
    }
}
