//! Secrets: generation, hashing and comparison.
//!
//! Every secret Civitas hands out (client secrets, registration access tokens,
//! later authorization codes and refresh tokens) is 256 bits from the operating
//! system's CSPRNG, encoded base64url. Server-generated secrets have full
//! entropy, so a single SHA-256 is a sufficient one-way hash for storage (a
//! slow password hash protects low-entropy human secrets; these are not).
//! Comparison is constant-time.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A secret value that never prints itself.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value as a secret.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// 256 fresh random bits, base64url without padding (43 characters).
    #[must_use]
    pub fn generate() -> Self {
        Self(random_token(32))
    }

    /// The secret itself; call only where it is really needed.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The storage hash of this secret.
    #[must_use]
    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }

    /// Constant-time equality with another presented value.
    #[must_use]
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Accepts any scalar, so that `CIVITAS_REGISTRATION_TOKEN=12345` (which the
    /// environment layer reads as a number) is still a secret string.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::config::string_like(d).map(Self)
    }
}

/// The hex SHA-256 of a server-generated secret, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    /// Hashes a presented secret.
    #[must_use]
    pub fn of(secret: &str) -> Self {
        let digest = Sha256::digest(secret.as_bytes());
        let mut hex = String::with_capacity(64);
        for b in digest {
            use fmt::Write as _;
            let _ = write!(hex, "{b:02x}");
        }
        Self(hex)
    }

    /// A stored hash, as read from the database.
    #[must_use]
    pub fn from_stored(hex: String) -> Self {
        Self(hex)
    }

    /// The stored form.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Does `presented` hash to this value? Constant-time in the hash.
    #[must_use]
    pub fn verify(&self, presented: &str) -> bool {
        let other = Self::of(presented);
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// `N` random bytes from the OS CSPRNG.
///
/// # Panics
/// As [`random_token`]: only if the operating system's random source fails.
#[must_use]
#[allow(clippy::panic)]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random source failed: {e}");
    }
    buf
}

/// `bytes` random bytes from the OS CSPRNG, base64url without padding.
///
/// # Panics
/// Never in practice: the OS random source failing is unrecoverable and
/// `getrandom` only fails on platforms Civitas does not run on.
#[must_use]
#[allow(clippy::panic)]
pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("the operating system's random source failed: {e}");
    }
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_have_256_bits_and_differ() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_eq!(a.expose().len(), 43);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn hash_verifies_only_the_same_secret() {
        let s = Secret::generate();
        let h = s.hash();
        assert!(h.verify(s.expose()));
        assert!(!h.verify("something else"));
        assert_eq!(h.as_str().len(), 64);
    }
}
