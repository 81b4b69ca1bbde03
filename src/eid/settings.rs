//! The eID connectors' settings (`[[eid.connectors]]`) and their checks.
//!
//! A connector is trusted to assert identities, so its settings are checked
//! at start-up, not at first use: its issuer must be `https` (an `http`
//! issuer lets anyone on the path substitute the upstream's keys), except
//! while Civitas itself is a development instance on a loopback `http`
//! issuer, where a loopback upstream (the eID simulator) may be `http`.

use serde::{Deserialize, Serialize};
use url::Url;

/// National eID connectors.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EidSettings {
    /// One per eID scheme or country (`[[eid.connectors]]`).
    #[serde(default)]
    pub connectors: Vec<ConnectorSettings>,
}

/// One upstream eID provider, reached as an OpenID Connect relying party.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorSettings {
    /// Short id used in URLs (`tara`, `franceconnect`, `sim`).
    pub id: String,
    /// Name shown to citizens.
    pub name: String,
    /// The upstream issuer (discovery is read from it).
    pub issuer: String,
    /// Civitas's client id there; Civitas authenticates with
    /// `private_key_jwt` and its connector key (published at `/eid/jwks`).
    pub client_id: String,
    /// The eID scheme's name, part of the binding's identity.
    pub scheme: String,
    /// ISO 3166-1 alpha-2 country of the eIDs, unless a claim says.
    pub country: String,
    /// Upstream `acr` value → `low`, `substantial` or `high`. Values that map
    /// to nothing are refused. Empty: the upstream uses those three names.
    #[serde(default)]
    pub acr_map: std::collections::BTreeMap<String, String>,
    /// Claim holding the person identifier. Default `sub`.
    #[serde(default = "claim_sub")]
    pub person_identifier_claim: String,
    /// Claim holding the given name. Default `given_name`.
    #[serde(default = "claim_given_name")]
    pub given_name_claim: String,
    /// Claim holding the family name. Default `family_name`.
    #[serde(default = "claim_family_name")]
    pub family_name_claim: String,
    /// Claim holding the birth date. Default `birthdate`.
    #[serde(default = "claim_birthdate")]
    pub birthdate_claim: String,
    /// Claim holding the country, if the upstream sends one.
    #[serde(default)]
    pub country_claim: Option<String>,
    /// The countries whose identities this connector may assert (ISO
    /// 3166-1 alpha-2). Default: `country` only. An identity of any other
    /// country (from `country_claim`) is refused: a connector speaks for the
    /// national eIDs it is the authority for, never for every country's
    /// business-register representatives.
    #[serde(default)]
    pub countries: Vec<String>,
}

fn claim_sub() -> String {
    "sub".into()
}
fn claim_given_name() -> String {
    "given_name".into()
}
fn claim_family_name() -> String {
    "family_name".into()
}
fn claim_birthdate() -> String {
    "birthdate".into()
}

impl ConnectorSettings {
    /// The countries this connector may assert identities of.
    #[must_use]
    pub fn accepts_country(&self, country: &str) -> bool {
        if self.countries.is_empty() {
            self.country.eq_ignore_ascii_case(country)
        } else {
            self.countries
                .iter()
                .any(|c| c.eq_ignore_ascii_case(country))
        }
    }
}

/// A connector setting that cannot be accepted: the setting's name and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The setting (`eid.connectors.issuer`, …).
    pub key: &'static str,
    /// What is wrong, naming the connector.
    pub reason: String,
}

fn is_country(c: &str) -> bool {
    c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())
}

