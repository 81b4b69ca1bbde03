//! A writer of the database tries to have what it deleted pass as
//! legitimate: a key of its own in a line appended to a trusted file
//! (security review, finding 2).

use civitas::audit::retention::{ProofClaims, TYP as PRUNE_TYP};
use civitas::clock::Clock as _;
use civitas::keys::{Alg, KeyManager};

use super::tamper::{checkpoint, hash_at, quiet, shipped, verify_trusting, write};
use super::{exec, verify};
use crate::helpers::Stack;
use crate::on_both_stacks;

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

on_both_stacks!(a_line_appended_with_a_key_of_its_own_vouches_for_nothing);
