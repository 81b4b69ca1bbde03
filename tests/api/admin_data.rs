//! The admin API's data-protection requests: the export of everything held
//! about a citizen, and erasure (every table scanned afterwards, the audit
//! chain still intact).

use civitas::assurance::Level;
use civitas::audit::Actor;
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Column as _, Row as _};

use crate::admin::{MARI, admin, call, machine_client, proven_citizen, token_response};
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;

async fn the_export_holds_the_citizens_data_and_is_audited(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (admin_id, token) = admin(&app).await;
    let citizen = proven_citizen(&app, "Mari Maasikas", "mari@example.eu", MARI).await;
    let rp = app.portal(json!({})).await;
    let lib = app
        .sign_in_as(
            &app.app().accounts.get(&citizen).await.unwrap().unwrap(),
            None,
        )
        .await;
    app.tokens_for(&rp, &lib, "openid profile email").await;
    let acc = citizen.as_str();
    for path in [
        format!("/admin/accounts/{acc}/roles/admin"),
        format!("/admin/clients/{}/owners/{acc}", rp.client_id),
    ] {
        assert_eq!(
            call(&app, Some(&token), Method::PUT, &path, None).await.0,
            200
        );
    }

    let (status, _, doc) = call(
        &app,
        Some(&token),
        Method::GET,
        &format!("/admin/accounts/{acc}/export"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["format"], "civitas-account-export/1");
    assert_eq!(doc["account"]["id"], acc);
    assert_eq!(doc["account"]["display_name"], "Mari Maasikas");
    assert_eq!(doc["account"]["email"], "mari@example.eu");
    let binding = &doc["eid_binding"];
    assert_eq!(binding["person_identifier"], Value::Null, "masked: {doc}");
    assert_eq!(binding["person_identifier_masked"], "EE-...18");
    assert_eq!(binding["family_name"], "Maasikas");
    assert_eq!(binding["level"], "substantial");
    assert_eq!(doc["consents"][0]["client_id"], rp.client_id.as_str());
    assert_eq!(doc["grants"][0]["client_id"], rp.client_id.as_str());
    assert_eq!(doc["roles"], json!(["admin"]));
    assert_eq!(doc["owned_clients"], json!([rp.client_id]));
    let kinds: Vec<&str> = doc["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"eid.bound") && kinds.contains(&"account.created"),
        "{kinds:?}"
    );
    let log = civitas::audit::for_account(&app.app().db, &citizen, 5)
        .await
        .unwrap();
    assert_eq!(log[1].kind, "account.exported");
    assert_eq!(log[1].actor, format!("admin:{admin_id}"));
    assert_eq!(log[0].kind, "admin.action");
    assert_eq!(log[0].fact("action"), Some("account.export"));
}

on_both_stacks!(the_export_holds_the_citizens_data_and_is_audited);

/// GETs `path` with `token`: the status, the body as text and as JSON.
async fn get_text(app: &TestApp, token: &str, path: &str) -> (u16, String, Value) {
    let res = app
        .http
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, text, json)
}

async fn a_plain_admin_client_gets_the_identifier_masked_even_when_it_asks(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (admin_id, token) = admin(&app).await;
    let citizen = proven_citizen(&app, "Mari Maasikas", "mari@example.eu", MARI).await;
    let path = format!("/admin/accounts/{}/export", citizen.as_str());

    let (status, text, doc) = get_text(&app, &token, &path).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(MARI), "the identifier left in clear: {text}");
    let binding = &doc["eid_binding"];
    assert_eq!(binding["person_identifier"], Value::Null);
    assert_eq!(binding["person_identifier_masked"], "EE-...18");
    assert_eq!(binding["country"], "EE");
    assert_eq!(binding["family_name"], "Maasikas", "the rest is there");

    // Asking for it explicitly does not help without the operator's grant.
    let (status, text, body) =
        get_text(&app, &token, &format!("{path}?include=person_identifier")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope")),
        "{text}"
    );
    assert!(!text.contains(MARI), "{text}");

    // Newest first: the refusal, then the masked export and its admin entry.
    let log = civitas::audit::for_account(&app.app().db, &citizen, 5)
        .await
        .unwrap();
    assert_eq!(log[0].kind, "admin.action");
    assert_eq!(log[0].actor, format!("admin:{admin_id}"));
    assert_eq!(log[0].fact("outcome"), Some("forbidden"));
    assert_eq!(log[0].fact("person_identifier"), Some("requested"));
    assert_eq!(log[2].kind, "account.exported");
    assert_eq!(log[2].actor, format!("admin:{admin_id}"));
    assert_eq!(log[2].fact("person_identifier"), Some("masked"));
    assert_eq!(log[1].fact("person_identifier"), Some("masked"));
}

