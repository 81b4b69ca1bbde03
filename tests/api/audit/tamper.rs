//! The review's sequences (H3), each by a writer of the database who holds
//! no key: (a) a prefix deleted and the pruned marker moved; (b) entries
//! rewritten after the last checkpoint and the forged head signed; (c)
//! checkpoints deleted and entries rewritten; (d) the tail truncated and
//! the head rolled back.

use std::sync::Arc;

use civitas::audit::anchor::Anchor;
use civitas::audit::chain::Sealed;
use civitas::audit::{Actor, Event, Kind};
use civitas::clock::{Clock as _, ManualClock, UnixTime};
use civitas::store::Database;

use super::{exec, head, verify};
use crate::helpers::{Stack, TestApp, TestEnv};
use crate::on_both_stacks;

/// The instance's own upkeep signs only at start (the log is empty then):
/// the test decides when checkpoints are signed.
pub(super) const QUIET: &str = "[audit]\ncheckpoint_interval = \"1h\"";

/// An instance on a manual clock that signs no checkpoint of its own.
pub(super) async fn quiet(stack: Stack) -> Option<(TestApp, ManualClock)> {
    let env = TestEnv::new(stack).await?;
    let clock = ManualClock::new(UnixTime(1_900_000_000));
    let app = env.spawn_with(Arc::new(clock.clone()), QUIET).await;
    Some((app, clock))
}

/// Records and seals `n` entries at the clock's time.
pub(super) async fn write(app: &TestApp, n: usize) {
    let db = &app.app().db;
    for i in 0..n {
        let e = Event::by(Kind::AdminAction, Actor::Operator).with("n", i);
        civitas::audit::record_alone(db, &e, app.app().clock.now())
            .await
            .unwrap();
    }
    civitas::audit::seal(db).await.unwrap();
}

/// Signs a checkpoint of the head now and exports it, as an instance does.
pub(super) async fn checkpoint(app: &TestApp) {
    let now = app.app().clock.now();
    let mut anchor = Anchor::new(app.app().settings.audit.checkpoint_file.clone());
    anchor
        .checkpoint(&app.app().db, &app.app().keys, now)
        .await
        .unwrap();
    assert_eq!(anchor.pending(), 0, "exported");
}

/// Signs a checkpoint of the head as a signer that never saw this
/// instance's checkpoints would (another host's file): the forged head
/// gets signed.
async fn checkpoint_elsewhere(app: &TestApp) -> std::path::PathBuf {
    let file = app.env.dir.path().join("elsewhere.jsonl");
    let mut anchor = Anchor::new(file.clone());
    let now = app.app().clock.now();
    let signed = anchor
        .checkpoint(&app.app().db, &app.app().keys, now)
        .await
        .unwrap();
    assert!(signed.is_some(), "the forged head is signed");
    file
}

/// The instance's own signer, which remembers the last checkpoint it
/// exported, refuses to sign over a changed entry `seq`.
async fn own_signer_refuses(app: &TestApp, seq: i64) {
    let mut anchor = Anchor::new(app.app().settings.audit.checkpoint_file.clone());
    let now = app.app().clock.now();
    let refused = anchor.checkpoint(&app.app().db, &app.app().keys, now).await;
    assert!(
        matches!(
            refused,
            Err(civitas::audit::checkpoint::CheckpointError::Diverged(s)) if s == seq
        ),
        "{refused:?}"
    );
}

/// A copy of the checkpoints exported so far, as shipped to append-only
/// storage.
pub(super) fn shipped(app: &TestApp, name: &str) -> std::path::PathBuf {
    let to = app.env.dir.path().join(name);
    std::fs::copy(&app.app().settings.audit.checkpoint_file, &to).unwrap();
    to
}

/// `verify --trusted FILE`.
pub(super) async fn verify_trusting(
    app: &TestApp,
    file: &std::path::Path,
) -> civitas::audit::VerifyReport {
    verify_trusting_all(app, &[file]).await
}

/// `verify --trusted FILE --trusted FILE …`.
async fn verify_trusting_all(
    app: &TestApp,
    files: &[&std::path::Path],
) -> civitas::audit::VerifyReport {
    verify_pinning(app, files, &[]).await
}

