//! Export of everything Civitas holds about a citizen (a data-protection
//! access request), as one JSON document.
//!
//! It holds the account, its passkeys' metadata (never the key material),
//! how many recovery codes remain (never the codes), the eID binding
//! decrypted, consents, grants, mandates granted and held, the
//! organizations the citizen represents by law (from the register), roles,
//! owned clients, and every audit entry about the account.
//!
//! The national identifier is **masked** unless the caller asks for it in
//! clear ([`PersonIdentifier::Clear`], which the admin API allows only to
//! a client the operator marked for it): `person_identifier` is then null
//! and `person_identifier_masked` shows the country and the last two
//! characters (`EE-...18`), enough for a service desk to confirm it with
//! the citizen. Each export is recorded as `account.exported`, with
//! `person_identifier` `masked` or `included`.

use serde_json::{Value, json};
use sqlx::Row as _;
use sqlx::any::AnyRow;

use super::{AccountError, AccountId, Accounts, roles};
use crate::audit::{self, Actor, Event, Kind};
use crate::eid::EidKeys;
use crate::store::flag;

/// The version of the document's shape.
pub const FORMAT: &str = "civitas-account-export/1";

/// How the export shows the national identifier of the eID binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonIdentifier {
    /// Country and the last two characters only (the default).
    Masked,
    /// In clear: asked for explicitly, by a caller allowed it.
    Clear,
}

impl PersonIdentifier {
    /// The `person_identifier` fact of the export's audit entries.
    #[must_use]
    pub fn as_fact(self) -> &'static str {
        match self {
            Self::Masked => "masked",
            Self::Clear => "included",
        }
    }
}

/// `EE-...18`: the country and the last two characters, or only the
/// country for an identifier shorter than six characters (the two would
/// then say too much).
fn masked(country: &str, identifier: &str) -> String {
    let chars: Vec<char> = identifier.chars().collect();
    if chars.len() < 6 {
        return format!("{country}-...");
    }
    let tail: String = chars[chars.len() - 2..].iter().collect();
    format!("{country}-...{tail}")
}

fn opt_i64(r: &AnyRow, c: &str) -> Result<Value, sqlx::Error> {
    Ok(r.try_get::<Option<i64>, _>(c)?
        .map_or(Value::Null, Value::from))
}

fn json_text(r: &AnyRow, c: &str) -> Result<Value, sqlx::Error> {
    Ok(r.try_get::<Option<String>, _>(c)?
        .map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
        .unwrap_or(Value::Null))
}

fn mandate(r: &AnyRow) -> Result<Value, sqlx::Error> {
    Ok(json!({
        "mandate_id": r.try_get::<String, _>("mandate_id")?,
        "org_id": r.try_get::<String, _>("org_id")?,
        "organization": r.try_get::<String, _>("org_name")?,
        "powers": r
            .try_get::<String, _>("powers")?
            .split(' ')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>(),
        "valid_from": r.try_get::<i64, _>("valid_from")?,
        "valid_until": opt_i64(r, "valid_until")?,
        "may_delegate": flag(r.try_get("may_delegate")?),
        "parent_id": r.try_get::<Option<String>, _>("parent_id")?,
        "min_level": r.try_get::<String, _>("min_level")?,
        "granted_at": r.try_get::<i64, _>("granted_at")?,
        "accepted_at": opt_i64(r, "accepted_at")?,
        "revoked_at": opt_i64(r, "revoked_at")?,
    }))
}

const MANDATE_COLUMNS: &str = "m.mandate_id, m.org_id, o.name AS org_name, m.powers, m.valid_from, \
     m.valid_until, m.may_delegate, m.parent_id, m.min_level, m.granted_at, m.accepted_at, m.revoked_at";

