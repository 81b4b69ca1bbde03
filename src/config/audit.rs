//! The audit trail's settings (`[audit]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// The audit trail (`[audit]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// How long entries are kept; older ones are removed hourly from the
    /// start of the chain (`CIVITAS_AUDIT__RETENTION`). Default 730 days
    /// (24 months); at least one day.
    #[serde(with = "super::duration")]
    pub retention: Duration,
    /// How often each instance signs a checkpoint of the chain's head, if
    /// it moved (`CIVITAS_AUDIT__CHECKPOINT_INTERVAL`); it also signs one at
    /// start and when it stops. Default one minute; between one second and
    /// one hour. `audit verify` expects every entry to be covered by a
    /// checkpoint signed within twice this (plus 30 s) of its time.
    #[serde(with = "super::duration")]
    pub checkpoint_interval: Duration,
    /// The file each checkpoint this instance signs is appended to, one JSON
    /// line each, for shipping to append-only storage
    /// (`CIVITAS_AUDIT__CHECKPOINT_FILE`). Default
    /// `data/audit-checkpoints.jsonl`.
    pub checkpoint_file: PathBuf,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(730 * 86_400),
            checkpoint_interval: Duration::from_secs(60),
            checkpoint_file: PathBuf::from("data/audit-checkpoints.jsonl"),
        }
    }
}

impl AuditSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.retention < Duration::from_secs(86_400) {
            return Err(invalid("audit.retention", "must be at least one day"));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3_600))
            .contains(&self.checkpoint_interval)
        {
            return Err(invalid(
                "audit.checkpoint_interval",
                "must be between one second and one hour",
            ));
        }
        if self.checkpoint_file.as_os_str().is_empty() {
            return Err(invalid("audit.checkpoint_file", "must name a file"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Settings;
    use super::*;

    #[test]
    fn checkpoints_are_signed_every_minute_into_a_file_under_data_by_default() {
        let s = Settings::from_toml("").unwrap();
        assert_eq!(s.audit.checkpoint_interval, Duration::from_secs(60));
        assert_eq!(
            s.audit.checkpoint_file,
            PathBuf::from("data/audit-checkpoints.jsonl")
        );
        let s = Settings::from_toml(
            "[audit]\ncheckpoint_interval = \"1s\"\ncheckpoint_file = \"/var/log/civitas/cp.jsonl\"",
        )
        .unwrap();
        assert_eq!(s.audit.checkpoint_interval, Duration::from_secs(1));
        assert_eq!(
            s.audit.checkpoint_file,
            PathBuf::from("/var/log/civitas/cp.jsonl")
        );
    }

    #[test]
    fn an_interval_outside_one_second_to_one_hour_or_no_file_is_refused() {
        for toml in [
            "[audit]\ncheckpoint_interval = 0",
            "[audit]\ncheckpoint_interval = \"2h\"",
            "[audit]\ncheckpoint_file = \"\"",
        ] {
            let err = Settings::from_toml(toml).unwrap_err();
            assert!(
                err.to_string().contains("audit.checkpoint_"),
                "{toml}: {err}"
            );
        }
    }
}
