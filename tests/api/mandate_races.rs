//! Grants racing revocations: a grant whose power ends between its checks
//! and its insert stores nothing, and a sub-delegation inserted while its
//! parent is being revoked is revoked with it.

use civitas::assurance::Level;
use civitas::mandates::{GrantRequest, Grantee, MandateError};

use crate::helpers::{Stack, TestApp};
use crate::mandate_guarantees::{
    JAAN, MARI, ORG, acme_listing, acme_with_mari, given, ids_under, mandate_rows, proven,
};
use crate::on_both_stacks;

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
