//! Checkpoints as instances sign them: at start and every interval, each
//! exported once, by the instance whose row was stored, to its file and its
//! log; verification while instances seal and sign; an honest log through
//! retention and key rotation.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use civitas::audit::{Actor, Event, Kind};
use civitas::clock::{Clock as _, SharedClock, SystemClock};
use civitas::keys::{Alg, KeyManager};
use civitas::store::Database;

use super::tamper::{QUIET, checkpoint, quiet, verify_pinning, verify_trusting, write};
use super::verify;
use crate::helpers::{Stack, TestEnv};
use crate::on_both_stacks;

const EVERY_SECOND: &str = "[audit]\ncheckpoint_interval = \"1s\"";

async fn record(db: &Database, n: i64, now: civitas::clock::UnixTime) {
    let e = Event::by(Kind::AdminAction, Actor::Operator).with("n", n);
    civitas::audit::record_alone(db, &e, now).await.unwrap();
}

async fn stored_checkpoints(db: &Database) -> usize {
    civitas::audit::checkpoint::list(db).await.unwrap().len()
}

async fn instances_sign_every_interval_and_export_each_checkpoint_once(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let capture = crate::logs::start();
    let a = env.spawn_with(Arc::new(SystemClock), EVERY_SECOND).await;
    let b_file = env.dir.path().join("b-checkpoints.jsonl");
    let b = env
        .spawn_with(
            Arc::new(SystemClock),
            &format!(
                "{EVERY_SECOND}\ncheckpoint_file = {:?}",
                b_file.display().to_string()
            ),
        )
        .await;
    let db = a.app().db.clone();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while stored_checkpoints(&db).await < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no checkpoints signed"
        );
        n += 1;
        record(&db, n, a.app().clock.now()).await;
        tokio::task::yield_now().await;
    }
    a.stop().await;
    b.stop().await;
    let log = capture.finish();
    let db = Database::connect(
        &env.database_url,
        &civitas::config::DatabaseSettings::default(),
    )
    .await
    .unwrap();
    let stored = civitas::audit::checkpoint::list(&db).await.unwrap();
    let mut lines = civitas::audit::anchor::read(&env.checkpoint_file()).unwrap();
    lines.extend(civitas::audit::anchor::read(&b_file).unwrap_or_default());
    lines.sort_by_key(|l| l.line.seq);
    // Each stored checkpoint left the database exactly once, as signed.
    assert_eq!(
        lines
            .iter()
            .map(|l| (l.line.seq, l.line.jws.as_str()))
            .collect::<Vec<_>>(),
        stored
            .iter()
            .map(|c| (c.seq, c.signature.as_str()))
            .collect::<Vec<_>>(),
    );
    for l in &lines {
        assert_eq!(l.line.pruned_seq, Some(0));
    }
    for file in [env.checkpoint_file(), b_file.clone()] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for l in text.lines() {
            let l: serde_json::Value = serde_json::from_str(l).unwrap();
            assert_eq!(l["jwk"]["kid"], l["kid"], "the public key travels with it");
            assert!(l["jwk"].get("d").is_none());
        }
    }
    // …and was logged, with its hash and its JWS.
    let last = &lines[lines.len() - 1].line;
    assert!(log.contains("audit checkpoint signed"), "{log}");
    assert!(log.contains(&format!("jws={}", last.jws)), "{log}");
    assert!(log.contains(&format!("hash={}", last.hash)), "{log}");
    // Stopping signed the head: everything written is covered.
    let head: i64 = sqlx::query_as::<_, (i64,)>("SELECT seq FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .0;
    assert_eq!(stored.last().unwrap().seq, head);
    let app = env.spawn_with(Arc::new(SystemClock), QUIET).await;
    let r = verify_trusting(&app, &env.checkpoint_file()).await;
    assert!(r.is_intact(), "{r:?}");
    assert!(r.trusted_checkpoints >= 1, "{r:?}");
}

