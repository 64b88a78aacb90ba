//! `POST /validate`: the drop-in for the Express service (`{"token": "…"}` in, `{"valid": …}` out), which
//! also takes the token from `Authorization: Bearer` when the body carries none.

use crate::binding::{self, Presented};
use crate::dpop::{self, Mode, Target};
use crate::request::Original;
use crate::sources::{self, TokenSource};
use crate::{Decision, Handled, Service, gateway, response};
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use jwtv_verifier::Claims;
use jwtv_verifier::json::{self as strict_json, Found};
use jwtv_verifier::{Code, Rejection};
use serde::Serialize;
use std::borrow::Cow;

pub(crate) fn handle<B: AsRef<[u8]>>(service: &Service, req: &Request<B>, now: u64) -> Handled {
    if req.method() != Method::POST {
        return plain(response::method_not_allowed("POST"));
    }
    if !content_type_is_json(req) {
        let rejection = Rejection::new(
            Code::InvalidRequest,
            "Content-Type must be application/json (with curl: -H 'content-type: application/json')",
        );
        return plain(response::error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &rejection,
            service.options.expose_descriptions,
        ));
    }
    let body = req.body().as_ref();
    if body.len() > service.options.max_body_bytes {
        return plain(too_large(service));
    }
    let access = &service.options.gateway.access;
    let max_depth = service.verifier.limits().max_json_depth;
    let (token, source, dpop_scheme) = match token_of(
        body,
        req.headers(),
        req.uri().query(),
        &access.token_sources,
        max_depth,
        dpop::BUILT && access.dpop != Mode::Off,
    ) {
        Ok(found) => found,
        Err(rejection) => return reject(service, rejection, None, None, None, false),
    };
    let mut first_use = None;
    let verified = service
        .verify(&token, now)
        .map_err(|r| (r, dpop_scheme))
        .and_then(|verified| {
            // Only a request that involves DPoP pays for reading the body's other members.
            let involved =
                dpop_scheme || access.dpop == Mode::Required || verified.claims.contains_key("cnf");
            if !involved {
                return Ok(verified);
            }
            // Without DPoP checks in the build there is no proof to read: a bound token is refused.
            #[cfg(feature = "dpop")]
            let request = ProtectedRequest::read(body, req.headers(), max_depth);
            #[cfg(not(feature = "dpop"))]
            let request = ProtectedRequest::none();
            // A body has no scheme: a token sent with a proof is sent as DPoP; a token alone, as
            // a bearer token.
            let with_proof = access.dpop != Mode::Off && matches!(request.proof(), Ok(Some(_)));
            let presented = Presented {
                token: &token,
                dpop_scheme: dpop_scheme || with_proof,
                proof: request.proof(),
                target: request.target(),
            };
            let original = Original::direct(req);
            match binding::check(
                service,
                access.dpop,
                &verified.claims,
                verified.issuer,
                &presented,
                &original,
                now,
            ) {
                Ok(found) => {
                    first_use = found;
                    Ok(verified)
                }
                Err(refusal) => Err((
                    jwtv_verifier::Rejected {
                        rejection: refusal.rejection,
                        iss: Decision::allowed(&verified).iss,
                        kid: verified.kid.clone(),
                        issuer: Some(verified.issuer),
                    },
                    refusal.dpop,
                )),
            }
        })
        .and_then(|verified| match &access.rule {
            Some(rule) => {
                let original = Original::direct(req);
                match gateway::check_rule(rule, &verified.claims, &original) {
                    Ok(()) => Ok(verified),
                    Err(rejection) => Err((
                        jwtv_verifier::Rejected {
                            rejection,
                            iss: Decision::allowed(&verified).iss,
                            kid: verified.kid.clone(),
                            issuer: Some(verified.issuer),
                        },
                        false,
                    )),
                }
            }
            None => Ok(verified),
        });
    let mut handled = match verified {
        Ok(verified) => {
            let body = Valid {
                valid: true,
                claims: &verified.claims,
                expires_in: verified
                    .expires_at
                    .map(|exp| (exp - now as f64).floor().max(0.0) as u64),
            };
            let response = response::json(StatusCode::OK, &body);
            let mut decision = Decision::allowed(&verified);
            decision.source = source;
            match first_use {
                #[cfg(feature = "dpop")]
                Some(first_use) => Handled::pending(service, response, decision, first_use, false),
                // Without DPoP checks in the build, `binding::check` never gives a first use.
                _ => Handled::new(response, Some(decision)),
            }
        }
        Err((rejected, dpop)) => reject(
            service,
            rejected.rejection,
            rejected.iss,
            rejected.kid,
            rejected.issuer,
            dpop,
        ),
    };
    if let Some(decision) = &mut handled.decision {
        decision.source = source;
    }
    handled
}

