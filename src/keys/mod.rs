//! Signing keys: generation, rotation, publication (JWKS) and JWS signing.
//!
//! Keys live in the keys directory ([`files`]); which key signs and which are
//! published is a pure function of their metadata and the time
//! ([`lifecycle`]). The [`KeyManager`] holds the parsed keys and the
//! serialised JWKS in an [`ArcSwap`], so signing and serving the JWKS take no
//! lock and do no I/O: keys are parsed at start-up and when the directory
//! changes, never per request.
//!
//! Design notes and risks: `docs/designs/0001-signing-key-rotation.md`.

mod files;
pub mod lifecycle;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use josekit::jwk::Jwk;
use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::{EcCurve, EcKeyPair};
use josekit::jwk::alg::ed::{EdCurve, EdKeyPair};
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jwk::alg::rsapss::RsaPssKeyPair;
use josekit::jws::{JwsSigner, JwsVerifier, PS256, RS256};
use josekit::util::HashAlgorithm;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use files::{KeyDir, KeyMeta};
pub use lifecycle::KeyState;

use crate::clock::{SharedClock, UnixTime};

/// A JWS algorithm Civitas signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Alg {
    /// ECDSA P-256 with SHA-256: the default for everything Civitas signs.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: required by OIDC Core §15.1 for ID tokens.
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// Ed25519 (RFC 8037).
    EdDSA,
}

impl Alg {
    /// Every algorithm, each of which always has an active key.
    pub const ALL: [Alg; 4] = [Alg::ES256, Alg::RS256, Alg::PS256, Alg::EdDSA];

    /// The JOSE name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::EdDSA => "EdDSA",
        }
    }

    /// The hash whose left half forms `at_hash`/`c_hash` (OIDC Core §3.1.3.6):
    /// SHA-256 for the 256-bit algorithms, SHA-512 for Ed25519.
    #[must_use]
    pub fn left_half_hash(self, input: &[u8]) -> String {
        let digest: Vec<u8> = match self {
            Self::EdDSA => sha2::Sha512::digest(input).to_vec(),
            _ => Sha256::digest(input).to_vec(),
        };
        URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
    }

    /// Parses a JOSE name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The keys directory or a key file could not be read or written.
    #[error("keys directory: {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A key file does not hold what it should.
    #[error("key file is corrupt: {0}")]
    Corrupt(String),
    /// The cryptographic library failed.
    #[error("cryptography: {0}")]
    Crypto(#[from] josekit::JoseError),
    /// ring refused to sign (it never should with a key it parsed).
    #[error("signing failed")]
    SignatureFailed,
    /// No key of this algorithm is active (the directory was tampered with).
    #[error("no active {0:?} key")]
    NoActiveKey(Alg),
    /// A token presented for verification is not one Civitas signed with a
    /// published key.
    #[error("token is not valid: {0}")]
    InvalidToken(&'static str),
}

impl KeyError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// One parsed key.
struct LoadedKey {
    meta: KeyMeta,
    signer: Signer,
    verifier: Verifier,
    public_jwk: serde_json::Map<String, serde_json::Value>,
}

/// Signs with the fastest implementation at hand: ring for ES256 and EdDSA
/// (the hot path: every access token is ES256), about 1.3 to 1.6 times
/// faster than OpenSSL through josekit; josekit for the RSA algorithms,
/// whose cost is the same in every library.
enum Signer {
    Ecdsa(ring::signature::EcdsaKeyPair, ring::rand::SystemRandom),
    Ed25519(ring::signature::Ed25519KeyPair),
    Jose(Box<dyn JwsSigner>),
}

impl Signer {
    /// The JWS signature over `input` (for ES256 the fixed-size R||S form
    /// of RFC 7518 §3.4).
    fn sign(&self, input: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Ecdsa(key, rng) => key
                .sign(rng, input)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| KeyError::SignatureFailed),
            Self::Ed25519(key) => Ok(key.sign(input).as_ref().to_vec()),
            Self::Jose(signer) => Ok(signer.sign(input)?),
        }
    }
}

