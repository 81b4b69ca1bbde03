//! Invitation mandates: taken only with their token, which travels in a
//! fragment and a form and never in a URL path or a log line.

use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::mandate_guarantees::{
    ANNE, JAAN, MARI, acme_with_mari, given, ids_under, location, open_and_accept, proven, token_of,
};
use crate::on_both_stacks;

async fn an_invitation_mandate_is_accepted_only_with_its_token(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;
    let link = given(&mut mari, "statutory:EE:12345678", "tax.file", None, false)
        .await
        .unwrap();
    // The id is no secret: the granter's page shows it, as do the audit
    // log and the admin API.
    let ids = ids_under(&mut mari, "Mandates you granted").await;
    assert_eq!(ids.len(), 1);

    jaan.page("/account/organizations").await;
    let res = jaan
        .post_form("/account/organizations/accept", &[("mandate_id", &ids[0])])
        .await;
    assert_eq!(
        res.status(),
        400,
        "an invitation mandate accepted by its id: {}",
        location(&res)
    );
    assert!(
        app.app()
            .mandates
            .powers_of(&jaan_id)
            .await
            .unwrap()
            .is_empty()
    );

    // With the token it is accepted, once.
    let res = open_and_accept(&mut jaan, &link).await;
    assert!(location(&res).ends_with("notice=accepted"), "{res:?}");
    assert_eq!(
        app.app().mandates.powers_of(&jaan_id).await.unwrap().len(),
        1
    );
}

on_both_stacks!(an_invitation_mandate_is_accepted_only_with_its_token);

async fn the_invitation_token_travels_in_a_fragment_and_a_form_and_never_reaches_a_log_line(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    let (mut anne, _ak, anne_id) = proven(&app, ANNE, "anne@example.eu").await;
    let logs = crate::logs::start();

    let link = given(&mut mari, "statutory:EE:12345678", "tax.file", None, false)
        .await
        .unwrap();
    let token = token_of(&link);
    assert_eq!(
        link,
        format!("{}/account/mandates/invitation#{token}", app.base),
        "the token is only in the fragment, which browsers never send"
    );
    assert!(
        token.len() == 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "a 256-bit base64url token"
    );

    // The page the link opens: a fixed form action, a labelled field that
    // the script fills from the fragment (and a citizen without JavaScript
    // fills by hand), and nothing of the token.
    let page = anne.page("/account/mandates/invitation").await;
    assert!(
        page.contains("<form method=\"post\" action=\"/account/mandates/invitation\"")
            && page.contains("<label for=\"invitation\"")
            && page.contains("id=\"invitation\" name=\"invitation\"")
            && page.contains("<script src=\"/static/invitation.js\" defer></script>")
            && !page.contains(&token),
        "{page}"
    );
    let script = anne.get("/static/invitation.js").await;
    assert_eq!(script.status(), 200);
    assert!(
        script.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let script = script.text().await.unwrap();
    assert!(
        script.contains("location.hash")
            && script.contains("getElementById(\"invitation\")")
            && script.contains("history.replaceState"),
        "{script}"
    );

    let res = anne
        .post_form("/account/mandates/invitation", &[("invitation", &token)])
        .await;
    assert!(location(&res).ends_with("notice=accepted"), "{res:?}");
    assert_eq!(
        app.app().mandates.powers_of(&anne_id).await.unwrap().len(),
        1
    );
    let res = anne
        .post_form("/account/mandates/invitation", &[("invitation", &token)])
        .await;
    assert_eq!(res.status(), 400, "an invitation is used once");
    let res = anne
        .post_form(
            "/account/mandates/invitation",
            &[("invitation", "not-a-token")],
        )
        .await;
    assert_eq!(res.status(), 400);

    let lines = logs.finish();
    assert!(
        lines.contains("/account/mandates/invitation")
            && lines.contains("/account/organizations/grant"),
        "the capture saw the requests"
    );
    assert!(
        !lines.contains(&token),
        "the invitation token reached a log line"
    );

    // The old link shape, `/account/mandates/invitation/<token>`, is
    // harmless: a token that arrives in a path (and so may be in a log) is
    // ended at once, and the path offers no form.
    let old = given(
        &mut mari,
        "statutory:EE:12345678",
        "cases.submit",
        None,
        false,
    )
    .await
    .unwrap();
    let old_token = token_of(&old);
    let res = anne
        .get(&format!("/account/mandates/invitation/{old_token}"))
        .await;
    assert_eq!(res.status(), 410);
    let html = res.text().await.unwrap();
    assert!(!html.contains("<form") && html.contains("ask"), "{html}");
    let res = anne
        .post_form(
            "/account/mandates/invitation",
            &[("invitation", &old_token)],
        )
        .await;
    assert_eq!(res.status(), 400, "a token seen in a path no longer works");
    assert!(
        ids_under(&mut mari, "Mandates you granted").await.len() == 1,
        "the exposed invitation ended (only Anne's accepted one is left)"
    );
    let ended = crate::audit::since(&app.app().db, 0)
        .await
        .into_iter()
        .filter(|e| e.kind == "mandate.revoked")
        .collect::<Vec<_>>();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].actor, "system");
    assert_eq!(ended[0].fact("reason"), Some("invitation-link-exposed"));

    // L4: a path that is no token renders nothing, least of all a form that
    // would post the CSRF token elsewhere.
    let res = anne
        .get("/account/mandates/invitation/..%2F..%2F..%2Faccount%2Frecovery-codes")
        .await;
    assert_eq!(res.status(), 404);
    assert!(!res.text().await.unwrap().contains("recovery-codes\""));

    // Not signed in: the page says to sign in and open the link again.
    let mut stranger = Browser::new(&app);
    let res = stranger.get("/account/mandates/invitation").await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(
        html.contains("href=\"/signin\"")
            && html.contains("open the link again")
            && !html.contains("<form"),
        "{html}"
    );
    let res = stranger
        .post_form("/account/mandates/invitation", &[("invitation", &token)])
        .await;
    assert_eq!(res.status(), 400, "no CSRF cookie, no session");
}

on_both_stacks!(the_invitation_token_travels_in_a_fragment_and_a_form_and_never_reaches_a_log_line);