/// Checkpoints are read before the head: those signed while `verify` runs
/// name at most the head it reads, so sealing and signing meanwhile break
/// nothing.
async fn verification_stays_intact_while_instances_seal_and_sign(stack: Stack) {
    let Some(env) = TestEnv::new(stack).await else {
        return;
    };
    let a = env.spawn_with(Arc::new(SystemClock), EVERY_SECOND).await;
    let b = env.spawn_with(Arc::new(SystemClock), EVERY_SECOND).await;
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (a.app().db.clone(), stop.clone());
        let clock: SharedClock = a.app().clock.clone();
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                record(&db, n, clock.now()).await;
                tokio::task::yield_now().await;
            }
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut rounds = 0;
    while rounds < 10 || stored_checkpoints(&a.app().db).await < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {rounds} rounds"
        );
        rounds += 1;
        let r = verify(&a).await;
        assert!(r.is_intact(), "{r:?}");
        if std::fs::metadata(env.checkpoint_file()).is_ok_and(|m| m.len() > 0) {
            let r = verify_trusting(&b, &env.checkpoint_file()).await;
            assert!(r.is_intact(), "{r:?}");
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
}

/// Retention removes a prefix (its signed record accounts for the moved
/// marker), and the keys rotate until the first key is no longer published:
/// the checkpoints it signed are still checked, with its file in the keys
/// directory or, once that is gone, with its public key pinned by the
/// operator; never with the copy a line carries.
async fn an_honest_log_through_retention_and_key_rotation_stays_intact(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    let t0 = app.app().clock.now();
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(86_400);
    write(&app, 2).await;
    checkpoint(&app).await;
    let first = civitas::audit::checkpoint::list(db).await.unwrap()[0].clone();
    let (header, _) = civitas::audit::signature::decode(&first.signature).unwrap();
    let old_kid = header["kid"].as_str().unwrap().to_owned();
    let shared: SharedClock = Arc::new(clock.clone());
    KeyManager::rotate(&app.env.keys_dir(), &shared, &[Alg::ES256], 0).unwrap();
    // Past the old key's publication, and a day later.
    clock.advance(civitas::app::key_retention_secs(&app.app().settings) + 86_400);
    app.app().keys.refresh().unwrap();
    assert!(
        app.app().keys.verify(&first.signature).is_err(),
        "the first key is no longer published"
    );
    write(&app, 1).await;
    checkpoint(&app).await;
    let r = verify(&app).await;
    assert!(r.is_intact(), "{r:?}");
    assert_eq!((r.checkpoints, r.unverifiable_checkpoints), (3, 0));

    // Retention: entries 1 to 3 go, with their checkpoint.
    let cutoff = civitas::clock::UnixTime(t0.0 + 3_600);
    let removed = civitas::audit::retention::prune(db, &app.app().keys, cutoff, clock.now())
        .await
        .unwrap();
    assert_eq!(removed, 3);
    civitas::audit::seal(db).await.unwrap();
    checkpoint(&app).await;
    let exported = app.app().settings.audit.checkpoint_file.clone();
    // Checkpoint 3 is exported, at the new start: signed before the cutoff
    // (the one given here, later than the retention period of 730 days: the
    // signed record's cutoff counts, as after `audit.retention` is raised).
    for r in [verify(&app).await, verify_trusting(&app, &exported).await] {
        assert!(r.is_intact(), "{r:?}");
        assert_eq!(r.entries, 4, "{r:?}");
    }
    assert_eq!(
        verify_trusting(&app, &exported).await.trusted_checkpoints,
        3
    );
    // Moving the marker further is still found after a real pruning.
    let (seq, hash): (i64, String) =
        sqlx::query_as("SELECT pruned_seq, pruned_hash FROM audit_head WHERE id = 1")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(seq, 3);
    move_marker(db, 5, None).await;
    let b = verify(&app).await.broken.expect("found");
    assert!(b.reason.contains("removed"), "{b:?}");
    move_marker(db, seq, Some(hash)).await;
    assert!(verify(&app).await.is_intact());

    // The first key's files gone: the lines it signed are reported, though
    // each carries that key, and pass with the key pinned (as the operator
    // kept it, from the published JWKS); without, what it signed in the
    // database covers nothing.
    let pinned = civitas::audit::signature::PublicKey::from_jwk(
        &app.app().keys.public_jwk(&old_kid).unwrap().unwrap(),
    )
    .unwrap();
    for ext in ["pem", "json"] {
        std::fs::remove_file(app.env.keys_dir().join(format!("{old_kid}.{ext}"))).unwrap();
    }
    let b = verify_trusting(&app, &exported)
        .await
        .broken
        .expect("lines of a key that is no longer at hand");
    assert_eq!(b.seq, 3, "{b:?}");
    assert!(b.reason.contains("not a key of Civitas"), "{b:?}");
    let r = verify_pinning(&app, &[&exported], &[pinned]).await;
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.unverifiable_checkpoints, 0, "{r:?}");
    let r = verify(&app).await;
    assert_eq!(r.unverifiable_checkpoints, 1, "{r:?}");
    let b = r.broken.expect("entries 4 and 5 are left uncovered");
    assert_eq!(b.seq, 4, "{b:?}");
}

