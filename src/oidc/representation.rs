//! Acting on behalf of an organization at sign-in.
//!
//! A relying party asks for representation with Rich Authorization Requests
//! (RFC 9396): an `authorization_details` entry of type
//! [`REPRESENTATION_TYPE`] naming the powers it needs, or with the
//! `represent` scope (any organization, with the powers its mandate gives).
//! After authentication the citizen chooses "myself" or an organization for
//! which they hold a valid mandate covering the powers at the session's
//! level. The choice travels with the code into the grant; tokens then carry
//! it (`docs/representation.md`). The power behind it is checked again
//! ([`Provider::power_holds`]) when the code is issued (`chooser.rs`), when
//! it is redeemed, at every refresh and at every exchange (`token.rs`).

use serde::{Deserialize, Serialize};

use super::grants::{self, Grant};
use super::{OAuthError, Provider};
use crate::accounts::AccountId;
use crate::assurance::Level;

/// The `type` of Civitas's authorization details entry.
pub const REPRESENTATION_TYPE: &str = "urn:civitas:representation";

/// The scope that asks for representation without naming powers.
pub const REPRESENT_SCOPE: &str = "represent";

/// The representation a grant acts under.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Representation {
    /// The organization (`CC:code`).
    pub org_id: String,
    /// Its name.
    pub org_name: String,
    /// The powers granted to the relying party.
    pub powers: Vec<String>,
    /// The mandate reference (`statutory:<org>` or a mandate id).
    pub mandate: String,
}

impl Representation {
    /// The `authorization_details` of tokens issued under it.
    #[must_use]
    pub fn authorization_details(&self) -> serde_json::Value {
        serde_json::json!([{
            "type": REPRESENTATION_TYPE,
            "organization": { "id": self.org_id, "name": self.org_name },
            "powers": self.powers,
            "mandate": self.mandate,
        }])
    }
}

impl Provider {
    /// Does `account` hold, now, the power `r` acts under (its mandate, or
    /// its statutory representation, covering the powers at `level`)?
    ///
    /// # Errors
    /// If the mandates cannot be read.
    pub(super) async fn power_holds(
        &self,
        account: &AccountId,
        r: &Representation,
        level: Level,
    ) -> Result<bool, OAuthError> {
        Ok(self
            .mandates
            .powers_of(account)
            .await
            .map_err(|e| OAuthError::Internal(e.to_string()))?
            .iter()
            .any(|p| p.mandate_ref == r.mandate && p.covers(&r.powers, level)))
    }

    /// Does the grant's power still hold, at the level it was signed in
    /// with? Trivially so for a grant that acts for no organization.
    pub(super) async fn grant_power_holds(&self, grant: &Grant) -> Result<bool, OAuthError> {
        match &grant.representation {
            None => Ok(true),
            Some(r) => {
                let level = Level::parse(&grant.acr).unwrap_or(Level::Low);
                self.power_holds(&grant.account_id, r, level).await
            }
        }
    }

    /// A stored grant that acts for an organization is usable only while its
    /// power still holds. When it does not, the grant is revoked (every
    /// token from it ends) and the caller gets `invalid_grant`.
    pub(super) async fn require_mandate(&self, grant: &Grant) -> Result<(), OAuthError> {
        if self.grant_power_holds(grant).await? {
            return Ok(());
        }
        grants::revoke(&self.db, &grant.grant_id, self.clock.now()).await?;
        Err(mandate_ended())
    }
}

/// The error of a grant whose power has ended.
pub(super) fn mandate_ended() -> OAuthError {
    OAuthError::invalid_grant("the mandate this grant acts under has ended")
}

/// Parses the `authorization_details` request parameter (RFC 9396 §2): the
/// powers asked for, or `None` if it asks for no representation.
///
/// # Errors
/// A description for `invalid_authorization_details` (RFC 9396 §5).
pub fn parse_request(
    raw: Option<&str>,
    represent_scope: bool,
) -> Result<Option<Vec<String>>, String> {
    let Some(raw) = raw else {
        return Ok(represent_scope.then(Vec::new));
    };
    if raw.len() > 4 * 1024 {
        return Err("authorization_details is too large".into());
    }
    let value: serde_json::Value =
        serde_json::from_str(raw).map_err(|e| format!("authorization_details is not JSON: {e}"))?;
    let entries = value
        .as_array()
        .ok_or("authorization_details must be a JSON array")?;
    let mut powers: Option<Vec<String>> = represent_scope.then(Vec::new);
    for entry in entries {
        match entry.get("type").and_then(serde_json::Value::as_str) {
            Some(REPRESENTATION_TYPE) => {
                let list = entry
                    .get("powers")
                    .and_then(serde_json::Value::as_array)
                    .ok_or("a representation entry needs a powers array")?;
                if list.is_empty() {
                    return Err("a representation entry must name at least one power".into());
                }
                let out = powers.get_or_insert_with(Vec::new);
                for p in list {
                    let p = p.as_str().ok_or("powers must be strings")?;
                    if p.is_empty() || p.len() > 64 {
                        return Err("a power name is empty or too long".into());
                    }
                    if !out.iter().any(|x| x == p) {
                        out.push(p.to_owned());
                    }
                }
            }
            Some(other) => {
                return Err(format!(
                    "authorization_details type `{other}` is not supported"
                ));
            }
            None => return Err("every authorization_details entry needs a type".into()),
        }
    }
    Ok(powers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_name_powers_or_just_the_scope() {
        assert_eq!(parse_request(None, false).unwrap(), None);
        assert_eq!(parse_request(None, true).unwrap(), Some(vec![]));
        let raw = r#"[{"type":"urn:civitas:representation","powers":["payments.pay","payments.pay","tax.file"]}]"#;
        assert_eq!(
            parse_request(Some(raw), false).unwrap(),
            Some(vec!["payments.pay".into(), "tax.file".into()])
        );
        assert!(parse_request(Some(r#"[{"type":"payment_initiation"}]"#), false).is_err());
        assert!(parse_request(Some("{}"), false).is_err());
        assert!(parse_request(Some(r#"[{"type":"urn:civitas:representation"}]"#), false).is_err());
    }
}
