//! DPoP proofs (RFC 9449) through `jwtv_service::dpop::check`, for a fixed access token bound to the
//! verifier's Ed25519 test key, a fixed request and a fixed time.
//!
//! An input is a proof as sent, or, when it starts with a NUL byte, `header NUL payload` in clear: the
//! target encodes both and signs them with the Ed25519 test key, so mutations of the JSON reach the
//! claim checks behind a valid signature.
#![no_main]

use jwtv_fuzz::{NOW, split_once};
use jwtv_service::dpop::{self, Proof, Settings, Target};
use jwtv_signer::{SigningKey, b64};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

/// The token the proofs are for (its bytes only matter to `ath`).
const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln";
/// The Ed25519 test key's public JWK, as the seed corpus writes it.
const JWK: &str = r#"{"kty":"OKP","crv":"Ed25519","x":"PUBLIC"}"#;

struct Fixture {
    key: SigningKey,
    jkt: String,
    settings: Settings,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let public = jwtv_verifier::decode_public_key_pem(include_str!(
        "../../crates/verifier/testdata/ed25519.pub.pem"
    ))
    .expect("test key decodes");
    let jwtv_verifier::KeyMaterial::Ed25519(x) = public else {
        panic!("not an Ed25519 key")
    };
    let jwk: serde_json::Value =
        serde_json::from_str(&JWK.replace("PUBLIC", &b64(&x))).expect("JWK");
    Fixture {
        key: SigningKey::from_pkcs8_der(
            "EdDSA",
            include_bytes!("../../crates/verifier/testdata/ed25519.pk8.der"),
        )
        .expect("test key signs"),
        jkt: dpop::thumbprint(jwk.as_object().expect("object")).expect("thumbprint"),
        settings: Settings::default(),
    }
});

fuzz_target!(|data: &[u8]| {
    let fixture = &*FIXTURE;
    let proof = match data.strip_prefix(b"\0") {
        Some(clear) => {
            let (header, payload) = split_once(clear, 0);
            let input = format!("{}.{}", b64(header), b64(payload));
            let signature = fixture
                .key
                .sign("EdDSA", input.as_bytes())
                .expect("Ed25519 signs");
            format!("{input}.{}", b64(&signature))
        }
        None => match std::str::from_utf8(data) {
            Ok(text) => text.to_owned(),
            Err(_) => return,
        },
    };
    let checked = dpop::check(
        &Proof {
            proof: &proof,
            access_token: TOKEN,
            jkt: &fixture.jkt,
            target: Target {
                method: "GET",
                url: "https://api.example/orders",
            },
            leeway_secs: 60,
            max_bytes: 8192,
        },
        &fixture.settings,
        NOW,
    );
    // A proof accepted here was signed by the fixed key over a header naming it.
    if let Ok(first_use) = checked {
        assert!(first_use.expires_at >= NOW);
    }
});
