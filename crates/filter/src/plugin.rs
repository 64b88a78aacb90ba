//! The filter's decisions, without hostcalls: configuration in, verdicts out.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use jwtv_config::{self as config, ConfigError};
use jwtv_keyset::{FetchSettings, RemoteSource, Store};
use jwtv_service::Service;
use jwtv_service::cache::VerifiedCache;
use jwtv_service::dpop::Mode;
use jwtv_service::mtls::{CertSource, PeerCertificateDigest};
use jwtv_service::replay::Seen;
use jwtv_service::verifier::KeySet;

/// How the plugin configuration is named in error lines (there is no file path to give).
pub const CONFIG_NAME: &str = "plugin configuration";

/// A configured filter: the service of the `/auth` route and its verified-token cache.
pub struct Plugin {
    service: Service,
    keys: Arc<Store>,
    /// The issuers whose key sets the shell fetches, and how.
    pub remote: Vec<RemoteSource>,
    pub fetch: FetchSettings,
    /// Whether a policy reads more than `Authorization` (a cookie, a named header, a query parameter)
    /// or has a rule over the request: then the service gets the whole request, else only the
    /// credential (the common case stays as cheap as before).
    whole_request: bool,
    /// Whether some policy reads `Authorization: DPoP` (its DPoP mode is not `off`): a request that
    /// sends a proof or that scheme then gives the service its method, URL and `DPoP` header.
    dpop: bool,
    /// The DPoP proofs this VM let through (per VM: Envoy runs one per worker thread, and they do not
    /// share it; docs/dpop.md).
    replay: Mutex<Seen>,
}

/// What to do with one request.
#[derive(Debug)]
pub enum Verdict {
    /// Remove these request headers (client-sent identity), then set these, then let it go on.
    Allow { remove: Vec<String>, set: HeaderMap },
    /// Answer with this instead of forwarding: exactly what `/auth` answers.
    Deny(Response<Vec<u8>>),
    /// As `Deny`, for a token whose `kid` the key set of this issuer lacks: the shell may refetch it.
    UnknownKid(Response<Vec<u8>>, usize),
}

