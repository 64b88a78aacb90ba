//! Where a policy looks for the token: an ordered list of [`TokenSource`]s (`JWT_TOKEN_SOURCES`,
//! `JWT_POLICY_<NAME>_TOKEN_SOURCES`, TOML `token_sources`).
//!
//! Rules, in the order [`find`] applies them:
//! - every listed source is read; the first one that carries a token gives it;
//! - a later source carrying a *different* token is a conflict, refused, never a silent pick (a client
//!   that sends a session cookie and someone else's bearer token has a bug or an intent we must not
//!   guess); the same token in two places is fine;
//! - what cannot be read (several `Authorization` headers, a named header sent twice, a cookie or a
//!   query parameter named twice with different values, bytes that are not ASCII) is refused too.
//!
//! `query:NAME` is never on unless listed: URLs end up in access logs, browser history and `Referer`
//! headers, so a token in a query string leaks to whoever reads them.

use crate::bearer;
use http::HeaderMap;
use http::header::{COOKIE, HeaderName};
use std::borrow::Cow;
use std::fmt;

/// One place a token may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer <token>` (RFC 6750 §2.1), the default; also `Authorization: DPoP
    /// <token>` (RFC 9449 §7.1) unless the policy's DPoP mode is `off`.
    Bearer,
    /// A cookie of this name (RFC 6265 §4.2: `name=value` pairs, the value optionally quoted).
    Cookie(String),
    /// The whole value of this header.
    Header(HeaderName),
    /// A query parameter of this name, of the original request's URL.
    Query(String),
}

impl TokenSource {
    /// The default list: bearer only.
    pub fn defaults() -> Vec<TokenSource> {
        vec![TokenSource::Bearer]
    }

    /// Parses one source: `bearer`, `cookie:NAME`, `header:NAME` or `query:NAME`.
    pub fn parse(item: &str) -> Result<TokenSource, String> {
        let item = item.trim();
        if item.eq_ignore_ascii_case("bearer") {
            return Ok(TokenSource::Bearer);
        }
        let Some((kind, name)) = item.split_once(':') else {
            return Err(format!(
                "{item:?} is not a token source (bearer, cookie:NAME, header:NAME, query:NAME)"
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!("{item:?} names no {kind}"));
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "cookie" if name.bytes().all(is_token_char) => Ok(TokenSource::Cookie(name.to_owned())),
            "cookie" => Err(format!(
                "{name:?} is not a valid cookie name (RFC 6265 §4.1.1)"
            )),
            "header" => {
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("{name:?} is not a valid header name"))?;
                if header == http::header::AUTHORIZATION || header == COOKIE {
                    return Err(format!(
                        "header:{name} is read by `bearer` or `cookie:NAME`, not as a whole header"
                    ));
                }
                Ok(TokenSource::Header(header))
            }
            "query"
                if name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"&=#%+".contains(&b)) =>
            {
                Ok(TokenSource::Query(name.to_owned()))
            }
            "query" => Err(format!("{name:?} is not a valid query parameter name")),
            other => Err(format!(
                "{other:?} is not a kind of token source (bearer, cookie, header, query)"
            )),
        }
    }

    /// Parses a comma-separated, ordered list; an empty list, or one naming a source twice, is an error.
    pub fn parse_list(spec: &str) -> Result<Vec<TokenSource>, String> {
        let mut out: Vec<TokenSource> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let source = TokenSource::parse(item)?;
            if out.contains(&source) {
                return Err(format!("{source} is listed twice"));
            }
            out.push(source);
        }
        if out.is_empty() {
            return Err("lists no token source".to_owned());
        }
        Ok(out)
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TokenSource::Bearer => f.write_str("bearer"),
            TokenSource::Cookie(name) => write!(f, "cookie:{name}"),
            TokenSource::Header(name) => write!(f, "header:{name}"),
            TokenSource::Query(name) => write!(f, "query:{name}"),
        }
    }
}

/// The token a request carries, and where it was found.
#[derive(Debug)]
pub(crate) struct Found<'a> {
    pub token: Cow<'a, str>,
    pub source: &'a TokenSource,
    /// It came as `Authorization: DPoP <token>`.
    pub dpop_scheme: bool,
}

/// Why the sources of a request could not give one token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SourceError {
    #[error("{0}")]
    Unreadable(String),
    #[error("{first} and {second} carry different tokens; send one token")]
    Conflict { first: String, second: String },
}

