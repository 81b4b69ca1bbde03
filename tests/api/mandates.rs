//! Organizations from the business register, and representation mandates:
//! statutory power, grants, acceptance, sub-delegation limits, revocation
//! cascades, expiry and re-import.

use std::sync::Arc;

use civitas::accounts::AccountId;
use civitas::assurance::Level;
use civitas::clock::{Clock as _, ManualClock, UnixTime};
use civitas::eid::{self, ProvenIdentity};
use civitas::mandates::register::{self, RegisterEntry};
use civitas::mandates::{GrantRequest, Grantee, MandateError};

use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;

const MARI: &str = "38001085718";
const JAAN: &str = "39912310174";
const ANNE: &str = "49403136526";

fn extract(representatives: &[(&str, &str)]) -> Vec<RegisterEntry> {
    let reps: Vec<serde_json::Value> = representatives
        .iter()
        .map(|(id, name)| serde_json::json!({"country": "EE", "person_identifier": id, "name": name}))
        .collect();
    serde_json::from_value(serde_json::json!([
        {"country": "EE", "code": "12345678", "name": "Acme OÜ", "representatives": reps},
    ]))
    .unwrap()
}

/// A citizen proven by eID with `person` at `level`.
async fn citizen(app: &TestApp, person: &str, level: Level) -> AccountId {
    let account = app.app().accounts.create(person, None).await.unwrap();
    let identity = ProvenIdentity {
        connector: "sim".into(),
        scheme: "simulated-eid".into(),
        country: "EE".into(),
        person_identifier: person.into(),
        given_name: None,
        family_name: None,
        birthdate: None,
        level,
    };
    eid::bind(
        &app.app().db,
        &app.app().eid_keys,
        &account.id,
        &identity,
        app.app().clock.now(),
    )
    .await
    .unwrap();
    account.id
}

fn grant(
    org: &str,
    to: Grantee,
    powers: &[&str],
    until: Option<UnixTime>,
    may_delegate: bool,
    parent: Option<String>,
) -> GrantRequest {
    GrantRequest {
        org_id: org.into(),
        grantee: to,
        powers: powers.iter().map(|p| (*p).to_owned()).collect(),
        valid_until: until,
        may_delegate,
        min_level: Level::Substantial,
        parent,
    }
}

fn person(id: &str) -> Grantee {
    Grantee::Person {
        country: "EE".into(),
        person_identifier: id.into(),
    }
}

