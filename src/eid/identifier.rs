//! One person, one identifier: the canonical form of a national person
//! identifier, the only form Civitas hashes, stores and compares.
//!
//! The same person reaches Civitas in several spellings. A business-register
//! extract names them by the bare national identifier (`38001085718`).
//! Estonia's TARA, and other national eIDs, prefix it with the country
//! (`EE38001085718`). An eIDAS node sends the unique identifier
//! `EE/EE/38001085718` (eIDAS SAML Attribute Profile, "Unique Identifier":
//! the nationality code of the identifier, `/`, the nationality code of the
//! destination, `/`, the identifier; the profile's example is
//! `ES/AT/02635542Y`). Hashed as they come, these would be three different
//! people: a statutory representative proven by eID would never match the
//! register.
//!
//! [`PersonIdentifier::parse`] turns every entry point's input (an eID
//! binding, a register extract, a mandate's addressee) into one form:
//!
//! 1. The country is trimmed and must be two ASCII letters; it is upper-cased.
//! 2. The identifier is trimmed of surrounding whitespace; control
//!    characters anywhere are refused.
//! 3. An eIDAS prefix `CC/XX/` (two letters, `/`, two letters, `/`, in any
//!    case) is removed. Its first code must be the country; the second (the
//!    receiving state) may be any. A first code naming another country is
//!    refused ([`IdentifierError::OtherCountry`]): it would otherwise be
//!    hashed as a person of the wrong country.
//! 4. Otherwise a leading country code is removed as `national_form`
//!    decides for the country (TARA style).
//! 5. What remains must be the country's national form (per country,
//!    `national_form`) and not empty.
//!
//! The canonical form is the bare national identifier; together with the
//! country it names the person.
//!
//! Scope of step 4: some national identifiers begin with letters (a United
//! Kingdom National Insurance number, an Italian codice fiscale, a German
//! eID pseudonym in hexadecimal), so two leading letters cannot in general
//! be told from a prefix. Only for a country with a rule in
//! `national_form`, whose identifiers never begin with letters, are two
//! leading letters always a prefix: equal to the country they are removed,
//! naming another they are refused. For every other country a leading code
//! is removed only when it is exactly the country in capitals followed by a
//! digit (`LT38001085718` for `LT`), and any other leading letters are kept
//! as part of the identifier.

use std::fmt;

/// Why a person identifier cannot be used. The messages never repeat the
/// identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentifierError {
    /// The country is not two ASCII letters (ISO 3166-1 alpha-2).
    #[error("the country of a national identifier must be two letters (ISO 3166-1 alpha-2)")]
    Country,
    /// Nothing is left once prefixes and whitespace are removed.
    #[error("the national identifier is empty")]
    Empty,
    /// A prefix names another country than the one given.
    #[error("the national identifier is prefixed with country {prefix}, not {country}")]
    OtherCountry {
        /// The country given.
        country: String,
        /// The country the prefix names (two letters, upper case).
        prefix: String,
    },
    /// Not an identifier of the country's national form.
    #[error("this is not a national identifier of {country}: {expected}")]
    Malformed {
        /// The country.
        country: String,
        /// What the country's identifiers look like.
        expected: &'static str,
    },
}

/// A national person identifier in its canonical form, with its country.
/// Parsed once at every entry point; `Debug` never shows the identifier.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PersonIdentifier {
    country: String,
    national: String,
}

impl fmt::Debug for PersonIdentifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PersonIdentifier({}, [redacted])", self.country)
    }
}

/// Two letters, `/`, two letters, `/`: the eIDAS uniqueness identifier's
/// prefix; the two codes, upper-cased, and the rest.
fn eidas_prefix(raw: &str) -> Option<(String, &str)> {
    let b = raw.as_bytes();
    let letter = |i: usize| b.get(i).is_some_and(u8::is_ascii_alphabetic);
    let slash = |i: usize| b.get(i) == Some(&b'/');
    (letter(0) && letter(1) && slash(2) && letter(3) && letter(4) && slash(5))
        .then(|| (raw[..2].to_ascii_uppercase(), &raw[6..]))
}

/// How the identifiers of a country look, for a country with a rule.
struct NationalRule {
    /// Is this (prefixes removed) an identifier of the country?
    valid: fn(&str) -> bool,
    /// What they look like, for the error message.
    expected: &'static str,
}

/// The rule of `country`, if Civitas knows one: the one place for
/// country-specific rules. `None`: the general rule of the module applies.
fn national_rule(country: &str) -> Option<NationalRule> {
    match country {
        // Isikukood: 11 digits (sex and century, birth date, serial, check
        // digit; the check digit is not verified).
        "EE" => Some(NationalRule {
            valid: |id| id.len() == 11 && id.bytes().all(|b| b.is_ascii_digit()),
            expected: "an Estonian personal identification code is 11 digits",
        }),
        _ => None,
    }
}

/// The national form of `id` for `country` (already upper-case), once an
/// eIDAS prefix is gone; `strip` says whether a TARA-style prefix may still
/// be removed.
fn national_form(country: &str, id: &str, strip: bool) -> Result<String, IdentifierError> {
    let b = id.as_bytes();
    let leading_code = b.len() > 2 && b[0].is_ascii_alphabetic() && b[1].is_ascii_alphabetic();
    let id = match national_rule(country) {
        Some(NationalRule { valid, expected }) => {
            // Identifiers of this country never begin with letters: two are a prefix.
            let bare = if strip && leading_code {
                let prefix = id[..2].to_ascii_uppercase();
                if prefix != country {
                    return Err(IdentifierError::OtherCountry {
                        country: country.to_owned(),
                        prefix,
                    });
                }
                &id[2..]
            } else {
                id
            };
            if !valid(bare) {
                return Err(IdentifierError::Malformed {
                    country: country.to_owned(),
                    expected,
                });
            }
            bare
        }
        None if strip && id.starts_with(country) && b.get(2).is_some_and(u8::is_ascii_digit) => {
            &id[2..]
        }
        None => id,
    };
    let id = id.trim();
    if id.is_empty() {
        return Err(IdentifierError::Empty);
    }
    Ok(id.to_owned())
}

