//! The representation choice belongs to the account that made it, and the
//! power behind it is checked again when the code is issued and when it is
//! redeemed (protocol review H2, citizen review M2).

use civitas::assurance::Level;
use civitas::mandates::{GrantRequest, Grantee, Mandate, register};
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::representation::{JAAN, MARI, details, proven};
use crate::rp::{Rp, hidden, jwt_claims, param, redirect_params};

const ACME: &str = "EE:12345678";

/// Acme OÜ, with Mari as its statutory representative, and a portal that
/// asks for representation.
async fn acme_and_portal(app: &TestApp) -> Rp {
    let entries: Vec<register::RegisterEntry> = serde_json::from_value(json!([
        {"country": "EE", "code": "12345678", "name": "Acme OÜ",
         "representatives": [{"country": "EE", "person_identifier": MARI, "name": "Mari Maasikas"}]}
    ]))
    .unwrap();
    register::import(
        &app.app().db,
        &app.app().eid_keys,
        &entries,
        civitas::audit::Actor::Operator,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    app.portal(json!({"scope": "openid profile email offline_access represent"}))
        .await
}

/// Mari gives Jaan (who accepts) a mandate to pay for Acme.
async fn mandate_to_pay(
    app: &TestApp,
    mari: &civitas::accounts::AccountId,
    jaan: &civitas::accounts::AccountId,
) -> Mandate {
    let (mandate, _) = app
        .app()
        .mandates
        .grant(
            mari,
            Level::Substantial,
            GrantRequest {
                org_id: ACME.into(),
                grantee: Grantee::Person {
                    country: "EE".into(),
                    person_identifier: JAAN.into(),
                },
                powers: vec!["payments.pay".into()],
                valid_until: None,
                may_delegate: false,
                min_level: Level::Substantial,
                parent: None,
            },
        )
        .await
        .unwrap();
    app.app()
        .mandates
        .accept(jaan, Some(&mandate.id), None)
        .await
        .unwrap();
    mandate
}

async fn mandate_used_entries(app: &TestApp, account: &civitas::accounts::AccountId) -> usize {
    civitas::audit::for_account(&app.app().db, account, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == "mandate.used")
        .count()
}

async fn grants_of(app: &TestApp, account: &civitas::accounts::AccountId) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM grants WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_one(app.app().db.pool())
        .await
        .unwrap()
        .get::<i64, _>("n")
}

/// On the chooser page `html`, picks the option naming `org` (or `self`)
/// and posts it; the response.
async fn choose(b: &mut Browser<'_>, html: &str, org: &str) -> reqwest::Response {
    let value = if org == "self" {
        "self".to_owned()
    } else {
        let at = html
            .find(org)
            .unwrap_or_else(|| panic!("{org} not offered: {html}"));
        let before = &html[..at];
        let v = before.rfind("value=\"").unwrap();
        before[v + 7..].split('"').next().unwrap().to_owned()
    };
    b.csrf = hidden(html, "csrf");
    b.post_form(
        "/authorize/represent",
        &[("auth", &hidden(html, "auth")), ("choice", &value)],
    )
    .await
}

/// Allows on the consent page `html`; the response.
async fn allow(b: &mut Browser<'_>, html: &str) -> reqwest::Response {
    b.csrf = hidden(html, "csrf");
    b.post_form(
        "/consent",
        &[("auth", &hidden(html, "auth")), ("decision", "allow")],
    )
    .await
}

fn is_chooser(html: &str) -> bool {
    html.contains("Whom do you act for")
}

fn is_consent(html: &str) -> bool {
    html.contains("data-testid=\"consent-allow\"")
}

