//! Passkey ceremonies over real HTTP with a software authenticator.

use serde_json::{Value, json};

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;

async fn a_citizen_enrolls_signs_in_without_a_username_and_manages_passkeys(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut phone = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);

    // Enrol: the options ask for a discoverable credential with user verification.
    b.page("/signin/create").await;
    let (_, begin) = b
        .post_json(
            "/passkeys/register/begin",
            &json!({"display_name": "Vera", "email": "vera@example.eu"}),
        )
        .await;
    let sel = &begin["options"]["publicKey"]["authenticatorSelection"];
    assert_eq!(sel["residentKey"], "required");
    assert_eq!(sel["userVerification"], "required");
    assert_eq!(begin["options"]["publicKey"]["rp"]["id"], "localhost");
    let credential = phone.create(&begin["options"]);
    let (status, done) = b
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": credential, "name": "Phone"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["next"], "/account");
    let cookie = b.session_cookie().unwrap().to_owned();
    let session = app.app().sessions.current(&cookie).await.unwrap().unwrap();
    assert_eq!(
        session.amr,
        ["user", "mfa", "hwk"],
        "a device-bound passkey"
    );
    let account_id = session.account_id.clone();

    let page = b.page("/account").await;
    assert!(
        page.contains("Phone") && page.contains("device-bound passkey"),
        "{page}"
    );
    assert!(page.contains("not verified yet"));

    // A second browser signs in without a username.
    let mut other = Browser::new(&app);
    let (status, done) = other.sign_in(&mut phone, None).await;
    assert_eq!(status, 200, "{done}");
    let session = app
        .app()
        .sessions
        .current(other.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(session.account_id, account_id);
    assert_ne!(
        session.sid,
        app.app()
            .sessions
            .current(&cookie)
            .await
            .unwrap()
            .unwrap()
            .sid
    );

    // Add a synced passkey.
    let mut laptop = SoftAuthenticator::new(&app.base, true);
    b.page("/account").await;
    let (_, begin) = b.post_json("/passkeys/register/begin", &json!({})).await;
    assert_eq!(
        begin["options"]["publicKey"]["excludeCredentials"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "the existing passkey is excluded"
    );
    let credential = laptop.create(&begin["options"]);
    let (status, done) = b
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": credential, "name": "Laptop"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let list = app.app().passkeys.list(&account_id).await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .any(|p| p.name == "Laptop" && p.synced && p.aaguid.is_some())
    );
    let (_, _) = Browser::new(&app).sign_in(&mut laptop, None).await;
    let mut third = Browser::new(&app);
    let (status, _) = third.sign_in(&mut laptop, None).await;
    assert_eq!(status, 200);
    let s = app
        .app()
        .sessions
        .current(third.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(s.amr, ["user", "mfa", "swk"], "a synced passkey");
    let list = app.app().passkeys.list(&account_id).await.unwrap();
    let laptop_row = list.iter().find(|p| p.name == "Laptop").unwrap();
    assert!(laptop_row.last_used_at.is_some() && laptop_row.sign_count >= 2);

    // Rename and remove; the last one stays while no recovery code exists.
    b.page("/account").await;
    let phone_id = list
        .iter()
        .find(|p| p.name == "Phone")
        .unwrap()
        .credential_id
        .clone();
    let laptop_id = laptop_row.credential_id.clone();
    let res = b
        .post_form(
            "/account/passkeys/rename",
            &[("credential_id", &phone_id), ("name", "Old phone")],
        )
        .await;
    assert_eq!(res.status(), 303);
    let res = b
        .post_form("/account/passkeys/remove", &[("credential_id", &phone_id)])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=removed")
    );
    let res = b
        .post_form("/account/passkeys/remove", &[("credential_id", &laptop_id)])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=last")
    );
    assert_eq!(app.app().passkeys.list(&account_id).await.unwrap().len(), 1);
    // A form without the CSRF token does nothing.
    b.csrf = "forged".into();
    let res = b
        .post_form(
            "/account/passkeys/rename",
            &[("credential_id", &laptop_id), ("name", "x")],
        )
        .await;
    assert_eq!(res.status(), 403);
}

