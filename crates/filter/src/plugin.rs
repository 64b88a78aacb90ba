//! The filter's decisions, without hostcalls: configuration in, verdicts out.

use std::io;
use std::path::Path;
use std::sync::Arc;

use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use jwtv_config::{self as config, ConfigError};
use jwtv_keyset::{FetchSettings, RemoteSource, Store};
use jwtv_service::Service;
use jwtv_service::cache::VerifiedCache;
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
                    "{}: a proxy-wasm filter cannot read files; put the key inline (secret, jwks)",
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
        let service = Service::new(loaded.verifier, keys.clone(), loaded.options)
            .with_token_cache(Arc::new(cache));
        Ok((
            Plugin {
                service,
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
        let mut builder = match policy {
            Some(name) => Request::get(format!("/policy/{name}/auth")),
            None => Request::get("/auth"),
        };
        // The service's rule: an upstream only ever sees the identity headers the filter set.
        let identity = &self.service.options().gateway;
        let mut remove = Vec::new();
        for (name, value) in headers {
            // Only the credential matters to `/auth`; copying the rest would cost for nothing. Envoy
            // has already refused values with control bytes, the only ones `http` would not take.
            if name.eq_ignore_ascii_case("authorization") {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    builder = builder.header(http::header::AUTHORIZATION, value);
                }
            } else if identity.is_identity_header(name) {
                remove.push(name.to_owned());
            }
        }
        // Only a policy name that is not a path segment fails here; `has_policy` comes first.
        let Ok(request) = builder.body([0u8; 0]) else {
            return Verdict::Deny(unknown_policy(policy.unwrap_or_default()));
        };
        let handled = self.service.handle(&request, now);
        let refetch = handled.refetch();
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
}
