//! Acting on behalf of an organization at sign-in: the chooser, the token
//! shape (organization as subject, the citizen in `act`, powers in
//! `authorization_details`), and mandates that end after sign-in.

use civitas::assurance::Level;
use civitas::eid::ProvenIdentity;
use civitas::mandates::register;
use civitas::mandates::{GrantRequest, Grantee};
use serde_json::{Value, json};

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{Rp, hidden, jwt_claims, param, redirect_params, urlencode};

pub(crate) const MARI: &str = "38001085718";
pub(crate) const JAAN: &str = "39912310174";

/// A citizen with a device-bound passkey, proven by eID at substantial and
/// signed in again, so that the session is at substantial.
pub(crate) async fn proven<'a>(
    app: &'a TestApp,
    person: &str,
    email: &str,
) -> (Browser<'a>, SoftAuthenticator, civitas::accounts::AccountId) {
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(app);
    b.create_account(&mut key, person, email, None).await;
    let account = b.account_id().await;
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
    crate::eid::prove_in_session(app, &b, &identity).await;
    let (status, _) = b.sign_in(&mut key, None).await;
    assert_eq!(status, 200);
    (b, key, account)
}

pub(crate) fn details(powers: &[&str]) -> String {
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
        civitas::audit::Actor::Operator,
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

/// A resource server as an agency would write it: verifies an access token
/// against Civitas's JWKS with josekit, then checks issuer, type, audience,
/// expiry and the powers; returns the claims.
async fn resource_server_accepts(
    app: &TestApp,
    token: &str,
    me: &str,
    power: &str,
) -> Result<Value, String> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwks: Value = app.get_json("/jwks").await;
    let header: Value =
        serde_json::from_slice(&b64.decode(token.split('.').next().unwrap()).unwrap()).unwrap();
    if header["typ"] != "at+jwt" {
        return Err("not an access token".into());
    }
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .ok_or("unknown key")?;
    let jwk = josekit::jwk::Jwk::from_map(key.as_object().unwrap().clone()).unwrap();
    let verifier = josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap();
    let (payload, _) =
        josekit::jwt::decode_with_verifier(token, &verifier).map_err(|e| e.to_string())?;
    let claims: Value = serde_json::from_str(&payload.to_string()).unwrap();
    if claims["iss"] != app.base.as_str() || claims["aud"] != me {
        return Err(format!("wrong issuer or audience: {}", claims["aud"]));
    }
    #[allow(clippy::disallowed_methods)] // the resource server has its own clock
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err("expired".into());
    }
    if claims["authorization_details"][0]["type"] != "urn:civitas:representation" {
        return Err("no representation".into());
    }
    let powers = claims["authorization_details"][0]["powers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !powers.iter().any(|p| p == power) {
        return Err("the power is not granted".into());
    }
    Ok(claims)
}