impl Accounts {
    /// Everything held about `account`, as one JSON document (see the module
    /// documentation), the national identifier shown as `identifier` says,
    /// and its `account.exported` entry (with the admin entry when `actor`
    /// is an admin-API client), written after the
    /// document was read.
    ///
    /// # Errors
    /// [`AccountError::NotFound`], a store failure, or an eID binding that
    /// cannot be decrypted.
    pub async fn export(
        &self,
        eid_keys: &EidKeys,
        account: &AccountId,
        actor: &Actor,
        identifier: PersonIdentifier,
    ) -> Result<Value, AccountError> {
        let id = account.as_str();
        let pool = self.db.pool();
        let acc = sqlx::query(
            "SELECT account_id, display_name, email, email_verified, created_at, locked_at \
             FROM accounts WHERE account_id = $1",
        )
        .bind(id)
        .fetch_optional(pool)
        .await?
        .ok_or(AccountError::NotFound)?;
        let account_json = json!({
            "id": id,
            "display_name": acc.try_get::<String, _>("display_name")?,
            "email": acc.try_get::<Option<String>, _>("email")?,
            "email_verified": flag(acc.try_get("email_verified")?),
            "created_at": acc.try_get::<i64, _>("created_at")?,
            "locked_at": opt_i64(&acc, "locked_at")?,
        });

        let mut passkeys = Vec::new();
        for r in sqlx::query(
            "SELECT credential_id, name, backup_eligible, backup_state, sign_count, aaguid, transports, \
             created_at, last_used_at, max_level FROM passkeys WHERE account_id = $1 ORDER BY created_at",
        )
        .bind(id)
        .fetch_all(pool)
        .await?
        {
            passkeys.push(json!({
                "credential_id": r.try_get::<String, _>("credential_id")?,
                "name": r.try_get::<String, _>("name")?,
                "synced": flag(r.try_get("backup_eligible")?),
                "backed_up": flag(r.try_get("backup_state")?),
                "sign_count": r.try_get::<i64, _>("sign_count")?,
                "aaguid": r.try_get::<Option<String>, _>("aaguid")?,
                "transports": r.try_get::<String, _>("transports")?,
                "created_at": r.try_get::<i64, _>("created_at")?,
                "last_used_at": opt_i64(&r, "last_used_at")?,
                "max_level": r.try_get::<String, _>("max_level")?,
            }));
        }

        let recovery_codes = super::recovery::remaining(&self.db, account).await?;

        let eid_binding = crate::eid::binding(&self.db, eid_keys, account)
            .await?
            .map(|b| {
                let id = &b.identity;
                let (clear, hint) = match identifier {
                    PersonIdentifier::Clear => (Some(id.person_identifier.as_str()), None),
                    PersonIdentifier::Masked => {
                        (None, Some(masked(&id.country, &id.person_identifier)))
                    }
                };
                let mut binding = json!({
                    "connector": b.identity.connector,
                    "scheme": b.identity.scheme,
                    "country": b.identity.country,
                    "person_identifier": clear,
                    "given_name": b.identity.given_name,
                    "family_name": b.identity.family_name,
                    "birthdate": b.identity.birthdate,
                    "level": b.identity.level.alias(),
                    "verified_at": b.verified_at.0,
                });
                if let Some(m) = hint {
                    binding["person_identifier_masked"] = m.into();
                }
                binding
            });

        let consents: Vec<Value> = crate::oidc::consent::list(&self.db, account)
            .await?
            .into_iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id,
                    "scope": c.scope.to_string(),
                    "claims": c.claims,
                    "granted_at": c.granted_at.0,
                })
            })
            .collect();

        let mut grants = Vec::new();
        for r in sqlx::query(
            "SELECT grant_id, client_id, scope, acr, amr, auth_time, offline, created_at, expires_at, \
             revoked_at, representation FROM grants WHERE account_id = $1 ORDER BY created_at",
        )
        .bind(id)
        .fetch_all(pool)
        .await?
        {
            grants.push(json!({
                "grant_id": r.try_get::<String, _>("grant_id")?,
                "client_id": r.try_get::<String, _>("client_id")?,
                "scope": r.try_get::<String, _>("scope")?,
                "acr": r.try_get::<String, _>("acr")?,
                "amr": r.try_get::<String, _>("amr")?,
                "auth_time": r.try_get::<i64, _>("auth_time")?,
                "offline": flag(r.try_get("offline")?),
                "created_at": r.try_get::<i64, _>("created_at")?,
                "expires_at": r.try_get::<i64, _>("expires_at")?,
                "revoked_at": opt_i64(&r, "revoked_at")?,
                "representation": json_text(&r, "representation")?,
            }));
        }

        let mandates = |filter: &str| {
            sqlx::AssertSqlSafe(format!(
                "SELECT {MANDATE_COLUMNS} FROM mandates m JOIN organizations o ON o.org_id = m.org_id \
                 WHERE m.{filter} = $1 ORDER BY m.granted_at, m.mandate_id"
            ))
        };
        let mut granted = Vec::new();
        for r in sqlx::query(mandates("granted_by"))
            .bind(id)
            .fetch_all(pool)
            .await?
        {
            granted.push(mandate(&r)?);
        }
        let mut held = Vec::new();
        for r in sqlx::query(mandates("representative_account"))
            .bind(id)
            .fetch_all(pool)
            .await?
        {
            held.push(mandate(&r)?);
        }

        let mut representative_of = Vec::new();
        for r in sqlx::query(
            "SELECT o.org_id, o.name AS org_name, r.name, r.role, r.since FROM org_representatives r \
             JOIN organizations o ON o.org_id = r.org_id \
             JOIN eid_bindings b ON b.person_hash = r.person_hash \
             WHERE b.account_id = $1 ORDER BY o.org_id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?
        {
            representative_of.push(json!({
                "org_id": r.try_get::<String, _>("org_id")?,
                "organization": r.try_get::<String, _>("org_name")?,
                "listed_as": r.try_get::<String, _>("name")?,
                "role": r.try_get::<String, _>("role")?,
                "since": r.try_get::<i64, _>("since")?,
            }));
        }

        let roles: Vec<String> =
            sqlx::query("SELECT role FROM account_roles WHERE account_id = $1 ORDER BY role")
                .bind(id)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("role"))
                .collect::<Result<_, _>>()?;
        let owned_clients = roles::owned_clients(&self.db, account).await?;

        let mut audit_entries = audit::for_account(&self.db, account, i64::MAX).await?;
        audit_entries.reverse();

        let now = self.clock.now();
        let doc = json!({
            "format": FORMAT,
            "exported_at": now.0,
            "account": account_json,
            "passkeys": passkeys,
            "recovery_codes": { "remaining": recovery_codes },
            "eid_binding": eid_binding,
            "consents": consents,
            "grants": grants,
            "mandates_granted": granted,
            "mandates_held": held,
            "representative_of": representative_of,
            "roles": roles,
            "owned_clients": owned_clients,
            "audit": audit_entries,
        });
        let event = Event::by(Kind::AccountExported, actor.clone())
            .account(account)
            .with("person_identifier", identifier.as_fact());
        let mut tx = self.db.begin().await?;
        audit::record_all(
            &mut tx,
            &audit::with_admin_action(event, "account.export"),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::masked;

    #[test]
    fn the_mask_shows_the_country_and_at_most_the_last_two_characters() {
        assert_eq!(masked("EE", "38001085718"), "EE-...18");
        assert_eq!(masked("LT", "ŽŪ1234"), "LT-...34");
        assert_eq!(masked("SE", "12345"), "SE-...");
        assert_eq!(masked("SE", ""), "SE-...");
    }
}