/// Upgrading: checkpoints signed before 0014 (no marker, an hourly
/// cadence) still verify and hold what they cover to no cadence; a marker
/// an earlier version moved without signing it (leaving the checkpoints of
/// what it removed) is reported, and neither an instance nor retention
/// signs over it, until the operator accepts it, which nothing of a later
/// version forbids here. Retention then removes what those checkpoints
/// cover, by their signed time.
async fn checkpoints_and_a_marker_of_earlier_versions_are_taken_over(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 4).await;
    clock.advance(2 * 3_600);
    let signed_at = clock.now();
    for seq in [1_i64, 4] {
        let hash = super::tamper::hash_at(db, seq).await;
        let old = app
            .app()
            .keys
            .sign(
                Alg::ES256,
                civitas::audit::checkpoint::TYP,
                &serde_json::json!({"seq": seq, "hash": hash, "iat": signed_at.0}),
            )
            .unwrap();
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, created_at, signature) VALUES ($1, $2, $3, $4)",
        )
        .bind(seq)
        .bind(&hash)
        .bind(signed_at.0)
        .bind(&old)
        .execute(db.pool())
        .await
        .unwrap();
    }
    clock.advance(60);
    let r = verify(&app).await;
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.checkpoints, 2);
    // Retention as it ran before 0014: the marker moved, nothing signed,
    // the checkpoint of entry 1 left behind.
    move_marker(db, 2, None).await;
    super::exec(db, "DELETE FROM audit_log WHERE seq <= 2").await;
    let b = verify(&app).await.broken.expect("an unsigned marker");
    assert!(b.reason.contains("removed"), "{b:?}");
    write(&app, 1).await;
    let refused = civitas::audit::checkpoint::create(db, &app.app().keys, clock.now()).await;
    assert!(refused.is_err(), "{refused:?}");
    let later = civitas::clock::UnixTime(signed_at.0 + 1);
    let refused = civitas::audit::retention::prune(db, &app.app().keys, later, clock.now()).await;
    assert!(
        matches!(
            refused,
            Err(civitas::audit::retention::PruneError::UnsignedMarker(2))
        ),
        "{refused:?}"
    );
    let accepted = civitas::audit::accept::accept(
        db,
        &app.app().keys,
        &app.app().settings.audit.checkpoint_file,
        clock.now(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(accepted.marker, Some(2));
    assert!(verify(&app).await.is_intact());
    checkpoint(&app).await;
    let r = verify(&app).await;
    assert!(r.is_intact(), "{r:?}");
    assert_eq!(r.checkpoints, 2);
    // Entries 3 and 4 are covered by the checkpoint of that version, signed
    // before the cutoff; the entries after it are kept.
    let removed = civitas::audit::retention::prune(db, &app.app().keys, later, clock.now())
        .await
        .unwrap();
    assert_eq!(removed, 2);
    let r = verify(&app).await;
    assert!(r.is_intact(), "{r:?}");
    let left = civitas::audit::checkpoint::list(db).await.unwrap();
    assert_eq!(
        left.len(),
        1,
        "the checkpoints of removed entries went with them"
    );
    assert!(left[0].seq > 4, "{left:?}");
}

/// Puts the marker on entry `seq` (with its hash, or `hash`), as a forger
/// would before deleting the entries up to it.
async fn move_marker(db: &Database, seq: i64, hash: Option<String>) {
    let hash = match hash {
        Some(h) => h,
        None => {
            sqlx::query_as::<_, (String,)>("SELECT hash FROM audit_log WHERE seq = $1")
                .bind(seq)
                .fetch_one(db.pool())
                .await
                .unwrap()
                .0
        }
    };
    sqlx::query("UPDATE audit_head SET pruned_seq = $1, pruned_hash = $2 WHERE id = 1")
        .bind(seq)
        .bind(hash)
        .execute(db.pool())
        .await
        .unwrap();
}

on_both_stacks!(
    checkpoints_and_a_marker_of_earlier_versions_are_taken_over,
    instances_sign_every_interval_and_export_each_checkpoint_once,
    verification_stays_intact_while_instances_seal_and_sign,
    an_honest_log_through_retention_and_key_rotation_stays_intact,
);
