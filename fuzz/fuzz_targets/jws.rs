//! Compact JWS through `Verifier::verify`, with one key of each family and a fixed time.
//!
//! An input is a token as sent, or, when it starts with a NUL byte, `header NUL payload [NUL
//! signature]` in clear: the target encodes the segments, and signs them with the HS256 secret when no
//! signature is given, so mutations of the JSON reach the claim policy behind a valid signature.
#![no_main]

use jwtv_fuzz::{NOW, SECRET, all_keys, split_once};
use jwtv_signer::{SigningKey, b64};
use jwtv_verifier::{Limits, Policy, StaticKeys, Verifier};
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, LazyLock};

struct Fixture {
    verifier: Verifier,
    keys: StaticKeys,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| Fixture {
    verifier: Verifier::new(vec![Policy::default()], Limits::default()).expect("one issuer"),
    keys: StaticKeys(vec![Arc::new(all_keys())]),
});

fn token(data: &[u8]) -> Vec<u8> {
    let Some(clear) = data.strip_prefix(b"\0") else {
        return data.to_vec();
    };
    let (header, rest) = split_once(clear, 0);
    let (payload, signature) = split_once(rest, 0);
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = if signature.is_empty() {
        SigningKey::hmac(SECRET)
            .sign("HS256", input.as_bytes())
            .expect("HS256 signs")
    } else {
        signature.to_vec()
    };
    format!("{input}.{}", b64(&signature)).into_bytes()
}

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    if let Ok(verified) = f.verifier.verify(&token(data), NOW, &f.keys) {
        // The default policy requires `exp`, within the leeway.
        let exp = verified.expires_at.expect("accepted without exp");
        assert!(exp + 60.0 > NOW as f64, "accepted an expired token");
    }
});