/// The token of a request by `sources`, in order (see the module doc). `query` is the original
/// request's query string, when there is one. With `dpop`, the `bearer` source also reads
/// `Authorization: DPoP <token>`.
pub(crate) fn find<'a>(
    sources: &'a [TokenSource],
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    dpop: bool,
) -> Result<Option<Found<'a>>, SourceError> {
    let mut found: Option<Found<'a>> = None;
    for source in sources {
        let mut dpop_scheme = false;
        let token = match source {
            TokenSource::Bearer => bearer::credentials(headers, dpop)
                .map_err(|e| SourceError::Unreadable(e.to_string()))?
                .map(|(scheme, token)| {
                    dpop_scheme = scheme == bearer::Scheme::Dpop;
                    Cow::Borrowed(token)
                }),
            TokenSource::Cookie(name) => cookie(headers, name)?.map(Cow::Borrowed),
            TokenSource::Header(name) => whole_header(headers, name)?.map(Cow::Borrowed),
            TokenSource::Query(name) => query.map(|q| parameter(q, name)).transpose()?.flatten(),
        };
        let Some(token) = token else { continue };
        match &found {
            None => {
                found = Some(Found {
                    token,
                    source,
                    dpop_scheme,
                })
            }
            Some(first) if first.token == token => {}
            Some(first) => {
                return Err(SourceError::Conflict {
                    first: first.source.to_string(),
                    second: source.to_string(),
                });
            }
        }
    }
    Ok(found)
}

/// The value of cookie `name` over every `Cookie` header (HTTP/2 sends one per cookie, RFC 9113
/// §8.2.3). Pairs are split on `;` and trimmed; a value in double quotes is taken without them
/// (RFC 6265 §4.1.1 `cookie-value`); names compare case-sensitively. The same name twice with
/// different values is refused: RFC 6265 §5.4 gives no order a server may rely on.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, SourceError> {
    let mut found: Option<&str> = None;
    for value in headers.get_all(COOKIE) {
        let value = value
            .to_str()
            .map_err(|_| SourceError::Unreadable("Cookie header is not ASCII".to_owned()))?;
        for pair in value.split(';') {
            let Some((n, v)) = pair.split_once('=') else {
                continue;
            };
            if n.trim() != name {
                continue;
            }
            let v = v.trim();
            let v = match v.strip_prefix('"') {
                Some(rest) => rest.strip_suffix('"').ok_or_else(|| {
                    SourceError::Unreadable(format!("cookie {name} has an unclosed quote"))
                })?,
                None => v,
            };
            if v.is_empty() {
                continue;
            }
            match found {
                Some(seen) if seen != v => {
                    return Err(SourceError::Unreadable(format!(
                        "cookie {name} is sent twice with different values"
                    )));
                }
                _ => found = Some(v),
            }
        }
    }
    Ok(found)
}

/// The whole value of a header, trimmed; sent twice is refused, empty is absent.
fn whole_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'a str>, SourceError> {
    let mut values = headers.get_all(name).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => {
            return Err(SourceError::Unreadable(format!("several {name} headers")));
        }
    };
    let value = value
        .to_str()
        .map_err(|_| SourceError::Unreadable(format!("{name} header is not ASCII")))?
        .trim();
    Ok((!value.is_empty()).then_some(value))
}

/// The value of query parameter `name`, percent-decoded; named twice with different values is refused.
fn parameter<'a>(query: &'a str, name: &str) -> Result<Option<Cow<'a, str>>, SourceError> {
    let mut found: Option<Cow<'a, str>> = None;
    for pair in query.split('&') {
        let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
        if n != name || v.is_empty() {
            continue;
        }
        let v = percent_decode(v).ok_or_else(|| {
            SourceError::Unreadable(format!(
                "query parameter {name} is not valid percent-encoding"
            ))
        })?;
        match &found {
            Some(seen) if *seen != v => {
                return Err(SourceError::Unreadable(format!(
                    "query parameter {name} is sent twice with different values"
                )));
            }
            _ => found = Some(v),
        }
    }
    Ok(found)
}

/// Decodes `%XX`; anything that does not decode to ASCII is refused (a JWT is ASCII).
fn percent_decode(value: &str) -> Option<Cow<'_, str>> {
    if !value.contains('%') {
        return Some(Cow::Borrowed(value));
    }
    let bytes = value.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if !byte.is_ascii() {
                return None;
            }
            out.push(byte as char);
            i += 3;
        } else {
            out.push(bytes[i] as char);
            i += 1;
        }
    }
    Some(Cow::Owned(out))
}

