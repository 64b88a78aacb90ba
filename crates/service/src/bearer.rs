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

/// The bearer token of the request, if it sends one.
pub(crate) fn token(headers: &HeaderMap) -> Result<Option<&str>, Unreadable> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(Unreadable::Several),
    };
    let value = value.to_str().map_err(|_| Unreadable::NotAscii)?;
    match value.trim().split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = token.trim();
            Ok((!token.is_empty()).then_some(token))
        }
        _ => Ok(None),
    }
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
    fn unreadable_headers_are_refused() {
        assert_eq!(read(&[b"Bearer a", b"Bearer a"]), Err(Unreadable::Several));
        assert_eq!(read(&[b"Bearer \xff"]), Err(Unreadable::NotAscii));
    }
}
