//! Which key signs and which keys are published, at a given time.
//!
//! A pure function of the keys' metadata, the time and the retention, so
//! every instance that reads the same keys directory reaches the same answer,
//! and tests can pin the time. For each algorithm, keys are ordered by
//! activation time (then kid, to break ties deterministically):
//!
//! - **pending**: not yet active; published so that relying parties have it
//!   in their JWKS cache before any token is signed with it;
//! - **active**: the newest key whose activation time has passed; signs;
//! - **retired**: superseded by a newer active key at time *t*; still
//!   published until *t* + retention, so that every token it signed can be
//!   verified until that token expires;
//! - **expired**: retired for longer than the retention; not published.

use super::files::KeyMeta;
use crate::clock::UnixTime;

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// Signing.
    Active,
    /// Published, no longer signing; published until the given time.
    Retired {
        /// When it stops being published.
        until: UnixTime,
    },
    /// No longer published.
    Expired,
}

impl KeyState {
    /// Is the key in the JWKS?
    #[must_use]
    pub fn is_published(self) -> bool {
        !matches!(self, Self::Expired)
    }
}

/// The state of every key in `metas` at `now`, in the same order.
/// `retention_secs` is how long a retired key stays published.
#[must_use]
pub fn states(metas: &[KeyMeta], now: UnixTime, retention_secs: u64) -> Vec<KeyState> {
    metas
        .iter()
        .map(|meta| {
            if meta.activates() > now {
                return KeyState::Pending;
            }
            // The first later key of the same algorithm that is already
            // active supersedes this one, from its activation time on.
            let superseded_at = metas
                .iter()
                .filter(|m| m.alg == meta.alg && m.activates() <= now)
                .filter(|m| (m.activates_at, &m.kid) > (meta.activates_at, &meta.kid))
                .map(KeyMeta::activates)
                .min();
            match superseded_at {
                None => KeyState::Active,
                Some(t) => {
                    let until = t.plus(retention_secs);
                    if now < until {
                        KeyState::Retired { until }
                    } else {
                        KeyState::Expired
                    }
                }
            }
        })
        .collect()
}

/// The earliest time after `now` at which some key changes state, if any:
/// when the key set must be recomputed even if no file changed.
#[must_use]
pub fn next_change(metas: &[KeyMeta], now: UnixTime, retention_secs: u64) -> Option<UnixTime> {
    let activations = metas.iter().map(KeyMeta::activates).filter(|t| *t > now);
    let expiries = states(metas, now, retention_secs)
        .into_iter()
        .filter_map(|s| match s {
            KeyState::Retired { until } => Some(until),
            _ => None,
        });
    activations.chain(expiries).min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Alg;

    fn meta(kid: &str, alg: Alg, activates_at: i64) -> KeyMeta {
        KeyMeta {
            kid: kid.into(),
            alg,
            created_at: 0,
            activates_at,
        }
    }

    #[test]
    fn a_rotated_key_is_pending_then_active_and_its_predecessor_retires_then_expires() {
        let keys = [meta("old", Alg::ES256, 100), meta("new", Alg::ES256, 1_000)];
        let retention = 300;

        assert_eq!(
            states(&keys, UnixTime(500), retention),
            [KeyState::Active, KeyState::Pending]
        );
        assert_eq!(
            states(&keys, UnixTime(1_000), retention),
            [
                KeyState::Retired {
                    until: UnixTime(1_300)
                },
                KeyState::Active
            ]
        );
        assert_eq!(
            states(&keys, UnixTime(1_299), retention)[0],
            KeyState::Retired {
                until: UnixTime(1_300)
            }
        );
        assert_eq!(
            states(&keys, UnixTime(1_300), retention),
            [KeyState::Expired, KeyState::Active]
        );
        assert_eq!(
            next_change(&keys, UnixTime(500), retention),
            Some(UnixTime(1_000))
        );
        assert_eq!(
            next_change(&keys, UnixTime(1_000), retention),
            Some(UnixTime(1_300))
        );
        assert_eq!(next_change(&keys, UnixTime(1_300), retention), None);
    }

    #[test]
    fn algorithms_rotate_independently() {
        let keys = [
            meta("ec1", Alg::ES256, 100),
            meta("rsa1", Alg::RS256, 100),
            meta("ec2", Alg::ES256, 200),
        ];
        let s = states(&keys, UnixTime(250), 1_000);
        assert_eq!(
            s,
            [
                KeyState::Retired {
                    until: UnixTime(1_200)
                },
                KeyState::Active,
                KeyState::Active
            ]
        );
    }

    #[test]
    fn ties_are_broken_by_kid_so_every_instance_agrees() {
        let keys = [meta("a", Alg::ES256, 100), meta("b", Alg::ES256, 100)];
        let s = states(&keys, UnixTime(100), 10);
        assert_eq!(
            s,
            [
                KeyState::Retired {
                    until: UnixTime(110)
                },
                KeyState::Active
            ]
        );
    }
}
