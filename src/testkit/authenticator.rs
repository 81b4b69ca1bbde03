//! A software WebAuthn authenticator for the ceremony tests: discoverable
//! (resident) ES256 credentials with user verification, device-bound or
//! synced (backup flags), "none" attestation, DER signatures, sign counters.
//! It behaves like a browser plus platform authenticator: it writes the
//! client data (type, challenge, origin) itself, so tests can also make it
//! lie about the origin.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use serde_cbor_2::Value as Cbor;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// One discoverable credential held by the authenticator.
#[derive(Clone)]
pub struct Credential {
    /// The credential id.
    pub id: Vec<u8>,
    key: PKey<Private>,
    rp_id: String,
    user_handle: Vec<u8>,
    counter: u32,
}

/// The authenticator and its credentials. A clone is a copy of the
/// authenticator, keys and counters included (a cloned authenticator).
#[derive(Clone)]
pub struct SoftAuthenticator {
    /// The origin it writes into client data (a browser's page origin).
    pub origin: String,
    /// Synced (backup eligible and backed up) rather than device-bound.
    pub synced: bool,
    /// Its credentials, newest last.
    pub credentials: Vec<Credential>,
    /// Answer without user verification (a broken authenticator).
    pub skip_uv: bool,
    /// Report a signature counter of 0 always, as many synced passkeys do.
    pub zero_counter: bool,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).unwrap()
}

impl SoftAuthenticator {
    /// An authenticator for pages of `origin`, with no credential yet.
    #[must_use]
    pub fn new(origin: &str, synced: bool) -> Self {
        Self {
            origin: origin.to_owned(),
            synced,
            credentials: Vec::new(),
            skip_uv: false,
            zero_counter: false,
        }
    }

    fn flags(&self, attested: bool) -> u8 {
        let mut f = 0x01; // user present
        if !self.skip_uv {
            f |= 0x04; // user verified
        }
        if self.synced {
            f |= 0x08 | 0x10; // backup eligible, backed up
        }
        if attested {
            f |= 0x40;
        }
        f
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false}))
            .unwrap()
    }

    /// `navigator.credentials.create()`: `options` is the server's `{publicKey: …}`.
    pub fn create(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rp"]["id"].as_str().unwrap().to_owned();
        let user_handle = unb64(pk["user"]["id"].as_str().unwrap());
        let key = PKey::from_ec_key(
            EcKey::generate(&EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap()).unwrap(),
        )
        .unwrap();
        let mut id = vec![0u8; 32];
        openssl::rand::rand_bytes(&mut id).unwrap();

        let ec = key.ec_key().unwrap();
        let mut ctx = openssl::bn::BigNumContext::new().unwrap();
        let (mut x, mut y) = (
            openssl::bn::BigNum::new().unwrap(),
            openssl::bn::BigNum::new().unwrap(),
        );
        ec.public_key()
            .affine_coordinates(ec.group(), &mut x, &mut y, &mut ctx)
            .unwrap();
        let cose = Cbor::Map(BTreeMap::from([
            (Cbor::Integer(1), Cbor::Integer(2)),
            (Cbor::Integer(3), Cbor::Integer(-7)),
            (Cbor::Integer(-1), Cbor::Integer(1)),
            (Cbor::Integer(-2), Cbor::Bytes(x.to_vec_padded(32).unwrap())),
            (Cbor::Integer(-3), Cbor::Bytes(y.to_vec_padded(32).unwrap())),
        ]));
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(self.flags(true));
        auth_data.extend_from_slice(&0u32.to_be_bytes());
        auth_data.extend_from_slice(&[0x5a; 16]); // AAGUID
        auth_data.extend_from_slice(&u16::try_from(id.len()).unwrap().to_be_bytes());
        auth_data.extend_from_slice(&id);
        auth_data.extend_from_slice(&serde_cbor_2::to_vec(&cose).unwrap());
        let attestation = Cbor::Map(BTreeMap::from([
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]));
        let client_data = self.client_data("webauthn.create", pk["challenge"].as_str().unwrap());
        self.credentials.push(Credential {
            id: id.clone(),
            key,
            rp_id,
            user_handle,
            counter: 0,
        });
        json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "attestationObject": b64(&serde_cbor_2::to_vec(&attestation).unwrap()),
                "clientDataJSON": b64(&client_data),
                "transports": ["internal"],
            },
            "extensions": {},
        })
    }

    /// `navigator.credentials.get()` with the newest credential for the RP
    /// (discoverable: no allow list needed).
    pub fn get(&mut self, options: &Value) -> Value {
        let pk = &options["publicKey"];
        let rp_id = pk["rpId"].as_str().unwrap().to_owned();
        let challenge = pk["challenge"].as_str().unwrap().to_owned();
        let client_data = self.client_data("webauthn.get", &challenge);
        let flags = self.flags(false);
        let cred = self
            .credentials
            .iter_mut()
            .rev()
            .find(|c| c.rp_id == rp_id)
            .expect("a credential for this RP");
        if !self.zero_counter {
            cred.counter += 1;
        }
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(flags);
        auth_data.extend_from_slice(&cred.counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), &cred.key).unwrap();
        signer.update(&signed).unwrap();
        let signature = signer.sign_to_vec().unwrap();
        json!({
            "id": b64(&cred.id),
            "rawId": b64(&cred.id),
            "type": "public-key",
            "response": {
                "authenticatorData": b64(&auth_data),
                "clientDataJSON": b64(&client_data),
                "signature": b64(&signature),
                "userHandle": b64(&cred.user_handle),
            },
            "extensions": {},
        })
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("rp_id", &self.rp_id)
            .field("counter", &self.counter)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for SoftAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftAuthenticator")
            .field("origin", &self.origin)
            .field("synced", &self.synced)
            .field("credentials", &self.credentials.len())
            .finish_non_exhaustive()
    }
}
