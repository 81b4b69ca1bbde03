//! A writer of the database tries to have what it deleted pass as
//! legitimate: retention made to remove and sign a prefix it chose, a key
//! of its own in a line appended to a trusted file, the operator's
//! acceptance of a moved start; and the limit of the database alone, a
//! tail cut exactly at a checkpointed entry (security review, findings 1,
//! 2, 4 and 5).

use civitas::audit::retention::{ProofClaims, TYP as PRUNE_TYP};
use civitas::clock::{Clock as _, UnixTime};
use civitas::keys::{Alg, KeyManager};
use civitas::store::Database;

use super::tamper::{checkpoint, hash_at, quiet, rewrite, shipped, verify_trusting, write};
use super::{exec, head, verify};
use crate::helpers::{Stack, TestApp};
use crate::on_both_stacks;

/// How many sealed entries the log holds.
async fn entries(db: &Database) -> i64 {
    sqlx::query_as::<_, (i64,)>("SELECT COUNT(*) FROM audit_log WHERE seq IS NOT NULL")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .0
}

/// The pruned marker and its signed record.
async fn start(db: &Database) -> (i64, Option<String>) {
    sqlx::query_as("SELECT pruned_seq, pruned_proof FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// Retention as the instances run it: entries past `audit.retention` by
/// the app's clock.
async fn retention(app: &TestApp) -> Result<u64, civitas::audit::retention::PruneError> {
    let now = app.app().clock.now();
    let keep = i64::try_from(app.app().settings.audit.retention.as_secs()).unwrap();
    civitas::audit::retention::prune(&app.app().db, &app.app().keys, UnixTime(now.0 - keep), now)
        .await
}

/// Finding 1: `UPDATE audit_log SET occurred_at = 0` on the entries the
/// writer wants gone, and the checkpoints' unsigned time too. Retention
/// goes by the signed time of the checkpoints, which is recent: it removes
/// nothing, and the back-dating itself shows.
async fn retention_removes_nothing_a_recent_checkpoint_covers_however_the_entries_are_dated(
    stack: Stack,
) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(30);
    write(&app, 3).await;
    checkpoint(&app).await;
    let file = shipped(&app, "shipped.jsonl");
    assert!(verify(&app).await.is_intact());
    exec(db, "UPDATE audit_log SET occurred_at = 0 WHERE seq <= 6").await;
    exec(db, "UPDATE audit_checkpoints SET created_at = 0").await;
    let removed = retention(&app).await.unwrap();
    assert_eq!(removed, 0, "nothing a recent checkpoint covers is removed");
    assert_eq!(entries(db).await, 9);
    assert_eq!(start(db).await, (0, None), "no start of the log is signed");
    for r in [verify(&app).await, verify_trusting(&app, &file).await] {
        let b = r.broken.expect("the back-dating is found");
        assert_eq!(b.seq, 1, "{b:?}");
        assert!(b.reason.contains("altered"), "{b:?}");
    }
}

/// Finding 1: the entries an old checkpoint covers, rewritten with every
/// hash recomputed up to the head. Retention checks that what it removes
/// is the chain that checkpoint signed, and removes nothing.
async fn retention_removes_only_the_chain_an_old_checkpoint_signed(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    let old = clock.now();
    clock.advance(86_400);
    write(&app, 2).await;
    checkpoint(&app).await;
    rewrite(db, 2, "{\"n\":99}").await;
    let cutoff = UnixTime(old.0 + 3_600);
    let refused = civitas::audit::retention::prune(db, &app.app().keys, cutoff, clock.now()).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(entries(db).await, 5, "nothing removed");
    assert_eq!(start(db).await, (0, None), "nothing signed");
    assert_eq!(verify(&app).await.broken.unwrap().seq, 3, "still found");
}

/// Finding 1: sequence (a), a prefix deleted behind a moved marker, then
/// retention: it would sign a new start over the deletion. It refuses, as
/// the signer of checkpoints does.
async fn retention_signs_no_start_of_the_log_that_nothing_signed(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    let old = clock.now();
    write(&app, 3).await;
    checkpoint(&app).await;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(86_400);
    write(&app, 2).await;
    checkpoint(&app).await;
    exec(
        db,
        "UPDATE audit_head SET pruned_seq = 4, pruned_hash = (SELECT hash FROM audit_log WHERE seq = 4) WHERE id = 1",
    )
    .await;
    exec(db, "DELETE FROM audit_log WHERE seq <= 4").await;
    let cutoff = UnixTime(old.0 + 3_600);
    let refused = civitas::audit::retention::prune(db, &app.app().keys, cutoff, clock.now()).await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(start(db).await, (4, None), "nothing signed");
    let b = verify(&app).await.broken.expect("the deletion stays found");
    assert!(b.reason.contains("removed"), "{b:?}");
}

/// Finding 1, second gap: a prefix removed under a start that Civitas
/// signed (the retention of a version that went by `occurred_at`, run
/// after the back-dating), while checkpoints of the retention period
/// cover it. Left in the database, they show it; deleted with the entries,
/// the exported ones do.
async fn a_prefix_removed_within_the_retention_period_is_found_against_its_checkpoints(
    stack: Stack,
) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(30);
    write(&app, 3).await;
    checkpoint(&app).await;
    let file = shipped(&app, "shipped.jsonl");
    // What that retention did: the entries up to 6 removed, the new start
    // signed with Civitas's key.
    let now = clock.now();
    let keep = i64::try_from(app.app().settings.audit.retention.as_secs()).unwrap();
    let hash = hash_at(db, 6).await;
    let proof = app
        .app()
        .keys
        .sign(
            Alg::ES256,
            PRUNE_TYP,
            &ProofClaims {
                through_seq: 6,
                through_hash: hash.clone(),
                cutoff: Some(now.0 - keep),
                iat: now.0,
            },
        )
        .unwrap();
    sqlx::query(
        "UPDATE audit_head SET pruned_seq = 6, pruned_hash = $1, pruned_proof = $2 WHERE id = 1",
    )
    .bind(&hash)
    .bind(&proof)
    .execute(db.pool())
    .await
    .unwrap();
    exec(db, "DELETE FROM audit_log WHERE seq <= 6").await;
    let b = verify(&app)
        .await
        .broken
        .expect("the checkpoints left in the database show it");
    assert_eq!(b.seq, 3, "{b:?}");
    assert!(b.reason.contains("retention period"), "{b:?}");
    exec(db, "DELETE FROM audit_checkpoints WHERE seq <= 6").await;
    // Not guaranteed by the database alone: nothing in it dates them.
    assert!(verify(&app).await.is_intact());
    let b = verify_trusting(&app, &file)
        .await
        .broken
        .expect("the exported checkpoints show it");
    assert_eq!(b.seq, 3, "{b:?}");
    assert!(b.reason.contains("shipped.jsonl:1"), "{b:?}");
    assert!(b.reason.contains("retention period"), "{b:?}");
}

