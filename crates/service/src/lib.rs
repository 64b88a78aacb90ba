//! The HTTP contract of jwt-validator (`design/api.md`), as a pure function from an
//! [`http::Request`] to an [`http::Response`].
//!
//! Both shells, the native server and the WebAssembly component, call [`Service::handle`] and only
//! move bytes, so every decision, status code and body is made here once.
//!
//! What it must not do: open sockets, read files, read the clock or the environment, or need an async
//! runtime. Time comes in as an argument; configuration is built by `jwtv-config` and handed in
//! ([`Service::new`]).

mod bearer;
pub mod binding;
pub mod cache;
pub mod dpop;
pub mod gateway;
mod health;
pub mod mtls;
pub mod replay;
pub mod request;
mod response;
pub mod rule;
#[cfg(feature = "rules")]
mod rule_check;
pub mod sources;
mod validate;

use http::{Method, Request, Response};
use jwtv_verifier::{Code, KeyStore, Rejected, Rejection, Verified, Verifier};
use std::sync::Arc;

pub use jwtv_verifier as verifier;

/// Service-level settings (the verifier carries its own limits and policies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Largest request body read; larger bodies get 413 before any parsing.
    pub max_body_bytes: usize,
    /// Include human `error_description` text in answers. Codes are always present.
    pub expose_descriptions: bool,
    /// `realm` of `WWW-Authenticate` challenges.
    pub realm: String,
    /// Forward-auth mode: identity headers and named policies.
    pub gateway: gateway::Gateway,
    /// Where the client certificate of a request is read, for certificate-bound tokens (RFC 8705).
    pub client_cert: mtls::CertSource,
    /// DPoP proof checks (each policy says whether it wants them: [`gateway::Access::dpop`]).
    pub dpop: dpop::Settings,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_body_bytes: 16 * 1024,
            expose_descriptions: true,
            realm: "jwt-validator".to_owned(),
            gateway: gateway::Gateway::default(),
            client_cert: mtls::CertSource::None,
            dpop: dpop::Settings::default(),
        }
    }
}

/// What the service decided about a token, for the shell's logs and metrics (never the token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Allowed with no token, on an anonymous route (no identity).
    pub anonymous: bool,
    pub code: Option<Code>,
    pub iss: Option<String>,
    pub kid: Option<String>,
    /// Index of the issuer whose keys were used, once the token named one we serve. A shell that fetches
    /// key sets refreshes this issuer's set after an `unknown_kid` and asks again.
    pub issuer: Option<usize>,
    /// Index, in the policy's token sources, of the one the token came from.
    pub source: Option<usize>,
}

/// Verified tokens remembered by the shell, so a token seen again skips parsing and the signature check.
///
/// The service stays pure: the shell owns the storage (and its clock-free eviction), the service only
/// asks and tells. An entry is only as good as the key set that verified it, so the shell invalidates
/// entries when a key set changes, and `ticket` closes the race with a verification already running:
/// a verification that began before a change must not be stored after it.
pub trait TokenCache: Send + Sync {
    /// The earlier verification of exactly `token`, when one is cached and usable at `now`.
    fn get(&self, token: &str, now: u64) -> Lookup;
    /// Remembers a verification that began with the ticket of the `Lookup::Miss` that preceded it.
    fn insert(&self, token: &str, verified: Arc<Verified>, ticket: u64);
}

/// What a [`TokenCache`] knows about a token.
pub enum Lookup {
    Hit(Arc<Verified>),
    /// Not cached; pass `ticket` to [`TokenCache::insert`] once verified.
    Miss {
        ticket: u64,
    },
}

impl Decision {
    fn allowed(verified: &jwtv_verifier::Verified) -> Decision {
        Decision {
            allowed: true,
            anonymous: false,
            code: None,
            iss: verified
                .claims
                .get("iss")
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned),
            kid: verified.kid.clone(),
            issuer: Some(verified.issuer),
            source: None,
        }
    }
}

/// A response plus the decision behind it, when the request asked for one.
#[derive(Debug)]
pub struct Handled {
    pub response: Response<Vec<u8>>,
    pub decision: Option<Decision>,
    /// A DPoP proof's first use, which the shell must record before answering (RFC 9449 §11.1).
    ///
    /// When it is set, `response` is the refusal a shell that does not record gets (503
    /// `replay_store_unavailable`: fail closed), and the allow waits in here: the shell records
    /// [`Pending::first_use`] in its store and hands the outcome to [`Service::recorded`], which
    /// answers the allow on a first use, 401 `invalid_dpop_proof` on a replay, 503 on a store error.
    pub replay: Option<Pending>,
}

