//! The admin API: authentication by a client_credentials token with scope
//! `civitas:admin` of a client the operator marked admin, one audit entry
//! per call, account lock, and the OpenAPI document. Export and erasure
//! are in `admin_data.rs`.

use std::sync::Arc;

use civitas::accounts::AccountId;
use civitas::assurance::Level;
use civitas::audit::{Actor, Entry};
use civitas::clients::{MetadataRequest, OperatorOptions, SubjectType};
use civitas::clock::{Clock as _, ManualClock, SystemClock};
use civitas::eid::{self, ProvenIdentity};
use reqwest::Method;
use serde_json::{Value, json};

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;

pub const MARI: &str = "38001085718";

/// A client_credentials client registered by the operator; `admin` as given.
pub async fn machine_client(app: &TestApp, admin: bool) -> (String, String) {
    let request: MetadataRequest = serde_json::from_value(json!({
        "client_name": "Operator console",
        "grant_types": ["client_credentials"],
        "scope": "reports:read",
    }))
    .unwrap();
    let issued = app
        .app()
        .clients
        .register(
            request.validate().unwrap(),
            OperatorOptions {
                first_party: false,
                subject_type: SubjectType::Pairwise,
                registration_token: false,
                admin,
            },
            &Actor::Operator,
        )
        .await
        .unwrap();
    (
        issued.client.client_id.as_str().to_owned(),
        issued.client_secret.unwrap().expose().to_owned(),
    )
}

/// The token response of a client_credentials request for `scope`.
pub async fn token_response(app: &TestApp, id: &str, secret: &str, scope: &str) -> (u16, Value) {
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials"), ("scope", scope)])
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

/// An admin client and its access token.
pub async fn admin(app: &TestApp) -> (String, String) {
    let (id, secret) = machine_client(app, true).await;
    let (status, body) = token_response(app, &id, &secret, "civitas:admin").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "civitas:admin");
    (id, body["access_token"].as_str().unwrap().to_owned())
}

pub async fn call(
    app: &TestApp,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app.http.request(method, app.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    (
        status,
        headers,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

/// Every `admin.action` entry, oldest first.
async fn admin_entries(app: &TestApp) -> Vec<Entry> {
    civitas::audit::seal(&app.app().db).await.unwrap();
    civitas::audit::query::page(&app.app().db, 0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "admin.action")
        .collect()
}

async fn a_call_without_a_valid_admin_token_is_refused_and_leaves_no_entry(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let path = "/admin/clients";

    // No token: 401 with a bare challenge (RFC 6750 §3.1).
    let (status, headers, body) = call(&app, None, Method::GET, path, None).await;
    assert_eq!(status, 401);
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(body["error"].is_string());
    // A token Civitas did not sign.
    let (status, headers, body) = call(&app, Some("not-a-jwt"), Method::GET, path, None).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    assert_eq!(body["error"], "invalid_token");

    // A client the operator did not mark admin cannot get the scope …
    let (plain_id, plain_secret) = machine_client(&app, false).await;
    let (status, body) = token_response(&app, &plain_id, &plain_secret, "civitas:admin").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_scope");
    // … nor register it through metadata.
    let res = app
        .register(&json!({"grant_types": ["client_credentials"], "scope": "civitas:admin"}))
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client_metadata"
    );
    // … and its own tokens are not enough.
    let (_, body) = token_response(&app, &plain_id, &plain_secret, "reports:read").await;
    let plain_token = body["access_token"].as_str().unwrap();
    let (status, headers, body) = call(&app, Some(plain_token), Method::GET, path, None).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "insufficient_scope");
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );

    // An admin client's token without the scope.
    let (admin_id, admin_secret) = machine_client(&app, true).await;
    let (_, body) = token_response(&app, &admin_id, &admin_secret, "reports:read").await;
    let unscoped = body["access_token"].as_str().unwrap().to_owned();
    let (status, _, body) = call(&app, Some(&unscoped), Method::GET, path, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );

    // Expired: the admin token stops at its expiry.
    let (_, body) = token_response(&app, &admin_id, &admin_secret, "civitas:admin").await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, _, _) = call(&app, Some(&token), Method::GET, path, None).await;
    assert_eq!(status, 200, "a fresh admin token works");
    assert_eq!(admin_entries(&app).await.len(), 1);
    clock.advance(body["expires_in"].as_u64().unwrap() + 1);
    let (status, _, body) = call(&app, Some(&token), Method::GET, path, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );

    // Demoted after getting its token: refused at the next call.
    let (_, body) = token_response(&app, &admin_id, &admin_secret, "civitas:admin").await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert!(
        app.app()
            .clients
            .set_admin(&admin_id, false, &Actor::Operator)
            .await
            .unwrap()
    );
    let (status, _, body) = call(&app, Some(&token), Method::GET, path, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let (status, body) = token_response(&app, &admin_id, &admin_secret, "civitas:admin").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // Only the one successful call left an entry.
    let entries = admin_entries(&app).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].actor, format!("admin:{admin_id}"));
}

