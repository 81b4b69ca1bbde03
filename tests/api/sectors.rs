//! Pairwise sectors are fixed at registration (OIDC Core §8.1): an RFC 7592
//! update cannot move a client into another sector, loopback-only clients
//! get a sector of their own, and clients registered before the sector was
//! stored keep the subjects they had.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{CALLBACK, Rp, jwt_claims};

const VICTIM: &str = "https://portal.victim-agency.example/callback";

/// A sector identifier document on a loopback port whose content the test
/// can change: its URL and the handle to change it.
async fn sector_document(listed: Value) -> (String, Arc<Mutex<Value>>) {
    let doc = Arc::new(Mutex::new(listed));
    let served = doc.clone();
    let router = axum::Router::new().route(
        "/sector.json",
        axum::routing::get(move || {
            let served = served.clone();
            async move { axum::Json(served.lock().unwrap().clone()) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://127.0.0.1:{port}/sector.json"), doc)
}

/// PUT /register/{client_id} with the client's current registration access
/// token; on success `rp` holds the rotated one.
async fn put_registration(app: &TestApp, rp: &mut Rp, mut body: Value) -> (u16, Value) {
    body["client_id"] = rp.client_id.clone().into();
    let res = app
        .http
        .put(app.url(&format!("/register/{}", rp.client_id)))
        .bearer_auth(
            rp.registration["registration_access_token"]
                .as_str()
                .unwrap(),
        )
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap();
    if status == 200 {
        rp.registration = answer.clone();
    }
    (status, answer)
}

/// The `sub` introspection reports for a refresh token of `rp`.
async fn introspected_sub(app: &TestApp, rp: &Rp, refresh_token: &str) -> Value {
    let res: Value = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&rp.client_id, rp.secret.as_deref())
        .form(&[("token", refresh_token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(res["active"], true, "{res}");
    res["sub"].clone()
}

/// Spends `refresh_token`: the `sub` of the new ID token and the successor.
async fn refreshed_sub(app: &TestApp, rp: &Rp, refresh_token: &str) -> (Value, String) {
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&rp.client_id, rp.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    (
        jwt_claims(tokens["id_token"].as_str().unwrap())["sub"].clone(),
        tokens["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn id_sub(tokens: &Value) -> Value {
    jwt_claims(tokens["id_token"].as_str().unwrap())["sub"].clone()
}

fn portal_metadata(redirect_uris: Value) -> Value {
    json!({
        "client_name": "Permit portal",
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "scope": "openid profile email offline_access",
    })
}

/// Protocol review H1: register on one host, collect a refresh token, PUT
/// the registration onto another agency's host, read `sub`.
async fn moving_a_registration_to_another_host_is_refused_and_the_subject_stays(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut rp = app.portal(json!({})).await;
    let victim = app
        .portal(json!({"redirect_uris": [VICTIM], "client_name": "Victim agency"}))
        .await;
    let citizen = app.sign_in("Ola", "ola@example.eu").await;
    let tokens = app.tokens_for(&rp, &citizen, "openid offline_access").await;
    let original = id_sub(&tokens);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let victim_sub = id_sub(&app.tokens_at(&victim, VICTIM, &citizen, "openid").await);
    assert_ne!(original, victim_sub, "two hosts, two subjects");

    let (status, body) = put_registration(&app, &mut rp, portal_metadata(json!([VICTIM]))).await;
    assert_eq!(status, 400, "the move is refused: {body}");
    assert_eq!(body["error"], "invalid_redirect_uri", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("sector"),
        "the description says why: {body}"
    );

    // The registration is unchanged, and so is every subject it sees.
    let res = app
        .http
        .get(app.url(&format!("/register/{}", rp.client_id)))
        .bearer_auth(
            rp.registration["registration_access_token"]
                .as_str()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the token was not spent by the refusal");
    let read: Value = res.json().await.unwrap();
    assert_eq!(read["redirect_uris"], json!([CALLBACK]));
    assert_eq!(introspected_sub(&app, &rp, &refresh).await, original);
    let (sub, _) = refreshed_sub(&app, &rp, &refresh).await;
    assert_eq!(sub, original);
    assert_ne!(sub, victim_sub);
}

/// Protocol review M7: loopback (native) clients do not share a sector.
async fn two_loopback_clients_see_different_subjects(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let native = "http://127.0.0.1:8400/cb";
    let first = app
        .portal(json!({"redirect_uris": [native], "application_type": "native"}))
        .await;
    let second = app
        .portal(json!({"redirect_uris": [native], "application_type": "native"}))
        .await;
    let citizen = app.sign_in("Ola", "ola@example.eu").await;
    let a = id_sub(&app.tokens_at(&first, native, &citizen, "openid").await);
    let b = id_sub(&app.tokens_at(&second, native, &citizen, "openid").await);
    assert_ne!(a, b, "each loopback client is a sector of its own");
    // Still stable for each client.
    let again = id_sub(&app.tokens_at(&first, native, &citizen, "openid").await);
    assert_eq!(a, again);
    // A native app may register both loopback addresses (RFC 8252 §7.3)
    // without a sector document: its sector is its own anyway.
    let both = app
        .register(&json!({"redirect_uris": [native, "http://[::1]:8400/cb"]}))
        .await;
    assert_eq!(both.status(), 201);
}

async fn an_update_on_the_same_host_keeps_the_subject(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let mut rp = app.portal(json!({})).await;
    let citizen = app.sign_in("Ola", "ola@example.eu").await;
    let tokens = app.tokens_for(&rp, &citizen, "openid offline_access").await;
    let original = id_sub(&tokens);
    let moved = "https://portal.agency.example/v2/callback";
    let (status, body) =
        put_registration(&app, &mut rp, portal_metadata(json!([moved, CALLBACK]))).await;
    assert_eq!(status, 200, "{body}");
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(introspected_sub(&app, &rp, refresh).await, original);
    assert_eq!(refreshed_sub(&app, &rp, refresh).await.0, original);
    let fresh = app
        .tokens_at(&rp, moved, &citizen, "openid offline_access")
        .await;
    assert_eq!(id_sub(&fresh), original);
}

/// A client whose sector is a sector identifier host may move its redirect
/// URIs to a new host that the document on that sector lists; a document on
/// another host cannot move it.
async fn a_new_host_listed_by_the_sector_document_keeps_the_subject(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (sector_uri, doc) = sector_document(json!([CALLBACK])).await;
    let mut rp = app
        .portal(json!({"sector_identifier_uri": sector_uri}))
        .await;
    let citizen = app.sign_in("Ola", "ola@example.eu").await;
    let tokens = app.tokens_for(&rp, &citizen, "openid offline_access").await;
    let original = id_sub(&tokens);
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let new_host = "https://portal.new-host.example/callback";

    // Not yet listed: refused.
    let mut moved = portal_metadata(json!([new_host]));
    moved["sector_identifier_uri"] = sector_uri.clone().into();
    let (status, body) = put_registration(&app, &mut rp, moved.clone()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_client_metadata")),
        "{body}"
    );

    // A document on another host that lists it does not move the sector.
    let elsewhere = sector_uri.replace("127.0.0.1", "localhost");
    *doc.lock().unwrap() = json!([CALLBACK, new_host]);
    let mut other = moved.clone();
    other["sector_identifier_uri"] = elsewhere.into();
    let (status, body) = put_registration(&app, &mut rp, other).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_client_metadata", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("sector"),
        "{body}"
    );

    // Listed by the document on the stored sector: allowed, same subject.
    let (status, body) = put_registration(&app, &mut rp, moved).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(introspected_sub(&app, &rp, &refresh).await, original);
    assert_eq!(refreshed_sub(&app, &rp, &refresh).await.0, original);
    let fresh = app.tokens_at(&rp, new_host, &citizen, "openid").await;
    assert_eq!(id_sub(&fresh), original);

    // Dropping the document now would change the sector (to the new host):
    // refused.
    let (status, body) = put_registration(&app, &mut rp, portal_metadata(json!([new_host]))).await;
    assert_eq!(status, 400, "{body}");
}

/// Clients registered before the sector was stored (migration 0012) keep
/// the subjects they had, loopback-only clients included: the sector is
/// filled from their metadata as it was computed then.
async fn clients_registered_before_sectors_were_stored_keep_their_subjects(stack: Stack) {
    let Some(env) = crate::helpers::TestEnv::new(stack).await else {
        return;
    };
    let app = env.spawn().await;
    let native = "http://127.0.0.1:8400/cb";
    let first = app.portal(json!({"redirect_uris": [native]})).await;
    let second = app.portal(json!({"redirect_uris": [native]})).await;
    let web = app.portal(json!({})).await;
    let citizen = app.sign_in("Ola", "ola@example.eu").await;
    let web_sub = id_sub(&app.tokens_for(&web, &citizen, "openid").await);
    // As a database upgraded from before 0012 holds them.
    sqlx::query("UPDATE clients SET sector = NULL")
        .execute(app.app().db.pool())
        .await
        .unwrap();
    app.stop().await;

    let app = env.spawn().await;
    let filled: Vec<(String, String)> = {
        use sqlx::Row as _;
        sqlx::query("SELECT client_id, sector FROM clients ORDER BY client_id")
            .fetch_all(app.app().db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get("client_id"), r.get("sector")))
            .collect()
    };
    let sector_of = |id: &str| filled.iter().find(|(c, _)| c == id).unwrap().1.clone();
    assert_eq!(sector_of(&web.client_id), "portal.agency.example");
    assert_eq!(sector_of(&first.client_id), "127.0.0.1");
    assert_eq!(sector_of(&second.client_id), "127.0.0.1");
    let citizen = app.sign_in_as(&citizen.account, None).await;
    assert_eq!(
        id_sub(&app.tokens_for(&web, &citizen, "openid").await),
        web_sub
    );
    let a = id_sub(&app.tokens_at(&first, native, &citizen, "openid").await);
    let b = id_sub(&app.tokens_at(&second, native, &citizen, "openid").await);
    assert_eq!(
        a, b,
        "loopback clients of before 0012 keep their shared sector, so their subjects do not change"
    );
    // A new loopback client does not join that sector.
    let third = app.portal(json!({"redirect_uris": [native]})).await;
    let c = id_sub(&app.tokens_at(&third, native, &citizen, "openid").await);
    assert_ne!(a, c);
}

/// The `sector` column of a client.
async fn stored_sector(app: &TestApp, client_id: &str) -> Option<String> {
    sqlx::query_as::<_, (Option<String>,)>("SELECT sector FROM clients WHERE client_id = $1")
        .bind(client_id)
        .fetch_one(app.app().db.pool())
        .await
        .unwrap()
        .0
}

/// An RFC 7592 PUT as an instance of the version before migration 0012
/// writes it during a rolling upgrade: the new metadata, and no sector
/// (that version does not know the column), with no sector check.
async fn put_by_an_earlier_version(app: &TestApp, client_id: &str, redirect_uri: &str) {
    let db = app.app().db.pool();
    let (metadata,): (String,) =
        sqlx::query_as("SELECT metadata FROM clients WHERE client_id = $1")
            .bind(client_id)
            .fetch_one(db)
            .await
            .unwrap();
    let mut metadata: Value = serde_json::from_str(&metadata).unwrap();
    metadata["redirect_uris"] = json!([redirect_uri]);
    sqlx::query("UPDATE clients SET metadata = $2, updated_at = $3 WHERE client_id = $1")
        .bind(client_id)
        .bind(metadata.to_string())
        .bind(app.app().clock.now().0)
        .execute(db)
        .await
        .unwrap();
}

/// Security review finding 9: while a client's `sector` is NULL (written by
/// an instance of an earlier version during a rolling upgrade), it is read
/// from the current metadata, so an earlier version's PUT onto another
/// host would move it (protocol review H1). Every edit by this version
/// therefore stores the sector first, from the metadata as stored before
/// the edit: an earlier version's later PUT can no longer move it.
async fn every_edit_by_this_version_fixes_the_sector_of_a_client_an_earlier_version_wrote(
    stack: Stack,
) {
    let Some(env) = crate::helpers::TestEnv::new(stack).await else {
        return;
    };
    let app = env.spawn().await;
    let clients = &app.app().clients;
    let operator = civitas::audit::Actor::Operator;
    let victim = app
        .portal(json!({"redirect_uris": [VICTIM], "client_name": "Victim agency"}))
        .await;
    let citizen = app.sign_in("Ola", "ola@example.eu").await;
    let victim_sub = id_sub(&app.tokens_at(&victim, VICTIM, &citizen, "openid").await);
    let edits = [
        "refused PUT",
        "PUT",
        "GET",
        "set-admin",
        "set-admin-identifiers",
        "reset-secret",
        "allow-claims",
        "allow-exchange",
    ];
    let mut edited = Vec::new();
    for edit in edits {
        let mut rp = app.portal(json!({})).await;
        let id = rp.client_id.clone();
        let original = id_sub(&app.tokens_for(&rp, &citizen, "openid").await);
        assert_ne!(original, victim_sub);
        // As an instance of the earlier version registered it.
        sqlx::query("UPDATE clients SET sector = NULL WHERE client_id = $1")
            .bind(&id)
            .execute(app.app().db.pool())
            .await
            .unwrap();

        match edit {
            "refused PUT" => {
                let (status, body) =
                    put_registration(&app, &mut rp, portal_metadata(json!([VICTIM]))).await;
                assert_eq!(status, 400, "{body}");
            }
            "PUT" => {
                let moved = json!(["https://portal.agency.example/v2/callback", CALLBACK]);
                let (status, body) = put_registration(&app, &mut rp, portal_metadata(moved)).await;
                assert_eq!(status, 200, "{body}");
            }
            "GET" => {
                let token = rp.registration["registration_access_token"]
                    .as_str()
                    .unwrap();
                let res = app
                    .http
                    .get(app.url(&format!("/register/{id}")))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
            }
            "set-admin" => assert!(clients.set_admin(&id, false, &operator).await.unwrap()),
            "set-admin-identifiers" => {
                assert!(
                    clients
                        .set_admin_identifiers(&id, false, &operator)
                        .await
                        .unwrap()
                );
            }
            "reset-secret" => {
                let secret = clients.reset_secret(&id, &operator).await.unwrap();
                rp.secret = Some(secret.expose().to_owned());
            }
            "allow-claims" => clients.allow_claims(&id, &[], "", &operator).await.unwrap(),
            _ => clients
                .allow_exchange(&id, "https://api.agency.example/", &operator)
                .await
                .unwrap(),
        }
        assert_eq!(
            stored_sector(&app, &id).await.as_deref(),
            Some("portal.agency.example"),
            "{edit}: the sector is stored"
        );

        put_by_an_earlier_version(&app, &id, VICTIM).await;
        let read = clients.get(&id).await.unwrap().unwrap();
        assert_eq!(read.sector(), "portal.agency.example", "{edit}");
        edited.push((edit, rp, original));
    }

    // The next instance of this version to start finds no sector to fill
    // from the moved metadata, and gives every citizen the same subject.
    app.stop().await;
    let later = env.spawn().await;
    let citizen = later.sign_in_as(&citizen.account, None).await;
    for (edit, rp, original) in edited {
        let sub = id_sub(&later.tokens_at(&rp, VICTIM, &citizen, "openid").await);
        assert_eq!(sub, original, "{edit}: the subject stays");
        assert_ne!(sub, victim_sub, "{edit}: the victim agency's subject");
    }
}

on_both_stacks!(
    every_edit_by_this_version_fixes_the_sector_of_a_client_an_earlier_version_wrote,
    moving_a_registration_to_another_host_is_refused_and_the_subject_stays,
    two_loopback_clients_see_different_subjects,
    an_update_on_the_same_host_keeps_the_subject,
    a_new_host_listed_by_the_sector_document_keeps_the_subject,
    clients_registered_before_sectors_were_stored_keep_their_subjects,
);