/// Verifies with ring for ES256 and EdDSA, josekit for the RSA algorithms.
enum Verifier {
    Ring(ring::signature::UnparsedPublicKey<Vec<u8>>),
    Jose(Box<dyn JwsVerifier>),
}

impl Verifier {
    fn verify(&self, input: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ring(key) => key.verify(input, signature).is_ok(),
            Self::Jose(verifier) => verifier.verify(input, signature).is_ok(),
        }
    }
}

impl std::fmt::Debug for LoadedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedKey")
            .field("kid", &self.meta.kid)
            .finish_non_exhaustive()
    }
}

/// The keys as of one point in time.
#[derive(Debug)]
struct KeySet {
    /// Published keys with their state.
    published: Vec<(Arc<LoadedKey>, KeyState)>,
    /// Index into `published` of the active key per algorithm.
    active: HashMap<Alg, usize>,
    /// The JWKS document, serialised once.
    jwks: Bytes,
    /// Every kid in the directory, to notice changes.
    kids: Vec<String>,
    /// When a state changes next without any file changing.
    next_change: Option<UnixTime>,
}

/// A key as listed to the operator.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// The key id.
    pub kid: String,
    /// Its algorithm.
    pub alg: Alg,
    /// When it was created.
    pub created_at: i64,
    /// When it signs from.
    pub activates_at: i64,
    /// Its state now.
    pub state: String,
}

/// The signing keys of this instance.
pub struct KeyManager {
    dir: KeyDir,
    clock: SharedClock,
    retention_secs: u64,
    current: ArcSwap<KeySet>,
}

