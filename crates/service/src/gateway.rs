//! Forward-auth mode (`design/api.md` §2): `ANY /auth[/…]` and `ANY /policy/{name}/auth[/…]` for nginx
//! `auth_request`, Caddy `forward_auth`, Traefik `forwardAuth` and Envoy `ext_authz`.
//!
//! The answers are shaped by what those proxies accept: allow is exactly 200 with an empty body and
//! identity headers (every configured one present, even empty, because Envoy only overrides headers that
//! exist); deny is 401 or 403 only (nginx turns anything else into 500), with the reason in
//! `X-Auth-Error` because nginx passes upstream nothing else but the status and `WWW-Authenticate`.

#[cfg(feature = "dpop")]
use crate::bearer;
use crate::binding::{self, Presented};
use crate::dpop::{self, Mode, Target};
use crate::request::Original;
use crate::rule::{Rule, Verdict};
use crate::sources::{self, SourceError, TokenSource};
use crate::{Decision, Handled, Service, response};
use http::header::{HeaderName, HeaderValue, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};
use jwtv_verifier::claims::{self, Claims};
use jwtv_verifier::{Code, Rejection, Verified, json};
use serde_json::Value;

pub const X_AUTH_ERROR: &str = "x-auth-error";

/// The identity headers every allow carries, with the claim each one comes from.
const IDENTITY: [(&str, Identity); 5] = [
    ("x-auth-subject", Identity::Claim("sub")),
    ("x-auth-issuer", Identity::Claim("iss")),
    ("x-auth-audience", Identity::Claim("aud")),
    ("x-auth-scopes", Identity::Scopes),
    ("x-auth-expires", Identity::Claim("exp")),
];

enum Identity {
    Claim(&'static str),
    Scopes,
}

/// Headers a claim mapping may never set besides the identity headers themselves ([`IDENTITY`],
/// [`X_AUTH_ERROR`]): those that would change how the proxy frames or routes the request.
const RESERVED: &[&str] = &[
    "authorization",
    "cookie",
    "set-cookie",
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "proxy-authenticate",
    "www-authenticate",
    "cache-control",
    "location",
];

/// Forward-auth settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// Extra `claim → header` mappings sent on allow.
    pub claim_headers: Vec<ClaimHeader>,
    /// Longest header value sent; longer values are cut at a character boundary.
    pub max_header_value_bytes: usize,
    /// Named policies, served at `/policy/{name}/auth`.
    pub policies: Vec<NamedPolicy>,
    /// The default policy's token sources, anonymous switch and rule (`/auth` and `POST /validate`).
    pub access: Access,
}

/// How a policy finds its token, whether it lets requests without one through, and the rule a
/// verified token must also pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// Where the token is looked for, in order (default: bearer only).
    pub token_sources: Vec<TokenSource>,
    /// A request with no token at all passes, with empty identity headers (default: refused).
    /// A token that is sent and fails is refused as always.
    pub anonymous: bool,
    /// A CEL rule a verified token must pass (default: none).
    pub rule: Option<Rule>,
    /// What the policy does with DPoP-bound tokens and proofs (default: allowed).
    pub dpop: Mode,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            token_sources: TokenSource::defaults(),
            anonymous: false,
            rule: None,
            dpop: Mode::default(),
        }
    }
}

/// Prefix of every identity header the validator sets upstream.
pub const IDENTITY_PREFIX: &str = "x-auth-";

impl Gateway {
    /// Whether `name` is a header only the validator may hand an upstream: every `x-auth-*` header
    /// and every configured claim header, in any case. A shell that forwards the request itself (the
    /// filter) removes each one the client sent before it sets its own, and forwards no other header
    /// of the `/auth` answer. Runs for every request header: compares in place, no lowercased copy.
    pub fn is_identity_header(&self, name: &str) -> bool {
        let prefix = name.get(..IDENTITY_PREFIX.len());
        prefix.is_some_and(|p| p.eq_ignore_ascii_case(IDENTITY_PREFIX))
            || self
                .claim_headers
                .iter()
                .any(|c| c.header.as_str().eq_ignore_ascii_case(name))
    }
}

impl Default for Gateway {
    fn default() -> Gateway {
        Gateway {
            claim_headers: Vec::new(),
            max_header_value_bytes: 1024,
            policies: Vec::new(),
            access: Access::default(),
        }
    }
}

/// One `claim → header` mapping; `claim` may be a dotted path into nested objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimHeader {
    pub header: HeaderName,
    pub claim: String,
}

