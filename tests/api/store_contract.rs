//! The store contract, run on SQLite and on PostgreSQL.

use std::sync::Arc;

use civitas::clients::{Clients, MetadataRequest, OperatorOptions, SubjectType};
use civitas::clock::{ManualClock, SharedClock, UnixTime};
use civitas::store::Database;

use crate::helpers::{Stack, TestEnv};
use crate::on_both_stacks;

async fn database(stack: Stack) -> Option<(Arc<TestEnv>, Database)> {
    let env = TestEnv::new(stack).await?;
    let db = Database::connect(&env.database_url, &Default::default())
        .await
        .unwrap();
    db.migrate().await.unwrap();
    Some((env, db))
}

/// The fetcher of a production instance (these tests fetch nothing).
fn outbound() -> civitas::outbound::Fetcher {
    civitas::outbound::Fetcher::for_issuer("https://id.example.gov").unwrap()
}

fn metadata(json: serde_json::Value) -> civitas::clients::ClientMetadata {
    serde_json::from_value::<MetadataRequest>(json)
        .unwrap()
        .validate()
        .unwrap()
}

async fn migrations_apply_once_and_again_without_change(stack: Stack) {
    let Some((_env, db)) = database(stack).await else {
        return;
    };
    db.migrate().await.unwrap();
    db.ping().await.unwrap();
}

async fn clients_round_trip_through_the_store(stack: Stack) {
    let Some((_env, db)) = database(stack).await else {
        return;
    };
    let clock = ManualClock::new(UnixTime(1_700_000_000));
    let shared: SharedClock = Arc::new(clock.clone());
    let clients = Clients::new(db, shared, outbound());
    let meta = metadata(serde_json::json!({
        "redirect_uris": ["https://portal.agency.example/cb"],
        "client_name": "Permit portal — Ünïcode ✓",
        "scope": "openid profile",
    }));
    let issued = clients
        .register(
            meta.clone(),
            OperatorOptions {
                first_party: true,
                subject_type: SubjectType::Public,
                registration_token: true,
                admin: false,
            },
            &civitas::audit::Actor::Operator,
        )
        .await
        .unwrap();
    let secret = issued.client_secret.clone().unwrap();
    let id = issued.client.client_id.as_str().to_owned();

    let stored = clients.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.metadata, meta);
    assert!(stored.first_party);
    assert_eq!(stored.subject_type, SubjectType::Public);
    assert_eq!(stored.created_at, UnixTime(1_700_000_000));
    assert!(stored.verify_secret(secret.expose()));
    assert!(!stored.verify_secret("not the secret"));
    assert!(stored.has_redirect_uri("https://portal.agency.example/cb"));
    assert!(!stored.has_redirect_uri("https://portal.agency.example/cb/"));

    let token = issued.registration_access_token.unwrap();
    assert!(
        clients
            .authorize_management(&id, token.expose())
            .await
            .is_ok()
    );
    assert!(clients.authorize_management(&id, "wrong").await.is_err());

    clock.advance(10);
    let changed = metadata(serde_json::json!({
        "redirect_uris": ["https://portal.agency.example/callback"],
        "token_endpoint_auth_method": "none",
    }));
    let updated = clients
        .update(&stored, changed.clone(), &civitas::audit::Actor::Operator)
        .await
        .unwrap();
    assert!(
        !updated.client.has_secret(),
        "a public client keeps no secret"
    );
    let stored = clients.get(&id).await.unwrap().unwrap();
    assert_eq!(stored.metadata, changed);
    assert_eq!(stored.updated_at, UnixTime(1_700_000_010));
    assert!(!stored.verify_secret(secret.expose()));

    assert_eq!(clients.list().await.unwrap().len(), 1);
    assert!(
        clients
            .delete(&id, &civitas::audit::Actor::Operator)
            .await
            .unwrap()
    );
    assert!(
        !clients
            .delete(&id, &civitas::audit::Actor::Operator)
            .await
            .unwrap()
    );
    assert!(clients.get(&id).await.unwrap().is_none());
}

async fn a_registration_token_can_be_rotated_only_once(stack: Stack) {
    let Some((_env, db)) = database(stack).await else {
        return;
    };
    let clients = Clients::new(db, Arc::new(civitas::clock::SystemClock), outbound());
    let issued = clients
        .register(
            metadata(serde_json::json!({"grant_types": ["client_credentials"]})),
            OperatorOptions::default(),
            &civitas::audit::Actor::Operator,
        )
        .await
        .unwrap();
    let old = issued.registration_access_token.unwrap();
    let rotated = clients
        .rotate_registration_token(&issued.client, old.expose())
        .await
        .unwrap();
    assert!(
        clients
            .rotate_registration_token(&issued.client, old.expose())
            .await
            .is_err()
    );
    let new = rotated.registration_access_token.unwrap();
    let id = issued.client.client_id.as_str();
    assert!(clients.authorize_management(id, new.expose()).await.is_ok());
    assert!(
        clients
            .authorize_management(id, old.expose())
            .await
            .is_err()
    );
}

on_both_stacks!(
    migrations_apply_once_and_again_without_change,
    clients_round_trip_through_the_store,
    a_registration_token_can_be_rotated_only_once,
);
