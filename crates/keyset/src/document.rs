//! What a fetched document must hold: a published key set with at least one key we can verify with, or
//! a discovery document of exactly the configured issuer.

use http::Uri;
use jwtv_verifier::{KeySet, Origin, read_jwks};
use serde_json::Value;

use crate::FetchError;
use crate::remote::check_remote_url;

/// A published key set: `{"keys": [...]}`, read once by the verifier in its published mode: keys we
/// cannot use (encryption keys, algorithms or curves we do not implement, malformed entries) are
/// skipped, and so are symmetric (`oct`) keys, since a secret published at a URL proves nothing. No
/// usable key at all is a failed fetch. Also returns how many keys were published.
pub fn parse_key_set(body: &[u8]) -> Result<(KeySet, usize), FetchError> {
    let read =
        read_jwks(body, Origin::Published).map_err(|e| FetchError::Invalid(e.to_string()))?;
    if read.set.is_empty() {
        return Err(FetchError::NoUsableKeys(format!(
            "none of the {} published keys is a signature key we support",
            read.published
        )));
    }
    Ok((read.set, read.published))
}

/// The `jwks_uri` of a discovery document whose `issuer` is exactly `issuer` (OpenID Connect Discovery
/// 1.0 §4.3: anything else may be an attacker's document for another issuer).
pub fn jwks_uri_of(body: &[u8], issuer: &str, allow_http: bool) -> Result<Uri, FetchError> {
    let root: Value = serde_json::from_slice(body)
        .map_err(|e| FetchError::Discovery(format!("the document is not JSON ({e})")))?;
    let found = root.get("issuer").and_then(Value::as_str);
    if found != Some(issuer) {
        let shown: String = found.unwrap_or("(none)").chars().take(200).collect();
        return Err(FetchError::Discovery(format!(
            "the document's issuer {shown:?} is not the configured issuer {issuer:?}"
        )));
    }
    let uri = root
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or_else(|| FetchError::Discovery("the document has no jwks_uri".into()))?;
    check_remote_url(uri, allow_http).map_err(|m| FetchError::Discovery(format!("jwks_uri {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","alg":"ES256","use":"sig","x":"wvhwFCIic8_m92NIyh1NI3dmU9UVEY2udytFhKWVMVs","y":"Dran8KX9g5_J-dHqN4TFCDPIWWFikjzPvn54IjPD8sc"}"#;

    #[test]
    fn unusable_and_symmetric_keys_are_skipped() {
        let doc = format!(
            r#"{{"keys":[{EC},
                {{"kty":"oct","kid":"s","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"}},
                {{"kty":"RSA","kid":"enc","use":"enc","n":"AQAB","e":"AQAB"}},
                {{"kty":"EC","crv":"P-521","kid":"p521","x":"AA","y":"AA"}}]}}"#
        );
        let (set, published) = parse_key_set(doc.as_bytes()).unwrap();
        assert_eq!(published, 4);
        assert_eq!(set.keys().len(), 1);
        assert_eq!(set.keys()[0].kid(), Some("ec1"));
    }

    #[test]
    fn documents_without_usable_keys_fail() {
        for (doc, kind) in [
            (r#"{"keys":[]}"#, "no_usable_keys"),
            (
                r#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0"}]}"#,
                "no_usable_keys",
            ),
            (r#"{"kty":"EC"}"#, "invalid"),
            ("<html>oops</html>", "invalid"),
            (r#"{"keys":{}}"#, "invalid"),
        ] {
            let e = parse_key_set(doc.as_bytes()).unwrap_err();
            assert_eq!(e.kind(), kind, "{doc}: {e}");
        }
    }

    #[test]
    fn discovery_checks_the_issuer_exactly() {
        let doc =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"https://idp.example.com/keys"}"#;
        assert_eq!(
            jwks_uri_of(doc, "https://idp.example.com", false)
                .unwrap()
                .to_string(),
            "https://idp.example.com/keys"
        );
        for issuer in [
            "https://idp.example.com/",
            "https://IDP.example.com",
            "https://evil",
        ] {
            let e = jwks_uri_of(doc, issuer, false).unwrap_err();
            assert_eq!(e.kind(), "discovery", "{issuer}");
        }
        let http = br#"{"issuer":"https://a","jwks_uri":"http://a/keys"}"#;
        assert!(
            jwks_uri_of(http, "https://a", true).is_err(),
            "http to a non-loopback host"
        );
        let none = br#"{"issuer":"https://a"}"#;
        assert!(jwks_uri_of(none, "https://a", false).is_err());
    }
}
