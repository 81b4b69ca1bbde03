//! The audit trail: each change writes exactly one entry of its kind, in its
//! own transaction; the chain verifies, and pinpoints an altered, removed,
//! reordered or rewritten entry; the admin API's audit routes; the
//! citizen's activity page. The submodules: keeping the log (retention,
//! export, legacy entries), the review's tampering sequences, checkpoints
//! as instances sign and export them, and the `audit` commands.

use civitas::audit::chain::Sealed;
use civitas::audit::{Actor, Event, Kind};
use civitas::store::Database;
use serde_json::{Value, json};

use crate::authenticator::SoftAuthenticator;
use crate::browser_session::Browser;
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;
use crate::rp::{hidden, param, redirect_params};

mod anchoring;
mod cli;
mod keeping;
mod laundering;
mod tamper;

/// The chain's last sequence number, once what was written is sealed.
pub async fn head(db: &Database) -> i64 {
    civitas::audit::seal(db).await.unwrap();
    sqlx::query_as::<_, (i64,)>("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .0
}

/// The entries after `seq`, oldest first, once what was written is sealed
/// (as a running instance does within a fraction of a second).
pub async fn since(db: &Database, seq: i64) -> Vec<civitas::audit::Entry> {
    civitas::audit::seal(db).await.unwrap();
    civitas::audit::query::page(db, seq, 10_000).await.unwrap()
}

/// The kinds of the entries after `seq`, oldest first.
pub async fn kinds_since(db: &Database, seq: i64) -> Vec<String> {
    since(db, seq).await.into_iter().map(|e| e.kind).collect()
}

/// How many entries of `kind` the log holds.
pub async fn count(db: &Database, kind: &str) -> usize {
    since(db, 0).await.iter().filter(|e| e.kind == kind).count()
}

/// An audit row as the forger reads it.
type Row = (
    i64,
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// `verify` as `civitas audit verify` runs it, against the database alone.
pub async fn verify(app: &TestApp) -> civitas::audit::VerifyReport {
    let how = civitas::audit::Verification::new(&app.app().settings.audit, app.app().clock.now());
    civitas::audit::verify(&app.app().db, &app.app().keys, &how)
        .await
        .unwrap()
}

pub async fn exec(db: &Database, sql: &str) {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(db.pool())
        .await
        .unwrap();
}

async fn the_chain_verifies_and_pinpoints_an_altered_removed_or_reordered_entry(stack: Stack) {
    let Some(env) = crate::helpers::TestEnv::new(stack).await else {
        return;
    };
    // The test signs the checkpoints.
    let app = env
        .spawn_with(
            std::sync::Arc::new(civitas::clock::SystemClock),
            tamper::QUIET,
        )
        .await;
    let db = &app.app().db;
    let now = app.app().clock.now();
    for i in 0..6 {
        let e = Event::by(Kind::AdminAction, Actor::Operator).with("n", i);
        civitas::audit::record_alone(db, &e, now).await.unwrap();
    }
    // Written, then sealed (here, or by the instance's own sealer, which
    // runs meanwhile): an unsealed entry is counted, not checked.
    let pending = verify(&app).await;
    assert_eq!(pending.entries + pending.unsealed, 6, "{pending:?}");
    civitas::audit::seal(db).await.unwrap();
    assert_eq!(civitas::audit::seal(db).await.unwrap(), 0, "sealed once");
    let clean = verify(&app).await;
    assert!(clean.is_intact(), "{clean:?}");
    assert_eq!((clean.entries, clean.unsealed), (6, 0));
    let sealed = since(db, 0).await;
    assert_eq!(
        sealed
            .iter()
            .map(|e| e.detail["n"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5],
        "sealed in the order written"
    );

    // Altered: one column of entry 3.
    exec(
        db,
        "UPDATE audit_log SET detail = '{\"n\":33}' WHERE seq = 3",
    )
    .await;
    let r = verify(&app).await.broken.unwrap();
    assert_eq!(r.seq, 3, "{r:?}");
    assert!(r.reason.contains("altered"), "{r:?}");
    exec(
        db,
        "UPDATE audit_log SET detail = '{\"n\":2}' WHERE seq = 3",
    )
    .await;
    assert!(verify(&app).await.is_intact());
    exec(
        db,
        "UPDATE audit_log SET occurred_at = occurred_at + 1 WHERE seq = 5",
    )
    .await;
    assert_eq!(verify(&app).await.broken.unwrap().seq, 5);
    exec(
        db,
        "UPDATE audit_log SET occurred_at = occurred_at - 1 WHERE seq = 5",
    )
    .await;

    // Removed: entry 4, then the last one.
    exec(db, "CREATE TABLE kept AS SELECT * FROM audit_log").await;
    exec(db, "DELETE FROM audit_log WHERE seq = 4").await;
    let r = verify(&app).await.broken.unwrap();
    assert_eq!(r.seq, 4, "{r:?}");
    assert!(r.reason.contains("missing"), "{r:?}");
    exec(db, "INSERT INTO audit_log SELECT * FROM kept WHERE seq = 4").await;
    assert!(verify(&app).await.is_intact());
    exec(db, "DELETE FROM audit_log WHERE seq = 6").await;
    let r = verify(&app).await.broken.unwrap();
    assert_eq!(r.seq, 6, "a truncated tail is found: {r:?}");
    exec(db, "INSERT INTO audit_log SELECT * FROM kept WHERE seq = 6").await;

    // Reordered: entries 2 and 5 swap places.
    exec(db, "UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
    exec(db, "UPDATE audit_log SET seq = 2 WHERE seq = 5").await;
    exec(db, "UPDATE audit_log SET seq = 5 WHERE seq = -2").await;
    let r = verify(&app).await.broken.unwrap();
    assert_eq!(r.seq, 2, "{r:?}");
    exec(db, "UPDATE audit_log SET seq = -2 WHERE seq = 5").await;
    exec(db, "UPDATE audit_log SET seq = 5 WHERE seq = 2").await;
    exec(db, "UPDATE audit_log SET seq = 2 WHERE seq = -2").await;
    assert!(verify(&app).await.is_intact());

    // Inserted past the head, as if sealed.
    exec(
        db,
        "INSERT INTO audit_log (event_id, seq, occurred_at, kind, actor, detail, prev_hash, hash) \
         SELECT 'forged', 7, occurred_at, kind, actor, detail, hash, hash FROM audit_log WHERE seq = 6",
    )
    .await;
    let r = verify(&app).await.broken.unwrap();
    assert_eq!(r.seq, 7, "{r:?}");
    assert!(r.reason.contains("beyond"), "{r:?}");
    exec(db, "DELETE FROM audit_log WHERE event_id = 'forged'").await;
    assert!(verify(&app).await.is_intact());

    // Rewritten with every hash recomputed: only a signed checkpoint tells.
    let cp = civitas::audit::checkpoint::create(db, &app.app().keys, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cp.claims.seq, 6);
    assert!(
        civitas::audit::checkpoint::create(db, &app.app().keys, now)
            .await
            .unwrap()
            .is_none(),
        "one checkpoint per head"
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, event_id, occurred_at, kind, actor, account_id, client_id, detail \
             FROM audit_log WHERE seq >= 3 ORDER BY seq",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut prev: String =
        sqlx::query_as::<_, (String,)>("SELECT hash FROM audit_log WHERE seq = 2")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .0;
    for (seq, event_id, occurred_at, kind, actor, account_id, client_id, detail) in rows {
        let detail = if seq == 3 {
            "{\"n\":99}".to_owned()
        } else {
            detail
        };
        let forged = Sealed {
            seq,
            event_id,
            occurred_at,
            kind,
            actor,
            account_id,
            client_id,
            detail: detail.clone(),
            prev_hash: prev.clone(),
        };
        let hash = forged.hash();
        sqlx::query("UPDATE audit_log SET detail = $1, prev_hash = $2, hash = $3 WHERE seq = $4")
            .bind(&detail)
            .bind(&prev)
            .bind(&hash)
            .bind(seq)
            .execute(db.pool())
            .await
            .unwrap();
        prev = hash;
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(db.pool())
        .await
        .unwrap();
    let r = verify(&app).await.broken.unwrap();
    assert_eq!(r.seq, 6, "{r:?}");
    assert!(r.reason.contains("checkpoint"), "{r:?}");
    // A forged checkpoint (its row changed to match) fails its signature.
    sqlx::query("UPDATE audit_checkpoints SET hash = $1 WHERE seq = 6")
        .bind(&prev)
        .execute(db.pool())
        .await
        .unwrap();
    let r = verify(&app).await.broken.unwrap();
    assert!(r.reason.contains("forged"), "{r:?}");
    exec(db, "DROP TABLE kept").await;
}

async fn a_change_and_its_entry_commit_together_and_concurrent_writers_form_one_chain(
    stack: Stack,
) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let db = &app.app().db;
    let now = app.app().clock.now();
    let before = head(db).await;
    // A transaction that records and then rolls back leaves nothing.
    {
        let mut tx = db.begin().await.unwrap();
        let e = Event::by(Kind::AdminAction, Actor::Operator).with("action", "rolled back");
        civitas::audit::record(&mut tx, &e, now).await.unwrap();
        tx.rollback().await.unwrap();
    }
    assert_eq!(head(db).await, before);
    assert!(kinds_since(db, before).await.is_empty());
    // Refused changes write no entry.
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);
    b.create_account(&mut key, "Uno", "uno@example.eu", None)
        .await;
    let account = b.account_id().await;
    let only = app.app().passkeys.list(&account).await.unwrap()[0]
        .credential_id
        .clone();
    let mark = head(db).await;
    assert!(app.app().passkeys.remove(&account, &only).await.is_err());
    assert!(
        !civitas::oidc::consent::withdraw(db, &account, "no-such-client", now)
            .await
            .unwrap()
    );
    assert!(
        !app.app()
            .clients
            .delete("no-such-client", &Actor::Operator)
            .await
            .unwrap()
    );
    assert_eq!(kinds_since(db, mark).await, Vec::<String>::new());

    // Concurrent writers and concurrent sealers: one chain, no gap, no fork.
    let mark = head(db).await;
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                let e = Event::by(Kind::AdminAction, Actor::Operator).with("n", i);
                civitas::audit::record_alone(&db, &e, now).await.unwrap();
                civitas::audit::seal(&db).await.unwrap()
            })
        })
        .collect();
    let mut sealed = 0;
    for t in tasks {
        sealed += t.await.unwrap();
    }
    // The instance's own sealer may have taken some of them.
    assert!(sealed <= 16, "no entry sealed twice: {sealed}");
    let seqs: Vec<i64> = since(db, mark)
        .await
        .iter()
        .map(|e| e.seq.unwrap())
        .collect();
    assert_eq!(seqs, ((mark + 1)..=(mark + 16)).collect::<Vec<_>>());
    assert!(verify(&app).await.is_intact());
}

