//! Two instances on one PostgreSQL database, one Redis and one keys
//! directory behave as one service.

use std::time::Duration;

use civitas::ephemeral::{Ephemeral as _, Key, Namespace};

use crate::helpers::{Stack, TestEnv, production_available};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_clients_keys_and_single_use_values() {
    if !production_available() {
        return;
    }
    let env = TestEnv::new(Stack::Production).await.unwrap();
    let a = env.spawn().await;
    let b = env.spawn().await;
    assert_ne!(a.base, b.base);

    // The same keys.
    assert_eq!(a.get_json("/jwks").await, b.get_json("/jwks").await);

    // A client registered at one is usable at the other.
    let reg = a
        .register_ok(&serde_json::json!({"redirect_uris": ["https://portal.agency.example/cb"]}))
        .await;
    let client_id = reg["client_id"].as_str().unwrap();
    let res = b
        .http
        .get(b.url(&format!("/register/{client_id}")))
        .bearer_auth(reg["registration_access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let stored = b.app().clients.get(client_id).await.unwrap().unwrap();
    assert!(stored.verify_secret(reg["client_secret"].as_str().unwrap()));

    // A single-use value put by one and taken at the other cannot be taken again anywhere.
    let key = Key::new(Namespace::Code, "shared-code");
    a.app()
        .cache
        .put(&key, b"grant", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(
        b.app().cache.take(&key).await.unwrap().as_deref(),
        Some(&b"grant"[..])
    );
    assert_eq!(a.app().cache.take(&key).await.unwrap(), None);
    assert_eq!(b.app().cache.take(&key).await.unwrap(), None);

    // Concurrent takers on both instances: exactly one wins.
    for round in 0..10 {
        let key = Key::new(Namespace::Code, format!("race-{round}"));
        a.app()
            .cache
            .put(&key, b"grant", Duration::from_secs(60))
            .await
            .unwrap();
        let (ca, cb) = (a.app().cache.clone(), b.app().cache.clone());
        let (ka, kb) = (key.clone(), key.clone());
        let (ra, rb) = tokio::join!(
            tokio::spawn(async move { ca.take(&ka).await.unwrap() }),
            tokio::spawn(async move { cb.take(&kb).await.unwrap() }),
        );
        let winners = [ra.unwrap(), rb.unwrap()].into_iter().flatten().count();
        assert_eq!(winners, 1);
    }
}