/// `verify --trusted FILE … --trusted-key KEY …`.
pub(super) async fn verify_pinning(
    app: &TestApp,
    files: &[&std::path::Path],
    pinned: &[civitas::audit::signature::PublicKey],
) -> civitas::audit::VerifyReport {
    let mut lines = Vec::new();
    for f in files {
        lines.extend(civitas::audit::anchor::read(f).unwrap());
    }
    assert!(!lines.is_empty());
    let how = civitas::audit::Verification::new(&app.app().settings.audit, app.app().clock.now())
        .trusting(&lines)
        .pinning(pinned);
    civitas::audit::verify(&app.app().db, &app.app().keys, &how)
        .await
        .unwrap()
}

pub(super) async fn hash_at(db: &Database, seq: i64) -> String {
    sqlx::query_as::<_, (String,)>("SELECT hash FROM audit_log WHERE seq = $1")
        .bind(seq)
        .fetch_one(db.pool())
        .await
        .unwrap()
        .0
}

/// What a forger does: changes entry `at`'s detail, recomputes every hash
/// from there on, and moves the head's hash along.
pub(super) async fn rewrite(db: &Database, at: i64, detail: &str) {
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
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT seq, event_id, occurred_at, kind, actor, account_id, client_id, detail \
         FROM audit_log WHERE seq >= $1 ORDER BY seq",
    )
    .bind(at)
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut prev = hash_at(db, at - 1).await;
    for (seq, event_id, occurred_at, kind, actor, account_id, client_id, old) in rows {
        let detail = if seq == at { detail.to_owned() } else { old };
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
}