async fn every_change_of_a_citizen_writes_exactly_one_entry_of_its_kind(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let db = &app.app().db;
    let mut key = SoftAuthenticator::new(&app.base, false);
    let mut b = Browser::new(&app);

    let mark = head(db).await;
    b.create_account(&mut key, "Ilse", "ilse@example.eu", None)
        .await;
    assert_eq!(
        kinds_since(db, mark).await,
        ["account.created", "passkey.added"]
    );
    let account = b.account_id().await;
    assert!(
        since(db, mark)
            .await
            .iter()
            .all(|e| e.account_id.as_deref() == Some(account.as_str()) && e.actor == "citizen")
    );

    // A passkey sign-in, with its level and methods.
    let mark = head(db).await;
    let mut b2 = Browser::new(&app);
    b2.page("/signin").await;
    let (status, _) = b2.sign_in(&mut key, None).await;
    assert_eq!(status, 200);
    let e = &since(db, mark).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, "signin");
    assert_eq!(e[0].fact("method"), Some("passkey"));
    assert_eq!(e[0].fact("acr"), Some("low"));
    assert_eq!(e[0].fact("amr"), Some("user mfa hwk"));

    // A relying party: registered, consented to, and released claims to.
    let mark = head(db).await;
    let rp = app.portal(json!({"client_name": "City library"})).await;
    let e = since(db, mark).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, "client.registered");
    assert_eq!(e[0].actor, "registrant");
    assert_eq!(e[0].client_id.as_deref(), Some(rp.client_id.as_str()));
    let mark = head(db).await;
    let (q, verifier) = app.auth_query(&rp, "openid profile email", "");
    let consent = b.page(&format!("/authorize?{q}")).await;
    b.csrf = hidden(&consent, "csrf");
    let res = b
        .post_form(
            "/consent",
            &[("auth", &hidden(&consent, "auth")), ("decision", "allow")],
        )
        .await;
    let code = param(&redirect_params(&res), "code").unwrap();
    assert_eq!(kinds_since(db, mark).await, ["consent.given"]);
    let mark = head(db).await;
    assert_eq!(app.exchange(&rp, &code, &verifier).await.status(), 200);
    let e = since(db, mark).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind, "claims.released");
    assert_eq!(e[0].client_id.as_deref(), Some(rp.client_id.as_str()));
    assert_eq!(
        e[0].detail["claims"],
        json!(["name", "email", "email_verified"])
    );
    // A replayed code is refused and releases nothing.
    let mark = head(db).await;
    assert_eq!(app.exchange(&rp, &code, &verifier).await.status(), 400);
    assert!(kinds_since(db, mark).await.is_empty());

    // A sign-in that resumes a service's request names the service.
    let mark = head(db).await;
    let mut b3 = Browser::new(&app);
    let (q, _) = app.auth_query(&rp, "openid", "");
    let res = b3.get(&format!("/authorize?{q}")).await;
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    b3.page(&location).await;
    let handle = location.split("auth=").nth(1).unwrap().to_owned();
    let (status, _) = b3.sign_in(&mut key, Some(&handle)).await;
    assert_eq!(status, 200);
    let e = since(db, mark).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].kind, "signin");
    assert_eq!(e[0].client_id.as_deref(), Some(rp.client_id.as_str()));

    // The citizen sees which service received which data.
    let page = b.page("/account/activity").await;
    assert!(page.contains("City library"), "{page}");
    // It says what the log guarantees, and no more.
    assert!(page.contains("tamper-evident log"), "{page}");
    assert!(page.contains("cannot prevent them"), "{page}");
    assert!(!page.contains("not even by the operator"), "{page}");
    assert!(
        page.contains("Shared: name, email, email_verified"),
        "{page}"
    );
    assert!(page.contains("You created your account"));
    let account_page = b.page("/account").await;
    assert!(account_page.contains("/account/activity"));
    // …and nobody else's.
    let mut other = Browser::new(&app);
    let mut other_key = SoftAuthenticator::new(&app.base, false);
    other
        .create_account(&mut other_key, "Otto", "otto@example.eu", None)
        .await;
    let theirs = other.page("/account/activity").await;
    assert!(!theirs.contains("City library"), "{theirs}");
    assert_eq!(
        Browser::new(&app).get("/account/activity").await.status(),
        303
    );

    // Recovery codes: generated, then one used on a new device.
    let mark = head(db).await;
    b.page("/account").await;
    let html = b
        .post_form("/account/recovery-codes", &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(kinds_since(db, mark).await, ["recovery_codes.generated"]);
    let codes: Vec<String> = html
        .split("<li><code>")
        .skip(1)
        .map(|s| s[..s.find('<').unwrap()].to_owned())
        .collect();
    let mark = head(db).await;
    let mut r = Browser::new(&app);
    r.page("/recover").await;
    assert_eq!(
        r.post_form("/recover", &[("recovery_code", &codes[0])])
            .await
            .status(),
        303
    );
    assert_eq!(kinds_since(db, mark).await, ["recovery_code.used"]);
    let mark = head(db).await;
    r.page("/recover").await;
    r.post_form("/recover", &[("recovery_code", &codes[0])])
        .await;
    assert!(kinds_since(db, mark).await.is_empty(), "a used code");

    // A second passkey, then the first removed.
    let mark = head(db).await;
    let mut laptop = SoftAuthenticator::new(&app.base, true);
    let (_, begin) = r.post_json("/passkeys/register/begin", &json!({})).await;
    let (status, _) = r
        .post_json(
            "/passkeys/register/finish",
            &json!({"ceremony": begin["ceremony"], "credential": laptop.create(&begin["options"])}),
        )
        .await;
    assert_eq!(status, 200);
    let e = since(db, mark).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].kind, "passkey.added");
    assert_eq!(e[0].detail["device_bound"], false);
    let first = app.app().passkeys.list(&account).await.unwrap()[0]
        .credential_id
        .clone();
    let mark = head(db).await;
    b.page("/account").await;
    b.post_form("/account/passkeys/remove", &[("credential_id", &first)])
        .await;
    assert_eq!(kinds_since(db, mark).await, ["passkey.removed"]);

    // Email verification.
    let mark = head(db).await;
    r.page("/account").await;
    r.post_form("/account/email/send", &[]).await;
    let outbox = app.env.dir.path().join("outbox");
    let mail = std::fs::read_dir(&outbox)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(mail).unwrap();
    let code: String = text
        .split("Civitas is ")
        .nth(1)
        .unwrap()
        .chars()
        .take(6)
        .collect();
    r.post_form("/account/email/verify", &[("code", &code)])
        .await;
    assert_eq!(kinds_since(db, mark).await, ["email.verified"]);

    // Consent withdrawn.
    let mark = head(db).await;
    r.page("/account").await;
    r.post_form(
        "/account/consents/revoke",
        &[("client_id", rp.client_id.as_str())],
    )
    .await;
    assert_eq!(kinds_since(db, mark).await, ["consent.revoked"]);

    // Operator and client changes name their actor.
    let mark = head(db).await;
    app.app()
        .clients
        .allow_claims(
            &rp.client_id,
            &["birthdate".into()],
            "Library Act §4",
            &Actor::Operator,
        )
        .await
        .unwrap();
    let uri = rp.registration["registration_client_uri"].as_str().unwrap();
    let token = rp.registration["registration_access_token"]
        .as_str()
        .unwrap();
    let res = app
        .http
        .delete(uri)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let e = since(db, mark).await;
    let got: Vec<(&str, &str)> = e
        .iter()
        .map(|e| (e.kind.as_str(), e.actor.as_str()))
        .collect();
    let by_client = format!("client:{}", rp.client_id);
    assert_eq!(
        got,
        [
            ("client.changed", "operator"),
            ("client.deleted", by_client.as_str())
        ]
    );
    assert_eq!(e[0].detail["legal_basis"], "Library Act §4");
    // The whole history still verifies.
    assert!(verify(&app).await.is_intact());
}

