//! The static type check of a rule, run when it loads: what can be known without the token.
//!
//! The `cel` crate (0.15) parses and evaluates but has no checker (its overloads carry no result
//! types), so this walks its expanded AST with CEL's own typing where the types are known:
//!
//! - `claims` is `map(string, dyn)`: a claim's type is only known per token, so `claims.x` is `dyn`
//!   and allowed wherever anything is; what it turns out to be is the evaluation's business (an
//!   evaluation error refuses).
//! - `request` has exactly the fields [`REQUEST_FIELDS`]: `request.methd` is refused, and
//!   `request.method` is a `string`, so `request.method == 1` is refused.
//! - Functions take their number of arguments and the types CEL declares for them
//!   (`size(request.method) + "x"` adds an `int` and a `string`: no such overload).
//! - The whole rule must be able to give a `bool`: `1 + 2` or `"x"` is refused, `claims.admin` (`dyn`)
//!   is not.
//!
//! Where a side is `dyn`, anything goes, as in CEL's checker. Numbers of different kinds are
//! compared (`==`, `<`) as the engine compares them, by value; arithmetic needs one kind, as CEL says.
//! Names and functions outside the rule language (see `rule.rs`) are refused before this runs.

use cel::common::ast::{EntryExpr, Expr, IdedExpr, LiteralValue, operators as op};
use std::fmt;

/// The fields of `request`, and their types.
pub const REQUEST_FIELDS: &[(&str, Ty)] = &[
    ("method", Ty::String),
    ("path", Ty::String),
    ("host", Ty::String),
    ("headers", Ty::Headers),
];

/// A type as the checker knows it. `Headers` is `request.headers`, `map(string, string)`, spelled
/// apart so that [`REQUEST_FIELDS`] can be a constant.
#[derive(Clone, Debug, PartialEq)]
pub enum Ty {
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Type,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Headers,
    Request,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Dyn => f.write_str("dyn"),
            Ty::Null => f.write_str("null"),
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Type => f.write_str("type"),
            Ty::List(t) => write!(f, "list({t})"),
            Ty::Map(k, v) => write!(f, "map({k}, {v})"),
            Ty::Headers => f.write_str("map(string, string)"),
            Ty::Request => f.write_str("request"),
        }
    }
}

impl Ty {
    fn list(t: Ty) -> Ty {
        Ty::List(Box::new(t))
    }

    fn map(k: Ty, v: Ty) -> Ty {
        Ty::Map(Box::new(k), Box::new(v))
    }

    /// `request` and its headers are maps with string keys to everything but field selection.
    fn as_map(&self) -> Option<(Ty, Ty)> {
        match self {
            Ty::Map(k, v) => Some(((**k).clone(), (**v).clone())),
            Ty::Headers => Some((Ty::String, Ty::String)),
            Ty::Request => Some((Ty::String, Ty::Dyn)),
            _ => None,
        }
    }

    fn is_number(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// Whether a value of this type may turn out to be a `bool`.
    pub fn can_be_bool(&self) -> bool {
        matches!(self, Ty::Bool | Ty::Dyn)
    }
}

/// The least type of two: equal types stay, lists and maps join by element, anything else is `dyn`.
fn join(a: &Ty, b: &Ty) -> Ty {
    match (a, b) {
        _ if a == b => a.clone(),
        (Ty::List(x), Ty::List(y)) => Ty::list(join(x, y)),
        (Ty::Map(k1, v1), Ty::Map(k2, v2)) => Ty::map(join(k1, k2), join(v1, v2)),
        _ => Ty::Dyn,
    }
}

/// Whether `==` between these types can be true: CEL compares numbers of any kind by value, `null`
/// with anything, and otherwise only values of one type.
fn comparable(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Dyn, _) | (_, Ty::Dyn) | (Ty::Null, _) | (_, Ty::Null) => true,
        _ if a.is_number() && b.is_number() => true,
        (Ty::List(x), Ty::List(y)) => comparable(x, y),
        _ => match (a.as_map(), b.as_map()) {
            (Some((k1, v1)), Some((k2, v2))) => comparable(&k1, &k2) && comparable(&v1, &v2),
            _ => std::mem::discriminant(a) == std::mem::discriminant(b),
        },
    }
}

/// A refusal: the node it is about, and what is wrong.
pub type Refusal = (u64, String);

