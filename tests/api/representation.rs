//! Acting on behalf of an organization at sign-in: the chooser, the token
//! shape (organization as subject, the citizen in `act`, powers in
//! `authorization_details`), and mandates that end after sign-in.

use civitas::assurance::Level;
use civitas::eid::{self, ProvenIdentity};
use civitas::mandates::register;
use civitas::mandates::{GrantRequest, Grantee};
use serde_json::{Value, json};

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{Rp, hidden, jwt_claims, param, redirect_params, urlencode};

const MARI: &str = "38001085718";
const JAAN: &str = "39912310174";

/// A citizen with a device-bound passkey, proven by eID at substantial and
/// signed in again, so that the session is at substantial.
async fn proven<'a>(
    app: &'a TestApp,
    person: &str,
    email: &str,
) -> (Browser<'a>, SoftAuthenticator, civitas::accounts::AccountId) {
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(app);
    b.create_account(&mut key, person, email, None).await;
    let account = app
        .app()
        .sessions
        .current(b.session_cookie().unwrap())
        .await
        .unwrap()
        .unwrap()
        .account_id;
    let identity = ProvenIdentity {
        connector: "sim".into(),
        scheme: "simulated-eid".into(),
        country: "EE".into(),
        person_identifier: person.into(),
        given_name: None,
        family_name: None,
        birthdate: None,
        level: Level::Substantial,
    };
    eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &account,
        &identity,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let (status, _) = b.sign_in(&mut key, None).await;
    assert_eq!(status, 200);
    (b, key, account)
}

fn details(powers: &[&str]) -> String {
    urlencode(&json!([{"type": "urn:civitas:representation", "powers": powers}]).to_string())
}

