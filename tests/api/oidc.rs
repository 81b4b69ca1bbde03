//! The authorization code flow end to end, with the `openidconnect` crate as
//! the relying party, and the protocol's rules checked over raw HTTP.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse as _,
};
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{CALLBACK, jwt_claims, jwt_header, param, redirect_params};

fn rp_http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn a_relying_party_library_signs_a_citizen_in_refreshes_and_revokes(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Anna Citizen", "anna@example.eu").await;
    let http = rp_http();

    // Discovery and JWKS, validated by the library.
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(rp.client_id.clone()),
        Some(ClientSecret::new(rp.secret.clone().unwrap())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.into()).unwrap());

    // Front channel.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();
    let path = &url.as_str()[app.base.len()..];
    let res = app.browse(Some(&browser), path).await;
    assert_eq!(res.status(), 200, "the first visit asks for consent");
    let html = res.text().await.unwrap();
    assert!(html.contains("Permit portal") && html.contains("Your email address"));
    let params = redirect_params(&app.consent(&browser, &html, true).await);
    assert_eq!(
        param(&params, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        param(&params, "iss").as_deref(),
        Some(app.base.as_str()),
        "RFC 9207 iss"
    );
    let code = param(&params, "code").unwrap();

    // Back channel: code for tokens; the library validates the ID token
    // (signature against the JWKS, issuer, audience, expiry, nonce).
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let id_token = tokens.id_token().unwrap();
    let verifier = client.id_token_verifier();
    let claims = id_token.claims(&verifier, &nonce).unwrap();
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims.access_token_hash(),
        Some(&at_hash),
        "at_hash binds the access token"
    );
    assert!(claims.auth_time().is_some());
    assert_eq!(
        claims.authorized_party().map(|a| a.as_str()),
        Some(rp.client_id.as_str())
    );
    let raw = jwt_claims(&id_token.to_string());
    assert_eq!(raw["sid"], browser.sid.as_str());
    assert_eq!(raw["acr"], "http://eidas.europa.eu/LoA/low");
    assert_eq!(raw["amr"], json!(["user", "mfa", "hwk"]));
    assert_eq!(
        jwt_header(&id_token.to_string())["alg"],
        "RS256",
        "RS256 when the client registered nothing"
    );
    let sub = claims.subject().as_str().to_owned();
    assert_ne!(
        sub,
        browser.account.id.as_str(),
        "the subject is pairwise, not the account id"
    );

    // The access token is an RFC 9068 JWT.
    let access = tokens.access_token().secret().clone();
    assert_eq!(jwt_header(&access)["typ"], "at+jwt");
    assert_eq!(jwt_header(&access)["alg"], "ES256");
    let at = jwt_claims(&access);
    for claim in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "jti",
        "exp",
        "iat",
    ] {
        assert!(at.get(claim).is_some(), "access token lacks {claim}");
    }
    assert_eq!(
        at["exp"].as_i64().unwrap() - at["iat"].as_i64().unwrap(),
        300,
        "five minutes"
    );

    // UserInfo: the claims of the granted scopes.
    let userinfo: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(userinfo.subject().as_str(), sub);
    assert_eq!(
        userinfo.email().map(|e| e.as_str()),
        Some("anna@example.eu")
    );
    assert_eq!(
        userinfo.email_verified(),
        Some(false),
        "not verified until the citizen proves it"
    );
    assert_eq!(
        userinfo
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str()),
        Some("Anna Citizen")
    );

    // Refresh: rotated at every use.
    let refresh = tokens.refresh_token().unwrap().clone();
    let refreshed = client
        .exchange_refresh_token(&refresh)
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let next = refreshed.refresh_token().unwrap().clone();
    assert_ne!(next.secret(), refresh.secret());
    assert_ne!(
        refreshed.access_token().secret(),
        tokens.access_token().secret()
    );

    // Revocation of the refresh token revokes the grant and its access tokens.
    let res = app
        .http
        .post(app.url("/revoke"))
        .basic_auth(&rp.client_id, rp.secret.as_deref())
        .form(&[
            ("token", next.secret().as_str()),
            ("token_type_hint", "refresh_token"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .get(app.url("/userinfo"))
        .bearer_auth(refreshed.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        client
            .exchange_refresh_token(&next)
            .unwrap()
            .request_async(&http)
            .await
            .is_err()
    );
}

async fn consent_is_remembered_and_sso_needs_no_new_sign_in(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Ben", "ben@example.eu").await;
    app.tokens_for(&rp, &browser, "openid profile").await;
    // Second request: no consent page, straight back with a code.
    let (q, _) = app.auth_query(&rp, "openid profile", "");
    let res = app.browse(Some(&browser), &format!("/authorize?{q}")).await;
    assert!(param(&redirect_params(&res), "code").is_some());
    // A wider scope asks again; prompt=consent asks again.
    let (q, _) = app.auth_query(&rp, "openid profile email", "");
    assert_eq!(
        app.browse(Some(&browser), &format!("/authorize?{q}"))
            .await
            .status(),
        200
    );
    let (q, _) = app.auth_query(&rp, "openid profile", "&prompt=consent");
    assert_eq!(
        app.browse(Some(&browser), &format!("/authorize?{q}"))
            .await
            .status(),
        200
    );
    // A second relying party gets SSO: the same session, its own subject.
    let other = app
        .portal(json!({"redirect_uris": ["https://payments.agency.example/callback"], "client_name": "Payments"}))
        .await;
    let (verifier, challenge) = crate::rp::pkce();
    let q = format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=openid&code_challenge={challenge}&code_challenge_method=S256",
        other.client_id,
        crate::rp::urlencode("https://payments.agency.example/callback")
    );
    let res = app.browse(Some(&browser), &format!("/authorize?{q}")).await;
    assert_eq!(res.status(), 200, "consent for the new service, no sign-in");
    let params = redirect_params(
        &app.consent(&browser, &res.text().await.unwrap(), true)
            .await,
    );
    let code = param(&params, "code").unwrap();
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&other.client_id, other.secret.as_deref())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "https://payments.agency.example/callback"),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    let sub_other = jwt_claims(body["id_token"].as_str().unwrap())["sub"].clone();
    let first = app.tokens_for(&rp, &browser, "openid profile").await;
    let sub_first = jwt_claims(first["id_token"].as_str().unwrap())["sub"].clone();
    assert_ne!(sub_other, sub_first, "two agencies see different subjects");
    // Consent can be withdrawn: the next request asks again.
    assert!(
        civitas::oidc::consent::withdraw(
            &app.app().db,
            &browser.account.id,
            &rp.client_id,
            civitas::clock::Clock::now(app.app().clock.as_ref())
        )
        .await
        .unwrap()
    );
    let (q, _) = app.auth_query(&rp, "openid profile", "");
    assert_eq!(
        app.browse(Some(&browser), &format!("/authorize?{q}"))
            .await
            .status(),
        200
    );
}