impl std::fmt::Debug for KeyManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyManager")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl KeyManager {
    /// Opens the keys directory, generating one key per algorithm on first
    /// start, and loads every published key. `retention_secs` is how long a
    /// retired key stays published: the longest lifetime of a signed token
    /// plus the reload interval.
    ///
    /// # Errors
    /// If the directory cannot be used or a key cannot be parsed.
    pub fn open(dir: &Path, clock: SharedClock, retention_secs: u64) -> Result<Self, KeyError> {
        let dir = KeyDir::open(dir)?;
        {
            let _lock = dir.lock()?;
            let metas = dir.list()?;
            for alg in Alg::ALL {
                if !metas.iter().any(|m| m.alg == alg) {
                    let meta = generate(&dir, alg, clock.now(), clock.now())?;
                    tracing::info!(kid = %meta.kid, alg = alg.as_str(), "generated signing key");
                }
            }
        }
        let set = load(&dir, None, clock.now(), retention_secs)?;
        Ok(Self {
            dir,
            clock,
            retention_secs,
            current: ArcSwap::from_pointee(set),
        })
    }

    /// Re-reads the directory and recomputes the key states at the current
    /// time; parses only keys it has not seen. Returns whether anything
    /// changed.
    ///
    /// # Errors
    /// If the directory or a new key cannot be read; the previous keys stay in use.
    pub fn refresh(&self) -> Result<bool, KeyError> {
        let old = self.current.load_full();
        let set = load(&self.dir, Some(&old), self.clock.now(), self.retention_secs)?;
        let changed = set.jwks != old.jwks || set.active != old.active || set.kids != old.kids;
        self.current.store(Arc::new(set));
        Ok(changed)
    }

    /// Seconds until the key set must be recomputed even if no file changes.
    #[must_use]
    pub fn secs_until_next_change(&self) -> Option<u64> {
        let now = self.clock.now();
        self.current.load().next_change.map(|t| now.secs_until(t))
    }

    /// Adds a new key for each algorithm that signs from `delay_secs` from
    /// now, and is published at once. Safe to run while instances serve:
    /// they pick the new keys up at their next reload.
    ///
    /// # Errors
    /// If a key cannot be generated or written.
    pub fn rotate(
        dir: &Path,
        clock: &SharedClock,
        algs: &[Alg],
        delay_secs: u64,
    ) -> Result<Vec<KeyMeta>, KeyError> {
        let dir = KeyDir::open(dir)?;
        let _lock = dir.lock()?;
        let now = clock.now();
        algs.iter()
            .map(|alg| generate(&dir, *alg, now, now.plus(delay_secs)))
            .collect()
    }

    /// Every key in the directory with its state now.
    ///
    /// # Errors
    /// If the directory cannot be read.
    pub fn list(
        dir: &Path,
        clock: &SharedClock,
        retention_secs: u64,
    ) -> Result<Vec<KeyInfo>, KeyError> {
        let metas = KeyDir::open(dir)?.list()?;
        let states = lifecycle::states(&metas, clock.now(), retention_secs);
        Ok(metas
            .into_iter()
            .zip(states)
            .map(|(m, s)| KeyInfo {
                kid: m.kid,
                alg: m.alg,
                created_at: m.created_at,
                activates_at: m.activates_at,
                state: match s {
                    KeyState::Pending => "pending".into(),
                    KeyState::Active => "active".into(),
                    KeyState::Retired { until } => format!("retired (published until {until})"),
                    KeyState::Expired => "expired".into(),
                },
            })
            .collect())
    }

    /// The JWKS document (public members only), serialised.
    #[must_use]
    pub fn jwks(&self) -> Bytes {
        self.current.load().jwks.clone()
    }

    /// The kid of the key that signs with `alg` now.
    ///
    /// # Errors
    /// If no key of `alg` is active.
    pub fn active_kid(&self, alg: Alg) -> Result<String, KeyError> {
        let set = self.current.load();
        let i = *set.active.get(&alg).ok_or(KeyError::NoActiveKey(alg))?;
        Ok(set.published[i].0.meta.kid.clone())
    }

    /// Signs `claims` as a compact JWS (a JWT) with the active `alg` key,
    /// with header `typ` (for example `JWT`, or `at+jwt` per RFC 9068 §2.1).
    ///
    /// # Errors
    /// If no key is active or signing fails.
    pub fn sign<C: Serialize + ?Sized>(
        &self,
        alg: Alg,
        typ: &str,
        claims: &C,
    ) -> Result<String, KeyError> {
        let set = self.current.load();
        let i = *set.active.get(&alg).ok_or(KeyError::NoActiveKey(alg))?;
        let key = &set.published[i].0;
        // kid is a base64url thumbprint and typ one of Civitas's constants:
        // neither needs JSON escaping, so the header is written directly.
        debug_assert!(!typ.contains(['"', '\\']));
        let header = format!(
            r#"{{"alg":"{}","typ":"{typ}","kid":"{}"}}"#,
            alg.as_str(),
            key.meta.kid
        );
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Corrupt(e.to_string()))?;
        let mut out = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 100);
        URL_SAFE_NO_PAD.encode_string(&header, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
        let signature = key.signer.sign(out.as_bytes())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Ok(out)
    }

    /// The public JWK of key `kid` if the keys directory holds it, published
    /// or not: Civitas never deletes a key file, so what a key signed long
    /// ago (an audit checkpoint) can still be checked. Never for tokens:
    /// those are valid only under a published key ([`Self::verify`]).
    ///
    /// # Errors
    /// If the directory or the key file cannot be read.
    pub fn public_jwk(
        &self,
        kid: &str,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, KeyError> {
        if let Some((k, _)) = self
            .current
            .load()
            .published
            .iter()
            .find(|(k, _)| k.meta.kid == kid)
        {
            return Ok(Some(k.public_jwk.clone()));
        }
        match self.dir.list()?.into_iter().find(|m| m.kid == kid) {
            Some(meta) => Ok(Some(parse(&self.dir, &meta)?.public_jwk)),
            None => Ok(None),
        }
    }

    /// Verifies that `token` is a compact JWS signed by a key Civitas
    /// publishes, with the algorithm of that key, and returns its header and
    /// claims. It checks nothing else (expiry and audience are the caller's).
    ///
    /// # Errors
    /// [`KeyError::InvalidToken`] for anything but a valid signature by a published key.
    pub fn verify(&self, token: &str) -> Result<(serde_json::Value, serde_json::Value), KeyError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(KeyError::InvalidToken("not a compact JWS"));
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| KeyError::InvalidToken("bad base64url"))
        };
        let header: serde_json::Value = serde_json::from_slice(&decode(h)?)
            .map_err(|_| KeyError::InvalidToken("bad header"))?;
        let kid = header["kid"]
            .as_str()
            .ok_or(KeyError::InvalidToken("no kid"))?;
        let alg = header["alg"]
            .as_str()
            .ok_or(KeyError::InvalidToken("no alg"))?;
        let set = self.current.load();
        let (key, _) = set
            .published
            .iter()
            .find(|(k, _)| k.meta.kid == kid)
            .ok_or(KeyError::InvalidToken("unknown kid"))?;
        if key.meta.alg.as_str() != alg {
            return Err(KeyError::InvalidToken("alg does not match the key"));
        }
        let signing_input_len = h.len() + 1 + p.len();
        if !key
            .verifier
            .verify(&token.as_bytes()[..signing_input_len], &decode(s)?)
        {
            return Err(KeyError::InvalidToken("bad signature"));
        }
        let claims = serde_json::from_slice(&decode(p)?)
            .map_err(|_| KeyError::InvalidToken("bad claims"))?;
        Ok((header, claims))
    }
}