on_both_stacks!(a_call_without_a_valid_admin_token_is_refused_and_leaves_no_entry);

/// A citizen proven by eID (`person`), with an email.
pub async fn proven_citizen(app: &TestApp, name: &str, email: &str, person: &str) -> AccountId {
    let account = app.app().accounts.create(name, Some(email)).await.unwrap();
    let identity = ProvenIdentity {
        connector: "sim".into(),
        scheme: "simulated-eid".into(),
        country: "EE".into(),
        person_identifier: person.into(),
        given_name: Some("Mari".into()),
        family_name: Some("Maasikas".into()),
        birthdate: Some("1980-01-08".into()),
        level: Level::Substantial,
    };
    eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &account.id,
        &identity,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    account.id
}

async fn every_admin_call_leaves_exactly_one_entry_naming_the_client(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (admin_id, token) = admin(&app).await;
    let citizen = proven_citizen(&app, "Mari Maasikas", "mari@example.eu", MARI).await;
    let acc = citizen.as_str().to_owned();
    let register = json!([{"country": "EE", "code": "12345678", "name": "Acme OÜ",
        "representatives": [{"country": "EE", "person_identifier": MARI, "name": "Mari Maasikas"}]}]);
    let mut new_client = String::new();
    let steps: Vec<(Method, String, Option<Value>, u16)> = vec![
        (Method::GET, "/admin/clients".into(), None, 200),
        (
            Method::POST,
            "/admin/clients".into(),
            Some(
                json!({"metadata": {"redirect_uris": ["https://rp.example/cb"]}, "first_party": true}),
            ),
            201,
        ),
        (Method::GET, "/admin/clients/{new}".into(), None, 200),
        (
            Method::PUT,
            "/admin/clients/{new}/verified-claims".into(),
            Some(json!({"claims": ["given_name"], "legal_basis": "Act 1 §2"})),
            200,
        ),
        (
            Method::PUT,
            "/admin/clients/{new}/verified-claims".into(),
            Some(json!({"claims": ["shoe_size"], "legal_basis": "none"})),
            400,
        ),
        (
            Method::PUT,
            format!("/admin/clients/{{new}}/owners/{acc}"),
            None,
            200,
        ),
        (
            Method::PUT,
            format!("/admin/clients/{{new}}/owners/{acc}"),
            None,
            200,
        ),
        (
            Method::DELETE,
            format!("/admin/clients/{{new}}/owners/{acc}"),
            None,
            200,
        ),
        (Method::POST, "/admin/register".into(), Some(register), 200),
        (Method::GET, "/admin/organizations".into(), None, 200),
        (
            Method::GET,
            "/admin/organizations/EE:12345678/mandates".into(),
            None,
            200,
        ),
        (
            Method::GET,
            "/admin/organizations/EE:0/mandates".into(),
            None,
            404,
        ),
        (
            Method::POST,
            "/admin/mandates/nope/revoke".into(),
            None,
            404,
        ),
        (Method::GET, format!("/admin/accounts/{acc}"), None, 200),
        (
            Method::PUT,
            format!("/admin/accounts/{acc}/roles/admin"),
            None,
            200,
        ),
        (
            Method::DELETE,
            format!("/admin/accounts/{acc}/roles/admin"),
            None,
            200,
        ),
        (
            Method::PUT,
            format!("/admin/accounts/{acc}/lock"),
            None,
            200,
        ),
        (
            Method::PUT,
            format!("/admin/accounts/{acc}/lock"),
            None,
            200,
        ),
        (
            Method::DELETE,
            format!("/admin/accounts/{acc}/lock"),
            None,
            200,
        ),
        (
            Method::GET,
            format!("/admin/accounts/{acc}/export"),
            None,
            200,
        ),
        (Method::GET, "/admin/accounts/nobody".into(), None, 404),
        (Method::DELETE, "/admin/clients/{new}".into(), None, 200),
        (Method::DELETE, "/admin/clients/{new}".into(), None, 404),
    ];
    for (method, path, body, expected) in steps {
        let path = path.replace("{new}", &new_client);
        let before = admin_entries(&app).await.len();
        let (status, headers, out) = call(&app, Some(&token), method.clone(), &path, body).await;
        assert_eq!(status, expected, "{method} {path}: {out}");
        assert_eq!(headers["cache-control"], "no-store", "{method} {path}");
        if status >= 400 {
            assert!(out["error"].is_string() && out["error_description"].is_string());
        }
        if path == "/admin/clients" && method == Method::POST {
            new_client = out["client_id"].as_str().unwrap().to_owned();
            assert_eq!(out["first_party"], true);
            assert_eq!(out["admin"], false, "the admin API cannot make admins");
        }
        let entries = admin_entries(&app).await;
        assert_eq!(entries.len(), before + 1, "{method} {path}: one entry");
        let last = entries.last().unwrap();
        assert_eq!(last.actor, format!("admin:{admin_id}"), "{method} {path}");
        assert!(last.fact("action").is_some(), "{last:?}");
    }
    // The entries of changes share their transaction with the change's own.
    civitas::audit::seal(&app.app().db).await.unwrap();
    let log = civitas::audit::query::page(&app.app().db, 0, 100_000)
        .await
        .unwrap();
    let locked = log.iter().position(|e| e.kind == "account.locked").unwrap();
    assert_eq!(log[locked + 1].kind, "admin.action");
    assert_eq!(log[locked + 1].fact("action"), Some("account.lock"));
    assert_eq!(log[locked + 1].account_id.as_deref(), Some(acc.as_str()));
    let report = crate::audit::verify(&app).await;
    assert!(report.is_intact(), "{report:?}");
}

