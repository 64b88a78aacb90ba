//! JWK and JWKS documents through `parse_jwks`, under both treatments of unusable keys and with and
//! without the weak-secret override (chosen by the first byte).
#![no_main]

use jwtv_verifier::{Unusable, parse_jwks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, document)) = data.split_first() else {
        return;
    };
    let unusable = if flags & 1 == 0 {
        Unusable::Skip
    } else {
        Unusable::Fail
    };
    let allow_weak_secret = flags & 2 != 0;
    if let Ok(set) = parse_jwks(document, unusable, allow_weak_secret) {
        for key in set.keys() {
            // Every imported key can verify something (it is bound to at least one algorithm).
            assert!(!key.algorithms().is_empty(), "a key with no algorithm");
        }
    }
});
