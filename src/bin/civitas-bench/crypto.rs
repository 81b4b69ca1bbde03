//! The physical limit: signatures per second on one thread, for ES256,
//! EdDSA and RS256, with the fastest implementations Rust has (aws-lc-rs and
//! ring), and ES256 through josekit/OpenSSL for comparison.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Operations per second on this thread, over `secs`.
fn rate(secs: f64, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs_f64(secs) {
        op();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

pub fn baseline() -> Value {
    let msg = vec![7u8; 300];
    let secs = 1.0;

    let ring_rng = ring::rand::SystemRandom::new();
    let ring_es = {
        use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING as ALG, EcdsaKeyPair};
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &ring_rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref(), &ring_rng).unwrap()
    };
    let ring_ed = {
        use ring::signature::Ed25519KeyPair;
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&ring_rng).unwrap().as_ref())
            .unwrap()
    };
    let rsa_pkcs8 = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap())
        .unwrap()
        .private_key_to_pkcs8()
        .unwrap();
    let ring_rsa = ring::signature::RsaKeyPair::from_pkcs8(&rsa_pkcs8).unwrap();
    let mut rsa_sig = vec![0u8; ring_rsa.public().modulus_len()];

    let aws_rng = aws_lc_rs::rand::SystemRandom::new();
    let aws_es = {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING as ALG, EcdsaKeyPair};
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ALG, &aws_rng).unwrap();
        EcdsaKeyPair::from_pkcs8(&ALG, pkcs8.as_ref()).unwrap()
    };
    let aws_ed = {
        use aws_lc_rs::signature::Ed25519KeyPair;
        Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&aws_rng).unwrap().as_ref())
            .unwrap()
    };
    let aws_rsa = aws_lc_rs::signature::RsaKeyPair::from_pkcs8(&rsa_pkcs8).unwrap();
    let mut aws_rsa_sig = vec![0u8; aws_rsa.public_modulus_len()];

    let jose = josekit::jws::ES256
        .signer_from_jwk(&josekit::jwk::KeyPair::to_jwk_key_pair(
            &josekit::jwk::alg::ec::EcKeyPair::generate(josekit::jwk::alg::ec::EcCurve::P256)
                .unwrap(),
        ))
        .unwrap();

    let r = json!({
        "es256_ring": rate(secs, || { ring_es.sign(&ring_rng, &msg).unwrap(); }),
        "es256_aws_lc_rs": rate(secs, || { aws_es.sign(&aws_rng, &msg).unwrap(); }),
        "es256_josekit_openssl": rate(secs, || { josekit::jws::JwsSigner::sign(&jose, &msg).unwrap(); }),
        "eddsa_ring": rate(secs, || { ring_ed.sign(&msg); }),
        "eddsa_aws_lc_rs": rate(secs, || { let _ = aws_ed.sign(&msg); }),
        "rs256_ring": rate(secs, || {
            ring_rsa.sign(&ring::signature::RSA_PKCS1_SHA256, &ring_rng, &msg, &mut rsa_sig).unwrap();
        }),
        "rs256_aws_lc_rs": rate(secs, || {
            aws_rsa.sign(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &aws_rng, &msg, &mut aws_rsa_sig).unwrap();
        }),
    });
    let best = |a: &str, b: &str| {
        r[a].as_f64()
            .unwrap_or(0.0)
            .max(r[b].as_f64().unwrap_or(0.0))
    };
    let mut r = r.clone();
    r["es256_fastest"] = best("es256_ring", "es256_aws_lc_rs").into();
    r["eddsa_fastest"] = best("eddsa_ring", "eddsa_aws_lc_rs").into();
    r["rs256_fastest"] = best("rs256_ring", "rs256_aws_lc_rs").into();
    r
}