/// Checks `expr` and gives its type. Names and bounds are already checked (`rule.rs`), so an unknown
/// name here is a comprehension variable out of scope, refused all the same.
pub fn check(expr: &IdedExpr) -> Result<Ty, Refusal> {
    Checker { scope: Vec::new() }.check(expr)
}

struct Checker<'a> {
    scope: Vec<(&'a str, Ty)>,
}

fn refuse<T>(e: &IdedExpr, message: impl Into<String>) -> Result<T, Refusal> {
    // Messages say "a {type}"; English wants "an int".
    let message = message.into();
    let message = match message.strip_prefix("a int") {
        Some(rest) => format!("an int{rest}"),
        None => message,
    };
    Err((e.id, message.replace(" a int", " an int")))
}

/// How an operator reads in a message.
fn symbol(name: &str) -> &str {
    match name {
        op::ADD => "+",
        op::SUBSTRACT => "-",
        op::MULTIPLY => "*",
        op::DIVIDE => "/",
        op::MODULO => "%",
        op::EQUALS => "==",
        op::NOT_EQUALS => "!=",
        op::LESS => "<",
        op::LESS_EQUALS => "<=",
        op::GREATER => ">",
        op::GREATER_EQUALS => ">=",
        op::LOGICAL_AND => "&&",
        op::LOGICAL_OR => "||",
        op::LOGICAL_NOT => "!",
        op::NEGATE => "-",
        op::IN => "in",
        op::CONDITIONAL => "?:",
        op::INDEX => "[]",
        other => other,
    }
}

/// Type names a rule may use as values (`type(x) == string`).
const TYPE_NAMES: &[&str] = &[
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

impl<'a> Checker<'a> {
    fn check(&mut self, e: &'a IdedExpr) -> Result<Ty, Refusal> {
        match &e.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::Ident(name) => {
                if let Some((_, t)) = self.scope.iter().rev().find(|(n, _)| n == name) {
                    return Ok(t.clone());
                }
                match name.as_str() {
                    "claims" => Ok(Ty::map(Ty::String, Ty::Dyn)),
                    "request" => Ok(Ty::Request),
                    n if TYPE_NAMES.contains(&n) => Ok(Ty::Type),
                    n => refuse(e, format!("unknown name {n:?}")),
                }
            }
            Expr::List(list) => {
                let mut element: Option<Ty> = None;
                for item in &list.elements {
                    let t = self.check(item)?;
                    element = Some(element.map_or(t.clone(), |s| join(&s, &t)));
                }
                Ok(Ty::list(element.unwrap_or(Ty::Dyn)))
            }
            Expr::Map(map) => {
                let (mut key, mut value): (Option<Ty>, Option<Ty>) = (None, None);
                for entry in &map.entries {
                    let EntryExpr::MapEntry(m) = &entry.expr else {
                        return refuse(e, "a rule cannot build messages");
                    };
                    let k = self.check(&m.key)?;
                    if !matches!(k, Ty::Dyn | Ty::String | Ty::Int | Ty::Uint | Ty::Bool) {
                        return refuse(&m.key, format!("a map key cannot be a {k}"));
                    }
                    let v = self.check(&m.value)?;
                    key = Some(key.map_or(k.clone(), |s| join(&s, &k)));
                    value = Some(value.map_or(v.clone(), |s| join(&s, &v)));
                }
                Ok(Ty::map(key.unwrap_or(Ty::Dyn), value.unwrap_or(Ty::Dyn)))
            }
            Expr::Select(select) => {
                let operand = self.check(&select.operand)?;
                let field = select.field.as_str();
                let t = match &operand {
                    Ty::Dyn => Ty::Dyn,
                    Ty::Request => match REQUEST_FIELDS.iter().find(|(n, _)| *n == field) {
                        Some((_, t)) => t.clone(),
                        None => {
                            let known: Vec<&str> = REQUEST_FIELDS.iter().map(|(n, _)| *n).collect();
                            return refuse(
                                e,
                                format!(
                                    "`request` has no field {field:?} (it has {})",
                                    known.join(", ")
                                ),
                            );
                        }
                    },
                    other => match other.as_map() {
                        Some((Ty::String | Ty::Dyn, v)) => v,
                        Some((k, _)) => {
                            return refuse(e, format!(".{field} on a map whose keys are {k}"));
                        }
                        None => {
                            return refuse(
                                e,
                                format!(".{field} on a {other}, which has no fields"),
                            );
                        }
                    },
                };
                Ok(if select.test { Ty::Bool } else { t })
            }
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range)?;
                let (first, second) = match &range {
                    Ty::Dyn => (Ty::Dyn, Ty::Dyn),
                    Ty::List(t) => match c.iter_var2 {
                        Some(_) => (Ty::Int, (**t).clone()),
                        None => ((**t).clone(), Ty::Dyn),
                    },
                    other => match other.as_map() {
                        Some((k, v)) => (k, v),
                        None => {
                            return refuse(
                                e,
                                format!("a {other} cannot be iterated: only lists and maps"),
                            );
                        }
                    },
                };
                let init = self.check(&c.accu_init)?;
                let before = self.scope.len();
                self.scope.push((&c.iter_var, first));
                if let Some(v) = &c.iter_var2 {
                    self.scope.push((v, second));
                }
                self.scope.push((&c.accu_var, init.clone()));
                let condition = self.check(&c.loop_cond)?;
                if !condition.can_be_bool() {
                    return refuse(
                        &c.loop_cond,
                        format!("a {condition} where a bool is needed"),
                    );
                }
                let step = self.check(&c.loop_step)?;
                let accu = join(&init, &step);
                if let Some(last) = self.scope.last_mut() {
                    last.1 = accu;
                }
                let result = self.check(&c.result)?;
                self.scope.truncate(before);
                Ok(result)
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                let target = match &call.target {
                    Some(t) => Some(self.check(t)?),
                    None => None,
                };
                let mut args = Vec::with_capacity(call.args.len());
                for arg in &call.args {
                    args.push(self.check(arg)?);
                }
                match target {
                    Some(target) => method(e, name, &target, &args),
                    None => function(e, name, &args),
                }
            }
            Expr::Struct(_) => refuse(e, "a rule cannot build messages"),
            Expr::Unspecified => refuse(e, "incomplete expression"),
        }
    }
}