impl ClaimHeader {
    /// Checks a mapping from configuration.
    pub fn new(header: &str, claim: &str) -> Result<ClaimHeader, String> {
        let name = HeaderName::from_bytes(header.trim().as_bytes())
            .map_err(|_| format!("{header:?} is not a valid header name"))?;
        let standard = IDENTITY.iter().any(|(n, _)| *n == name.as_str());
        if standard || name == X_AUTH_ERROR || RESERVED.contains(&name.as_str()) {
            return Err(format!("{header:?} is reserved and cannot carry a claim"));
        }
        let claim = claim.trim();
        if claim.is_empty() {
            return Err(format!("header {header:?} names no claim"));
        }
        Ok(ClaimHeader {
            header: name,
            claim: claim.to_owned(),
        })
    }

    /// Parses `Header=claim.path,Other=claim` (the form of the claim-headers variable).
    pub fn parse_list(spec: &str) -> Result<Vec<ClaimHeader>, String> {
        spec.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| match item.split_once('=') {
                Some((header, claim)) => ClaimHeader::new(header, claim),
                None => Err(format!("{item:?} is not Header=claim")),
            })
            .collect()
    }
}

/// What a named policy requires of a token its issuer already accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirements {
    /// `iss` must be one of these (when non-empty).
    pub issuers: Vec<String>,
    /// `aud` must name one of these (when non-empty).
    pub audiences: Vec<String>,
    /// Every one of these scopes must be granted.
    pub scopes: Vec<String>,
    /// Each claim must be present and, when values are given, equal one of them (or, for an array
    /// claim, contain one of them).
    pub claims: Vec<ClaimRequirement>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequirement {
    pub claim: String,
    pub values: Vec<Value>,
}

