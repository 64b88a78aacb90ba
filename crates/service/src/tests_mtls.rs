//! Certificate-bound tokens (RFC 8705 §3, issue 26), through [`Service::handle`] on both routes: each
//! rule of `mtls.rs`, for each place a certificate can come from.

use crate::mtls::{CertEncoding, CertSource, ReportedCertificate, TlsClientCertificate};
use crate::tests::token;
use crate::*;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http::header::WWW_AUTHENTICATE;
use http::{Request, StatusCode};
use jwtv_verifier::{Key, KeyMaterial, KeyParams, KeySet, Limits, Policy, StaticKeys};
use serde_json::json;
use sha2::{Digest as _, Sha256};

const NOW: u64 = 1_700_000_000;

// Bytes stand in for certificates: the binding hashes the DER and never parses it.
const CERT: &[u8] = b"0\x82\x01\x0a the client's certificate, as DER";
const OTHER: &[u8] = b"0\x82\x01\x0a another client's certificate";

fn service(client_cert: CertSource) -> Service {
    let key = Key::new(
        KeyMaterial::Hmac(crate::tests::SECRET.to_vec()),
        KeyParams::default(),
    )
    .unwrap();
    let keys = Arc::new(StaticKeys(vec![Arc::new(KeySet::new(vec![key]))]));
    let verifier = Verifier::new(vec![Policy::default()], Limits::default()).unwrap();
    Service::new(
        verifier,
        keys,
        Options {
            client_cert,
            ..Options::default()
        },
    )
}

fn thumbprint(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(der))
}

fn hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn bound_to(der: &[u8]) -> String {
    token(json!({"sub": "alice", "exp": NOW + 60, "cnf": {"x5t#S256": thumbprint(der)}}))
}

fn unbound() -> String {
    token(json!({"sub": "alice", "exp": NOW + 60}))
}

fn pem(der: &[u8]) -> String {
    pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::LF, der).unwrap()
}

