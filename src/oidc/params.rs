//! Request parameters: parsed once, at the boundary, into typed values.
//!
//! RFC 6749 §3.1 and §3.2: parameters must not appear more than once, and a
//! parameter sent without a value is treated as omitted.

use std::collections::BTreeSet;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::clients::metadata::is_scope_token;

/// Parameters of one request, each present at most once.
#[derive(Debug, Default, Clone)]
pub struct Params(HashMap<String, String>);

/// A parameter was repeated (RFC 6749 §3.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("parameter `{0}` is repeated")]
pub struct Repeated(pub String);

impl Params {
    /// Parses `application/x-www-form-urlencoded` text (a query string or a
    /// form body). Empty values are dropped; a repeated name is an error.
    ///
    /// # Errors
    /// [`Repeated`] naming the first repeated parameter (whatever its values).
    pub fn parse(encoded: &[u8]) -> Result<Self, Repeated> {
        let mut map = HashMap::with_capacity(8);
        // Names seen with an empty value (absent, but still not repeatable).
        let mut empty: Vec<String> = Vec::new();
        for (name, value) in form_urlencoded::parse(encoded) {
            if map.contains_key(name.as_ref()) || empty.iter().any(|e| *e == name) {
                return Err(Repeated(name.into_owned()));
            }
            if value.is_empty() {
                empty.push(name.into_owned());
            } else {
                map.insert(name.into_owned(), value.into_owned());
            }
        }
        Ok(Self(map))
    }

    /// Parses like [`Params::parse`] but keeps the first value of a repeated
    /// parameter and reports the repetition, so that the authorization
    /// endpoint can still find the client and redirect URI to send the error to.
    #[must_use]
    pub fn parse_lenient(encoded: &[u8]) -> (Self, Option<Repeated>) {
        let mut map = HashMap::new();
        let mut seen = BTreeSet::new();
        let mut repeated = None;
        for (name, value) in form_urlencoded::parse(encoded) {
            if !seen.insert(name.to_string()) {
                repeated.get_or_insert_with(|| Repeated(name.to_string()));
                continue;
            }
            if !value.is_empty() {
                map.insert(name.into_owned(), value.into_owned());
            }
        }
        (Self(map), repeated)
    }

    /// The value of `name`, if present.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Removes and returns the value of `name`.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }
}

/// A set of scope values (RFC 6749 §3.3), kept in a stable order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a space-delimited scope string.
    ///
    /// # Errors
    /// A description of the first invalid token.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for token in s.split(' ').filter(|t| !t.is_empty()) {
            if !is_scope_token(token) {
                return Err(format!("`{token}` is not a valid scope value"));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// Does the set contain `token`?
    #[must_use]
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// Is every value of `self` in `other`?
    #[must_use]
    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The values of `self` not in `allowed`.
    #[must_use]
    pub fn not_in<'a>(&'a self, allowed: &Scope) -> Vec<&'a str> {
        self.0
            .iter()
            .filter(|t| !allowed.0.contains(*t))
            .map(String::as_str)
            .collect()
    }

    /// The values.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Is the set empty?
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The values of `self` that are also in `other`.
    #[must_use]
    pub fn intersect(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    /// The union with `other`.
    #[must_use]
    pub fn union(&self, other: &Scope) -> Scope {
        Scope(self.0.union(&other.0).cloned().collect())
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for t in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(t)?;
            first = false;
        }
        Ok(())
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> Self {
        s.to_string()
    }
}

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

/// The `prompt` parameter (OIDC Core §3.1.2.1, Initiating User Registration §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prompt {
    /// `none`: no page may be shown.
    pub none: bool,
    /// `login`: authenticate again.
    pub login: bool,
    /// `consent`: ask for consent again.
    pub consent: bool,
    /// `select_account`: let the citizen choose the account.
    pub select_account: bool,
    /// `create`: start with account creation.
    pub create: bool,
}

impl Prompt {
    /// Parses the space-delimited value.
    ///
    /// # Errors
    /// An unknown value, or `none` combined with another value.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut p = Self::default();
        for v in s.split(' ').filter(|v| !v.is_empty()) {
            match v {
                "none" => p.none = true,
                "login" => p.login = true,
                "consent" => p.consent = true,
                "select_account" => p.select_account = true,
                "create" => p.create = true,
                other => return Err(format!("prompt value `{other}` is not supported")),
            }
        }
        if p.none && (p.login || p.consent || p.select_account || p.create) {
            return Err("prompt=none cannot be combined with other values".into());
        }
        Ok(p)
    }
}

/// One entry of the `claims` request parameter (OIDC Core §5.5.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimRequest {
    /// Is the claim essential?
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub essential: Option<bool>,
    /// A single requested value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// A set of acceptable values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
}

