//! Levels are never inflated (citizen review H1, H2): a passkey counts at
//! most at the level of the context that enrolled it, and only a fresh eID
//! proof in a session of that passkey raises it. Each test follows one of
//! the review's sequences over HTTP, with the simulator as the eID.

use serde_json::json;

use civitas::assurance::Level;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::eid::{signed_up, through_eid, with_simulator};
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;

/// The level of the browser's session.
async fn level_of(app: &TestApp, b: &Browser<'_>) -> Level {
    let session = app
        .app()
        .sessions
        .current(b.session_cookie().expect("a session cookie"))
        .await
        .unwrap()
        .expect("a live session");
    Level::parse(&session.acr).unwrap_or(Level::Low)
}

/// Signs in with `key` in a new browser; the session's level.
async fn signs_in_at(app: &TestApp, key: &mut SoftAuthenticator) -> Level {
    let mut b = Browser::new(app);
    b.page("/signin").await;
    let (status, body) = b.sign_in(key, None).await;
    assert_eq!(status, 200, "{body}");
    level_of(app, &b).await
}

/// Registers `key` as a new passkey in the browser's session.
async fn add_passkey(b: &mut Browser<'_>, key: &mut SoftAuthenticator) {
    b.page("/account").await;
    let (_, begin) = b.post_json("/passkeys/register/begin", &json!({})).await;
    let (status, done) = b
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": key.create(&begin["options"])}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
}

/// Proves the simulator's "mari" at `level` in the browser's session.
async fn prove(b: &mut Browser<'_>, level: &str) {
    let res = through_eid(
        b,
        "/account/eid/start?connector=sim",
        "mari",
        level,
        "",
        true,
    )
    .await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
}

async fn a_recovery_code_and_a_new_passkey_reach_only_low(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    // Mari's device-bound passkey, proven at high.
    let (mut b, mut first, _account) = signed_up(&app, true).await;
    prove(&mut b, "high").await;
    assert_eq!(level_of(&app, &b).await, Level::High);
    assert_eq!(signs_in_at(&app, &mut first).await, Level::High);
    b.page("/account").await;
    let html = b
        .post_form("/account/recovery-codes", &[])
        .await
        .text()
        .await
        .unwrap();
    let code = html
        .split("<li><code>")
        .nth(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .expect("a recovery code");

    // Whoever holds one code and any authenticator that says it is device-bound.
    let mut r = Browser::new(&app);
    r.page("/recover").await;
    let res = r.post_form("/recover", &[("recovery_code", &code)]).await;
    assert_eq!(res.status(), 303);
    let mut stranger = SoftAuthenticator::new(&app.base, false);
    add_passkey(&mut r, &mut stranger).await;
    assert_eq!(
        level_of(&app, &r).await,
        Level::Low,
        "a recovery code proves nothing about the person"
    );
    assert_eq!(signs_in_at(&app, &mut stranger).await, Level::Low);
    // The passkey proven at high keeps its level.
    assert_eq!(signs_in_at(&app, &mut first).await, Level::High);
}

async fn eid_recovery_gives_at_most_the_level_it_proved(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _first, _account) = signed_up(&app, true).await;
    prove(&mut b, "high").await;
    for (recovered_at, expected) in [
        ("low", Level::Low),
        ("substantial", Level::Substantial),
        ("high", Level::High),
    ] {
        let mut r = Browser::new(&app);
        let res = through_eid(
            &mut r,
            "/recover/eid?connector=sim",
            "mari",
            recovered_at,
            "",
            true,
        )
        .await;
        assert_eq!(res.status(), 303);
        let mut key = SoftAuthenticator::new(&app.base, false);
        add_passkey(&mut r, &mut key).await;
        assert_eq!(
            level_of(&app, &r).await,
            expected,
            "recovered at {recovered_at}"
        );
        assert_eq!(
            signs_in_at(&app, &mut key).await,
            expected,
            "the new passkey, recovered at {recovered_at}"
        );
    }
}

async fn a_passkey_added_at_substantial_never_signs_in_at_high_until_proven_at_high(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    // A synced passkey, proven at high: substantial, the synced cap.
    let (mut b, mut synced, _account) = signed_up(&app, false).await;
    prove(&mut b, "high").await;
    assert_eq!(level_of(&app, &b).await, Level::Substantial);
    // Whoever holds that session adds a device-bound key.
    let mut added = SoftAuthenticator::new(&app.base, false);
    add_passkey(&mut b, &mut added).await;
    assert_eq!(
        signs_in_at(&app, &mut added).await,
        Level::Substantial,
        "enrolled at substantial, it counts at substantial"
    );
    let page = b.page("/account").await;
    assert!(
        page.contains("signs you in at substantial until you prove your identity with it"),
        "{page}"
    );

    // A fresh proof at high in a session of the new passkey raises it.
    let mut c = Browser::new(&app);
    c.page("/signin").await;
    c.sign_in(&mut added, None).await;
    prove(&mut c, "high").await;
    assert_eq!(level_of(&app, &c).await, Level::High);
    assert_eq!(signs_in_at(&app, &mut added).await, Level::High);
    assert_eq!(
        signs_in_at(&app, &mut synced).await,
        Level::Substantial,
        "the synced passkey stays capped"
    );
    let page = c.page("/account").await;
    assert!(page.contains("signs you in at high"), "{page}");
    // The proof at substantial in the synced passkey's session does not
    // lower the other passkey.
    let mut d = Browser::new(&app);
    d.page("/signin").await;
    d.sign_in(&mut synced, None).await;
    prove(&mut d, "high").await;
    assert_eq!(signs_in_at(&app, &mut added).await, Level::High);
}