/// Generates a key of `alg` into `dir`.
fn generate(
    dir: &KeyDir,
    alg: Alg,
    now: UnixTime,
    activates: UnixTime,
) -> Result<KeyMeta, KeyError> {
    let (pem, public) = match alg {
        Alg::ES256 => {
            let pair = EcKeyPair::generate(EcCurve::P256)?;
            (pair.to_pem_private_key(), pair.to_jwk_public_key())
        }
        Alg::RS256 => {
            let pair = RsaKeyPair::generate(2048)?;
            (pair.to_pem_private_key(), pair.to_jwk_public_key())
        }
        Alg::PS256 => {
            // An RSA-PSS key (PKCS#8 with the PSS OID, SHA-256, MGF1-SHA-256,
            // 32-byte salt), usable for PS256 only.
            let pair =
                RsaPssKeyPair::generate(2048, HashAlgorithm::Sha256, HashAlgorithm::Sha256, 32)?;
            (pair.to_pem_private_key(), pair.to_jwk_public_key())
        }
        Alg::EdDSA => {
            let pair = EdKeyPair::generate(EdCurve::Ed25519)?;
            (pair.to_pem_private_key(), pair.to_jwk_public_key())
        }
    };
    let meta = KeyMeta {
        kid: thumbprint(&public)?,
        alg,
        created_at: now.0,
        activates_at: activates.0,
    };
    dir.write(&meta, &pem)?;
    Ok(meta)
}

/// The RFC 7638 JWK thumbprint (SHA-256, base64url): a key id every party can
/// recompute from the public key.
fn thumbprint(jwk: &Jwk) -> Result<String, KeyError> {
    let member = |name: &str| {
        jwk.parameter(name)
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| KeyError::Corrupt(format!("public key lacks `{name}`")))
    };
    // §3.2: the required members only, in lexicographic order, no whitespace.
    let canonical = match jwk.key_type() {
        "EC" => format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            member("crv")?,
            member("x")?,
            member("y")?
        ),
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member("e")?,
            member("n")?
        ),
        "OKP" => format!(
            r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#,
            member("crv")?,
            member("x")?
        ),
        other => return Err(KeyError::Corrupt(format!("unsupported key type {other}"))),
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// Parses one key file into signer, verifier and public JWK.
fn parse(dir: &KeyDir, meta: &KeyMeta) -> Result<LoadedKey, KeyError> {
    let pem = dir.read_private(&meta.kid)?;
    let (signer, verifier, mut public): (Signer, Verifier, Jwk) = match meta.alg {
        Alg::ES256 => {
            let public = EcKeyPair::from_pem(&pem, Some(EcCurve::P256))?.to_jwk_public_key();
            let (signer, point) = ring_ecdsa(&pem)?;
            (
                signer,
                Verifier::Ring(ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ECDSA_P256_SHA256_FIXED,
                    point,
                )),
                public,
            )
        }
        Alg::RS256 => {
            let pair = RsaKeyPair::from_pem(&pem)?;
            let public = pair.to_jwk_public_key();
            (
                Signer::Jose(Box::new(RS256.signer_from_pem(&pem)?)),
                Verifier::Jose(Box::new(RS256.verifier_from_jwk(&public)?)),
                public,
            )
        }
        Alg::PS256 => {
            let pair = RsaPssKeyPair::from_pem(&pem, None, None, None)?;
            let public = pair.to_jwk_public_key();
            (
                Signer::Jose(Box::new(PS256.signer_from_pem(&pem)?)),
                Verifier::Jose(Box::new(PS256.verifier_from_jwk(&public)?)),
                public,
            )
        }
        Alg::EdDSA => {
            let public = EdKeyPair::from_pem(&pem)?.to_jwk_public_key();
            let (signer, point) = ring_ed25519(&pem)?;
            (
                signer,
                Verifier::Ring(ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ED25519,
                    point,
                )),
                public,
            )
        }
    };
    // The JWK published and the key ring signs with must be the same key.
    if public_point(&public)? != verifier_bytes(&verifier) {
        return Err(KeyError::Corrupt(format!(
            "{}: the parsed key does not match its public key",
            meta.kid
        )));
    }
    if thumbprint(&public)? != meta.kid {
        return Err(KeyError::Corrupt(format!(
            "{}: the key does not match its kid",
            meta.kid
        )));
    }
    public.set_key_id(meta.kid.clone());
    public.set_algorithm(meta.alg.as_str());
    public.set_key_use("sig");
    Ok(LoadedKey {
        meta: meta.clone(),
        signer,
        verifier,
        public_jwk: public.into(),
    })
}

