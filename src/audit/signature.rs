//! Checking what Civitas signed for its audit trail (checkpoints, records
//! of pruning, acceptances) against every key it ever had, not only the
//! published ones, and against nothing else.
//!
//! A token is valid only under a published key ([`KeyManager::verify`]);
//! an audit signature must stay checkable for as long as the entries it
//! covers are kept, long after its key stopped being published. The
//! [`KeyRing`] therefore finds a key among the published ones, then in the
//! keys directory (Civitas never deletes a key file), then among the keys
//! the operator pins ([`KeyRing::pin`], `verify --trusted-key`). A key that
//! a line of a trusted file carries is never one of them: anyone who can
//! append a line could append a key of their own. All audit signatures are
//! ES256; keys are named by their RFC 7638 thumbprint, as Civitas names
//! its keys.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::keys::KeyManager;

/// Why a signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// Signed by a key that is neither in the keys directory nor pinned by
    /// the operator: cannot be checked.
    UnknownKey(String),
    /// Not a valid ES256 signature of the expected type.
    Invalid(&'static str),
}

/// A P-256 public key the operator pins, named by its RFC 7638 thumbprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    kid: String,
    point: Vec<u8>,
}

impl PublicKey {
    /// The key of a P-256 public JWK (its `kid` member, if any, is not
    /// used: the thumbprint names it).
    #[must_use]
    pub fn from_jwk(jwk: &Map<String, Value>) -> Option<Self> {
        es256_key(jwk).map(|(kid, point)| Self { kid, point })
    }

    /// The P-256 public keys of a JWK or of a JWK Set (`{"keys": […]}`);
    /// the other keys of a set are skipped.
    #[must_use]
    pub fn all_in(json: &Value) -> Vec<Self> {
        match json.get("keys").and_then(Value::as_array) {
            Some(set) => set
                .iter()
                .filter_map(Value::as_object)
                .filter_map(Self::from_jwk)
                .collect(),
            None => json
                .as_object()
                .and_then(Self::from_jwk)
                .into_iter()
                .collect(),
        }
    }

    /// Its thumbprint.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

/// The keys audit signatures are checked with: the keys directory's, and
/// the ones the operator pins.
pub struct KeyRing<'a> {
    keys: &'a KeyManager,
    /// Uncompressed P-256 points by kid, from the keys directory (`None`:
    /// not there) or pinned.
    points: HashMap<String, Option<Vec<u8>>>,
}

impl std::fmt::Debug for KeyRing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("kids", &self.points.len())
            .finish_non_exhaustive()
    }
}

impl<'a> KeyRing<'a> {
    /// The keys of `keys` (published, then the rest of its directory).
    #[must_use]
    pub fn new(keys: &'a KeyManager) -> Self {
        Self {
            keys,
            points: HashMap::new(),
        }
    }

    /// Also checks with `key`, which the operator vouches for (a key of
    /// Civitas whose files are gone, kept from its published JWKS).
    pub fn pin(&mut self, key: &PublicKey) {
        self.points.insert(key.kid.clone(), Some(key.point.clone()));
    }

    /// The public JWK of `kid` from the keys directory, to export beside
    /// what it signed.
    #[must_use]
    pub fn jwk(&self, kid: &str) -> Option<Map<String, Value>> {
        self.keys.public_jwk(kid).ok().flatten()
    }

    fn point(&mut self, kid: &str) -> Option<Vec<u8>> {
        if let Some(p) = self.points.get(kid) {
            return p.clone();
        }
        // A directory that cannot be read holds no key for this check.
        let point = self
            .keys
            .public_jwk(kid)
            .ok()
            .flatten()
            .and_then(|jwk| es256_key(&jwk))
            .filter(|(k, _)| k == kid)
            .map(|(_, p)| p);
        self.points.insert(kid.to_owned(), point.clone());
        point
    }

    /// Checks that `jws` is a compact ES256 JWS of header `typ` by one of
    /// the ring's keys; returns the kid and the claims.
    ///
    /// # Errors
    /// [`SigError`] if it is not.
    pub fn verify(&mut self, jws: &str, typ: &str) -> Result<(String, Value), SigError> {
        let (header, claims) = decode(jws).ok_or(SigError::Invalid("not a compact JWS"))?;
        if header["alg"] != "ES256" {
            return Err(SigError::Invalid("not ES256"));
        }
        if header["typ"] != typ {
            return Err(SigError::Invalid("not of the expected type"));
        }
        let kid = header["kid"]
            .as_str()
            .ok_or(SigError::Invalid("no kid"))?
            .to_owned();
        let point = self
            .point(&kid)
            .ok_or_else(|| SigError::UnknownKey(kid.clone()))?;
        let (input, signature) = jws
            .rsplit_once('.')
            .ok_or(SigError::Invalid("not a compact JWS"))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| SigError::Invalid("bad base64url"))?;
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, point)
            .verify(input.as_bytes(), &signature)
            .map_err(|_| SigError::Invalid("bad signature"))?;
        Ok((kid, claims))
    }
}

/// The header and claims of a compact JWS, unverified.
#[must_use]
pub fn decode(jws: &str) -> Option<(Value, Value)> {
    let mut parts = jws.split('.');
    let (Some(h), Some(p), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let part = |s: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    Some((part(h)?, part(p)?))
}

/// The RFC 7638 thumbprint and the uncompressed point (`04 || x || y`) of
/// a P-256 public JWK.
fn es256_key(jwk: &Map<String, Value>) -> Option<(String, Vec<u8>)> {
    let member = |name: &str| jwk.get(name).and_then(Value::as_str);
    if member("kty")? != "EC" || member("crv")? != "P-256" {
        return None;
    }
    let (x, y) = (member("x")?, member("y")?);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    let (x, y) = (
        URL_SAFE_NO_PAD.decode(x).ok()?,
        URL_SAFE_NO_PAD.decode(y).ok()?,
    );
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let mut point = Vec::with_capacity(65);
    point.push(4);
    point.extend(x);
    point.extend(y);
    Some((kid, point))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_key_is_named_by_its_thumbprint_and_must_be_p256() {
        // The P-256 key of RFC 7515 A.3; its thumbprint computed apart
        // (Python: SHA-256 of the RFC 7638 canonical JSON, base64url).
        let jwk: Map<String, Value> = serde_json::from_str(
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"ignored"}"#,
        )
        .unwrap();
        let (kid, point) = es256_key(&jwk).unwrap();
        assert_eq!(point.len(), 65);
        assert_eq!(kid, "oKIywvGUpTVTyxMQ3bwIIeQUudfr_CkLMjCE19ECD-U");
        let mut other = jwk.clone();
        other.insert("crv".into(), "P-384".into());
        assert!(es256_key(&other).is_none());
        other.insert("kty".into(), "RSA".into());
        assert!(es256_key(&other).is_none());
        // A JWK, or the P-256 keys of a set.
        let one = PublicKey::all_in(&Value::Object(jwk.clone()));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].kid(), kid);
        let set = serde_json::json!({"keys": [other, jwk]});
        assert_eq!(PublicKey::all_in(&set), one);
        assert!(PublicKey::all_in(&serde_json::json!({"keys": []})).is_empty());
    }

    #[test]
    fn decode_refuses_what_is_not_a_compact_jws() {
        assert!(decode("a.b").is_none());
        assert!(decode("a.b.c.d").is_none());
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256"}"#);
        let p = URL_SAFE_NO_PAD.encode(br#"{"seq":1}"#);
        let (header, claims) = decode(&format!("{h}.{p}.sig")).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["seq"], 1);
    }
}
