//! An invitation mandate accepted in headless Chromium, under the real
//! CSP: the invitation link carries its token in the fragment only.

use civitas::accounts::AccountId;
use civitas::eid;

use crate::helpers::{Stack, TestApp};
use crate::mandate_guarantees::{ANNE, MARI, acme_with_mari, estonian, given, proven, token_of};

/// In a real browser, under the real CSP: the invitation page's script
/// moves the token from the fragment into the form and out of the address
/// bar, and the form accepts the mandate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invitation_link_is_accepted_in_a_real_browser_through_its_fragment() {
    use crate::browser_e2e::{
        accessibility_problems, chromium_available, click, launch, type_into, wait_for_url,
    };
    if !chromium_available() {
        return;
    }
    let app = TestApp::spawn(Stack::Embedded).await.unwrap();
    acme_with_mari(&app).await;
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    let link = given(&mut mari, "statutory:EE:12345678", "tax.file", None, false)
        .await
        .unwrap();
    let token = token_of(&link);

    // Anne creates her account in the browser and proves her identity.
    let (mut browser, page, events, _profile) = launch().await;
    page.goto(app.url("/signin")).await.unwrap();
    click(&page, "[data-testid=create-account]").await;
    wait_for_url(&page, "the account form", |u| u.contains("/signin/create")).await;
    type_into(&page, "input[name=display_name]", "Anne Kask").await;
    type_into(&page, "input[name=email]", "anne@example.eu").await;
    click(&page, "[data-testid=passkey-register]").await;
    wait_for_url(&page, "the account page", |u| u.ends_with("/account")).await;
    let (anne,): (String,) =
        sqlx::query_as("SELECT account_id FROM accounts WHERE display_name = 'Anne Kask'")
            .fetch_one(app.app().db.pool())
            .await
            .unwrap();
    let anne = AccountId::new(anne);
    eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &anne,
        &estonian(ANNE),
        app.app().clock.now(),
    )
    .await
    .unwrap();

    page.goto(link.clone()).await.unwrap();
    wait_for_url(&page, "the invitation page without its fragment", |u| {
        u.ends_with("/account/mandates/invitation")
    })
    .await;
    let filled = page
        .evaluate("document.getElementById('invitation').value")
        .await
        .unwrap()
        .into_value::<String>()
        .unwrap();
    assert_eq!(
        filled, token,
        "the script filled the field from the fragment"
    );
    assert_eq!(
        accessibility_problems(&page).await,
        Vec::<String>::new(),
        "invitation page"
    );
    click(&page, "[data-testid=invitation-accept]").await;
    wait_for_url(&page, "the organizations page", |u| {
        u.ends_with("/account/organizations?notice=accepted")
    })
    .await;
    assert_eq!(app.app().mandates.powers_of(&anne).await.unwrap().len(), 1);

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    events.abort();
}