async fn registration_metadata_may_not_name_the_identifiers_scope(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (_, token) = admin(&app).await;
    for scope in [
        "civitas:admin:identifiers",
        "reports:read civitas:admin:identifiers",
    ] {
        let res = app
            .register(&json!({"grant_types": ["client_credentials"], "scope": scope}))
            .await;
        assert_eq!(res.status(), 400, "{scope}");
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_client_metadata"
        );
        // Nor through the admin API.
        let (status, _, body) = call(
            &app,
            Some(&token),
            Method::POST,
            "/admin/clients",
            Some(json!({"metadata": {"grant_types": ["client_credentials"], "scope": scope}})),
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_client_metadata")),
            "{scope}: {body}"
        );
    }
}

const BOTH: &str = "civitas:admin civitas:admin:identifiers";

/// An admin client the operator also allowed identifiers: id and secret.
async fn identifiers_client(app: &TestApp) -> (String, String) {
    let (id, secret) = machine_client(app, true).await;
    assert!(
        app.app()
            .clients
            .set_admin_identifiers(&id, true, &Actor::Operator)
            .await
            .unwrap()
    );
    (id, secret)
}

async fn only_a_client_the_operator_marked_obtains_the_identifiers_scope(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    // An admin client without the flag: refused, alone or with civitas:admin.
    let (plain, plain_secret) = machine_client(&app, true).await;
    for scope in [BOTH, "civitas:admin:identifiers"] {
        let (status, body) = token_response(&app, &plain, &plain_secret, scope).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope")),
            "{scope}: {body}"
        );
    }
    // The flag without admin is not enough either.
    let (other, other_secret) = machine_client(&app, false).await;
    let clients = &app.app().clients;
    assert!(
        clients
            .set_admin_identifiers(&other, true, &Actor::Operator)
            .await
            .unwrap()
    );
    let (status, body) =
        token_response(&app, &other, &other_secret, "civitas:admin:identifiers").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope")),
        "{body}"
    );
    // The marked admin client gets it, only when it asks.
    let (marked, secret) = identifiers_client(&app).await;
    let (status, body) = token_response(&app, &marked, &secret, BOTH).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], BOTH);
    let (_, body) = token_response(&app, &marked, &secret, "civitas:admin").await;
    assert_eq!(body["scope"], "civitas:admin");
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&marked, Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["scope"], "reports:read");
    // Withdrawn: no new token with the scope.
    assert!(
        clients
            .set_admin_identifiers(&marked, false, &Actor::Operator)
            .await
            .unwrap()
    );
    let (status, body) = token_response(&app, &marked, &secret, BOTH).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
}