async fn a_portal_calls_payments_which_calls_cases_through_token_exchange(stack: Stack) {
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
        civitas::audit::Actor::Operator,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let exchange = "urn:ietf:params:oauth:grant-type:token-exchange";
    let portal = app
        .portal(json!({"scope": "openid offline_access represent payments:pay cases:read", "grant_types": ["authorization_code", "refresh_token", exchange]}))
        .await;
    let machine = |name: &str| json!({"client_name": name, "grant_types": [exchange], "scope": "payments:pay cases:read"});
    let payments = app.register_ok(&machine("Payments")).await;
    let cases = app.register_ok(&machine("Cases")).await;
    let (pay_id, pay_secret) = (
        payments["client_id"].as_str().unwrap(),
        payments["client_secret"].as_str().unwrap(),
    );
    let (case_id, case_secret) = (
        cases["client_id"].as_str().unwrap(),
        cases["client_secret"].as_str().unwrap(),
    );
    let clients = &app.app().clients;
    clients
        .allow_exchange(&portal.client_id, pay_id, &civitas::audit::Actor::Operator)
        .await
        .unwrap();
    clients
        .allow_exchange(pay_id, case_id, &civitas::audit::Actor::Operator)
        .await
        .unwrap();

    let (mut mari, _k, _id) = proven(&app, MARI, "mari@example.eu").await;
    let (q, verifier) = app.auth_query(
        &portal,
        "openid offline_access payments:pay cases:read",
        &format!(
            "&authorization_details={}",
            details(&["payments.pay", "cases.submit"])
        ),
    );
    let chooser = mari.page(&format!("/authorize?{q}")).await;
    let value = {
        let at = chooser.find("Acme OÜ").unwrap();
        let before = &chooser[..at];
        before[before.rfind("value=\"").unwrap() + 7..]
            .split('"')
            .next()
            .unwrap()
            .to_owned()
    };
    mari.csrf = hidden(&chooser, "csrf");
    let consent = mari
        .post_form(
            "/authorize/represent",
            &[("auth", &hidden(&chooser, "auth")), ("choice", &value)],
        )
        .await
        .text()
        .await
        .unwrap();
    mari.csrf = hidden(&consent, "csrf");
    let res = mari
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let tokens: Value = app
        .exchange(&portal, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let portal_token = tokens["access_token"].as_str().unwrap().to_owned();
    let citizen = jwt_claims(&portal_token)["act"]["sub"].clone();

    let exchange_for = |id: String,
                        secret: String,
                        token: String,
                        audience: String,
                        extra: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let mut form = vec![
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
                ),
                ("subject_token", token),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token".to_owned(),
                ),
                ("audience", audience),
            ];
            form.extend(extra);
            app.http
                .post(app.url("/token"))
                .basic_auth(id, Some(secret))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };

    // Hop 1: the portal gets a token for the payment system, for paying only.
    let res = exchange_for(
        portal.client_id.clone(),
        portal.secret.clone().unwrap(),
        portal_token.clone(),
        pay_id.to_owned(),
        vec![(
            "authorization_details",
            json!([{"type": "urn:civitas:representation", "powers": ["payments.pay"]}]).to_string(),
        )],
    )
    .await;
    assert_eq!(res.status(), 200);
    let hop1: Value = res.json().await.unwrap();
    assert_eq!(
        hop1["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let pay_token = hop1["access_token"].as_str().unwrap().to_owned();
    let seen = resource_server_accepts(&app, &pay_token, pay_id, "payments.pay")
        .await
        .unwrap();
    assert_eq!(seen["sub"], "EE:12345678");
    assert_eq!(
        seen["act"],
        json!({"sub": portal.client_id, "act": {"sub": citizen}}),
        "the chain: portal, acting for the citizen"
    );
    assert!(
        resource_server_accepts(&app, &pay_token, pay_id, "cases.submit")
            .await
            .is_err(),
        "narrowed"
    );
    assert!(
        resource_server_accepts(&app, &portal_token, pay_id, "payments.pay")
            .await
            .is_err(),
        "the portal's own token is not for payments"
    );
    let res = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(&pay_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a token for payments does not read the citizen's userinfo"
    );

    // Hop 2: the payment system gets a token for the case system.
    let res = exchange_for(
        pay_id.into(),
        pay_secret.into(),
        pay_token.clone(),
        case_id.into(),
        vec![],
    )
    .await;
    assert_eq!(res.status(), 200);
    let case_token = res.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = resource_server_accepts(&app, &case_token, case_id, "payments.pay")
        .await
        .unwrap();
    assert_eq!(
        seen["act"],
        json!({"sub": pay_id, "act": {"sub": portal.client_id, "act": {"sub": citizen}}})
    );

    // Refused: widening the powers, widening the scope, an audience not
    // permitted, a token the client does not hold.
    let widen = vec![(
        "authorization_details",
        json!([{"type": "urn:civitas:representation", "powers": ["cases.submit"]}]).to_string(),
    )];
    let res = exchange_for(
        pay_id.into(),
        pay_secret.into(),
        pay_token.clone(),
        case_id.into(),
        widen,
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_authorization_details"
    );
    let res = exchange_for(
        pay_id.into(),
        pay_secret.into(),
        pay_token.clone(),
        case_id.into(),
        vec![("scope", "payments:pay admin".into())],
    )
    .await;
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_scope");
    let res = exchange_for(
        case_id.into(),
        case_secret.into(),
        case_token.clone(),
        pay_id.into(),
        vec![],
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_target",
        "cases may not call payments"
    );
    let res = exchange_for(
        pay_id.into(),
        pay_secret.into(),
        portal_token.clone(),
        case_id.into(),
        vec![],
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_grant",
        "payments never held the portal's token"
    );

    // A representative removed from the register: the next exchange fails.
    register::import(
        &app.app().db,
        &app.app().eid_keys,
        &[],
        civitas::audit::Actor::Operator,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let empty: Vec<register::RegisterEntry> = serde_json::from_value(json!([
        {"country": "EE", "code": "12345678", "name": "Acme OÜ", "representatives": []}
    ]))
    .unwrap();
    register::import(
        &app.app().db,
        &app.app().eid_keys,
        &empty,
        civitas::audit::Actor::Operator,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let res = exchange_for(
        pay_id.into(),
        pay_secret.into(),
        pay_token.clone(),
        case_id.into(),
        vec![],
    )
    .await;
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"], "invalid_grant", "{err}");
    assert!(
        err["error_description"]
            .as_str()
            .unwrap()
            .contains("mandate")
    );

    // The mandate ended, so the grant was revoked: every exchanged token goes.
    let res = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(case_id, Some(case_secret))
        .form(&[("token", case_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["active"], false);
    let rt = tokens["refresh_token"].as_str().unwrap();
    app.http
        .post(app.url("/revoke"))
        .basic_auth(&portal.client_id, portal.secret.as_deref())
        .form(&[("token", rt)])
        .send()
        .await
        .unwrap();
    let res = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(case_id, Some(case_secret))
        .form(&[("token", case_token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["active"], false);

    // The audit trail: one use of the mandate at sign-in, one entry per
    // successful exchange (none for the refused ones), all naming Mari.
    let all = crate::audit::since(&app.app().db, 0).await;
    let used: Vec<_> = all.iter().filter(|e| e.kind == "mandate.used").collect();
    assert_eq!(used.len(), 1);
    assert_eq!(
        used[0].client_id.as_deref(),
        Some(portal.client_id.as_str())
    );
    let exchanged: Vec<_> = all.iter().filter(|e| e.kind == "token.exchanged").collect();
    assert_eq!(exchanged.len(), 2, "{exchanged:?}");
    assert_eq!(exchanged[0].actor, format!("client:{}", portal.client_id));
    assert_eq!(exchanged[0].fact("audience"), Some(pay_id));
    assert_eq!(exchanged[1].actor, format!("client:{pay_id}"));
    assert_eq!(exchanged[1].fact("audience"), Some(case_id));
    assert!(exchanged.iter().all(|e| e.account_id == used[0].account_id));
}

on_both_stacks!(a_portal_calls_payments_which_calls_cases_through_token_exchange);

async fn the_organizations_page_grants_accepts_and_revokes_mandates(stack: Stack) {
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
        civitas::audit::Actor::Operator,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, _) = proven(&app, JAAN, "jaan@example.eu").await;

    let page = mari.page("/account/organizations").await;
    assert!(
        page.contains("Acme OÜ")
            && page.contains("statutory representative")
            && page.contains("data-testid=\"mandate-grant\""),
        "{page}"
    );
    let res = mari
        .post_form(
            "/account/organizations/grant",
            &[
                ("from", "statutory:EE:12345678"),
                ("powers", "payments.pay"),
                ("person_country", "EE"),
                ("person_identifier", JAAN),
                ("valid_until", "31/12/2030"),
            ],
        )
        .await;
    assert_eq!(res.status(), 400, "a date that is not YYYY-MM-DD");
    let res = mari
        .post_form(
            "/account/organizations/grant",
            &[
                ("from", "statutory:EE:12345678"),
                ("powers", "payments.pay"),
                ("person_country", "EE"),
                ("person_identifier", JAAN),
                ("valid_until", "2099-12-31"),
            ],
        )
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=granted")
    );

    let page = jaan.page("/account/organizations").await;
    assert!(page.contains("Mandates waiting for you"), "{page}");
    let id = hidden(
        &page[page.find("Mandates waiting for you").unwrap()..],
        "mandate_id",
    );
    let res = jaan
        .post_form("/account/organizations/accept", &[("mandate_id", &id)])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=accepted")
    );
    let page = jaan.page("/account/organizations").await;
    assert!(page.contains("payments.pay") && page.contains("Give up this mandate"));

    // An invitation link, accepted by another proven citizen.
    mari.page("/account/organizations").await;
    let html = mari
        .post_form(
            "/account/organizations/grant",
            &[
                ("from", "statutory:EE:12345678"),
                ("powers", "cases.submit"),
            ],
        )
        .await
        .text()
        .await
        .unwrap();
    let start = html.find("data-testid=\"invitation-link\">").unwrap()
        + "data-testid=\"invitation-link\">".len();
    let link = html[start..].split('<').next().unwrap().to_owned();
    let (mut anne, _ak, anne_id) = proven(&app, "49403136526", "anne@example.eu").await;
    let res = crate::mandate_guarantees::open_and_accept(&mut anne, &link).await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=accepted")
    );
    assert_eq!(
        app.app().mandates.powers_of(&anne_id).await.unwrap()[0].powers,
        ["cases.submit"]
    );

    // Mari revokes Jaan's mandate from her page.
    let page = mari.page("/account/organizations").await;
    let granted = &page[page.find("Mandates you granted").unwrap()..];
    let first = hidden(granted, "mandate_id");
    let res = mari
        .post_form("/account/organizations/revoke", &[("mandate_id", &first)])
        .await;
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .ends_with("notice=revoked")
    );
    assert!(
        !jaan
            .page("/account/organizations")
            .await
            .contains("Give up this mandate")
    );
}

on_both_stacks!(the_organizations_page_grants_accepts_and_revokes_mandates);
