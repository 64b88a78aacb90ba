//! The request a decision is about: for `POST /validate` and the proxy-wasm filter the request itself;
//! for forward auth the *original* request, as the gateway reports it.
//!
//! Which report is read, first that is present, per attribute:
//! - `X-Forwarded-Method` / `-Uri` / `-Host`: Traefik `forwardAuth` and Caddy `forward_auth` set them,
//!   overwriting what a client sent; our nginx file sets them too (`docs/gateway/jwt_subrequest.conf`);
//! - `X-Original-Method` / `-URI` / `-Host`: nginx configurations written for `auth_request` (a file
//!   that sets only these leaves `X-Forwarded-*` to the client: set both, as ours does);
//! - the scheme (for DPoP's `htu`): `X-Forwarded-Proto`, which Traefik, Caddy and Envoy set and our
//!   nginx file sets from `$scheme`; else the scheme of an absolute request URI (the filter's
//!   `:scheme`, gRPC ext_authz's `scheme`);
//! - the request to the validator itself: Envoy `ext_authz` (HTTP service) sends the original method,
//!   host and path (after its `path_prefix`, here `/auth`), and so does the filter.

use http::{Extensions, HeaderMap, Request};

// Where a forward-auth gateway reports the original request: the `X-Forwarded-*` header first (see the
// module doc), then nginx's `X-Original-*`.
const METHOD_HEADERS: [&str; 2] = ["x-forwarded-method", "x-original-method"];
const URI_HEADERS: [&str; 2] = ["x-forwarded-uri", "x-original-uri"];
const HOST_HEADERS: [&str; 2] = ["x-forwarded-host", "x-original-host"];
const SCHEME_HEADER: &str = "x-forwarded-proto";

/// Every header in which a forward-auth gateway reports the original request (read by
/// `Original::forwarded`). Where the validator sees the original request itself (gRPC ext_authz, the
/// filter), the shell drops a client's own copies of these, so that no client can claim another
/// method, URL or host.
pub const REPORTED_HEADERS: [&str; 7] = [
    METHOD_HEADERS[0],
    URI_HEADERS[0],
    HOST_HEADERS[0],
    SCHEME_HEADER,
    METHOD_HEADERS[1],
    URI_HEADERS[1],
    HOST_HEADERS[1],
];

/// The attributes of the original request: `request.method`, `request.path` (no query),
/// `request.host`, `request.headers` in rules; the query feeds `query:NAME` token sources.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub host: &'a str,
    /// `http` or `https` when known (DPoP's `htu` needs it; rules do not see it).
    pub scheme: Option<&'a str>,
    pub headers: &'a HeaderMap,
    /// What the shell attached to the request: the client certificate of its own TLS session, or the
    /// one Envoy's gRPC check reports (`crate::mtls`).
    pub extensions: &'a Extensions,
}