async fn a_code_is_single_use_and_its_reuse_revokes_the_tokens(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Cleo", "cleo@example.eu").await;
    let (q, verifier) = app.auth_query(&rp, "openid offline_access", "");
    let code = param(&app.front_channel(&browser, &q).await, "code").unwrap();
    let first = app.exchange(&rp, &code, &verifier).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let tokens: Value = first.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let second = app.exchange(&rp, &code, &verifier).await;
    assert_eq!(second.status(), 400);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        app.http
            .get(app.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let refresh = app
        .http
        .post(app.url("/token"))
        .basic_auth(&rp.client_id, rp.secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        refresh.status(),
        400,
        "the refresh token of the replayed code is revoked too"
    );
}

async fn code_exchange_refuses_a_wrong_verifier_client_or_redirect(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let other = app.portal(json!({})).await;
    let browser = app.sign_in("Dan", "dan@example.eu").await;
    type Form = Box<dyn Fn(&str, &str) -> Vec<(String, String)>>;
    let cases: Vec<(&str, Form)> = vec![
        (
            "wrong verifier",
            Box::new(|code: &str, _v: &str| {
                vec![
                    ("code".into(), code.into()),
                    ("redirect_uri".into(), CALLBACK.into()),
                    ("code_verifier".into(), crate::rp::pkce().0),
                ]
            }),
        ),
        (
            "no verifier",
            Box::new(|code: &str, _v: &str| {
                vec![
                    ("code".into(), code.into()),
                    ("redirect_uri".into(), CALLBACK.into()),
                ]
            }),
        ),
        (
            "other redirect",
            Box::new(|code: &str, v: &str| {
                vec![
                    ("code".into(), code.into()),
                    (
                        "redirect_uri".into(),
                        "https://portal.agency.example/other".into(),
                    ),
                    ("code_verifier".into(), v.into()),
                ]
            }),
        ),
    ];
    for (what, body) in cases {
        let (q, verifier) = app.auth_query(&rp, "openid", "");
        let code = param(&app.front_channel(&browser, &q).await, "code").unwrap();
        let mut form = body(&code, &verifier);
        form.push(("grant_type".into(), "authorization_code".into()));
        let res = app
            .http
            .post(app.url("/token"))
            .basic_auth(&rp.client_id, rp.secret.as_deref())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{what}");
        let err: Value = res.json().await.unwrap();
        assert!(
            err["error"] == "invalid_grant" || err["error"] == "invalid_request",
            "{what}: {err}"
        );
    }
    // A code stolen by another client.
    let (q, verifier) = app.auth_query(&rp, "openid", "");
    let code = param(&app.front_channel(&browser, &q).await, "code").unwrap();
    let res = app.exchange(&other, &code, &verifier).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // And a wrong secret.
    let (q, verifier) = app.auth_query(&rp, "openid", "");
    let code = param(&app.front_channel(&browser, &q).await, "code").unwrap();
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&rp.client_id, Some("wrong"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        res.json::<Value>().await.unwrap()["error"],
        "invalid_client"
    );
}

async fn authorization_errors_go_to_the_client_only_when_it_is_verified(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Eva", "eva@example.eu").await;
    let (good, _) = app.auth_query(&rp, "openid", "");

    // Unknown client, unregistered redirect URI: a page, never a redirect.
    for query in [
        good.replace(&rp.client_id, "no-such-client"),
        good.replace("callback", "evil"),
        good.replace(
            "https%3A%2F%2Fportal.agency.example",
            "https%3A%2F%2Fevil.example",
        ),
        format!("{good}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"),
        good.replace(&format!("client_id={}&", rp.client_id), ""),
    ] {
        let res = app
            .browse(Some(&browser), &format!("/authorize?{query}"))
            .await;
        assert_eq!(res.status(), 400, "{query}");
        assert!(res.headers().get("location").is_none());
        assert!(res.text().await.unwrap().contains("<h1>"));
    }

    // Everything else: redirected with error, state and iss.
    let cases = [
        (
            good.replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (good.replace("response_type=code&", ""), "invalid_request"),
        (
            good.replace(
                "&code_challenge_method=S256",
                "&code_challenge_method=plain",
            ),
            "invalid_request",
        ),
        (
            good.replace("&code_challenge_method=S256", ""),
            "invalid_request",
        ),
        (
            good.split("&code_challenge=").next().unwrap().to_owned(),
            "invalid_request",
        ),
        (
            good.replace("scope=openid", "scope=openid+payments%3Aadmin"),
            "invalid_scope",
        ),
        (format!("{good}&prompt=none+login"), "invalid_request"),
        (format!("{good}&max_age=-1"), "invalid_request"),
        (format!("{good}&claims=%7Bnot-json"), "invalid_request"),
        (
            format!("{good}&id_token_hint=not.a.token"),
            "invalid_request",
        ),
        (format!("{good}&request=eyJ"), "request_not_supported"),
        (format!("{good}&state=again"), "invalid_request"),
    ];
    for (query, code) in cases {
        let res = app
            .browse(Some(&browser), &format!("/authorize?{query}"))
            .await;
        let params = redirect_params(&res);
        assert_eq!(param(&params, "error").as_deref(), Some(code), "{query}");
        assert_eq!(
            param(&params, "state").as_deref(),
            Some("st-123"),
            "{query}"
        );
        assert_eq!(param(&params, "iss").as_deref(), Some(app.base.as_str()));
        assert!(param(&params, "error_description").is_some());
    }
}

async fn prompt_none_never_shows_a_page(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let (q, _) = app.auth_query(&rp, "openid", "&prompt=none");
    let params = redirect_params(&app.browse(None, &format!("/authorize?{q}")).await);
    assert_eq!(param(&params, "error").as_deref(), Some("login_required"));
    let browser = app.sign_in("Finn", "finn@example.eu").await;
    let params = redirect_params(&app.browse(Some(&browser), &format!("/authorize?{q}")).await);
    assert_eq!(param(&params, "error").as_deref(), Some("consent_required"));
    app.tokens_for(&rp, &browser, "openid").await;
    let params = redirect_params(&app.browse(Some(&browser), &format!("/authorize?{q}")).await);
    assert!(
        param(&params, "code").is_some(),
        "silent SSO once consented"
    );
    // max_age=0 needs a fresh authentication: with prompt=none, login_required.
    let (q, _) = app.auth_query(&rp, "openid", "&prompt=none&max_age=0");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let params = redirect_params(&app.browse(Some(&browser), &format!("/authorize?{q}")).await);
    assert_eq!(param(&params, "error").as_deref(), Some("login_required"));
}

async fn without_a_session_the_request_waits_at_the_sign_in_page_and_resumes(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let (q, verifier) = app.auth_query(&rp, "openid", "&response_mode=form_post&prompt=login");
    let res = app.browse(None, &format!("/authorize?{q}")).await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with("/signin?auth="), "{location}");
    assert!(
        !location.contains("client_id") && !location.contains("code_challenge"),
        "the page sees only a handle"
    );
    let handle = location.trim_start_matches("/signin?auth=").to_owned();
    let page = app.browse(None, &location).await;
    assert_eq!(page.status(), 200);
    // The citizen signs in (session fixation: the old cookie is replaced).
    let before = app.sign_in("Gil", "gil@example.eu").await;
    let browser = app.sign_in_as(&before.account, Some(&before)).await;
    assert_ne!(browser.sid, before.sid, "a new session id at every sign-in");
    assert!(
        app.app()
            .sessions
            .current(&before.cookie)
            .await
            .unwrap()
            .is_none()
    );
    let res = app
        .browse(Some(&browser), &format!("/authorize/resume?auth={handle}"))
        .await;
    assert_eq!(res.status(), 200);
    let html = app
        .consent(&browser, &res.text().await.unwrap(), true)
        .await
        .text()
        .await
        .unwrap();
    // form_post: an auto-submitting form to the redirect URI, with the code.
    assert!(html.contains(&format!("action=\"{CALLBACK}\"")), "{html}");
    let code = crate::rp::hidden(&html, "code");
    assert_eq!(crate::rp::hidden(&html, "iss"), app.base);
    assert_eq!(app.exchange(&rp, &code, &verifier).await.status(), 200);
    // The handle was used: it cannot complete a second time.
    let res = app
        .browse(Some(&browser), &format!("/authorize/resume?auth={handle}"))
        .await;
    assert_eq!(res.status(), 400);
}

async fn consent_denied_returns_access_denied(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Hana", "hana@example.eu").await;
    let (q, _) = app.auth_query(&rp, "openid", "");
    let html = app
        .browse(Some(&browser), &format!("/authorize?{q}"))
        .await
        .text()
        .await
        .unwrap();
    // A forged form (wrong csrf) does nothing.
    let auth = crate::rp::hidden(&html, "auth");
    let res = app
        .browse_post(
            Some(&browser),
            "/consent",
            &[("auth", &auth), ("csrf", "forged"), ("decision", "allow")],
        )
        .await;
    assert_eq!(res.status(), 400);
    let params = redirect_params(&app.consent(&browser, &html, false).await);
    assert_eq!(param(&params, "error").as_deref(), Some("access_denied"));
    assert_eq!(param(&params, "state").as_deref(), Some("st-123"));
}

/// Many relying parties rotate refresh tokens at once: every rotation must
/// succeed (on SQLite a transaction that reads and then writes must take the
/// write lock first, or it fails when another writer commits meanwhile).
async fn concurrent_refresh_rotations_all_succeed(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let mut chains = Vec::new();
    for i in 0..12 {
        let browser = app
            .sign_in(&format!("Citizen {i}"), &format!("c{i}@example.eu"))
            .await;
        let tokens = app.tokens_for(&rp, &browser, "openid offline_access").await;
        chains.push(tokens["refresh_token"].as_str().unwrap().to_owned());
    }
    let app = std::sync::Arc::new(app);
    let mut tasks = Vec::new();
    for mut token in chains {
        let (app, rp) = (app.clone(), rp.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                let res = app
                    .http
                    .post(app.url("/token"))
                    .basic_auth(&rp.client_id, rp.secret.as_deref())
                    .form(&[("grant_type", "refresh_token"), ("refresh_token", &token)])
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let body: Value = res.json().await.unwrap();
                assert_eq!(status, 200, "{body}");
                token = body["refresh_token"].as_str().unwrap().to_owned();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

on_both_stacks!(
    concurrent_refresh_rotations_all_succeed,
    a_relying_party_library_signs_a_citizen_in_refreshes_and_revokes,
    consent_is_remembered_and_sso_needs_no_new_sign_in,
    a_code_is_single_use_and_its_reuse_revokes_the_tokens,
    code_exchange_refuses_a_wrong_verifier_client_or_redirect,
    authorization_errors_go_to_the_client_only_when_it_is_verified,
    prompt_none_never_shows_a_page,
    without_a_session_the_request_waits_at_the_sign_in_page_and_resumes,
    consent_denied_returns_access_denied,
);

#[tokio::test]
async fn a_client_gets_id_tokens_in_the_algorithm_it_registered() {
    let app = TestApp::spawn(Stack::Embedded).await.unwrap();
    let browser = app.sign_in("Ida", "ida@example.eu").await;
    for alg in ["ES256", "PS256", "EdDSA", "RS256"] {
        let rp = app
            .portal(json!({"id_token_signed_response_alg": alg}))
            .await;
        let tokens = app.tokens_for(&rp, &browser, "openid").await;
        let id_token = tokens["id_token"].as_str().unwrap();
        assert_eq!(jwt_header(id_token)["alg"], alg);
        let (_, claims) = app.app().keys.verify(id_token).unwrap();
        assert_eq!(claims["aud"], rp.client_id.as_str());
        let expected = civitas::keys::Alg::parse(alg)
            .unwrap()
            .left_half_hash(tokens["access_token"].as_str().unwrap().as_bytes());
        assert_eq!(claims["at_hash"], expected.as_str());
    }
}

async fn the_remaining_parameters_and_client_kinds_behave_as_specified(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Pia", "pia@example.eu").await;
    let first = app.tokens_for(&rp, &browser, "openid").await;

    // POST to the authorization endpoint works like GET (OIDC Core §3.1.2.1).
    let (q, _) = app.auth_query(&rp, "openid", "");
    let res = app
        .http
        .post(app.url("/authorize"))
        .header("cookie", browser.header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(q)
        .send()
        .await
        .unwrap();
    assert!(param(&redirect_params(&res), "code").is_some());

    // prompt=select_account and prompt=create go to the sign-in page; create says so.
    for (prompt, create) in [
        ("select_account", false),
        ("create", true),
        ("login", false),
    ] {
        let (q, _) = app.auth_query(
            &rp,
            "openid",
            &format!("&prompt={prompt}&login_hint=pia%40example.eu"),
        );
        let res = app.browse(Some(&browser), &format!("/authorize?{q}")).await;
        assert_eq!(res.status(), 303, "{prompt}");
        let location = res.headers()["location"].to_str().unwrap();
        assert!(
            location.starts_with("/signin?auth="),
            "{prompt}: {location}"
        );
        assert_eq!(
            location.ends_with("&create=1"),
            create,
            "{prompt}: {location}"
        );
    }

    // id_token_hint naming the signed-in citizen: silent; naming someone else: login_required.
    let hint = first["id_token"].as_str().unwrap();
    let (q, _) = app.auth_query(&rp, "openid", &format!("&prompt=none&id_token_hint={hint}"));
    assert!(
        param(
            &redirect_params(&app.browse(Some(&browser), &format!("/authorize?{q}")).await),
            "code"
        )
        .is_some()
    );
    let stranger = app.sign_in("Quinn", "quinn@example.eu").await;
    let params = redirect_params(
        &app.browse(Some(&stranger), &format!("/authorize?{q}"))
            .await,
    );
    assert_eq!(param(&params, "error").as_deref(), Some("login_required"));
    // A hint issued to another client is refused.
    let other = app.portal(json!({})).await;
    let (q, _) = app.auth_query(&other, "openid", &format!("&id_token_hint={hint}"));
    let params = redirect_params(&app.browse(Some(&browser), &format!("/authorize?{q}")).await);
    assert_eq!(param(&params, "error").as_deref(), Some("invalid_request"));
}

async fn a_public_client_uses_pkce_alone_and_gets_no_secret_based_access(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let rp = app
        .portal(json!({"token_endpoint_auth_method": "none", "application_type": "native"}))
        .await;
    assert!(rp.secret.is_none());
    let browser = app.sign_in("Rui", "rui@example.eu").await;
    let (q, verifier) = app.auth_query(&rp, "openid offline_access", "");
    let code = param(&app.front_channel(&browser, &q).await, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
        ("code_verifier", verifier.as_str()),
        ("client_id", rp.client_id.as_str()),
    ];
    let res = app
        .http
        .post(app.url("/token"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    // A refresh by the public client, and a refresh with a secret it does not have.
    let rt = body["refresh_token"].as_str().unwrap();
    let res = app
        .http
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", rp.client_id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app
        .http
        .post(app.url("/token"))
        .basic_auth(&rp.client_id, Some("guess"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    // A public client cannot introspect.
    let res = app
        .http
        .post(app.url("/introspect"))
        .form(&[("token", rt), ("client_id", rp.client_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

on_both_stacks!(
    the_remaining_parameters_and_client_kinds_behave_as_specified,
    a_public_client_uses_pkce_alone_and_gets_no_secret_based_access,
);

#[tokio::test]
async fn first_party_and_public_subject_clients_are_operator_decisions() {
    use civitas::clients::{MetadataRequest, OperatorOptions, SubjectType};
    let app = TestApp::spawn(Stack::Embedded).await.unwrap();
    let meta: MetadataRequest =
        serde_json::from_value(json!({"redirect_uris": [CALLBACK], "scope": "openid profile"}))
            .unwrap();
    let issued = app
        .app()
        .clients
        .register(
            meta.validate().unwrap(),
            OperatorOptions {
                first_party: true,
                subject_type: SubjectType::Public,
                registration_token: false,
                admin: false,
            },
            &civitas::audit::Actor::Operator,
        )
        .await
        .unwrap();
    let rp = crate::rp::Rp {
        client_id: issued.client.client_id.to_string(),
        secret: issued.client_secret.map(|s| s.expose().to_owned()),
        registration: Value::Null,
    };
    let browser = app.sign_in("Sam", "sam@example.eu").await;
    let (q, _) = app.auth_query(&rp, "openid profile", "");
    let res = app.browse(Some(&browser), &format!("/authorize?{q}")).await;
    assert!(
        param(&redirect_params(&res), "code").is_some(),
        "first-party: no consent page"
    );
    let tokens = app.tokens_for(&rp, &browser, "openid").await;
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["sub"],
        browser.account.id.as_str(),
        "public subject"
    );
}

#[tokio::test]
async fn refresh_tokens_expire_when_idle_and_at_the_family_s_absolute_end() {
    use civitas::clock::{ManualClock, UnixTime};
    let env = crate::helpers::TestEnv::new(Stack::Embedded).await.unwrap();
    let clock = ManualClock::new(UnixTime(1_900_000_000));
    let app = env
        .spawn_with(
            std::sync::Arc::new(clock.clone()),
            "[tokens]\nrefresh_token_idle_ttl = \"1h\"\nrefresh_token_absolute_ttl = \"3h\"\n",
        )
        .await;
    let rp = app.portal(json!({})).await;
    let browser = app.sign_in("Tia", "tia@example.eu").await;
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
    // Idle: unused for more than an hour.
    let tokens = app.tokens_for(&rp, &browser, "openid offline_access").await;
    clock.advance(3_601);
    let res = refresh(tokens["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(res.status(), 400, "idle too long");
    // Sliding: used every 50 minutes it lives on, but never past 3 hours.
    let browser = app.sign_in("Tia again", "tia@example.eu").await;
    let tokens = app.tokens_for(&rp, &browser, "openid offline_access").await;
    let mut rt = tokens["refresh_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        clock.advance(50 * 60);
        let res = refresh(rt.clone()).await;
        assert_eq!(res.status(), 200);
        rt = res.json::<Value>().await.unwrap()["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    clock.advance(50 * 60);
    assert_eq!(refresh(rt).await.status(), 400, "the family's absolute end");
}
