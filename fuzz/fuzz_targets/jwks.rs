//! JWK and JWKS documents through `read_jwks`, as published (skip what cannot be used) and as
//! configured (refuse it), with and without the weak-secret override (chosen by the first byte).
#![no_main]

use jwtv_verifier::{Origin, read_jwks};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, document)) = data.split_first() else {
        return;
    };
    let origin = if flags & 1 == 0 {
        Origin::Published
    } else {
        Origin::Configured {
            allow_weak_secret: flags & 2 != 0,
        }
    };
    if let Ok(read) = read_jwks(document, origin) {
        for key in read.set.keys() {
            // Every imported key can verify something (it is bound to at least one algorithm).
            assert!(!key.algorithms().is_empty(), "a key with no algorithm");
        }
        assert!(read.set.keys().len() <= read.published);
    }
});