impl PersonIdentifier {
    /// The canonical identifier of `raw`, a national identifier of
    /// `country` in any accepted spelling (see the module).
    ///
    /// # Errors
    /// [`IdentifierError`]: a country that is not two letters, an empty
    /// identifier, a prefix of another country, or a malformed identifier.
    pub fn parse(country: &str, raw: &str) -> Result<Self, IdentifierError> {
        let country = country.trim();
        if country.len() != 2 || !country.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(IdentifierError::Country);
        }
        let country = country.to_ascii_uppercase();
        let raw = raw.trim();
        if raw.chars().any(char::is_control) {
            return Err(IdentifierError::Malformed {
                country,
                expected: "it contains control characters",
            });
        }
        let national = match eidas_prefix(raw) {
            Some((nationality, _)) if nationality != country => {
                return Err(IdentifierError::OtherCountry {
                    country,
                    prefix: nationality,
                });
            }
            Some((_, rest)) => national_form(&country, rest.trim(), false)?,
            None => national_form(&country, raw, true)?,
        };
        Ok(Self { country, national })
    }

    /// The country (ISO 3166-1 alpha-2, upper case).
    #[must_use]
    pub fn country(&self) -> &str {
        &self.country
    }

    /// The national identifier, without prefixes (secret: never log it).
    #[must_use]
    pub fn national(&self) -> &str {
        &self.national
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(country: &str, raw: &str) -> Result<(String, String), IdentifierError> {
        PersonIdentifier::parse(country, raw).map(|p| (p.country().into(), p.national().into()))
    }

    #[test]
    fn every_spelling_of_an_estonian_identifier_is_one_person() {
        let mari = Ok(("EE".to_owned(), "38001085718".to_owned()));
        for raw in [
            "38001085718",
            "EE38001085718",
            "ee38001085718",
            "EE/EE/38001085718",
            "EE/LV/38001085718",
            "ee/de/38001085718",
            "  EE38001085718\t",
            "EE/EE/ 38001085718",
        ] {
            assert_eq!(canonical("EE", raw), mari, "{raw:?}");
            assert_eq!(
                canonical(" ee ", raw),
                mari,
                "{raw:?} with a lower-case country"
            );
        }
    }

    #[test]
    fn a_prefix_of_another_country_is_refused_not_reinterpreted() {
        for raw in ["LV38001085718", "LV/EE/38001085718", "lv/ee/38001085718"] {
            assert_eq!(
                canonical("EE", raw),
                Err(IdentifierError::OtherCountry {
                    country: "EE".into(),
                    prefix: "LV".into()
                }),
                "{raw}"
            );
        }
        assert!(matches!(
            canonical("DE", "EE/DE/abc123"),
            Err(IdentifierError::OtherCountry { .. })
        ));
    }

    #[test]
    fn an_estonian_identifier_is_eleven_digits() {
        for raw in [
            "3800108571",
            "380010857189",
            "3800108571X",
            "EE/EE/EE38001085718",
            "380 0108 5718",
            "EE",
        ] {
            assert!(
                matches!(canonical("EE", raw), Err(IdentifierError::Malformed { .. })),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn other_countries_strip_only_their_own_code_before_a_digit() {
        let ok = |c: &str, n: &str| Ok((c.to_owned(), n.to_owned()));
        assert_eq!(canonical("LT", "LT38001085718"), ok("LT", "38001085718"));
        assert_eq!(
            canonical("LT", "LT/EE/38001085718"),
            ok("LT", "38001085718")
        );
        assert_eq!(canonical("LT", "38001085718"), ok("LT", "38001085718"));
        // Identifiers that begin with letters keep them.
        assert_eq!(canonical("GB", "AB123456C"), ok("GB", "AB123456C"));
        assert_eq!(
            canonical("IT", "RSSMRA85T10A562S"),
            ok("IT", "RSSMRA85T10A562S")
        );
        assert_eq!(canonical("DE", "de4f00aa"), ok("DE", "de4f00aa"));
        assert_eq!(
            canonical("CZ", "CZ/EE/800101/1234"),
            ok("CZ", "800101/1234")
        );
        assert_eq!(canonical("CZ", "800101/1234"), ok("CZ", "800101/1234"));
    }

    #[test]
    fn bad_countries_and_empty_identifiers_are_refused() {
        for country in ["", "E", "EST", "E1", "ÉE"] {
            assert_eq!(
                canonical(country, "38001085718"),
                Err(IdentifierError::Country)
            );
        }
        assert_eq!(canonical("LT", "  "), Err(IdentifierError::Empty));
        assert_eq!(canonical("LT", "LT/EE/"), Err(IdentifierError::Empty));
        assert!(matches!(
            canonical("LT", "3800\n1085718"),
            Err(IdentifierError::Malformed { .. })
        ));
    }

    #[test]
    fn neither_debug_nor_errors_show_the_identifier() {
        let p = PersonIdentifier::parse("EE", "EE38001085718").unwrap();
        assert_eq!(format!("{p:?}"), "PersonIdentifier(EE, [redacted])");
        for raw in ["LV38001085718", "3800108571X"] {
            let e = PersonIdentifier::parse("EE", raw).unwrap_err();
            assert!(!e.to_string().contains("3800108571"), "{e}");
            assert!(!format!("{e:?}").contains("3800108571"), "{e:?}");
        }
    }
}
