//! Subject identifiers (OIDC Core §8): pairwise by default, so that two
//! agencies cannot join their records of the same citizen.
//!
//! A pairwise `sub` is `base64url(HMAC-SHA256(key, sector ‖ 0x00 ‖ account))`:
//! stable for one sector, different across sectors, and not reversible
//! without the key. The sector is the one stored with the client when it
//! was registered ([`crate::clients::sector`]), never recomputed from its
//! current metadata, so editing a registration cannot reveal the subjects
//! of another sector. The key is generated once and kept in the database,
//! so every instance computes the same values.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::Row as _;

use crate::accounts::AccountId;
use crate::clients::{Client, SubjectType};
use crate::clock::UnixTime;
use crate::secrets::random_token;
use crate::store::{Database, StoreError};

/// The pairwise key.
#[derive(Clone)]
pub struct PairwiseKey(Vec<u8>);

impl std::fmt::Debug for PairwiseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PairwiseKey([redacted])")
    }
}

impl PairwiseKey {
    /// Loads the key, creating it on first start (race-free across instances).
    ///
    /// # Errors
    /// If the database fails.
    pub async fn load(db: &Database, now: UnixTime) -> Result<Self, StoreError> {
        sqlx::query(
            "INSERT INTO server_secrets (name, value, created_at) VALUES ('pairwise', $1, $2) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(random_token(32))
        .bind(now.0)
        .execute(db.pool())
        .await?;
        let row = sqlx::query("SELECT value FROM server_secrets WHERE name = 'pairwise'")
            .fetch_one(db.pool())
            .await?;
        Ok(Self(row.try_get::<String, _>("value")?.into_bytes()))
    }

    /// The `sub` of `account` as seen by `client`: in the client's stored sector.
    #[must_use]
    pub fn subject(&self, client: &Client, account: &AccountId) -> String {
        if client.subject_type == SubjectType::Public {
            return account.as_str().to_owned();
        }
        let sector = client.sector();
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            return String::new(); // unreachable: HMAC takes keys of any length
        };
        mac.update(sector.as_bytes());
        mac.update(&[0]);
        mac.update(account.as_str().as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}
