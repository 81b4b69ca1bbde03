//! National eID bindings: a proven identity, bound to one account.
//!
//! The binding is what identity proofing leaves behind: the scheme and
//! country of the eID, the person identifier (stored only encrypted with
//! AES-256-GCM), the verified names and birth date, the level of assurance
//! of the eID, and when it was verified. One national identity binds to at
//! most one account: a unique keyed hash (HMAC-SHA-256 over scheme,
//! country and identifier) enforces it in the database, across instances.
//! Re-proofing the same identity on the same account updates the binding.
//!
//! Every identifier is hashed, stored and compared in its canonical form
//! ([`PersonIdentifier`]): whatever spelling the upstream returned
//! (`38001085718`, `EE38001085718`, `EE/EE/38001085718`), one person has one
//! binding, one `identity_hash` and one `person_hash`. Bindings written by
//! earlier versions are recomputed once at start-up ([`recompute_bindings`]).
//!
//! The person identifier never appears in a log line or an error message.

pub mod connector;
pub mod identifier;
mod recompute;
pub mod settings;

pub use identifier::{IdentifierError, PersonIdentifier};
pub use recompute::{Recomputed, recompute_bindings};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use sha2::Sha256;
use sqlx::Row as _;

use crate::accounts::AccountId;
use crate::assurance::Level;
use crate::clock::UnixTime;
use crate::secrets::random_token;
use crate::store::{Database, StoreError};

/// Why a binding could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EidError {
    /// This identity is already bound to another account; nothing changed.
    #[error("this national identity is already bound to another Civitas account")]
    BoundElsewhere,
    /// The account is bound to another identity; nothing changed.
    #[error("this account is already bound to another national identity")]
    AccountBoundToOther,
    /// The stored identifier could not be decrypted (wrong key, tampering).
    #[error("the stored identity could not be read")]
    Crypto,
    /// The upstream's identifier is not a national identifier of its country
    /// (for example prefixed with another country); nothing changed.
    #[error(transparent)]
    Identifier(#[from] IdentifierError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A proven identity, as an eID connector reports it.
#[derive(Clone, PartialEq, Eq)]
pub struct ProvenIdentity {
    /// The connector that proved it.
    pub connector: String,
    /// The eID scheme (for example `tara`, `franceconnect`).
    pub scheme: String,
    /// ISO 3166-1 alpha-2 country of the eID.
    pub country: String,
    /// The national person identifier (secret: never logged): as the
    /// upstream returned it in a proof, canonical in a stored [`Binding`].
    pub person_identifier: String,
    /// Verified given name.
    pub given_name: Option<String>,
    /// Verified family name.
    pub family_name: Option<String>,
    /// Verified birth date (YYYY-MM-DD).
    pub birthdate: Option<String>,
    /// The level of assurance of the eID.
    pub level: Level,
}

impl std::fmt::Debug for ProvenIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvenIdentity")
            .field("connector", &self.connector)
            .field("scheme", &self.scheme)
            .field("country", &self.country)
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

/// A stored binding, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The identity.
    pub identity: ProvenIdentity,
    /// When it was (last) verified.
    pub verified_at: UnixTime,
    /// Is the identifier stored in its canonical form? Not for a row that
    /// start-up left in an earlier version's form ([`recompute_bindings`]).
    pub canonical: bool,
}

/// The keys of the binding table: one for the uniqueness hash, one for
/// encrypting identifiers. Kept in the database's server secrets, so every
/// instance uses the same.
#[derive(Clone)]
pub struct EidKeys {
    hash_key: Vec<u8>,
    enc_key: Vec<u8>,
}

impl std::fmt::Debug for EidKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EidKeys([redacted])")
    }
}

