//! `jwt-validator explain [TOKEN|-]`: why a token is accepted or refused, offline, with the service's
//! configuration.
//!
//! Nothing here decides. The checks come from the verifier itself, traced as it verifies
//! ([`jwtv_service::verifier::Trace`]), and the answers are those of [`Service::handle`] for a
//! `POST /validate` and a `GET /auth` carrying the token: the very code the server runs. What this
//! module adds is display: the decoded header and claims (never the signature bytes), the policy in
//! words, and the times of `exp`, `nbf` and `iat` relative to now.

use std::fmt::Write as _;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use http::{HeaderValue, Method, Request};
use jwtv_config::Loaded;
use jwtv_service::Service;
use jwtv_service::sources::TokenSource;
use jwtv_service::verifier::{Check, Key, Policy, Rejected, Trace};
use serde_json::{Value, json};

use crate::keys::Keys;

/// What the verifier reported while verifying.
#[derive(Default)]
struct Recorder {
    passed: Vec<Check>,
    issuer: Option<usize>,
    key: Option<Value>,
}

impl Trace for Recorder {
    fn passed(&mut self, check: Check) {
        self.passed.push(check);
    }

    fn issuer(&mut self, index: usize) {
        self.issuer = Some(index);
    }

    fn key(&mut self, key: &Key) {
        self.key = Some(json!({
            "kid": key.kid(),
            "family": format!("{:?}", key.family()),
            "algorithms": key.algorithms().iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        }));
    }
}

/// The whole explanation, as `--json` prints it.
pub struct Explanation {
    pub report: Value,
    pub valid: bool,
}

/// A DPoP proof to explain with the token, and the request it is for.
pub struct ProofArgs {
    pub proof: String,
    pub method: String,
    pub url: String,
}

/// Prepares the keys of `loaded` (remote sets fetched once, bounded) and explains `token` at `now`.
pub fn explain(
    loaded: Loaded,
    token: &str,
    proof: Option<&ProofArgs>,
    now: u64,
) -> anyhow::Result<Explanation> {
    let keys = Arc::new(Keys::new(
        loaded.keys,
        loaded.remote,
        loaded.verifier.policies(),
        &loaded.server.fetch,
        None,
    )?);
    let mut notes = Vec::new();
    if !keys.remotes().is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (fetched, bound) = runtime.block_on(async {
            keys.start();
            keys.first_fetch().await
        });
        if !fetched {
            notes.push(format!(
                "a remote key set was not fetched within {}s: its issuer has no keys here",
                bound.as_secs()
            ));
        }
    }
    let service = Service::new(loaded.verifier, keys.clone(), loaded.options);
    Ok(describe(&service, &keys, token, proof, now, notes))
}

fn describe(
    service: &Service,
    keys: &Keys,
    token: &str,
    proof: Option<&ProofArgs>,
    now: u64,
    notes: Vec<String>,
) -> Explanation {
    let verifier = service.verifier();
    let mut trace = Recorder::default();
    let outcome = verifier.verify_traced(token.as_bytes(), now, keys, &mut trace);
    let refusal = outcome.as_ref().err();
    let claims = segment(token, 1);
    let policy = trace.issuer.and_then(|i| verifier.policies().get(i));
    let checks = checks(&trace.passed, refusal, claims.as_ref(), policy, now);
    let validate = validate_answer(service, token, now);
    let auth = auth_answer(service, token, now);
    let dpop = dpop_report(service, token, claims.as_ref(), policy, proof, now);
    let valid = match proof {
        Some(_) => dpop["validate"]["status"] == 200,
        None => validate["status"] == 200,
    };
    let rule = service.options().gateway.access.rule.as_ref().map(|rule| {
        // The verdict as the service gave it: evaluated only once every check before it passed.
        let (verdict, description) = if valid {
            ("pass", None)
        } else if validate["body"]["error"] == "rule_failed" {
            let description = validate["body"]["error_description"].as_str();
            let verdict = match description {
                Some(d) if d.contains("could not be evaluated") => "error",
                _ => "fail",
            };
            (verdict, description)
        } else {
            ("not_reached", None)
        };
        json!({ "rule": rule.source(), "verdict": verdict, "description": description })
    });
    let binding = claims
        .as_ref()
        .and_then(Value::as_object)
        .map(|claims| binding_of(service, claims));
    let report = json!({
        "header": segment(token, 0),
        "claims": claims,
        "signature_bytes": token.split('.').nth(2).and_then(|s| URL_SAFE_NO_PAD.decode(s).ok()).map(|s| s.len()),
        "issuer": trace.issuer.map(|i| json!({
            "index": i,
            "iss": policy.and_then(|p| p.issuer.clone()),
            "policy": policy.map(describe_policy),
        })),
        "key": trace.key,
        "binding": binding,
        "now": now,
        "checks": checks,
        "validate": validate,
        "auth": auth,
        "rule": rule,
        "dpop": dpop,
        "valid": valid,
        "notes": notes,
    });
    Explanation { report, valid }
}