async fn replayed_foreign_and_unverified_assertions_are_refused(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut key = SoftAuthenticator::new(&app.base, false);
    Browser::new(&app)
        .create_account(&mut key, "Wim", "wim@example.eu", None)
        .await;

    // A replayed response finds no ceremony.
    let mut b = Browser::new(&app);
    b.page("/signin").await;
    let (_, begin) = b.post_json("/passkeys/signin/begin", &json!({})).await;
    let assertion = key.get(&begin["options"]);
    let body = json!({"ceremony": begin["ceremony"], "credential": assertion});
    assert_eq!(b.post_json("/passkeys/signin/finish", &body).await.0, 200);
    let (status, err) = b.post_json("/passkeys/signin/finish", &body).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("expired_ceremony"))
    );
    // The same assertion under a fresh ceremony: the challenge does not match.
    let (_, begin2) = b.post_json("/passkeys/signin/begin", &json!({})).await;
    let (status, err) = b
        .post_json(
            "/passkeys/signin/finish",
            &json!({"ceremony": begin2["ceremony"], "credential": assertion}),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("passkey_rejected"))
    );

    // An assertion made for another origin.
    let mut c = Browser::new(&app);
    c.page("/signin").await;
    let (_, begin) = c.post_json("/passkeys/signin/begin", &json!({})).await;
    key.origin = "https://evil.example".into();
    let (status, err) = c
        .post_json(
            "/passkeys/signin/finish",
            &json!({"ceremony": begin["ceremony"], "credential": key.get(&begin["options"])}),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("passkey_rejected"))
    );
    assert!(c.session_cookie().is_none());
    key.origin = app.base.clone();

    // Without user verification.
    key.skip_uv = true;
    let (status, _) = Browser::new(&app).sign_in(&mut key, None).await;
    assert_eq!(status, 400);
    key.skip_uv = false;

    // Missing CSRF token.
    let mut d = Browser::new(&app);
    let (status, _) = d.post_json("/passkeys/signin/begin", &json!({})).await;
    assert_eq!(status, 403);
}

async fn a_lost_passkey_is_replaced_with_a_recovery_code_used_once(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut old = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut old, "Xan", "xan@example.eu", None)
        .await;
    b.page("/account").await;
    let html = b
        .post_form("/account/recovery-codes", &[])
        .await
        .text()
        .await
        .unwrap();
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect();
    assert_eq!(codes.len(), 10);
    let account_id = b.account_id().await;
    let stored: Vec<(String,)> =
        sqlx::query_as("SELECT code_hash FROM recovery_codes WHERE account_id = $1")
            .bind(account_id.as_str())
            .fetch_all(app.app().db.pool())
            .await
            .unwrap();
    assert!(
        stored
            .iter()
            .all(|(h,)| !codes.iter().any(|c| h.contains(&c[..4]))),
        "only hashes are stored"
    );

    // On a new device: a recovery code opens a restricted session.
    let mut r = Browser::new(&app);
    r.page("/recover").await;
    let res = r
        .post_form("/recover", &[("recovery_code", &codes[3].to_lowercase())])
        .await;
    assert_eq!(res.status(), 303);
    let session = app
        .app()
        .sessions
        .current(r.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(session.restricted);
    let page = r.page("/account").await;
    assert!(page.contains("Register a new passkey") && !page.contains("Recovery codes"));
    // …which signs in to no service.
    let rp = app.portal(json!({})).await;
    let (q, _) = app.auth_query(&rp, "openid", "&prompt=none");
    let res = r.get(&format!("/authorize?{q}")).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("error=login_required"), "{location}");
    // It registers a new passkey and becomes a full session.
    let mut new = SoftAuthenticator::new(&app.base, true);
    let (_, begin) = r.post_json("/passkeys/register/begin", &json!({})).await;
    let (status, done) = r
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": new.create(&begin["options"])}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let session = app
        .app()
        .sessions
        .current(r.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(!session.restricted && session.account_id == account_id);
    // The code works once; its use is recorded.
    let mut again = Browser::new(&app);
    again.page("/recover").await;
    assert_eq!(
        again
            .post_form("/recover", &[("recovery_code", &codes[3])])
            .await
            .status(),
        400
    );
    let events = civitas::audit::for_account(&app.app().db, &account_id, 50)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "recovery_code.used"));
    assert_eq!(
        civitas::accounts::recovery::remaining(&app.app().db, &account_id)
            .await
            .unwrap(),
        9
    );
}

