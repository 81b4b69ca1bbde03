//! Levels of assurance (eIDAS Implementing Regulation 2015/1502: low,
//! substantial, high) and how Civitas reaches them.
//!
//! The achieved level combines identity proofing with the authenticator
//! (`docs/assurance.md` gives the reasons):
//! - without eID enrollment the identity is self-asserted: **low**;
//! - with eID enrollment, the level of the eID that proved it;
//! - a synced passkey caps the result at **substantial** (its private key
//!   leaves the device); **high** needs a device-bound passkey *and*
//!   proofing at high;
//! - a passkey never counts above the level of the context that enrolled it
//!   (low for a new account or a recovery code, the proven level for an eID
//!   recovery, the session's level for a passkey added in a session) until
//!   an eID proof made in a session of that passkey raises it.
//!
//! Relying parties name levels by their eIDAS URIs or by the aliases
//! `low`, `substantial` and `high`; ID tokens always carry the URI.

use std::fmt;

use crate::oidc::params::ClaimsRequest;

/// An eIDAS level of assurance, ordered low < substantial < high.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Limited confidence in the claimed identity.
    Low,
    /// Substantial confidence.
    Substantial,
    /// High confidence.
    High,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 3] = [Level::Low, Level::Substantial, Level::High];

    /// The eIDAS URI, as the `acr` claim carries it.
    #[must_use]
    pub fn uri(self) -> &'static str {
        match self {
            Self::Low => "http://eidas.europa.eu/LoA/low",
            Self::Substantial => "http://eidas.europa.eu/LoA/substantial",
            Self::High => "http://eidas.europa.eu/LoA/high",
        }
    }

    /// The short alias.
    #[must_use]
    pub fn alias(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Substantial => "substantial",
            Self::High => "high",
        }
    }

    /// Parses a URI or an alias.
    #[must_use]
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.uri() == value || l.alias() == value)
    }

    /// The level an authentication reached: proofing capped by the authenticator.
    #[must_use]
    pub fn achieved(proofing: Option<Level>, device_bound_passkey: bool) -> Self {
        let cap = if device_bound_passkey {
            Self::High
        } else {
            Self::Substantial
        };
        proofing.unwrap_or(Self::Low).min(cap)
    }

    /// The level a passkey sign-in reaches: [`Level::achieved`], and never
    /// more than the passkey's own ceiling (`enrolled`, the level of the
    /// context that enrolled it or of the last eID proof made with it).
    #[must_use]
    pub fn with_passkey(proofing: Option<Level>, device_bound: bool, enrolled: Level) -> Self {
        Self::achieved(proofing, device_bound).min(enrolled)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.alias())
    }
}

/// A requested level that Civitas does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a level of assurance Civitas knows (use low, substantial, high or their eIDAS URIs)"
)]
pub struct UnknownLevel(pub String);

/// The minimum level a request demands, if any: from `acr_values`, from an
/// essential `acr` in the claims parameter, or from the client's
/// `default_acr_values` when the request names none. Each lists acceptable
/// levels; the lowest of them is the minimum. Civitas treats requested
/// levels as requirements: it never issues a token below them.
///
/// # Errors
/// A value that is not a known level.
pub fn required(
    acr_values: &[String],
    claims: &ClaimsRequest,
    client_default: &[String],
) -> Result<Option<Level>, UnknownLevel> {
    let lowest = |values: &[String]| -> Result<Option<Level>, UnknownLevel> {
        let mut min: Option<Level> = None;
        for v in values {
            let l = Level::parse(v).ok_or_else(|| UnknownLevel(v.clone()))?;
            min = Some(min.map_or(l, |m| m.min(l)));
        }
        Ok(min)
    };
    let from_claims: Vec<String> = match claims.id_token_essential("acr") {
        Some(c) if c.essential == Some(true) => c
            .value
            .iter()
            .chain(c.values.iter().flatten())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    let explicit = [lowest(acr_values)?, lowest(&from_claims)?]
        .into_iter()
        .flatten()
        .max();
    match explicit {
        Some(l) => Ok(Some(l)),
        None => lowest(client_default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_synced_passkey_caps_at_substantial_and_high_needs_both() {
        assert_eq!(Level::achieved(None, true), Level::Low);
        assert_eq!(
            Level::achieved(Some(Level::Substantial), false),
            Level::Substantial
        );
        assert_eq!(
            Level::achieved(Some(Level::High), false),
            Level::Substantial
        );
        assert_eq!(Level::achieved(Some(Level::High), true), Level::High);
        assert_eq!(
            Level::achieved(Some(Level::Substantial), true),
            Level::Substantial
        );
    }

    #[test]
    fn a_passkey_never_counts_above_its_enrolment() {
        let high = Some(Level::High);
        assert_eq!(Level::with_passkey(high, true, Level::Low), Level::Low);
        assert_eq!(
            Level::with_passkey(high, true, Level::Substantial),
            Level::Substantial
        );
        assert_eq!(Level::with_passkey(high, true, Level::High), Level::High);
        assert_eq!(
            Level::with_passkey(high, false, Level::High),
            Level::Substantial
        );
        assert_eq!(
            Level::with_passkey(Some(Level::Substantial), true, Level::High),
            Level::Substantial,
            "nor above the binding"
        );
        assert_eq!(Level::with_passkey(None, true, Level::High), Level::Low);
    }

    #[test]
    fn requests_demand_the_lowest_level_they_accept() {
        let none = ClaimsRequest::default();
        let v = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            required(&v(&["high", "substantial"]), &none, &[]).unwrap(),
            Some(Level::Substantial)
        );
        assert_eq!(
            required(&[], &none, &v(&["http://eidas.europa.eu/LoA/high"])).unwrap(),
            Some(Level::High)
        );
        assert_eq!(
            required(&v(&["low"]), &none, &v(&["high"])).unwrap(),
            Some(Level::Low),
            "the request wins over the default"
        );
        assert_eq!(required(&[], &none, &[]).unwrap(), None);
        assert!(required(&v(&["gold"]), &none, &[]).is_err());
        let essential = ClaimsRequest::parse(
            r#"{"id_token":{"acr":{"essential":true,"values":["substantial","high"]}}}"#,
        )
        .unwrap();
        assert_eq!(
            required(&[], &essential, &[]).unwrap(),
            Some(Level::Substantial)
        );
        let voluntary =
            ClaimsRequest::parse(r#"{"id_token":{"acr":{"values":["high"]}}}"#).unwrap();
        assert_eq!(
            required(&[], &voluntary, &[]).unwrap(),
            None,
            "a voluntary acr claim demands nothing"
        );
    }
}