async fn statutory_representatives_grant_mandates_that_delegate_only_downwards(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(UnixTime(1_900_000_000));
    let app = env.spawn_with(Arc::new(clock.clone()), "").await;
    let (db, keys, m) = (&app.app().db, &app.app().eid_keys, &app.app().mandates);
    register::import(
        db,
        keys,
        &extract(&[(MARI, "Mari Maasikas")]),
        civitas::audit::Actor::Operator,
        clock.now(),
    )
    .await
    .unwrap();
    let org = register::org_id("EE", "12345678");
    let mari = citizen(&app, MARI, Level::Substantial).await;
    let jaan = citizen(&app, JAAN, Level::Substantial).await;
    let anne = citizen(&app, ANNE, Level::High).await;

    // Statutory power comes from the register.
    let powers = m.powers_of(&mari).await.unwrap();
    assert_eq!(powers.len(), 1);
    assert_eq!(powers[0].mandate_ref, format!("statutory:{org}"));
    assert!(m.powers_of(&jaan).await.unwrap().is_empty());

    // Granting needs a sign-in at substantial; Jaan, without power, cannot grant.
    let month = Some(clock.now().plus(30 * 86_400));
    let err = m
        .grant(
            &mari,
            Level::Low,
            grant(&org, person(JAAN), &["tax.file"], month, true, None),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MandateError::InsufficientLevel));
    let err = m
        .grant(
            &jaan,
            Level::High,
            grant(&org, person(ANNE), &["tax.file"], month, true, None),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MandateError::NotEntitled));
    let (to_jaan, invitation) = m
        .grant(
            &mari,
            Level::Substantial,
            grant(
                &org,
                person(JAAN),
                &["tax.file", "payments.pay"],
                month,
                true,
                None,
            ),
        )
        .await
        .unwrap();
    assert!(invitation.is_none());
    assert!(
        m.powers_of(&jaan).await.unwrap().is_empty(),
        "not before acceptance"
    );
    assert!(matches!(
        m.accept(&anne, Some(&to_jaan.id), None).await.unwrap_err(),
        MandateError::NotForYou
    ));
    m.accept(&jaan, Some(&to_jaan.id), None).await.unwrap();
    let jaans = m.powers_of(&jaan).await.unwrap();
    assert_eq!(jaans[0].powers, ["tax.file", "payments.pay"]);
    assert!(jaans[0].covers(&["tax.file".into()], Level::Substantial));
    assert!(
        !jaans[0].covers(&["cases.submit".into()], Level::Substantial),
        "other powers"
    );
    assert!(
        !jaans[0].covers(&["tax.file".into()], Level::Low),
        "below its level"
    );

    // Sub-delegation: a subset, within the parent's validity, by invitation.
    let parent = Some(to_jaan.id.clone());
    let err = m
        .grant(
            &jaan,
            Level::Substantial,
            grant(
                &org,
                Grantee::Invitation,
                &["cases.submit"],
                None,
                false,
                parent.clone(),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MandateError::ScopeTooWide));
    let too_long = Some(clock.now().plus(60 * 86_400));
    let err = m
        .grant(
            &jaan,
            Level::Substantial,
            grant(
                &org,
                Grantee::Invitation,
                &["tax.file"],
                too_long,
                false,
                parent.clone(),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MandateError::BeyondValidity));
    let (to_anne, invitation) = m
        .grant(
            &jaan,
            Level::Substantial,
            grant(
                &org,
                Grantee::Invitation,
                &["tax.file"],
                None,
                false,
                parent.clone(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(to_anne.valid_until, month, "bounded by the parent");
    let token = invitation.unwrap();
    m.accept(&anne, None, Some(&token)).await.unwrap();
    assert!(
        m.accept(&anne, None, Some(&token)).await.is_err(),
        "an invitation is used once"
    );
    // Anne may not delegate further.
    let err = m
        .grant(
            &anne,
            Level::High,
            grant(
                &org,
                person(MARI),
                &["tax.file"],
                None,
                false,
                Some(to_anne.id.clone()),
            ),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, MandateError::NoDelegation));

    // A mandate that needs high is not usable at substantial.
    let (strict, _) = m
        .grant(
            &mari,
            Level::Substantial,
            GrantRequest {
                min_level: Level::High,
                ..grant(&org, person(ANNE), &["tax.file"], month, false, None)
            },
        )
        .await
        .unwrap();
    m.accept(&anne, Some(&strict.id), None).await.unwrap();
    let strict_power = m
        .powers_of(&anne)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.mandate_ref == strict.id)
        .unwrap();
    assert!(!strict_power.covers(&["tax.file".into()], Level::Substantial));
    assert!(strict_power.covers(&["tax.file".into()], Level::High));

    // Revoking Jaan's mandate revokes Anne's, delegated from it.
    assert_eq!(m.revoke(&mari, &to_jaan.id).await.unwrap(), 2);
    assert!(m.powers_of(&jaan).await.unwrap().is_empty());
    assert!(
        m.powers_of(&anne)
            .await
            .unwrap()
            .iter()
            .all(|p| p.mandate_ref == strict.id),
        "only the strict one is left"
    );
    let events = civitas::audit::for_account(db, &mari, 20).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "mandate.granted")
            && events.iter().any(|e| e.kind == "mandate.revoked")
    );

    // A mandate expires by itself.
    let (short, _) = m
        .grant(
            &mari,
            Level::Substantial,
            grant(
                &org,
                person(JAAN),
                &["payments.pay"],
                Some(clock.now().plus(3_600)),
                false,
                None,
            ),
        )
        .await
        .unwrap();
    m.accept(&jaan, Some(&short.id), None).await.unwrap();
    assert_eq!(m.powers_of(&jaan).await.unwrap().len(), 1);
    clock.advance(3_601);
    assert!(m.powers_of(&jaan).await.unwrap().is_empty());

    // Removed from the register: the statutory power ends at once.
    let summary = register::import(
        db,
        keys,
        &extract(&[(JAAN, "Jaan Tamm")]),
        civitas::audit::Actor::Operator,
        clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(summary.removed, 1);
    assert!(m.powers_of(&mari).await.unwrap().is_empty());
    assert_eq!(
        m.powers_of(&jaan).await.unwrap()[0].mandate_ref,
        format!("statutory:{org}")
    );

    // One entry per change: every stored mandate was granted once, every
    // acceptance and the one revocation recorded once; refusals wrote none.
    let (granted, accepted): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(accepted_at) FROM mandates")
            .fetch_one(db.pool())
            .await
            .unwrap();
    let count = |k: &'static str| crate::audit::count(db, k);
    assert_eq!(count("mandate.granted").await as i64, granted);
    assert_eq!(count("mandate.accepted").await as i64, accepted);
    assert_eq!(count("mandate.revoked").await, 1);
    assert_eq!(count("register.imported").await, 2);
    let all = crate::audit::since(db, 0).await;
    let revoked = all.iter().find(|e| e.kind == "mandate.revoked").unwrap();
    assert_eq!(revoked.detail["delegated_ended"], 1);
    let text = serde_json::to_string(&all.iter().map(|e| &e.detail).collect::<Vec<_>>()).unwrap();
    assert!(
        !text.contains("38001085718") && !text.contains("39912310174"),
        "no national identifier in the audit log"
    );
}