async fn server_secret(db: &Database, name: &str, now: UnixTime) -> Result<Vec<u8>, StoreError> {
    sqlx::query("INSERT INTO server_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(random_token(32))
        .bind(now.0)
        .execute(db.pool())
        .await?;
    let row = sqlx::query("SELECT value FROM server_secrets WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await?;
    let value: String = row.try_get("value")?;
    URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl EidKeys {
    /// Loads the keys, creating them on first start.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn load(db: &Database, now: UnixTime) -> Result<Self, StoreError> {
        Ok(Self {
            hash_key: server_secret(db, "eid-binding-hash", now).await?,
            enc_key: server_secret(db, "eid-identifier-encryption", now).await?,
        })
    }

    /// The uniqueness hash of a binding: scheme, country and canonical identifier.
    fn identity_hash(&self, scheme: &str, person: &PersonIdentifier) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.hash_key) else {
            return String::new(); // unreachable: HMAC takes keys of any length
        };
        for part in [scheme, person.country(), person.national()] {
            mac.update(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            mac.update(part.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// A hash of country and canonical person identifier alone (no
    /// scheme): how business-register data and mandates, which name people
    /// by national identifier, are matched to proven citizens.
    #[must_use]
    pub fn person_hash(&self, person: &PersonIdentifier) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.hash_key) else {
            return String::new(); // unreachable: HMAC takes keys of any length
        };
        mac.update(b"person\0");
        for part in [person.country(), person.national()] {
            mac.update(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            mac.update(part.as_bytes());
        }
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    fn encrypt(&self, plain: &str, account: &AccountId) -> Result<String, EidError> {
        let mut iv = [0u8; 12];
        openssl::rand::rand_bytes(&mut iv).map_err(|_| EidError::Crypto)?;
        let mut tag = [0u8; 16];
        let sealed = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.enc_key,
            Some(&iv),
            account.as_str().as_bytes(),
            plain.as_bytes(),
            &mut tag,
        )
        .map_err(|_| EidError::Crypto)?;
        let mut out = iv.to_vec();
        out.extend_from_slice(&sealed);
        out.extend_from_slice(&tag);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    fn decrypt(&self, sealed: &str, account: &AccountId) -> Result<String, EidError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(sealed)
            .map_err(|_| EidError::Crypto)?;
        if bytes.len() < 28 {
            return Err(EidError::Crypto);
        }
        let (iv, rest) = bytes.split_at(12);
        let (data, tag) = rest.split_at(rest.len() - 16);
        let plain = decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.enc_key,
            Some(iv),
            account.as_str().as_bytes(),
            data,
            tag,
        )
        .map_err(|_| EidError::Crypto)?;
        String::from_utf8(plain).map_err(|_| EidError::Crypto)
    }
}

/// The version of the stored identifier form (`eid_bindings.identifier_version`):
/// 0 as the upstream returned it (before canonical identifiers), 1 canonical.
pub(crate) const IDENTIFIER_VERSION: i64 = 1;

/// Binds `identity` to `account`, or re-proofs an existing binding of the
/// same identity on the same account. The identifier is made canonical
/// first; what is stored, hashed and audited is the canonical form. An
/// identity bound elsewhere, or an account bound to another identity,
/// changes nothing.
///
/// # Errors
/// [`EidError::Identifier`] for an identifier that is not one of its
/// country, [`EidError::BoundElsewhere`], [`EidError::AccountBoundToOther`],
/// or a store failure.
pub async fn bind(
    db: &Database,
    keys: &EidKeys,
    account: &AccountId,
    identity: &ProvenIdentity,
    now: UnixTime,
) -> Result<(), EidError> {
    let person = PersonIdentifier::parse(&identity.country, &identity.person_identifier)?;
    let hash = keys.identity_hash(&identity.scheme, &person);
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    let owner = sqlx::query("SELECT account_id FROM eid_bindings WHERE identity_hash = $1")
        .bind(&hash)
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    if let Some(row) = owner {
        let bound_to: String = row.try_get("account_id").map_err(StoreError::from)?;
        if bound_to != account.as_str() {
            return Err(EidError::BoundElsewhere);
        }
    }
    let current = sqlx::query("SELECT identity_hash FROM eid_bindings WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
    let sealed = keys.encrypt(person.national(), account)?;
    let reproofed = current.is_some();
    let result = match current {
        Some(row) if row.try_get::<String, _>("identity_hash").map_err(StoreError::from)? != hash => {
            return Err(EidError::AccountBoundToOther);
        }
        Some(_) => {
            sqlx::query(
                "UPDATE eid_bindings SET connector = $2, person_identifier_enc = $3, given_name = $4, family_name = $5, \
                 birthdate = $6, level = $7, verified_at = $8, person_hash = $9, identifier_version = $10 \
                 WHERE account_id = $1",
            )
            .bind(account.as_str())
            .bind(&identity.connector)
            .bind(&sealed)
            .bind(identity.given_name.clone())
            .bind(identity.family_name.clone())
            .bind(identity.birthdate.clone())
            .bind(identity.level.alias())
            .bind(now.0)
            .bind(keys.person_hash(&person))
            .bind(IDENTIFIER_VERSION)
            .execute(&mut *tx)
            .await
        }
        None => {
            sqlx::query(
                "INSERT INTO eid_bindings (account_id, identity_hash, connector, scheme, country, person_identifier_enc, \
                 given_name, family_name, birthdate, level, verified_at, created_at, person_hash, identifier_version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13)",
            )
            .bind(account.as_str())
            .bind(&hash)
            .bind(&identity.connector)
            .bind(&identity.scheme)
            .bind(person.country())
            .bind(&sealed)
            .bind(identity.given_name.clone())
            .bind(identity.family_name.clone())
            .bind(identity.birthdate.clone())
            .bind(identity.level.alias())
            .bind(now.0)
            .bind(keys.person_hash(&person))
            .bind(IDENTIFIER_VERSION)
            .execute(&mut *tx)
            .await
        }
    };
    if let Err(e) = result {
        let e = StoreError::from(e);
        // A concurrent binding of the same identity won the race.
        return Err(if e.is_unique_violation() {
            EidError::BoundElsewhere
        } else {
            e.into()
        });
    }
    // Scheme, country and level only: never the identifier or the names.
    let event = crate::audit::Event::citizen(crate::audit::Kind::EidBound, account)
        .with("scheme", identity.scheme.as_str())
        .with("country", person.country())
        .with("level", identity.level.alias())
        .with("connector", identity.connector.as_str())
        .with("reproofed", reproofed);
    crate::audit::record(&mut tx, &event, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(())
}

/// The binding of `account`, decrypted, if any.
///
/// # Errors
/// If the database fails or the identifier cannot be decrypted.
pub async fn binding(
    db: &Database,
    keys: &EidKeys,
    account: &AccountId,
) -> Result<Option<Binding>, EidError> {
    let row = sqlx::query(
        "SELECT connector, scheme, country, person_identifier_enc, given_name, family_name, birthdate, level, verified_at, \
         identifier_version FROM eid_bindings WHERE account_id = $1",
    )
    .bind(account.as_str())
    .fetch_optional(db.pool())
    .await
    .map_err(StoreError::from)?;
    let Some(r) = row else { return Ok(None) };
    let get = |c: &str| r.try_get::<String, _>(c).map_err(StoreError::from);
    let level =
        Level::parse(&get("level")?).ok_or_else(|| StoreError::Corrupt("eid level".into()))?;
    Ok(Some(Binding {
        identity: ProvenIdentity {
            connector: get("connector")?,
            scheme: get("scheme")?,
            country: get("country")?,
            person_identifier: keys.decrypt(&get("person_identifier_enc")?, account)?,
            given_name: r.try_get("given_name").map_err(StoreError::from)?,
            family_name: r.try_get("family_name").map_err(StoreError::from)?,
            birthdate: r.try_get("birthdate").map_err(StoreError::from)?,
            level,
        },
        verified_at: UnixTime(r.try_get("verified_at").map_err(StoreError::from)?),
        canonical: r
            .try_get::<i64, _>("identifier_version")
            .map_err(StoreError::from)?
            >= IDENTIFIER_VERSION,
    }))
}

/// The identity-proofing level of `account`: its eID's level, or none.
///
/// # Errors
/// If the database fails.
pub async fn proofing_level(
    db: &Database,
    account: &AccountId,
) -> Result<Option<Level>, StoreError> {
    let row = sqlx::query("SELECT level FROM eid_bindings WHERE account_id = $1")
        .bind(account.as_str())
        .fetch_optional(db.pool())
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("level"))
        .transpose()?
        .as_deref()
        .and_then(Level::parse))
}

/// The account a proven identity is bound to, if any (eID recovery),
/// whatever spelling of the identifier the upstream returned. An identifier
/// that is not one of its country's is bound to no account.
///
/// # Errors
/// If the database fails.
pub async fn account_of(
    db: &Database,
    keys: &EidKeys,
    identity: &ProvenIdentity,
) -> Result<Option<AccountId>, StoreError> {
    let Ok(person) = PersonIdentifier::parse(&identity.country, &identity.person_identifier) else {
        return Ok(None);
    };
    let row = sqlx::query("SELECT account_id FROM eid_bindings WHERE identity_hash = $1")
        .bind(keys.identity_hash(&identity.scheme, &person))
        .fetch_optional(db.pool())
        .await?;
    Ok(row
        .map(|r| r.try_get::<String, _>("account_id"))
        .transpose()?
        .map(AccountId::new))
}
