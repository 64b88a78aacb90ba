//! What the fuzz targets share: a fixed key set, a fixed time and a splitter for inputs made of parts, so
//! every run of an input takes the same path (libFuzzer needs that to minimise and replay findings).

use jwtv_verifier::{Key, KeyMaterial, KeyParams, KeySet, decode_public_key_pem};

/// The time every target verifies at.
pub const NOW: u64 = 1_700_000_000;

/// The HMAC secret of the fixed key set (kid `hs`).
pub const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// One key of each family, from the verifier's test data, each under its own kid.
pub fn all_keys() -> KeySet {
    let pem = |text: &str, kid: &str| {
        let material = decode_public_key_pem(text).expect("test key decodes");
        Key::new(material, params(kid)).expect("test key is usable")
    };
    KeySet::new(vec![
        Key::new(KeyMaterial::Hmac(SECRET.to_vec()), params("hs")).expect("secret is usable"),
        pem(
            include_str!("../../crates/verifier/testdata/rsa2048.pub.pem"),
            "rsa",
        ),
        pem(
            include_str!("../../crates/verifier/testdata/p256.pub.pem"),
            "p256",
        ),
        pem(
            include_str!("../../crates/verifier/testdata/p384.pub.pem"),
            "p384",
        ),
        pem(
            include_str!("../../crates/verifier/testdata/p521.pub.pem"),
            "p521",
        ),
        pem(
            include_str!("../../crates/verifier/testdata/ed25519.pub.pem"),
            "ed",
        ),
    ])
}

fn params(kid: &str) -> KeyParams {
    KeyParams {
        kid: Some(kid.to_owned()),
        ..KeyParams::default()
    }
}

/// Splits `data` at the first `separator`: before it, and after it (empty when there is none).
pub fn split_once(data: &[u8], separator: u8) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == separator) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}
