//! Business-register data: organizations and their statutory
//! representatives, imported from an extract of a national business
//! register (JSON or CSV). A re-import replaces an organization's
//! representatives: someone no longer listed loses the statutory power at
//! once, because statutory power is read from this table at every use.
//!
//! A representative's identifier is made canonical as the extract is read
//! ([`PersonIdentifier`]), in JSON and in CSV alike: `38001085718`,
//! `EE38001085718` and `EE/EE/38001085718` are one person, and a prefix of
//! another country than the representative's refuses the whole extract.

use serde::Deserialize;
use sqlx::Row as _;

use crate::clock::UnixTime;
use crate::eid::{EidKeys, IdentifierError, PersonIdentifier};
use crate::store::{Database, StoreError};

/// One organization as the register lists it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterEntry {
    /// ISO 3166-1 alpha-2 country of the register.
    pub country: String,
    /// The organization's code in that register.
    pub code: String,
    /// Its registered name.
    pub name: String,
    /// Its statutory representatives.
    #[serde(default)]
    pub representatives: Vec<Representative>,
}

/// A statutory representative, named by national person identifier: in
/// JSON `{country, person_identifier, name, role?}`.
#[derive(Clone, Deserialize)]
#[serde(try_from = "RepresentativeRecord")]
pub struct Representative {
    /// The person, by canonical identifier (never stored in the clear).
    pub person: PersonIdentifier,
    /// Name as registered.
    pub name: String,
    /// Role (for example `board member`).
    pub role: String,
}

/// A representative as the extract spells it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RepresentativeRecord {
    country: String,
    person_identifier: String,
    name: String,
    #[serde(default = "default_role")]
    role: String,
}

impl TryFrom<RepresentativeRecord> for Representative {
    type Error = IdentifierError;

    fn try_from(r: RepresentativeRecord) -> Result<Self, IdentifierError> {
        Ok(Self {
            person: PersonIdentifier::parse(&r.country, &r.person_identifier)?,
            name: r.name,
            role: r.role,
        })
    }
}

impl std::fmt::Debug for Representative {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Representative")
            .field("country", &self.person.country())
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

fn default_role() -> String {
    "board member".into()
}

/// The id of an organization: `<country>:<register code>` (ISO 6523 style).
#[must_use]
pub fn org_id(country: &str, code: &str) -> String {
    format!("{}:{}", country.to_ascii_uppercase(), code)
}

/// Why an extract could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file is not valid JSON or CSV of the expected shape.
    #[error("the register extract is not valid: {0}")]
    Format(String),
    /// The database failed; nothing of the import was kept.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses an extract: a JSON array of entries, or CSV with the header
/// `country,code,name,rep_country,rep_person_identifier,rep_name,rep_role`
/// (one row per representative; an organization without any has empty rep columns).
///
/// # Errors
/// [`ImportError::Format`] naming the problem.
pub fn parse(text: &str) -> Result<Vec<RegisterEntry>, ImportError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        return serde_json::from_str(trimmed).map_err(|e| ImportError::Format(e.to_string()));
    }
    let mut lines = trimmed.lines().filter(|l| !l.trim().is_empty());
    let header = lines
        .next()
        .ok_or_else(|| ImportError::Format("empty file".into()))?;
    let expected = "country,code,name,rep_country,rep_person_identifier,rep_name,rep_role";
    if header.trim() != expected {
        return Err(ImportError::Format(format!(
            "the CSV header must be `{expected}`"
        )));
    }
    let mut entries: Vec<RegisterEntry> = Vec::new();
    for (n, line) in lines.enumerate() {
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.len() != 7 {
            return Err(ImportError::Format(format!(
                "row {} has {} columns, not 7",
                n + 2,
                cols.len()
            )));
        }
        let id = org_id(cols[0], cols[1]);
        let pos = match entries
            .iter()
            .position(|e| org_id(&e.country, &e.code) == id)
        {
            Some(p) => p,
            None => {
                entries.push(RegisterEntry {
                    country: cols[0].to_owned(),
                    code: cols[1].to_owned(),
                    name: cols[2].to_owned(),
                    representatives: Vec::new(),
                });
                entries.len() - 1
            }
        };
        if !cols[4].is_empty() {
            let person = PersonIdentifier::parse(cols[3], cols[4])
                .map_err(|e| ImportError::Format(format!("row {}: {e}", n + 2)))?;
            entries[pos].representatives.push(Representative {
                person,
                name: cols[5].to_owned(),
                role: if cols[6].is_empty() {
                    default_role()
                } else {
                    cols[6].to_owned()
                },
            });
        }
    }
    Ok(entries)
}

