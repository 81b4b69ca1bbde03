//! The simulator's ID-token signing key: one RSA key (RS256, the OpenID
//! Connect default an upstream eID provider is most likely to use), kept in
//! its keys directory so that a restarted simulator publishes the same key
//! set (Civitas caches an upstream's JWKS until it restarts).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use josekit::jwk::alg::rsa::RsaKeyPair;
use josekit::jws::alg::rsassa::RsassaJwsSigner;
use josekit::jws::{JwsSigner as _, RS256};
use sha2::{Digest as _, Sha256};

/// The signing key and its published form.
pub(crate) struct SigningKey {
    signer: RsassaJwsSigner,
    kid: String,
    jwks: serde_json::Value,
}

impl SigningKey {
    /// Reads `dir/simulator-rs256.pem`, creating it (mode 0600) on first start.
    pub(crate) fn load_or_create(dir: &Path) -> Result<Self, String> {
        let path = dir.join("simulator-rs256.pem");
        let pem = if path.exists() {
            std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?
        } else {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let pair = RsaKeyPair::generate(2048).map_err(|e| e.to_string())?;
            let pem = pair.to_pem_private_key();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            match options.open(&path) {
                Ok(mut f) => std::io::Write::write_all(&mut f, &pem).map_err(|e| e.to_string())?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(format!("{}: {e}", path.display())),
            }
            std::fs::read(&path).map_err(|e| e.to_string())?
        };
        let pair = RsaKeyPair::from_pem(&pem).map_err(|e| e.to_string())?;
        let mut public = pair.to_jwk_public_key();
        let member = |name: &str| {
            public
                .parameter(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        // RFC 7638: the thumbprint of the required members in lexical order.
        let canonical = format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member("e"),
            member("n")
        );
        let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
        public.set_key_id(kid.clone());
        public.set_algorithm("RS256");
        public.set_key_use("sig");
        let signer = RS256.signer_from_pem(&pem).map_err(|e| e.to_string())?;
        let jwks = serde_json::json!({ "keys": [serde_json::Value::Object(public.into())] });
        Ok(Self { signer, kid, jwks })
    }

    /// The public key set.
    pub(crate) fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }

    /// A compact JWS of `claims` with `typ` JWT.
    pub(crate) fn sign(&self, claims: &serde_json::Value) -> Result<String, String> {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let mut out = String::new();
        let encode = |v: &serde_json::Value, out: &mut String| {
            URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(v).unwrap_or_default(), out);
        };
        encode(&header, &mut out);
        out.push('.');
        encode(claims, &mut out);
        let signature = self
            .signer
            .sign(out.as_bytes())
            .map_err(|e| e.to_string())?;
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_survives_a_restart_and_signs_verifiably() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let first = SigningKey::load_or_create(dir.path()).expect("key");
        let again = SigningKey::load_or_create(dir.path()).expect("key");
        assert_eq!(first.kid, again.kid, "the same key after a restart");
        let token = first
            .sign(&serde_json::json!({"sub": "x"}))
            .expect("signature");
        let jwk = josekit::jwk::Jwk::from_map(
            first.jwks()["keys"][0].as_object().cloned().expect("a JWK"),
        )
        .expect("JWK");
        let verifier = josekit::jws::RS256
            .verifier_from_jwk(&jwk)
            .expect("verifier");
        let (input, sig) = token.rsplit_once('.').expect("three parts");
        let sig = URL_SAFE_NO_PAD.decode(sig).expect("base64url");
        assert!(josekit::jws::JwsVerifier::verify(&verifier, input.as_bytes(), &sig).is_ok());
    }
}