/// The `claims` request parameter: individual claims for the userinfo
/// response and the ID token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimsRequest {
    /// Claims asked for in the userinfo response.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub userinfo: std::collections::BTreeMap<String, Option<ClaimRequest>>,
    /// Claims asked for in the ID token.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub id_token: std::collections::BTreeMap<String, Option<ClaimRequest>>,
    /// Claims asked for inside `verified_claims` in the userinfo response
    /// (OpenID Connect for Identity Assurance 1.0 §6).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_userinfo: Vec<String>,
    /// Claims asked for inside `verified_claims` in the ID token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified_id_token: Vec<String>,
}

/// The claim names inside a `verified_claims` request (an object, or an
/// array of objects, each with a `claims` member).
fn verified_names(request: &serde_json::Value) -> Result<Vec<String>, String> {
    let items: Vec<&serde_json::Value> = match request {
        serde_json::Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut names = Vec::new();
    for item in items {
        let claims = item
            .get("claims")
            .and_then(serde_json::Value::as_object)
            .ok_or("verified_claims must have a claims object")?;
        for name in claims.keys() {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    Ok(names)
}

impl ClaimsRequest {
    /// Parses the JSON value of the parameter.
    ///
    /// # Errors
    /// If it is not a JSON object of the defined shape.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > 8 * 1024 {
            return Err("the claims parameter is too large".into());
        }
        let mut value: serde_json::Value = serde_json::from_str(s)
            .map_err(|e| format!("the claims parameter is not valid: {e}"))?;
        let mut verified = [Vec::new(), Vec::new()];
        for (i, member) in ["userinfo", "id_token"].into_iter().enumerate() {
            if let Some(vc) = value
                .get_mut(member)
                .and_then(serde_json::Value::as_object_mut)
                .and_then(|m| m.remove("verified_claims"))
            {
                verified[i] = verified_names(&vc)?;
            }
        }
        let mut parsed: Self = serde_json::from_value(value)
            .map_err(|e| format!("the claims parameter is not valid: {e}"))?;
        let [userinfo, id_token] = verified;
        parsed.verified_userinfo = userinfo;
        parsed.verified_id_token = id_token;
        Ok(parsed)
    }

    /// The verified claims asked for, in either place.
    pub fn verified_names(&self) -> impl Iterator<Item = &str> {
        self.verified_userinfo
            .iter()
            .chain(self.verified_id_token.iter())
            .map(String::as_str)
    }

    /// Every claim name asked for, in either place.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.userinfo
            .keys()
            .chain(self.id_token.keys())
            .map(String::as_str)
    }

    /// Every claim consent must cover: plain names, and verified claims as
    /// `verified:<name>`.
    #[must_use]
    pub fn consent_names(&self) -> Vec<String> {
        // Only claims about the citizen need consent (not acr, auth_time …).
        let mut out: Vec<String> = self
            .names()
            .filter(|n| crate::oidc::userinfo::SUPPORTED_CLAIMS.contains(n) && *n != "sub")
            .map(str::to_owned)
            .fold(Vec::new(), |mut acc, n| {
                if !acc.contains(&n) {
                    acc.push(n);
                }
                acc
            });
        for v in self.verified_names() {
            let name = format!("verified:{v}");
            if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }

    /// Is this claim requested as essential in the ID token?
    #[must_use]
    pub fn id_token_essential(&self, name: &str) -> Option<&ClaimRequest> {
        self.id_token.get(name).and_then(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_dropped() {
        assert_eq!(Params::parse(b"a=1&a=2").unwrap_err(), Repeated("a".into()));
        assert_eq!(Params::parse(b"a=&a=1").unwrap_err(), Repeated("a".into()));
        assert_eq!(Params::parse(b"a=1&a=").unwrap_err(), Repeated("a".into()));
        assert_eq!(Params::parse(b"a=&a=").unwrap_err(), Repeated("a".into()));
        let p = Params::parse(b"a=1&b=&c=x%20y").unwrap();
        assert_eq!(p.get("a"), Some("1"));
        assert_eq!(p.get("b"), None);
        assert_eq!(p.get("c"), Some("x y"));
    }

    #[test]
    fn scopes_are_sets_of_valid_tokens() {
        let s = Scope::parse("openid  profile openid").unwrap();
        assert_eq!(s.to_string(), "openid profile");
        assert!(Scope::parse("openid pro\"file").is_err());
        assert!(Scope::parse("openid").unwrap().is_subset(&s));
    }

    #[test]
    fn prompt_none_stands_alone() {
        assert!(Prompt::parse("none").unwrap().none);
        assert!(Prompt::parse("none login").is_err());
        assert!(Prompt::parse("bogus").is_err());
        let p = Prompt::parse("login consent").unwrap();
        assert!(p.login && p.consent);
    }

    #[test]
    fn claims_requests_parse() {
        let c = ClaimsRequest::parse(
            r#"{"userinfo":{"email":null},"id_token":{"acr":{"essential":true}}}"#,
        )
        .unwrap();
        assert!(c.userinfo.contains_key("email"));
        assert_eq!(c.id_token_essential("acr").unwrap().essential, Some(true));
        assert!(ClaimsRequest::parse("[1]").is_err());
    }
}
