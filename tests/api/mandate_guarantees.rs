//! What a mandate guarantees, through the `/account/organizations` pages:
//! a sub-delegation counts only while every mandate above it holds; nobody
//! holds a mandate they granted themselves, through whichever of their
//! accounts; a mandate's last day is the day named. The helpers here drive
//! those pages for the other mandate tests: invitations
//! (`mandate_invitations`) and grants racing revocations (`mandate_races`).

use civitas::accounts::AccountId;
use civitas::assurance::Level;
use civitas::clock::UnixTime;
use civitas::eid::ProvenIdentity;
use civitas::mandates::register;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;

pub const MARI: &str = "38001085718";
pub const JAAN: &str = "39912310174";
pub const ANNE: &str = "49403136526";
pub const PEETER: &str = "37605030299";
pub const ORG: &str = "EE:12345678";

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
    proven_as(app, &estonian(identifier), email).await
}

/// [`proven`] with any proven identity (another scheme, another spelling).
pub async fn proven_as<'a>(
    app: &'a TestApp,
    identity: &ProvenIdentity,
    email: &str,
) -> (Browser<'a>, SoftAuthenticator, AccountId) {
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(app);
    b.create_account(&mut key, email, email, None).await;
    let account = crate::eid::prove_in_session(app, &b, identity).await;
    let (status, _) = b.sign_in(&mut key, None).await;
    assert_eq!(status, 200);
    (b, key, account)
}

/// Imports Acme OÜ with Mari as its board member.
pub async fn acme_with_mari(app: &TestApp) {
    acme_listing(app, &[MARI]).await;
}

/// Imports Acme OÜ with exactly these representatives (bare identifiers).
pub async fn acme_listing(app: &TestApp, representatives: &[&str]) {
    let reps: Vec<_> = representatives
        .iter()
        .map(|id| serde_json::json!({"country": "EE", "person_identifier": id, "name": "Board member"}))
        .collect();
    let entries: Vec<register::RegisterEntry> = serde_json::from_value(serde_json::json!([
        {"country": "EE", "code": "12345678", "name": "Acme OÜ", "representatives": reps}
    ]))
    .unwrap();
    let (db, keys, now) = (&app.app().db, &app.app().eid_keys, app.app().clock.now());
    register::import(db, keys, &entries, civitas::audit::Actor::Operator, now)
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

/// The token of an invitation link (`…/account/mandates/invitation#<token>`).
pub fn token_of(link: &str) -> String {
    let (_, token) = link
        .split_once('#')
        .unwrap_or_else(|| panic!("no fragment in the invitation link {link}"));
    token.to_owned()
}

/// Opens an invitation link as a browser does (the fragment stays in the
/// browser) and submits its form as `invitation.js` fills it: the response
/// to the POST.
pub async fn open_and_accept(b: &mut Browser<'_>, link: &str) -> reqwest::Response {
    let (page_url, token) = link.split_once('#').expect("a fragment");
    let path = &page_url[b.app.base.len()..];
    let html = b.page(path).await;
    assert!(
        html.contains("action=\"/account/mandates/invitation\""),
        "{html}"
    );
    b.post_form("/account/mandates/invitation", &[("invitation", token)])
        .await
}

/// The `Location` of a response, or nothing.
pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// How many mandates are stored.
pub async fn mandate_rows(app: &TestApp) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM mandates")
        .fetch_one(app.app().db.pool())
        .await
        .unwrap()
        .0
}