/// An allow that waits for its DPoP proof's first use to be recorded (see [`Handled::replay`]).
#[derive(Debug)]
pub struct Pending {
    pub first_use: replay::FirstUse,
    allowed: Box<(Response<Vec<u8>>, Decision)>,
    /// Refusals on forward auth carry `X-Auth-Error` and are never 400.
    forward_auth: bool,
}

impl Handled {
    /// An answer with nothing to record.
    pub fn new(response: Response<Vec<u8>>, decision: Option<Decision>) -> Handled {
        Handled {
            response,
            decision,
            replay: None,
        }
    }

    /// An allow that stands once the proof's first use is recorded.
    #[cfg(feature = "dpop")]
    pub(crate) fn pending(
        service: &Service,
        response: Response<Vec<u8>>,
        decision: Decision,
        first_use: replay::FirstUse,
        forward_auth: bool,
    ) -> Handled {
        let mut handled = service.refuse_unrecorded(
            forward_auth,
            Rejection::new(
                jwtv_verifier::Code::ReplayStoreUnavailable,
                "the DPoP proof's first use was not recorded",
            ),
            &decision,
        );
        handled.replay = Some(Pending {
            first_use,
            allowed: Box::new((response, decision)),
            forward_auth,
        });
        handled
    }

    /// The issuer whose key set lacks the token's `kid`: a shell that fetches that issuer's keys asks
    /// its source for a refetch (`jwtv_keyset::Source::handle_unknown_kid`) and, when the set
    /// changed, asks the service once more. `None` for every other answer, and for an issuer whose
    /// keys are configured (the shell has no source for it).
    pub fn refetch(&self) -> Option<usize> {
        self.decision
            .as_ref()
            .filter(|d| d.code == Some(Code::UnknownKid))
            .and_then(|d| d.issuer)
    }
}

/// The validator's HTTP contract.
pub struct Service {
    verifier: Verifier,
    keys: Arc<dyn KeyStore + Send + Sync>,
    options: Options,
    cache: Option<Arc<dyn TokenCache>>,
}

impl Service {
    pub fn new(
        verifier: Verifier,
        keys: Arc<dyn KeyStore + Send + Sync>,
        options: Options,
    ) -> Service {
        Service {
            verifier,
            keys,
            options,
            cache: None,
        }
    }

