//! Two `civitas serve` processes behind nginx, sharing PostgreSQL, Redis
//! and the keys directory, are one service: whatever one instance begins or
//! issues, the other finishes, accepts or ends.

use civitas::testkit::citizen::query_param;
use civitas::testkit::{Citizen, FlowError, Rp};
use serde_json::{Value, json};

use crate::instance::REGISTRATION_TOKEN;
use crate::load::{client, machine, send};

const CALLBACK: &str = "https://portal.agency.example/callback";

/// Verifies a JWT's signature with the key its `kid` names in `jwks`; its claims.
fn verify(token: &str, jwks: &Value) -> Value {
    let header = josekit::jwt::decode_header(token).expect("JWT header");
    let kid = header
        .claim("kid")
        .expect("kid")
        .as_str()
        .unwrap()
        .to_owned();
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} is not in the JWKS"));
    assert_eq!(header.claim("alg").unwrap(), "ES256");
    let jwk = josekit::jwk::Jwk::from_bytes(key.to_string()).unwrap();
    let verifier = josekit::jws::ES256.verifier_from_jwk(&jwk).unwrap();
    let (payload, _) = josekit::jwt::decode_with_verifier(token, &verifier).expect("signature");
    serde_json::to_value(payload.claims_set()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_behind_nginx_are_one_service() {
    let _serial = crate::serial().await;
    let Some(cluster) = crate::Cluster::start(2).await else {
        return;
    };
    let lb = cluster.base();
    let (one, two) = (cluster.instances[0].base(), cluster.instances[1].base());
    let http = client();

    // The same keys everywhere.
    let jwks_one = send(http.get(format!("{one}/jwks"))).await.unwrap().json();
    let jwks_two = send(http.get(format!("{two}/jwks"))).await.unwrap().json();
    assert_eq!(jwks_one, jwks_two);
    assert!(!jwks_one["keys"].as_array().unwrap().is_empty());

    // A client registered through the load balancer gets tokens through it
    // (from both instances, round robin) that verify with either JWKS.
    let m = machine(&http, &lb).await;
    for _ in 0..6 {
        let r = m.token(&http, &lb).await.unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let access = r.json()["access_token"].as_str().unwrap().to_owned();
        for jwks in [&jwks_one, &jwks_two] {
            let claims = verify(&access, jwks);
            assert_eq!(claims["iss"], lb.as_str());
            assert_eq!(claims["client_id"], m.client_id.as_str());
        }
        // Each instance knows the token.
        for base in [&one, &two] {
            let i = m.introspect(&http, base, &access).await.unwrap();
            assert_eq!(i.json()["active"], true, "{}", i.body);
        }
    }

    let rp = Rp::register(
        &http,
        &lb,
        Some(REGISTRATION_TOKEN),
        &json!({
            "client_name": "Permit portal",
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid offline_access",
        }),
    )
    .await
    .expect("register through the load balancer");

    // A code issued by one instance is redeemed at the other, exactly once.
    let mut citizen = Citizen::new(http.clone(), &one, &lb, "Ada", "ada@example.org");
    let request = rp.request("openid");
    let params = citizen
        .authorize(&rp, &request)
        .await
        .expect("sign-in at one");
    assert_eq!(
        query_param(&params, "state").as_deref(),
        Some(request.state.as_str())
    );
    let code = query_param(&params, "code").expect("a code");
    let tokens = rp
        .exchange(&http, &two, &code, &request.verifier)
        .await
        .expect("the code is redeemed at the other instance");
    let now = i64::try_from(
        std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    civitas::testkit::citizen::validate_id_token(
        tokens["id_token"].as_str().unwrap(),
        &jwks_one,
        &lb,
        &rp.client_id,
        &request.nonce,
        now,
    )
    .expect("the ID token validates");
    for base in [&one, &two] {
        match rp.exchange(&http, base, &code, &request.verifier).await {
            Err(FlowError::Status {
                status: 400, body, ..
            }) => {
                assert!(body.contains("invalid_grant"), "{body}");
            }
            other => panic!("a code redeemed twice: {other:?}"),
        }
    }
    // Racing redemptions on both instances: exactly one wins, every time.
    for _ in 0..5 {
        let request = rp.request("openid");
        let params = citizen.authorize(&rp, &request).await.expect("SSO at one");
        let code = query_param(&params, "code").expect("a code");
        let (a, b) = tokio::join!(
            rp.exchange(&http, &one, &code, &request.verifier),
            rp.exchange(&http, &two, &code, &request.verifier),
        );
        assert_eq!(
            usize::from(a.is_ok()) + usize::from(b.is_ok()),
            1,
            "{a:?} / {b:?}"
        );
    }

    // A passkey sign-in begun at one instance is finished at the other, and
    // the session it opens is known to both.
    citizen.forget_cookies();
    citizen.base = one.clone();
    citizen.page("/signin").await.expect("sign-in page at one");
    let (status, begin) = citizen
        .post_json("/passkeys/signin/begin", &json!({}))
        .await
        .unwrap();
    assert_eq!(status, 200, "{begin}");
    let credential = citizen.authenticator.get(&begin["options"]);
    citizen.base = two.clone();
    let (status, done) = citizen
        .post_json(
            "/passkeys/signin/finish",
            &json!({"ceremony": begin["ceremony"], "credential": credential}),
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "finish at the other instance: {done}");
    let session = citizen.session_cookie().expect("a session").to_owned();
    let account_page = |base: &str| {
        http.get(format!("{base}/account"))
            .header("cookie", format!("civitas_session={session}"))
    };
    for base in [&one, &two, &lb] {
        let r = send(account_page(base)).await.unwrap();
        assert_eq!(r.status, 200, "the account page at {base}");
    }

    // Signing out at one instance ends the session at the other.
    citizen.base = two.clone();
    citizen.page("/account").await.expect("account page at two");
    let res = citizen.post_form("/account/signout", &[]).await.unwrap();
    assert_eq!(res.status(), 200);
    for base in [&one, &two, &lb] {
        let r = send(account_page(base)).await.unwrap();
        assert_eq!(r.status, 303, "signed out, yet the account page at {base}");
    }
    // And a new authorization request at the first one asks for a sign-in.
    citizen.base = one.clone();
    let r = citizen
        .get(&format!("/authorize?{}", rp.request("openid").query))
        .await
        .unwrap();
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(location.starts_with("/signin"), "{} {location}", r.status());
}