/// Finding 2: the writer removes entries 1 to 4, signs a record of a
/// pruning with a key of its own, and appends one line carrying that key
/// to the append-only file. The line's key vouches for nothing: the line
/// is reported, and the record is not taken for one of Civitas.
async fn a_line_appended_with_a_key_of_its_own_vouches_for_nothing(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(60);
    write(&app, 3).await;
    checkpoint(&app).await;
    let file = shipped(&app, "shipped.jsonl");
    let dir = tempfile::tempdir().unwrap();
    let own = KeyManager::open(dir.path(), std::sync::Arc::new(clock.clone()), 3_600).unwrap();
    let hash = hash_at(db, 4).await;
    let proof = own
        .sign(
            Alg::ES256,
            PRUNE_TYP,
            &ProofClaims {
                through_seq: 4,
                through_hash: hash.clone(),
                cutoff: Some(0),
                iat: clock.now().0,
            },
        )
        .unwrap();
    sqlx::query(
        "UPDATE audit_head SET pruned_seq = 4, pruned_hash = $1, pruned_proof = $2 WHERE id = 1",
    )
    .bind(&hash)
    .bind(&proof)
    .execute(db.pool())
    .await
    .unwrap();
    exec(db, "DELETE FROM audit_log WHERE seq <= 4").await;
    let jws = own
        .sign(
            Alg::ES256,
            civitas::audit::checkpoint::TYP,
            &civitas::audit::checkpoint::Claims {
                seq: 4,
                hash: hash.clone(),
                iat: clock.now().0,
                pruned_seq: Some(4),
                pruned_hash: Some(hash.clone()),
            },
        )
        .unwrap();
    let (header, _) = civitas::audit::signature::decode(&jws).unwrap();
    let kid = header["kid"].as_str().unwrap().to_owned();
    let jwk = own.public_jwk(&kid).unwrap().unwrap();
    let line = serde_json::json!({
        "seq": 4, "hash": hash, "pruned_seq": 4, "pruned_hash": hash,
        "iat": clock.now().0, "kid": kid, "jwk": jwk, "jws": jws,
    });
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("{line}\n"));
    std::fs::write(&file, text).unwrap();
    let b = verify(&app).await.broken.expect("the moved start is found");
    assert!(b.reason.contains("removed"), "{b:?}");
    let b = verify_trusting(&app, &file)
        .await
        .broken
        .expect("the forged line is found");
    assert_eq!(b.seq, 4, "{b:?}");
    assert!(b.reason.contains("shipped.jsonl:3"), "{b:?}");
    assert!(b.reason.contains("not a key of Civitas"), "{b:?}");
}