async fn the_email_address_is_verified_with_a_mailed_code(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut key, "Yara", "yara@example.eu", None)
        .await;
    let rp = app.portal(json!({})).await;
    let account_id = b.account_id().await;
    b.page("/account").await;
    let res = b.post_form("/account/email/send", &[]).await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("email-sent")
    );
    let outbox = app.env.dir.path().join("outbox");
    let mail = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(mail).unwrap();
    assert!(text.starts_with("To: yara@example.eu"));
    let code: String = text
        .split("Civitas is ")
        .nth(1)
        .unwrap()
        .chars()
        .take(6)
        .collect();
    let res = b
        .post_form("/account/email/verify", &[("code", "000000")])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("email-bad")
    );
    let res = b
        .post_form("/account/email/verify", &[("code", &code)])
        .await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.ends_with("email-verified"),
        "{location} {code} {text}"
    );
    assert!(
        app.app()
            .accounts
            .get(&account_id)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
    let _ = rp;
}

async fn a_relying_party_signs_in_a_new_citizen_who_creates_an_account_on_the_way(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let (q, verifier) = app.auth_query(&rp, "openid email", "&prompt=create");
    let mut b = Browser::new(&app);
    let res = b.get(&format!("/authorize?{q}")).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("&create=1"));
    let handle = location
        .split("auth=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_owned();
    let page = b.page(&location).await;
    assert!(
        page.contains("name=\"display_name\"") && page.contains("data-testid=\"passkey-register\"")
    );
    assert!(page.contains("Permit portal"), "the page names the service");
    let mut key = SoftAuthenticator::new(&app.base, false);
    let next = b
        .create_account(&mut key, "Zoe", "zoe@example.eu", Some(&handle))
        .await;
    assert_eq!(next, format!("/authorize/resume?auth={handle}"));
    let consent = b.page(&next).await;
    assert!(consent.contains("data-testid=\"consent-allow\""));
    let auth = crate::rp::hidden(&consent, "auth");
    let csrf = crate::rp::hidden(&consent, "csrf");
    b.csrf = csrf.clone();
    let res = b
        .post_form("/consent", &[("auth", &auth), ("decision", "allow")])
        .await;
    let code = crate::rp::param(&crate::rp::redirect_params(&res), "code").unwrap();
    let tokens: Value = app
        .exchange(&rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let claims = crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["amr"], json!(["user", "mfa", "hwk"]));
    assert_eq!(claims["acr"], "http://eidas.europa.eu/LoA/low");
    let info: Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "zoe@example.eu");
    assert_eq!(
        info["email_verified"], false,
        "not verified until the code is entered"
    );
}

/// Asks for a verification code; the notice the account page is sent to.
async fn send_code(b: &mut Browser<'_>) -> String {
    let res = b.post_form("/account/email/send", &[]).await;
    let location = res.headers()["location"].to_str().unwrap();
    location.rsplit("notice=").next().unwrap().to_owned()
}

/// How many mails in the outbox went to `address` (in any case).
fn mails_to(app: &TestApp, address: &str) -> usize {
    let Ok(dir) = std::fs::read_dir(app.env.dir.path().join("outbox")) else {
        return 0;
    };
    dir.filter(|m| {
        let text = std::fs::read_to_string(m.as_ref().unwrap().path()).unwrap();
        text.lines().next().unwrap().to_lowercase() == format!("to: {address}")
    })
    .count()
}