impl Plugin {
    /// Reads the plugin configuration. Environment variables (`secret_env`) are those Envoy gives the
    /// VM (`vm_config.environment_variables`); files cannot be read, so `*_file` keys fail with a
    /// line saying to put the keys inline. `cache_secret`, random bytes the shell drew, keys the
    /// verified-token cache by SipHash instead of SHA-256: a cached check is most of what the filter
    /// does per request, and in Wasm the SHA-256 was a third of it. Returns the plugin and the
    /// warnings to log.
    pub fn load(
        text: &[u8],
        env: config::EnvFn<'_>,
        cache_secret: Option<[u8; 16]>,
    ) -> Result<(Plugin, Vec<String>), ConfigError> {
        let no_files = |path: &Path| -> io::Result<Vec<u8>> {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{}: a proxy-wasm filter cannot read files; put the key inline (secret, jwks, jwks_seed)",
                    path.display()
                ),
            ))
        };
        let text = toml_text(text)?;
        let loaded = config::load_toml(CONFIG_NAME, &text, env, &no_files)?;
        let keys = Arc::new(loaded.keys);
        let (size, generation) = (loaded.server.token_cache_size, keys.generation_counter());
        let cache = match cache_secret {
            Some(secret) => VerifiedCache::keyed(size, generation, secret),
            None => VerifiedCache::new(size, generation),
        };
        let gateway = &loaded.options.gateway;
        let whole_request = std::iter::once(&gateway.access)
            .chain(gateway.policies.iter().map(|p| &p.access))
            .any(|a| {
                a.rule.is_some()
                    || a.token_sources
                        .iter()
                        .any(|s| *s != jwtv_service::sources::TokenSource::Bearer)
            });
        let dpop = std::iter::once(&gateway.access)
            .chain(gateway.policies.iter().map(|p| &p.access))
            .any(|a| a.dpop != Mode::Off);
        let replay = Mutex::new(Seen::new(loaded.options.dpop.replay_max_entries));
        let service = Service::new(loaded.verifier, keys.clone(), loaded.options)
            .with_token_cache(Arc::new(cache));
        Ok((
            Plugin {
                service,
                whole_request,
                dpop,
                replay,
                keys,
                remote: loaded.remote,
                fetch: loaded.server.fetch,
            },
            loaded.warnings,
        ))
    }

    /// Installs a fetched key set for issuer `issuer` (an index into the configuration's issuers).
    /// Tokens verified under the set it replaces leave the cache; the same set again changes nothing.
    pub fn install(&self, issuer: usize, set: Arc<KeySet>) {
        self.keys.install(issuer, set);
    }

    /// Whether certificate-bound tokens are checked against the downstream TLS session
    /// (`client_cert_source = "tls"`): only then is Envoy asked for the peer certificate's digest.
    pub fn reads_peer_certificate(&self) -> bool {
        self.service.options().client_cert() == CertSource::Tls
    }

    /// Whether the configuration defines named policies at all.
    pub fn has_policies(&self) -> bool {
        !self.service.options().gateway.policies.is_empty()
    }

    /// Whether a route's policy name is one this configuration defines.
    pub fn has_policy(&self, name: &str) -> bool {
        self.service
            .options()
            .gateway
            .policies
            .iter()
            .any(|p| p.name == name)
    }

    /// Decides on a request with these headers, on a route with `policy` (or none), at `now` (seconds
    /// since the Unix epoch). A policy the configuration does not define is the caller's to refuse.
    pub fn decide<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        policy: Option<&str>,
        now: u64,
    ) -> Verdict {
        self.decide_with_peer(headers, policy, None, now)
    }

    /// As [`Plugin::decide`], with the hex SHA-256 of the downstream client certificate Envoy
    /// verified (its `connection.sha256_peer_certificate_digest`), for certificate-bound tokens.
    pub fn decide_with_peer<'h>(
        &self,
        headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
        policy: Option<&str>,
        peer_certificate_sha256: Option<String>,
        now: u64,
    ) -> Verdict {
        let route = match policy {
            Some(name) => format!("/policy/{name}/auth"),
            None => "/auth".to_owned(),
        };
        let mut builder = Request::get(route.as_str());
        // The service's rule: an upstream only ever sees the identity headers the filter set.
        let identity = &self.service.options().gateway;
        let mut remove = Vec::new();
        let (mut method, mut path, mut authority, mut scheme) = (None, None, None, None);
        // A request that may carry a DPoP proof needs the request it protects: method and URL.
        let mut dpop = false;
        for (name, value) in headers {
            // Only the credential matters to `/auth` unless a policy reads more; copying the rest would
            // cost for nothing. Envoy has already refused values with control bytes, the only ones
            // `http` would not take.
            if identity.is_identity_header(name) {
                remove.push(name.to_owned());
            } else if name.eq_ignore_ascii_case("authorization") {
                dpop |= self.dpop
                    && value
                        .get(..5)
                        .is_some_and(|s| s.eq_ignore_ascii_case(b"dpop "));
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    builder = builder.header(http::header::AUTHORIZATION, value);
                }
            } else if let Some(pseudo) = name.strip_prefix(':') {
                // The request itself, as Envoy ext_authz would send it: method, host, scheme and the
                // path under the route (`jwtv_service::request`); used when a policy reads the
                // request or the request may carry a DPoP proof.
                match pseudo {
                    "method" => method = Some(value),
                    "path" => path = Some(value),
                    "authority" => authority = Some(value),
                    "scheme" => scheme = Some(value),
                    _ => {}
                }
            } else if self.dpop && name.eq_ignore_ascii_case("dpop") {
                dpop = true;
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    builder = builder.header(name, value);
                }
            } else if !self.whole_request {
                continue;
            } else if !jwtv_service::request::REPORTED_HEADERS
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name))
            {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    builder = builder.header(name, value);
                }
            }
        }
        if self.whole_request || dpop {
            if let Some(host) = authority.and_then(|a| HeaderValue::from_bytes(a).ok()) {
                builder = builder.header(http::header::HOST, host);
            }
            if let Some(scheme) = scheme.and_then(|s| HeaderValue::from_bytes(s).ok()) {
                builder = builder.header("x-forwarded-proto", scheme);
            }
            if let Some(method) = method.and_then(|m| http::Method::from_bytes(m).ok()) {
                builder = builder.method(method);
            }
            if let Some(path) = path.and_then(|p| std::str::from_utf8(p).ok()) {
                // A path `http` cannot take keeps the route alone (the path then reads as `/`).
                if let Ok(uri) = http::Uri::try_from(format!("{route}{path}")) {
                    if path.starts_with('/') {
                        builder = builder.uri(uri);
                    }
                }
            }
        }
        // Only a policy name that is not a path segment fails here; `has_policy` comes first.
        let Ok(mut request) = builder.body([0u8; 0]) else {
            return Verdict::Deny(unknown_policy(policy.unwrap_or_default()));
        };
        if let Some(digest) = peer_certificate_sha256 {
            request
                .extensions_mut()
                .insert(PeerCertificateDigest(digest));
        }
        let handled = self.service.handle(&request, now);
        let refetch = handled.refetch();
        // An allow resting on a DPoP proof stands once the proof's first use is recorded.
        let handled = match &handled.replay {
            Some(pending) => {
                let mut seen = self.replay.lock().unwrap_or_else(|p| p.into_inner());
                let first_use = seen.first_use(&pending.first_use, now);
                drop(seen);
                self.service.recorded(handled, first_use)
            }
            None => handled,
        };
        let response = handled.response;
        if response.status() != StatusCode::OK {
            return match refetch {
                Some(issuer) => Verdict::UnknownKid(response, issuer),
                None => Verdict::Deny(response),
            };
        }
        let mut set = response.into_parts().0.headers;
        // `/auth` also tells its own caller `Cache-Control: no-store`: that is about the answer, and
        // would override the client's own header upstream. Only identity headers go on.
        let others: Vec<_> = set
            .keys()
            .filter(|name| !identity.is_identity_header(name.as_str()))
            .cloned()
            .collect();
        for name in others {
            set.remove(name);
        }
        Verdict::Allow { remove, set }
    }
}