/// The PKCS#8 DER of a PEM private key, as ring reads it.
fn pkcs8(pem: &[u8]) -> Result<Vec<u8>, KeyError> {
    openssl::pkey::PKey::private_key_from_pem(pem)
        .and_then(|k| k.private_key_to_pkcs8())
        .map_err(|e| KeyError::Corrupt(format!("private key: {e}")))
}

/// A ring ES256 signer and its uncompressed public point.
fn ring_ecdsa(pem: &[u8]) -> Result<(Signer, Vec<u8>), KeyError> {
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8(pem)?, &rng)
        .map_err(|e| KeyError::Corrupt(format!("ES256 key: {e}")))?;
    let point = pair.public_key().as_ref().to_vec();
    Ok((Signer::Ecdsa(pair, rng), point))
}

/// A ring Ed25519 signer and its public key. OpenSSL writes PKCS#8 v1
/// (without the public key), which ring reads "unchecked"; the public key
/// it derives is then compared with the JWK's.
fn ring_ed25519(pem: &[u8]) -> Result<(Signer, Vec<u8>), KeyError> {
    use ring::signature::{Ed25519KeyPair, KeyPair as _};
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&pkcs8(pem)?)
        .map_err(|e| KeyError::Corrupt(format!("Ed25519 key: {e}")))?;
    let point = pair.public_key().as_ref().to_vec();
    Ok((Signer::Ed25519(pair), point))
}

/// The public key bytes ring verifies with, for a ring verifier.
fn verifier_bytes(v: &Verifier) -> Option<Vec<u8>> {
    match v {
        Verifier::Ring(k) => Some(k.as_ref().to_vec()),
        Verifier::Jose(_) => None,
    }
}

/// The same bytes from a public JWK: `04 || x || y` for P-256, `x` for
/// Ed25519; `None` for RSA (verified by josekit from the JWK itself).
fn public_point(jwk: &Jwk) -> Result<Option<Vec<u8>>, KeyError> {
    let member = |name: &str| {
        jwk.parameter(name)
            .and_then(serde_json::Value::as_str)
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
            .ok_or_else(|| KeyError::Corrupt(format!("public key lacks `{name}`")))
    };
    match jwk.key_type() {
        "EC" => {
            let mut point = vec![4u8];
            point.extend(member("x")?);
            point.extend(member("y")?);
            Ok(Some(point))
        }
        "OKP" => Ok(Some(member("x")?)),
        _ => Ok(None),
    }
}