/// Accounts can be made with any address, so the codes are also limited
/// per destination: five an hour, whichever accounts ask.
async fn one_address_gets_at_most_five_codes_an_hour_across_accounts(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut browsers = Vec::new();
    for (name, email) in [
        ("Anna", "victim@example.eu"),
        ("Bert", "Victim@Example.EU"),
        ("Cleo", "cleo@example.eu"),
    ] {
        let mut key = SoftAuthenticator::new(&app.base, false);
        let mut b = Browser::new(&app);
        b.create_account(&mut key, name, email, None).await;
        b.page("/account").await;
        browsers.push(b);
    }
    let [anna, bert, cleo] = &mut browsers[..] else {
        unreachable!()
    };
    let mut notices = Vec::new();
    for _ in 0..4 {
        notices.push(send_code(anna).await);
    }
    assert_eq!(notices, ["email-sent", "email-sent", "email-sent", "rate"]);
    assert_eq!(send_code(bert).await, "email-sent");
    assert_eq!(send_code(bert).await, "email-sent");
    // The sixth to that address, from another account: refused, and said so.
    assert_eq!(send_code(bert).await, "email-rate-address");
    let page = bert.page("/account?notice=email-rate-address").await;
    assert!(
        page.contains("Too many codes were sent to this address"),
        "{page}"
    );
    assert_eq!(mails_to(&app, "victim@example.eu"), 5);
    // Another address has its own allowance.
    assert_eq!(send_code(cleo).await, "email-sent");
    assert_eq!(mails_to(&app, "cleo@example.eu"), 1);
    // The shared store's keys never hold an address.
    if stack == Stack::Production {
        let client = redis::Client::open(crate::helpers::redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}:*", app.env.cache_prefix))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(keys.iter().any(|k| k.contains("email-to:")), "{keys:?}");
        assert!(
            !keys.iter().any(|k| k.to_lowercase().contains("victim")),
            "{keys:?}"
        );
    }
}

on_both_stacks!(
    a_citizen_enrolls_signs_in_without_a_username_and_manages_passkeys,
    replayed_foreign_and_unverified_assertions_are_refused,
    a_lost_passkey_is_replaced_with_a_recovery_code_used_once,
    the_email_address_is_verified_with_a_mailed_code,
    one_address_gets_at_most_five_codes_an_hour_across_accounts,
    a_relying_party_signs_in_a_new_citizen_who_creates_an_account_on_the_way,
);

#[tokio::test]
async fn an_expired_challenge_is_refused() {
    let env = TestEnv::new(Stack::Embedded).await.unwrap();
    let app = env
        .spawn_with(
            std::sync::Arc::new(civitas::clock::SystemClock),
            "[passkeys]\nceremony_timeout = 1\n",
        )
        .await;
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.page("/signin/create").await;
    let (_, begin) = b
        .post_json(
            "/passkeys/register/begin",
            &json!({"display_name": "Al", "email": "al@example.eu"}),
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    let (status, err) = b
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": key.create(&begin["options"])}),
        )
        .await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("expired_ceremony"))
    );
    let count: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM accounts")
        .fetch_one(app.app().db.pool())
        .await
        .unwrap();
    assert_eq!(count.0, 0, "no account without a passkey is left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ceremony_started_on_one_instance_finishes_on_another() {
    if !crate::helpers::production_available() {
        return;
    }
    let env = TestEnv::new(Stack::Production).await.unwrap();
    let a = env.spawn().await;
    // B serves the same public issuer (as behind a load balancer).
    let b = env.spawn_behind(&a.base).await;
    let mut key = SoftAuthenticator::new(&a.base, false);
    let mut on_a = Browser::new(&a);
    on_a.page("/signin/create").await;
    let (_, begin) = on_a
        .post_json(
            "/passkeys/register/begin",
            &json!({"display_name": "Bo", "email": "bo@example.eu"}),
        )
        .await;
    let credential = key.create(&begin["options"]);
    // The browser's next request lands on B, with the same cookies.
    let mut on_b = on_a.moved_to(&b);
    let (status, done) = on_b
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": credential}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    // Sign-in begun at B, finished at A; the replay at B finds nothing.
    let (_, begin) = on_b.post_json("/passkeys/signin/begin", &json!({})).await;
    let body = json!({"ceremony": begin["ceremony"], "credential": key.get(&begin["options"])});
    let mut back_on_a = on_b.moved_to(&a);
    assert_eq!(
        back_on_a
            .post_json("/passkeys/signin/finish", &body)
            .await
            .0,
        200
    );
    let (status, err) = on_b.post_json("/passkeys/signin/finish", &body).await;
    assert_eq!(
        (status, err["error"].as_str()),
        (400, Some("expired_ceremony"))
    );
}

