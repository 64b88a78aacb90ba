//! Reading `Authorization: Bearer <token>` (RFC 6750 §2.1), the one rule both routes share.
//!
//! The scheme is case-insensitive (RFC 7235 §2.1) and followed by one or more spaces. Another scheme
//! (`Basic …`), a bare `Bearer` or one with only spaces after it carry no bearer token: each route then
//! answers as it does when no token was sent. What cannot be read at all, several `Authorization`
//! headers or a value that is not ASCII, is refused rather than guessed at; each route maps that to
//! its own status.

use http::HeaderMap;
use http::header::AUTHORIZATION;

/// Why the `Authorization` header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Unreadable {
    #[error("several Authorization headers")]
    Several,
    #[error("Authorization header is not ASCII")]
    NotAscii,
}

/// The scheme a token came with in `Authorization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Bearer,
    /// `DPoP` (RFC 9449 §7.1), read only when the policy's DPoP mode is not `off`.
    Dpop,
}

/// The bearer token of the request, if it sends one.
#[cfg(test)]
pub(crate) fn token(headers: &HeaderMap) -> Result<Option<&str>, Unreadable> {
    credentials(headers, false).map(|found| found.map(|(_, token)| token))
}

/// The token of `Authorization: Bearer <token>` or, with `dpop`, of `Authorization: DPoP <token>`
/// (the scheme case-insensitive too), and which scheme it came with.
pub(crate) fn credentials(
    headers: &HeaderMap,
    dpop: bool,
) -> Result<Option<(Scheme, &str)>, Unreadable> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(Unreadable::Several),
    };
    let value = value.to_str().map_err(|_| Unreadable::NotAscii)?;
    let (scheme, token) = match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => (Scheme::Bearer, token),
        Some((scheme, token)) if dpop && scheme.eq_ignore_ascii_case("dpop") => {
            (Scheme::Dpop, token)
        }
        _ => return Ok(None),
    };
    let token = token.trim();
    Ok((!token.is_empty()).then_some((scheme, token)))
}

#[cfg(feature = "dpop")]
/// The DPoP proof of the request (RFC 9449 §4.3 item 1: exactly one `DPoP` header holding one JWT).
/// Several headers, or one value holding a comma (what a proxy makes of two), are refused.
pub(crate) fn dpop_proof(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut values = headers.get_all("dpop").iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err("several DPoP headers; send exactly one proof"),
    };
    let value = value
        .to_str()
        .map_err(|_| "the DPoP header is not ASCII")?
        .trim();
    if value.contains(',') {
        return Err("the DPoP header holds several values; send exactly one proof");
    }
    Ok((!value.is_empty()).then_some(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn read(values: &[&[u8]]) -> Result<Option<String>, Unreadable> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        token(&headers).map(|t| t.map(str::to_owned))
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for value in [
            "Bearer a.b.c",
            "bearer a.b.c",
            "BEARER a.b.c",
            "bEaReR a.b.c",
        ] {
            assert_eq!(
                read(&[value.as_bytes()]),
                Ok(Some("a.b.c".into())),
                "{value}"
            );
        }
    }

    #[test]
    fn one_or_more_spaces_separate_scheme_and_token() {
        assert_eq!(read(&[b"Bearer   a.b.c "]), Ok(Some("a.b.c".into())));
    }

    #[test]
    fn other_schemes_and_empty_bearers_carry_no_token() {
        for value in [
            &b"Basic dXNlcjpwYXNz"[..],
            b"Bearer",
            b"Bearer   ",
            b"Bearera.b.c",
            b"Bearer\ta.b.c",
            b"Token a.b.c",
            b"",
        ] {
            assert_eq!(
                read(&[value]),
                Ok(None),
                "{:?}",
                String::from_utf8_lossy(value)
            );
        }
        assert_eq!(read(&[]), Ok(None));
    }

    #[test]
    fn the_dpop_scheme_is_read_only_when_asked() {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_static("DPoP a.b.c"));
        assert_eq!(credentials(&headers, false), Ok(None));
        assert_eq!(
            credentials(&headers, true),
            Ok(Some((Scheme::Dpop, "a.b.c")))
        );
    }

    // RFC 9449 §4.3 item 1: one DPoP header, one JWT.
    #[cfg(feature = "dpop")]
    #[test]
    fn two_dpop_proofs_are_refused() {
        let mut headers = HeaderMap::new();
        headers.append("dpop", HeaderValue::from_static("a.b.c"));
        assert_eq!(dpop_proof(&headers), Ok(Some("a.b.c")));
        headers.append("dpop", HeaderValue::from_static("a.b.c"));
        assert!(dpop_proof(&headers).is_err());
        let mut merged = HeaderMap::new();
        merged.insert("dpop", HeaderValue::from_static("a.b.c, d.e.f"));
        assert!(dpop_proof(&merged).is_err());
    }

    #[test]
    fn unreadable_headers_are_refused() {
        assert_eq!(read(&[b"Bearer a", b"Bearer a"]), Err(Unreadable::Several));
        assert_eq!(read(&[b"Bearer \xff"]), Err(Unreadable::NotAscii));
    }
}
