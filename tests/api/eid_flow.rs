//! The eID flow's binding to the browser and its error pages, over HTTP
//! against the simulator on another site: the upstream's redirect back is a
//! cross-site navigation, which carries only the browser's `SameSite=Lax`
//! cookies; the flow has a cookie of its own, used once; and every page of
//! a flow that cannot finish leads somewhere.

use serde_json::json;

use crate::browser_session::Browser;
use crate::eid::{signed_up, through_eid, to_callback, with_simulator, with_simulator_and};
use crate::helpers::Stack;
use crate::on_both_stacks;
use crate::rp::{CALLBACK, hidden, redirect_params};

/// The `Set-Cookie` values of a response.
fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The `href` of the element with `data-testid="{testid}"`.
fn href_of(html: &str, testid: &str) -> String {
    let at = html
        .find(&format!("data-testid=\"{testid}\""))
        .unwrap_or_else(|| panic!("no {testid} in {html}"));
    let tag_start = html[..at].rfind('<').unwrap();
    let tag = &html[tag_start..at];
    let href = tag.split("href=\"").nth(1).unwrap();
    href[..href.find('"').unwrap()].replace("&amp;", "&")
}

async fn the_upstreams_redirect_back_needs_only_what_a_cross_site_navigation_carries(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _key, account) = signed_up(&app, true).await;
    let callback = to_callback(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    // A browser sends no SameSite=Strict cookie on the upstream's
    // cross-site redirect: the CSRF cookie stays behind.
    b.cookies.remove("civitas_csrf");
    let res = b.get(&callback).await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        "/account?notice=eid-bound"
    );
    assert_eq!(
        civitas::eid::proofing_level(&app.app().db, &account)
            .await
            .unwrap(),
        Some(civitas::assurance::Level::Substantial)
    );
}

async fn an_eid_flow_is_bound_to_a_cookie_of_its_own_used_once_and_cleared(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _key, account) = signed_up(&app, true).await;
    let res = b.get("/account/eid/start?connector=sim").await;
    let cookie = set_cookies(&res)
        .into_iter()
        .find(|c| c.starts_with("civitas_eid="))
        .expect("the flow's cookie");
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=600"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    // The same upstream answer, delivered to another browser (the login
    // CSRF an attacker would try): refused, and nothing of the flow shown.
    let callback = to_callback(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    let mut other = Browser::new(&app);
    let res = other.get(&callback).await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("does not belong to a sign-in started in this browser"),
        "{html}"
    );
    assert_eq!(href_of(&html, "eid-back"), "/account");
    // The flow was used: the right browser cannot use it afterwards either.
    let res = b.get(&callback).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        civitas::eid::proofing_level(&app.app().db, &account)
            .await
            .unwrap(),
        None,
        "nothing was bound"
    );
    // A flow whose cookie the browser lost (or never had) binds nothing.
    let callback = to_callback(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    let kept = b.cookies.remove("civitas_eid").expect("the flow's cookie");
    assert_eq!(kept.len(), 43, "256 random bits");
    assert_eq!(b.get(&callback).await.status(), 400);
    // A good flow: bound, and its cookie cleared by the callback.
    let callback = to_callback(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    let res = b.get(&callback).await;
    assert_eq!(res.status(), 303);
    assert!(
        set_cookies(&res)
            .iter()
            .any(|c| c.starts_with("civitas_eid=;") && c.contains("Max-Age=0")),
        "{:?}",
        set_cookies(&res)
    );
    assert!(!b.cookies.contains_key("civitas_eid"));
    assert!(
        civitas::eid::proofing_level(&app.app().db, &account)
            .await
            .unwrap()
            .is_some()
    );
}

async fn every_eid_error_page_offers_a_way_forward(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _key, _account) = signed_up(&app, true).await;

    // Enrollment from the account page: back to the account.
    let res = through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        false,
    )
    .await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("cancelled or refused"), "{html}");
    assert_eq!(href_of(&html, "eid-back"), "/account");

    // An unknown connector: back to the account.
    let res = b.get("/account/eid/start?connector=nope").await;
    assert_eq!(res.status(), 404);
    assert_eq!(href_of(&res.text().await.unwrap(), "eid-back"), "/account");

    // Recovery: back to recovery.
    let mut fresh = Browser::new(&app);
    let res = through_eid(
        &mut fresh,
        "/recover/eid?connector=sim",
        "mari",
        "substantial",
        "wrong_nonce",
        true,
    )
    .await;
    assert_eq!(res.status(), 400);
    assert_eq!(href_of(&res.text().await.unwrap(), "eid-back"), "/recover");

    // A step-up on the way to a service: back to the service with an OAuth
    // error, or to the step-up page to try again.
    let rp = app.portal(json!({})).await;
    let (q, _verifier) = app.auth_query(&rp, "openid", "&acr_values=substantial");
    let page = b.page(&format!("/authorize?{q}")).await;
    let handle = hidden(&page, "auth");
    let res = through_eid(
        &mut b,
        &format!("/account/eid/start?connector=sim&auth={handle}"),
        "mari",
        "substantial",
        "",
        false,
    )
    .await;
    assert_eq!(res.status(), 400);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("form-action 'self' https://portal.agency.example"),
        "the return form may end at the client: {csp}"
    );
    let html = res.text().await.unwrap();
    assert!(html.contains("Return to Permit portal"), "{html}");
    assert_eq!(
        href_of(&html, "eid-retry"),
        format!("/authorize/resume?auth={handle}")
    );
    let retry = b.page(&format!("/authorize/resume?auth={handle}")).await;
    assert!(retry.contains("data-testid=\"step-up-eid-sim\""), "{retry}");
    b.csrf = hidden(&html, "csrf");
    let res = b
        .post_form("/authorize/cancel", &[("auth", &hidden(&html, "auth"))])
        .await;
    assert_eq!(res.status(), 303);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(CALLBACK), "{location}");
    let params = redirect_params(&res);
    assert_eq!(
        crate::rp::param(&params, "error").as_deref(),
        Some("unmet_authentication_requirements")
    );
    assert_eq!(
        crate::rp::param(&params, "state").as_deref(),
        Some("st-123")
    );

    // Signed out at Civitas while at the upstream: sign in again, back
    // into the same request.
    let (q, _verifier) = app.auth_query(&rp, "openid", "&acr_values=substantial");
    let page = b.page(&format!("/authorize?{q}")).await;
    let handle = hidden(&page, "auth");
    let callback = to_callback(
        &mut b,
        &format!("/account/eid/start?connector=sim&auth={handle}"),
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    b.cookies.remove("civitas_session");
    let res = b.get(&callback).await;
    assert_eq!(res.status(), 400);
    assert_eq!(
        href_of(&res.text().await.unwrap(), "eid-back"),
        format!("/signin?auth={handle}")
    );
}

