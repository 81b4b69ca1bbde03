//! The operator's view of organizations and mandates (admin API): list the
//! organizations and an organization's mandates, and revoke a mandate
//! without being one of its parties.

use sqlx::Row as _;

use super::store::{COLUMNS, from_row, lock_mandate};
use super::{Mandate, MandateError, Mandates};
use crate::audit::{self, Actor, Event, Kind};
use crate::clock::UnixTime;
use crate::store::StoreError;

/// An organization from the business register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// `CC:code`.
    pub org_id: String,
    /// ISO country code.
    pub country: String,
    /// Code in the national register.
    pub register_code: String,
    /// Registered name.
    pub name: String,
    /// How many statutory representatives the register lists.
    pub representatives: i64,
    /// Last imported.
    pub updated_at: UnixTime,
}

/// Revokes mandate `root` and everything delegated from it, inside the
/// caller's transaction, naming `revoked_by` (an account id or a stored
/// actor). Returns how many mandates ended now.
///
/// Each mandate's row is locked before its children are listed, as a grant
/// under it locks it before its insert: a sub-delegation being granted
/// meanwhile is either committed before the list is read, and revoked
/// here, or made to wait and then refused (see `grant.rs`).
///
/// # Errors
/// If the database fails.
pub async fn revoke_cascade(
    conn: &mut sqlx::AnyConnection,
    root: &str,
    now: UnixTime,
    revoked_by: &str,
) -> Result<u64, StoreError> {
    let mut frontier = vec![root.to_owned()];
    let mut ended = 0;
    while let Some(id) = frontier.pop() {
        lock_mandate(&mut *conn, &id).await?;
        ended += sqlx::query(
            "UPDATE mandates SET revoked_at = $2, revoked_by = $3 WHERE mandate_id = $1 AND revoked_at IS NULL",
        )
        .bind(&id)
        .bind(now.0)
        .bind(revoked_by)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        for child in sqlx::query("SELECT mandate_id FROM mandates WHERE parent_id = $1")
            .bind(&id)
            .fetch_all(&mut *conn)
            .await?
        {
            frontier.push(child.try_get("mandate_id")?);
        }
    }
    Ok(ended)
}

impl Mandates {
    /// Every organization, by id.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn organizations(&self) -> Result<Vec<Organization>, MandateError> {
        let rows = sqlx::query(
            "SELECT o.org_id, o.country, o.register_code, o.name, o.updated_at, \
             (SELECT COUNT(*) FROM org_representatives r WHERE r.org_id = o.org_id) AS reps \
             FROM organizations o ORDER BY o.org_id",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Organization {
                    org_id: r.try_get("org_id")?,
                    country: r.try_get("country")?,
                    register_code: r.try_get("register_code")?,
                    name: r.try_get("name")?,
                    representatives: r.try_get("reps")?,
                    updated_at: UnixTime(r.try_get("updated_at")?),
                })
            })
            .collect()
    }

    /// Every mandate of `org_id`, revoked ones included, oldest first;
    /// `None` if there is no such organization.
    ///
    /// # Errors
    /// If the database fails.
    pub async fn of_organization(
        &self,
        org_id: &str,
    ) -> Result<Option<Vec<Mandate>>, MandateError> {
        if sqlx::query("SELECT 1 AS ok FROM organizations WHERE org_id = $1")
            .bind(org_id)
            .fetch_optional(self.db.pool())
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM mandates WHERE org_id = $1 ORDER BY granted_at, mandate_id"
        ));
        let rows = sqlx::query(sql)
            .bind(org_id)
            .fetch_all(self.db.pool())
            .await?;
        Ok(Some(rows.iter().map(from_row).collect::<Result<_, _>>()?))
    }

    /// Revokes a mandate, and everything delegated from it, by the
    /// operator's decision; records `mandate.revoked` (and the admin entry
    /// for the admin API) in the same transaction. Returns how many
    /// mandates ended now (0 if it had already ended: nothing recorded).
    ///
    /// # Errors
    /// [`MandateError::NotFound`], or a store failure.
    pub async fn revoke_by_operator(
        &self,
        mandate_id: &str,
        actor: &Actor,
    ) -> Result<u64, MandateError> {
        let now = self.clock.now();
        let m = self.get(mandate_id).await?.ok_or(MandateError::NotFound)?;
        let mut tx = self.db.begin().await?;
        let ended = revoke_cascade(&mut tx, &m.id, now, &actor.to_stored()).await?;
        if ended == 0 {
            return Ok(0);
        }
        let mut event = Event::by(Kind::MandateRevoked, actor.clone())
            .with("mandate", m.id.as_str())
            .with("org", m.org_id.as_str())
            .with("delegated_ended", ended.saturating_sub(1));
        if let Some(rep) = &m.representative {
            event = event.account(rep);
        }
        let events = audit::with_admin_action(event, "mandate.revoke");
        audit::record_all(&mut tx, &events, now).await?;
        tx.commit().await?;
        Ok(ended)
    }
}
