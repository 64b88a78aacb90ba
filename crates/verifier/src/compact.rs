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
    // The alphabet check over the whole token without an early exit, written so the compiler turns
    // it into vector code (a byte-at-a-time branchy loop was a sizeable share of an HS256
    // verification); the position is only looked for once we know there is a bad byte.
    if !token.iter().fold(true, |ok, &b| ok & is_token_byte(b)) {
        let at = token
            .iter()
            .position(|&b| !is_token_byte(b))
            .unwrap_or_default();
        return Err(bad_character(token, at));
    }
    // memchr scans a word or a vector at a time: a byte loop over the token cost more than the rest
    // of the split. Exactly two dots is the only accepted shape.
    let mut dots = memchr::memchr_iter(b'.', token);
    let (first, second) = match (dots.next(), dots.next(), dots.next()) {
        (Some(first), Some(second), None) => (first, second),
        _ => return Err(segment_count_error(token)),
    };
    let (Some(header), Some(payload), Some(signature), Some(signing_input)) = (
        token.get(..first),
        token.get(first + 1..second),
        token.get(second + 1..),
        token.get(..second),
    ) else {
        return Err(Rejection::malformed("token is not a compact JWS"));
    };
    if header.is_empty() || payload.is_empty() {
        return Err(Rejection::malformed("token has an empty header or payload"));
    }
    Ok(Segments {
        header,
        payload,
        signature,
        signing_input,
    })
}

#[cold]
fn segment_count_error(token: &[u8]) -> Rejection {
    let dots = memchr::memchr_iter(b'.', token).count();
    if dots == 4 {
        Rejection::malformed("encrypted tokens (JWE) are not accepted")
    } else {
        Rejection::malformed(format!(
            "token has {} segments; a compact JWS has 3",
            dots + 1
        ))
    }
}

#[cold]
fn bad_character(token: &[u8], at: usize) -> Rejection {
    let what = if token.first() == Some(&b'{') {
        "JWS JSON serialization is not accepted; send the compact form"
    } else {
        "token contains a character outside the base64url alphabet"
    };
    Rejection::malformed(format!("{what} (at byte {at})"))
}

/// `[A-Za-z0-9_.-]`, branch-free so the check over a token vectorises.
fn is_token_byte(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    letter | digit | (b == b'-') | (b == b'_') | (b == b'.')
}

/// Strict base64url: no padding, no `+`/`/`, no whitespace, canonical trailing bits, so every token has
/// exactly one encoding and no two strings verify as the same token.
pub fn decode_segment(segment: &[u8], what: &str) -> Result<Vec<u8>, Rejection> {
    URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| not_base64url(what))
}

/// [`decode_segment`] into the front of `scratch` when the result fits (what is left of `scratch` is
/// handed back for the next segment), else into `spill`: the segments of a usual token then cost no
/// allocation. Same engine, so exactly the same strictness.
pub(crate) fn decode_segment_into<'b>(
    segment: &[u8],
    what: &str,
    scratch: &mut &'b mut [u8],
    spill: &'b mut Vec<u8>,
) -> Result<&'b [u8], Rejection> {
    // Unpadded base64 carries 3 bytes per 4 characters, and 1 or 2 for a trailing group of 2 or 3
    // (a trailing single character is invalid and refused by the decoder).
    let decoded_len = segment.len() / 4 * 3 + (segment.len() % 4) * 3 / 4;
    if decoded_len > scratch.len() {
        *spill = decode_segment(segment, what)?;
        return Ok(spill);
    }
    let (mine, rest) = std::mem::take(scratch).split_at_mut(decoded_len);
    *scratch = rest;
    let len = URL_SAFE_NO_PAD
        .decode_slice(segment, mine)
        .map_err(|_| not_base64url(what))?;
    // `len` is `decoded_len` for valid input; `get` keeps a surprise from ever panicking.
    mine.get(..len).ok_or_else(|| not_base64url(what))
}

#[cold]
fn not_base64url(what: &str) -> Rejection {
    Rejection::malformed(format!("{what} is not valid base64url"))
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

    #[test]
    fn decoding_into_scratch_is_decoding() {
        // Every length 0..=40, both through the scratch buffer and through the spill, must give what
        // `decode_segment` gives, including its refusals.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for len in 0..=40 {
            for tail in [b'A', b'B', b'_'] {
                let mut segment: Vec<u8> = (0..len).map(|i| alphabet[(i * 7) % 64]).collect();
                if let Some(last) = segment.last_mut() {
                    *last = tail;
                }
                let expected = decode_segment(&segment, "x").ok();
                for room in [0, 1, 29, 30, 64] {
                    let mut buf = vec![0u8; room];
                    let mut scratch = &mut buf[..];
                    let mut spill = Vec::new();
                    let got = decode_segment_into(&segment, "x", &mut scratch, &mut spill)
                        .ok()
                        .map(<[u8]>::to_vec);
                    assert_eq!(got, expected, "len {len} tail {tail} room {room}");
                }
            }
        }
        // Segments share one buffer, each taking only its own bytes.
        let mut buf = [0u8; 8];
        let mut scratch = &mut buf[..];
        let (mut s1, mut s2, mut s3) = (Vec::new(), Vec::new(), Vec::new());
        let a = decode_segment_into(b"eyJh", "a", &mut scratch, &mut s1).unwrap();
        let b = decode_segment_into(b"Ijox", "b", &mut scratch, &mut s2).unwrap();
        let c = decode_segment_into(b"fQ", "c", &mut scratch, &mut s3).unwrap();
        assert_eq!((a, b, c), (&b"{\"a"[..], &b"\":1"[..], &b"}"[..]));
        let mut spill = Vec::new();
        let d = decode_segment_into(b"eyJh", "d", &mut scratch, &mut spill).unwrap();
        assert_eq!(d, b"{\"a", "no room left: decoded into the spill");
        assert!(s1.is_empty() && s2.is_empty() && s3.is_empty());
        assert_eq!(spill, b"{\"a");
    }
}
