//! Keeping the log: retention from the start of the chain, export as JSON
//! Lines, the checkpoint signed when a server stops, and the entries of
//! the unchained log of earlier versions.

use std::sync::Arc;

use civitas::audit::{Actor, Event, Kind};
use civitas::clock::{Clock as _, ManualClock, UnixTime};
use civitas::store::Database;
use serde_json::Value;

use super::{exec, since, verify};
use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;

async fn retention_removes_old_entries_from_the_start_and_the_chain_still_verifies(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let clock = ManualClock::new(UnixTime(1_800_000_000));
    // The instance's own hourly retention keeps longer: the test prunes.
    let app = env
        .spawn_with(Arc::new(clock.clone()), "[audit]\nretention = \"3650d\"")
        .await;
    let db = &app.app().db;
    for i in 0..3 {
        let e = Event::by(Kind::AdminAction, Actor::Operator).with("n", i);
        civitas::audit::record_alone(db, &e, clock.now())
            .await
            .unwrap();
    }
    civitas::audit::seal(db).await.unwrap();
    civitas::audit::checkpoint::create(db, &app.app().keys, clock.now())
        .await
        .unwrap();
    clock.advance(731 * 86_400);
    let e = Event::by(Kind::AdminAction, Actor::Operator).with("n", 3);
    civitas::audit::record_alone(db, &e, clock.now())
        .await
        .unwrap();
    civitas::audit::seal(db).await.unwrap();
    let cutoff = UnixTime(clock.now().0 - 730 * 86_400);
    assert_eq!(
        civitas::audit::retention::prune(db, &app.app().keys, cutoff, clock.now())
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        civitas::audit::retention::prune(db, &app.app().keys, cutoff, clock.now())
            .await
            .unwrap(),
        0,
        "nothing more to remove"
    );
    let kept = since(db, 0).await;
    assert_eq!(
        kept.iter().map(|e| e.seq.unwrap()).collect::<Vec<_>>(),
        [4, 5],
        "the newer entry and the record of the pruning"
    );
    assert_eq!(kept[1].kind, "audit.pruned");
    assert_eq!(kept[1].detail["through_seq"], 3);
    let report = verify(&app).await;
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.entries, 2);
    // Removing the first kept entry is still found.
    exec(db, "DELETE FROM audit_log WHERE seq = 4").await;
    assert_eq!(verify(&app).await.broken.unwrap().seq, 4);
}

async fn the_log_exports_as_json_lines_and_the_server_signs_a_checkpoint_when_it_stops(
    stack: Stack,
) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    // No periodic checkpoint while the test runs: the one at the stop.
    let app = env
        .spawn_with(Arc::new(civitas::clock::SystemClock), super::tamper::QUIET)
        .await;
    let db = app.app().db.clone();
    let keys = app.app().keys.clone();
    let now = app.app().clock.now();
    for i in 0..3 {
        let e = Event::by(Kind::AdminAction, Actor::Operator)
            .with("n", i)
            .client("c1");
        civitas::audit::record_alone(&db, &e, now).await.unwrap();
    }
    civitas::audit::seal(&db).await.unwrap();
    let mut out = Vec::new();
    let n = civitas::audit::query::export_jsonl(&db, None, &mut out)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[2]["detail"]["n"], 2);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    assert_eq!(lines[0]["client_id"], "c1");
    let mut later = Vec::new();
    assert_eq!(
        civitas::audit::query::export_jsonl(&db, Some(UnixTime(now.0 + 1)), &mut later)
            .await
            .unwrap(),
        0
    );
    assert!(
        civitas::audit::checkpoint::list(&db)
            .await
            .unwrap()
            .is_empty()
    );
    app.stop().await;
    // Stopping closed the pool: read with a connection of our own.
    let db = Database::connect(
        &env.database_url,
        &civitas::config::DatabaseSettings::default(),
    )
    .await
    .unwrap();
    let cps = civitas::audit::checkpoint::list(&db).await.unwrap();
    assert_eq!(cps.len(), 1, "signed at shutdown");
    assert_eq!(cps[0].seq, 3);
    let mut ring = civitas::audit::signature::KeyRing::new(&keys);
    assert!(matches!(
        civitas::audit::checkpoint::check(&mut ring, &cps[0]),
        civitas::audit::checkpoint::Check::Valid(c) if c.seq == 3 && c.pruned_seq == Some(0)
    ));
    // …and exported.
    let exported = civitas::audit::anchor::read(&env.checkpoint_file()).unwrap();
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].line.seq, 3);
    assert_eq!(exported[0].line.jws, cps[0].signature);
}

async fn entries_of_the_unchained_log_of_earlier_versions_join_the_chain_once(stack: Stack) {
    let Some(app) = TestApp::spawn(stack).await else {
        return;
    };
    let db = &app.app().db;
    // Within the retention period, so that the instance's own upkeep keeps them.
    let t0 = app.app().clock.now().0 - 86_400;
    for (id, account, kind, at) in [
        ("e1", Some("acc1"), "passkey.added", t0),
        ("e2", None, "register.imported", t0 + 100),
    ] {
        sqlx::query("INSERT INTO audit_events (event_id, account_id, kind, detail, created_at) VALUES ($1, $2, $3, 'passkey Anna''s phone added', $4)")
            .bind(id)
            .bind(account)
            .bind(kind)
            .bind(at)
            .execute(db.pool())
            .await
            .unwrap();
    }
    let now = app.app().clock.now();
    let (a, b) = tokio::join!(
        civitas::audit::adopt_legacy(db, now),
        civitas::audit::adopt_legacy(db, now)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2, "each moved once");
    let e = since(db, 0).await;
    assert_eq!(e.len(), 2);
    assert_eq!(
        (e[0].kind.as_str(), e[0].actor.as_str()),
        ("passkey.added", "citizen")
    );
    assert_eq!(e[0].account_id.as_deref(), Some("acc1"));
    // It enters the chain now, with its original time beside.
    assert_eq!(e[0].occurred_at, now.0);
    assert_eq!(e[0].detail["legacy_at"], t0);
    assert_eq!(e[1].fact("legacy_kind"), Some("register.imported"));
    // The old free text (it held passkey names) is not carried over: the
    // chain keeps it past an erasure.
    for entry in &e {
        assert!(
            !entry.detail.to_string().contains("Anna's phone"),
            "{:?}",
            entry.detail
        );
        assert!(entry.detail.get("text").is_none());
    }
    assert_eq!(civitas::audit::adopt_legacy(db, now).await.unwrap(), 0);
    assert!(verify(&app).await.is_intact());
}

on_both_stacks!(
    retention_removes_old_entries_from_the_start_and_the_chain_still_verifies,
    the_log_exports_as_json_lines_and_the_server_signs_a_checkpoint_when_it_stops,
    entries_of_the_unchained_log_of_earlier_versions_join_the_chain_once,
);
