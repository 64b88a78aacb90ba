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
    /// The checked expression, field selections turned into lookups (see [`lookups`]).
    #[cfg(feature = "rules")]
    expression: std::sync::Arc<cel::IdedExpr>,
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

    /// The engine's plain evaluation, for tests and the fuzz target to hold [`Rule::evaluate`] to: the
    /// source compiled as written, every claim and every request field given as `cel::Value`s. Same
    /// verdicts; only the words of an error may differ. Not for requests: it costs twice as much.
    #[cfg(feature = "rules")]
    #[doc(hidden)]
    pub fn evaluate_plainly(&self, claims: &Claims, request: &Original<'_>) -> Verdict {
        plainly(&self.source, claims, request)
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

/// A refusal, on one line: the parser quotes the source it could not read, which may span lines
/// (a rule in TOML can), so control characters are written escaped (`\n`).
fn invalid(column: usize, message: impl Into<String>) -> RuleError {
    let message = message.into();
    // Only the parser's messages quote the source, and a build without rules has no parser: the
    // default component keeps its bytes.
    let message = if cfg!(feature = "rules") && message.chars().any(char::is_control) {
        message
            .chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect()
    } else {
        message
    };
    RuleError::Invalid { column, message }
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
    Ok(Rule {
        source: source.to_owned(),
        claims,
        request,
        expression: std::sync::Arc::new(lookups(expression)),
    })
}

/// Turns each field selection `x.f` into the lookup `x['f']`, which the engine evaluates alike on the
/// maps a rule sees (the same value, the same `no such key` error), but without first trying
/// `claims.a.b` as a qualified name: for a selection rooted in a variable the engine joins the
/// segments into a new string and looks up each prefix as a variable and as a type, a quarter of a
/// typical rule's evaluation (profiled). Presence tests (`has(x.f)`) stay selections. Only the words of
/// an error differ, for a field selected from what is not a map (a string, a number): `_[_]` instead
/// of `_._` in the description; either way the rule refuses.
#[cfg(feature = "rules")]
fn lookups(e: cel::IdedExpr) -> cel::IdedExpr {
    use cel::common::ast::{
        CallExpr, ComprehensionExpr, EntryExpr, Expr, ListExpr, LiteralValue, MapEntryExpr,
        MapExpr, operators,
    };
    use cel::common::types::CelString;
    let id = e.id;
    let expr = match e.expr {
        Expr::Select(select) if !select.test => Expr::Call(CallExpr {
            func_name: operators::INDEX.to_owned(),
            target: None,
            args: vec![
                lookups(*select.operand),
                cel::IdedExpr {
                    id,
                    expr: Expr::Literal(LiteralValue::String(CelString::from(select.field))),
                },
            ],
        }),
        Expr::Select(mut select) => {
            select.operand = Box::new(lookups(*select.operand));
            Expr::Select(select)
        }
        Expr::Call(call) => Expr::Call(CallExpr {
            func_name: call.func_name,
            target: call.target.map(|t| Box::new(lookups(*t))),
            args: call.args.into_iter().map(lookups).collect(),
        }),
        Expr::Comprehension(c) => {
            let c = *c;
            Expr::Comprehension(Box::new(ComprehensionExpr {
                iter_range: lookups(c.iter_range),
                iter_var: c.iter_var,
                iter_var2: c.iter_var2,
                accu_var: c.accu_var,
                accu_init: lookups(c.accu_init),
                loop_cond: lookups(c.loop_cond),
                loop_step: lookups(c.loop_step),
                result: lookups(c.result),
            }))
        }
        Expr::List(list) => Expr::List(ListExpr {
            elements: list.elements.into_iter().map(lookups).collect(),
            optional_indices: list.optional_indices,
        }),
        Expr::Map(map) => Expr::Map(MapExpr {
            entries: map
                .entries
                .into_iter()
                .map(|mut entry| {
                    if let EntryExpr::MapEntry(m) = entry.expr {
                        entry.expr = EntryExpr::MapEntry(MapEntryExpr {
                            key: lookups(m.key),
                            value: lookups(m.value),
                            optional: m.optional,
                        });
                    }
                    entry
                })
                .collect(),
        }),
        other => other,
    };
    cel::IdedExpr { id, expr }
}

/// The values a rule sees are built straight into the engine's own representation (`Val`), borrowing
/// every string from the claims and the request: going through `cel::Value` (what
/// `add_variable_from_value` takes) copied each string into an `Arc` and then the whole tree again
/// into `Val`s, which was most of an evaluation's time (profiled: the conversion, `malloc` and `free`
/// were over half of it).
#[cfg(feature = "rules")]
fn evaluate(rule: &Rule, claims: &Claims, request: &Original<'_>) -> Verdict {
    use cel::common::types::{CelBool, CelMap};
    use std::collections::HashMap;
    use std::sync::{Arc, OnceLock};

    // One environment for every evaluation: the standard library, built once.
    static ENV: OnceLock<Arc<cel::Env>> = OnceLock::new();
    let env = ENV.get_or_init(|| Arc::new(cel::Env::stdlib().with_optional_support(false)));
    let mut context = cel::Context::with_env(env.clone());
    if rule.claims.whole {
        let fields: HashMap<_, _> = claims
            .iter()
            .map(|(k, v)| (Key::from(k.as_str()), json(v)))
            .collect();
        context.add_variable_as_val("claims", Box::new(CelMap::from(fields)));
    } else if !rule.claims.fields.is_empty() {
        // Looked up by name: a rule reads a few of a token's claims.
        let mut fields = HashMap::with_capacity(rule.claims.fields.len());
        for (name, value) in rule
            .claims
            .fields
            .iter()
            .filter_map(|f| claims.get_key_value(f))
        {
            fields.insert(Key::from(name.as_str()), json(value));
        }
        context.add_variable_as_val("claims", Box::new(CelMap::from(fields)));
    }
    if rule.request.any() {
        context.add_variable_as_val("request", request_value(request, &rule.request));
    }
    match cel::Value::resolve_val(&rule.expression, &context) {
        Ok(value) => match value.downcast_ref::<CelBool>() {
            Some(b) if *b.inner() => Verdict::Pass,
            Some(_) => Verdict::Fail,
            None => {
                let what = cel::Value::try_from(value.as_ref())
                    .map_or_else(|_| "value".to_owned(), |v| v.type_of().to_string());
                Verdict::Error(format!("the rule gave a {what} where a bool was expected"))
            }
        },
        Err(e) => Verdict::Error(e.to_string()),
    }
}

#[cfg(feature = "rules")]
fn plainly(source: &str, claims: &Claims, request: &Original<'_>) -> Verdict {
    use cel::Value as Cel;
    use cel::objects::{Key, Map};
    use std::sync::Arc;
    fn value(v: &serde_json::Value) -> Cel {
        use serde_json::Value as J;
        match v {
            J::Null => Cel::Null,
            J::Bool(b) => Cel::Bool(*b),
            J::Number(n) => n
                .as_i64()
                .map_or_else(|| Cel::Float(n.as_f64().unwrap_or(f64::NAN)), Cel::Int),
            J::String(s) => Cel::String(Arc::new(s.clone())),
            J::Array(items) => Cel::List(Arc::new(items.iter().map(value).collect())),
            J::Object(m) => object(m.iter().map(|(k, v)| (k.as_str(), value(v)))),
        }
    }
    fn object<'a>(fields: impl Iterator<Item = (&'a str, Cel)>) -> Cel {
        Cel::Map(Map {
            map: Arc::new(
                fields
                    .map(|(k, v)| (Key::String(Arc::new(k.to_owned())), v))
                    .collect(),
            ),
        })
    }
    let env = cel::Env::stdlib().with_optional_support(false);
    let program = match env.compile(source) {
        Ok(program) => program,
        Err(e) => return Verdict::Error(e.to_string()),
    };
    let mut headers: Vec<(&str, Cel)> = Vec::new();
    for name in request.headers.keys() {
        let values: Vec<&str> = request
            .headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        if !values.is_empty() {
            headers.push((name.as_str(), Cel::String(Arc::new(values.join(", ")))));
        }
    }
    let text = |s: &str| Cel::String(Arc::new(s.to_owned()));
    let request = object(
        [
            ("method", text(request.method)),
            ("path", text(request.path)),
            ("host", text(request.host)),
            ("headers", object(headers.into_iter())),
        ]
        .into_iter(),
    );
    let mut context = cel::Context::with_env(Arc::new(env));
    context.add_variable_from_value(
        "claims",
        object(claims.iter().map(|(k, v)| (k.as_str(), value(v)))),
    );
    context.add_variable_from_value("request", request);
    match program.execute(&context) {
        Ok(Cel::Bool(true)) => Verdict::Pass,
        Ok(Cel::Bool(false)) => Verdict::Fail,
        Ok(other) => Verdict::Error(format!("a {}", other.type_of())),
        Err(e) => Verdict::Error(e.to_string()),
    }
}

