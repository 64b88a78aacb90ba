//! Compact JWS serialization (RFC 7515 §7.1), checked before any decoding or crypto.

use crate::error::{Code, Rejection};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The three segments of a compact JWS, still encoded.
#[derive(Debug, Clone, Copy)]
pub struct Segments<'a> {
    pub header: &'a [u8],
    pub payload: &'a [u8],
    pub signature: &'a [u8],
    /// `header.payload`: the bytes the signature covers.
    pub signing_input: &'a [u8],
}

/// Splits a compact JWS, refusing anything else: the size cap comes first, so an oversized token costs
/// one comparison; then only the base64url alphabet and exactly two dots, which also rules out JWE
/// (five segments) and the JSON serialization.
pub fn split(token: &[u8], max_len: usize) -> Result<Segments<'_>, Rejection> {
    if token.len() > max_len {
        return Err(Rejection::new(
            Code::TokenTooLarge,
            format!("token is {} bytes; the limit is {max_len}", token.len()),
        ));
    }
    if let Some(bad) = token.iter().position(|&b| !is_token_byte(b)) {
        let what = if token.first() == Some(&b'{') {
            "JWS JSON serialization is not accepted; send the compact form"
        } else {
            "token contains a character outside the base64url alphabet"
        };
        return Err(Rejection::malformed(format!("{what} (at byte {bad})")));
    }
    let dots = token.iter().filter(|&&b| b == b'.').count();
    if dots == 4 {
        return Err(Rejection::malformed(
            "encrypted tokens (JWE) are not accepted",
        ));
    }
    if dots != 2 {
        return Err(Rejection::malformed(format!(
            "token has {} segments; a compact JWS has 3",
            dots + 1
        )));
    }
    let mut parts = token.splitn(3, |&b| b == b'.');
    let (Some(header), Some(payload), Some(signature)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Rejection::malformed("token is not a compact JWS"));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(Rejection::malformed("token has an empty header or payload"));
    }
    Ok(Segments {
        header,
        payload,
        signature,
        signing_input: &token[..header.len() + 1 + payload.len()],
    })
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'
}

/// Strict base64url: no padding, no `+`/`/`, no whitespace, canonical trailing bits, so every token has
/// exactly one encoding and no two strings verify as the same token.
pub fn decode_segment(segment: &[u8], what: &str) -> Result<Vec<u8>, Rejection> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| Rejection::malformed(format!("{what} is not valid base64url")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(token: &str) -> Code {
        split(token.as_bytes(), 100).unwrap_err().code
    }

    #[test]
    fn size_cap_is_checked_first() {
        // Even garbage is reported as too large: nothing else was looked at.
        let big = "{".repeat(101);
        assert_eq!(code(&big), Code::TokenTooLarge);
        assert!(
            split(
                &[b'a'; 98].iter().chain(b".b").copied().collect::<Vec<_>>(),
                100
            )
            .is_err()
        );
    }

    #[test]
    fn exactly_three_segments() {
        assert!(split(b"a.b.c", 100).is_ok());
        assert!(
            split(b"a.b.", 100).is_ok(),
            "empty signature is a verification failure, not a parse error"
        );
        for t in ["abc", "a.b", "a.b.c.d", ".b.c", "a..c", "..", "a.b.c.d.e.f"] {
            assert_eq!(code(t), Code::MalformedToken, "{t}");
        }
    }

    #[test]
    fn jwe_and_json_serialization_are_refused() {
        let e = split(b"a.b.c.d.e", 100).unwrap_err();
        assert!(e.description.contains("JWE"));
        let e = split(br#"{"payload":"x","signatures":[]}"#, 100).unwrap_err();
        assert!(e.description.contains("JSON serialization"));
    }

    #[test]
    fn only_base64url_characters() {
        for t in [
            "a.b.c=", "a.b+.c", "a/.b.c", "a.b.c ", " a.b.c", "a.b.\nc", "a.b.c\0", "a.é.c",
        ] {
            assert_eq!(code(t), Code::MalformedToken, "{t:?}");
        }
    }

    #[test]
    fn base64url_is_strict() {
        assert_eq!(decode_segment(b"eyJhIjoxfQ", "x").unwrap(), br#"{"a":1}"#);
        assert!(decode_segment(b"eyJhIjoxfQ==", "x").is_err(), "padding");
        // "eQ" decodes to 'y'; "eR" has non-zero trailing bits and would decode to the same byte.
        assert!(decode_segment(b"eQ", "x").is_ok());
        assert!(
            decode_segment(b"eR", "x").is_err(),
            "non-canonical trailing bits"
        );
        assert!(decode_segment(b"e", "x").is_err(), "impossible length");
    }
}
