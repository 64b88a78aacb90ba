//! A policy's CEL rule (`JWT_RULE`, `JWT_POLICY_<NAME>_RULE`, TOML `rule`): one boolean expression over
//! `claims` (the verified claims) and `request` (`method`, `path`, `host`, `headers` of the original
//! request, see [`crate::request`]), evaluated after the signature and claim checks.
//!
//! The engine is the `cel` crate (cel-rust, the maintained successor of `cel-interpreter`), built with
//! no default features: no regex (`matches`), no chrono (timestamps, durations), no base64 extension.
//! It has no type checker, so [`Rule::compile`] brings its own: the expression parses, names only
//! `claims`, `request` and its own comprehension variables, calls only the functions listed in
//! [`FUNCTIONS`], stays inside the bounds below, and type-checks (`rule_check.rs`: `request`'s fields,
//! arities, operand types where both are known, a result that can be a bool). What only evaluation
//! can tell (a claim that is absent or of another type: claims are `dyn`) is an evaluation error, and
//! an evaluation error refuses: [`Verdict::Error`], never a pass.
//!
//! Bounds, so a rule's cost is known when it loads: [`MAX_RULE_BYTES`] of source, [`MAX_DEPTH`] of
//! nesting, [`MAX_NODES`] after macro expansion, and at most [`MAX_LOOP_NESTING`] comprehension
//! (`all`, `exists`, `exists_one`, `map`, `filter`) inside another: the data they iterate is the token's
//! claims, whose size the token cap bounds, so a rule's work is at most quadratic in the token size.
//!
//! Without the `rules` feature (the default WebAssembly component, for size) every rule is refused at
//! load with [`RuleError::NotBuilt`], so a configuration that asks for a rule never runs without it.

use jwtv_verifier::Claims;
use std::fmt;

use crate::request::Original;

/// Longest rule source accepted.
pub const MAX_RULE_BYTES: usize = 4096;
/// Deepest nesting of the parsed expression.
pub const MAX_DEPTH: u16 = 32;
/// Most nodes of the expanded expression.
pub const MAX_NODES: usize = 512;
/// Deepest nesting of `(`, `[` and `{`, checked before parsing: the generated parser spends some ten
/// stack frames per bracket, and 20 overflowed a 2 MiB test thread (debug build) before its own
/// recursion limit was reached.
pub const MAX_BRACKETS: usize = 8;
/// Most comprehensions nested in one another.
pub const MAX_LOOP_NESTING: usize = 2;

/// Functions and methods a rule may call (operators aside). `in`, `has()` and the comprehension
/// macros are syntax, not calls.
pub const FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "dyn",
    "type",
];

/// What a rule said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail,
    /// The rule could not be evaluated (a missing claim used as a list, a non-boolean result): refused.
    Error(String),
}

/// Why a rule does not load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("column {column}: {message}")]
    Invalid { column: usize, message: String },
    #[error("this build has no CEL rules (the WebAssembly component's `rules` build has them)")]
    NotBuilt,
}

/// A compiled, bounded rule. Compared by source.
#[derive(Clone)]
pub struct Rule {
    source: String,
    /// What the rule reads of `claims` and of `request`: only those are converted for it.
    #[cfg_attr(not(feature = "rules"), allow(dead_code))]
    claims: Reads,
    #[cfg_attr(not(feature = "rules"), allow(dead_code))]
    request: Reads,
    #[cfg(feature = "rules")]
    program: std::sync::Arc<cel::Program>,
}

/// The fields of a variable a rule reads: converting a token's claims into CEL values is most of what a
/// rule costs (measured: three quarters of a typical rule's evaluation), so a rule that only selects
/// fields (`claims.groups`, `has(claims.email)`) gets only those.
#[derive(Clone, Debug, Default)]
#[cfg_attr(not(feature = "rules"), allow(dead_code))]
struct Reads {
    /// The variable is used as a whole (iterated, indexed, passed to a function): every field.
    whole: bool,
    fields: Vec<String>,
}