#[test]
fn register_extracts_are_read_from_json_or_csv() {
    let csv = "country,code,name,rep_country,rep_person_identifier,rep_name,rep_role\n\
               EE,12345678,Acme OÜ,EE,38001085718,Mari Maasikas,board member\n\
               EE,12345678,Acme OÜ,EE,39912310174,Jaan Tamm,\n\
               EE,87654321,Empty OÜ,,,,\n";
    let entries = register::parse(csv).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].representatives.len(), 2);
    assert_eq!(entries[0].representatives[1].role, "board member");
    assert!(entries[1].representatives.is_empty());
    assert!(register::parse("country,code\nEE,1").is_err());
    assert!(register::parse("[{\"country\": \"EE\"}]").is_err());
    let debug = format!("{:?}", entries[0].representatives[0]);
    assert!(!debug.contains("38001085718"), "identifiers never print");
}

on_both_stacks!(statutory_representatives_grant_mandates_that_delegate_only_downwards);

async fn the_register_is_imported_through_the_admin_api(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let body = serde_json::json!([{"country": "EE", "code": "12345678", "name": "Acme OÜ",
        "representatives": [{"country": "EE", "person_identifier": MARI, "name": "Mari Maasikas"}]}]);
    let url = app.url("/admin/register");
    let res = app.http.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .post(&url)
        .bearer_auth(crate::helpers::REGISTRATION_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "the registration token is not an admin access token"
    );
    let (_, token) = crate::admin::admin(&app).await;
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let summary: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        summary,
        serde_json::json!({"organizations": 1, "representatives": 1, "removed": 0})
    );
    let res = app
        .http
        .post(&url)
        .bearer_auth(&token)
        .body("[{\"country\": 1}]")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let mari = citizen(&app, MARI, Level::Substantial).await;
    assert_eq!(app.app().mandates.powers_of(&mari).await.unwrap().len(), 1);
}

on_both_stacks!(the_register_is_imported_through_the_admin_api);
