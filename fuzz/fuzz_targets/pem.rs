//! PEM public keys and the DER inside them through `decode_public_key_pem`, then `Key::new`.
//!
//! The first byte chooses the input's form: text as given, or DER bytes that the target wraps in a
//! `PUBLIC KEY` (SPKI) or `RSA PUBLIC KEY` (PKCS#1) armour, so mutations reach the DER readers instead
//! of dying in the base64.
#![no_main]

use jwtv_signer::b64;
use jwtv_verifier::{Key, KeyParams, decode_public_key_pem};
use libfuzzer_sys::fuzz_target;

fn armour(label: &str, der: &[u8]) -> String {
    // PEM is standard base64 with padding, in lines of 64.
    let text: String = b64(der)
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    let padded = format!("{text}{}", "=".repeat((4 - text.len() % 4) % 4));
    let lines: Vec<&str> = padded
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((&form, rest)) = data.split_first() else {
        return;
    };
    let text = match form % 3 {
        0 => match std::str::from_utf8(rest) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        },
        1 => armour("PUBLIC KEY", rest),
        _ => armour("RSA PUBLIC KEY", rest),
    };
    if let Ok(material) = decode_public_key_pem(&text) {
        let _ = Key::new(material, KeyParams::default());
    }
});