impl<'a> Original<'a> {
    /// The request itself (`/validate`).
    pub(crate) fn direct<B>(req: &'a Request<B>) -> Original<'a> {
        Original {
            method: req.method().as_str(),
            path: req.uri().path(),
            query: req.uri().query(),
            host: host_of(req),
            scheme: text(req.headers(), SCHEME_HEADER).or_else(|| req.uri().scheme_str()),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }

    /// The original request behind a forward-auth request whose path is `/auth{tail}` or
    /// `/policy/{name}/auth{tail}`: `tail` is Envoy's original path.
    pub(crate) fn forwarded<B>(req: &'a Request<B>, tail: &'a str) -> Original<'a> {
        let headers = req.headers();
        let reported = |names: [&str; 2]| names.iter().find_map(|n| text(headers, n));
        let method = reported(METHOD_HEADERS).unwrap_or_else(|| req.method().as_str());
        let (path, query) = match reported(URI_HEADERS) {
            Some(uri) => split_uri(uri),
            None => (if tail.is_empty() { "/" } else { tail }, req.uri().query()),
        };
        let host = reported(HOST_HEADERS).unwrap_or_else(|| host_of(req));
        let scheme = text(headers, SCHEME_HEADER).or_else(|| req.uri().scheme_str());
        Original {
            method,
            path,
            query,
            host,
            scheme,
            headers,
            extensions: req.extensions(),
        }
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn host_of<B>(req: &Request<B>) -> &str {
    text(req.headers(), "host")
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// `/a/b?x=1` → (`/a/b`, `x=1`); an absolute URI (`http://h/a?x`) keeps only its path and query.
fn split_uri(uri: &str) -> (&str, Option<&str>) {
    let uri = uri.split('#').next().unwrap_or(uri);
    let uri = match uri.find("://") {
        Some(at) => {
            let rest = &uri[at + 3..];
            rest.find(['/', '?']).map_or("/", |i| &rest[i..])
        }
        None => uri,
    };
    match uri.split_once('?') {
        Some((path, query)) => (if path.is_empty() { "/" } else { path }, Some(query)),
        None => (uri, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(
        uri: &str,
        method: &str,
        pairs: &[(&str, &str)],
    ) -> (String, String, Option<String>, String) {
        let mut builder = Request::builder().method(method).uri(uri);
        for (n, v) in pairs {
            builder = builder.header(*n, *v);
        }
        let req = builder.body(()).unwrap();
        let tail = crate::gateway::route_tail(req.uri().path()).unwrap_or("");
        let o = Original::forwarded(&req, tail);
        (
            o.method.to_owned(),
            o.path.to_owned(),
            o.query.map(str::to_owned),
            o.host.to_owned(),
        )
    }

    #[test]
    fn traefik_and_caddy_report_in_x_forwarded_headers() {
        let got = forwarded(
            "/auth",
            "GET",
            &[
                ("host", "validator:3000"),
                ("x-forwarded-method", "DELETE"),
                ("x-forwarded-uri", "/admin/users?id=3"),
                ("x-forwarded-host", "app.example"),
            ],
        );
        assert_eq!(
            got,
            (
                "DELETE".into(),
                "/admin/users".into(),
                Some("id=3".into()),
                "app.example".into()
            )
        );
    }

    #[test]
    fn nginx_reports_in_x_original_headers() {
        let got = forwarded(
            "/auth",
            "GET",
            &[
                ("host", "app.example"),
                ("x-original-method", "POST"),
                ("x-original-uri", "/orders?x=1"),
            ],
        );
        assert_eq!(
            got,
            (
                "POST".into(),
                "/orders".into(),
                Some("x=1".into()),
                "app.example".into()
            )
        );
    }

    // X-Forwarded-* first: Traefik and Caddy overwrite it, and our nginx file sets it too, while a
    // client could bring its own X-Original-* through Traefik or Caddy.
    #[test]
    fn x_forwarded_wins_over_x_original() {
        let got = forwarded(
            "/auth",
            "GET",
            &[
                ("x-forwarded-method", "GET"),
                ("x-original-method", "DELETE"),
            ],
        );
        assert_eq!(got.0, "GET");
    }

    #[test]
    fn envoy_sends_the_original_request_under_its_path_prefix() {
        let got = forwarded("/auth/api/orders?page=2", "PUT", &[("host", "app.example")]);
        assert_eq!(
            got,
            (
                "PUT".into(),
                "/api/orders".into(),
                Some("page=2".into()),
                "app.example".into()
            )
        );
        let got = forwarded("/policy/admin/auth/x", "GET", &[]);
        assert_eq!(got.1, "/x");
        assert_eq!(forwarded("/auth", "GET", &[]).1, "/");
    }

    #[test]
    fn absolute_uris_keep_their_path() {
        assert_eq!(split_uri("http://h:1/a/b?c=d#f"), ("/a/b", Some("c=d")));
        assert_eq!(split_uri("http://h"), ("/", None));
        assert_eq!(split_uri("?x"), ("/", Some("x")));
    }
}