async fn the_marked_client_gets_the_identifier_only_when_it_asks_and_the_entry_says_so(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (id, secret) = identifiers_client(&app).await;
    let (_, body) = token_response(&app, &id, &secret, BOTH).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    let citizen = proven_citizen(&app, "Mari Maasikas", "mari@example.eu", MARI).await;
    let path = format!("/admin/accounts/{}/export", citizen.as_str());
    let db = &app.app().db;

    // Not asked for: masked, even with the scope.
    let (status, text, doc) = get_text(&app, &token, &path).await;
    assert_eq!(status, 200, "{text}");
    assert!(!text.contains(MARI), "{text}");
    assert_eq!(doc["eid_binding"]["person_identifier_masked"], "EE-...18");
    let log = civitas::audit::for_account(db, &citizen, 2).await.unwrap();
    assert_eq!(log[1].kind, "account.exported");
    assert_eq!(log[1].fact("person_identifier"), Some("masked"));

    // Asked for: in clear, and both entries say so and name the caller.
    let (status, text, doc) =
        get_text(&app, &token, &format!("{path}?include=person_identifier")).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(doc["eid_binding"]["person_identifier"], MARI);
    assert!(doc["eid_binding"].get("person_identifier_masked").is_none());
    let log = civitas::audit::for_account(db, &citizen, 2).await.unwrap();
    assert_eq!(log[1].kind, "account.exported");
    assert_eq!(log[0].kind, "admin.action");
    for entry in &log {
        assert_eq!(entry.actor, format!("admin:{id}"));
        assert_eq!(
            entry.fact("person_identifier"),
            Some("included"),
            "{entry:?}"
        );
    }

    // Anything else in `include` is refused before any entry.
    let (status, _, body) = get_text(&app, &token, &format!("{path}?include=passkeys")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(
        civitas::audit::for_account(db, &citizen, 1).await.unwrap()[0].kind,
        "admin.action"
    );
    assert_eq!(
        civitas::audit::for_account(db, &citizen, 10)
            .await
            .unwrap()
            .len(),
        6,
        "created, bound, and two exports of two entries each"
    );

    // The operator withdraws the flag: the same token is refused at once.
    app.app()
        .clients
        .set_admin_identifiers(&id, false, &Actor::Operator)
        .await
        .unwrap();
    let (status, text, body) =
        get_text(&app, &token, &format!("{path}?include=person_identifier")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert!(!text.contains(MARI));
}

async fn exports_with_identifiers_are_limited_per_client(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let citizen = proven_citizen(&app, "Mari Maasikas", "mari@example.eu", MARI).await;
    let path = format!("/admin/accounts/{}/export", citizen.as_str());
    let clear = format!("{path}?include=person_identifier");
    let (id, secret) = identifiers_client(&app).await;
    let (_, body) = token_response(&app, &id, &secret, BOTH).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    for n in 0..10 {
        let (status, text, _) = get_text(&app, &token, &clear).await;
        assert_eq!(status, 200, "export {n}: {text}");
    }
    let (status, text, body) = get_text(&app, &token, &clear).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "{text}"
    );
    assert!(!text.contains(MARI));
    let log = civitas::audit::for_account(&app.app().db, &citizen, 1)
        .await
        .unwrap();
    assert_eq!(log[0].fact("outcome"), Some("rate_limited"));
    assert_eq!(log[0].actor, format!("admin:{id}"));
    // Masked exports are not limited; another client has its own count.
    assert_eq!(get_text(&app, &token, &path).await.0, 200);
    let (other, other_secret) = identifiers_client(&app).await;
    let (_, body) = token_response(&app, &other, &other_secret, BOTH).await;
    let other_token = body["access_token"].as_str().unwrap();
    assert_eq!(get_text(&app, other_token, &clear).await.0, 200);
}

on_both_stacks!(
    a_plain_admin_client_gets_the_identifier_masked_even_when_it_asks,
    registration_metadata_may_not_name_the_identifiers_scope,
    only_a_client_the_operator_marked_obtains_the_identifiers_scope,
    the_marked_client_gets_the_identifier_only_when_it_asks_and_the_entry_says_so,
    exports_with_identifiers_are_limited_per_client,
);

/// Every text value of every table except the audit log, as `table: value`.
async fn every_text_value(app: &TestApp, stack: Stack) -> Vec<String> {
    let db = &app.app().db;
    let tables_sql = match stack {
        Stack::Embedded => "SELECT name AS t FROM sqlite_master WHERE type = 'table'",
        Stack::Production => {
            "SELECT table_name::TEXT AS t FROM information_schema.tables WHERE table_schema = 'public'"
        }
    };
    let tables: Vec<String> = sqlx::query(tables_sql)
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("t"))
        .collect();
    assert!(tables.iter().any(|t| t == "accounts"), "{tables:?}");
    let mut out = Vec::new();
    // The audit log keeps its entries; sqlx's own table holds the migrations.
    for table in tables
        .iter()
        .filter(|t| *t != "audit_log" && !t.starts_with("_sqlx"))
    {
        let sql = sqlx::AssertSqlSafe(format!("SELECT * FROM {table}"));
        for row in sqlx::query(sql).fetch_all(db.pool()).await.unwrap() {
            for col in row.columns() {
                if let Ok(Some(v)) = row.try_get::<Option<String>, _>(col.ordinal()) {
                    out.push(format!("{table}.{}: {v}", col.name()));
                }
            }
        }
    }
    out
}

