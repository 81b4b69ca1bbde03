//! Figures for the operator's and agencies' dashboard, read from the audit
//! log and the bindings: sign-ins per day per relying party, sign-in
//! methods, eID enrollment by level, step-up outcomes and the claims
//! released. Every figure is counted in the database (`GROUP BY`), over a
//! window of whole UTC days.
//!
//! Who may see what is decided by [`Scope`]: the operator sees everything,
//! an agency only the clients it owns. Figures that belong to no client
//! (sign-in methods, eID enrollment) are the operator's alone.

use std::collections::BTreeMap;

use sqlx::Row as _;

use crate::clock::UnixTime;
use crate::store::{Database, StoreError};

/// Whose figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// The operator: every client, and the figures of no client.
    Operator,
    /// An agency: only these clients.
    Clients(Vec<String>),
}

impl Scope {
    /// May this scope see `client_id`'s figures?
    #[must_use]
    pub fn covers(&self, client_id: &str) -> bool {
        match self {
            Self::Operator => true,
            Self::Clients(ids) => ids.iter().any(|c| c == client_id),
        }
    }

    /// Is this the operator?
    #[must_use]
    pub fn is_operator(&self) -> bool {
        matches!(self, Self::Operator)
    }
}

/// The window: `days` whole UTC days ending with today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first day (Unix day number).
    pub first_day: i64,
    /// How many days.
    pub days: i64,
}

impl Window {
    /// The `days` days up to and including the day of `now`.
    #[must_use]
    pub fn ending(now: UnixTime, days: i64) -> Self {
        let today = now.0.div_euclid(86_400);
        Self {
            first_day: today - days + 1,
            days,
        }
    }

    /// The first second of the window.
    #[must_use]
    pub fn start(self) -> i64 {
        self.first_day * 86_400
    }

    /// Day number `day` as an index into the window, if inside it.
    #[must_use]
    pub fn index(self, day: i64) -> Option<usize> {
        let i = day - self.first_day;
        (0..self.days)
            .contains(&i)
            .then(|| usize::try_from(i).ok())
            .flatten()
    }
}

/// A count per day of the window, per series (a client, a method, …).
pub type Daily = BTreeMap<String, Vec<u64>>;

fn count(r: &sqlx::any::AnyRow) -> Result<u64, StoreError> {
    Ok(u64::try_from(r.try_get::<i64, _>("n")?).unwrap_or(0))
}

/// Sign-ins to relying parties (claims released at a code redemption) per
/// day, per client the scope covers.
///
/// # Errors
/// If the database fails.
pub async fn signins_per_client(
    db: &Database,
    scope: &Scope,
    window: Window,
) -> Result<Daily, StoreError> {
    let rows = sqlx::query(
        "SELECT occurred_at / 86400 AS day, client_id, COUNT(*) AS n FROM audit_log \
         WHERE kind = 'claims.released' AND occurred_at >= $1 GROUP BY occurred_at / 86400, client_id",
    )
    .bind(window.start())
    .fetch_all(db.pool())
    .await?;
    let mut out = Daily::new();
    for r in &rows {
        let client: Option<String> = r.try_get("client_id")?;
        let Some(client) = client.filter(|c| scope.covers(c)) else {
            continue;
        };
        if let Some(i) = window.index(r.try_get("day")?) {
            out.entry(client)
                .or_insert_with(|| vec![0; window.days as usize])[i] += count(r)?;
        }
    }
    Ok(out)
}

/// Sign-ins at Civitas per day by method: `passkey`, `recovery code`,
/// `eID recovery`. The operator's figure.
///
/// # Errors
/// If the database fails.
pub async fn signin_methods(db: &Database, window: Window) -> Result<Daily, StoreError> {
    let rows = sqlx::query(
        "SELECT occurred_at / 86400 AS day, kind, COUNT(*) AS n FROM audit_log \
         WHERE kind IN ('signin', 'recovery_code.used', 'eid.recovery') AND occurred_at >= $1 \
         GROUP BY occurred_at / 86400, kind",
    )
    .bind(window.start())
    .fetch_all(db.pool())
    .await?;
    let mut out = Daily::new();
    for name in ["passkey", "recovery code", "eID recovery"] {
        out.insert(name.to_owned(), vec![0; window.days as usize]);
    }
    for r in &rows {
        let kind: String = r.try_get("kind")?;
        let name = match kind.as_str() {
            "signin" => "passkey",
            "recovery_code.used" => "recovery code",
            _ => "eID recovery",
        };
        if let (Some(i), Some(series)) = (window.index(r.try_get("day")?), out.get_mut(name)) {
            series[i] += count(r)?;
        }
    }
    Ok(out)
}

/// eID enrollment: the accounts holding a binding per level, and all
/// accounts. The operator's figure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrollment {
    /// Accounts in all.
    pub accounts: u64,
    /// Accounts bound to an eID, per level alias, in the order `low`,
    /// `substantial`, `high`.
    pub by_level: Vec<(String, u64)>,
    /// First enrollments (not re-proofing) within the window.
    pub enrolled_in_window: u64,
    /// Accounts created within the window.
    pub created_in_window: u64,
}