fn arity(e: &IdedExpr, name: &str, args: &[Ty], wanted: usize) -> Result<(), Refusal> {
    if args.len() == wanted {
        return Ok(());
    }
    let plural = if wanted == 1 { "" } else { "s" };
    refuse(
        e,
        format!("{name} takes {wanted} argument{plural}, not {}", args.len()),
    )
}

/// `target.name(args)`.
fn method(e: &IdedExpr, name: &str, target: &Ty, args: &[Ty]) -> Result<Ty, Refusal> {
    match name {
        "size" => {
            arity(e, "size()", args, 0)?;
            sized(e, target)?;
            Ok(Ty::Int)
        }
        "contains" | "startsWith" | "endsWith" => {
            arity(e, &format!("{name}()"), args, 1)?;
            for t in [target, &args[0]] {
                if !matches!(t, Ty::String | Ty::Dyn) {
                    return refuse(e, format!("{name}() works on strings, not on a {t}"));
                }
            }
            Ok(Ty::Bool)
        }
        _ => refuse(
            e,
            format!("{name}() is a function, not a method: write {name}(x)"),
        ),
    }
}

fn sized(e: &IdedExpr, t: &Ty) -> Result<(), Refusal> {
    match t {
        Ty::Dyn | Ty::String | Ty::Bytes | Ty::List(_) => Ok(()),
        _ if t.as_map().is_some() => Ok(()),
        _ => refuse(e, format!("size() of a {t}, which has no size")),
    }
}

