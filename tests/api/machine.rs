//! Machine clients (client_credentials), client authentication methods,
//! refresh-token reuse, introspection and revocation.

use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jws::{ES256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::jwt_claims;

async fn cc_token(app: &TestApp, id: &str, secret: &str, scope: Option<&str>) -> reqwest::Response {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    app.http
        .post(app.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

async fn a_payment_system_gets_a_scoped_machine_token(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let reg = app
        .register_ok(&json!({"grant_types": ["client_credentials"], "scope": "payments:read payments:write", "token_endpoint_auth_method": "client_secret_post"}))
        .await;
    let (id, secret) = (
        reg["client_id"].as_str().unwrap(),
        reg["client_secret"].as_str().unwrap(),
    );
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "payments:read"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id, "RFC 9068: the client is the subject");
    assert_eq!(claims["scope"], "payments:read");
    // Basic is not this client's method; a scope it was not registered for is refused.
    assert_eq!(cc_token(&app, id, secret, None).await.status(), 401);
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "payments:admin"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_scope");
    // A code client cannot use this grant.
    let portal = app.portal(json!({})).await;
    let res = cc_token(
        &app,
        &portal.client_id,
        portal.secret.as_deref().unwrap(),
        None,
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
    // Introspection by a resource server.
    let res = app
        .http
        .post(app.url("/introspect"))
        .basic_auth(&portal.client_id, portal.secret.as_deref())
        .form(&[("token", body["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    let intro: Value = res.json().await.unwrap();
    assert_eq!(intro["active"], true);
    assert_eq!(intro["scope"], "payments:read");
    assert_eq!(intro["client_id"], id);
    assert!(intro.get("gid").is_none());
    for junk in [
        "garbage",
        "a.b.c",
        &body["access_token"].as_str().unwrap().replace('e', "f"),
    ] {
        let res = app
            .http
            .post(app.url("/introspect"))
            .basic_auth(&portal.client_id, portal.secret.as_deref())
            .form(&[("token", junk)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"active": false}));
    }
    let res = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "introspection needs client authentication"
    );
}

pub(crate) fn assertion(
    key: &EcKeyPair,
    client_id: &str,
    aud: &str,
    exp_in: i64,
    jti: &str,
) -> String {
    let mut header = JwsHeader::new();
    header.set_key_id("k1");
    let mut payload = JwtPayload::new();
    #[allow(clippy::disallowed_methods)] // the test plays a client with its own clock
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    payload.set_issuer(client_id);
    payload.set_subject(client_id);
    payload.set_audience(vec![aud]);
    payload.set_jwt_id(jti);
    payload.set_claim("iat", Some(json!(now))).unwrap();
    payload.set_claim("exp", Some(json!(now + exp_in))).unwrap();
    let signer = ES256.signer_from_jwk(&key.to_jwk_private_key()).unwrap();
    jwt::encode_with_signer(&payload, &header, &signer).unwrap()
}

async fn private_key_jwt_is_verified_and_never_replayed(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let key = EcKeyPair::generate(EcCurve::P256).unwrap();
    let mut public = key.to_jwk_public_key();
    public.set_key_id("k1");
    let reg = app
        .register_ok(&json!({
            "grant_types": ["client_credentials"],
            "scope": "cases:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [serde_json::Value::Object(public.into())]},
        }))
        .await;
    let id = reg["client_id"].as_str().unwrap();
    assert!(reg.get("client_secret").is_none());
    let post = |a: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let good = assertion(&key, id, &app.base, 60, "jti-1");
    assert_eq!(post(good.clone()).await.status(), 200);
    let replay = post(good).await;
    assert_eq!(replay.status(), 401, "a replayed assertion is refused");
    assert!(
        replay.json::<Value>().await.unwrap()["error_description"]
            .as_str()
            .unwrap()
            .contains("replay")
    );
    assert_eq!(
        post(assertion(&key, id, &app.url("/token"), 60, "jti-2"))
            .await
            .status(),
        200,
        "aud may be the token endpoint"
    );
    let other_key = EcKeyPair::generate(EcCurve::P256).unwrap();
    for (what, a) in [
        (
            "wrong audience",
            assertion(&key, id, "https://elsewhere.example", 60, "jti-3"),
        ),
        ("expired", assertion(&key, id, &app.base, -120, "jti-4")),
        (
            "lives too long",
            assertion(&key, id, &app.base, 3_600, "jti-5"),
        ),
        (
            "wrong key",
            assertion(&other_key, id, &app.base, 60, "jti-6"),
        ),
        (
            "unknown client",
            assertion(&key, "nobody", &app.base, 60, "jti-7"),
        ),
        (
            "tampered",
            assertion(&key, id, &app.base, 60, "jti-8").replace('.', ".e"),
        ),
    ] {
        let res = post(a).await;
        assert_eq!(res.status(), 401, "{what}");
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_client",
            "{what}"
        );
    }
}

async fn refresh_token_reuse_revokes_the_whole_family(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Jo", "jo@example.eu").await;
    let tokens = app.tokens_for(&rp, &browser, "openid offline_access").await;
    let refresh = |t: String| {
        let app = &app;
        let rp = rp.clone();
        async move {
            app.http
                .post(app.url("/token"))
                .basic_auth(&rp.client_id, rp.secret.as_deref())
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", t.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let rotated: Value = refresh(first.clone()).await.json().await.unwrap();
    let second = rotated["refresh_token"].as_str().unwrap().to_owned();
    // The old token again: reuse, the family is revoked.
    let reuse = refresh(first).await;
    assert_eq!(reuse.status(), 400);
    assert_eq!(
        reuse.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        refresh(second).await.status(),
        400,
        "the newest token of the family is revoked too"
    );
    let res = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(rotated["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // Without offline_access, no refresh token at all.
    let tokens = app.tokens_for(&rp, &browser, "openid").await;
    assert!(tokens.get("refresh_token").is_none());
}

async fn userinfo_releases_nothing_beyond_scope_and_claims(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Kai", "kai@example.eu").await;
    let tokens = app.tokens_for(&rp, &browser, "openid").await;
    let access = tokens["access_token"].as_str().unwrap();
    let info: Value = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        info.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["sub"],
        "openid alone shares only sub"
    );
    let via_post: Value = app
        .http
        .post(app.url("/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(via_post, info);
    // The claims parameter asks for one claim; only that one comes.
    let claims = crate::rp::urlencode(r#"{"userinfo":{"email":null}}"#);
    let (q, verifier) = app.auth_query(&rp, "openid", &format!("&claims={claims}"));
    let code = crate::rp::param(&app.front_channel(&browser, &q).await, "code").unwrap();
    let tokens: Value = app
        .exchange(&rp, &code, &verifier)
        .await
        .json()
        .await
        .unwrap();
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
    assert_eq!(info["email"], "kai@example.eu");
    assert!(info.get("name").is_none());
    // Machine tokens and bad tokens get nothing.
    for (auth, status) in [
        (None, 401),
        (Some("garbage"), 401),
        (Some(&access.replace('a', "b")[..]), 401),
    ] {
        let mut req = app.http.get(app.url("/userinfo"));
        if let Some(a) = auth {
            req = req.bearer_auth(a);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), status);
        assert!(
            res.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
}

on_both_stacks!(
    a_payment_system_gets_a_scoped_machine_token,
    private_key_jwt_is_verified_and_never_replayed,
    refresh_token_reuse_revokes_the_whole_family,
    userinfo_releases_nothing_beyond_scope_and_claims,
);

/// Serves `body` at `/sector.json` on a loopback port.
async fn serve_sector(body: Value) -> String {
    let router = axum::Router::new().route(
        "/sector.json",
        axum::routing::get(move || async move { axum::Json(body) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/sector.json",
        listener.local_addr().unwrap().port()
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

async fn a_sector_identifier_groups_hosts_under_one_pairwise_subject(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let uris = json!([
        "https://portal.agency.example/callback",
        "https://m.agency.example/cb"
    ]);
    // Several hosts without a sector: refused.
    let res = app.register(&json!({"redirect_uris": uris})).await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_redirect_uri"
    );
    // A sector document that does not list every URI: refused.
    let partial = serve_sector(json!(["https://portal.agency.example/callback"])).await;
    let res = app
        .register(&json!({"redirect_uris": uris, "sector_identifier_uri": partial}))
        .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client_metadata", "{body}");
    // A complete one: accepted, and the sector decides the subject.
    let full = serve_sector(uris.clone()).await;
    let a = app
        .portal(json!({"redirect_uris": uris, "sector_identifier_uri": full}))
        .await;
    let b = app
        .portal(json!({"redirect_uris": ["https://portal.agency.example/callback", "http://127.0.0.1/cb"], "sector_identifier_uri": serve_sector(json!(["https://portal.agency.example/callback", "http://127.0.0.1/cb"])).await}))
        .await;
    let c = app.portal(json!({})).await;
    let browser = app.sign_in("Ola", "ola@example.eu").await;
    let sub = |t: Value| jwt_claims(t["id_token"].as_str().unwrap())["sub"].clone();
    let (sa, sb, sc) = (
        sub(app.tokens_for(&a, &browser, "openid").await),
        sub(app.tokens_for(&b, &browser, "openid").await),
        sub(app.tokens_for(&c, &browser, "openid").await),
    );
    assert_eq!(
        sa, sb,
        "clients of one sector (the 127.0.0.1 sector host) see one subject"
    );
    assert_ne!(sa, sc, "a client of another sector sees another subject");
}

on_both_stacks!(a_sector_identifier_groups_hosts_under_one_pairwise_subject);

async fn private_key_jwt_keys_come_from_the_client_jwks_uri(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let key = EcKeyPair::generate(EcCurve::P256).unwrap();
    let mut public = key.to_jwk_public_key();
    public.set_key_id("k1");
    let jwks_uri = serve_sector(json!({"keys": [serde_json::Value::Object(public.into())]})).await;
    let reg = app
        .register_ok(&json!({
            "grant_types": ["client_credentials"],
            "scope": "cases:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks_uri": jwks_uri,
        }))
        .await;
    let id = reg["client_id"].as_str().unwrap();
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            (
                "client_assertion",
                assertion(&key, id, &app.base, 60, "u-1").as_str(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

on_both_stacks!(private_key_jwt_keys_come_from_the_client_jwks_uri);

async fn an_agency_back_end_uses_the_jwt_bearer_grant_with_short_assertions(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let key = EcKeyPair::generate(EcCurve::P256).unwrap();
    let mut public = key.to_jwk_public_key();
    public.set_key_id("k1");
    let reg = app
        .register_ok(&json!({
            "grant_types": ["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            "scope": "registry:read",
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks": {"keys": [serde_json::Value::Object(public.into())]},
        }))
        .await;
    let id = reg["client_id"].as_str().unwrap();
    let post = |a: String| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/token"))
                .form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let good = assertion(&key, id, &app.base, 100, "b-1");
    let res = post(good.clone()).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        jwt_claims(body["access_token"].as_str().unwrap())["sub"],
        id
    );
    assert_eq!(body["scope"], "registry:read");
    for (what, a) in [
        ("replayed", good),
        (
            "lives longer than 120 seconds",
            assertion(&key, id, &app.base, 240, "b-2"),
        ),
        (
            "wrong audience",
            assertion(&key, id, "https://elsewhere.example", 60, "b-3"),
        ),
    ] {
        let res = post(a).await;
        assert_eq!(res.status(), 400, "{what}");
        assert_eq!(
            res.json::<Value>().await.unwrap()["error"],
            "invalid_grant",
            "{what}"
        );
    }
    // A client not registered for the grant.
    let other = app.register_ok(&json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
        "jwks": {"keys": [serde_json::Value::Object({ let mut p = key.to_jwk_public_key(); p.set_key_id("k1"); p.into() })]}})).await;
    let res = post(assertion(
        &key,
        other["client_id"].as_str().unwrap(),
        &app.base,
        60,
        "b-4",
    ))
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "unauthorized_client"
    );
}

on_both_stacks!(an_agency_back_end_uses_the_jwt_bearer_grant_with_short_assertions);