#[cfg_attr(not(feature = "rules"), allow(dead_code))]
impl Reads {
    fn any(&self) -> bool {
        self.whole || !self.fields.is_empty()
    }

    fn wants(&self, field: &str) -> bool {
        self.whole || self.fields.iter().any(|f| f == field)
    }
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Rule").field(&self.source).finish()
    }
}

impl PartialEq for Rule {
    fn eq(&self, other: &Rule) -> bool {
        self.source == other.source
    }
}
impl Eq for Rule {}

impl Rule {
    /// Whether this build evaluates rules.
    pub const AVAILABLE: bool = cfg!(feature = "rules");

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parses and checks `source` (see the module doc).
    pub fn compile(source: &str) -> Result<Rule, RuleError> {
        let source = source.trim();
        if source.is_empty() {
            return Err(invalid(1, "the rule is empty"));
        }
        if source.len() > MAX_RULE_BYTES {
            return Err(invalid(
                MAX_RULE_BYTES,
                format!(
                    "the rule is {} bytes, over the {MAX_RULE_BYTES}-byte cap",
                    source.len()
                ),
            ));
        }
        brackets(source)?;
        compiled(source)
    }

    /// Evaluates the rule over verified `claims` and the original request.
    pub fn evaluate(&self, claims: &Claims, request: &Original<'_>) -> Verdict {
        evaluate(self, claims, request)
    }
}