async fn ceremonies_are_rate_limited_and_consents_revocable_from_the_account_page(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut key, "Cai", "cai@example.eu", None)
        .await;
    // Consent to a portal, see it on the account page, withdraw it there.
    let rp = app.portal(json!({})).await;
    let (q, _) = app.auth_query(&rp, "openid", "");
    let consent = b.page(&format!("/authorize?{q}")).await;
    let csrf = crate::rp::hidden(&consent, "csrf");
    let auth = crate::rp::hidden(&consent, "auth");
    let saved = std::mem::replace(&mut b.csrf, csrf);
    b.post_form("/consent", &[("auth", &auth), ("decision", "allow")])
        .await;
    b.csrf = saved;
    let page = b.page("/account").await;
    assert!(page.contains("Stop sharing with Permit portal"), "{page}");
    let res = b
        .post_form("/account/consents/revoke", &[("client_id", &rp.client_id)])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=revoked")
    );
    assert!(
        !b.page("/account")
            .await
            .contains("Stop sharing with Permit portal")
    );
    let (q, _) = app.auth_query(&rp, "openid", "&prompt=none");
    let location = b.get(&format!("/authorize?{q}")).await.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(location.contains("error=consent_required"), "{location}");

    // Sixty sign-in ceremonies a minute per address, then 429.
    let mut c = Browser::new(&app);
    c.page("/signin").await;
    let mut statuses = Vec::new();
    for _ in 0..61 {
        statuses.push(c.post_json("/passkeys/signin/begin", &json!({})).await.0);
    }
    assert!(statuses[..60].iter().all(|s| *s == 200));
    assert_eq!(statuses[60], 429);
}

on_both_stacks!(ceremonies_are_rate_limited_and_consents_revocable_from_the_account_page);

/// A sign-in ceremony begun by `b` with `X-Forwarded-For: xff`; its status.
async fn begin(b: &mut Browser<'_>, xff: &str) -> u16 {
    b.post_json_with(
        "/passkeys/signin/begin",
        &json!({}),
        &[("x-forwarded-for", xff)],
    )
    .await
    .0
}

/// The per-address limit is a setting, and behind a trusted proxy it counts
/// the address the proxy saw (`X-Forwarded-For`), never one the client wrote.
async fn limits_count_the_forwarded_address_only_behind_a_trusted_proxy(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock: civitas::clock::SharedClock = std::sync::Arc::new(civitas::clock::SystemClock);
    let behind = env
        .spawn_with(
            clock.clone(),
            "[limits]\nsignin_per_minute = 3\ntrusted_proxies = [\"127.0.0.0/8\", \"::1\"]",
        )
        .await;
    let mut b = Browser::new(&behind);
    b.page("/signin").await;
    let mut citizen_a = Vec::new();
    for _ in 0..4 {
        citizen_a.push(begin(&mut b, "198.51.100.7").await);
    }
    assert_eq!(citizen_a, [200, 200, 200, 429], "three a minute, then 429");
    // Another citizen behind the same proxy has an allowance of their own,
    // even if they prepend a forged address of someone else.
    assert_eq!(begin(&mut b, "203.0.113.9").await, 200);
    assert_eq!(begin(&mut b, "198.51.100.99, 203.0.113.9").await, 200);
    // The proxy's own hop is skipped: the client is the rightmost untrusted one.
    assert_eq!(begin(&mut b, "198.51.100.7, 127.0.0.1").await, 429);
    // IPv6 counts by /64 (one subscriber's prefix): new addresses in it
    // share one allowance; another /64 has its own.
    let mut one_prefix = Vec::new();
    for xff in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
        one_prefix.push(begin(&mut b, xff).await);
    }
    assert_eq!(one_prefix, [200, 200, 200]);
    assert_eq!(begin(&mut b, "2001:db8:1:2:abcd:1:2:3").await, 429);
    assert_eq!(begin(&mut b, "2001:db8:1:3::1").await, 200);
    // An IPv4-mapped IPv6 address is the IPv4 address.
    assert_eq!(begin(&mut b, "::ffff:198.51.100.7").await, 429);

    // Without trusted proxies the header proves nothing: every request
    // counts against the TCP peer, whatever it claims.
    let direct = env
        .spawn_with(clock, "[limits]\nsignin_per_minute = 3")
        .await;
    let mut d = Browser::new(&direct);
    d.page("/signin").await;
    let mut statuses = Vec::new();
    for xff in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
        statuses.push(begin(&mut d, xff).await);
    }
    assert_eq!(statuses, [200, 200, 200, 429]);
}

on_both_stacks!(limits_count_the_forwarded_address_only_behind_a_trusted_proxy);
