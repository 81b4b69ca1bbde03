//! The admin API's data-protection requests: the export of everything held
//! about a citizen, and erasure (every table scanned afterwards, the audit
//! chain still intact).

use civitas::assurance::Level;
use reqwest::Method;
use serde_json::json;
use sqlx::{Column as _, Row as _};

use crate::admin::{MARI, admin, call, proven_citizen};
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
    assert_eq!(
        binding["person_identifier"], MARI,
        "decrypted for the citizen"
    );
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