/// Refuses bracket nesting over [`MAX_BRACKETS`] before the parser sees it. Brackets inside string
/// literals count too: telling literals apart here would need CEL's whole lexer (raw, triple-quoted and
/// bytes literals), and a scanner that got one wrong would let deep nesting through to the parser. A
/// rule only loses brackets it would nest eight deep in its strings.
fn brackets(source: &str) -> Result<(), RuleError> {
    let mut depth = 0usize;
    for (column, c) in source.chars().enumerate() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_BRACKETS {
                    return Err(invalid(
                        column + 1,
                        format!("brackets nest deeper than {MAX_BRACKETS}"),
                    ));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

fn invalid(column: usize, message: impl Into<String>) -> RuleError {
    RuleError::Invalid {
        column,
        message: message.into(),
    }
}

#[cfg(not(feature = "rules"))]
fn compiled(_: &str) -> Result<Rule, RuleError> {
    Err(RuleError::NotBuilt)
}

#[cfg(not(feature = "rules"))]
fn evaluate(_: &Rule, _: &Claims, _: &Original<'_>) -> Verdict {
    // Unreachable: no `Rule` exists in a build without rules. Refuse all the same.
    Verdict::Error("this build has no CEL rules".to_owned())
}

#[cfg(feature = "rules")]
fn compiled(source: &str) -> Result<Rule, RuleError> {
    use cel::common::ast::{EntryExpr, Expr};

    let program = cel::Env::stdlib()
        .with_optional_support(false)
        .parser()
        .max_recursion_depth(MAX_DEPTH)
        .parse_with_source_info(source)
        .map_err(|errors| {
            let first = errors.errors.first();
            // cel reports columns from 1, as cel-go does.
            let column = first.map_or(1, |e| e.pos.1.max(1) as usize);
            let message = first.map_or_else(|| "does not parse".to_owned(), |e| e.msg.clone());
            invalid(column, message)
        })?;
    let (expression, info) = program;
    let column_of = |id: u64| {
        info.offset_for(id).map_or(1, |(start, _)| {
            source.get(..start as usize).map_or(1, |before| {
                before.rsplit('\n').next().unwrap_or("").chars().count() + 1
            })
        })
    };

    struct Walk<'a> {
        nodes: usize,
        scope: Vec<&'a str>,
        loops: usize,
        claims: Reads,
        request: Reads,
    }
    fn walk<'a>(e: &'a cel::IdedExpr, w: &mut Walk<'a>, depth: usize) -> Result<(), (u64, String)> {
        w.nodes += 1;
        if w.nodes > MAX_NODES {
            return Err((e.id, format!("the rule has over {MAX_NODES} nodes")));
        }
        if depth > MAX_DEPTH as usize * 4 {
            return Err((e.id, "the rule nests too deeply".to_owned()));
        }
        // `claims.x` and `request.x` (and `has(…)` of them): a field read, not the whole variable.
        if let Expr::Select(select) = &e.expr {
            if let Expr::Ident(root) = &select.operand.expr {
                let reads = match root.as_str() {
                    _ if w.scope.contains(&root.as_str()) => None,
                    "claims" => Some(&mut w.claims),
                    "request" => Some(&mut w.request),
                    _ => None,
                };
                if let Some(reads) = reads {
                    if !reads.fields.contains(&select.field) {
                        reads.fields.push(select.field.clone());
                    }
                    w.nodes += 1;
                    return Ok(());
                }
            }
        }
        match &e.expr {
            Expr::Ident(name) => match name.as_str() {
                n if w.scope.contains(&n) => {}
                "claims" => w.claims.whole = true,
                "request" => w.request.whole = true,
                n if FUNCTIONS.contains(&n) => {}
                n => {
                    return Err((
                        e.id,
                        format!("unknown name {n:?}: a rule sees only `claims` and `request`"),
                    ));
                }
            },
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                let operator =
                    name.starts_with('_') || name.starts_with('@') || name == "!_" || name == "-_";
                if name == "matches" {
                    return Err((
                        e.id,
                        "matches() needs regular expressions, which rules leave out".to_owned(),
                    ));
                }
                if !operator && !FUNCTIONS.contains(&name) {
                    return Err((e.id, format!("unknown function {name:?}")));
                }
                if let Some(target) = &call.target {
                    walk(target, w, depth + 1)?;
                }
                for arg in &call.args {
                    walk(arg, w, depth + 1)?;
                }
            }
            Expr::Comprehension(c) => {
                w.loops += 1;
                if w.loops > MAX_LOOP_NESTING {
                    return Err((
                        e.id,
                        format!(
                            "more than {MAX_LOOP_NESTING} comprehensions nested in one another"
                        ),
                    ));
                }
                walk(&c.iter_range, w, depth + 1)?;
                walk(&c.accu_init, w, depth + 1)?;
                let before = w.scope.len();
                w.scope.push(&c.iter_var);
                if let Some(v) = &c.iter_var2 {
                    w.scope.push(v);
                }
                w.scope.push(&c.accu_var);
                walk(&c.loop_cond, w, depth + 1)?;
                walk(&c.loop_step, w, depth + 1)?;
                walk(&c.result, w, depth + 1)?;
                w.scope.truncate(before);
                w.loops -= 1;
            }
            Expr::List(list) => {
                for item in &list.elements {
                    walk(item, w, depth + 1)?;
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(m) = &entry.expr {
                        walk(&m.key, w, depth + 1)?;
                        walk(&m.value, w, depth + 1)?;
                    }
                }
            }
            Expr::Select(select) => walk(&select.operand, w, depth + 1)?,
            Expr::Literal(_) => {}
            Expr::Struct(_) => return Err((e.id, "a rule cannot build messages".to_owned())),
            Expr::Unspecified => return Err((e.id, "incomplete expression".to_owned())),
        }
        Ok(())
    }

    let mut w = Walk {
        nodes: 0,
        scope: Vec::new(),
        loops: 0,
        claims: Reads::default(),
        request: Reads::default(),
    };
    walk(&expression, &mut w, 0).map_err(|(id, message)| invalid(column_of(id), message))?;
    let (claims, request) = (w.claims, w.request);
    let result =
        crate::rule_check::check(&expression).map_err(|(id, m)| invalid(column_of(id), m))?;
    if !result.can_be_bool() {
        return Err(invalid(
            1,
            format!("the rule gives a {result}, where a bool (true or false) is needed")
                .replace(" a int", " an int"),
        ));
    }
    let program = cel::Env::stdlib()
        .with_optional_support(false)
        .compile(source)
        .map_err(|e| invalid(1, e.to_string()))?;
    Ok(Rule {
        source: source.to_owned(),
        claims,
        request,
        program: std::sync::Arc::new(program),
    })
}

