//! The settings table in words: the environment and configuration-file sections of `--help`, and
//! `docs/configuration.md`. Rendered from [`crate::table`] only, so what the help says is what the
//! readers read.

use std::fmt::Write as _;

use crate::table::{Group, Kind, SETTINGS, Setting, Shells};

/// Width of the name column in the help.
const NAME_WIDTH: usize = 27;
/// Lines of the help are wrapped before this column.
const WIDTH: usize = 100;

/// `--help`'s section on environment variables.
pub fn help_environment() -> String {
    let mut out = String::from(
        "ENVIRONMENT (one issuer; with a configuration file, every group but the last is ignored, with a warning)\n",
    );
    for group in Group::ORDER {
        let rows: Vec<&Setting> = SETTINGS
            .iter()
            .filter(|s| s.group == group && s.env.is_some())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "  {}", group.title());
        for row in rows {
            let name = row.var();
            let mut text = row.help.to_owned();
            let range = kind_words(&row.kind);
            if !range.is_empty() {
                let _ = write!(text, " [{range}]");
            }
            if !row.default.is_empty() {
                let _ = write!(text, " (default {})", row.default);
            }
            if row.shells != crate::table::ALL {
                let _ = write!(text, " ({})", shell_words(row.shells));
            }
            wrap_into(&mut out, name, &text);
        }
    }
    out.push_str(
        "  Empty variables count as unset. Booleans accept true/false, 1/0, yes/no, on/off. Lists are\n  \
         comma-separated. An unknown JWT_* variable is reported with the nearest known one.\n",
    );
    out
}

/// `--help`'s section on the TOML file: every table with every key, its default and its help.
pub fn help_file() -> String {
    let mut out = String::from(
        "CONFIGURATION FILE (TOML; unknown keys are errors; relative paths are relative to the file)\n",
    );
    out.push_str(&indent(&toml_sample(), "  "));
    out
}

/// A TOML file with every key: the keys with a default are set to it, the others are comments
/// showing their form.
pub fn toml_sample() -> String {
    let mut out = String::new();
    for (table, header) in [
        ("server", "[server]"),
        (
            "fetch",
            "[fetch]                                  # remote key sets (jwks_uri, discovery)",
        ),
        (
            "issuers[]",
            "[[issuers]]                              # one per issuer; without issuer: the default one",
        ),
        (
            "gateway",
            "[gateway]                                # forward auth (/auth)",
        ),
        (
            "policies.<name>",
            "[policies.admin]                         # served at /policy/admin/auth",
        ),
    ] {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(header);
        out.push('\n');
        for row in SETTINGS.iter().filter(|s| s.toml_table() == Some(table)) {
            let Some(key) = row.toml_key().filter(|k| *k != "<name>") else {
                continue;
            };
            let line = match toml_literal(row) {
                Some(value) => format!("{key} = {value}"),
                None => match row.kind {
                    Kind::Int(_) => format!("# {key} = <{}>", kind_words(&row.kind)),
                    _ => format!("# {key} = {}", toml_form(&row.kind)),
                },
            };
            let _ = writeln!(out, "{line:<40} # {}", first_clause(row.help));
        }
    }
    out
}

/// `docs/configuration.md`.
pub fn markdown() -> String {
    let mut out = format!(
        "# Configuration reference\n\n\
         <!-- Generated from crates/config/src/table.rs: do not edit. Regenerate with\n     \
         `jwt-validator config-reference > docs/configuration.md` (a test compares the two). -->\n\n\
         Every setting, as an environment variable (one issuer) and as a key of the TOML file\n\
         (`--config FILE` or `{}`; any number of issuers). With a file, the variables of every\n\
         group but the last are ignored, with a warning. `issuers[].x` is a key of each `[[issuers]]`\n\
         table; `<NAME>` and `<name>` stand for a named policy (the variable holds the name in upper case,\n\
         `-` as `_`). Empty variables count as unset; booleans accept true/false, 1/0, yes/no, on/off;\n\
         lists are comma-separated in a variable and arrays in the file. An unknown `JWT_*` variable is\n\
         reported at start with the nearest known one; an unknown key in the file stops the start.\n\n\
         Shells: **native** is the `jwt-validator` server, **component** the WebAssembly component\n\
         (environment only), **filter** the proxy-wasm filter (the TOML schema as its plugin\n\
         configuration).\n",
        crate::table::CONFIG.var()
    );
    for group in Group::ORDER {
        let _ = write!(
            out,
            "\n## {}\n\n| variable | TOML | kind | default | shells | meaning |\n| --- | --- | --- | --- | --- | --- |\n",
            group.title()
        );
        for row in SETTINGS.iter().filter(|s| s.group == group) {
            let code = |v: Option<&str>| v.map_or("—".to_owned(), |v| format!("`{v}`"));
            let kind = match (row.kind, kind_words(&row.kind)) {
                (_, k) if k.is_empty() => kind_name(&row.kind).to_owned(),
                (Kind::Choice(_), k) => k,
                (_, k) => format!("{}, {k}", kind_name(&row.kind)),
            };
            let default = match row.default {
                "" => "—".to_owned(),
                d => d.to_owned(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                code(row.env),
                code(row.toml),
                cell(&kind),
                cell(&default),
                shell_words(row.shells),
                cell(row.help)
            );
        }
    }
    out
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Text => "text",
        Kind::Secret => "secret text",
        Kind::Path => "file path",
        Kind::Url => "URL",
        Kind::Address => "host:port",
        Kind::Port => "port",
        Kind::Bool => "boolean",
        Kind::List => "list",
        Kind::Int(_) => "whole number",
        Kind::Fraction => "number",
        Kind::Choice(_) => "one of",
        Kind::Map => "map",
        Kind::Table => "array of tables",
    }
}

