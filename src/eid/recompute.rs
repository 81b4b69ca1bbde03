//! The one-time recomputation of bindings stored before identifiers were
//! canonical (`identifier_version` 0): their identifier was encrypted, and
//! their `identity_hash` and `person_hash` computed, in whatever spelling
//! the upstream returned. Each is decrypted, made canonical, hashed again and
//! encrypted again.
//!
//! It runs at every start-up and finds nothing once done. Each row is
//! rewritten by one conditional UPDATE (still version 0, still the
//! ciphertext that was read), so instances that start together, or a
//! re-proofing meanwhile, never apply it twice or over a newer write. A
//! row that cannot be made canonical keeps its old form and is counted.

use sqlx::Row as _;

use super::{EidKeys, IDENTIFIER_VERSION, PersonIdentifier};
use crate::accounts::AccountId;
use crate::store::{Database, StoreError};

/// Rows read per batch.
const BATCH: i64 = 500;

/// What a recomputation did; counts only, never identifiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recomputed {
    /// Bindings now stored in the canonical form.
    pub updated: u64,
    /// Bindings whose canonical identity is already bound to another
    /// account (the same person bound twice under two spellings): left as
    /// they were, for the operator to resolve.
    pub conflicting: u64,
    /// Bindings whose identifier does not decrypt, or is no national
    /// identifier of its country: left as they were.
    pub unusable: u64,
}

/// Recomputes every binding still stored in the form of an earlier version.
///
/// # Errors
/// If the database fails; rows already rewritten stay rewritten, and the
/// next start-up continues.
pub async fn recompute_bindings(db: &Database, keys: &EidKeys) -> Result<Recomputed, StoreError> {
    let mut done = Recomputed::default();
    let mut after = String::new();
    loop {
        let rows = sqlx::query(
            "SELECT account_id, scheme, country, person_identifier_enc FROM eid_bindings \
             WHERE identifier_version = 0 AND account_id > $1 ORDER BY account_id LIMIT $2",
        )
        .bind(&after)
        .bind(BATCH)
        .fetch_all(db.pool())
        .await?;
        let Some(last) = rows.last() else {
            return Ok(done);
        };
        after = last.try_get("account_id")?;
        for r in &rows {
            let account = AccountId::new(r.try_get::<String, _>("account_id")?);
            let scheme: String = r.try_get("scheme")?;
            let country: String = r.try_get("country")?;
            let sealed: String = r.try_get("person_identifier_enc")?;
            let Some(person) = keys
                .decrypt(&sealed, &account)
                .ok()
                .and_then(|raw| PersonIdentifier::parse(&country, &raw).ok())
            else {
                done.unusable += 1;
                continue;
            };
            let Ok(resealed) = keys.encrypt(person.national(), &account) else {
                done.unusable += 1;
                continue;
            };
            let result = sqlx::query(
                "UPDATE eid_bindings SET identity_hash = $3, person_hash = $4, person_identifier_enc = $5, \
                 country = $6, identifier_version = $7 \
                 WHERE account_id = $1 AND identifier_version = 0 AND person_identifier_enc = $2",
            )
            .bind(account.as_str())
            .bind(&sealed)
            .bind(keys.identity_hash(&scheme, &person))
            .bind(keys.person_hash(&person))
            .bind(resealed)
            .bind(person.country())
            .bind(IDENTIFIER_VERSION)
            .execute(db.pool())
            .await
            .map_err(StoreError::from);
            match result {
                Ok(r) => done.updated += r.rows_affected(),
                Err(e) if e.is_unique_violation() => done.conflicting += 1,
                Err(e) => return Err(e),
            }
        }
    }
}