impl EidSettings {
    /// Checks every connector. `development` is true while Civitas's own
    /// issuer is `http` on a loopback host.
    ///
    /// # Errors
    /// The first setting that cannot be accepted.
    pub fn validate(&self, development: bool) -> Result<(), Invalid> {
        let bad = |key: &'static str, id: &str, why: &str| Invalid {
            key,
            reason: format!("of connector `{id}` {why}"),
        };
        for (n, c) in self.connectors.iter().enumerate() {
            if c.id.is_empty()
                || c.id.len() > 32
                || !c
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(bad(
                    "eid.connectors.id",
                    &c.id,
                    "must be 1 to 32 letters, digits, `-` or `_`",
                ));
            }
            if self.connectors[..n].iter().any(|o| o.id == c.id) {
                return Err(bad("eid.connectors.id", &c.id, "is used twice"));
            }
            let url = Url::parse(&c.issuer)
                .map_err(|_| bad("eid.connectors.issuer", &c.id, "must be an absolute URL"))?;
            let loopback = url.host_str().is_some_and(crate::config::is_loopback_host);
            match url.scheme() {
                "https" => {}
                "http" if development && loopback => {}
                "http" => {
                    return Err(bad(
                        "eid.connectors.issuer",
                        &c.id,
                        "must be https (http only for a loopback upstream while Civitas's own issuer is http://localhost)",
                    ));
                }
                _ => return Err(bad("eid.connectors.issuer", &c.id, "must be an https URL")),
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(bad(
                    "eid.connectors.issuer",
                    &c.id,
                    "must have no query or fragment",
                ));
            }
            if !is_country(&c.country) || !c.countries.iter().all(|x| is_country(x)) {
                return Err(bad(
                    "eid.connectors.country",
                    &c.id,
                    "must be ISO 3166-1 alpha-2 codes in capitals (`EE`)",
                ));
            }
            if let Some(bad_level) = c
                .acr_map
                .values()
                .find(|l| crate::assurance::Level::parse(l).is_none())
            {
                return Err(bad(
                    "eid.connectors.acr_map",
                    &c.id,
                    &format!("maps to `{bad_level}`, which is not low, substantial or high"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(issuer: &str, extra: &str) -> EidSettings {
        let toml = format!(
            "[[connectors]]\nid = \"sim\"\nname = \"Test eID\"\nissuer = \"{issuer}\"\nclient_id = \"civitas\"\n\
             scheme = \"simulated-eid\"\ncountry = \"EE\"\n{extra}"
        );
        use figment::providers::Format as _;
        figment::Figment::from(figment::providers::Toml::string(&toml))
            .extract()
            .expect("connector settings")
    }

    #[test]
    fn a_production_civitas_trusts_only_https_upstreams() {
        assert!(one("https://tara.ria.ee", "").validate(false).is_ok());
        for issuer in [
            "http://tara.ria.ee",
            "http://127.0.0.1:9091",
            "http://localhost:9091",
        ] {
            let err = one(issuer, "").validate(false).unwrap_err();
            assert_eq!(err.key, "eid.connectors.issuer", "{issuer}");
        }
        assert!(one("ftp://tara.ria.ee", "").validate(true).is_err());
    }

    #[test]
    fn a_development_civitas_may_use_a_loopback_http_upstream_only() {
        assert!(one("http://127.0.0.1:9091", "").validate(true).is_ok());
        assert!(one("http://localhost:9091", "").validate(true).is_ok());
        assert!(one("http://eid.example", "").validate(true).is_err());
    }

    #[test]
    fn countries_and_levels_are_checked() {
        assert!(
            one("https://x.example", "countries = [\"ee\"]")
                .validate(false)
                .is_err()
        );
        assert!(
            one(
                "https://x.example",
                "[connectors.acr_map]\ngold = \"platinum\""
            )
            .validate(false)
            .is_err()
        );
        let c = one("https://x.example", "");
        assert!(c.connectors[0].accepts_country("EE"));
        assert!(!c.connectors[0].accepts_country("FI"));
        let c = one("https://x.example", "countries = [\"EE\", \"LV\"]");
        assert!(c.connectors[0].accepts_country("LV"));
        assert!(!c.connectors[0].accepts_country("FI"));
    }
}
