//! Time, passed in.
//!
//! Nothing in Civitas reads the system clock directly: every component that
//! needs the time is handed a [`Clock`], so tests can pin it and move it
//! (expiry, rotation and replay windows become ordinary tests).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch (UTC). Stored as `BIGINT` in both databases.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct UnixTime(pub i64);

impl UnixTime {
    /// This time plus `secs` seconds (saturating).
    #[must_use]
    pub fn plus(self, secs: u64) -> Self {
        Self(
            self.0
                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
        )
    }

    /// Seconds from `self` until `later`, zero if `later` is not after `self`.
    #[must_use]
    pub fn secs_until(self, later: UnixTime) -> u64 {
        u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0)
    }
}

impl UnixTime {
    /// The civil date and time in UTC: (year, month, day, hour, minute, second).
    #[must_use]
    pub fn civil(self) -> (i64, i64, i64, i64, i64, i64) {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        // Howard Hinnant's civil-from-days, proleptic Gregorian calendar.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d, secs / 3_600, (secs % 3_600) / 60, secs % 60)
    }

    /// Midnight UTC of a calendar date, if it is one (`YYYY-MM-DD`): a date
    /// that does not exist, such as `2027-02-31`, reads back as another and
    /// is refused.
    #[must_use]
    pub fn from_date(text: &str) -> Option<Self> {
        let mut parts = text.trim().split('-');
        let (y, m, d) = (
            parts.next()?.parse::<i64>().ok()?,
            parts.next()?.parse::<i64>().ok()?,
            parts.next()?.parse::<i64>().ok()?,
        );
        if parts.next().is_some()
            || !(1..=12).contains(&m)
            || !(1..=31).contains(&d)
            || !(1970..=9999).contains(&y)
        {
            return None;
        }
        // Howard Hinnant's days-from-civil.
        let y2 = if m <= 2 { y - 1 } else { y };
        let era = y2.div_euclid(400);
        let yoe = y2 - era * 400;
        let mp = if m > 2 { m - 3 } else { m + 9 };
        let doy = (153 * mp + 2) / 5 + d - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let t = Self((era * 146_097 + doe - 719_468) * 86_400);
        let (cy, cm, cd, ..) = t.civil();
        (cy == y && cm == m && cd == d).then_some(t)
    }

    /// RFC 3339 / ISO 8601 in UTC, for example `2026-11-26T19:39:00Z`.
    #[must_use]
    pub fn rfc3339(self) -> String {
        let (y, m, d, hh, mm, ss) = self.civil();
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

impl fmt::Display for UnixTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> UnixTime;
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: the operating system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that reads the wall clock
    fn now(&self) -> UnixTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        UnixTime(i64::try_from(secs).unwrap_or(i64::MAX))
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock pinned at `start`.
    #[must_use]
    pub fn new(start: UnixTime) -> Self {
        Self(Arc::new(AtomicI64::new(start.0)))
    }

    /// Moves the clock forward by `secs` seconds.
    pub fn advance(&self, secs: u64) {
        self.0
            .fetch_add(i64::try_from(secs).unwrap_or(i64::MAX), Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: UnixTime) {
        self.0.store(to.0, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UnixTime {
        UnixTime(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(UnixTime(1_000));
        assert_eq!(clock.now(), UnixTime(1_000));
        clock.advance(60);
        assert_eq!(clock.now(), UnixTime(1_060));
        assert_eq!(UnixTime(1_000).secs_until(clock.now()), 60);
        assert_eq!(clock.now().secs_until(UnixTime(1_000)), 0);
    }

    #[test]
    fn from_date_reads_calendar_dates_and_refuses_impossible_ones() {
        assert_eq!(UnixTime::from_date("1970-01-01"), Some(UnixTime(0)));
        assert_eq!(
            UnixTime::from_date("2028-02-29").map(UnixTime::rfc3339),
            Some("2028-02-29T00:00:00Z".to_owned())
        );
        for impossible in [
            "2027-02-31",
            "2027-02-29",
            "2027-04-31",
            "2027-13-01",
            "2027-00-10",
            "2027-1-1x",
        ] {
            assert_eq!(UnixTime::from_date(impossible), None, "{impossible}");
        }
    }
}