/// The DPoP proof and the request it protects, as `POST /validate` takes them: `{"token": …,
/// "dpop": "<proof>", "method": "GET", "url": "https://api.example/orders"}`; the proof may also
/// come in the `DPoP` header (the same proof, if both).
struct ProtectedRequest<'a> {
    proof: Result<Option<Cow<'a, str>>, &'static str>,
    method: Result<Cow<'a, str>, &'static str>,
    url: Result<Cow<'a, str>, &'static str>,
}

impl<'a> ProtectedRequest<'a> {
    #[cfg(not(feature = "dpop"))]
    fn none() -> ProtectedRequest<'a> {
        let unread = "this build does not check DPoP proofs";
        ProtectedRequest {
            proof: Ok(None),
            method: Err(unread),
            url: Err(unread),
        }
    }

    #[cfg(feature = "dpop")]
    fn read(body: &'a [u8], headers: &'a HeaderMap, max_depth: usize) -> ProtectedRequest<'a> {
        let member = |name: &str| match strict_json::find_member(body, name, max_depth) {
            Ok(Found::Str(s)) if !s.is_empty() => Ok(Some(s)),
            Ok(Found::Absent | Found::Null | Found::Str(_)) => Ok(None),
            Ok(Found::Other) | Err(_) => Err(()),
        };
        let proof = match (member("dpop"), crate::bearer::dpop_proof(headers)) {
            (Err(()), _) => Err("the body's dpop must be a string"),
            (_, Err(why)) => Err(why),
            (Ok(Some(body)), Ok(Some(header))) if body != header => {
                Err("the body's dpop and the DPoP header differ; send one proof")
            }
            (Ok(Some(body)), _) => Ok(Some(body)),
            (Ok(None), Ok(header)) => Ok(header.map(Cow::Borrowed)),
        };
        let required = |name: &str, missing: &'static str| match member(name) {
            Ok(Some(value)) => Ok(value),
            _ => Err(missing),
        };
        ProtectedRequest {
            proof,
            method: required(
                "method",
                "a DPoP proof is checked against the protected request: give its \"method\" in the body",
            ),
            url: required(
                "url",
                "a DPoP proof is checked against the protected request: give its \"url\" in the body",
            ),
        }
    }

    fn proof(&self) -> Result<Option<&str>, &'static str> {
        match &self.proof {
            Ok(proof) => Ok(proof.as_deref()),
            Err(why) => Err(why),
        }
    }

    fn target(&self) -> Result<Target<'_>, &'static str> {
        match (&self.method, &self.url) {
            (Ok(method), Ok(url)) => Ok(Target { method, url }),
            (Err(why), _) | (_, Err(why)) => Err(why),
        }
    }
}

/// `{"valid":true,…}` first, as the old service answered; the additive fields follow.
#[derive(Serialize)]
struct Valid<'a> {
    valid: bool,
    claims: &'a Claims,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
}

