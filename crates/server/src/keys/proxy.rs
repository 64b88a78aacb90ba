//! Which proxy, if any, a key-set fetch goes through: `HTTPS_PROXY` (else `ALL_PROXY`) and `NO_PROXY`,
//! upper case first, then lower case, read once at start.
//!
//! Only `https://` fetches are proxied. Plain `http://` is allowed for loopback hosts alone, because
//! such traffic never leaves the machine; through a proxy, "loopback" would be the proxy's and the key
//! set would cross the network in clear. So `HTTP_PROXY` is not read, and those fetches stay direct.
//!
//! The matching is hyper-util's proxy `Matcher`, the code reqwest applies to the same variables, with
//! curl's rules: `NO_PROXY` lists host names (each also matching its subdomains, a leading dot
//! optional), IP addresses and CIDR ranges, or `*` for everything; loopback hosts get no exception, so
//! a proxied setup that fetches from a sidecar lists `127.0.0.1` or `localhost` there, as with curl.
//!
//! Unlike curl and reqwest, a value we cannot use stops the start instead of being ignored: a typo in
//! `HTTPS_PROXY` would otherwise send fetches around the egress proxy, and fail far from their cause.
//! Only `http://` proxies are supported (HTTPS to the identity provider still runs end to end through
//! a CONNECT tunnel); credentials in the proxy URL become `Proxy-Authorization: Basic` and are never
//! logged.

use http::{HeaderValue, Uri};
use hyper_util::client::proxy::matcher::Matcher;

/// The proxy settings of the process.
pub struct Proxies {
    matcher: Matcher,
    /// What was configured, credentials left out, for the start-up log line (`None`: no proxy).
    described: Option<String>,
}

/// Where to send one fetch instead of the identity provider itself.
#[derive(Debug)]
pub struct Route {
    pub host: String,
    pub port: u16,
    /// `Proxy-Authorization`, from the proxy URL's user information.
    pub authorization: Option<HeaderValue>,
}

impl Proxies {
    /// Reads the variables through `env` (upper case first, as curl does). Errors name the variable.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Proxies, String> {
        let first = |names: [&'static str; 2]| {
            names.into_iter().find_map(|name| {
                env(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v.trim().to_owned()))
            })
        };
        let https =
            first(["HTTPS_PROXY", "https_proxy"]).or_else(|| first(["ALL_PROXY", "all_proxy"]));
        let no = first(["NO_PROXY", "no_proxy"]);
        let mut builder = Matcher::builder();
        let mut described = Vec::new();
        if let Some((name, value)) = &https {
            let shown = check(name, value)?;
            described.push(format!("https through {shown} ({name})"));
            builder = builder.https(value.as_str());
        }
        if let Some((name, value)) = &no {
            builder = builder.no(value.as_str());
            if !described.is_empty() {
                described.push(format!("direct to {value} ({name})"));
            }
        }
        Ok(Proxies {
            matcher: builder.build(),
            described: (!described.is_empty()).then(|| described.join(", ")),
        })
    }

    /// The proxy for `target`, or `None` to connect directly (always for `http://`).
    pub fn route(&self, target: &Uri) -> Option<Route> {
        let intercept = self.matcher.intercept(target)?;
        let proxy = intercept.uri();
        let host = proxy.host()?.trim_start_matches('[').trim_end_matches(']');
        Some(Route {
            host: host.to_owned(),
            port: proxy.port_u16().unwrap_or(80),
            authorization: intercept.basic_auth().cloned(),
        })
    }

    /// `https through http://proxy:3128 (HTTPS_PROXY), direct to .internal (NO_PROXY)`, if any proxy.
    pub fn describe(&self) -> Option<&str> {
        self.described.as_deref()
    }
}