async fn a_connector_asserts_only_identities_of_its_own_countries(stack: Stack) {
    let Some((app, _sim)) =
        with_simulator_and(stack, "country_claim = \"country\"\ncountries = [\"EE\"]").await
    else {
        return;
    };
    let (mut b, _key, account) = signed_up(&app, true).await;
    // The simulator's "pierre" carries the country claim FR.
    let res = through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "pierre",
        "high",
        "",
        true,
    )
    .await;
    assert_eq!(res.status(), 400);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("not trusted for identities of that country")
    );
    let db = &app.app().db;
    assert_eq!(
        civitas::eid::proofing_level(db, &account).await.unwrap(),
        None
    );
    // An identifier of another country, from an Estonian eID: refused, with
    // the page's way forward.
    let res = through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "ivo",
        "high",
        "",
        true,
    )
    .await;
    assert_eq!(res.status(), 400);
    let html = res.text().await.unwrap();
    assert!(html.contains("not one of its country"), "{html}");
    assert_eq!(href_of(&html, "eid-back"), "/account");
    assert_eq!(
        civitas::eid::proofing_level(db, &account).await.unwrap(),
        None
    );
    // Without the claim, the connector's own country.
    let res = through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    assert_eq!(res.status(), 303);
    let keys = &app.app().eid_keys;
    let binding = civitas::eid::binding(db, keys, &account)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(binding.identity.country, "EE");
}

async fn a_level_raised_by_an_eid_proof_comes_with_a_new_session_cookie(stack: Stack) {
    let Some((app, _sim)) = with_simulator(stack).await else {
        return;
    };
    let (mut b, _key, _account) = signed_up(&app, true).await;
    let before = b.session_cookie().unwrap().to_owned();
    let sessions = &app.app().sessions;
    let sid = sessions.current(&before).await.unwrap().unwrap().sid;
    let res = through_eid(
        &mut b,
        "/account/eid/start?connector=sim",
        "mari",
        "substantial",
        "",
        true,
    )
    .await;
    assert_eq!(res.status(), 303);
    let after = b.session_cookie().unwrap().to_owned();
    assert_ne!(after, before, "the privilege changed: so does the cookie");
    assert!(
        sessions.current(&before).await.unwrap().is_none(),
        "the cookie from before the proof signs in nowhere"
    );
    let session = sessions.current(&after).await.unwrap().unwrap();
    assert_eq!(session.acr, civitas::assurance::Level::Substantial.uri());
    assert_eq!(session.sid, sid, "the same session for the relying parties");
}

on_both_stacks!(
    a_level_raised_by_an_eid_proof_comes_with_a_new_session_cookie,
    a_connector_asserts_only_identities_of_its_own_countries,
    the_upstreams_redirect_back_needs_only_what_a_cross_site_navigation_carries,
    an_eid_flow_is_bound_to_a_cookie_of_its_own_used_once_and_cleared,
    every_eid_error_page_offers_a_way_forward,
);