/// The TOML text of the plugin configuration: as given, or the `toml` string of a JSON object, the form
/// Istio's `pluginConfig` and Envoy Gateway's `config` can carry (they hand the filter JSON).
fn toml_text(text: &[u8]) -> Result<Vec<u8>, ConfigError> {
    if text.trim_ascii_start().first() != Some(&b'{') {
        return Ok(text.to_vec());
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Wrapped {
        toml: String,
    }
    serde_json::from_slice::<Wrapped>(text)
        .map(|w| w.toml.into_bytes())
        .map_err(|e| ConfigError::File {
            location: CONFIG_NAME.to_owned(),
            message: format!("JSON, so expected {{\"toml\": \"<the TOML configuration>\"}}: {e}"),
        })
}

/// The answer to every request while the configuration cannot be served: fail closed, never
/// forwarded, the same 500 as the component's (a configuration error is not worth a client's retry).
pub fn misconfigured() -> Response<Vec<u8>> {
    jwtv_service::misconfigured("the validator's configuration is invalid; see the proxy's log")
}

/// A route names a policy the configuration does not define: also the operator's mistake.
pub fn unknown_policy(name: &str) -> Response<Vec<u8>> {
    jwtv_service::misconfigured(&format!(
        "this route names the policy {name:?}, which the filter's configuration does not define"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str =
        "[[issuers]]\nissuer = \"i\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n";

    fn load(text: &str) -> Result<Plugin, String> {
        Plugin::load(text.as_bytes(), &|_| None, Some([1; 16]))
            .map(|(plugin, _)| plugin)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_json_wrapped_configuration_reads_as_its_toml_text() {
        let json = serde_json::json!({ "toml": TOML }).to_string();
        assert!(load(&json).is_ok());
        let wrong = load(r#"{"issuers": []}"#).err().unwrap_or_default();
        assert!(
            wrong.starts_with("plugin configuration: JSON, so expected"),
            "{wrong}"
        );
    }

    #[test]
    fn a_key_file_is_refused_with_a_line_saying_to_put_the_key_inline() {
        let e = load("[[issuers]]\nissuer = \"i\"\njwks_file = \"keys.json\"\n")
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("issuers[0]") && e.contains("put the key inline"),
            "{e}"
        );
        assert!(!e.contains('\n'), "one line: {e}");
    }

    // Issue 24: the filter hands the service the request itself, so token sources, anonymous routes
    // and rules decide as on /auth; a client cannot claim another method through X-Forwarded-*.
    #[cfg(feature = "rules")]
    mod access {
        use super::*;

        const SECRET: &str = "0123456789abcdef0123456789abcdef";

        fn token(claims: serde_json::Value) -> String {
            let key = jwtv_signer::SigningKey::hmac(SECRET.as_bytes());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let mut claims = claims;
            claims["exp"] = serde_json::json!(now + 600);
            jwtv_signer::encode(&serde_json::json!({"alg": "HS256"}), &claims, &key).unwrap()
        }

        fn plugin(extra: &str) -> Plugin {
            load(&format!("[[issuers]]\nsecret = \"{SECRET}\"\n{extra}")).unwrap()
        }

        fn decide(plugin: &Plugin, headers: &[(&str, &str)]) -> Verdict {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            plugin.decide(headers.iter().map(|(n, v)| (*n, v.as_bytes())), None, now)
        }

        fn status(verdict: &Verdict) -> u16 {
            match verdict {
                Verdict::Allow { .. } => 200,
                Verdict::Deny(r) | Verdict::UnknownKid(r, _) => r.status().as_u16(),
            }
        }

        #[test]
        fn a_cookie_token_is_read_from_the_request() {
            let p = plugin("[gateway]\ntoken_sources = [\"cookie:session\"]\n");
            let cookie = format!(
                "a=1; session={}",
                token(serde_json::json!({"sub": "alice"}))
            );
            let verdict = decide(
                &p,
                &[(":method", "GET"), (":path", "/x"), ("cookie", &cookie)],
            );
            let Verdict::Allow { set, .. } = verdict else {
                panic!("{verdict:?}")
            };
            assert_eq!(set["x-auth-subject"], "alice");
        }

        #[test]
        fn an_anonymous_route_sets_empty_identity_and_removes_the_clients() {
            let p = plugin("[gateway]\nanonymous = \"allow\"\n");
            let verdict = decide(&p, &[(":method", "GET"), ("x-auth-subject", "root")]);
            let Verdict::Allow { remove, set } = verdict else {
                panic!("{verdict:?}")
            };
            assert_eq!(remove, ["x-auth-subject"]);
            assert_eq!(set["x-auth-subject"], "");
        }

        #[test]
        fn a_rule_on_the_method_sees_the_request_not_a_client_claim() {
            let p = plugin(
                "[gateway]\nrule = \"request.method == 'GET' && request.path == '/docs'\"\n",
            );
            let bearer = format!("Bearer {}", token(serde_json::json!({"sub": "bob"})));
            let get = [
                (":method", "GET"),
                (":path", "/docs?x=1"),
                ("authorization", bearer.as_str()),
            ];
            assert_eq!(status(&decide(&p, &get)), 200);
            let forged = [
                (":method", "POST"),
                (":path", "/docs"),
                ("x-forwarded-method", "GET"),
                ("x-original-method", "GET"),
                ("authorization", bearer.as_str()),
            ];
            assert_eq!(status(&decide(&p, &forged)), 403);
        }
    }
}
