//! The dashboard: figures for the operator, and for each agency only its own.

use civitas::accounts::AccountId;
use civitas::accounts::roles::{self, Role};
use civitas::audit::{Actor, Event, Kind};
use serde_json::json;

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{Rp, hidden, param, redirect_params};

/// A signed-in citizen and their account id.
async fn citizen<'a>(app: &'a TestApp, name: &str) -> (Browser<'a>, AccountId) {
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(app);
    b.create_account(&mut key, name, &format!("{name}@example.eu"), None)
        .await;
    let id = b.account_id().await;
    (b, id)
}

/// `b` signs in to `rp` with consent; the code is redeemed.
async fn sign_in_to(app: &TestApp, b: &mut Browser<'_>, rp: &Rp, scope: &str) {
    let (q, verifier) = app.auth_query(rp, scope, "");
    let consent = b.page(&format!("/authorize?{q}")).await;
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    assert_eq!(app.exchange(rp, &code, &verifier).await.status(), 200);
}

async fn the_operator_sees_every_figure_and_an_agency_only_its_own(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let db = &app.app().db;
    let now = app.app().clock.now();
    let tax = app.portal(json!({"client_name": "Tax <portal>"})).await;
    let library = app.portal(json!({"client_name": "City library"})).await;
    let (mut citizen_b, _) = citizen(&app, "Ann").await;
    sign_in_to(&app, &mut citizen_b, &tax, "openid profile").await;
    sign_in_to(&app, &mut citizen_b, &library, "openid email").await;
    let (mut other, _) = citizen(&app, "Bo").await;
    sign_in_to(&app, &mut other, &library, "openid").await;
    // A step-up demanded by the library (the citizen went no further).
    let (q, _) = app.auth_query(&library, "openid", "&acr_values=high");
    assert!(
        other
            .page(&format!("/authorize?{q}"))
            .await
            .contains("step-up")
    );
    // Two instances' counts of responses.
    let today = now.0 / 86_400;
    for (class, n) in [("2xx", 7), ("4xx", 2), ("5xx", 1)] {
        sqlx::query("INSERT INTO endpoint_stats (day, endpoint, status_class, count) VALUES ($1, '/token', $2, $3)")
            .bind(today)
            .bind(class)
            .bind(n)
            .execute(db.pool())
            .await
            .unwrap();
    }

    // Nobody signed in: to the sign-in page. A citizen without a role: 403.
    let res = Browser::new(&app).get("/admin").await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/signin");
    assert_eq!(citizen_b.get("/admin").await.status(), 403);

    // The tax office's staff: its own service only.
    let (mut staff, staff_id) = citizen(&app, "Tia").await;
    let owner = Event::by(Kind::AdminAction, Actor::Operator).with("action", "owner added");
    assert_eq!(
        roles::add_owner(db, &tax.client_id, &staff_id, &owner, now)
            .await
            .unwrap(),
        roles::Granted::Added
    );
    assert_eq!(
        roles::add_owner(db, &tax.client_id, &staff_id, &owner, now)
            .await
            .unwrap(),
        roles::Granted::Unchanged
    );
    let res = staff.get("/admin").await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    let page = res.text().await.unwrap();
    assert!(page.contains("Your services"));
    assert!(
        page.contains("Tax &lt;portal&gt;"),
        "escaped in tables and charts"
    );
    assert!(!page.contains("Tax <portal>"));
    assert!(!page.contains("City library"), "another agency's service");
    assert!(page.contains("<svg") && !page.contains("<script"));
    assert!(page.contains("Tax &lt;portal&gt;: 1 in all."), "{page}");
    assert!(
        page.contains("<td>name</td><td>1</td>"),
        "the claims released"
    );
    assert!(
        !page.contains("Responses by endpoint") && !page.contains("eID enrollment"),
        "platform figures are the operator's"
    );
    assert!(
        page.contains("No step-ups in this period"),
        "the library's step-up is not the tax office's"
    );

    // The library's staff see the library, with its step-up.
    let (mut librarian, librarian_id) = citizen(&app, "Lou").await;
    roles::add_owner(db, &library.client_id, &librarian_id, &owner, now)
        .await
        .unwrap();
    let page = librarian.page("/admin").await;
    assert!(page.contains("City library: 2 in all.") && !page.contains("Tax &lt;portal"));
    assert!(page.contains("<td>required</td><td>1</td>"), "{page}");

    // The operator: everything.
    let (mut operator, operator_id) = citizen(&app, "Ops").await;
    // The account page shows the reference the operator grants the role to.
    let account_page = operator.page("/account").await;
    assert!(account_page.contains(&format!(
        "data-testid=\"account-reference\">{}<",
        operator_id.as_str()
    )));
    let grant = Event::by(Kind::AdminAction, Actor::Operator).with("action", "role granted");
    assert_eq!(
        roles::grant_role(db, &operator_id, Role::Admin, &grant, now)
            .await
            .unwrap(),
        roles::Granted::Added
    );
    let page = operator.page("/admin?days=7").await;
    assert!(page.contains("Operator dashboard") && page.contains("The last 7 days"));
    assert!(
        page.contains("Tax &lt;portal&gt;: 1 in all.") && page.contains("City library: 2 in all.")
    );
    assert!(page.contains("Passkeys and recovery"));
    // Five accounts created, each signed up with a passkey.
    assert!(
        page.contains("passkey: 0 in all."),
        "sign-ups are not sign-ins"
    );
    assert!(page.contains("First eID enrollments / accounts created in the period"));
    assert!(page.contains("<td>0 / 5</td>"), "{page}");
    assert!(
        page.contains("<code>/token</code></td><td>10</td><td>2</td><td>1</td><td>30.0 %</td>")
    );
    // Owners and roles are held in the database: taking them closes the page.
    let revoke = Event::by(Kind::AdminAction, Actor::Operator).with("action", "owner removed");
    assert!(
        roles::remove_owner(db, &tax.client_id, &staff_id, &revoke, now)
            .await
            .unwrap()
    );
    assert_eq!(staff.get("/admin").await.status(), 403);
}

on_both_stacks!(the_operator_sees_every_figure_and_an_agency_only_its_own);
