//! The UserInfo endpoint (OIDC Core §5.3) and the release of claims.
//!
//! A claim is released only if a granted scope implies it (§5.4) or the
//! consented `claims` request parameter named it (§5.5), and only from what
//! Civitas knows of the account; nothing else ever leaves.

use std::collections::BTreeMap;

use serde_json::Value;

use super::params::Scope;
use super::{OAuthError, Provider};
use crate::accounts::AccountId;
use crate::eid::{Binding, PersonIdentifier};

/// The claims each scope implies (OIDC Core §5.4), limited to what Civitas holds.
const SCOPE_CLAIMS: &[(&str, &[&str])] = &[
    ("profile", &["name"]),
    ("email", &["email", "email_verified"]),
];

/// Every end-user claim Civitas can release.
pub const SUPPORTED_CLAIMS: &[&str] = &["sub", "name", "email", "email_verified"];

/// The claims `scope` implies.
pub(crate) fn claims_of_scope(scope: &Scope) -> impl Iterator<Item = &'static str> + '_ {
    SCOPE_CLAIMS
        .iter()
        .filter(|(s, _)| scope.contains(s))
        .flat_map(|(_, claims)| claims.iter().copied())
}

/// The identifier as the verified claim `person_identifier` releases it:
/// canonical ([`PersonIdentifier`]). A binding is stored canonical, except
/// one that start-up left in an earlier version's form (its canonical
/// identity bound to another account, or no identifier of its country):
/// the first is made canonical here, the second is not released.
fn released_identifier(client_id: &str, binding: &Binding) -> Option<Value> {
    let id = &binding.identity;
    if binding.canonical {
        return Some(Value::from(id.person_identifier.clone()));
    }
    match PersonIdentifier::parse(&id.country, &id.person_identifier) {
        Ok(person) => Some(Value::from(person.national())),
        Err(_) => {
            tracing::warn!(
                client_id,
                "person_identifier not released: the binding's identifier has no canonical form"
            );
            None
        }
    }
}

impl Provider {
    /// The claims about `account` that `scope` (and, when `from_scope`, its
    /// implied claims) plus the individually `requested` names allow.
    pub(crate) async fn user_claims<'a>(
        &self,
        account: &AccountId,
        scope: &Scope,
        requested: impl Iterator<Item = &'a str>,
        from_scope: bool,
    ) -> Result<BTreeMap<String, Value>, OAuthError> {
        let mut wanted: Vec<&str> = requested.filter(|c| SUPPORTED_CLAIMS.contains(c)).collect();
        if from_scope {
            for (s, claims) in SCOPE_CLAIMS {
                if scope.contains(s) {
                    wanted.extend_from_slice(claims);
                }
            }
        }
        let mut out = BTreeMap::new();
        if wanted.iter().all(|c| *c == "sub") {
            return Ok(out);
        }
        let Some(acc) = self.accounts.get(account).await? else {
            return Ok(out);
        };
        for claim in wanted {
            let value = match claim {
                "name" => Value::from(acc.display_name.clone()),
                "email" => match &acc.email {
                    Some(e) => Value::from(e.clone()),
                    None => continue,
                },
                // Never true until the citizen has proved control of the address.
                "email_verified" if acc.email.is_some() => Value::from(acc.email_verified),
                _ => continue,
            };
            out.insert(claim.to_owned(), value);
        }
        Ok(out)
    }

    /// The `verified_claims` element (OpenID Connect for Identity Assurance
    /// 1.0 §5) with the `names` asked for, from the account's eID binding:
    /// only claims the operator allows this client (re-checked at release)
    /// and only when the account was proven with an eID.
    pub(crate) async fn verified_claims(
        &self,
        client_id: &str,
        account: &AccountId,
        names: &[String],
    ) -> Result<Option<Value>, OAuthError> {
        if names.is_empty() {
            return Ok(None);
        }
        let allowed: Vec<String> = self
            .clients
            .allowed_claims(client_id)
            .await?
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let Some(binding) = crate::eid::binding(&self.db, &self.eid_keys, account)
            .await
            .map_err(|e| OAuthError::Internal(e.to_string()))?
        else {
            return Ok(None);
        };
        let id = &binding.identity;
        let mut claims = serde_json::Map::new();
        for name in names.iter().filter(|n| allowed.contains(n)) {
            let value = match name.as_str() {
                "given_name" => id.given_name.clone().map(Value::from),
                "family_name" => id.family_name.clone().map(Value::from),
                "birthdate" => id.birthdate.clone().map(Value::from),
                "nationalities" => Some(Value::from(vec![id.country.clone()])),
                "person_identifier" => released_identifier(client_id, &binding),
                _ => None,
            };
            if let Some(v) = value {
                claims.insert(name.clone(), v);
            }
        }
        if claims.is_empty() {
            return Ok(None);
        }
        Ok(Some(serde_json::json!({
            "verification": {
                "trust_framework": "eidas",
                "assurance_level": id.level.alias(),
                "time": binding.verified_at.rfc3339(),
                "evidence": [{
                    "type": "electronic_record",
                    "record": { "type": "eid", "source": { "name": id.scheme, "country_code": id.country } },
                    "time": binding.verified_at.rfc3339(),
                }],
            },
            "claims": claims,
        })))
    }

    /// The UserInfo response for an access token (OIDC Core §5.3.2).
    ///
    /// # Errors
    /// `invalid_token` (401) or `insufficient_scope` (403) per RFC 6750 §3.1.
    pub async fn userinfo(&self, access_token: &str) -> Result<Value, OAuthError> {
        let (claims, grant) = self.verify_access_token_and_grant(access_token).await?;
        // Only tokens meant for Civitas itself read the citizen's claims; a
        // token exchanged for a downstream service does not.
        if claims.aud != self.settings.issuer {
            return Err(OAuthError::new(
                "invalid_token",
                "the token's audience is another service",
            ));
        }
        let scope = Scope::parse(&claims.scope).unwrap_or_default();
        if !scope.contains("openid") {
            return Err(OAuthError::new(
                "insufficient_scope",
                "the token was not granted the openid scope",
            ));
        }
        let grant = grant.ok_or_else(|| {
            OAuthError::new("invalid_token", "the token does not belong to a citizen")
        })?;
        let mut out = self
            .user_claims(
                &grant.account_id,
                &scope,
                grant.claims.userinfo.keys().map(String::as_str),
                true,
            )
            .await?;
        if let Some(vc) = self
            .verified_claims(
                &grant.client_id,
                &grant.account_id,
                &grant.claims.verified_userinfo,
            )
            .await?
        {
            out.insert("verified_claims".into(), vc);
        }
        // A representation token's subject is the organization; userinfo is
        // about the citizen.
        let sub = match (
            &grant.representation,
            self.clients.get_recent(&grant.client_id).await?,
        ) {
            (Some(_), Some(client)) => self.pairwise.subject(&client, &grant.account_id),
            _ => claims.sub,
        };
        out.insert("sub".into(), Value::from(sub));
        Ok(Value::Object(out.into_iter().collect()))
    }
}
