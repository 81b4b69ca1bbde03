//! Responses per day, endpoint and status class, summed over every instance
//! in `endpoint_stats` for the operator's dashboard. Each instance adds what
//! it served since its last flush, every minute and at shutdown.
//!
//! The counters in memory are cumulative; a flush adds the difference to
//! the totals it last wrote, in one transaction. A flush that fails writes
//! nothing and leaves those totals alone, so the next one adds the
//! responses of both intervals: nothing is lost or counted twice while the
//! process lives.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Row as _;
use tokio::sync::Mutex;

use super::http::Endpoints;
use super::labels::status_class;
use crate::clock::UnixTime;
use crate::store::{Database, StoreError};

/// Portable upsert: the same text on SQLite and PostgreSQL.
const ADD: &str = "INSERT INTO endpoint_stats (day, endpoint, status_class, count) \
                   VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (day, endpoint, status_class) \
                   DO UPDATE SET count = endpoint_stats.count + excluded.count";

const READ: &str = "SELECT day, endpoint, status_class, count FROM endpoint_stats \
                    WHERE day >= $1 AND day <= $2 ORDER BY day, endpoint, status_class";

/// Seconds per Unix day.
const DAY: i64 = 86_400;

/// The Unix day number of `t` (days since 1970-01-01, UTC).
#[must_use]
pub fn unix_day(t: UnixTime) -> i64 {
    t.0.div_euclid(DAY)
}

type Totals = HashMap<(Arc<str>, &'static str), u64>;

/// The totals each flush last wrote, per endpoint and status class.
#[derive(Debug, Default)]
pub(super) struct Flushed {
    /// Held for the whole flush: two flushes at once would add the same
    /// responses twice.
    written: Mutex<Totals>,
}

impl Flushed {
    /// Adds the responses served since the last flush to the rows of the
    /// day of `now`; returns how many it added.
    pub(super) async fn flush(
        &self,
        endpoints: &Endpoints,
        db: &Database,
        now: UnixTime,
    ) -> Result<u64, StoreError> {
        let mut written = self.written.lock().await;
        let mut totals = Totals::new();
        for endpoint in endpoints.all() {
            for (_, status, count) in endpoint.series() {
                if let Some(class) = status_class(status) {
                    *totals.entry((endpoint.name_arc(), class)).or_default() += count;
                }
            }
        }
        let mut deltas: Vec<(&str, &str, u64)> = totals
            .iter()
            .filter_map(|(key, total)| {
                let delta = total.saturating_sub(written.get(key).copied().unwrap_or(0));
                (delta > 0).then_some((&*key.0, key.1, delta))
            })
            .collect();
        if deltas.is_empty() {
            return Ok(0);
        }
        // One order on every instance: concurrent flushes on PostgreSQL
        // then queue on the rows instead of deadlocking.
        deltas.sort_unstable();
        let day = unix_day(now);
        let mut tx = db.begin().await?;
        for (endpoint, class, delta) in &deltas {
            sqlx::query(ADD)
                .bind(day)
                .bind(*endpoint)
                .bind(*class)
                .bind(i64::try_from(*delta).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        let added = deltas.iter().map(|(_, _, d)| d).sum();
        *written = totals;
        Ok(added)
    }
}

/// The rows of `endpoint_stats` from `from_day` to `to_day` (Unix day
/// numbers, both included), as `(day, endpoint, status_class, count)`,
/// ordered by day, endpoint and class. `endpoint` is a route template such
/// as `/token` or `/register/{client_id}`, or `unmatched`; `status_class`
/// is `2xx`, `3xx`, `4xx` or `5xx`.
///
/// # Errors
/// If the database fails.
pub async fn endpoint_stats(
    db: &Database,
    from_day: i64,
    to_day: i64,
) -> Result<Vec<(i64, String, String, i64)>, StoreError> {
    let rows = sqlx::query(READ)
        .bind(from_day)
        .bind(to_day)
        .fetch_all(db.pool())
        .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("day")?,
                r.try_get("endpoint")?,
                r.try_get("status_class")?,
                r.try_get("count")?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_day_numbers() {
        assert_eq!(unix_day(UnixTime(0)), 0);
        assert_eq!(unix_day(UnixTime(86_399)), 0);
        assert_eq!(unix_day(UnixTime(86_400)), 1);
        // 2024-03-01T12:00:00Z.
        assert_eq!(unix_day(UnixTime(1_709_294_400)), 19_783);
    }
}