on_both_stacks!(every_admin_call_leaves_exactly_one_entry_naming_the_client);

async fn a_locked_account_cannot_sign_in_and_its_session_and_tokens_end(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(SystemClock.now());
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let (_, token) = admin(&app).await;

    // A citizen with a passkey and a live session.
    let mut phone = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.page("/signin/create").await;
    let (_, begin) = b
        .post_json(
            "/passkeys/register/begin",
            &json!({"display_name": "Lukas", "email": "lukas@example.eu"}),
        )
        .await;
    let credential = phone.create(&begin["options"]);
    let (status, done) = b
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": credential, "name": "Phone"}),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    let cookie = b.session_cookie().unwrap().to_owned();
    let account = app
        .app()
        .sessions
        .current(&cookie)
        .await
        .unwrap()
        .unwrap()
        .account_id;
    assert_eq!(b.get("/account").await.status(), 200);
    // And a relying party holding a refresh token of theirs.
    let rp = app.portal(json!({})).await;
    let lib = app
        .sign_in_as(
            &app.app().accounts.get(&account).await.unwrap().unwrap(),
            None,
        )
        .await;
    let tokens = app
        .tokens_for(&rp, &lib, "openid profile offline_access")
        .await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // A code issued before the lock and redeemed after it.
    let (query, verifier) = app.auth_query(&rp, "openid", "");
    let params = app.front_channel(&lib, &query).await;
    let code = crate::rp::param(&params, "code").unwrap();

    clock.advance(5);
    let (status, _, out) = call(
        &app,
        Some(&token),
        Method::PUT,
        &format!("/admin/accounts/{}/lock", account.as_str()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["changed"], true);
    assert_eq!(out["grants_revoked"], 1);

    // The session ended at once; a passkey sign-in is refused clearly.
    assert!(app.app().sessions.current(&cookie).await.unwrap().is_none());
    assert!(
        app.app()
            .sessions
            .current(&lib.cookie)
            .await
            .unwrap()
            .is_none()
    );
    assert_ne!(b.get("/account").await.status(), 200);
    let mut other = Browser::new(&app);
    let (status, body) = other.sign_in(&mut phone, None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "account_locked");
    // The grant's refresh token is revoked.
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&rp.client_id, rp.secret.as_deref())
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    let res = app.exchange(&rp, &code, &verifier).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_grant",
        "a code issued before the lock yields no grant"
    );
    let (_, _, summary) = call(
        &app,
        Some(&token),
        Method::GET,
        &format!("/admin/accounts/{}", account.as_str()),
        None,
    )
    .await;
    assert!(summary["locked_at"].is_i64(), "{summary}");
    assert_eq!(summary["active_grants"], 0);

    // Unlocked: sign-in works again; the old session stays ended.
    clock.advance(5);
    let (status, _, out) = call(
        &app,
        Some(&token),
        Method::DELETE,
        &format!("/admin/accounts/{}/lock", account.as_str()),
        None,
    )
    .await;
    assert_eq!((status, &out["locked"]), (200, &json!(false)), "{out}");
    let (status, body) = other.sign_in(&mut phone, None).await;
    assert_eq!(status, 200, "{body}");
    let fresh = other.session_cookie().unwrap().to_owned();
    assert!(app.app().sessions.current(&fresh).await.unwrap().is_some());
    assert!(app.app().sessions.current(&cookie).await.unwrap().is_none());
    let log = civitas::audit::for_account(&app.app().db, &account, 100)
        .await
        .unwrap();
    let count = |kind: &str| log.iter().filter(|e| e.kind == kind).count();
    assert_eq!(count("account.locked"), 1, "one lock, one entry");
    assert_eq!(count("account.unlocked"), 1);
    // Locking twice changes nothing the second time, and records no change.
    for _ in 0..2 {
        let (status, _, _) = call(
            &app,
            Some(&token),
            Method::PUT,
            &format!("/admin/accounts/{}/lock", account.as_str()),
            None,
        )
        .await;
        assert_eq!(status, 200);
    }
    let log = civitas::audit::for_account(&app.app().db, &account, 100)
        .await
        .unwrap();
    assert_eq!(
        log.iter().filter(|e| e.kind == "account.locked").count(),
        2,
        "the first lock and the second; not the repeated one"
    );
}