/// RFC 7230 `tchar`, which RFC 6265 §4.1.1 makes a cookie name.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            map.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn token(
        spec: &str,
        pairs: &[(&str, &str)],
        query: Option<&str>,
    ) -> Result<Option<(String, String)>, SourceError> {
        let sources = TokenSource::parse_list(spec).unwrap();
        let map = headers(pairs);
        find(&sources, &map, query, false)
            .map(|f| f.map(|f| (f.token.into_owned(), f.source.to_string())))
    }

    fn ok(t: &str, s: &str) -> Result<Option<(String, String)>, SourceError> {
        Ok(Some((t.to_owned(), s.to_owned())))
    }

    #[test]
    fn the_first_source_present_gives_the_token() {
        let spec = "cookie:session,header:x-token,bearer";
        assert_eq!(
            token(
                spec,
                &[("authorization", "Bearer a.b.c"), ("x-token", "a.b.c")],
                None
            ),
            ok("a.b.c", "header:x-token")
        );
        assert_eq!(
            token(spec, &[("authorization", "Bearer a.b.c")], None),
            ok("a.b.c", "bearer")
        );
        assert_eq!(
            token(spec, &[("cookie", "session=a.b.c")], None),
            ok("a.b.c", "cookie:session")
        );
        assert_eq!(token(spec, &[("x-other", "a.b.c")], None), Ok(None));
    }

    #[test]
    fn two_sources_with_different_tokens_conflict() {
        assert_eq!(
            token(
                "bearer,cookie:s",
                &[("authorization", "Bearer a.b.c"), ("cookie", "s=d.e.f")],
                None
            ),
            Err(SourceError::Conflict {
                first: "bearer".into(),
                second: "cookie:s".into()
            })
        );
        assert!(matches!(
            token(
                "header:x-token,query:t",
                &[("x-token", "a.b.c")],
                Some("t=x.y.z")
            ),
            Err(SourceError::Conflict { .. })
        ));
    }

    #[test]
    fn sources_not_listed_are_never_read() {
        // query is off unless listed; bearer too once the list leaves it out.
        assert_eq!(token("bearer", &[], Some("access_token=a.b.c")), Ok(None));
        assert_eq!(
            token("cookie:s", &[("authorization", "Bearer a.b.c")], None),
            Ok(None)
        );
    }

    // RFC 6265 §4.1.1: cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE ).
    #[test]
    fn quoted_cookie_values_are_unquoted() {
        assert_eq!(
            token("cookie:s", &[("cookie", "a=1; s=\"a.b.c\"; b=2")], None),
            ok("a.b.c", "cookie:s")
        );
        assert!(matches!(
            token("cookie:s", &[("cookie", "s=\"a.b.c")], None),
            Err(SourceError::Unreadable(_))
        ));
    }

    // RFC 9113 §8.2.3: HTTP/2 may split cookies into several Cookie header fields.
    #[test]
    fn cookies_are_read_across_several_cookie_headers() {
        assert_eq!(
            token(
                "cookie:s",
                &[("cookie", "a=1"), ("cookie", "b=2;s=a.b.c")],
                None
            ),
            ok("a.b.c", "cookie:s")
        );
    }

    #[test]
    fn cookie_names_match_exactly() {
        assert_eq!(
            token(
                "cookie:s",
                &[("cookie", "S=a.b.c; ss=a.b.c; xs=a.b.c")],
                None
            ),
            Ok(None)
        );
    }

    // RFC 6265 §5.4: no order of same-named cookies may be relied on.
    #[test]
    fn a_cookie_sent_twice_with_different_values_is_unreadable() {
        assert!(matches!(
            token("cookie:s", &[("cookie", "s=a.b.c; s=d.e.f")], None),
            Err(SourceError::Unreadable(_))
        ));
        assert_eq!(
            token(
                "cookie:s",
                &[("cookie", "s=a.b.c"), ("cookie", "s=a.b.c")],
                None
            ),
            ok("a.b.c", "cookie:s")
        );
    }

    #[test]
    fn a_named_header_is_taken_whole_and_once() {
        assert_eq!(
            token("header:x-token", &[("x-token", " a.b.c ")], None),
            ok("a.b.c", "header:x-token")
        );
        assert!(matches!(
            token(
                "header:x-token",
                &[("x-token", "a.b.c"), ("x-token", "a.b.c")],
                None
            ),
            Err(SourceError::Unreadable(_))
        ));
    }

    #[test]
    fn query_parameters_are_percent_decoded() {
        assert_eq!(
            token("query:t", &[], Some("x=1&t=a%2Eb.c")),
            ok("a.b.c", "query:t")
        );
        assert!(matches!(
            token("query:t", &[], Some("t=a%zz")),
            Err(SourceError::Unreadable(_))
        ));
        assert!(matches!(
            token("query:t", &[], Some("t=a.b.c&t=d.e.f")),
            Err(SourceError::Unreadable(_))
        ));
    }

    #[test]
    fn the_same_token_in_two_sources_is_not_a_conflict() {
        assert_eq!(
            token(
                "bearer,cookie:s",
                &[("authorization", "Bearer a.b.c"), ("cookie", "s=a.b.c")],
                None
            ),
            ok("a.b.c", "bearer")
        );
    }

    #[test]
    fn bad_lists_are_refused() {
        for spec in [
            "",
            "cookie:",
            "cookie:a b",
            "header:bad header",
            "header:authorization",
            "form:x",
            "bearer,bearer",
            "query:a&b",
        ] {
            assert!(TokenSource::parse_list(spec).is_err(), "{spec}");
        }
        assert_eq!(
            TokenSource::parse_list(" Bearer , cookie:id_token ").unwrap(),
            vec![TokenSource::Bearer, TokenSource::Cookie("id_token".into())]
        );
    }
}