/// What the token's `cnf` binds it to and what a request must bring for it (the answers below are
/// those of a request that brings nothing: `explain` has no certificate and no proof).
fn binding_of(service: &Service, claims: &serde_json::Map<String, Value>) -> Value {
    use jwtv_service::binding::{self, Binding};
    match binding::of(claims) {
        Ok(Binding::None) => json!({"kind": "none", "needs": "nothing: a bearer token"}),
        Ok(b @ Binding::Jkt(_)) => json!({
            "kind": b.kind(),
            "needs": "Authorization: DPoP <token> and a DPoP proof signed by the key cnf.jkt names",
        }),
        Ok(b @ Binding::X5tS256(_)) => json!({
            "kind": b.kind(),
            "needs": format!(
                "the client certificate cnf.x5t#S256 names; {}",
                service.options().client_cert.description()
            ),
        }),
        Err(rejection) => json!({
            "kind": "unusable",
            "needs": format!("{}: {}", rejection.code, rejection.description),
        }),
    }
}

/// A decoded header (0) or payload (1), for display: `None` when it is not base64url JSON.
fn segment(token: &str, index: usize) -> Option<Value> {
    let mut parts = token.split('.');
    if token.split('.').count() != 3 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(parts.nth(index)?).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Every check in order: passed, the one that refused, then those not reached.
fn checks(
    passed: &[Check],
    refusal: Option<&Rejected>,
    claims: Option<&Value>,
    policy: Option<&Policy>,
    now: u64,
) -> Vec<Value> {
    let mut refused = refusal;
    Check::ORDER
        .iter()
        .map(|&check| {
            let mut row = json!({ "check": check.as_str() });
            if passed.contains(&check) {
                row["result"] = json!("pass");
            } else if let Some(rejected) = refused.take() {
                row["result"] = json!("fail");
                row["code"] = json!(rejected.rejection.code.as_str());
                row["description"] = json!(rejected.rejection.description);
            } else {
                row["result"] = json!("not_reached");
            }
            if let Some(note) = time_note(check, claims, policy, now) {
                row["note"] = json!(note);
            }
            row
        })
        .collect()
}

/// `exp`, `nbf` and `iat` against now, in words, with the leeway.
fn time_note(
    check: Check,
    claims: Option<&Value>,
    policy: Option<&Policy>,
    now: u64,
) -> Option<String> {
    let name = match check {
        Check::Expiry => "exp",
        Check::NotBefore => "nbf",
        Check::IssuedAt | Check::MaxAge => "iat",
        _ => return None,
    };
    let leeway = policy.map_or(String::new(), |p| format!(", leeway {} s", p.leeway_secs));
    let Some(at) = claims.and_then(|c| c.get(name)).and_then(Value::as_f64) else {
        return Some(format!("no numeric {name}"));
    };
    let when = relative(at - now as f64);
    Some(match (check, policy.and_then(|p| p.max_age_secs)) {
        (Check::MaxAge, Some(max)) => format!("issued {when}, max age {max} s{leeway}"),
        (Check::MaxAge, None) => "no maximum age configured".to_owned(),
        _ => format!("{name} {when}{leeway}"),
    })
}

/// `in 9m 59s`, `1h 0m ago`, `now`.
fn relative(delta: f64) -> String {
    let secs = delta.abs().round() as u64;
    if secs == 0 {
        return "now".to_owned();
    }
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let span = match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    };
    if delta > 0.0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

fn describe_policy(policy: &Policy) -> Value {
    let mut described = json!({
        "algorithms": if policy.algorithms.is_empty() {
            json!("those of its keys")
        } else {
            json!(policy.algorithms.iter().map(|a| a.as_str()).collect::<Vec<_>>())
        },
        "audiences": policy.audiences,
        "leeway_secs": policy.leeway_secs,
        "require_exp": policy.require_exp,
        "max_age_secs": policy.max_age_secs,
        "required_claims": policy.required_claims,
        "subject": policy.subject,
        "types": policy.types,
        "required_scopes": policy.required_scopes,
    });
    if !policy.allowed_tenants.is_empty() {
        described["allowed_tenants"] = json!(policy.allowed_tenants);
    }
    described
}

/// What the token is bound to (`cnf`), what the default policy's DPoP mode makes of it, and, with a
/// proof, each proof check in order (traced as `jwtv_service::dpop` runs them) and the answer of
/// `POST /validate` carrying the proof and its request. The proof is taken as a first use: explain
/// remembers nothing.
fn dpop_report(
    service: &Service,
    token: &str,
    claims: Option<&Value>,
    policy: Option<&Policy>,
    proof: Option<&ProofArgs>,
    now: u64,
) -> Value {
    use jwtv_service::binding::{self, Binding};
    use jwtv_service::dpop::{self, Mode, Proof, Step, Target};
    let mode = service.options().gateway.access.dpop;
    let empty = serde_json::Map::new();
    let claims = claims.and_then(Value::as_object).unwrap_or(&empty);
    let (kind, bound_to, what) = match binding::of(claims) {
        Err(r) => ("unreadable", None, r.description.into_owned()),
        Ok(b) => {
            let what = match (b, mode) {
                (Binding::None, Mode::Required) => "not bound, and DPoP is required here: refused",
                (Binding::None, _) => "a bearer token: no proof needed (sent as DPoP, refused)",
                (Binding::Jkt(_), Mode::Off) => "DPoP-bound, and DPoP is off here: refused",
                (Binding::Jkt(_), _) => {
                    "DPoP-bound: needs Authorization: DPoP and a proof by the key cnf.jkt names"
                }
                (Binding::X5tS256(_), _) => {
                    "certificate-bound: needs the client certificate cnf.x5t#S256 names, not a DPoP proof"
                }
            };
            let bound_to = match b {
                Binding::Jkt(t) | Binding::X5tS256(t) => Some(t.to_owned()),
                Binding::None => None,
            };
            (b.kind(), bound_to, what.to_owned())
        }
    };
    let mut report = json!({
        "binding": kind,
        "bound_to": bound_to,
        "mode": mode.as_str(),
        "what": what,
    });
    let Some(proof) = proof else {
        return report;
    };
    let mut passed = Vec::new();
    let outcome = dpop::check_traced(
        &Proof {
            proof: &proof.proof,
            access_token: token,
            jkt: bound_to.as_deref().unwrap_or(""),
            target: Target {
                method: &proof.method,
                url: &proof.url,
            },
            leeway_secs: policy.map_or(0, |p| p.leeway_secs),
            max_bytes: service.verifier().limits().max_token_bytes,
        },
        &service.options().dpop,
        now,
        &mut |step| passed.push(step),
    );
    let mut refusal = outcome.err();
    report["checks"] = Step::ORDER
        .iter()
        .map(|&step| {
            let mut row = json!({ "check": step.as_str() });
            if passed.contains(&step) {
                row["result"] = json!("pass");
            } else if let Some(r) = refusal.take() {
                row["result"] = json!("fail");
                row["code"] = json!(r.code.as_str());
                row["description"] = json!(r.description);
            } else {
                row["result"] = json!("not_reached");
            }
            row
        })
        .collect();
    let body =
        json!({"token": token, "dpop": proof.proof, "method": proof.method, "url": proof.url});
    let mut request = Request::new(body.to_string().into_bytes());
    *request.method_mut() = Method::POST;
    *request.uri_mut() = http::Uri::from_static("/validate");
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let handled = service.handle(&request, now);
    let response = service
        .recorded(handled, Ok::<bool, std::convert::Infallible>(true))
        .response;
    report["validate"] = json!({
        "status": response.status().as_u16(),
        "body": serde_json::from_slice::<Value>(response.body()).unwrap_or(Value::Null),
    });
    report
}

/// What `POST /validate {"token": …}` answers.
fn validate_answer(service: &Service, token: &str, now: u64) -> Value {
    let body = json!({ "token": token }).to_string().into_bytes();
    let mut request = Request::new(body);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = http::Uri::from_static("/validate");
    request
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response = service.handle(&request, now).response;
    json!({
        "status": response.status().as_u16(),
        "body": serde_json::from_slice::<Value>(response.body()).unwrap_or(Value::Null),
    })
}

/// What `GET /auth` answers with the token sent by the default policy's first token source (bearer,
/// a cookie, a header or a query parameter): status, the reason header of a deny, and the source the
/// service took the token from.
fn auth_answer(service: &Service, token: &str, now: u64) -> Value {
    let sources = &service.options().gateway.access.token_sources;
    let mut request = Request::new(Vec::new());
    *request.uri_mut() = http::Uri::from_static("/auth");
    let sent = match sources.first() {
        Some(TokenSource::Cookie(name)) => HeaderValue::from_str(&format!("{name}={token}"))
            .map(|v| request.headers_mut().insert(COOKIE, v))
            .is_ok(),
        Some(TokenSource::Header(name)) => HeaderValue::from_str(token)
            .map(|v| request.headers_mut().insert(name.clone(), v))
            .is_ok(),
        Some(TokenSource::Query(name)) => format!("/auth?{name}={token}")
            .parse()
            .map(|uri| *request.uri_mut() = uri)
            .is_ok(),
        Some(TokenSource::Bearer) | None => HeaderValue::from_str(&format!("Bearer {token}"))
            .map(|v| request.headers_mut().insert(AUTHORIZATION, v))
            .is_ok(),
    };
    if !sent {
        return json!({ "status": null, "error": "the token cannot be sent in a header" });
    }
    let handled = service.handle(&request, now);
    let response = handled.response;
    let source = handled
        .decision
        .and_then(|d| d.source)
        .and_then(|i| sources.get(i))
        .map(|s| s.to_string());
    json!({
        "status": response.status().as_u16(),
        "error": response
            .headers()
            .get(jwtv_service::gateway::X_AUTH_ERROR)
            .and_then(|v| v.to_str().ok()),
        "source": source,
    })
}

/// The explanation for a terminal.
pub fn render_text(report: &Value) -> String {
    let mut out = String::new();
    let shown = |v: &Value| match v {
        Value::Null => "(not decodable)".to_owned(),
        v => v.to_string(),
    };
    let _ = writeln!(out, "header     {}", shown(&report["header"]));
    let _ = writeln!(out, "claims     {}", shown(&report["claims"]));
    if let Some(n) = report["signature_bytes"].as_u64() {
        let _ = writeln!(out, "signature  {n} bytes (not shown)");
    }
    match report["issuer"].as_object() {
        Some(issuer) => {
            let name = issuer["iss"]
                .as_str()
                .map_or("the default issuer".to_owned(), |s| format!("{s:?}"));
            let _ = writeln!(out, "issuer     {name} (issuer #{})", issuer["index"]);
            let _ = writeln!(out, "policy     {}", issuer["policy"]);
        }
        None => {
            let _ = writeln!(out, "issuer     none selected");
        }
    }
    match report["key"].as_object() {
        Some(key) => {
            let _ = writeln!(
                out,
                "key        kid {}, {}, {}",
                key["kid"], key["family"], key["algorithms"]
            );
        }
        None => {
            let _ = writeln!(out, "key        none (see the checks)");
        }
    }
    if let Some(binding) = report["binding"].as_object()
        && binding["kind"] != "none"
    {
        let kind = binding["kind"].as_str().unwrap_or("");
        let needs = binding["needs"].as_str().unwrap_or("");
        let _ = writeln!(out, "binding    {kind}: needs {needs}");
    }
    let _ = writeln!(out, "checks");
    for row in report["checks"].as_array().into_iter().flatten() {
        let mark = match row["result"].as_str() {
            Some("pass") => "pass",
            Some("fail") => "FAIL",
            _ => "-   ",
        };
        let mut line = format!("  {mark}  {:<16}", row["check"].as_str().unwrap_or(""));
        if let (Some(code), Some(description)) = (row["code"].as_str(), row["description"].as_str())
        {
            let _ = write!(line, "{code}: {description}");
        } else if row["result"] == "not_reached" {
            line.push_str("not reached");
        }
        if let Some(note) = row["note"].as_str() {
            let _ = write!(line, "  ({note})");
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let validate = &report["validate"];
    let code = validate["body"]["error"].as_str().unwrap_or("ok");
    let _ = writeln!(out, "POST /validate  {} {code}", validate["status"]);
    let auth = &report["auth"];
    let _ = writeln!(
        out,
        "GET  /auth      {} {}{}",
        auth["status"],
        auth["error"].as_str().unwrap_or("ok"),
        auth["source"]
            .as_str()
            .map_or(String::new(), |s| format!(" (token from {s})"))
    );
    if let Some(rule) = report["rule"].as_object() {
        let mut line = format!(
            "rule       {}: {}",
            rule["rule"].as_str().unwrap_or(""),
            rule["verdict"].as_str().unwrap_or("")
        );
        if let Some(d) = rule["description"].as_str() {
            let _ = write!(line, " ({d})");
        }
        let _ = writeln!(out, "{line}");
    }
    let dpop = &report["dpop"];
    let _ = writeln!(
        out,
        "binding    {}{} (DPoP {}): {}",
        dpop["binding"].as_str().unwrap_or(""),
        dpop["bound_to"]
            .as_str()
            .map_or(String::new(), |t| format!(" {t}")),
        dpop["mode"].as_str().unwrap_or(""),
        dpop["what"].as_str().unwrap_or("")
    );
    if let Some(checks) = dpop["checks"].as_array() {
        let _ = writeln!(out, "proof");
        for row in checks {
            let mark = match row["result"].as_str() {
                Some("pass") => "pass",
                Some("fail") => "FAIL",
                _ => "-   ",
            };
            let mut line = format!("  {mark}  {:<16}", row["check"].as_str().unwrap_or(""));
            if let (Some(code), Some(d)) = (row["code"].as_str(), row["description"].as_str()) {
                let _ = write!(line, "{code}: {d}");
            } else if row["result"] == "not_reached" {
                line.push_str("not reached");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
        let answer = &dpop["validate"];
        let _ = writeln!(
            out,
            "POST /validate with the proof  {} {}",
            answer["status"],
            answer["body"]["error"].as_str().unwrap_or("ok")
        );
    }
    for note in report["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "note: {}", note.as_str().unwrap_or(""));
    }
    let code = match dpop["validate"]["status"].as_u64() {
        Some(_) => dpop["validate"]["body"]["error"].as_str().unwrap_or("ok"),
        None => code,
    };
    let verdict = if report["valid"] == true {
        "valid".to_owned()
    } else {
        format!("refused ({code})")
    };
    let _ = writeln!(out, "verdict    {verdict}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        assert_eq!(relative(0.2), "now");
        assert_eq!(relative(599.0), "in 9m 59s");
        assert_eq!(relative(-3600.0), "1h 0m ago");
        assert_eq!(relative(-42.0), "42s ago");
        assert_eq!(relative(90_000.0), "in 1d 1h");
    }
}