/// Finding 5: after sequence (a), `civitas audit accept`, run as the
/// message of an upgrade advises, must not sign the moved start: a
/// checkpoint of version 0014 or later shows the start was signed before.
async fn the_operator_cannot_accept_a_start_moved_after_it_was_signed(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    write(&app, 3).await;
    checkpoint(&app).await;
    exec(
        db,
        "UPDATE audit_head SET pruned_seq = 4, pruned_hash = (SELECT hash FROM audit_log WHERE seq = 4) WHERE id = 1",
    )
    .await;
    exec(db, "DELETE FROM audit_log WHERE seq <= 4").await;
    let refused = civitas::audit::accept::accept(
        db,
        &app.app().keys,
        &app.app().settings.audit.checkpoint_file,
        clock.now(),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(start(db).await, (4, None), "the start is not signed");
    assert!(
        super::since(db, 0)
            .await
            .iter()
            .all(|e| e.fact("action") != Some("audit.accept")),
        "no acceptance recorded"
    );
    assert!(verify(&app).await.broken.is_some());
    // The checkpoints deleted too: this host's exported ones still show
    // that a version that signs the start ran.
    exec(db, "DELETE FROM audit_checkpoints").await;
    let refused = civitas::audit::accept::accept(
        db,
        &app.app().keys,
        &app.app().settings.audit.checkpoint_file,
        clock.now(),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(start(db).await, (4, None));
    // A record of a pruning shows it too, without checkpoints or file.
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    let old = clock.now();
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(86_400);
    write(&app, 3).await;
    checkpoint(&app).await;
    let cutoff = UnixTime(old.0 + 3_600);
    civitas::audit::retention::prune(db, &app.app().keys, cutoff, clock.now())
        .await
        .unwrap();
    assert_eq!(start(db).await.0, 3);
    exec(
        db,
        "UPDATE audit_head SET pruned_seq = 5, pruned_hash = (SELECT hash FROM audit_log WHERE seq = 5) WHERE id = 1",
    )
    .await;
    exec(db, "DELETE FROM audit_log WHERE seq <= 5").await;
    exec(db, "DELETE FROM audit_checkpoints").await;
    std::fs::remove_file(&app.app().settings.audit.checkpoint_file).unwrap();
    let refused = civitas::audit::accept::accept(
        db,
        &app.app().keys,
        &app.app().settings.audit.checkpoint_file,
        clock.now(),
    )
    .await;
    assert!(refused.is_err(), "{refused:?}");
    assert_eq!(start(db).await.0, 5);
    assert!(verify(&app).await.broken.is_some());
}

/// Finding 4: checkpoints at 3 and 6; the head set back to 3 and what
/// follows deleted with its checkpoint. To the database alone this is a
/// shorter log, however long after; the exported checkpoint shows the cut,
/// and the signer that exported it refuses to sign over it.
async fn a_tail_cut_exactly_at_a_checkpoint_shows_only_against_the_exported_checkpoints(
    stack: Stack,
) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(60);
    write(&app, 3).await;
    checkpoint(&app).await;
    exec(
        db,
        "UPDATE audit_head SET seq = 3, hash = (SELECT hash FROM audit_log WHERE seq = 3) WHERE id = 1",
    )
    .await;
    exec(db, "DELETE FROM audit_log WHERE seq > 3").await;
    exec(db, "DELETE FROM audit_checkpoints WHERE seq > 3").await;
    clock.advance(3 * 3_600);
    let r = verify(&app).await;
    assert!(r.is_intact(), "not guaranteed by the database alone: {r:?}");
    let b = verify_trusting(&app, &app.app().settings.audit.checkpoint_file)
        .await
        .broken
        .expect("the cut is found");
    assert_eq!(b.seq, 4, "{b:?}");
    assert!(b.reason.contains("truncated"), "{b:?}");
    write(&app, 1).await;
    assert_eq!(head(db).await, 4);
    let mut own =
        civitas::audit::anchor::Anchor::new(app.app().settings.audit.checkpoint_file.clone());
    let refused = own.checkpoint(db, &app.app().keys, clock.now()).await;
    assert!(
        matches!(
            refused,
            Err(civitas::audit::checkpoint::CheckpointError::Diverged(6))
        ),
        "{refused:?}"
    );
}

on_both_stacks!(
    retention_removes_nothing_a_recent_checkpoint_covers_however_the_entries_are_dated,
    retention_removes_only_the_chain_an_old_checkpoint_signed,
    retention_signs_no_start_of_the_log_that_nothing_signed,
    a_prefix_removed_within_the_retention_period_is_found_against_its_checkpoints,
    a_line_appended_with_a_key_of_its_own_vouches_for_nothing,
    the_operator_cannot_accept_a_start_moved_after_it_was_signed,
    a_tail_cut_exactly_at_a_checkpoint_shows_only_against_the_exported_checkpoints,
);
