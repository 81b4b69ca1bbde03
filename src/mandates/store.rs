//! The `mandates` table: rows to [`Mandate`]s, the chain of mandates a
//! sub-delegation hangs from, and the read-only lists of the citizen's page.

use sqlx::Row as _;

use super::{Mandate, MandateError, Mandates};
use crate::accounts::AccountId;
use crate::assurance::Level;
use crate::clock::UnixTime;
use crate::store::{StoreError, flag};

pub(super) const COLUMNS: &str = "mandate_id, org_id, representative_account, powers, valid_from, valid_until, may_delegate, \
                                  parent_id, granted_by, granted_at, accepted_at, revoked_at, min_level";

/// The longest chain of sub-delegations followed; a longer one (which the
/// grant rules cannot make) counts as broken.
pub(super) const MAX_DEPTH: i64 = 64;

/// [`COLUMNS`], each qualified with `alias`.
pub(super) fn columns_of(alias: &str) -> String {
    COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The recursive part of every query over a chain: `chain (link, depth)`
/// holds the mandate `$n` (depth 0) and every mandate above it, up to its
/// root, by `parent_id`.
pub(super) fn chain_cte(n: usize) -> String {
    format!(
        "WITH RECURSIVE chain (link, depth) AS (\
           SELECT CAST(${n} AS TEXT), 0 \
           UNION ALL \
           SELECT m.parent_id, c.depth + 1 FROM chain c JOIN mandates m ON m.mandate_id = c.link \
           WHERE m.parent_id IS NOT NULL AND c.depth < {MAX_DEPTH}) "
    )
}

pub(super) fn from_row(r: &sqlx::any::AnyRow) -> Result<Mandate, StoreError> {
    let powers: String = r.try_get("powers")?;
    let level: String = r.try_get("min_level")?;
    Ok(Mandate {
        id: r.try_get("mandate_id")?,
        org_id: r.try_get("org_id")?,
        representative: r
            .try_get::<Option<String>, _>("representative_account")?
            .map(AccountId::new),
        powers: powers
            .split(' ')
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        valid_from: UnixTime(r.try_get("valid_from")?),
        valid_until: r.try_get::<Option<i64>, _>("valid_until")?.map(UnixTime),
        may_delegate: flag(r.try_get("may_delegate")?),
        parent: r.try_get("parent_id")?,
        granted_by: AccountId::new(r.try_get::<String, _>("granted_by")?),
        granted_at: UnixTime(r.try_get("granted_at")?),
        accepted_at: r.try_get::<Option<i64>, _>("accepted_at")?.map(UnixTime),
        revoked_at: r.try_get::<Option<i64>, _>("revoked_at")?.map(UnixTime),
        min_level: Level::parse(&level)
            .ok_or_else(|| StoreError::Corrupt("mandate level".into()))?,
    })
}

/// Locks the row of mandate `id` until the end of the caller's transaction
/// (a no-op update, portable): a grant under it and its revocation's
/// cascade take it before anything else, so they never overlap.
///
/// # Errors
/// If the database fails.
pub(super) async fn lock_mandate(
    conn: &mut sqlx::AnyConnection,
    id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE mandates SET mandate_id = mandate_id WHERE mandate_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Did one of `selves` grant one of `mandates`?
pub(super) fn granted_by_any(mandates: &[Mandate], selves: &[AccountId]) -> bool {
    mandates.iter().any(|a| selves.contains(&a.granted_by))
}

/// Does a chain (a mandate's ancestors, nearest first, as [`Mandates::ancestors`]
/// returns them) hold at `now`: every link valid, up to a root?
pub(super) fn chain_holds(ancestors: &[Mandate], now: UnixTime) -> bool {
    ancestors.iter().all(|a| a.is_valid(now))
        && ancestors.last().is_some_and(|a| a.parent.is_none())
}

impl Mandates {
    /// The mandate with this id.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn get(&self, id: &str) -> Result<Option<Mandate>, MandateError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM mandates WHERE mandate_id = $1"
        ));
        let row = sqlx::query(sql)
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.map(|r| from_row(&r)).transpose()?)
    }

    /// The mandate `id` and every mandate it was delegated from, nearest
    /// first, up to its root (or as far as the chain goes).
    pub(super) async fn ancestors(&self, id: &str) -> Result<Vec<Mandate>, MandateError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "{}SELECT {} FROM chain c JOIN mandates m ON m.mandate_id = c.link ORDER BY c.depth",
            chain_cte(1),
            columns_of("m"),
        ));
        let rows = sqlx::query(sql).bind(id).fetch_all(self.db.pool()).await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    /// Does `m` count at `now` for its representative, one of whose
    /// accounts `selves` lists ([`Mandates::selves`]): valid itself, and
    /// every mandate above it, and granted, along its whole chain, by none
    /// of those accounts (which earlier versions let happen)?
    pub(super) async fn holds(
        &self,
        m: &Mandate,
        selves: &[AccountId],
        now: UnixTime,
    ) -> Result<bool, MandateError> {
        if !m.is_valid(now) || selves.contains(&m.granted_by) {
            return Ok(false);
        }
        let Some(parent) = &m.parent else {
            return Ok(true);
        };
        let above = self.ancestors(parent).await?;
        Ok(chain_holds(&above, now) && !granted_by_any(&above, selves))
    }

    /// Every account of the person `account` is: itself, and every account
    /// bound by eID to the same person (`person_hash`), through any scheme.
    /// One person may hold several: the binding is unique per scheme,
    /// country and identifier, the `person_hash` per country and identifier.
    pub(super) async fn selves(&self, account: &AccountId) -> Result<Vec<AccountId>, MandateError> {
        let rows = sqlx::query(
            "SELECT o.account_id FROM eid_bindings b JOIN eid_bindings o ON o.person_hash = b.person_hash \
             WHERE b.account_id = $1 ORDER BY o.account_id",
        )
        .bind(account.as_str())
        .fetch_all(self.db.pool())
        .await?;
        let mut selves = vec![account.clone()];
        for r in rows {
            let other = AccountId::new(r.try_get::<String, _>("account_id")?);
            if other != *account {
                selves.push(other);
            }
        }
        Ok(selves)
    }

    pub(super) async fn person_hash_of(
        &self,
        account: &AccountId,
    ) -> Result<Option<String>, MandateError> {
        let row = sqlx::query("SELECT person_hash FROM eid_bindings WHERE account_id = $1")
            .bind(account.as_str())
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>("person_hash"))
            .transpose()?
            .flatten())
    }

    /// Mandates `account` granted that are still in force, with the organization's name.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn granted_by(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(Mandate, String)>, MandateError> {
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {}, o.name AS org_name FROM mandates m JOIN organizations o ON o.org_id = m.org_id \
             WHERE m.granted_by = $1 AND m.revoked_at IS NULL ORDER BY m.granted_at",
            columns_of("m"),
        ));
        let rows = sqlx::query(sql)
            .bind(account.as_str())
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| Ok((from_row(r)?, r.try_get::<String, _>("org_name")?)))
            .collect()
    }

    /// Mandates addressed to `account` (by its eID-proven identifier), not
    /// yet accepted, and not granted by `account` or another account of the
    /// same person ([`Mandates::selves`]).
    ///
    /// # Errors
    /// If the database fails.
    pub async fn pending_for(
        &self,
        account: &AccountId,
    ) -> Result<Vec<(Mandate, String)>, MandateError> {
        let Some(person) = self.person_hash_of(account).await? else {
            return Ok(Vec::new());
        };
        let selves = self.selves(account).await?;
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {}, o.name AS org_name FROM mandates m JOIN organizations o ON o.org_id = m.org_id \
             WHERE m.representative_person = $1 AND m.accepted_at IS NULL \
             AND m.revoked_at IS NULL ORDER BY m.granted_at",
            columns_of("m"),
        ));
        let rows = sqlx::query(sql)
            .bind(person)
            .fetch_all(self.db.pool())
            .await?;
        let mut out = Vec::new();
        for r in &rows {
            let m = from_row(r)?;
            if !selves.contains(&m.granted_by) {
                out.push((m, r.try_get::<String, _>("org_name")?));
            }
        }
        Ok(out)
    }
}
