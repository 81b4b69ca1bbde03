//! End to end in real headless Chromium with the DevTools virtual
//! authenticator (CTAP2, internal transport, resident keys, user
//! verification): a relying party signs a new citizen in, the citizen signs
//! out and back in without a username, and a second relying party gets SSO.
//!
//! Chromium comes from Debian's package (`/usr/bin/chromium`). Outside CI the
//! test skips with a printed reason when it is missing; with `CI=true` it fails.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::web_authn::{
    AddVirtualAuthenticatorParams, AuthenticatorProtocol, AuthenticatorTransport, Ctap2Version,
    EnableParams, VirtualAuthenticatorOptions,
};
use chromiumoxide::page::Page;
use futures::StreamExt as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope,
};
use serde_json::{Value, json};

use crate::helpers::{Stack, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";

pub(crate) fn chromium_available() -> bool {
    if std::path::Path::new(CHROMIUM).exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true and Chromium is not installed at {CHROMIUM}: .ci/run installs Debian's chromium"
        );
    }
    eprintln!(
        "SKIPPED: no Chromium at {CHROMIUM} (apt-get install chromium; CI=true makes this a failure)"
    );
    false
}

/// What a relying party in the test remembers.
#[derive(Default)]
struct RpState {
    pending: Option<(PkceCodeVerifier, Nonce, CsrfToken)>,
    signed_in: Vec<Value>,
}

/// A relying party: a small web server whose callback exchanges the code
/// and validates the ID token with the `openidconnect` crate.
struct Rp {
    client: openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    state: Arc<Mutex<RpState>>,
}

impl Rp {
    /// A relying party named `name` whose callback is on `host` (its sector).
    async fn start(app: &TestApp, name: &str, host: &str) -> Rp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let callback = format!(
            "http://{host}:{}/callback",
            listener.local_addr().unwrap().port()
        );
        let reg = app
            .register_ok(&json!({"client_name": name, "redirect_uris": [callback], "scope": "openid profile email"}))
            .await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let metadata =
            CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http)
                .await
                .unwrap();
        let client = CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(reg["client_id"].as_str().unwrap().to_owned()),
            Some(ClientSecret::new(
                reg["client_secret"].as_str().unwrap().to_owned(),
            )),
        )
        .set_redirect_uri(RedirectUrl::new(callback).unwrap());
        let state = Arc::new(Mutex::new(RpState::default()));
        let (c, s) = (client.clone(), state.clone());
        let router = axum::Router::new().route(
            "/callback",
            axum::routing::get(move |axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>| {
                let (client, state) = (c.clone(), s.clone());
                async move {
                    let (verifier, nonce, csrf) = state.lock().unwrap().pending.take().expect("a pending request");
                    assert_eq!(q.get("state"), Some(csrf.secret()), "state round-trips");
                    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
                    let tokens = client
                        .exchange_code(AuthorizationCode::new(q["code"].clone()))
                        .unwrap()
                        .set_pkce_verifier(verifier)
                        .request_async(&http)
                        .await
                        .expect("code exchange");
                    let id_token = openidconnect::TokenResponse::id_token(&tokens).expect("an ID token");
                    let claims = id_token.claims(&client.id_token_verifier(), &nonce).expect("a valid ID token");
                    let raw = crate::rp::jwt_claims(&id_token.to_string());
                    assert_eq!(claims.subject().as_str(), raw["sub"].as_str().unwrap());
                    state.lock().unwrap().signed_in.push(raw);
                    axum::response::Html("<!doctype html><html lang=\"en\"><title>RP</title><h1>Signed in</h1></html>")
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, router).await });
        Rp { client, state }
    }

    /// The authorization URL of a new request.
    fn begin(&self) -> String {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, csrf, nonce) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("profile".into()))
            .add_scope(Scope::new("email".into()))
            .set_pkce_challenge(challenge)
            .url();
        self.state.lock().unwrap().pending = Some((verifier, nonce, csrf));
        url.to_string()
    }

    fn sign_ins(&self) -> Vec<Value> {
        self.state.lock().unwrap().signed_in.clone()
    }
}

async fn current_url(page: &Page) -> String {
    page.url().await.unwrap().unwrap_or_default()
}