/// Authorizes at `rp` as `b`, answering the chooser with `choice` (matched
/// against the organization's name; `self` for myself) and the consent page;
/// the token response.
async fn sign_in_as(
    app: &TestApp,
    b: &mut Browser<'_>,
    rp: &Rp,
    extra: &str,
    choice: &str,
) -> Value {
    let (q, verifier) = app.auth_query(rp, "openid offline_access", extra);
    let chooser = b.page(&format!("/authorize?{q}")).await;
    assert!(chooser.contains("Whom do you act for"), "{chooser}");
    let value = if choice == "self" {
        "self".to_owned()
    } else {
        let at = chooser
            .find(choice)
            .unwrap_or_else(|| panic!("{choice} not offered: {chooser}"));
        let before = &chooser[..at];
        let v = before.rfind("value=\"").unwrap();
        before[v + 7..].split('"').next().unwrap().to_owned()
    };
    b.csrf = hidden(&chooser, "csrf");
    let res = b
        .post_form(
            "/authorize/represent",
            &[("auth", &hidden(&chooser, "auth")), ("choice", &value)],
        )
        .await;
    // A remembered consent goes straight back to the service.
    let res = if res.status() == 200 {
        let consent = res.text().await.unwrap();
        b.csrf = hidden(&consent, "csrf");
        b.post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await
    } else {
        res
    };
    let code = param(&redirect_params(&res), "code").unwrap();
    let res = app.exchange(rp, &code, &verifier).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn a_representative_acts_for_the_organization_and_the_tokens_say_so(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let entries: Vec<register::RegisterEntry> = serde_json::from_value(json!([
        {"country": "EE", "code": "12345678", "name": "Acme OÜ",
         "representatives": [{"country": "EE", "person_identifier": MARI, "name": "Mari Maasikas"}]}
    ]))
    .unwrap();
    register::import(
        &app.app().db,
        &app.app().eid_keys,
        &entries,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let portal = app
        .portal(json!({"scope": "openid profile email offline_access represent"}))
        .await;
    let (mut mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;

    // A statutory representative acts for the organization.
    let tokens = sign_in_as(
        &app,
        &mut mari,
        &portal,
        &format!("&authorization_details={}", details(&["tax.file"])),
        "Acme OÜ",
    )
    .await;
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(at["sub"], "EE:12345678", "the organization is the subject");
    assert_eq!(
        at["act"]["sub"], id["sub"],
        "the citizen acts, under the same pairwise subject"
    );
    assert_eq!(
        at["authorization_details"][0]["powers"],
        json!(["tax.file"])
    );
    assert_eq!(
        at["authorization_details"][0]["mandate"],
        "statutory:EE:12345678"
    );
    assert_eq!(id["representation"]["organization"]["id"], "EE:12345678");
    assert_ne!(
        id["sub"], "EE:12345678",
        "the ID token keeps the person as subject"
    );
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
    assert_eq!(info["sub"], id["sub"]);
    let events = civitas::audit::for_account(&app.app().db, &mari_id, 20)
        .await
        .unwrap();
    assert!(events.iter().any(|e| e.kind == "mandate.used"));

    // Mari gives Jaan a mandate to pay.
    let org = register::org_id("EE", "12345678");
    let (mandate, _) = app
        .app()
        .mandates
        .grant(
            &mari_id,
            Level::Substantial,
            GrantRequest {
                org_id: org.clone(),
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
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;
    app.app()
        .mandates
        .accept(&jaan_id, Some(&mandate.id), None)
        .await
        .unwrap();

    // Jaan is not offered Acme for filing taxes, and cannot force it.
    let (q, _) = app.auth_query(
        &portal,
        "openid",
        &format!("&authorization_details={}", details(&["tax.file"])),
    );
    let chooser = jaan.page(&format!("/authorize?{q}")).await;
    assert!(
        !chooser.contains("Acme OÜ"),
        "a mandate for other powers is not offered"
    );
    jaan.csrf = hidden(&chooser, "csrf");
    let res = jaan
        .post_form(
            "/authorize/represent",
            &[("auth", &hidden(&chooser, "auth")), ("choice", &mandate.id)],
        )
        .await;
    assert_eq!(res.status(), 400);

    // For paying, Jaan acts for Acme; when Mari revokes the mandate, the refresh stops.
    let tokens = sign_in_as(
        &app,
        &mut jaan,
        &portal,
        &format!("&authorization_details={}", details(&["payments.pay"])),
        "Acme OÜ",
    )
    .await;
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        at["authorization_details"][0]["mandate"],
        mandate.id.as_str()
    );
    let refresh = |t: String| {
        let app = &app;
        let portal = portal.clone();
        async move {
            app.http
                .post(app.url("/token"))
                .basic_auth(&portal.client_id, portal.secret.as_deref())
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", t.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let res = refresh(tokens["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(res.status(), 200);
    let next: Value = res.json().await.unwrap();
    app.app()
        .mandates
        .revoke(&mari_id, &mandate.id)
        .await
        .unwrap();
    let res = refresh(next["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(res.status(), 400);
    assert!(
        res.json::<Value>().await.unwrap()["error_description"]
            .as_str()
            .unwrap()
            .contains("mandate")
    );

    // Myself: no act, no organization.
    let tokens = sign_in_as(
        &app,
        &mut jaan,
        &portal,
        &format!("&authorization_details={}", details(&["payments.pay"])),
        "self",
    )
    .await;
    let at = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert!(at.get("act").is_none());

    // Without interaction, no choice can be made.
    let (q, _) = app.auth_query(&portal, "openid represent", "&prompt=none");
    let params = redirect_params(&jaan.get(&format!("/authorize?{q}")).await);
    assert_eq!(
        param(&params, "error").as_deref(),
        Some("interaction_required")
    );
    let (q, _) = app.auth_query(
        &portal,
        "openid",
        "&authorization_details=%5B%7B%22type%22%3A%22payment%22%7D%5D",
    );
    let params = redirect_params(&jaan.get(&format!("/authorize?{q}")).await);
    assert_eq!(
        param(&params, "error").as_deref(),
        Some("invalid_authorization_details")
    );
}

on_both_stacks!(a_representative_acts_for_the_organization_and_the_tokens_say_so);