/// Protocol review H2: B starts a request, A (a statutory representative)
/// resumes it and chooses the organization, B resumes it and consents.
async fn another_account_resuming_the_request_chooses_again(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let portal = acme_and_portal(&app).await;
    let (mut mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;

    // B (Jaan) starts the request and sends A the resume link.
    let (q, verifier) = app.auth_query(&portal, "openid represent", "&prompt=consent");
    let chooser = jaan.page(&format!("/authorize?{q}")).await;
    assert!(is_chooser(&chooser) && !chooser.contains("Acme OÜ"));
    let handle = hidden(&chooser, "auth");

    // A (Mari) opens it and chooses Acme; the consent page stays open.
    let chooser = mari.page(&format!("/authorize/resume?auth={handle}")).await;
    let res = choose(&mut mari, &chooser, "Acme OÜ").await;
    assert_eq!(res.status(), 200);
    let mari_consent = res.text().await.unwrap();
    assert!(is_consent(&mari_consent), "{mari_consent}");

    // B resumes: the choice is Mari's, not his; he is asked again.
    let page = jaan.page(&format!("/authorize/resume?auth={handle}")).await;
    assert!(is_chooser(&page), "B must choose for himself: {page}");
    assert!(!page.contains("Acme OÜ"), "B holds no power for Acme");
    // Neither the consent page nor a forged consent answer finishes it.
    let consent = jaan.page(&format!("/consent?auth={handle}")).await;
    assert!(is_chooser(&consent), "{consent}");
    let res = allow(&mut jaan, &page).await;
    assert_eq!(res.status(), 200, "no code for B");
    assert!(is_chooser(&res.text().await.unwrap()));

    // B acts for himself: the tokens name no organization.
    let res = choose(&mut jaan, &page, "self").await;
    let consent = res.text().await.unwrap();
    assert!(is_consent(&consent), "{consent}");
    let res = allow(&mut jaan, &consent).await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let res = app.exchange(&portal, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_ne!(at["sub"], ACME);
    assert!(at.get("authorization_details").is_none(), "{at}");
    assert!(at.get("act").is_none(), "{at}");
    assert!(id.get("representation").is_none(), "{id}");
    assert_eq!(mandate_used_entries(&app, &jaan_id).await, 0);
    assert_eq!(mandate_used_entries(&app, &mari_id).await, 0);

    // Mari's open consent page gets no code either: the request is done.
    let res = allow(&mut mari, &mari_consent).await;
    assert_ne!(res.status(), 303);
}

/// Citizen review M2: the mandate ends while the consent page is open.
async fn a_mandate_revoked_while_the_consent_page_is_open_yields_no_representation(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let portal = acme_and_portal(&app).await;
    let (_mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;
    let mandate = mandate_to_pay(&app, &mari_id, &jaan_id).await;
    let (q, verifier) = app.auth_query(
        &portal,
        "openid",
        &format!(
            "&prompt=consent&authorization_details={}",
            details(&["payments.pay"])
        ),
    );
    let chooser = jaan.page(&format!("/authorize?{q}")).await;
    let res = choose(&mut jaan, &chooser, "Acme OÜ").await;
    let consent = res.text().await.unwrap();
    assert!(is_consent(&consent), "{consent}");

    app.app()
        .mandates
        .revoke(&mari_id, &mandate.id)
        .await
        .unwrap();
    let res = allow(&mut jaan, &consent).await;
    assert_eq!(res.status(), 200, "no code under an ended mandate");
    let page = res.text().await.unwrap();
    assert!(is_chooser(&page), "{page}");
    assert!(
        !page.contains("Acme OÜ"),
        "the ended mandate is not offered"
    );
    assert_eq!(mandate_used_entries(&app, &jaan_id).await, 0);

    // Acting for himself still works.
    let res = choose(&mut jaan, &page, "self").await;
    let consent = res.text().await.unwrap();
    let res = allow(&mut jaan, &consent).await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let res = app.exchange(&portal, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert!(at.get("authorization_details").is_none(), "{at}");
    assert_eq!(mandate_used_entries(&app, &jaan_id).await, 0);
}

/// The mandate ends between the code and its redemption.
async fn a_mandate_revoked_before_the_code_is_redeemed_yields_invalid_grant(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let portal = acme_and_portal(&app).await;
    let (_mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;
    let mandate = mandate_to_pay(&app, &mari_id, &jaan_id).await;
    let (q, verifier) = app.auth_query(
        &portal,
        "openid offline_access",
        &format!("&authorization_details={}", details(&["payments.pay"])),
    );
    let chooser = jaan.page(&format!("/authorize?{q}")).await;
    let res = choose(&mut jaan, &chooser, "Acme OÜ").await;
    let consent = res.text().await.unwrap();
    let res = allow(&mut jaan, &consent).await;
    let code = param(&redirect_params(&res), "code").unwrap();

    app.app()
        .mandates
        .revoke(&mari_id, &mandate.id)
        .await
        .unwrap();
    let res = app.exchange(&portal, &code, &verifier).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body.get("access_token").is_none());
    assert_eq!(mandate_used_entries(&app, &jaan_id).await, 0);
    assert_eq!(grants_of(&app, &jaan_id).await, 0, "no grant was stored");
}

/// The same account, signed in again at a lower level, does not keep a
/// choice checked at the higher one.
async fn a_choice_made_at_substantial_does_not_carry_over_to_a_low_session(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let portal = acme_and_portal(&app).await;
    let (mut mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;
    let (q, _) = app.auth_query(&portal, "openid represent", "&prompt=consent");
    let chooser = mari.page(&format!("/authorize?{q}")).await;
    let res = choose(&mut mari, &chooser, "Acme OÜ").await;
    let consent = res.text().await.unwrap();
    assert!(is_consent(&consent), "{consent}");

    // A sign-in at low in the same browser (a synced passkey, say).
    let account = app.app().accounts.get(&mari_id).await.unwrap().unwrap();
    let low = app.sign_in_as(&account, None).await;
    mari.web
        .cookies
        .insert("civitas_session".into(), low.cookie.clone());
    let res = allow(&mut mari, &consent).await;
    assert_eq!(res.status(), 200, "no code");
    let page = res.text().await.unwrap();
    assert!(is_chooser(&page), "{page}");
    assert!(
        !page.contains("Acme OÜ"),
        "a statutory power needs substantial"
    );
    assert_eq!(mandate_used_entries(&app, &mari_id).await, 0);
}

on_both_stacks!(
    a_choice_made_at_substantial_does_not_carry_over_to_a_low_session,
    another_account_resuming_the_request_chooses_again,
    a_mandate_revoked_while_the_consent_page_is_open_yields_no_representation,
    a_mandate_revoked_before_the_code_is_redeemed_yields_invalid_grant,
);
