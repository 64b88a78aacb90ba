//! `POST /validate`: the drop-in for the Express service (`{"token": "…"}` in, `{"valid": …}` out), which
//! also takes the token from `Authorization: Bearer` when the body carries none.

use crate::request::Original;
use crate::sources::{self, TokenSource};
use crate::{Decision, Handled, Service, gateway, mtls, response};
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
    let (token, source) = match token_of(
        body,
        req.headers(),
        req.uri().query(),
        &access.token_sources,
        service.verifier.limits().max_json_depth,
    ) {
        Ok(found) => found,
        Err(rejection) => return reject(service, rejection, None, None, None),
    };
    let verified =
        service.verify(&token, now).and_then(|verified| {
            let checked = mtls::check(&service.options.client_cert, &verified.claims, req)
                .and_then(|()| match &access.rule {
                    Some(rule) => {
                        gateway::check_rule(rule, &verified.claims, &Original::direct(req))
                    }
                    None => Ok(()),
                });
            match checked {
                Ok(()) => Ok(verified),
                Err(rejection) => Err(jwtv_verifier::Rejected {
                    rejection,
                    iss: Decision::allowed(&verified).iss,
                    kid: verified.kid.clone(),
                    issuer: Some(verified.issuer),
                }),
            }
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
            Handled {
                response: response::json(StatusCode::OK, &body),
                decision: Some(Decision::allowed(&verified)),
            }
        }
        Err(rejected) => reject(
            service,
            rejected.rejection,
            rejected.iss,
            rejected.kid,
            rejected.issuer,
        ),
    };
    if let Some(decision) = &mut handled.decision {
        decision.source = source;
    }
    handled
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

fn reject(
    service: &Service,
    rejection: Rejection,
    iss: Option<String>,
    kid: Option<String>,
    issuer: Option<usize>,
) -> Handled {
    let status = response::status_for(rejection.code);
    crate::refused(service, status, rejection, iss, kid, issuer)
}

/// The token from the body or, when the body carries none, from the default policy's token sources
/// (`Authorization: Bearer` unless configured otherwise: the way many callers of such services send
/// it). When both carry one they must be the same token, and so must two sources: a caller that sends
/// two different ones has a bug we would hide by picking either, so the request is refused (and
/// neither token is echoed). A body that is not JSON, or a token of another type, stays a malformed
/// request whatever the headers say; an `Authorization` of another scheme counts as no header.
/// Returns the token and, when a source gave it, that source's index.
fn token_of<'a>(
    body: &'a [u8],
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    token_sources: &'a [TokenSource],
    max_depth: usize,
) -> Result<(Cow<'a, str>, Option<usize>), Rejection> {
    let from_body = body_token(body, max_depth)?;
    let from_sources = sources::find(token_sources, headers, query)
        .map_err(|error| Rejection::new(Code::InvalidRequest, error.to_string()))?;
    let index = |found: &sources::Found<'_>| token_sources.iter().position(|s| s == found.source);
    match (from_body, from_sources) {
        (Some(body), None) => Ok((body, None)),
        (None, Some(found)) => Ok((index(&found), found.token)).map(|(i, t)| (t, i)),
        (Some(body), Some(found)) if body == found.token => Ok((body, None)),
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
    Handled {
        response,
        decision: None,
    }
}