/// Builds the key set at `now`, reusing keys already parsed in `previous`.
fn load(
    dir: &KeyDir,
    previous: Option<&KeySet>,
    now: UnixTime,
    retention_secs: u64,
) -> Result<KeySet, KeyError> {
    let metas = dir.list()?;
    let states = lifecycle::states(&metas, now, retention_secs);
    let mut published = Vec::new();
    let mut active = HashMap::new();
    for (meta, state) in metas.iter().zip(states) {
        if !state.is_published() {
            continue;
        }
        let reused = previous.and_then(|p| {
            p.published
                .iter()
                .find(|(k, _)| k.meta == *meta)
                .map(|(k, _)| k.clone())
        });
        let key = match reused {
            Some(k) => k,
            None => Arc::new(parse(dir, meta)?),
        };
        if state == KeyState::Active {
            active.insert(meta.alg, published.len());
        }
        published.push((key, state));
    }
    for alg in Alg::ALL {
        if !active.contains_key(&alg) {
            return Err(KeyError::NoActiveKey(alg));
        }
    }
    let jwks = serde_json::json!({
        "keys": published.iter().map(|(k, _)| &k.public_jwk).collect::<Vec<_>>()
    });
    let jwks =
        Bytes::from(serde_json::to_vec(&jwks).map_err(|e| KeyError::Corrupt(e.to_string()))?);
    Ok(KeySet {
        published,
        active,
        jwks,
        kids: metas.iter().map(|m| m.kid.clone()).collect(),
        next_change: lifecycle::next_change(&metas, now, retention_secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn manager(clock: &ManualClock) -> (tempfile::TempDir, KeyManager) {
        let dir = tempfile::tempdir().unwrap();
        let m = KeyManager::open(dir.path(), Arc::new(clock.clone()), 600).unwrap();
        (dir, m)
    }

    #[test]
    fn first_start_generates_one_active_key_per_algorithm_with_owner_only_files() {
        let clock = ManualClock::new(UnixTime(1_000));
        let (dir, m) = manager(&clock);
        let jwks: serde_json::Value = serde_json::from_slice(&m.jwks()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), Alg::ALL.len());
        for k in keys {
            assert!(
                k.get("d").is_none() && k.get("p").is_none(),
                "private member published: {k}"
            );
            assert_eq!(k["use"], "sig");
        }
        #[cfg(unix)]
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            use std::os::unix::fs::PermissionsExt as _;
            let entry = entry.unwrap();
            if entry.path().extension().is_some_and(|e| e == "pem") {
                assert_eq!(
                    entry.metadata().unwrap().permissions().mode() & 0o777,
                    0o600
                );
            }
        }
    }

    #[test]
    fn signed_tokens_verify_and_tampered_ones_do_not() {
        let clock = ManualClock::new(UnixTime(1_000));
        let (_dir, m) = manager(&clock);
        for alg in Alg::ALL {
            let jwt = m
                .sign(alg, "JWT", &serde_json::json!({"sub": "x"}))
                .unwrap();
            let (header, claims) = m.verify(&jwt).unwrap();
            assert_eq!(header["alg"], alg.as_str());
            assert_eq!(claims["sub"], "x");
            let mut tampered = jwt.clone();
            tampered.insert_str(jwt.find('.').unwrap() + 1, "eyJ");
            assert!(m.verify(&tampered).is_err());
        }
        assert!(m.verify("a.b").is_err());
        assert!(m.verify("").is_err());
    }

    #[test]
    fn a_key_whose_file_does_not_match_its_kid_is_refused() {
        let clock = ManualClock::new(UnixTime(1_000));
        let (dir, m) = manager(&clock);
        let shared: SharedClock = Arc::new(clock.clone());
        let new = KeyManager::rotate(dir.path(), &shared, &[Alg::ES256], 10).unwrap();
        let other = KeyManager::rotate(dir.path(), &shared, &[Alg::ES256], 10).unwrap();
        std::fs::copy(
            dir.path().join(format!("{}.pem", other[0].kid)),
            dir.path().join(format!("{}.pem", new[0].kid)),
        )
        .unwrap();
        assert!(matches!(m.refresh(), Err(KeyError::Corrupt(_))));
        // The previous keys stay in use.
        assert!(m.sign(Alg::ES256, "JWT", &serde_json::json!({})).is_ok());
    }
}