/// What an import changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    /// Organizations created or updated.
    pub organizations: usize,
    /// Representatives now listed.
    pub representatives: usize,
    /// Representatives removed (their statutory power ended).
    pub removed: usize,
}

/// Imports an extract in one transaction: organizations are created or
/// renamed; each one's representatives become exactly those listed.
///
/// # Errors
/// If the database fails; then nothing changes.
pub async fn import(
    db: &Database,
    keys: &EidKeys,
    entries: &[RegisterEntry],
    actor: crate::audit::Actor,
    now: UnixTime,
) -> Result<ImportSummary, ImportError> {
    let mut summary = ImportSummary::default();
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    for e in entries {
        if e.country.len() != 2 || e.code.trim().is_empty() || e.name.trim().is_empty() {
            return Err(ImportError::Format(format!(
                "organization `{}` needs a 2-letter country, a code and a name",
                e.code
            )));
        }
        let id = org_id(&e.country, &e.code);
        sqlx::query(
            "INSERT INTO organizations (org_id, country, register_code, name, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (org_id) DO UPDATE SET name = $4, updated_at = $5",
        )
        .bind(&id)
        .bind(e.country.to_ascii_uppercase())
        .bind(&e.code)
        .bind(&e.name)
        .bind(now.0)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let before: Vec<String> =
            sqlx::query("SELECT person_hash FROM org_representatives WHERE org_id = $1")
                .bind(&id)
                .fetch_all(&mut *tx)
                .await
                .map_err(StoreError::from)?
                .iter()
                .map(|r| r.try_get::<String, _>("person_hash"))
                .collect::<Result<_, _>>()
                .map_err(StoreError::from)?;
        let listed: Vec<(String, &Representative)> = e
            .representatives
            .iter()
            .map(|r| (keys.person_hash(&r.person), r))
            .fold(Vec::new(), |mut seen, (hash, r)| {
                // One person listed twice (perhaps spelled two ways) counts once.
                if !seen.iter().any(|(h, _)| *h == hash) {
                    seen.push((hash, r));
                }
                seen
            });
        for gone in before
            .iter()
            .filter(|h| !listed.iter().any(|(l, _)| l == *h))
        {
            sqlx::query("DELETE FROM org_representatives WHERE org_id = $1 AND person_hash = $2")
                .bind(&id)
                .bind(gone)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            summary.removed += 1;
        }
        for (hash, r) in &listed {
            sqlx::query(
                "INSERT INTO org_representatives (org_id, person_hash, name, role, since) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (org_id, person_hash) DO UPDATE SET name = $3, role = $4",
            )
            .bind(&id)
            .bind(hash)
            .bind(&r.name)
            .bind(&r.role)
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
            summary.representatives += 1;
        }
        summary.organizations += 1;
    }
    let event = crate::audit::Event::by(crate::audit::Kind::RegisterImported, actor)
        .with("organizations", summary.organizations)
        .with("representatives", summary.representatives)
        .with("removed", summary.removed);
    let events = crate::audit::with_admin_action(event, "register.import");
    crate::audit::record_all(&mut tx, &events, now).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(summary)
}