/// The range or choices of a kind, "" when it has none worth saying.
fn kind_words(kind: &Kind) -> String {
    match kind {
        Kind::Int(int) if int.max == u64::MAX => format!("{} or more {}", int.min, int.what),
        Kind::Int(int) => {
            let min_means = match int.min_means {
                "" => String::new(),
                m => format!(" ({m})"),
            };
            format!("{}{min_means} to {} {}", int.min, int.max, int.what)
        }
        Kind::Fraction => "0.0 to 1.0".to_owned(),
        Kind::Port => "0 to 65535".to_owned(),
        Kind::Choice(words) => words.join(" | "),
        _ => String::new(),
    }
}

fn shell_words(shells: Shells) -> String {
    let names: Vec<&str> = [
        (shells.native, "native"),
        (shells.component, "component"),
        (shells.filter, "filter"),
    ]
    .into_iter()
    .filter(|(on, _)| *on)
    .map(|(_, name)| name)
    .collect();
    names.join(", ")
}

/// The row's default as a TOML value, when the default is one.
fn toml_literal(row: &Setting) -> Option<String> {
    let default = row.default;
    match row.kind {
        // "5, at most the request timeout": the number is the default.
        Kind::Int(_) => default
            .split(',')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .map(|n| n.to_string()),
        Kind::Fraction => default.parse::<f64>().ok().map(|_| default.to_owned()),
        Kind::Bool => matches!(default, "true" | "false").then(|| default.to_owned()),
        Kind::Address | Kind::Choice(_) if !default.is_empty() => Some(format!("{default:?}")),
        Kind::Text if row.toml == Some("server.realm") => Some(format!("{default:?}")),
        _ => None,
    }
}

/// The form of a value without a default, for a commented-out key.
fn toml_form(kind: &Kind) -> &'static str {
    match kind {
        Kind::List => "[\"…\"]",
        Kind::Map => "{ \"…\" = \"…\" }",
        Kind::Table => "[{ … }]",
        Kind::Bool => "true",
        Kind::Url => "\"https://…\"",
        Kind::Path => "\"file\"",
        _ => "\"…\"",
    }
}

/// The help up to its first `;`, `:` or `(`, cut at a word to fit beside a key.
fn first_clause(help: &str) -> String {
    const ROOM: usize = 56;
    let end = help.find(['(', ';', ':']).unwrap_or(help.len());
    let clause = help[..end].trim_end();
    if clause.chars().count() <= ROOM {
        return clause.to_owned();
    }
    let mut out = String::new();
    for word in clause.split_whitespace() {
        if out.chars().count() + word.chars().count() + 2 > ROOM {
            break;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out.push('…');
    out
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|l| {
            if l.is_empty() {
                "\n".to_owned()
            } else {
                format!("{prefix}{l}\n")
            }
        })
        .collect()
}

/// `  NAME   text…` with the text wrapped under itself.
fn wrap_into(out: &mut String, name: &str, text: &str) {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    let room = WIDTH - 2 - NAME_WIDTH;
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > room {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    let pad = " ".repeat(2 + NAME_WIDTH);
    if name.len() < NAME_WIDTH {
        let _ = write!(out, "  {name:<NAME_WIDTH$}");
    } else {
        let _ = writeln!(out, "  {name}");
        out.push_str(&pad);
    }
    for (i, l) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str(&pad);
        }
        out.push_str(l);
        out.push('\n');
    }
}