/// (a) `UPDATE audit_head SET pruned_seq = k, pruned_hash = …; DELETE FROM
/// audit_log WHERE seq <= k`: nothing signed says retention removed them.
async fn a_deleted_prefix_behind_a_moved_pruned_marker_is_found(stack: Stack) {
    let Some((app, _clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    write(&app, 3).await;
    checkpoint(&app).await;
    assert!(verify(&app).await.is_intact());
    exec(
        db,
        "UPDATE audit_head SET pruned_seq = 4, pruned_hash = (SELECT hash FROM audit_log WHERE seq = 4) WHERE id = 1",
    )
    .await;
    exec(db, "DELETE FROM audit_log WHERE seq <= 4").await;
    let r = verify(&app).await;
    let b = r.broken.clone().expect("a moved marker is found");
    assert_eq!(b.seq, 4, "{b:?}");
    assert!(b.reason.contains("removed"), "{b:?}");
    // Without the checkpoints that signed the old marker, too.
    exec(db, "DELETE FROM audit_checkpoints").await;
    let b = verify(&app)
        .await
        .broken
        .expect("an unsigned marker is found");
    assert!(b.reason.contains("removed"), "{b:?}");
    // No instance signs the moved marker…
    write(&app, 1).await;
    assert_eq!(head(db).await, 7);
    let refused =
        civitas::audit::checkpoint::create(db, &app.app().keys, app.app().clock.now()).await;
    assert!(
        matches!(
            refused,
            Err(civitas::audit::checkpoint::CheckpointError::UnsignedMarker(
                4
            ))
        ),
        "{refused:?}"
    );
    // …and the exported checkpoints, which signed marker 0, tell too.
    let b = verify_trusting(&app, &app.app().settings.audit.checkpoint_file)
        .await
        .broken
        .expect("found against the exported checkpoints");
    assert!(b.reason.contains("removed"), "{b:?}");
    // A marker set to look like genesis does not hide it either.
    exec(
        db,
        &format!(
            "UPDATE audit_head SET pruned_seq = 0, pruned_hash = '{}' WHERE id = 1",
            civitas::audit::chain::GENESIS
        ),
    )
    .await;
    let b = verify(&app)
        .await
        .broken
        .expect("entries 1 to 4 are missing");
    assert_eq!(b.seq, 1, "{b:?}");
}

/// (b) An entry after the last checkpoint in the database rewritten, every
/// hash and the head recomputed, the checkpoint of that head deleted, and
/// the forged head signed by the next periodic checkpoint: the database
/// alone cannot tell; the checkpoint exported before it can.
async fn a_rewrite_signed_again_is_found_against_the_checkpoints_exported_before(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(60);
    write(&app, 3).await;
    checkpoint(&app).await;
    let before = shipped(&app, "shipped.jsonl");
    assert!(verify_trusting(&app, &before).await.is_intact());
    rewrite(db, 5, "{\"n\":99}").await;
    exec(db, "DELETE FROM audit_checkpoints WHERE seq = 6").await;
    clock.advance(30);
    // No signer that exported checkpoint 6 signs over the rewrite; an
    // instance starting says so at once.
    own_signer_refuses(&app, 6).await;
    let capture = crate::logs::start();
    let other = app.env.spawn_with(Arc::new(clock.clone()), QUIET).await;
    let log = capture.finish();
    assert!(log.contains("audit checkpoint refused"), "{log}");
    assert!(log.contains("no longer holds entry 6"), "{log}");
    other.stop().await;
    let elsewhere = checkpoint_elsewhere(&app).await;
    // Not guaranteed without the exported checkpoints: the database holds a
    // validly signed checkpoint of the forged head.
    assert!(verify(&app).await.is_intact());
    let b = verify_trusting(&app, &before)
        .await
        .broken
        .expect("the rewrite is found");
    assert_eq!(b.seq, 6, "{b:?}");
    assert!(b.reason.contains("rewritten"), "{b:?}");
    assert!(b.reason.contains("shipped.jsonl:2"), "{b:?}");
    // Both files together hold both signatures of entry 6.
    let live = app.app().settings.audit.checkpoint_file.clone();
    let b = verify_trusting_all(&app, &[&live, &elsewhere])
        .await
        .broken
        .expect("a fork");
    assert_eq!(b.seq, 6, "{b:?}");
    assert!(b.reason.contains("signed again"), "{b:?}");
}

/// (c) `DELETE FROM audit_checkpoints WHERE seq >= j`, entries from j on
/// rewritten and the forged head signed later: the entries were not covered
/// by a checkpoint within twice the interval.
async fn deleted_checkpoints_and_a_rewrite_leave_entries_without_a_timely_checkpoint(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(60);
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(86_400);
    assert!(verify(&app).await.is_intact());
    exec(db, "DELETE FROM audit_checkpoints WHERE seq >= 4").await;
    rewrite(db, 5, "{\"n\":99}").await;
    own_signer_refuses(&app, 6).await;
    // A signer that never saw checkpoint 6 signs the forged head.
    checkpoint_elsewhere(&app).await;
    let b = verify(&app)
        .await
        .broken
        .expect("the missing checkpoints are found");
    assert_eq!(b.seq, 4, "{b:?}");
    assert!(b.reason.contains("checkpoint"), "{b:?}");
    // With the exported checkpoints, the rewrite itself.
    let exported = app.app().settings.audit.checkpoint_file.clone();
    let b = verify_trusting(&app, &exported)
        .await
        .broken
        .expect("the rewrite is found");
    assert_eq!(b.seq, 6, "{b:?}");
    assert!(b.reason.contains("rewritten"), "{b:?}");
    // Checkpoints deleted without a rewrite: what was exported is missing.
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    write(&app, 2).await;
    checkpoint(&app).await;
    clock.advance(60);
    write(&app, 2).await;
    checkpoint(&app).await;
    exec(&app.app().db, "DELETE FROM audit_checkpoints WHERE seq = 2").await;
    let exported = app.app().settings.audit.checkpoint_file.clone();
    let b = verify_trusting(&app, &exported)
        .await
        .broken
        .expect("the deletion is found");
    assert_eq!(b.seq, 2, "{b:?}");
    assert!(b.reason.contains("missing from the database"), "{b:?}");
}

/// (d) The head rolled back to m and the entries after it deleted.
async fn a_truncated_tail_behind_a_rolled_back_head_is_found(stack: Stack) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    clock.advance(60);
    write(&app, 3).await;
    checkpoint(&app).await;
    assert!(verify(&app).await.is_intact());
    exec(
        db,
        "UPDATE audit_head SET seq = 4, hash = (SELECT hash FROM audit_log WHERE seq = 4) WHERE id = 1",
    )
    .await;
    exec(db, "DELETE FROM audit_log WHERE seq > 4").await;
    let b = verify(&app).await.broken.expect("the truncation is found");
    assert!(b.reason.contains("truncated"), "{b:?}");
    // The checkpoint past the new head deleted too: entry 4 is left
    // without one, which shows once it is older than twice the interval.
    exec(db, "DELETE FROM audit_checkpoints WHERE seq > 4").await;
    // Still within twice the interval of entry 4: only the exported
    // checkpoints tell yet.
    assert!(verify(&app).await.is_intact());
    let exported = app.app().settings.audit.checkpoint_file.clone();
    let b = verify_trusting(&app, &exported)
        .await
        .broken
        .expect("the truncation is found");
    assert_eq!(b.seq, 5, "{b:?}");
    assert!(b.reason.contains("truncated"), "{b:?}");
    clock.advance(3 * 3_600);
    let b = verify(&app)
        .await
        .broken
        .expect("the missing checkpoint is found");
    assert_eq!(b.seq, 4, "{b:?}");
}

/// The honest cause of a missing checkpoint: the only instance crashed
/// after sealing entries and stayed down. `verify` reports it until the
/// operator signs the log as checked; an acceptance a writer of the
/// database removes or forges brings it back.
async fn entries_left_uncovered_by_a_crash_are_reported_until_the_operator_accepts_them(
    stack: Stack,
) {
    let Some((app, clock)) = quiet(stack).await else {
        return;
    };
    let db = &app.app().db;
    write(&app, 3).await;
    checkpoint(&app).await;
    write(&app, 2).await;
    // Down for a day; the restarted instance signs at once.
    clock.advance(86_400);
    checkpoint(&app).await;
    let b = verify(&app).await.broken.expect("not covered in time");
    assert_eq!(b.seq, 4, "{b:?}");
    let accepted = civitas::audit::accept::accept(
        db,
        &app.app().keys,
        &app.app().settings.audit.checkpoint_file,
        clock.now(),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!((accepted.through_seq, accepted.marker), (5, None));
    let e = super::since(db, 5).await;
    assert_eq!(e[0].fact("action"), Some("audit.accept"), "recorded");
    let r = verify(&app).await;
    assert!(r.is_intact(), "{r:?}");
    // Later entries are held to the rule again.
    write(&app, 1).await;
    clock.advance(86_400);
    checkpoint(&app).await;
    let b = verify(&app).await.broken.expect("a later gap is reported");
    assert_eq!(b.seq, 6, "{b:?}");
    // Removed, or replaced by another signed statement: the gap is back.
    let (proof,): (String,) = sqlx::query_as("SELECT accepted_proof FROM audit_head WHERE id = 1")
        .fetch_one(db.pool())
        .await
        .unwrap();
    exec(
        db,
        "UPDATE audit_head SET accepted_proof = NULL WHERE id = 1",
    )
    .await;
    assert_eq!(verify(&app).await.broken.unwrap().seq, 4);
    let (checkpoint_jws,): (String,) =
        sqlx::query_as("SELECT signature FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
            .fetch_one(db.pool())
            .await
            .unwrap();
    sqlx::query("UPDATE audit_head SET accepted_proof = $1 WHERE id = 1")
        .bind(&checkpoint_jws)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(verify(&app).await.broken.unwrap().seq, 4);
    sqlx::query("UPDATE audit_head SET accepted_proof = $1 WHERE id = 1")
        .bind(&proof)
        .execute(db.pool())
        .await
        .unwrap();
    assert_eq!(verify(&app).await.broken.unwrap().seq, 6);
}

on_both_stacks!(
    entries_left_uncovered_by_a_crash_are_reported_until_the_operator_accepts_them,
    a_deleted_prefix_behind_a_moved_pruned_marker_is_found,
    a_rewrite_signed_again_is_found_against_the_checkpoints_exported_before,
    deleted_checkpoints_and_a_rewrite_leave_entries_without_a_timely_checkpoint,
    a_truncated_tail_behind_a_rolled_back_head_is_found,
);