pub(crate) async fn wait_for_url(page: &Page, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let url = current_url(page).await;
        if pred(&url) {
            // Let the page finish loading.
            tokio::time::sleep(Duration::from_millis(300)).await;
            return url;
        }
        if tokio::time::Instant::now() > deadline {
            let status = page
                .evaluate("document.getElementById('status') ? document.getElementById('status').textContent : document.title")
                .await
                .ok()
                .and_then(|v| v.into_value::<String>().ok())
                .unwrap_or_default();
            panic!("timed out waiting for {what}; at {url}; page says: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) async fn click(page: &Page, selector: &str) {
    page.find_element(selector)
        .await
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .await
        .unwrap();
}

pub(crate) async fn type_into(page: &Page, selector: &str, text: &str) {
    page.find_element(selector)
        .await
        .unwrap()
        .click()
        .await
        .unwrap()
        .type_str(text)
        .await
        .unwrap();
}

/// Checks that a page can be used with a keyboard and a screen reader: a
/// language, one main heading, a label for every visible field, a name for
/// every button and link, no positive tabindex (natural focus order).
pub(crate) async fn accessibility_problems(page: &Page) -> Vec<String> {
    let script = r#"(() => {
        const problems = [];
        if (!document.documentElement.lang) problems.push("no lang on <html>");
        const h1 = document.querySelectorAll("h1");
        if (h1.length !== 1) problems.push(`${h1.length} h1 headings`);
        for (const el of document.querySelectorAll("input, select, textarea")) {
            if (el.type === "hidden") continue;
            if (!el.labels || el.labels.length === 0) problems.push(`field ${el.name || el.id} has no label`);
        }
        for (const el of document.querySelectorAll("button, a")) {
            if (!el.textContent.trim() && !el.getAttribute("aria-label")) problems.push(`${el.tagName} without a name`);
        }
        for (const el of document.querySelectorAll("[tabindex]")) {
            if (parseInt(el.getAttribute("tabindex"), 10) > 0) problems.push("positive tabindex");
        }
        const focusable = [...document.querySelectorAll("a[href], button, input:not([type=hidden])")];
        if (focusable.length === 0) problems.push("nothing to focus");
        return problems;
    })()"#;
    page.evaluate(script)
        .await
        .unwrap()
        .into_value::<Vec<String>>()
        .unwrap()
}

