//! CEL rules (issue 24): any text is compiled under the load-time bounds and type-checked (a refusal
//! is a one-line error with a column, never a panic or a stack overflow), and a rule that compiles
//! is evaluated over claims and a request taken from the rest of the input (a verdict, never a panic),
//! giving the verdict the engine's plain evaluation of the same source gives (the fast path builds
//! only what the rule reads and turns selections into lookups: neither may change a verdict).
//!
//! An input is the rule, then a NUL, then a JSON object of claims, then a NUL, then the method.
#![no_main]

use jwtv_fuzz::split_once;
use jwtv_service::request::Original;
use jwtv_service::rule::{Rule, RuleError, Verdict};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (rule, rest) = split_once(data, 0);
    let Ok(rule) = std::str::from_utf8(rule) else {
        return;
    };
    let rule = match Rule::compile(rule) {
        Ok(rule) => rule,
        Err(RuleError::Invalid { column, message }) => {
            assert!(column >= 1, "column {column}: {message}");
            assert!(!message.contains('\n'), "one line: {message:?}");
            return;
        }
        Err(RuleError::NotBuilt) => panic!("the fuzz build has rules"),
    };
    let (claims, method) = split_once(rest, 0);
    let claims = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(claims)
        .unwrap_or_default();
    let request = http::Request::builder()
        .method(http::Method::from_bytes(method).unwrap_or(http::Method::GET))
        .uri("/auth/orders?id=1")
        .header("host", "app.example")
        .header("x-tenant", "t1")
        .body(())
        .unwrap_or_default();
    let original = Original {
        method: request.method().as_str(),
        path: "/orders",
        query: Some("id=1"),
        host: "app.example",
        scheme: Some("https"),
        headers: request.headers(),
        extensions: request.extensions(),
    };
    let ours = rule.evaluate(&claims, &original);
    let plain = rule.evaluate_plainly(&claims, &original);
    let kind = |v: &Verdict| match v {
        Verdict::Error(_) => None,
        Verdict::Pass => Some(true),
        Verdict::Fail => Some(false),
    };
    assert_eq!(
        kind(&ours),
        kind(&plain),
        "{ours:?} vs the engine's {plain:?}"
    );
});