/// Checks one proxy URL; returns it without credentials, for logs.
fn check(name: &str, value: &str) -> Result<String, String> {
    let uri: Uri = value
        .parse()
        .map_err(|_| format!("{name} is not a proxy URL (expected http://host:port)"))?;
    match uri.scheme_str() {
        None | Some("http") => {}
        Some(other) => {
            return Err(format!(
                "{name}: {other}:// proxies are not supported; use an http:// proxy (https to the \
                 identity provider still goes end to end through a CONNECT tunnel)"
            ));
        }
    }
    let authority = uri
        .authority()
        .filter(|a| !a.host().is_empty())
        .ok_or_else(|| format!("{name} names no proxy host (expected http://host:port)"))?;
    let host_port = authority
        .as_str()
        .rsplit_once('@')
        .map_or(authority.as_str(), |(_, rest)| rest);
    Ok(format!("http://{host_port}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn proxies(vars: &[(&str, &str)]) -> Result<Proxies, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Proxies::from_env(|name| map.get(name).cloned())
    }

    fn via(p: &Proxies, url: &str) -> Option<String> {
        p.route(&url.parse().unwrap())
            .map(|r| format!("{}:{}", r.host, r.port))
    }

    #[test]
    fn no_variables_mean_direct_connections() {
        let p = proxies(&[]).unwrap();
        assert_eq!(via(&p, "https://idp.example.com/keys"), None);
        assert_eq!(p.describe(), None);
    }

    #[test]
    fn https_takes_the_https_proxy_upper_case_first_else_all_proxy() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://egress:3128"),
            ("https_proxy", "http://ignored:1"),
            ("ALL_PROXY", "http://ignored:2"),
        ])
        .unwrap();
        assert_eq!(
            via(&p, "https://idp.example.com/k").as_deref(),
            Some("egress:3128")
        );
        let all = proxies(&[("all_proxy", "http://[::1]:3128")]).unwrap();
        assert_eq!(
            via(&all, "https://a.example/k").as_deref(),
            Some("::1:3128")
        );
    }

    // Plain http is for loopback hosts only: through a proxy it would leave the machine in clear.
    #[test]
    fn plain_http_is_never_proxied_and_http_proxy_is_not_read() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://egress:3128"),
            ("ALL_PROXY", "http://egress:3128"),
            ("HTTP_PROXY", "socks5://not-even-checked:1"),
        ])
        .unwrap();
        assert_eq!(via(&p, "http://127.0.0.1:9/k"), None);
    }

    #[test]
    fn no_proxy_matches_domains_subdomains_addresses_and_ranges_as_curl_does() {
        let p = proxies(&[
            ("HTTPS_PROXY", "http://egress:3128"),
            (
                "NO_PROXY",
                "corp.example, .svc.cluster.local,10.0.0.0/8,127.0.0.1",
            ),
        ])
        .unwrap();
        for direct in [
            "https://corp.example/k",
            "https://idp.corp.example/k",
            "https://keycloak.auth.svc.cluster.local/k",
            "https://10.1.2.3/k",
            "https://127.0.0.1:8443/k",
        ] {
            assert_eq!(via(&p, direct), None, "{direct}");
        }
        for proxied in ["https://notcorp.example/k", "https://127.0.0.2/k"] {
            assert!(via(&p, proxied).is_some(), "{proxied}");
        }
        let star = proxies(&[("HTTPS_PROXY", "http://e:1"), ("no_proxy", "*")]).unwrap();
        assert_eq!(via(&star, "https://anything.example/k"), None);
    }

    #[test]
    fn credentials_become_basic_authorization_and_stay_out_of_the_description() {
        let p = proxies(&[("HTTPS_PROXY", "http://user:s3cret@egress:3128")]).unwrap();
        let route = p.route(&"https://idp.example/k".parse().unwrap()).unwrap();
        assert_eq!(
            route.authorization.unwrap(),
            "Basic dXNlcjpzM2NyZXQ=",
            "user:s3cret"
        );
        let described = p.describe().unwrap();
        assert!(described.contains("http://egress:3128"), "{described}");
        assert!(!described.contains("s3cret"), "{described}");
    }

    #[test]
    fn an_unusable_proxy_value_is_refused_naming_the_variable() {
        for (name, value, expected) in [
            ("HTTPS_PROXY", "socks5://egress:1080", "socks5:// proxies"),
            ("https_proxy", "https://egress:3128", "https:// proxies"),
            ("HTTPS_PROXY", "http://", "not a proxy URL"),
            ("ALL_PROXY", "http://user:pw@ bad", "not a proxy URL"),
        ] {
            let e = proxies(&[(name, value)]).err().unwrap();
            assert!(e.starts_with(name), "{e}");
            assert!(e.contains(expected), "{e}");
            assert!(!e.contains("pw"), "{e}");
        }
    }
}
