//! Verified claims (OpenID Connect for Identity Assurance) from an eID
//! binding proven against the simulator: released only as requested, as the
//! operator allowed and as the citizen consented, and never into a log line.

use serde_json::{Value, json};

use crate::browser_session::Browser;
use crate::eid::{signed_up, through_eid, with_simulator};
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{hidden, param, redirect_params};

async fn verified_claims_are_released_only_as_requested_allowed_and_consented(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    // Everything logged during this flow is scanned for the identifier.
    let logs = crate::logs::start();
    let (mut b, _key, _account) = signed_up(&app, true).await;
    through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    let rp = app.portal(json!({})).await;
    let clients = &app.app().clients;
    assert!(
        clients
            .allow_claims(
                &rp.client_id,
                &["shoe_size".into()],
                "none",
                &civitas::audit::Actor::Operator
            )
            .await
            .is_err()
    );
    clients
        .allow_claims(
            &rp.client_id,
            &[
                "given_name".into(),
                "family_name".into(),
                "birthdate".into(),
            ],
            "Permit Act §12",
            &civitas::audit::Actor::Operator,
        )
        .await
        .unwrap();

    let request = json!({
        "id_token": {"verified_claims": {"verification": {"trust_framework": null},
            "claims": {"given_name": null, "family_name": null, "person_identifier": null}}},
        "userinfo": {"verified_claims": [{"verification": {"trust_framework": null},
            "claims": {"birthdate": null, "person_identifier": null}}]},
    });
    let (q, verifier) = app.auth_query(
        &rp,
        "openid",
        &format!("&claims={}", crate::rp::urlencode(&request.to_string())),
    );
    let consent = b.page(&format!("/authorize?{q}")).await;
    assert!(
        consent.contains("Your given name, as verified by your national eID"),
        "{consent}"
    );
    assert!(consent.contains("Your date of birth, as verified by your national eID"));
    assert!(
        !consent.contains("national identification number"),
        "not on the allow-list, not even asked"
    );
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let tokens: Value = app
        .exchange(&rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let id = crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap());
    let vc = &id["verified_claims"];
    assert_eq!(vc["verification"]["trust_framework"], "eidas");
    assert_eq!(vc["verification"]["assurance_level"], "substantial");
    assert!(vc["verification"]["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        vc["claims"],
        json!({"given_name": "Mari", "family_name": "Maasikas"})
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
    assert_eq!(
        info["verified_claims"]["claims"],
        json!({"birthdate": "1980-01-08"})
    );
    assert!(!info.to_string().contains("38001085718") && !id.to_string().contains("38001085718"));

    // A client allowed the identifier receives it; one that asks nothing gets nothing.
    let tax = app.portal(json!({"client_name": "Tax office"})).await;
    clients
        .allow_claims(
            &tax.client_id,
            &["person_identifier".into()],
            "Taxation Act §3",
            &civitas::audit::Actor::Operator,
        )
        .await
        .unwrap();
    let request = json!({"id_token": {"verified_claims": {"verification": {"trust_framework": null}, "claims": {"person_identifier": null}}}});
    let (q, verifier) = app.auth_query(
        &tax,
        "openid",
        &format!("&claims={}", crate::rp::urlencode(&request.to_string())),
    );
    let consent = b.page(&format!("/authorize?{q}")).await;
    assert!(
        consent.contains("Your national identification number, as verified by your national eID")
    );
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    let tokens: Value = app
        .exchange(&tax, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
    let id = crate::rp::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(
        id["verified_claims"]["claims"]["person_identifier"],
        "38001085718"
    );
    let plain = app
        .tokens_for(&tax, &b_plain(&app, &b).await, "openid")
        .await;
    assert!(
        crate::rp::jwt_claims(plain["id_token"].as_str().unwrap())
            .get("verified_claims")
            .is_none()
    );
    let doc = app.get_json("/.well-known/openid-configuration").await;
    assert_eq!(doc["verified_claims_supported"], true);
    assert_eq!(doc["trust_frameworks_supported"], json!(["eidas"]));

    // The releases are in the audit log with their legal basis, and the
    // national identifier is nowhere in it, nor in any log line.
    let db = &app.app().db;
    let released: Vec<_> = crate::audit::since(db, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == "claims.released")
        .collect();
    assert_eq!(released.len(), 3);
    assert_eq!(
        released[1].detail["verified_claims"],
        json!([{"claim": "person_identifier", "legal_basis": "Taxation Act §3"}])
    );
    let mut export = Vec::new();
    civitas::audit::query::export_jsonl(db, None, &mut export)
        .await
        .unwrap();
    let export = String::from_utf8(export).unwrap();
    assert!(export.contains("eid.bound") && export.contains("Taxation Act"));
    let lines = logs.finish();
    assert!(
        lines.contains("/eid/callback") && lines.contains("/token"),
        "the capture saw the flow"
    );
    for text in [&export, &lines] {
        assert!(
            !text.contains("38001085718"),
            "a national identifier leaked"
        );
    }
}

/// The same citizen as a `rp::Browser` (cookie only), for `tokens_for`.
async fn b_plain(_app: &TestApp, b: &Browser<'_>) -> crate::rp::Browser {
    let cookie = b.session_cookie().unwrap().to_owned();
    let session = b
        .app
        .app()
        .sessions
        .current(&cookie)
        .await
        .unwrap()
        .unwrap();
    crate::rp::Browser {
        account: b
            .app
            .app()
            .accounts
            .get(&session.account_id)
            .await
            .unwrap()
            .unwrap(),
        cookie,
        sid: session.sid,
    }
}

on_both_stacks!(verified_claims_are_released_only_as_requested_allowed_and_consented);