async fn erasure_removes_personal_data_and_keeps_an_intact_audit_chain(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (_, token) = admin(&app).await;
    let name = "Erika Unique-Name-7781";
    let email = "erika.7781@example.eu";
    let citizen = proven_citizen(&app, name, email, MARI).await;
    let acc = citizen.as_str().to_owned();
    let db = &app.app().db;
    civitas::accounts::recovery::generate(db, &citizen, app.app().clock.now())
        .await
        .unwrap();
    // Grants, refresh tokens, consents and session records.
    let rp = app.portal(json!({})).await;
    let lib = app
        .sign_in_as(
            &app.app().accounts.get(&citizen).await.unwrap().unwrap(),
            None,
        )
        .await;
    let tokens = app
        .tokens_for(&rp, &lib, "openid profile email offline_access")
        .await;
    assert!(tokens["refresh_token"].is_string());
    // A role, an ownership, and a mandate the citizen granted as a
    // statutory representative.
    for path in [
        format!("/admin/accounts/{acc}/roles/admin"),
        format!("/admin/clients/{}/owners/{acc}", rp.client_id),
    ] {
        assert_eq!(
            call(&app, Some(&token), Method::PUT, &path, None).await.0,
            200
        );
    }
    let register = json!([{"country": "EE", "code": "12345678", "name": "Acme OÜ",
        "representatives": [{"country": "EE", "person_identifier": MARI, "name": "Mari Maasikas"}]}]);
    assert_eq!(
        call(
            &app,
            Some(&token),
            Method::POST,
            "/admin/register",
            Some(register)
        )
        .await
        .0,
        200
    );
    let (mandate, _) = app
        .app()
        .mandates
        .grant(
            &citizen,
            Level::Substantial,
            civitas::mandates::GrantRequest {
                org_id: "EE:12345678".into(),
                grantee: civitas::mandates::Grantee::Invitation,
                powers: vec!["tax.file".into()],
                valid_until: None,
                may_delegate: false,
                min_level: Level::Substantial,
                parent: None,
            },
        )
        .await
        .unwrap();
    let before = every_text_value(&app, stack).await;
    for needle in [name, email, acc.as_str()] {
        assert!(
            before.iter().any(|v| v.contains(needle)),
            "the test data holds {needle}"
        );
    }

    let path = format!("/admin/accounts/{acc}");
    let (status, _, report) = call(&app, Some(&token), Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["erased"], true);
    assert_eq!(report["mandates_revoked"], 1);
    let (status, _, body) = call(&app, Some(&token), Method::DELETE, &path, None).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));

    let after = every_text_value(&app, stack).await;
    for needle in [name, email, acc.as_str()] {
        let left: Vec<&String> = after.iter().filter(|v| v.contains(needle)).collect();
        assert!(left.is_empty(), "{needle} is still held: {left:?}");
    }
    let m = app.app().mandates.get(&mandate.id).await.unwrap().unwrap();
    assert!(m.revoked_at.is_some(), "the mandate it granted is revoked");
    assert!(
        app.app()
            .sessions
            .current(&lib.cookie)
            .await
            .unwrap()
            .is_none()
    );
    // The audit log keeps its entries, by internal id only, and its chain.
    let log = civitas::audit::for_account(db, &citizen, 1000)
        .await
        .unwrap();
    assert!(log.iter().any(|e| e.kind == "account.created"));
    assert!(log.iter().any(|e| e.kind == "eid.bound"));
    // Newest first: the refused second erasure, the erasure's admin entry,
    // then account.erased from the same transaction.
    assert_eq!(log[0].fact("outcome"), Some("not_found"));
    assert_eq!(log[1].fact("action"), Some("account.erase"));
    assert_eq!(log[2].kind, "account.erased");
    let report = crate::audit::verify(&app).await;
    assert!(report.is_intact(), "{report:?}");
}

on_both_stacks!(erasure_removes_personal_data_and_keeps_an_intact_audit_chain);