pub(crate) fn too_large(service: &Service) -> Response<Vec<u8>> {
    let rejection = Rejection::new(
        Code::InvalidRequest,
        format!(
            "request body exceeds {} bytes",
            service.options.max_body_bytes
        ),
    );
    response::error(
        StatusCode::PAYLOAD_TOO_LARGE,
        &rejection,
        service.options.expose_descriptions,
    )
}

pub(crate) fn reject(
    service: &Service,
    rejection: Rejection,
    iss: Option<String>,
    kid: Option<String>,
    issuer: Option<usize>,
    dpop: bool,
) -> Handled {
    let status = response::status_for(rejection.code);
    crate::refused(service, status, rejection, iss, kid, issuer, dpop)
}

/// The token from the body or, when the body carries none, from the default policy's token sources
/// (`Authorization: Bearer` unless configured otherwise: the way many callers of such services send
/// it). When both carry one they must be the same token, and so must two sources: a caller that sends
/// two different ones has a bug we would hide by picking either, so the request is refused (and
/// neither token is echoed). A body that is not JSON, or a token of another type, stays a malformed
/// request whatever the headers say; an `Authorization` of another scheme counts as no header.
/// Returns the token, when a source gave it that source's index, and whether it came as
/// `Authorization: DPoP` (read only with `dpop`).
fn token_of<'a>(
    body: &'a [u8],
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    token_sources: &'a [TokenSource],
    max_depth: usize,
    dpop: bool,
) -> Result<(Cow<'a, str>, Option<usize>, bool), Rejection> {
    let from_body = body_token(body, max_depth)?;
    let from_sources = sources::find(token_sources, headers, query, dpop)
        .map_err(|error| Rejection::new(Code::InvalidRequest, error.to_string()))?;
    let index = |found: &sources::Found<'_>| token_sources.iter().position(|s| s == found.source);
    match (from_body, from_sources) {
        (Some(body), None) => Ok((body, None, false)),
        (None, Some(found)) => Ok((found.token.clone(), index(&found), found.dpop_scheme)),
        (Some(body), Some(found)) if body == found.token => Ok((body, None, found.dpop_scheme)),
        (Some(_), Some(found)) => Err(Rejection::new(
            Code::InvalidRequest,
            format!(
                "the body's token and the {} token differ; send one token",
                found.source
            ),
        )),
        (None, None) => Err(Rejection::new(
            Code::MissingToken,
            "no token given; send {\"token\": \"<jwt>\"} or Authorization: Bearer <jwt>",
        )),
    }
}

/// The old service read `req.body.token` and answered 400 when it was falsy: no body, `{}`, `""` and
/// `null` all mean "no token". A body that is not a JSON object, or a token of another type, is a
/// malformed request. The token is borrowed from the body (no map of the body is built).
fn body_token(body: &[u8], max_depth: usize) -> Result<Option<Cow<'_, str>>, Rejection> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let token = strict_json::find_member(body, "token", max_depth).map_err(|e| {
        Rejection::new(
            Code::InvalidRequest,
            format!("request body is not a JSON object: {e}"),
        )
    })?;
    match token {
        Found::Str(t) if !t.is_empty() => Ok(Some(t)),
        Found::Absent | Found::Null | Found::Str(_) => Ok(None),
        Found::Other => Err(Rejection::new(
            Code::InvalidRequest,
            "token must be a string",
        )),
    }
}

/// A missing Content-Type is taken as JSON (curl without -H, old clients); anything that names another
/// media type is refused rather than guessed at.
fn content_type_is_json<B>(req: &Request<B>) -> bool {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    // Compared without a lowercase copy: this runs for every request.
    let media = value.split(';').next().unwrap_or("").trim();
    let suffix = media.len().checked_sub(5).and_then(|at| media.get(at..));
    media.is_empty()
        || media.eq_ignore_ascii_case("application/json")
        || suffix.is_some_and(|s| s.eq_ignore_ascii_case("+json"))
}

fn plain(response: Response<Vec<u8>>) -> Handled {
    Handled::new(response, None)
}
