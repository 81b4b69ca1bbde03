//! Grants racing revocations: a grant whose power ends between its checks
//! and its insert stores nothing, and a sub-delegation granted while its
//! parent is being revoked is either refused or revoked with it.
//!
//! On PostgreSQL the second race is forced, as in `passkey_races`: the test
//! holds the audit log, which both operations write last, starts one, waits
//! until `pg_stat_activity` shows it waiting, starts the other, waits until
//! both wait, and only then lets them go. On SQLite every write
//! transaction takes the database's one writer's turn, so the two cannot
//! overlap; the test runs them one after the other in both orders.

use civitas::assurance::Level;
use civitas::mandates::{GrantRequest, Grantee, MandateError};

use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::mandate_guarantees::{
    JAAN, MARI, ORG, acme_listing, acme_with_mari, give, given, ids_under, mandate_rows, proven,
};
use crate::on_both_stacks;
use crate::passkey_races::{wait_until, waiting_in};

async fn a_grant_is_refused_when_its_power_ends_between_the_check_and_the_insert(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let m = &app.app().mandates;
    let (mut mari, _mk, mari_id) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, jaan_id) = proven(&app, JAAN, "jaan@example.eu").await;
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
    let sub = |to: Grantee| GrantRequest {
        org_id: ORG.into(),
        grantee: to,
        powers: vec!["tax.file".into()],
        valid_until: None,
        may_delegate: false,
        min_level: Level::Substantial,
        parent: Some(to_jaan[0].clone()),
    };

    // Jaan's sub-delegation passes every check; then Mari revokes his
    // mandate (its cascade finds no child yet); then the insert runs.
    let checked = m
        .check_grant(&jaan_id, Level::Substantial, sub(Grantee::Invitation))
        .await
        .unwrap();
    assert_eq!(m.revoke(&mari_id, &to_jaan[0]).await.unwrap(), 1);
    let err = m.insert_grant(checked).await.unwrap_err();
    assert!(matches!(err, MandateError::NotEntitled), "{err:?}");
    let (children,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM mandates WHERE parent_id = $1")
        .bind(&to_jaan[0])
        .fetch_one(app.app().db.pool())
        .await
        .unwrap();
    assert_eq!(children, 0, "no orphan was inserted");
    assert_eq!(
        crate::audit::count(&app.app().db, "mandate.granted").await,
        1
    );

    // The same for a top-level grant whose granter leaves the register
    // between the check and the insert.
    let top = GrantRequest {
        parent: None,
        ..sub(Grantee::Person {
            country: "EE".into(),
            person_identifier: JAAN.into(),
        })
    };
    let checked = m
        .check_grant(&mari_id, Level::Substantial, top.clone())
        .await
        .unwrap();
    acme_listing(&app, &[]).await;
    assert!(matches!(
        m.insert_grant(checked).await.unwrap_err(),
        MandateError::NotEntitled
    ));
    assert_eq!(mandate_rows(&app).await, 1);

    // Checked and inserted with nothing in between, a grant is stored.
    acme_with_mari(&app).await;
    let checked = m
        .check_grant(&mari_id, Level::Substantial, top)
        .await
        .unwrap();
    let (stored, _) = m.insert_grant(checked).await.unwrap();
    assert_eq!(m.get(&stored.id).await.unwrap().unwrap(), stored);
}

on_both_stacks!(a_grant_is_refused_when_its_power_ends_between_the_check_and_the_insert);

/// Mari grants Jaan a mandate he may delegate, and he accepts it: its id.
async fn delegable_to_jaan(mari: &mut Browser<'_>, jaan: &mut Browser<'_>) -> String {
    given(
        mari,
        "statutory:EE:12345678",
        "tax.file",
        Some(("EE", JAAN)),
        true,
    )
    .await;
    let id = ids_under(jaan, "Mandates waiting for you").await.remove(0);
    jaan.post_form("/account/organizations/accept", &[("mandate_id", &id)])
        .await;
    id
}

