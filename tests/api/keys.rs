//! Signing keys: survival across restarts, and rotation with pre-publication
//! and retirement, verified the way a relying party would (from the JWKS).

use std::sync::Arc;

use civitas::clock::{ManualClock, SharedClock, UnixTime};
use civitas::keys::{Alg, KeyManager};
use josekit::jwk::Jwk;
use josekit::jws::{ES256, JwsVerifier};
use serde_json::Value;

use crate::helpers::{Stack, TestEnv};
use crate::on_both_stacks;

fn kids(jwks: &Value) -> Vec<String> {
    let mut k: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

/// Verifies a compact JWS against a JWKS, as a relying party does.
fn verifies_against(jwks: &Value, token: &str) -> bool {
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let jwk = Jwk::from_map(jwk.as_object().unwrap().clone()).unwrap();
    let verifier = ES256.verifier_from_jwk(&jwk).unwrap();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .unwrap();
    verifier.verify(input.as_bytes(), &signature).is_ok()
}

async fn keys_clients_and_data_survive_a_restart(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let first = env.spawn().await;
    let jwks_before = first.get_json("/jwks").await;
    let reg = first
        .register_ok(&serde_json::json!({"redirect_uris": ["https://portal.agency.example/cb"]}))
        .await;
    first.stop().await;

    let second = env.spawn().await;
    assert_eq!(
        second.get_json("/jwks").await,
        jwks_before,
        "the same keys after a restart"
    );
    let res = second
        .http
        .get(second.url(&format!("/register/{}", reg["client_id"].as_str().unwrap())))
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the client survived");
    let stored = second
        .app()
        .clients
        .get(reg["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(stored.verify_secret(reg["client_secret"].as_str().unwrap()));
}

on_both_stacks!(keys_clients_and_data_survive_a_restart);

#[tokio::test]
async fn a_rotated_key_is_published_before_it_signs_and_the_retired_key_until_its_tokens_expire() {
    let env = TestEnv::new(Stack::Embedded).await.unwrap();
    let clock = ManualClock::new(UnixTime(1_800_000_000));
    let shared: SharedClock = Arc::new(clock.clone());
    // Access and ID tokens live 5 minutes; keys reload every 30 seconds.
    let app = env.spawn_with(shared.clone(), "").await;
    let keys = &app.app().keys;
    let old_kid = keys.active_kid(Alg::ES256).unwrap();
    let before = app.get_json("/jwks").await;
    let token_by_old = keys
        .sign(
            Alg::ES256,
            "at+jwt",
            &serde_json::json!({"sub": "x", "exp": 1_800_000_300}),
        )
        .unwrap();

    // Rotate with a one-hour pre-publication delay.
    let added = KeyManager::rotate(&env.keys_dir(), &shared, &[Alg::ES256], 3_600).unwrap();
    let new_kid = added[0].kid.clone();
    keys.refresh().unwrap();
    let during = app.get_json("/jwks").await;
    assert!(
        kids(&during).contains(&new_kid),
        "the next key is published first"
    );
    assert_eq!(kids(&during).len(), kids(&before).len() + 1);
    assert_eq!(
        keys.active_kid(Alg::ES256).unwrap(),
        old_kid,
        "but does not sign yet"
    );

    // The delay passes: the new key signs; the old one is retired but published.
    clock.advance(3_600);
    keys.refresh().unwrap();
    assert_eq!(keys.active_kid(Alg::ES256).unwrap(), new_kid);
    let token_by_new = keys
        .sign(Alg::ES256, "at+jwt", &serde_json::json!({"sub": "y"}))
        .unwrap();
    let after = app.get_json("/jwks").await;
    assert!(verifies_against(&after, &token_by_new));
    assert!(
        verifies_against(&after, &token_by_old),
        "a token by the retired key still verifies"
    );

    // Once every token it signed has expired (5 min + one reload interval), it goes.
    clock.advance(300 + 30);
    keys.refresh().unwrap();
    let later = app.get_json("/jwks").await;
    assert!(
        !kids(&later).contains(&old_kid),
        "the retired key is withdrawn"
    );
    assert!(!verifies_against(&later, &token_by_old));
    assert!(verifies_against(&later, &token_by_new));
    // The other algorithms' keys were not rotated and stay.
    assert_eq!(kids(&later).len(), Alg::ALL.len());
}

#[tokio::test]
async fn two_instances_sharing_a_keys_directory_agree_on_the_jwks_and_the_active_key() {
    let env = TestEnv::new(Stack::Embedded).await.unwrap();
    let a = env.spawn().await;
    let b = env.spawn().await;
    assert_eq!(a.get_json("/jwks").await, b.get_json("/jwks").await);
    let clock: SharedClock = Arc::new(civitas::clock::SystemClock);
    KeyManager::rotate(&env.keys_dir(), &clock, &Alg::ALL, 0).unwrap();
    a.app().keys.refresh().unwrap();
    b.app().keys.refresh().unwrap();
    for alg in Alg::ALL {
        assert_eq!(
            a.app().keys.active_kid(alg).unwrap(),
            b.app().keys.active_kid(alg).unwrap()
        );
    }
    assert_eq!(a.get_json("/jwks").await, b.get_json("/jwks").await);
    assert_eq!(
        kids(&a.get_json("/jwks").await).len(),
        2 * Alg::ALL.len(),
        "new and retired keys of every algorithm"
    );
}