impl ClaimRequirement {
    /// Parses `claim=value,claim=other,flag` (the environment form): values are JSON when they parse
    /// (`true`, `3`) and strings otherwise; a claim named twice accepts any of its values; a bare claim
    /// only has to be present.
    pub fn parse_list(spec: &str) -> Result<Vec<ClaimRequirement>, String> {
        let mut out: Vec<ClaimRequirement> = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (claim, value) = match item.split_once('=') {
                Some((c, v)) => (c.trim(), Some(v.trim())),
                None => (item, None),
            };
            if claim.is_empty() {
                return Err(format!("{item:?} names no claim"));
            }
            // JSON when the verifier's strict reader takes it (so not with duplicate member names).
            let value = value.map(|v| {
                json::parse_value(v.as_bytes(), json::MAX_DEPTH).unwrap_or_else(|_| Value::from(v))
            });
            match out.iter_mut().find(|r| r.claim == claim) {
                Some(existing) => existing.values.extend(value),
                None => out.push(ClaimRequirement {
                    claim: claim.to_owned(),
                    values: value.into_iter().collect(),
                }),
            }
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPolicy {
    pub name: String,
    pub requirements: Requirements,
    pub access: Access,
}

impl Requirements {
    /// Issuer and audience make the token invalid for this resource (401); scopes and claims mean it
    /// is valid but does not grant enough (403 `insufficient_scope`).
    pub fn check(&self, claims: &Claims) -> Result<(), Rejection> {
        if !self.issuers.is_empty() {
            let iss = claims.get("iss").and_then(Value::as_str);
            if !iss.is_some_and(|iss| self.issuers.iter().any(|i| i == iss)) {
                return Err(Rejection::new(
                    Code::InvalidIssuer,
                    "issuer is not accepted by this policy",
                ));
            }
        }
        claims::check_audience(claims, &self.audiences)?;
        claims::check_scopes(claims, &self.scopes)?;
        for requirement in &self.claims {
            let present = claims::lookup(claims, &requirement.claim);
            let ok = match present {
                None => false,
                Some(_) if requirement.values.is_empty() => true,
                Some(Value::Array(items)) => items.iter().any(|i| requirement.values.contains(i)),
                Some(value) => requirement.values.contains(value),
            };
            if !ok {
                return Err(Rejection::new(
                    Code::InsufficientScope,
                    format!("claim {:?} does not meet the policy", requirement.claim),
                ));
            }
        }
        Ok(())
    }
}

/// What a policy name may hold: letters, digits, `-` and `_`. Configuration refuses other names and
/// gRPC ext_authz refuses them in `context_extensions`, so a name never climbs out of its path segment.
pub fn is_policy_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Splits a gateway path: `Some(None)` for `/auth[/…]`, `Some(Some(name))` for
/// `/policy/{name}/auth[/…]`, `None` for anything else.
pub(crate) fn route(path: &str) -> Option<Option<&str>> {
    route_tail(path)?;
    match path.strip_prefix("/policy/") {
        Some(rest) => rest.split_once('/').map(|(name, _)| Some(name)),
        None => Some(None),
    }
}

/// What follows `/auth` in a gateway path (`""` or `/…`): Envoy's original path, under its
/// `path_prefix`. `None` when the path is not a gateway route.
pub(crate) fn route_tail(path: &str) -> Option<&str> {
    let under = |rest: &'_ str| rest.is_empty() || rest.starts_with('/');
    if let Some(rest) = path.strip_prefix("/auth") {
        return under(rest).then_some(rest);
    }
    let rest = path.strip_prefix("/policy/")?;
    let (name, tail) = rest.split_once('/')?;
    let tail = tail.strip_prefix("auth")?;
    (!name.is_empty() && under(tail)).then_some(tail)
}

pub(crate) fn handle<B>(
    service: &Service,
    req: &Request<B>,
    now: u64,
    policy: Option<&str>,
) -> Handled {
    let gateway = &service.options.gateway;
    let (requirements, access) = match policy {
        None => (None, &gateway.access),
        Some(name) => match gateway.policies.iter().find(|p| p.name == name) {
            Some(p) => (Some(&p.requirements), &p.access),
            None => {
                return Handled::new(response::not_found(&format!("/policy/{name}")), None);
            }
        },
    };
    let original = Original::forwarded(req, route_tail(req.uri().path()).unwrap_or(""));
    let dpop = dpop::BUILT && access.dpop != Mode::Off;
    let found = match sources::find(&access.token_sources, req.headers(), original.query, dpop) {
        Ok(Some(found)) => found,
        Ok(None) if access.anonymous => return anonymous(gateway),
        Ok(None) => return missing_token(service, access.dpop),
        // 401, never 400 (see `deny`).
        Err(SourceError::Unreadable(unreadable)) => {
            let rejection = Rejection::new(Code::MalformedToken, unreadable);
            return deny(service, rejection, None, None, None, false);
        }
        Err(conflict) => {
            let rejection = Rejection::new(Code::InvalidRequest, conflict.to_string());
            return deny(service, rejection, None, None, None, false);
        }
    };
    let source = access.token_sources.iter().position(|s| s == found.source);
    let with_source = |mut handled: Handled| {
        if let Some(decision) = &mut handled.decision {
            decision.source = source;
        }
        handled
    };
    let verified = match service.verify(&found.token, now) {
        Ok(verified) => verified,
        Err(r) => {
            let dpop = found.dpop_scheme;
            return with_source(deny(service, r.rejection, r.iss, r.kid, r.issuer, dpop));
        }
    };
    let mut decision = Decision::allowed(&verified);
    decision.source = source;
    // The binding first: a stolen bound token must not learn whether it would pass the policy.
    #[cfg(feature = "dpop")]
    let url = original_url(&original);
    #[cfg(not(feature = "dpop"))]
    let url: Result<String, &str> = Err("this build does not check DPoP proofs");
    let presented = Presented {
        token: &found.token,
        dpop_scheme: found.dpop_scheme,
        #[cfg(feature = "dpop")]
        proof: bearer::dpop_proof(req.headers()),
        #[cfg(not(feature = "dpop"))]
        proof: Ok(None),
        target: url.as_deref().map_err(|why| *why).map(|url| Target {
            method: original.method,
            url,
        }),
    };
    let first_use = match binding::check(
        service,
        access.dpop,
        &verified.claims,
        verified.issuer,
        &presented,
        &original,
        now,
    ) {
        Ok(first_use) => first_use,
        Err(refusal) => {
            let (iss, kid, issuer) = (decision.iss, decision.kid, decision.issuer);
            let handled = deny(service, refusal.rejection, iss, kid, issuer, refusal.dpop);
            return with_source(handled);
        }
    };
    let checked = match requirements.map(|r| r.check(&verified.claims)) {
        Some(Err(rejection)) => Err(rejection),
        _ => match &access.rule {
            Some(rule) => check_rule(rule, &verified.claims, &original),
            None => Ok(()),
        },
    };
    if let Err(rejection) = checked {
        let (iss, kid, issuer) = (decision.iss, decision.kid, decision.issuer);
        return with_source(deny(service, rejection, iss, kid, issuer, false));
    }
    let response = allow(gateway, &verified);
    match first_use {
        #[cfg(feature = "dpop")]
        Some(first_use) => Handled::pending(service, response, decision, first_use, true),
        // Without DPoP checks in the build, `binding::check` never gives a first use.
        _ => Handled::new(response, Some(decision)),
    }
}

/// The original request's URL as DPoP's `htu` is compared with it, or why it cannot be known.
#[cfg(feature = "dpop")]
fn original_url(original: &Original<'_>) -> Result<String, &'static str> {
    let scheme = original.scheme.ok_or(
        "the gateway did not report the request's scheme (X-Forwarded-Proto), which the DPoP proof's htu is checked against",
    )?;
    if original.host.is_empty() {
        return Err(
            "the gateway did not report the request's host, which the DPoP proof's htu is checked against",
        );
    }
    Ok(format!("{scheme}://{}{}", original.host, original.path))
}

/// A rule's verdict as a refusal: false and an evaluation error both refuse, each with its own words.
pub(crate) fn check_rule(
    rule: &Rule,
    claims: &Claims,
    original: &Original<'_>,
) -> Result<(), Rejection> {
    match rule.evaluate(claims, original) {
        Verdict::Pass => Ok(()),
        Verdict::Fail => Err(Rejection::new(
            Code::RuleFailed,
            "the token does not meet the policy's rule",
        )),
        Verdict::Error(error) => Err(Rejection::new(
            Code::RuleFailed,
            format!("the policy's rule could not be evaluated, so it refuses: {error}"),
        )),
    }
}

/// A request with no token on an anonymous route: 200 with every identity header present and empty,
/// so the proxy overwrites whatever a client sent under those names.
fn anonymous(gateway: &Gateway) -> Handled {
    let mut response = response::empty(StatusCode::OK);
    let headers = response.headers_mut();
    for (name, _) in IDENTITY {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(""));
    }
    for mapping in &gateway.claim_headers {
        headers.insert(mapping.header.clone(), HeaderValue::from_static(""));
    }
    Handled::new(
        response,
        Some(Decision {
            allowed: true,
            anonymous: true,
            code: None,
            iss: None,
            kid: None,
            issuer: None,
            source: None,
        }),
    )
}

fn allow(gateway: &Gateway, verified: &Verified) -> Response<Vec<u8>> {
    let mut response = response::empty(StatusCode::OK);
    let cap = gateway.max_header_value_bytes;
    let headers = response.headers_mut();
    for (name, source) in IDENTITY {
        let text = match source {
            Identity::Claim(claim) => verified
                .claims
                .get(claim)
                .map(claim_text)
                .unwrap_or_default(),
            Identity::Scopes => claims::scopes(&verified.claims).join(" "),
        };
        headers.insert(HeaderName::from_static(name), header_value(&text, cap));
    }
    for mapping in &gateway.claim_headers {
        let text = claims::lookup(&verified.claims, &mapping.claim)
            .map(claim_text)
            .unwrap_or_default();
        headers.insert(mapping.header.clone(), header_value(&text, cap));
    }
    response
}

/// A claim as header text: strings as they are, arrays joined with `,`, other values as JSON.
fn claim_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(claim_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Control characters (CR/LF above all: header injection) are dropped, and the value is capped at a
/// character boundary.
fn header_value(text: &str, cap: usize) -> HeaderValue {
    // The usual claim (printable ASCII, under the cap) needs no cleaning: this runs for every identity
    // header of every allowed request, and the loop below was an eighth of a cached check.
    if text.len() <= cap && text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        if let Ok(value) = HeaderValue::from_str(text) {
            return value;
        }
    }
    let mut clean = String::with_capacity(text.len().min(cap));
    for c in text.chars().filter(|c| !c.is_control()) {
        if clean.len() + c.len_utf8() > cap {
            break;
        }
        clean.push(c);
    }
    HeaderValue::from_bytes(clean.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn missing_token(service: &Service, dpop: Mode) -> Handled {
    let rejection = Rejection::new(Code::MissingToken, "no bearer token");
    let mut handled = deny(service, rejection, None, None, None, false);
    // No `error` in the challenge when no credentials were sent (RFC 6750 §3.1); a route that takes
    // DPoP-bound tokens only asks for DPoP (RFC 9449 §7.1).
    let realm = &service.options.realm;
    let challenge = match dpop {
        Mode::Required => response::dpop_challenge(realm, None, &service.options.dpop.algs()),
        _ => response::bearer_challenge(realm, None),
    };
    handled
        .response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, challenge);
    handled
}

pub(crate) fn deny(
    service: &Service,
    rejection: Rejection,
    iss: Option<String>,
    kid: Option<String>,
    issuer: Option<usize>,
    dpop: bool,
) -> Handled {
    // Never 400 here: nginx turns any status but 401/403 into 500.
    let status = match rejection.code {
        Code::InsufficientScope | Code::RuleFailed => StatusCode::FORBIDDEN,
        Code::TemporarilyUnavailable | Code::ReplayStoreUnavailable => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Code::ServerMisconfigured => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNAUTHORIZED,
    };
    let code = rejection.code;
    let mut handled = crate::refused(service, status, rejection, iss, kid, issuer, dpop);
    handled.response.headers_mut().insert(
        HeaderName::from_static(X_AUTH_ERROR),
        HeaderValue::from_static(code.as_str()),
    );
    handled
}