async fn the_admin_api_pages_the_log_as_json_lines_and_verifies_it(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let db = &app.app().db;
    let now = app.app().clock.now();
    for i in 0..5 {
        let e = Event::by(Kind::AdminAction, Actor::Operator).with("n", i);
        civitas::audit::record_alone(db, &e, now).await.unwrap();
    }
    let get = |path: &str, token: Option<String>| {
        let mut req = app.http.get(app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(get("/admin/audit", None).await.unwrap().status(), 401);
    let (_, token) = crate::admin::admin(&app).await;
    let mark = head(db).await;
    let res = get("/admin/audit?after=0&limit=3", Some(token.clone()))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/jsonl");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let text = res.text().await.unwrap();
    let page: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        page.iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // The call itself is recorded, after the page was read.
    let e = since(db, mark).await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].fact("action"), Some("audit.export"));
    assert_eq!(e[0].detail["count"], 3);
    let next = get("/admin/audit?after=3", Some(token.clone()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let seqs: Vec<i64> = next
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs[..2], [4, 5], "and then the earlier calls' own entries");
    assert_eq!(
        get("/admin/audit?limit=0", Some(token.clone()))
            .await
            .unwrap()
            .status(),
        400
    );
    let report: Value = get("/admin/audit/verify", Some(token.clone()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["intact"], true, "{report}");
    exec(db, "UPDATE audit_log SET kind = 'signin' WHERE seq = 2").await;
    let report: Value = get("/admin/audit/verify", Some(token))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["intact"], false);
    assert_eq!(report["broken_at"], 2);
}

async fn a_backlog_is_sealed_in_order_across_statements_and_batches(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let db = &app.app().db;
    let now = app.app().clock.now();
    let mark = head(db).await;
    // More than one statement's worth (250) and one batch's (1 000).
    let mut tx = db.begin().await.unwrap();
    let events: Vec<Event> = (0..1_203)
        .map(|i| Event::by(Kind::AdminAction, Actor::Operator).with("n", i))
        .collect();
    civitas::audit::record_all(&mut tx, &events, now)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let e = since(db, mark).await;
    assert_eq!(e.len(), 1_203);
    for (i, entry) in e.iter().enumerate() {
        assert_eq!(entry.seq, Some(mark + 1 + i as i64));
        assert_eq!(entry.detail["n"], i, "sealed in the order written");
    }
    assert!(verify(&app).await.is_intact());
}

on_both_stacks!(
    a_backlog_is_sealed_in_order_across_statements_and_batches,
    the_admin_api_pages_the_log_as_json_lines_and_verifies_it,
    the_chain_verifies_and_pinpoints_an_altered_removed_or_reordered_entry,
    a_change_and_its_entry_commit_together_and_concurrent_writers_form_one_chain,
    every_change_of_a_citizen_writes_exactly_one_entry_of_its_kind,
);

/// Every kind has one name, parses back, and is documented for operators.
#[test]
fn every_kind_has_one_name_and_is_documented() {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operations.md"),
    )
    .unwrap();
    let mut names: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    for k in Kind::ALL {
        assert_eq!(Kind::parse(k.as_str()), Some(k));
        // Documented as `kind` or, in a family, as `.suffix`.
        let suffix = &k.as_str()[k.as_str().find('.').unwrap_or(0)..];
        assert!(
            doc.contains(&format!("`{}`", k.as_str())) || doc.contains(&format!("`{suffix}`")),
            "{} is not in docs/operations.md",
            k.as_str()
        );
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Kind::ALL.len());
}