/// nginx's `$ssl_client_escaped_cert`, Envoy's `Cert=`: PEM, URL-escaped.
fn escaped_pem(der: &[u8]) -> String {
    percent_encoding::utf8_percent_encode(&pem(der), percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn header(name: &str, encoding: CertEncoding) -> CertSource {
    CertSource::Header {
        name: name.parse().unwrap(),
        encoding,
    }
}

enum Presented<'a> {
    Nothing,
    Tls(&'a [u8]),
    Reported(String),
    Headers(Vec<(&'a str, String)>),
}

/// `/auth` with the token as Bearer; the answer's status and `X-Auth-Error`.
fn auth(s: &Service, token: &str, presented: Presented<'_>) -> (StatusCode, Option<String>) {
    let mut req = Request::get("/auth").header("authorization", format!("Bearer {token}"));
    if let Presented::Headers(headers) = &presented {
        for (n, v) in headers {
            req = req.header(*n, v);
        }
    }
    let mut req = req.body(Vec::new()).unwrap();
    match presented {
        Presented::Tls(der) => {
            req.extensions_mut()
                .insert(TlsClientCertificate(der.into()));
        }
        Presented::Reported(pem) => {
            req.extensions_mut().insert(ReportedCertificate(pem));
        }
        _ => {}
    }
    let handled = s.handle(&req, NOW);
    let code = handled
        .response
        .headers()
        .get(gateway::X_AUTH_ERROR)
        .map(|v| v.to_str().unwrap().to_owned());
    (handled.response.status(), code)
}

const MISMATCH: (StatusCode, Option<&str>) =
    (StatusCode::UNAUTHORIZED, Some("invalid_token_binding"));

fn expect(got: (StatusCode, Option<String>), want: (StatusCode, Option<&str>)) {
    assert_eq!((got.0, got.1.as_deref()), want);
}

const OK: (StatusCode, Option<&str>) = (StatusCode::OK, None);

// RFC 8705 §3: the token is accepted with the certificate it names, from our own TLS session.
#[test]
fn tls_certificate_matching_the_token_passes() {
    let s = service(CertSource::Tls);
    expect(auth(&s, &bound_to(CERT), Presented::Tls(CERT)), OK);
}

#[test]
fn tls_certificate_other_than_the_bound_one_is_refused() {
    let s = service(CertSource::Tls);
    expect(auth(&s, &bound_to(CERT), Presented::Tls(OTHER)), MISMATCH);
}

#[test]
fn bound_token_without_a_certificate_is_refused_as_invalid_token() {
    let s = service(CertSource::Tls);
    let req = Request::post("/validate")
        .header("content-type", "application/json")
        .body(format!(r#"{{"token":"{}"}}"#, bound_to(CERT)).into_bytes())
        .unwrap();
    let handled = s.handle(&req, NOW);
    assert_eq!(handled.response.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = serde_json::from_slice(handled.response.body()).unwrap();
    assert_eq!(body["error"], "invalid_token_binding");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.contains("bound to a client certificate") && description.contains("none"),
        "{description}"
    );
    let challenge = handled.response.headers()[WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
}

#[test]
fn validate_route_checks_the_binding_too() {
    let s = service(CertSource::Tls);
    for (der, status) in [(CERT, StatusCode::OK), (OTHER, StatusCode::UNAUTHORIZED)] {
        let mut req = Request::post("/validate")
            .header("authorization", format!("Bearer {}", bound_to(CERT)))
            .body(Vec::new())
            .unwrap();
        req.extensions_mut()
            .insert(TlsClientCertificate(der.into()));
        assert_eq!(s.handle(&req, NOW).response.status(), status);
    }
}

// The default reads no certificate anywhere, so a bound token can never pass, even with the
// certificate in every place a source could read it from.
#[test]
fn source_none_refuses_every_bound_token() {
    let s = service(CertSource::None);
    let everything = Presented::Headers(vec![
        ("x-forwarded-client-cert", format!("Hash={}", hex(CERT))),
        ("x-ssl-client-cert", escaped_pem(CERT)),
    ]);
    expect(auth(&s, &bound_to(CERT), everything), MISMATCH);
    expect(auth(&s, &bound_to(CERT), Presented::Tls(CERT)), MISMATCH);
}

#[test]
fn unbound_token_is_unaffected_by_every_source() {
    for source in [
        CertSource::None,
        CertSource::Tls,
        CertSource::Xfcc,
        header("x-ssl-client-cert", CertEncoding::Pem),
    ] {
        let s = service(source);
        expect(auth(&s, &unbound(), Presented::Nothing), OK);
        expect(auth(&s, &unbound(), Presented::Tls(OTHER)), OK);
    }
}

#[test]
fn thumbprint_that_is_no_sha256_is_refused() {
    let s = service(CertSource::Tls);
    for bad in [json!("not base64!"), json!("AAAA"), json!(42), json!("")] {
        let t = token(json!({"sub": "a", "exp": NOW + 60, "cnf": {"x5t#S256": bad}}));
        expect(auth(&s, &t, Presented::Tls(CERT)), MISMATCH);
    }
}

// A client can send any header: with `tls`, a certificate header is never read.
#[test]
fn tls_source_ignores_certificate_headers() {
    let s = service(CertSource::Tls);
    let forged = Presented::Headers(vec![(
        "x-forwarded-client-cert",
        format!("Hash={}", hex(CERT)),
    )]);
    expect(auth(&s, &bound_to(CERT), forged), MISMATCH);
}

// ... and with a named header, XFCC is not read either.
#[test]
fn header_source_reads_only_the_named_header() {
    let s = service(header("x-ssl-client-cert", CertEncoding::Pem));
    let forged = Presented::Headers(vec![(
        "x-forwarded-client-cert",
        format!("Hash={}", hex(CERT)),
    )]);
    expect(auth(&s, &bound_to(CERT), forged), MISMATCH);
}

#[test]
fn xfcc_hash_matching_the_token_passes() {
    let s = service(CertSource::Xfcc);
    let xfcc = format!(
        "By=spiffe://gw;Hash={};Subject=\"CN=client,O=Example\";URI=",
        hex(CERT)
    );
    let presented = Presented::Headers(vec![("x-forwarded-client-cert", xfcc)]);
    expect(auth(&s, &bound_to(CERT), presented), OK);
    let other = format!("Hash={}", hex(OTHER));
    let presented = Presented::Headers(vec![("x-forwarded-client-cert", other)]);
    expect(auth(&s, &bound_to(CERT), presented), MISMATCH);
}

#[test]
fn xfcc_cert_without_hash_is_hashed_here() {
    let s = service(CertSource::Xfcc);
    let xfcc = format!("Cert=\"{}\";Subject=\"CN=a,O=b\"", escaped_pem(CERT));
    let presented = Presented::Headers(vec![("x-forwarded-client-cert", xfcc)]);
    expect(auth(&s, &bound_to(CERT), presented), OK);
    let xfcc = format!("Cert=\"{}\"", escaped_pem(OTHER));
    let presented = Presented::Headers(vec![("x-forwarded-client-cert", xfcc)]);
    expect(auth(&s, &bound_to(CERT), presented), MISMATCH);
}

// The last element is the hop nearest to us (APPEND_FORWARD appends); an earlier one may come
// from anywhere before it, the client included.
#[test]
fn xfcc_with_several_elements_uses_the_last() {
    let s = service(CertSource::Xfcc);
    let client_first = format!(
        "Hash={};Subject=\"CN=x,O=y\",By=spiffe://gw;Hash={}",
        hex(OTHER),
        hex(CERT)
    );
    let presented = Presented::Headers(vec![("x-forwarded-client-cert", client_first)]);
    expect(auth(&s, &bound_to(CERT), presented), OK);
    let ours_first = format!("Hash={},Hash={}", hex(CERT), hex(OTHER));
    let presented = Presented::Headers(vec![("x-forwarded-client-cert", ours_first)]);
    expect(auth(&s, &bound_to(CERT), presented), MISMATCH);
}

#[test]
fn malformed_xfcc_is_refused_with_a_description() {
    let s = service(CertSource::Xfcc);
    for bad in [
        "Subject=\"CN=a\"".to_owned(),
        "Hash=abc".to_owned(),
        format!("Hash={}", "zz".repeat(32)),
        "Cert=\"not a certificate\"".to_owned(),
        "garbage".to_owned(),
    ] {
        let presented = Presented::Headers(vec![("x-forwarded-client-cert", bad.clone())]);
        expect(auth(&s, &bound_to(CERT), presented), MISMATCH);
        let req = Request::get("/auth")
            .header("authorization", format!("Bearer {}", bound_to(CERT)))
            .header("x-forwarded-client-cert", bad.as_str())
            .body(Vec::new())
            .unwrap();
        let handled = s.handle(&req, NOW);
        let challenge = handled.response.headers()[WWW_AUTHENTICATE]
            .to_str()
            .unwrap();
        assert!(
            challenge.contains("x-forwarded-client-cert header"),
            "{bad}: {challenge}"
        );
    }
}

// gRPC ext_authz: Envoy's `attributes.source.certificate` wins over the headers.
#[test]
fn reported_certificate_is_read_with_xfcc() {
    let s = service(CertSource::Xfcc);
    let reported = Presented::Reported(escaped_pem(CERT));
    expect(auth(&s, &bound_to(CERT), reported), OK);
    let reported = Presented::Reported(escaped_pem(OTHER));
    expect(auth(&s, &bound_to(CERT), reported), MISMATCH);
    let reported = Presented::Reported("%%%".to_owned());
    expect(auth(&s, &bound_to(CERT), reported), MISMATCH);
}

// nginx: `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert`.
#[test]
fn escaped_pem_header_matching_the_token_passes() {
    let s = service(header("x-ssl-client-cert", CertEncoding::Pem));
    let presented = |der| Presented::Headers(vec![("x-ssl-client-cert", escaped_pem(der))]);
    expect(auth(&s, &bound_to(CERT), presented(CERT)), OK);
    expect(auth(&s, &bound_to(CERT), presented(OTHER)), MISMATCH);
    expect(auth(&s, &bound_to(CERT), Presented::Nothing), MISMATCH);
    // CRLF lines and a chain after the leaf: the leaf counts.
    let crlf =
        pem_rfc7468::encode_string("CERTIFICATE", pem_rfc7468::LineEnding::CRLF, CERT).unwrap();
    let chain = percent_encoding::utf8_percent_encode(
        &format!("{crlf}{}", pem(OTHER)),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let presented = Presented::Headers(vec![("x-ssl-client-cert", chain)]);
    expect(auth(&s, &bound_to(CERT), presented), OK);
}

// Traefik `passTLSClientCert` (base64 DER, URL-escaped, the chain after commas) and Caddy's
// `certificate_der_base64`.
#[test]
fn base64_der_header_matching_the_token_passes() {
    let s = service(header("x-forwarded-tls-client-cert", CertEncoding::Der));
    let b64 = |der| STANDARD.encode(der);
    let traefik = percent_encoding::utf8_percent_encode(
        &format!("{},{}", b64(CERT), b64(OTHER)),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    for (value, want) in [
        (traefik, OK),
        (b64(CERT), OK),
        (b64(CERT).trim_end_matches('=').to_owned(), OK),
        (b64(OTHER), MISMATCH),
    ] {
        let presented = Presented::Headers(vec![("x-forwarded-tls-client-cert", value)]);
        expect(auth(&s, &bound_to(CERT), presented), want);
    }
}

#[test]
fn malformed_certificate_headers_are_refused() {
    let pem_source = service(header("x-ssl-client-cert", CertEncoding::Pem));
    let der_source = service(header("x-ssl-client-cert", CertEncoding::Der));
    let key_pem =
        pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, CERT).unwrap();
    let key_pem =
        percent_encoding::utf8_percent_encode(&key_pem, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
    for (s, bad) in [
        (&pem_source, "not pem".to_owned()),
        (&pem_source, "%ZZ%C3%28".to_owned()),
        (&pem_source, key_pem),
        (&pem_source, escaped_pem(b"")),
        (&der_source, "!!!".to_owned()),
        (&der_source, "%C3%28".to_owned()),
        // base64url's characters are not standard base64's.
        (&der_source, "-_-_".to_owned()),
    ] {
        let presented = Presented::Headers(vec![("x-ssl-client-cert", bad)]);
        expect(auth(s, &bound_to(CERT), presented), MISMATCH);
    }
}

// A gateway that appends instead of overwriting leaves the client's value beside its own.
#[test]
fn certificate_header_sent_twice_is_refused() {
    let s = service(header("x-ssl-client-cert", CertEncoding::Pem));
    let twice = Presented::Headers(vec![
        ("x-ssl-client-cert", escaped_pem(CERT)),
        ("x-ssl-client-cert", escaped_pem(CERT)),
    ]);
    expect(auth(&s, &bound_to(CERT), twice), MISMATCH);
}

#[test]
fn sources_parse_from_their_words() {
    let parsed = |s: &str| CertSource::parse(s);
    assert_eq!(parsed("none"), Ok(CertSource::None));
    assert_eq!(parsed(" TLS "), Ok(CertSource::Tls));
    assert_eq!(parsed("xfcc"), Ok(CertSource::Xfcc));
    assert_eq!(
        parsed("header:X-SSL-Client-Cert:pem"),
        Ok(header("x-ssl-client-cert", CertEncoding::Pem))
    );
    assert_eq!(
        parsed("header:X-Forwarded-Tls-Client-Cert:der").map(|s| s.to_string()),
        Ok("header:x-forwarded-tls-client-cert:der".to_owned())
    );
    for bad in [
        "",
        "envoy",
        "header:X-Cert",
        "header:X-Cert:x509",
        "header::pem",
        "header:bad header:pem",
        "header:Authorization:pem",
    ] {
        assert!(parsed(bad).is_err(), "{bad:?}");
    }
}

// The proxy-wasm filter: Envoy gives the downstream certificate's hex SHA-256, not its DER.
#[test]
fn peer_certificate_digest_is_read_with_tls() {
    use crate::mtls::PeerCertificateDigest;
    let s = service(CertSource::Tls);
    let with_digest = |digest: String| {
        let mut req = Request::get("/auth")
            .header("authorization", format!("Bearer {}", bound_to(CERT)))
            .body(Vec::new())
            .unwrap();
        req.extensions_mut().insert(PeerCertificateDigest(digest));
        s.handle(&req, NOW).response.status()
    };
    assert_eq!(with_digest(hex(CERT)), StatusCode::OK);
    assert_eq!(with_digest(hex(OTHER)), StatusCode::UNAUTHORIZED);
    assert_eq!(with_digest("not hex".into()), StatusCode::UNAUTHORIZED);
    // Another source never reads it.
    let s = service(CertSource::Xfcc);
    let mut req = Request::get("/auth")
        .header("authorization", format!("Bearer {}", bound_to(CERT)))
        .body(Vec::new())
        .unwrap();
    req.extensions_mut()
        .insert(PeerCertificateDigest(hex(CERT)));
    assert_eq!(
        s.handle(&req, NOW).response.status(),
        StatusCode::UNAUTHORIZED
    );
}