/// Mari revokes `id` on her page: the response.
async fn revoke(mari: &mut Browser<'_>, id: &str) -> reqwest::Response {
    mari.page("/account/organizations").await;
    mari.post_form("/account/organizations/revoke", &[("mandate_id", id)])
        .await
}

/// The mandates delegated from `parent`: (all, still in force).
async fn children(app: &TestApp, parent: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT COUNT(*), COUNT(*) - COUNT(revoked_at) FROM mandates WHERE parent_id = $1",
    )
    .bind(parent)
    .fetch_one(app.app().db.pool())
    .await
    .unwrap()
}

/// Runs `first` and then `second` so that, on PostgreSQL, each has done
/// everything but its audit entry (or waits for a lock held by the other)
/// before either commits: the worst interleaving. On SQLite, one after the
/// other.
async fn overlapped<A, B>(
    app: &TestApp,
    stack: Stack,
    first: A,
    second: B,
) -> (A::Output, B::Output)
where
    A: std::future::Future,
    B: std::future::Future,
{
    const WAITS: &[&str] = &["INSERT INTO audit_log (", "UPDATE mandates"];
    if stack == Stack::Embedded {
        let a = first.await;
        return (a, second.await);
    }
    let mut hold = app.app().db.begin().await.unwrap();
    sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let (a, b, ()) = tokio::join!(
        first,
        async {
            wait_until("the first operation waiting", || async {
                waiting_in(app, WAITS).await == 1
            })
            .await;
            second.await
        },
        async {
            wait_until("both operations waiting", || async {
                waiting_in(app, WAITS).await == 2
            })
            .await;
            hold.rollback().await.unwrap();
        }
    );
    (a, b)
}

/// Security review finding 6: the grant's insert, checked in one statement,
/// did not see a revocation that had not committed yet, and the
/// revocation's cascade had listed the children before the insert
/// committed: the child stayed in force under a revoked parent. Both now
/// lock the parent's row first.
async fn a_sub_delegation_granted_while_its_parent_is_revoked_is_refused_or_revoked_with_it(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    acme_with_mari(&app).await;
    let (mut mari, _mk, _) = proven(&app, MARI, "mari@example.eu").await;
    let (mut jaan, _jk, _) = proven(&app, JAAN, "jaan@example.eu").await;

    // The revocation first: the grant waits for it, then sees it.
    let parent = delegable_to_jaan(&mut mari, &mut jaan).await;
    jaan.page("/account/organizations").await;
    let (revoked, granted) = overlapped(
        &app,
        stack,
        revoke(&mut mari, &parent),
        give(&mut jaan, &parent, "tax.file", None, false, ""),
    )
    .await;
    assert!(
        revoked
            .headers()
            .get("location")
            .is_some_and(|l| l.to_str().unwrap().ends_with("notice=revoked")),
        "{revoked:?}"
    );
    assert_eq!(
        children(&app, &parent).await,
        (0, 0),
        "nothing may be left in force under the revoked parent"
    );
    assert_eq!(granted.status(), 400, "the grant is refused");

    // The grant first: the revocation waits for it, then revokes the child.
    let parent = delegable_to_jaan(&mut mari, &mut jaan).await;
    let (granted, revoked) = overlapped(
        &app,
        stack,
        give(&mut jaan, &parent, "tax.file", None, false, ""),
        revoke(&mut mari, &parent),
    )
    .await;
    assert_eq!(granted.status(), 200, "the grant is stored");
    assert_eq!(revoked.status(), 303);
    assert_eq!(
        children(&app, &parent).await,
        (1, 0),
        "the child is revoked with its parent"
    );
    let entry = crate::audit::since(&app.app().db, 0)
        .await
        .into_iter()
        .rfind(|e| e.kind == "mandate.revoked")
        .unwrap();
    assert_eq!(entry.detail["delegated_ended"], 1, "{entry:?}");
    assert!(
        ids_under(&mut jaan, "Mandates you granted")
            .await
            .is_empty(),
        "nothing Jaan granted is listed as in force"
    );
}

on_both_stacks!(a_sub_delegation_granted_while_its_parent_is_revoked_is_refused_or_revoked_with_it);