#[cfg(feature = "rules")]
use cel::common::types::CelMapKey as Key;

/// A value as the engine holds it, borrowing for `'v`.
#[cfg(feature = "rules")]
type Val<'v> = Box<dyn cel::common::value::Val + 'v>;

/// JSON as CEL: numbers that are whole and fit are `int` (so `claims.level == 3` reads as written),
/// others `double`; objects are maps with string keys. Strings are borrowed, not copied.
#[cfg(feature = "rules")]
fn json(value: &serde_json::Value) -> Val<'_> {
    use cel::common::types::{CelBool, CelDouble, CelInt, CelList, CelMap, CelNull, CelString};
    use serde_json::Value as J;
    match value {
        J::Null => Box::new(CelNull),
        J::Bool(b) => Box::new(CelBool::from(*b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => Box::new(CelInt::from(i)),
            None => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        J::String(s) => Box::new(CelString::from(s.as_str())),
        J::Array(items) => Box::new(CelList::from(items.iter().map(json).collect::<Vec<_>>())),
        J::Object(map) => Box::new(CelMap::from(
            map.iter()
                .map(|(k, v)| (Key::from(k.as_str()), json(v)))
                .collect::<std::collections::HashMap<_, _>>(),
        )),
    }
}

#[cfg(feature = "rules")]
fn request_value<'v>(request: &Original<'v>, reads: &Reads) -> Val<'v> {
    use cel::common::types::{CelMap, CelString};
    use std::collections::HashMap;
    let mut fields: HashMap<Key<'v>, Val<'v>> = HashMap::with_capacity(4);
    for (name, value) in [
        ("method", request.method),
        ("path", request.path),
        ("host", request.host),
    ] {
        if reads.wants(name) {
            fields.insert(Key::from(name), Box::new(CelString::from(value)));
        }
    }
    if reads.wants("headers") {
        fields.insert(
            Key::from("headers"),
            Box::new(CelMap::from(headers(request.headers))),
        );
    }
    Box::new(CelMap::from(fields))
}