async fn a_sub_delegation_counts_only_while_every_mandate_above_it_holds(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let db = &app.app().db;
    let m = &app.app().mandates;
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;
    let (mut anne, _ak, anne_id) = proven(&app, ANNE, "anne@example.eu").await;
    let (mut peeter, _pk, peeter_id) = proven(&app, PEETER, "peeter@example.eu").await;

    given(
        &mut mari,
        "statutory:EE:12345678",
        "tax.file payments.pay",
        Some(("EE", JAAN)),
        true,
    )
    .await;
    let to_jaan = ids_under(&mut jaan, "Mandates waiting for you").await;
    jaan.post_form(
        "/account/organizations/accept",
        &[("mandate_id", &to_jaan[0])],
    )
    .await;
    given(
        &mut jaan,
        &to_jaan[0],
        "tax.file",
        Some(("EE", ANNE)),
        false,
    )
    .await;
    let to_anne = ids_under(&mut anne, "Mandates waiting for you").await;
    let res = anne
        .post_form(
            "/account/organizations/accept",
            &[("mandate_id", &to_anne[0])],
        )
        .await;
    assert!(location(&res).ends_with("notice=accepted"));
    let link = given(&mut jaan, &to_jaan[0], "payments.pay", None, false)
        .await
        .unwrap();
    assert_eq!(m.powers_of(&anne_id).await.unwrap().len(), 1);

    // Only the parent row revoked, as a grant racing its parent's
    // revocation leaves it: the child below is an orphan.
    sqlx::query("UPDATE mandates SET revoked_at = $2, revoked_by = $3 WHERE mandate_id = $1")
        .bind(&to_jaan[0])
        .bind(app.app().clock.now().0)
        .bind(jaan_id.as_str())
        .execute(db.pool())
        .await
        .unwrap();
    assert!(
        m.powers_of(&anne_id).await.unwrap().is_empty(),
        "a sub-delegation under a revoked mandate gives no power"
    );
    assert!(
        anne.page("/account/organizations")
            .await
            .contains("You cannot act for any organization")
    );
    let res = open_and_accept(&mut peeter, &link).await;
    assert_eq!(
        res.status(),
        400,
        "nor can one under a revoked mandate be accepted"
    );
    assert!(m.powers_of(&peeter_id).await.unwrap().is_empty());

    // The same child counts again once the parent holds, and not once the
    // parent's validity is over, though the child has no end of its own.
    sqlx::query("UPDATE mandates SET revoked_at = NULL, revoked_by = NULL WHERE mandate_id = $1")
        .bind(&to_jaan[0])
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(m.powers_of(&anne_id).await.unwrap().len(), 1);
    sqlx::query("UPDATE mandates SET valid_until = $2 WHERE mandate_id = $1")
        .bind(&to_jaan[0])
        .bind(app.app().clock.now().0 - 1)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(m.get(&to_anne[0]).await.unwrap().unwrap().valid_until, None);
    assert!(
        m.powers_of(&anne_id).await.unwrap().is_empty(),
        "a sub-delegation under an expired mandate gives no power"
    );
}

on_both_stacks!(a_sub_delegation_counts_only_while_every_mandate_above_it_holds);