on_both_stacks!(a_locked_account_cannot_sign_in_and_its_session_and_tokens_end);

async fn a_locked_account_cannot_use_a_recovery_code() {
    let Some(app) = TestApp::spawn(Stack::Embedded).await else {
        return;
    };
    let (_, token) = admin(&app).await;
    let account = app.app().accounts.create("Ines", None).await.unwrap();
    let codes =
        civitas::accounts::recovery::generate(&app.app().db, &account.id, app.app().clock.now())
            .await
            .unwrap();
    let path = format!("/admin/accounts/{}/lock", account.id.as_str());
    assert_eq!(
        call(&app, Some(&token), Method::PUT, &path, None).await.0,
        200
    );
    let mut b = Browser::new(&app);
    b.page("/recover").await;
    let res = b
        .web
        .post_form("/recover", &[("recovery_code", &codes[0])])
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("locked"));
    assert_eq!(
        civitas::accounts::recovery::remaining(&app.app().db, &account.id)
            .await
            .unwrap(),
        10,
        "the code was not used up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_account_cannot_use_a_recovery_code_on_sqlite() {
    a_locked_account_cannot_use_a_recovery_code().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_admin_route() {
    let Some(app) = TestApp::spawn(Stack::Embedded).await else {
        return;
    };
    let res = app.get("/admin/openapi.json").await;
    assert_eq!(res.status(), 200, "served without authentication");
    let doc: Value = res.json().await.unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let scheme = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(scheme["type"], "http");
    assert_eq!(scheme["scheme"], "bearer");
    // The export documents its one query parameter and the limit on it.
    let export = &doc["paths"]["/admin/accounts/{account_id}/export"]["get"];
    assert!(
        export["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "include" && p["in"] == "query"),
        "{export}"
    );
    assert!(export["responses"]["429"].is_object(), "{export}");
    let routes = civitas::web::admin_routes();
    assert!(routes.len() >= 19, "{routes:?}");
    for (method, path) in &routes {
        let op = &doc["paths"][path.as_str()][method.as_str()];
        assert!(op.is_object(), "{method} {path} is not documented");
        if path != "/admin/openapi.json" {
            assert!(
                op["security"].to_string().contains("bearer"),
                "{method} {path} does not name the bearer scheme"
            );
        }
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        routes.len(),
        "the document describes no other route"
    );
}