    /// Remembers verified tokens in `cache` (the native server; the component has no state to keep).
    pub fn with_token_cache(mut self, cache: Arc<dyn TokenCache>) -> Service {
        self.cache = Some(cache);
        self
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    pub fn max_body_bytes(&self) -> usize {
        self.options.max_body_bytes
    }

    /// Ready once every issuer has a usable key set.
    pub fn is_ready(&self) -> bool {
        (0..self.verifier.policies().len()).all(|i| self.keys.key_set(i).is_some())
    }

    /// Verifies `token` at `now`, through the token cache when there is one.
    pub(crate) fn verify(&self, token: &str, now: u64) -> Result<Arc<Verified>, Rejected> {
        let Some(cache) = &self.cache else {
            return self
                .verifier
                .verify(token.as_bytes(), now, &*self.keys)
                .map(Arc::new);
        };
        match cache.get(token, now) {
            Lookup::Hit(verified) => match self.verifier.policies().get(verified.issuer) {
                // Signature, header and key choice do not depend on the time and were checked when the
                // entry was made; the claim rules do (exp, nbf, max age), so they run again at `now`.
                Some(policy) => match jwtv_verifier::claims::check(&verified.claims, policy, now) {
                    Ok(()) => Ok(verified),
                    Err(rejection) => Err(Rejected {
                        rejection,
                        iss: verified
                            .claims
                            .get("iss")
                            .and_then(serde_json::Value::as_str)
                            .map(|s| s.chars().take(256).collect()),
                        kid: verified.kid.clone(),
                        issuer: Some(verified.issuer),
                    }),
                },
                // An entry for an issuer we do not have cannot come from us: verify from scratch.
                None => self
                    .verifier
                    .verify(token.as_bytes(), now, &*self.keys)
                    .map(Arc::new),
            },
            Lookup::Miss { ticket } => {
                let verified =
                    Arc::new(self.verifier.verify(token.as_bytes(), now, &*self.keys)?);
                cache.insert(token, verified.clone(), ticket);
                Ok(verified)
            }
        }
    }

    /// Answers one request received at `now_secs` (seconds since the Unix epoch).
    pub fn handle<B: AsRef<[u8]>>(&self, req: &Request<B>, now_secs: u64) -> Handled {
        let path = req.uri().path();
        match path {
            "/validate" => validate::handle(self, req, now_secs),
            "/healthz" => plain(health::healthz(req.method())),
            "/readyz" => plain(health::readyz(req.method(), self.is_ready())),
            _ => match gateway::route(path) {
                Some(policy) => gateway::handle(self, req, now_secs, policy),
                None => plain(response::not_found(path)),
            },
        }
    }

    /// The answer to a request whose DPoP proof's first use the shell tried to record
    /// ([`Handled::replay`]): `Ok(true)` a first use (the allow), `Ok(false)` a replay (401
    /// `invalid_dpop_proof`), `Err` the store could not say (503 `replay_store_unavailable`, fail
    /// closed). A `handled` with nothing to record is returned as it is.
    pub fn recorded<E: std::fmt::Display>(
        &self,
        mut handled: Handled,
        first_use: Result<bool, E>,
    ) -> Handled {
        let Some(pending) = handled.replay.take() else {
            return handled;
        };
        let (response, decision) = *pending.allowed;
        let rejection = match first_use {
            Ok(true) => return Handled::new(response, Some(decision)),
            Ok(false) => Rejection::new(
                jwtv_verifier::Code::InvalidDpopProof,
                "the DPoP proof was used before (its jti is replayed)",
            ),
            Err(error) => Rejection::new(
                jwtv_verifier::Code::ReplayStoreUnavailable,
                format!("the DPoP proof's first use could not be recorded: {error}"),
            ),
        };
        self.refuse_unrecorded(pending.forward_auth, rejection, &decision)
    }

    fn refuse_unrecorded(
        &self,
        forward_auth: bool,
        rejection: Rejection,
        decision: &Decision,
    ) -> Handled {
        let (iss, kid, issuer) = (decision.iss.clone(), decision.kid.clone(), decision.issuer);
        let mut handled = if forward_auth {
            gateway::deny(self, rejection, iss, kid, issuer, true)
        } else {
            validate::reject(self, rejection, iss, kid, issuer, true)
        };
        if let Some(d) = &mut handled.decision {
            d.source = decision.source;
        }
        handled
    }

    /// The 413 answer, for shells that stop reading a body once it passes [`Service::max_body_bytes`].
    pub fn payload_too_large(&self) -> Handled {
        plain(validate::too_large(self))
    }
}

/// A refused token on either route: the error body, the Bearer challenge on 401/403 (RFC 6750 §3;
/// with `dpop`, the DPoP one of RFC 9449 §7.1; `Retry-After` on 503 comes with the body), and the
/// decision for logs.
fn refused(
    service: &Service,
    status: http::StatusCode,
    rejection: jwtv_verifier::Rejection,
    iss: Option<String>,
    kid: Option<String>,
    issuer: Option<usize>,
    dpop: bool,
) -> Handled {
    let expose = service.options.expose_descriptions;
    let mut response = response::error(status, &rejection, expose);
    if status == http::StatusCode::UNAUTHORIZED || status == http::StatusCode::FORBIDDEN {
        let description = if expose {
            rejection.description.as_ref()
        } else {
            ""
        };
        let error = Some((response::challenge_error(rejection.code), description));
        let challenge = if dpop || rejection.code == Code::InvalidDpopProof {
            response::dpop_challenge(&service.options.realm, error, &service.options.dpop.algs())
        } else {
            response::bearer_challenge(&service.options.realm, error)
        };
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, challenge);
    }
    Handled {
        response,
        decision: Some(Decision {
            allowed: false,
            anonymous: false,
            code: Some(rejection.code),
            iss,
            kid,
            issuer,
            source: None,
        }),
        replay: None,
    }
}

/// A JSON error answer for a request the shell could not hand to the service (unreadable, or not
/// read in time: `status` says which), in the same shape and field order as the service's: never
/// `valid:true`, and always `invalid_request`.
pub fn unreadable_request(
    status: http::StatusCode,
    description: &str,
    expose: bool,
) -> Response<Vec<u8>> {
    let code = Code::InvalidRequest.as_str();
    response::json(status, &response::ErrorBody::new(code, description, expose))
}

/// The answer of a shell that has no service to ask, because its configuration cannot be served (or
/// a route names a policy it lacks): 500 `server_misconfigured`, fail closed (never `valid:true`),
/// and not worth a client's retry. The description is always shown: it points at the operator's log.
pub fn misconfigured(description: &str) -> Response<Vec<u8>> {
    let code = Code::ServerMisconfigured;
    response::json(
        response::status_for(code),
        &response::ErrorBody::new(code.as_str(), description, true),
    )
}

fn plain(response: Response<Vec<u8>>) -> Handled {
    Handled::new(response, None)
}

/// Methods that only read.
fn is_read(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_cache;
// Proofs are ES256 and EdDSA, and the challenge lists RS256 first: the builds with every family.
#[cfg(all(
    test,
    feature = "dpop",
    feature = "rsa",
    feature = "ec",
    feature = "eddsa"
))]
mod tests_dpop;
#[cfg(test)]
mod tests_mtls;
#[cfg(all(test, feature = "rules"))]
mod tests_rules;