async fn nobody_can_grant_a_mandate_to_themselves_on_any_route(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let db = &app.app().db;
    let m = &app.app().mandates;
    let (mut mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;

    // By her own identifier, in any spelling.
    for own in [MARI, "EE38001085718", "EE/EE/38001085718"] {
        let res = give(
            &mut mari,
            "statutory:EE:12345678",
            "tax.file",
            Some(("EE", own)),
            false,
            "",
        )
        .await;
        assert_eq!(res.status(), 400, "a grant to her own identifier {own}");
        assert!(res.text().await.unwrap().contains("yourself"));
    }
    assert_eq!(mandate_rows(&app).await, 0, "nothing stored");

    // By invitation, accepted by her own account.
    let link = given(&mut mari, "statutory:EE:12345678", "tax.file", None, true)
        .await
        .unwrap();
    let res = open_and_accept(&mut mari, &link).await;
    assert_eq!(res.status(), 400, "her own invitation accepted by herself");

    // An addressed mandate to herself, stored before this was refused,
    // cannot be accepted by id.
    let own_hash: (String,) =
        sqlx::query_as("SELECT person_hash FROM eid_bindings WHERE account_id = $1")
            .bind(mari_id.as_str())
            .fetch_one(db.pool())
            .await
            .unwrap();
    let now = app.app().clock.now().0;
    sqlx::query(
        "INSERT INTO mandates (mandate_id, org_id, representative_person, powers, valid_from, may_delegate, \
         granted_by, granted_at, min_level) VALUES ('self-addressed', $1, $2, 'tax.file', $3, 1, $4, $3, 'substantial')",
    )
    .bind(ORG)
    .bind(&own_hash.0)
    .bind(now)
    .bind(mari_id.as_str())
    .execute(db.pool())
    .await
    .unwrap();
    mari.page("/account/organizations").await;
    let res = mari
        .post_form(
            "/account/organizations/accept",
            &[("mandate_id", "self-addressed")],
        )
        .await;
    assert_eq!(res.status(), 400, "a self-addressed mandate accepted by id");
    // And accepted (as an earlier version allowed), it gives no power.
    sqlx::query(
        "UPDATE mandates SET representative_account = granted_by, accepted_at = $1 \
         WHERE mandate_id = 'self-addressed'",
    )
    .bind(now)
    .execute(db.pool())
    .await
    .unwrap();
    assert!(
        m.powers_of(&mari_id)
            .await
            .unwrap()
            .iter()
            .all(|p| p.mandate_ref != "self-addressed"),
        "a self-held mandate counts for nothing"
    );
    sqlx::query("UPDATE mandates SET revoked_at = $1 WHERE mandate_id = 'self-addressed'")
        .bind(now)
        .execute(db.pool())
        .await
        .unwrap();

    // Along a chain: Jaan, holding Mari's mandate, cannot pass it back to
    // Mari, by identifier or by invitation, nor to himself.
    given(
        &mut mari,
        "statutory:EE:12345678",
        "tax.file",
        Some(("EE", JAAN)),
        true,
    )
    .await;
    let to_jaan = ids_under(&mut jaan, "Mandates waiting for you").await;
    jaan.post_form(
        "/account/organizations/accept",
        &[("mandate_id", &to_jaan[0])],
    )
    .await;
    for (whom, spelled) in [("Mari", "EE/EE/38001085718"), ("himself", JAAN)] {
        let res = give(
            &mut jaan,
            &to_jaan[0],
            "tax.file",
            Some(("EE", spelled)),
            false,
            "",
        )
        .await;
        assert_eq!(res.status(), 400, "a sub-delegation from Jaan to {whom}");
    }
    let back = given(&mut jaan, &to_jaan[0], "tax.file", None, false)
        .await
        .unwrap();
    let res = open_and_accept(&mut mari, &back).await;
    assert_eq!(
        res.status(),
        400,
        "Mari accepts a sub-delegation of her own mandate"
    );
    let res = open_and_accept(&mut jaan, &back).await;
    assert_eq!(res.status(), 400, "Jaan accepts his own sub-delegation");

    assert!(
        m.powers_of(&mari_id)
            .await
            .unwrap()
            .iter()
            .all(|p| p.mandate_ref.starts_with("statutory:")),
        "Mari holds no mandate, only her statutory power"
    );
    assert_eq!(m.powers_of(&jaan_id).await.unwrap().len(), 1);
    let (selfheld,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM mandates WHERE representative_account = granted_by AND revoked_at IS NULL")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(selfheld, 0);
}

on_both_stacks!(nobody_can_grant_a_mandate_to_themselves_on_any_route);

/// The mandates (not the statutory powers) `account` holds now.
async fn mandates_held(app: &TestApp, account: &AccountId) -> Vec<String> {
    app.app()
        .mandates
        .powers_of(account)
        .await
        .unwrap()
        .into_iter()
        .filter(|p| !p.mandate_ref.starts_with("statutory:"))
        .map(|p| p.mandate_ref)
        .collect()
}

/// Security review finding 3: one person may hold two accounts, bound
/// through two eID schemes (the binding is unique per scheme, country and
/// identifier), and both carry her `person_hash`. Mari's second account,
/// proven through an eIDAS node, must be Mari as far as her mandates go.
async fn nobody_holds_a_mandate_they_granted_through_a_second_account_proven_by_another_scheme(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let db = &app.app().db;
    let m = &app.app().mandates;
    let (mut mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;
    let node = ProvenIdentity {
        connector: "node".into(),
        scheme: "eidas".into(),
        person_identifier: format!("EE/DE/{MARI}"),
        ..estonian(MARI)
    };
    let (mut second, _sk, second_id) = proven_as(&app, &node, "mari.second@example.eu").await;
    let (mut jaan, _jk, _) = proven(&app, JAAN, "jaan@example.eu").await;

    // Her own invitation, opened by her second account.
    let link = given(&mut mari, "statutory:EE:12345678", "tax.file", None, true)
        .await
        .unwrap();
    let res = open_and_accept(&mut second, &link).await;
    assert_eq!(
        res.status(),
        400,
        "her invitation accepted by her second account"
    );
    assert!(res.text().await.unwrap().contains("yourself"));
    assert!(mandates_held(&app, &second_id).await.is_empty());

    // Along a chain: Jaan holds Mari's mandate; neither his invitation nor
    // a grant addressed to her reaches her second account.
    given(
        &mut mari,
        "statutory:EE:12345678",
        "tax.file",
        Some(("EE", JAAN)),
        true,
    )
    .await;
    let to_jaan = ids_under(&mut jaan, "Mandates waiting for you").await;
    jaan.post_form(
        "/account/organizations/accept",
        &[("mandate_id", &to_jaan[0])],
    )
    .await;
    let res = give(
        &mut jaan,
        &to_jaan[0],
        "tax.file",
        Some(("EE", &format!("EE/DE/{MARI}"))),
        false,
        "",
    )
    .await;
    assert_eq!(res.status(), 400, "a sub-delegation addressed to Mari");
    let back = given(&mut jaan, &to_jaan[0], "tax.file", None, false)
        .await
        .unwrap();
    let res = open_and_accept(&mut second, &back).await;
    assert_eq!(
        res.status(),
        400,
        "a sub-delegation of Mari's mandate accepted by her second account"
    );

    // Held anyway (stored by an earlier version, which compared accounts
    // only): Mari's invitation and Jaan's, both still open, count for nothing.
    let now = app.app().clock.now().0;
    let taken = sqlx::query(
        "UPDATE mandates SET representative_account = $1, accepted_at = $2, invitation_hash = NULL \
         WHERE invitation_hash IS NOT NULL",
    )
    .bind(second_id.as_str())
    .bind(now)
    .execute(db.pool())
    .await
    .unwrap();
    assert_eq!(taken.rows_affected(), 2);
    assert!(
        mandates_held(&app, &second_id).await.is_empty(),
        "held by another account of its granter, or of a granter above it"
    );
    // Nor is one addressed to her by her own first account offered to her
    // second (stored before such grants were refused).
    let (person,): (String,) =
        sqlx::query_as("SELECT person_hash FROM eid_bindings WHERE account_id = $1")
            .bind(second_id.as_str())
            .fetch_one(db.pool())
            .await
            .unwrap();
    sqlx::query(
        "INSERT INTO mandates (mandate_id, org_id, representative_person, powers, valid_from, may_delegate, \
         granted_by, granted_at, min_level) VALUES ('self-addressed', $1, $2, 'tax.file', $3, 1, $4, $3, 'substantial')",
    )
    .bind(ORG)
    .bind(&person)
    .bind(now)
    .bind(mari_id.as_str())
    .execute(db.pool())
    .await
    .unwrap();
    assert!(
        ids_under(&mut second, "Mandates waiting for you")
            .await
            .is_empty()
    );
    let res = second
        .post_form(
            "/account/organizations/accept",
            &[("mandate_id", "self-addressed")],
        )
        .await;
    assert_eq!(res.status(), 400, "accepted by id by her second account");

    // Removed from the register, she keeps no power through either account.
    acme_listing(&app, &[]).await;
    assert!(m.powers_of(&second_id).await.unwrap().is_empty());
    assert!(m.powers_of(&mari_id).await.unwrap().is_empty());
    assert!(
        second
            .page("/account/organizations")
            .await
            .contains("You cannot act for any organization")
    );
}

on_both_stacks!(
    nobody_holds_a_mandate_they_granted_through_a_second_account_proven_by_another_scheme
);

async fn a_mandate_lasts_through_the_day_named_and_impossible_dates_are_refused(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, _) = proven(&app, JAAN, "jaan@example.eu").await;
    let page = mari.page("/account/organizations").await;
    assert!(page.contains("Valid through"), "{page}");

    for impossible in ["2027-02-31", "2027-02-29", "2027-13-01", "31/12/2030"] {
        let res = give(
            &mut mari,
            "statutory:EE:12345678",
            "tax.file",
            Some(("EE", JAAN)),
            false,
            impossible,
        )
        .await;
        assert_eq!(res.status(), 400, "{impossible}");
    }
    assert_eq!(mandate_rows(&app).await, 0);
    let res = give(
        &mut mari,
        "statutory:EE:12345678",
        "tax.file",
        Some(("EE", JAAN)),
        false,
        "2099-12-31",
    )
    .await;
    assert_eq!(res.status(), 303);
    let id = ids_under(&mut jaan, "Mandates waiting for you").await;
    let stored = app.app().mandates.get(&id[0]).await.unwrap().unwrap();
    assert_eq!(
        stored.valid_until,
        UnixTime::from_date("2100-01-01"),
        "valid through 31 December 2099 UTC; it ends as 1 January 2100 begins"
    );
}

on_both_stacks!(a_mandate_lasts_through_the_day_named_and_impossible_dates_are_refused);
