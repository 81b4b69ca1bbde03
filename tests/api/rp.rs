//! A relying party for the tests: registers clients, signs a citizen in
//! through the test-only authenticator (the library's authenticator
//! interface, never an HTTP route), and walks the authorization flow.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use civitas::accounts::Account;
use civitas::sessions::{Authentication, amr};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::TestApp;

pub const CALLBACK: &str = "https://portal.agency.example/callback";

/// A registered client.
#[derive(Clone, Debug)]
pub struct Rp {
    pub client_id: String,
    pub secret: Option<String>,
    #[allow(dead_code)]
    pub registration: Value,
}

/// A signed-in browser: the account and its session cookie.
pub struct Browser {
    pub account: Account,
    pub cookie: String,
    pub sid: String,
}

impl Browser {
    pub fn header(&self) -> String {
        format!("civitas_session={}", self.cookie)
    }
}

pub fn pkce() -> (String, String) {
    let verifier = civitas::secrets::random_token(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

impl TestApp {
    /// Registers a confidential portal client with `extra` metadata merged in.
    pub async fn portal(&self, extra: Value) -> Rp {
        let mut meta = json!({
            "client_name": "Permit portal",
            "redirect_uris": [CALLBACK],
            "post_logout_redirect_uris": ["https://portal.agency.example/signed-out"],
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile email offline_access",
        });
        for (k, v) in extra.as_object().unwrap() {
            meta[k] = v.clone();
        }
        let reg = self.register_ok(&meta).await;
        Rp {
            client_id: reg["client_id"].as_str().unwrap().to_owned(),
            secret: reg["client_secret"].as_str().map(str::to_owned),
            registration: reg,
        }
    }

    /// Creates a citizen and signs them in through the authenticator interface.
    pub async fn sign_in(&self, name: &str, email: &str) -> Browser {
        let account = self.app().accounts.create(name, Some(email)).await.unwrap();
        self.sign_in_as(&account, None).await
    }

    /// Signs an existing account in, replacing `previous` if given.
    pub async fn sign_in_as(&self, account: &Account, previous: Option<&Browser>) -> Browser {
        let (session, cookie) = self
            .app()
            .sessions
            .establish(
                Authentication {
                    account_id: account.id.clone(),
                    amr: vec![amr::USER.into(), amr::MFA.into(), amr::HWK.into()],
                    acr: "http://eidas.europa.eu/LoA/low".into(),
                    credential: None,
                },
                previous.map(|b| b.cookie.as_str()),
            )
            .await
            .unwrap();
        Browser {
            account: account.clone(),
            cookie: cookie.expose().to_owned(),
            sid: session.sid,
        }
    }

    /// GET `path_and_query` as `browser` (no redirects followed).
    pub async fn browse(
        &self,
        browser: Option<&Browser>,
        path_and_query: &str,
    ) -> reqwest::Response {
        let mut req = self.http.get(self.url(path_and_query));
        if let Some(b) = browser {
            req = req.header("cookie", b.header());
        }
        req.send().await.unwrap()
    }

    /// POST a form as `browser`.
    pub async fn browse_post(
        &self,
        browser: Option<&Browser>,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut req = self.http.post(self.url(path)).form(form);
        if let Some(b) = browser {
            req = req.header("cookie", b.header());
        }
        req.send().await.unwrap()
    }

    /// Answers a consent page (`html`) with allow or deny.
    pub async fn consent(&self, browser: &Browser, html: &str, allow: bool) -> reqwest::Response {
        let auth = hidden(html, "auth");
        let csrf = hidden(html, "csrf");
        self.browse_post(
            Some(browser),
            "/consent",
            &[
                ("auth", &auth),
                ("csrf", &csrf),
                ("decision", if allow { "allow" } else { "deny" }),
            ],
        )
        .await
    }

    /// Runs the front channel: authorize as `browser`, consent if asked,
    /// and return the parameters of the redirect to the client.
    pub async fn front_channel(&self, browser: &Browser, query: &str) -> Vec<(String, String)> {
        let res = self
            .browse(Some(browser), &format!("/authorize?{query}"))
            .await;
        let res = if res.status() == 200 {
            let html = res.text().await.unwrap();
            assert!(
                html.contains("data-testid=\"consent-allow\""),
                "expected the consent page: {html}"
            );
            self.consent(browser, &html, true).await
        } else {
            res
        };
        redirect_params(&res)
    }

    /// Exchanges a code at the token endpoint with client_secret_basic.
    pub async fn exchange(&self, rp: &Rp, code: &str, verifier: &str) -> reqwest::Response {
        self.exchange_at(rp, CALLBACK, code, verifier).await
    }

    /// [`Self::exchange`] for a code sent to `redirect_uri`.
    pub async fn exchange_at(
        &self,
        rp: &Rp,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
    ) -> reqwest::Response {
        self.http
            .post(self.url("/token"))
            .basic_auth(&rp.client_id, rp.secret.as_deref())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
    }

    /// Authorization query for `rp` with PKCE; returns it and the verifier.
    pub fn auth_query(&self, rp: &Rp, scope: &str, extra: &str) -> (String, String) {
        self.auth_query_at(rp, CALLBACK, scope, extra)
    }

    /// [`Self::auth_query`] with another registered redirect URI.
    pub fn auth_query_at(
        &self,
        rp: &Rp,
        redirect_uri: &str,
        scope: &str,
        extra: &str,
    ) -> (String, String) {
        let (verifier, challenge) = pkce();
        let q = format!(
            "response_type=code&client_id={}&redirect_uri={}&scope={}&state=st-123&nonce=n-456&code_challenge={challenge}&code_challenge_method=S256{extra}",
            rp.client_id,
            urlencode(redirect_uri),
            urlencode(scope),
        );
        (q, verifier)
    }

    /// A complete sign-in at `rp`: returns the token response.
    pub async fn tokens_for(&self, rp: &Rp, browser: &Browser, scope: &str) -> Value {
        self.tokens_at(rp, CALLBACK, browser, scope).await
    }

    /// [`Self::tokens_for`] through another registered redirect URI.
    pub async fn tokens_at(
        &self,
        rp: &Rp,
        redirect_uri: &str,
        browser: &Browser,
        scope: &str,
    ) -> Value {
        let (q, verifier) = self.auth_query_at(rp, redirect_uri, scope, "");
        let params = self.front_channel(browser, &q).await;
        let code = param(&params, "code").unwrap_or_else(|| panic!("no code in {params:?}"));
        let res = self.exchange_at(rp, redirect_uri, &code, &verifier).await;
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }
}

pub fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The value of a hidden input in `html`.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The query parameters of a redirect response's Location.
pub fn redirect_params(res: &reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(
        res.status(),
        303,
        "expected a redirect, got {}",
        res.status()
    );
    let location = res.headers()["location"].to_str().unwrap();
    let url = url::Url::parse(location).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

pub fn param(params: &[(String, String)], name: &str) -> Option<String> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// The claims of a JWT, unverified.
pub fn jwt_claims(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

pub fn jwt_header(token: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}
