//! Checking what Civitas signed for its audit trail (checkpoints, records
//! of pruning) against every key it ever had, not only the published ones.
//!
//! A token is valid only under a published key ([`KeyManager::verify`]);
//! an audit signature must stay checkable for as long as the entries it
//! covers are kept, long after its key stopped being published. The
//! [`KeyRing`] therefore finds a key among the published ones, then in the
//! keys directory (Civitas never deletes a key file), then among the public
//! keys that exported checkpoint files carry, each accepted only if it is
//! the key its kid names (the RFC 7638 thumbprint). All audit signatures
//! are ES256.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::keys::KeyManager;

/// Why a signature is not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigError {
    /// Signed by a key that is neither published, nor in the keys
    /// directory, nor in a trusted file: cannot be checked.
    UnknownKey(String),
    /// Not a valid ES256 signature of the expected type.
    Invalid(&'static str),
}

/// The keys audit signatures are checked with.
pub struct KeyRing<'a> {
    keys: &'a KeyManager,
    /// Uncompressed P-256 points by kid, from the keys directory (`None`:
    /// not there) or from trusted files.
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

    /// Adds a public key carried by a trusted file; returns its kid.
    ///
    /// # Errors
    /// If it is not a P-256 public key.
    pub fn add(&mut self, jwk: &Map<String, Value>) -> Result<String, SigError> {
        let (kid, point) = es256_key(jwk).ok_or(SigError::Invalid("not a P-256 public key"))?;
        self.points.entry(kid.clone()).or_insert(Some(point));
        Ok(kid)
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
    fn a_key_from_a_file_is_named_by_its_thumbprint_and_must_be_p256() {
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
