//! Driving the `/account/organizations` pages as citizens proven by eID.

use civitas::accounts::AccountId;
use civitas::assurance::Level;
use civitas::eid::{self, ProvenIdentity};
use civitas::mandates::register;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::TestApp;

pub const MARI: &str = "38001085718";
pub const JAAN: &str = "39912310174";
pub const ANNE: &str = "49403136526";

/// An identity proven by the test eID of Estonia, with the identifier in
/// whatever spelling the upstream would return.
pub fn estonian(identifier: &str) -> ProvenIdentity {
    ProvenIdentity {
        connector: "sim".into(),
        scheme: "simulated-eid".into(),
        country: "EE".into(),
        person_identifier: identifier.into(),
        given_name: None,
        family_name: None,
        birthdate: None,
        level: Level::Substantial,
    }
}

/// A citizen with a device-bound passkey, proven by eID as `identifier`
/// (any spelling) at substantial and signed in again, so that the session
/// is at substantial.
pub async fn proven<'a>(
    app: &'a TestApp,
    identifier: &str,
    email: &str,
) -> (Browser<'a>, SoftAuthenticator, AccountId) {
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(app);
    b.create_account(&mut key, email, email, None).await;
    let account = b.account_id().await;
    eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &account,
        &estonian(identifier),
        app.app().clock.now(),
    )
    .await
    .unwrap();
    let (status, _) = b.sign_in(&mut key, None).await;
    assert_eq!(status, 200);
    (b, key, account)
}

/// Imports Acme OÜ with Mari as its board member.
pub async fn acme_with_mari(app: &TestApp) {
    let entries: Vec<register::RegisterEntry> = serde_json::from_value(serde_json::json!([
        {"country": "EE", "code": "12345678", "name": "Acme OÜ",
         "representatives": [{"country": "EE", "person_identifier": MARI, "name": "Mari Maasikas"}]}
    ]))
    .unwrap();
    register::import(
        &app.app().db,
        &app.app().eid_keys,
        &entries,
        civitas::audit::Actor::Operator,
        app.app().clock.now(),
    )
    .await
    .unwrap();
}

/// Posts the page's "Give a mandate" form: `from` a power, to `person` (a
/// country and identifier, or an invitation), optionally delegable and
/// limited to the day `until`.
pub async fn give(
    b: &mut Browser<'_>,
    from: &str,
    powers: &str,
    person: Option<(&str, &str)>,
    may_delegate: bool,
    until: &str,
) -> reqwest::Response {
    b.page("/account/organizations").await;
    let (country, identifier) = person.unwrap_or(("", ""));
    let mut form = vec![
        ("from", from),
        ("powers", powers),
        ("person_country", country),
        ("person_identifier", identifier),
        ("valid_until", until),
    ];
    if may_delegate {
        form.push(("may_delegate", "yes"));
    }
    b.post_form("/account/organizations/grant", &form).await
}

/// `give`, which must succeed: the invitation link, if one was made.
pub async fn given(
    b: &mut Browser<'_>,
    from: &str,
    powers: &str,
    person: Option<(&str, &str)>,
    may_delegate: bool,
) -> Option<String> {
    let res = give(b, from, powers, person, may_delegate, "").await;
    let status = res.status();
    let html = res.text().await.unwrap();
    if person.is_some() {
        assert_eq!(status, 303, "{html}");
        return None;
    }
    assert_eq!(status, 200, "{html}");
    let marker = "data-testid=\"invitation-link\">";
    let start = html.find(marker).expect("an invitation link") + marker.len();
    Some(html[start..].split('<').next().unwrap().to_owned())
}

/// The mandate ids on the citizen's page under `heading`.
pub async fn ids_under(b: &mut Browser<'_>, heading: &str) -> Vec<String> {
    let page = b.page("/account/organizations").await;
    let Some(at) = page.find(heading) else {
        return Vec::new();
    };
    let section = &page[at..];
    let section = &section[..section.find("</section>").unwrap()];
    section
        .split("name=\"mandate_id\" value=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_owned())
        .collect()
}