/// The eID enrollment figures.
///
/// # Errors
/// If the database fails.
pub async fn enrollment(db: &Database, window: Window) -> Result<Enrollment, StoreError> {
    let accounts = sqlx::query("SELECT COUNT(*) AS n FROM accounts")
        .fetch_one(db.pool())
        .await?;
    let levels = sqlx::query("SELECT level, COUNT(*) AS n FROM eid_bindings GROUP BY level")
        .fetch_all(db.pool())
        .await?;
    let mut by_level: Vec<(String, u64)> = ["low", "substantial", "high"]
        .iter()
        .map(|l| ((*l).to_owned(), 0))
        .collect();
    for r in &levels {
        let level: String = r.try_get("level")?;
        if let Some(slot) = by_level.iter_mut().find(|(l, _)| *l == level) {
            slot.1 = count(r)?;
        }
    }
    let kinds = sqlx::query(
        "SELECT kind, detail, COUNT(*) AS n FROM audit_log \
         WHERE kind IN ('account.created', 'eid.bound') AND occurred_at >= $1 GROUP BY kind, detail",
    )
    .bind(window.start())
    .fetch_all(db.pool())
    .await?;
    let (mut enrolled, mut created) = (0, 0);
    for r in &kinds {
        let kind: String = r.try_get("kind")?;
        if kind == "account.created" {
            created += count(r)?;
        } else {
            let detail: String = r.try_get("detail")?;
            let first = serde_json::from_str::<serde_json::Value>(&detail)
                .map(|d| d["reproofed"] != true)
                .unwrap_or(false);
            if first {
                enrolled += count(r)?;
            }
        }
    }
    Ok(Enrollment {
        accounts: count(&accounts)?,
        by_level,
        enrolled_in_window: enrolled,
        created_in_window: created,
    })
}

/// Step-up outcomes in the window: `required` per client the scope covers;
/// for the operator also `succeeded` and each failure.
///
/// # Errors
/// If the database fails.
pub async fn step_ups(
    db: &Database,
    scope: &Scope,
    window: Window,
) -> Result<BTreeMap<String, u64>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, detail, COUNT(*) AS n FROM audit_log \
         WHERE kind = 'stepup' AND occurred_at >= $1 GROUP BY client_id, detail",
    )
    .bind(window.start())
    .fetch_all(db.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in &rows {
        let client: Option<String> = r.try_get("client_id")?;
        let visible = match &client {
            Some(c) => scope.covers(c),
            None => scope.is_operator(),
        };
        if !visible {
            continue;
        }
        let detail: String = r.try_get("detail")?;
        let outcome = serde_json::from_str::<serde_json::Value>(&detail)
            .ok()
            .and_then(|d| d["outcome"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        *out.entry(outcome).or_insert(0) += count(r)?;
    }
    Ok(out)
}

/// How often each claim was released in the window, per client the scope
/// covers: `(client, claim) → count`; verified claims are named
/// `verified:<claim>`.
///
/// # Errors
/// If the database fails.
pub async fn claims_released(
    db: &Database,
    scope: &Scope,
    window: Window,
) -> Result<BTreeMap<(String, String), u64>, StoreError> {
    let rows = sqlx::query(
        "SELECT client_id, detail, COUNT(*) AS n FROM audit_log \
         WHERE kind = 'claims.released' AND occurred_at >= $1 GROUP BY client_id, detail",
    )
    .bind(window.start())
    .fetch_all(db.pool())
    .await?;
    let mut out = BTreeMap::new();
    for r in &rows {
        let client: Option<String> = r.try_get("client_id")?;
        let Some(client) = client.filter(|c| scope.covers(c)) else {
            continue;
        };
        let detail: String = r.try_get("detail")?;
        let Ok(d) = serde_json::from_str::<serde_json::Value>(&detail) else {
            continue;
        };
        let n = count(r)?;
        let plain = d["claims"].as_array().into_iter().flatten();
        let verified = d["verified_claims"].as_array().into_iter().flatten();
        for name in plain
            .filter_map(|c| c.as_str().map(str::to_owned))
            .chain(verified.filter_map(|v| v["claim"].as_str().map(|c| format!("verified:{c}"))))
        {
            *out.entry((client.clone(), name)).or_insert(0) += n;
        }
    }
    Ok(out)
}

/// Responses per endpoint in the window, from the counts every instance
/// adds to `endpoint_stats` (`metrics::endpoint_stats`): `(endpoint, all,
/// 4xx, 5xx)`, busiest first. The operator's figure.
///
/// # Errors
/// If the database fails.
pub async fn endpoint_errors(
    db: &Database,
    window: Window,
) -> Result<Vec<(String, u64, u64, u64)>, StoreError> {
    let rows =
        crate::metrics::endpoint_stats(db, window.first_day, window.first_day + window.days - 1)
            .await?;
    let mut by: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    for (_, endpoint, class, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        let e = by.entry(endpoint).or_default();
        e.0 += n;
        match class.as_str() {
            "4xx" => e.1 += n,
            "5xx" => e.2 += n,
            _ => {}
        }
    }
    let mut out: Vec<_> = by.into_iter().map(|(k, (a, b, c))| (k, a, b, c)).collect();
    out.sort_by(|x, y| y.1.cmp(&x.1).then_with(|| x.0.cmp(&y.0)));
    Ok(out)
}
