//! A code redeemed late, within its lifetime, after the account it names
//! was erased (protocol review L3, citizen review L5): no grant comes back
//! to name the erased account.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row as _;

use crate::admin::{admin, call};
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::param;

async fn a_code_redeemed_after_erasure_yields_invalid_grant_and_no_grant(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let (_, token) = admin(&app).await;
    let rp = app.portal(json!({})).await;
    let citizen = app.sign_in("Erika", "erika@example.eu").await;
    let account = citizen.account.id.as_str().to_owned();
    let (q, verifier) = app.auth_query(&rp, "openid offline_access", "");
    let code = param(&app.front_channel(&citizen, &q).await, "code").unwrap();

    let (status, _, report) = call(
        &app,
        Some(&token),
        Method::DELETE,
        &format!("/admin/accounts/{account}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let res = app.exchange(&rp, &code, &verifier).await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    let left = sqlx::query("SELECT COUNT(*) AS n FROM grants WHERE account_id = $1")
        .bind(&account)
        .fetch_one(app.app().db.pool())
        .await
        .unwrap()
        .get::<i64, _>("n");
    assert_eq!(left, 0, "no grant names the erased account");
}

on_both_stacks!(a_code_redeemed_after_erasure_yields_invalid_grant_and_no_grant);
