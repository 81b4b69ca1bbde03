//! eID in real headless Chromium with the upstream on another site than
//! Civitas, as every real national eID provider is: the simulator's issuer
//! is `http://127.0.0.1:PORT`, Civitas's `http://localhost:PORT` (a port
//! does not make a site; another host does). The browser then applies
//! SameSite to the upstream's redirect back, which a scripted client never
//! does: enrollment from the account page, step-up on the way to a
//! service, and recovery with the eID in a browser that has no passkey.

use crate::browser_e2e::{
    Rp, accessibility_problems, chromium_available, click, launch, type_into, wait_for_url,
};
use crate::helpers::Stack;

/// The simulator's page, reached from Civitas on another site.
async fn at_the_simulator(page: &chromiumoxide::page::Page) {
    wait_for_url(page, "the eID simulator, on another site", |u| {
        u.starts_with("http://127.0.0.1:") && u.contains("/authorize?")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_citizen_enrolls_an_eid_from_the_account_page_with_the_upstream_on_another_site() {
    if !chromium_available() {
        return;
    }
    let (app, _sim) = crate::eid::with_simulator(Stack::Embedded).await.unwrap();
    let (mut browser, page, events, _profile) = launch().await;

    page.goto(app.url("/signin/create")).await.unwrap();
    wait_for_url(&page, "the account form", |u| u.contains("/signin/create")).await;
    type_into(&page, "input[name=display_name]", "Mari Maasikas").await;
    type_into(&page, "input[name=email]", "mari@example.eu").await;
    click(&page, "[data-testid=passkey-register]").await;
    wait_for_url(&page, "the account page", |u| u.ends_with("/account")).await;

    // Cancelled at the upstream: a page that says so and leads back.
    click(&page, "[data-testid=eid-enroll-sim]").await;
    at_the_simulator(&page).await;
    click(&page, "[data-testid=eid-deny]").await;
    wait_for_url(&page, "Civitas's eID error page", |u| {
        u.starts_with(&app.base) && u.contains("/eid/callback")
    })
    .await;
    let html = page.content().await.unwrap();
    assert!(html.contains("cancelled or refused"), "{html}");
    assert_eq!(
        accessibility_problems(&page).await,
        Vec::<String>::new(),
        "eID error page"
    );
    click(&page, "[data-testid=eid-back]").await;
    wait_for_url(&page, "the account page again", |u| u.ends_with("/account")).await;

    // Approved at the upstream: bound, back on the account page.
    click(&page, "[data-testid=eid-enroll-sim]").await;
    at_the_simulator(&page).await;
    click(&page, "[data-testid=eid-approve]").await;
    wait_for_url(&page, "the account page with the binding", |u| {
        u.starts_with(&app.base) && u.contains("/account?notice=eid-bound")
    })
    .await;
    let html = page.content().await.unwrap();
    assert!(
        html.contains("Proven with") && html.contains("substantial"),
        "{html}"
    );
    let account = civitas::eid::proofing_level(&app.app().db, &only_account(&app).await)
        .await
        .unwrap();
    assert_eq!(account, Some(civitas::assurance::Level::Substantial));

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
    wait_for_url(&page, "the eID simulator, on another site", |u| {
        u.starts_with("http://127.0.0.1:") && u.contains("/authorize?")
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
async fn a_citizen_who_lost_her_passkey_recovers_with_her_eid_in_another_browser() {
    if !chromium_available() {
        return;
    }
    let (app, _sim) = crate::eid::with_simulator(Stack::Embedded).await.unwrap();

    // Her account and passkey, in the browser she later loses.
    let (mut lost, page, events, _profile) = launch().await;
    page.goto(app.url("/signin/create")).await.unwrap();
    wait_for_url(&page, "the account form", |u| u.contains("/signin/create")).await;
    type_into(&page, "input[name=display_name]", "Mari Maasikas").await;
    type_into(&page, "input[name=email]", "mari@example.eu").await;
    click(&page, "[data-testid=passkey-register]").await;
    wait_for_url(&page, "the account page", |u| u.ends_with("/account")).await;
    lost.close().await.unwrap();
    let _ = lost.wait().await;
    events.abort();
    // Proven earlier with the simulator's identity "mari".
    let account = only_account(&app).await;
    civitas::eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &account,
        &civitas::eid::ProvenIdentity {
            connector: "sim".into(),
            scheme: "simulated-eid".into(),
            country: "EE".into(),
            person_identifier: "EE38001085718".into(),
            given_name: Some("Mari".into()),
            family_name: Some("Maasikas".into()),
            birthdate: Some("1980-01-08".into()),
            level: civitas::assurance::Level::Substantial,
        },
        civitas::clock::Clock::now(app.app().clock.as_ref()),
    )
    .await
    .unwrap();

    // A new browser with a new authenticator: recovery through the eID.
    let (mut browser, page, events, _profile) = launch().await;
    page.goto(app.url("/recover")).await.unwrap();
    wait_for_url(&page, "the recovery page", |u| u.ends_with("/recover")).await;
    click(&page, "[data-testid=eid-recover-sim]").await;
    at_the_simulator(&page).await;
    click(&page, "[data-testid=eid-approve]").await;
    wait_for_url(&page, "the account page, restricted", |u| {
        u.starts_with(&app.base) && u.ends_with("/account")
    })
    .await;
    click(&page, "[data-testid=passkey-add]").await;
    wait_for_url(&page, "the account page, recovered", |u| {
        u.contains("/account?notice=recovered")
    })
    .await;
    let passkeys = civitas::passkeys::passkey_count(&app.app().db, &account)
        .await
        .unwrap();
    assert_eq!(passkeys, 2, "the new browser's passkey was added");
    assert!(page.content().await.unwrap().contains("Mari Maasikas"));

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    events.abort();
}

/// The one account of a test instance.
pub(crate) async fn only_account(app: &crate::helpers::TestApp) -> civitas::accounts::AccountId {
    use sqlx::Row as _;
    let row = sqlx::query("SELECT account_id FROM accounts")
        .fetch_one(app.app().db.pool())
        .await
        .unwrap();
    civitas::accounts::AccountId::new(row.get::<String, _>("account_id"))
}