#[cfg(feature = "rules")]
fn evaluate(rule: &Rule, claims: &Claims, request: &Original<'_>) -> Verdict {
    use cel::Value as Cel;
    use std::sync::{Arc, OnceLock};

    // One environment for every evaluation: the standard library, built once.
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    let env = ENV.get_or_init(|| Arc::new(cel::Env::stdlib().with_optional_support(false)));
    let mut context = cel::Context::with_env(env.clone());
    if rule.claims.any() {
        let claims = Cel::Map(cel::objects::Map {
            map: Arc::new(
                claims
                    .iter()
                    .filter(|(k, _)| rule.claims.wants(k))
                    .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), json(v)))
                    .collect(),
            ),
        });
        context.add_variable_from_value("claims", claims);
    }
    if rule.request.any() {
        context.add_variable_from_value("request", request_value(request, &rule.request));
    }
    match rule.program.execute(&context) {
        Ok(Cel::Bool(true)) => Verdict::Pass,
        Ok(Cel::Bool(false)) => Verdict::Fail,
        Ok(other) => Verdict::Error(format!(
            "the rule gave a {} where a bool was expected",
            other.type_of()
        )),
        Err(e) => Verdict::Error(e.to_string()),
    }
}

/// JSON as CEL: numbers that are whole and fit are `int` (so `claims.level == 3` reads as written),
/// others `double`; objects are maps with string keys.
#[cfg(feature = "rules")]
fn json(value: &serde_json::Value) -> cel::Value {
    use cel::Value as Cel;
    use serde_json::Value as J;
    use std::sync::Arc;
    match value {
        J::Null => Cel::Null,
        J::Bool(b) => Cel::Bool(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Cel::Int(i),
            None => Cel::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        J::String(s) => Cel::String(Arc::new(s.clone())),
        J::Array(items) => Cel::List(Arc::new(items.iter().map(json).collect())),
        J::Object(map) => Cel::Map(cel::objects::Map {
            map: Arc::new(
                map.iter()
                    .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), json(v)))
                    .collect(),
            ),
        }),
    }
}

#[cfg(feature = "rules")]
fn request_value(request: &Original<'_>, reads: &Reads) -> cel::Value {
    use cel::Value as Cel;
    use cel::objects::Key;
    use std::collections::HashMap;
    use std::sync::Arc;
    let string = |s: &str| Cel::String(Arc::new(s.to_owned()));
    let mut fields = HashMap::with_capacity(4);
    for (name, value) in [
        ("method", request.method),
        ("path", request.path),
        ("host", request.host),
    ] {
        if reads.wants(name) {
            fields.insert(Key::String(Arc::new(name.into())), string(value));
        }
    }
    if reads.wants("headers") {
        fields.insert(
            Key::String(Arc::new("headers".into())),
            Cel::Map(cel::objects::Map {
                map: Arc::new(headers(request.headers)),
            }),
        );
    }
    Cel::Map(cel::objects::Map {
        map: Arc::new(fields),
    })
}

/// Header names lowercased (as `http` keeps them), repeated values joined with `, ` (RFC 9110 §5.3);
/// values that are not text are left out.
#[cfg(feature = "rules")]
fn headers(headers: &http::HeaderMap) -> std::collections::HashMap<cel::objects::Key, cel::Value> {
    use std::sync::Arc;
    let mut out = std::collections::HashMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let values: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if values.is_empty() {
            continue;
        }
        out.insert(
            cel::objects::Key::String(Arc::new(name.as_str().to_owned())),
            cel::Value::String(Arc::new(values.join(", "))),
        );
    }
    out
}

#[cfg(all(test, not(feature = "rules")))]
mod tests {
    // A configuration that asks for a rule must never run on a build that cannot evaluate it.
    #[test]
    fn a_build_without_rules_refuses_every_rule() {
        assert_eq!(
            super::Rule::compile("true").map(|_| ()),
            Err(super::RuleError::NotBuilt)
        );
    }
}
