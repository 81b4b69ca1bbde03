//! One-time recovery codes: ten 80-bit codes, shown once when the citizen
//! sets them up and stored only as SHA-256 hashes. Using one signs the
//! citizen in just enough to register a new passkey; every use is recorded.

use crate::audit::{self, Event, Kind};
use sqlx::Row as _;

use super::AccountId;
use crate::clock::UnixTime;
use crate::secrets::SecretHash;
use crate::store::{Database, StoreError};

/// How many codes a set holds.
pub const CODES_PER_SET: usize = 10;

const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A fresh code: 16 characters from a 32-letter alphabet (80 bits), in
/// groups of four for reading aloud.
fn new_code() -> String {
    let raw: [u8; 16] = crate::secrets::random_bytes();
    let chars: Vec<char> = raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The canonical form of a typed code: upper case, no spaces or dashes.
fn normalise(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Replaces the account's unused codes with a new set; returns the codes,
/// which are never shown again.
///
/// # Errors
/// If the database fails; the old set then stays.
pub async fn generate(
    db: &Database,
    account: &AccountId,
    now: UnixTime,
) -> Result<Vec<String>, StoreError> {
    let codes: Vec<String> = (0..CODES_PER_SET).map(|_| new_code()).collect();
    let mut tx = db.begin().await?;
    sqlx::query("DELETE FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL")
        .bind(account.as_str())
        .execute(&mut *tx)
        .await?;
    for code in &codes {
        sqlx::query(
            "INSERT INTO recovery_codes (code_hash, account_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(SecretHash::of(&normalise(code)).as_str())
        .bind(account.as_str())
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
    }
    let event = Event::citizen(Kind::RecoveryCodesGenerated, account).with("count", codes.len());
    audit::record(&mut tx, &event, now).await?;
    tx.commit().await?;
    Ok(codes)
}

/// How many unused codes the account has.
///
/// # Errors
/// If the database fails.
pub async fn remaining(db: &Database, account: &AccountId) -> Result<i64, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM recovery_codes WHERE account_id = $1 AND used_at IS NULL",
    )
    .bind(account.as_str())
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("n")?)
}

/// What presenting a recovery code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// The code was valid and is now used: the account it opens.
    Account(AccountId),
    /// The code is valid but its account is locked; the code stays unused.
    Locked,
    /// No such unused code.
    Invalid,
}

/// Uses a code: the account it belongs to, if it was valid and unused and
/// the account is not locked. The use is atomic (a code works once, even
/// under concurrent attempts) and recorded in the audit log.
///
/// # Errors
/// If the database fails.
pub async fn redeem(db: &Database, code: &str, now: UnixTime) -> Result<Redeemed, StoreError> {
    let hash = SecretHash::of(&normalise(code));
    let row = sqlx::query(
        "SELECT r.account_id, a.locked_at FROM recovery_codes r JOIN accounts a ON a.account_id = r.account_id \
         WHERE r.code_hash = $1 AND r.used_at IS NULL",
    )
    .bind(hash.as_str())
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(Redeemed::Invalid);
    };
    if row.try_get::<Option<i64>, _>("locked_at")?.is_some() {
        return Ok(Redeemed::Locked);
    }
    let account = AccountId::new(row.try_get::<String, _>("account_id")?);
    let mut tx = db.begin().await?;
    let used = sqlx::query(
        "UPDATE recovery_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL",
    )
    .bind(hash.as_str())
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Ok(Redeemed::Invalid);
    }
    audit::record(
        &mut tx,
        &Event::citizen(Kind::RecoveryCodeUsed, &account),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(Redeemed::Account(account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_80_bits_in_readable_groups() {
        let c = new_code();
        assert_eq!(c.len(), 19);
        assert_eq!(c.split('-').count(), 4);
        assert_eq!(
            normalise(&c.to_lowercase().replace('-', " ")),
            c.replace('-', "")
        );
    }
}