on_both_stacks!(
    a_recovery_code_and_a_new_passkey_reach_only_low,
    eid_recovery_gives_at_most_the_level_it_proved,
    a_passkey_added_at_substantial_never_signs_in_at_high_until_proven_at_high,
);

/// Runs the migrations up to `last` on the environment's database, as an
/// earlier version of Civitas left it.
async fn migrated_up_to(env: &crate::helpers::TestEnv, last: i64) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    let url = if env.database_url.starts_with("sqlite:") {
        format!("{}?mode=rwc", env.database_url)
    } else {
        env.database_url.clone()
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    let dir = if url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    let mut migrator = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir),
    )
    .await
    .unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= last)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    migrator.run(&pool).await.unwrap();
    pool
}

async fn passkeys_enrolled_before_levels_were_stored_keep_only_a_level_they_provably_earned(
    stack: Stack,
) {
    let Some(env) = crate::helpers::TestEnv::new(stack).await else {
        return;
    };
    let pool = migrated_up_to(&env, 10).await;
    let exec = |sql: String| {
        let pool = pool.clone();
        async move {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
    };
    // (account, passkeys created at, binding level and verified_at, audit kind)
    type Old<'a> = (&'a str, &'a [i64], Option<(&'a str, i64)>, Option<&'a str>);
    let accounts: [Old<'_>; 6] = [
        ("only-proven", &[100], Some(("high", 200)), None),
        (
            "two-passkeys",
            &[100, 150],
            Some(("substantial", 200)),
            None,
        ),
        ("added-after", &[300], Some(("high", 200)), None),
        (
            "recovered",
            &[100],
            Some(("high", 200)),
            Some("recovery_code.used"),
        ),
        (
            "removed-one",
            &[100],
            Some(("high", 200)),
            Some("passkey.removed"),
        ),
        ("never-proven", &[100], None, None),
    ];
    for (n, (account, created, binding, kind)) in accounts.iter().enumerate() {
        exec(format!(
            "INSERT INTO accounts (account_id, display_name, created_at, user_handle) \
             VALUES ('{account}', 'X', 1, 'handle-{n}')"
        ))
        .await;
        for (i, at) in created.iter().enumerate() {
            exec(format!(
                "INSERT INTO passkeys (credential_id, account_id, name, passkey, backup_eligible, backup_state, \
                 sign_count, transports, attestation_format, created_at) \
                 VALUES ('{account}-{i}', '{account}', 'Key', '{{}}', 0, 0, 0, '', 'none', {at})"
            ))
            .await;
        }
        if let Some((level, verified)) = binding {
            exec(format!(
                "INSERT INTO eid_bindings (account_id, identity_hash, connector, scheme, country, \
                 person_identifier_enc, level, verified_at, created_at, person_hash) \
                 VALUES ('{account}', 'h-{n}', 'sim', 'simulated-eid', 'EE', 'x', '{level}', {verified}, {verified}, 'p-{n}')"
            ))
            .await;
        }
        if let Some(kind) = kind {
            exec(format!(
                "INSERT INTO audit_log (event_id, occurred_at, kind, actor, account_id, detail) \
                 VALUES ('e-{n}', 250, '{kind}', 'citizen', '{account}', '{{}}')"
            ))
            .await;
        }
    }
    pool.close().await;

    // This version starts on that database and migrates it.
    let app = env.spawn().await;
    let levels: Vec<(String, String)> =
        sqlx::query_as("SELECT credential_id, max_level FROM passkeys ORDER BY credential_id")
            .fetch_all(app.app().db.pool())
            .await
            .unwrap();
    let level = |id: &str| {
        levels
            .iter()
            .find(|(c, _)| c == id)
            .map(|(_, l)| l.as_str())
            .unwrap()
    };
    assert_eq!(
        level("only-proven-0"),
        "high",
        "the only passkey, registered before the eID was proven"
    );
    for id in [
        "two-passkeys-0",
        "two-passkeys-1",
        "added-after-0",
        "recovered-0",
        "removed-one-0",
        "never-proven-0",
    ] {
        assert_eq!(level(id), "low", "{id}: nothing shows it earned more");
    }
}

on_both_stacks!(passkeys_enrolled_before_levels_were_stored_keep_only_a_level_they_provably_earned);