/// Header names lowercased (as `http` keeps them), repeated values joined with `, ` (RFC 9110 §5.3);
/// values that are not text are left out.
#[cfg(feature = "rules")]
fn headers(headers: &http::HeaderMap) -> std::collections::HashMap<Key<'_>, Val<'_>> {
    use cel::common::types::CelString;
    let mut out = std::collections::HashMap::with_capacity(headers.keys_len());
    for name in headers.keys() {
        let mut values = headers.get_all(name).iter().filter_map(|v| v.to_str().ok());
        let Some(first) = values.next() else {
            continue;
        };
        // One value (the usual case) is borrowed; several are joined into a string of their own.
        let value = match values.next() {
            None => CelString::from(first),
            Some(second) => {
                let mut joined = format!("{first}, {second}");
                for v in values {
                    joined.push_str(", ");
                    joined.push_str(v);
                }
                CelString::from(joined)
            }
        };
        out.insert(Key::from(name.as_str()), Box::new(value) as Val<'_>);
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

#[cfg(all(test, feature = "rules"))]
mod tests {
    use super::{Rule, Verdict};
    use crate::request::Original;
    use serde_json::json;

    // Found by the fuzz target (corpus/rule/multiline-syntax-error): the parser's message quoted a
    // source line break, and a load error is one line.
    #[test]
    fn refusals_of_rules_spanning_lines_are_one_line() {
        for source in [
            "reque\"as(clasWi\n111",
            "claims.sub ==\n'a' &&",
            "request.method ==\n1",
        ] {
            match Rule::compile(source) {
                Err(super::RuleError::Invalid { message, .. }) => {
                    assert!(!message.contains('\n'), "{source:?}: {message:?}")
                }
                other => panic!("{source:?}: {other:?}"),
            }
        }
    }

    // What docs/access.md says of numbers: of different kinds they compare by value (so the checker
    // admits it), but do not add (so the checker refuses what the engine could only fail on).
    #[test]
    fn numbers_of_different_kinds_compare_but_do_not_mix() {
        let headers = http::HeaderMap::new();
        let extensions = http::Extensions::new();
        let request = Original {
            method: "GET",
            path: "/",
            query: None,
            host: "h",
            scheme: None,
            headers: &headers,
            extensions: &extensions,
        };
        let claims = serde_json::Map::new();
        for source in ["1 == 1.0", "1 < 1.5", "2u > 1", "1.0 != 2"] {
            let rule = Rule::compile(source).unwrap();
            assert_eq!(rule.evaluate(&claims, &request), Verdict::Pass, "{source}");
        }
        for source in ["1 + 1.0 == 2.0", "2u * 2 == 4u", "1 - 1u == 0"] {
            assert!(Rule::compile(source).is_err(), "{source}");
            let plain = super::plainly(source, &claims, &request);
            assert!(matches!(plain, Verdict::Error(_)), "{source}: {plain:?}");
        }
    }

    // The evaluation builds only what a rule reads, borrowed, and turns selections into lookups; the
    // engine's plain evaluation of the same source over everything must give the same verdict.
    #[test]
    fn evaluations_agree_with_the_engines_plain_evaluation() {
        let claims = json!({
            "sub": "alice", "level": 3, "ratio": 0.5, "admin": false, "none": null,
            "groups": ["dev", "ops"], "realm_access": {"roles": ["ops"], "n": {"m": 1}},
            "email": "a@example.com", "email_verified": true
        });
        let claims = claims.as_object().unwrap();
        let mut headers = http::HeaderMap::new();
        headers.insert("x-tenant", "t1".parse().unwrap());
        headers.append("accept", "a".parse().unwrap());
        headers.append("accept", "b".parse().unwrap());
        let extensions = http::Extensions::new();
        let request = Original {
            method: "GET",
            path: "/orders/42",
            query: None,
            host: "app.example",
            scheme: None,
            headers: &headers,
            extensions: &extensions,
        };
        let rules = [
            "'ops' in claims.realm_access.roles && claims.email_verified && request.method == 'GET'",
            "claims.realm_access.n.m == 1",
            "claims.realm_access.missing == 1",
            "claims.missing.x == 1",
            "claims.sub.x == 1",
            "claims.groups.x == 'a'",
            "claims.level.x == 1",
            "claims.none.x == 1",
            "has(claims.realm_access.roles) && !has(claims.realm_access.x)",
            "has(claims.sub.x)",
            "has(claims.missing.x)",
            "claims.level > 2 && claims.ratio < 1.0 && !claims.admin",
            "claims.none == null",
            "claims.admin",
            "claims.sub",
            "request.headers.accept == 'a, b' && request.headers['x-tenant'] == 't1'",
            "request.headers.missing == 'x'",
            "request.path.startsWith('/orders') && request.host == 'app.example'",
            "size(claims) == 9 && size(request) == 4",
            "claims.groups.exists(g, g == 'ops') && claims.groups.all(g, size(g) == 3)",
            "claims.groups.map(g, {'n': g}).exists(m, m.n == 'dev')",
            "[{'a': {'b': 1}}][0].a.b == 1",
            "{'a': 1}.b == 1",
            "claims.exists(k, k == 'sub') && 'email' in claims",
            "claims.level + 1 == 4 && claims['realm_access']['roles'][0] == 'ops'",
        ];
        for source in rules {
            let rule = Rule::compile(source).unwrap();
            let ours = rule.evaluate(claims, &request);
            let plain = rule.evaluate_plainly(claims, &request);
            let kind = |v: &Verdict| match v {
                Verdict::Error(_) => Verdict::Error(String::new()),
                other => other.clone(),
            };
            assert_eq!(kind(&ours), kind(&plain), "{source}: {ours:?} vs {plain:?}");
            // A missing key reads the same either way.
            if let (Verdict::Error(a), Verdict::Error(b)) = (&ours, &plain) {
                if b.contains("No such key") || b.contains("no such key") {
                    assert_eq!(a, b, "{source}");
                }
            }
        }
    }
}