/// `name(args)`, operators included.
fn function(e: &IdedExpr, name: &str, args: &[Ty]) -> Result<Ty, Refusal> {
    let bools = |args: &[Ty]| -> Result<Ty, Refusal> {
        for t in args {
            if !t.can_be_bool() {
                return refuse(e, format!("`{}` needs bools, not a {t}", symbol(name)));
            }
        }
        Ok(Ty::Bool)
    };
    let two = |args: &[Ty]| -> Result<(Ty, Ty), Refusal> {
        match args {
            [a, b] => Ok((a.clone(), b.clone())),
            _ => refuse(e, format!("`{}` takes two operands", symbol(name))),
        }
    };
    match name {
        op::LOGICAL_AND | op::LOGICAL_OR | op::LOGICAL_NOT | op::NOT_STRICTLY_FALSE => bools(args),
        op::CONDITIONAL => match args {
            [c, a, b] => {
                if !c.can_be_bool() {
                    return refuse(e, format!("the condition of `?:` is a {c}, not a bool"));
                }
                Ok(join(a, b))
            }
            _ => refuse(e, "`?:` takes three operands"),
        },
        op::NEGATE => match args {
            [t @ (Ty::Int | Ty::Double | Ty::Dyn)] => Ok(t.clone()),
            [t] => refuse(e, format!("`-` cannot negate a {t}")),
            _ => refuse(e, "`-` takes one operand"),
        },
        op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO => {
            let (a, b) = two(args)?;
            let accepts = |t: &Ty| match name {
                op::ADD => matches!(
                    t,
                    Ty::Dyn
                        | Ty::Int
                        | Ty::Uint
                        | Ty::Double
                        | Ty::String
                        | Ty::Bytes
                        | Ty::List(_)
                ),
                op::MODULO => matches!(t, Ty::Dyn | Ty::Int | Ty::Uint),
                _ => matches!(t, Ty::Dyn | Ty::Int | Ty::Uint | Ty::Double),
            };
            for t in [&a, &b] {
                if !accepts(t) {
                    return refuse(e, format!("`{}` does not apply to a {t}", symbol(name)));
                }
            }
            match (&a, &b) {
                (Ty::Dyn, t) | (t, Ty::Dyn) => Ok(t.clone()),
                (Ty::List(x), Ty::List(y)) => Ok(Ty::list(join(x, y))),
                _ if a == b => Ok(a),
                _ => refuse(
                    e,
                    format!(
                        "`{}` between a {a} and a {b}: CEL has no such overload",
                        symbol(name)
                    ),
                ),
            }
        }
        op::EQUALS | op::NOT_EQUALS => {
            let (a, b) = two(args)?;
            if !comparable(&a, &b) {
                return refuse(
                    e,
                    format!(
                        "`{}` compares a {a} with a {b}, which can never be equal",
                        symbol(name)
                    ),
                );
            }
            Ok(Ty::Bool)
        }
        op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS => {
            let (a, b) = two(args)?;
            let ordered = |t: &Ty| {
                matches!(
                    t,
                    Ty::Dyn | Ty::Int | Ty::Uint | Ty::Double | Ty::String | Ty::Bytes | Ty::Bool
                )
            };
            let fits = match (&a, &b) {
                (Ty::Dyn, _) | (_, Ty::Dyn) => true,
                _ if a.is_number() && b.is_number() => true,
                _ => a == b,
            };
            if !ordered(&a) || !ordered(&b) || !fits {
                return refuse(
                    e,
                    format!("`{}` cannot order a {a} and a {b}", symbol(name)),
                );
            }
            Ok(Ty::Bool)
        }
        op::IN => {
            let (item, container) = two(args)?;
            let element = match &container {
                Ty::Dyn => Ty::Dyn,
                Ty::List(t) => (**t).clone(),
                other => match other.as_map() {
                    Some((k, _)) => k,
                    None => {
                        return refuse(
                            e,
                            format!("`in` needs a list or a map on its right, not a {other}"),
                        );
                    }
                },
            };
            if !comparable(&item, &element) {
                return refuse(
                    e,
                    format!("`in` looks for a {item} among {element}s: never found"),
                );
            }
            Ok(Ty::Bool)
        }
        op::INDEX => {
            let (container, index) = two(args)?;
            match &container {
                Ty::Dyn => Ok(Ty::Dyn),
                Ty::List(t) => match index {
                    Ty::Int | Ty::Uint | Ty::Dyn => Ok((**t).clone()),
                    other => refuse(e, format!("a list index is an int, not a {other}")),
                },
                other => match other.as_map() {
                    Some((k, v)) => {
                        if !comparable(&index, &k) {
                            return refuse(e, format!("a {index} key in a map whose keys are {k}"));
                        }
                        Ok(v)
                    }
                    None => refuse(e, format!("a {other} cannot be indexed")),
                },
            }
        }
        "size" => {
            arity(e, "size()", args, 1)?;
            sized(e, &args[0])?;
            Ok(Ty::Int)
        }
        "contains" | "startsWith" | "endsWith" => {
            refuse(e, format!("{name}() is a method: write x.{name}(y)"))
        }
        "dyn" => {
            arity(e, "dyn()", args, 1)?;
            Ok(Ty::Dyn)
        }
        "type" => {
            arity(e, "type()", args, 1)?;
            Ok(Ty::Type)
        }
        "int" | "uint" | "double" | "string" | "bool" | "bytes" => {
            arity(e, &format!("{name}()"), args, 1)?;
            let (to, from): (Ty, &[Ty]) = match name {
                "int" => (Ty::Int, &[Ty::Int, Ty::Uint, Ty::Double, Ty::String]),
                "uint" => (Ty::Uint, &[Ty::Int, Ty::Uint, Ty::Double, Ty::String]),
                "double" => (Ty::Double, &[Ty::Int, Ty::Uint, Ty::Double, Ty::String]),
                "string" => (
                    Ty::String,
                    &[
                        Ty::String,
                        Ty::Bool,
                        Ty::Int,
                        Ty::Uint,
                        Ty::Double,
                        Ty::Bytes,
                    ],
                ),
                "bool" => (Ty::Bool, &[Ty::Bool, Ty::String]),
                _ => (Ty::Bytes, &[Ty::Bytes, Ty::String]),
            };
            if args[0] != Ty::Dyn && !from.contains(&args[0]) {
                return refuse(e, format!("{name}() cannot convert a {}", args[0]));
            }
            Ok(to)
        }
        other => refuse(e, format!("unknown function {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use crate::rule::{Rule, RuleError};

    fn refused(rule: &str) -> (usize, String) {
        match Rule::compile(rule) {
            Err(RuleError::Invalid { column, message }) => (column, message),
            other => panic!("{rule}: expected a refusal, got {other:?}"),
        }
    }

    /// Each case: the rule, the column named, and a piece of the message. Every one parses and names
    /// only `claims` and `request`, so only the type check refuses it.
    fn assert_refused(cases: &[(&str, usize, &str)]) {
        for (rule, column, words) in cases {
            let (c, message) = refused(rule);
            assert!(message.contains(words), "{rule}: {message:?}");
            assert_eq!(c, *column, "{rule}: {message}");
        }
    }

    #[test]
    fn rules_that_cannot_give_a_bool_are_refused() {
        assert_refused(&[
            ("1 + 2", 1, "gives an int, where a bool"),
            ("\"x\"", 1, "gives a string"),
            ("request.method", 1, "gives a string"),
            ("size(claims)", 1, "gives an int"),
            ("claims.groups.map(g, g)", 1, "gives a list(dyn)"),
            ("[true]", 1, "gives a list(bool)"),
        ]);
    }

    #[test]
    fn unknown_request_fields_are_refused() {
        assert_refused(&[
            (
                "request.methd == 'GET'",
                8,
                "`request` has no field \"methd\"",
            ),
            (
                "has(request.query)",
                4,
                "no field \"query\" (it has method, path, host, headers)",
            ),
            (
                "request.method.x == 'a'",
                15,
                ".x on a string, which has no fields",
            ),
            ("request.headers.x.y == 'a'", 18, ".y on a string"),
        ]);
    }

    #[test]
    fn operands_of_known_mismatched_types_are_refused() {
        assert_refused(&[
            ("request.method == 1", 16, "compares a string with an int"),
            ("request.path != true", 14, "compares a string with a bool"),
            (
                "size(request.method) + \"x\" == 'a'",
                22,
                "`+` between an int and a string",
            ),
            ("request.method < 3", 16, "cannot order a string and an int"),
            (
                "request.headers == ['a']",
                17,
                "compares a map(string, string) with a list(string)",
            ),
            ("-request.path == 'a'", 1, "cannot negate a string"),
            (
                "request.path * 2 == 'a'",
                14,
                "`*` does not apply to a string",
            ),
            ("1.5 % 2.0 == 1.0", 5, "`%` does not apply to a double"),
            ("!request.path", 1, "`!` needs bools, not a string"),
            ("request.path && true", 14, "`&&` needs bools, not a string"),
            (
                "(request.path ? true : false)",
                15,
                "condition of `?:` is a string",
            ),
        ]);
    }

    #[test]
    fn containers_of_the_wrong_kind_are_refused() {
        assert_refused(&[
            (
                "'a' in request.method",
                5,
                "`in` needs a list or a map on its right, not a string",
            ),
            ("1 in ['a', 'b']", 3, "looks for an int among strings"),
            ("request.method[0] == 'G'", 15, "a string cannot be indexed"),
            (
                "['a'][request.path] == 'a'",
                6,
                "a list index is an int, not a string",
            ),
            (
                "request.headers[1] == 'a'",
                16,
                "an int key in a map whose keys are string",
            ),
            (
                "request.method.all(c, c == 'G')",
                19,
                "a string cannot be iterated",
            ),
            ("{1.5: true}[1.5]", 2, "a map key cannot be a double"),
        ]);
    }

    #[test]
    fn functions_with_wrong_arity_or_argument_types_are_refused() {
        assert_refused(&[
            ("size(claims, 1) == 1", 5, "size() takes 1 argument, not 2"),
            ("size(1) == 1", 5, "size() of an int, which has no size"),
            (
                "request.path.size(1) == 1",
                18,
                "size() takes 0 arguments, not 1",
            ),
            (
                "request.path.startsWith()",
                24,
                "startsWith() takes 1 argument, not 0",
            ),
            (
                "request.path.startsWith('a', 'b')",
                24,
                "takes 1 argument, not 2",
            ),
            (
                "request.headers.contains('a')",
                25,
                "contains() works on strings, not on a map",
            ),
            (
                "request.path.endsWith(1)",
                22,
                "endsWith() works on strings, not on an int",
            ),
            (
                "startsWith(claims.sub, 'a')",
                11,
                "startsWith() is a method: write x.startsWith(y)",
            ),
            (
                "claims.sub.int() == 1",
                15,
                "int() is a function, not a method",
            ),
            ("bool(1)", 5, "bool() cannot convert an int"),
            (
                "int(request.headers) == 1",
                4,
                "int() cannot convert a map(string, string)",
            ),
            ("int(1, 2) == 1", 4, "int() takes 1 argument, not 2"),
            ("claims.groups.all(g, 1)", 18, "needs bools, not an int"),
            (
                "claims.sub.matches('^a')",
                19,
                "matches() needs regular expressions",
            ),
        ]);
    }

    // `claims` is map(string, dyn): a claim's type is the token's business, so every use of one loads
    // (and a wrong one is an evaluation error, a refusal at request time).
    #[test]
    fn rules_over_dynamic_claims_load() {
        for rule in [
            "claims.admin",
            "claims.level + 1 > 2",
            "claims.sub == 1",
            "claims.x[0]",
            "claims.a.b.c",
            "dyn(request.method) == 1",
            "1 == 1.0 && 2u < 3 && 1.5 > 1",
            "type(claims.sub) == string",
            "request.headers['x-tenant'] in ['a', 'b'] && 'x-tenant' in request.headers",
            "size(request) == 4 && request.all(k, size(k) > 0)",
            "claims.groups.exists_one(g, g == 'a') || claims.groups.filter(g, g == 'a').size() == 1",
            "claims.groups.map(g, size(g)).all(n, n > 0)",
            "{'a': 1}['a'] == 1 && [1, 2] + [3] == [1, 2, 3] && b'a' + b'b' == b'ab'",
            "string(claims.level) + 'x' == '3x' && int('3') == 3 && double(1) == 1.0",
            "request.method == null || !(request.path.startsWith('/a') ? false : true)",
        ] {
            if let Err(e) = Rule::compile(rule) {
                panic!("{rule}: {e}");
            }
        }
    }

    /// The rule examples the docs give: every line of a ```cel block and every `rule = "…"`.
    fn documented_rules(doc: &str) -> Vec<String> {
        let mut rules = Vec::new();
        let mut in_cel = false;
        for line in doc.lines() {
            if line.trim() == "```cel" {
                in_cel = true;
            } else if line.trim().starts_with("```") {
                in_cel = false;
            } else if in_cel && !line.trim().is_empty() {
                rules.push(line.trim().to_owned());
            }
            for (i, _) in line.match_indices("rule = \"") {
                let rest = &line[i + "rule = \"".len()..];
                if let Some(end) = rest.find('"') {
                    rules.push(rest[..end].to_owned());
                }
            }
        }
        rules
    }

    #[test]
    fn every_documented_rule_loads() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/");
        let mut count = 0;
        for page in ["access.md", "identity-providers.md"] {
            let doc = std::fs::read_to_string(format!("{root}{page}")).unwrap();
            for rule in documented_rules(&doc) {
                if let Err(e) = Rule::compile(&rule) {
                    panic!("{page}: {rule}: {e}");
                }
                count += 1;
            }
        }
        assert!(count >= 8, "only {count} documented rules found");
    }
}