/// Headless Chromium with one page that has a virtual authenticator (CTAP2,
/// internal transport, resident keys, user verification).
pub(crate) async fn launch() -> (
    Browser,
    Page,
    tokio::task::JoinHandle<()>,
    tempfile::TempDir,
) {
    let profile = tempfile::tempdir().unwrap();
    let config = BrowserConfig::builder()
        .chrome_executable(CHROMIUM)
        .no_sandbox()
        .new_headless_mode()
        .user_data_dir(profile.path())
        .args([
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let (browser, mut handler) = Browser::launch(config).await.expect("launch Chromium");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser.new_page("about:blank").await.unwrap();
    page.execute(EnableParams::default()).await.unwrap();
    let authenticator = VirtualAuthenticatorOptions::builder()
        .protocol(AuthenticatorProtocol::Ctap2)
        .ctap2_version(Ctap2Version::Ctap21)
        .transport(AuthenticatorTransport::Internal)
        .has_resident_key(true)
        .has_user_verification(true)
        .is_user_verified(true)
        .automatic_presence_simulation(true)
        .build()
        .unwrap();
    page.execute(AddVirtualAuthenticatorParams::new(authenticator))
        .await
        .unwrap();

    (browser, page, events, profile)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_goes_from_nothing_to_signed_in_at_two_services_with_a_passkey_in_a_real_browser()
{
    if !chromium_available() {
        return;
    }
    let app = TestApp::spawn(Stack::Embedded).await.unwrap();
    let portal = Rp::start(&app, "Permit portal", "localhost").await;
    // Another agency, another sector: its redirect URI is on another host.
    let payments = Rp::start(&app, "Payments", "127.0.0.1").await;

    let (mut browser, page, events, _profile) = launch().await;

    // 1. The portal sends the citizen to Civitas: the sign-in page.
    page.goto(portal.begin()).await.unwrap();
    wait_for_url(&page, "the sign-in page", |u| u.contains("/signin?auth=")).await;
    assert_eq!(
        accessibility_problems(&page).await,
        Vec::<String>::new(),
        "sign-in page"
    );

    // 2. A new account with a passkey.
    click(&page, "[data-testid=create-account]").await;
    wait_for_url(&page, "the account form", |u| u.contains("/signin/create")).await;
    assert_eq!(
        accessibility_problems(&page).await,
        Vec::<String>::new(),
        "account creation page"
    );
    type_into(&page, "input[name=display_name]", "Ilse Citizen").await;
    type_into(&page, "input[name=email]", "ilse@example.eu").await;
    click(&page, "[data-testid=passkey-register]").await;

    // 3. Straight on to consent, then back at the portal with tokens.
    wait_for_url(&page, "the consent page", |u| {
        u.contains("/authorize/resume")
    })
    .await;
    click(&page, "[data-testid=consent-allow]").await;
    wait_for_url(&page, "the portal's callback", |u| u.contains("/callback?")).await;
    let first = portal.sign_ins();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["amr"], json!(["user", "mfa", "hwk"]));

    // 4. The account page, then sign out.
    page.goto(app.url("/account")).await.unwrap();
    wait_for_url(&page, "the account page", |u| u.ends_with("/account")).await;
    let html = page.content().await.unwrap();
    assert!(
        html.contains("Ilse Citizen") && html.contains("Permit portal"),
        "{html}"
    );
    assert_eq!(
        accessibility_problems(&page).await,
        Vec::<String>::new(),
        "account page"
    );
    click(&page, "[data-testid=signout]").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(page.content().await.unwrap().contains("You are signed out"));

    // 5. Back at the portal: sign in again, no username, consent remembered.
    page.goto(portal.begin()).await.unwrap();
    wait_for_url(&page, "the sign-in page", |u| u.contains("/signin?auth=")).await;
    // Chromium's virtual authenticator answers the page's passkey-autofill
    // (conditional mediation) request by itself; if it has not, the citizen
    // presses the button.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    if current_url(&page).await.contains("/signin?auth=") {
        click(&page, "[data-testid=passkey-signin]").await;
    }
    wait_for_url(&page, "the portal's callback", |u| u.contains("/callback?")).await;
    let again = portal.sign_ins();
    assert_eq!(again.len(), 2);
    assert_eq!(again[1]["sub"], first[0]["sub"], "the same citizen");
    assert_ne!(again[1]["sid"], first[0]["sid"], "a new session");

    // 6. A second service: single sign-on, no new ceremony, only its consent.
    page.goto(payments.begin()).await.unwrap();
    let url = wait_for_url(&page, "the consent page", |u| u.contains("/authorize?")).await;
    assert!(!url.contains("/signin"));
    click(&page, "[data-testid=consent-allow]").await;
    wait_for_url(&page, "the payments callback", |u| u.contains("/callback?")).await;
    let sso = payments.sign_ins();
    assert_eq!(sso.len(), 1);
    assert_eq!(sso[0]["sid"], again[1]["sid"], "the same session");
    assert_ne!(
        sso[0]["sub"], again[1]["sub"],
        "pairwise subjects: another sector, another sub"
    );

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    events.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_enrolls_an_eid_in_the_browser_to_reach_a_service_that_requires_substantial() {
    if !chromium_available() {
        return;
    }
    let (app, _sim) = crate::eid::with_simulator(Stack::Embedded).await.unwrap();
    let portal = Rp::start(&app, "Tax portal", "localhost").await;
    let (mut browser, page, events, _profile) = launch().await;

    // The service demands substantial (acr_values); the citizen has nothing yet.
    let url = format!("{}&acr_values=substantial", portal.begin());
    page.goto(url).await.unwrap();
    wait_for_url(&page, "the sign-in page", |u| u.contains("/signin?auth=")).await;
    click(&page, "[data-testid=create-account]").await;
    wait_for_url(&page, "the account form", |u| u.contains("/signin/create")).await;
    type_into(&page, "input[name=display_name]", "Mari Maasikas").await;
    type_into(&page, "input[name=email]", "mari@example.eu").await;
    click(&page, "[data-testid=passkey-register]").await;

    // A new account is low: the step-up page offers the eID.
    wait_for_url(&page, "the step-up page", |u| {
        u.contains("/authorize/resume")
    })
    .await;
    assert!(
        page.content()
            .await
            .unwrap()
            .contains("needs a higher level of assurance")
    );
    click(&page, "[data-testid=step-up-eid-sim]").await;
    wait_for_url(&page, "the eID simulator", |u| {
        u.contains("/authorize?") && !u.contains(&app.base)
    })
    .await;
    click(&page, "[data-testid=eid-approve]").await;

    // Back at Civitas, proven at substantial: consent, then the service.
    wait_for_url(&page, "the consent page", |u| {
        u.starts_with(&app.base) && u.contains("/authorize/resume")
    })
    .await;
    click(&page, "[data-testid=consent-allow]").await;
    wait_for_url(&page, "the portal's callback", |u| u.contains("/callback?")).await;
    let signed = portal.sign_ins();
    assert_eq!(signed.len(), 1);
    assert_eq!(signed[0]["acr"], "http://eidas.europa.eu/LoA/substantial");

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    events.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_board_member_chooses_her_company_in_the_browser() {
    if !chromium_available() {
        return;
    }
    let (app, _sim) = crate::eid::with_simulator(Stack::Embedded).await.unwrap();
    let entries: Vec<civitas::mandates::register::RegisterEntry> = serde_json::from_value(json!([
        {"country": "EE", "code": "12345678", "name": "Acme OÜ",
         "representatives": [{"country": "EE", "person_identifier": "EE38001085718", "name": "Mari Maasikas"}]}
    ]))
    .unwrap();
    civitas::mandates::register::import(
        &app.app().db,
        &app.app().eid_keys,
        &entries,
        civitas::audit::Actor::Operator,
        civitas::clock::Clock::now(app.app().clock.as_ref()),
    )
    .await
    .unwrap();
    let portal = Rp::start(&app, "Tax portal", "localhost").await;
    let (mut browser, page, events, _profile) = launch().await;

    let details = form_urlencoded::byte_serialize(
        json!([{"type": "urn:civitas:representation", "powers": ["tax.file"]}])
            .to_string()
            .as_bytes(),
    )
    .collect::<String>();
    page.goto(format!(
        "{}&acr_values=substantial&authorization_details={details}",
        portal.begin()
    ))
    .await
    .unwrap();
    wait_for_url(&page, "the sign-in page", |u| u.contains("/signin?auth=")).await;
    click(&page, "[data-testid=create-account]").await;
    wait_for_url(&page, "the account form", |u| u.contains("/signin/create")).await;
    type_into(&page, "input[name=display_name]", "Mari Maasikas").await;
    type_into(&page, "input[name=email]", "mari@example.eu").await;
    click(&page, "[data-testid=passkey-register]").await;
    wait_for_url(&page, "the step-up page", |u| {
        u.contains("/authorize/resume")
    })
    .await;
    click(&page, "[data-testid=step-up-eid-sim]").await;
    wait_for_url(&page, "the eID simulator", |u| {
        u.contains("/authorize?") && !u.contains(&app.base)
    })
    .await;
    click(&page, "[data-testid=eid-approve]").await;

    // The chooser: myself, or Acme OÜ, where she sits on the board.
    wait_for_url(&page, "the chooser", |u| {
        u.starts_with(&app.base) && u.contains("/authorize/resume")
    })
    .await;
    let html = page.content().await.unwrap();
    assert!(
        html.contains("Whom do you act for") && html.contains("Acme OÜ"),
        "{html}"
    );
    assert_eq!(
        accessibility_problems(&page).await,
        Vec::<String>::new(),
        "chooser page"
    );
    click(&page, "[data-testid=represent-org-1]").await;
    click(&page, "[data-testid=represent-continue]").await;
    wait_for_url(&page, "the consent page", |u| {
        u.ends_with("/authorize/represent")
    })
    .await;
    click(&page, "[data-testid=consent-allow]").await;
    wait_for_url(&page, "the portal's callback", |u| u.contains("/callback?")).await;
    let signed = portal.sign_ins();
    assert_eq!(signed.len(), 1);
    assert_eq!(
        signed[0]["representation"]["organization"]["name"],
        "Acme OÜ"
    );
    assert_eq!(signed[0]["representation"]["powers"], json!(["tax.file"]));

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    events.abort();
}
