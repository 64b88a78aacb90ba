//! The settings table against the readers: every row is read where the table says, with the default
//! the table states, and unknown names are reported.

#[cfg(feature = "reference")]
use super::reference;
use super::table::{Kind, SETTINGS};
use super::tests::Fixture;
use super::{ServerSettings, load_checked};

const SECRET: &str = "0123456789abcdef0123456789abcdef-and-a-bit";

fn warnings_for(names: &[&str]) -> Vec<String> {
    let env = |name: &str| (name == "JWT_SECRET").then(|| SECRET.to_owned());
    let read = |_: &std::path::Path| Err(std::io::Error::from_raw_os_error(2));
    load_checked(&env, names.iter().copied(), &read)
        .expect("loads")
        .warnings
}

#[test]
fn unknown_jwt_variable_warns_naming_the_nearest_known_one() {
    let warnings = warnings_for(&["JWT_SECRET", "JWT_AUDIENCES", "PATH"]);
    assert_eq!(
        warnings,
        ["JWT_AUDIENCES is not a setting and is ignored: did you mean JWT_AUDIENCE?"]
    );
    let warnings = warnings_for(&["JWT_JWKS_REFETCH_COOLDWN"]);
    assert_eq!(
        warnings,
        [
            "JWT_JWKS_REFETCH_COOLDWN is not a setting and is ignored: did you mean JWT_JWKS_REFETCH_COOLDOWN?"
        ]
    );
}

#[test]
fn unknown_jwt_variable_far_from_every_setting_still_warns() {
    let warnings = warnings_for(&["JWT_TOKEN_SOURCES_FOR_EVERY_ROUTE"]);
    assert_eq!(
        warnings,
        ["JWT_TOKEN_SOURCES_FOR_EVERY_ROUTE is not a setting and is ignored"]
    );
}

#[test]
fn known_and_per_policy_variables_are_not_reported() {
    let known: Vec<&str> = SETTINGS
        .iter()
        .filter_map(|s| s.env)
        .filter(|v| !v.contains('<'))
        .collect();
    let mut names = known.clone();
    names.extend(["JWT_POLICY_ADMIN_SCOPES", "JWT_POLICY_READ_ONLY_CLAIMS"]);
    assert!(
        warnings_for(&names).is_empty(),
        "{:?}",
        warnings_for(&names)
    );
}

/// `secret_env` may name any variable, `JWT_*` included: one the file reads is not unknown.
#[test]
fn variable_a_file_reads_by_name_is_not_reported() {
    let toml = "[[issuers]]\nsecret_env = \"JWT_FILTER_SECRET\"\n";
    let env = |name: &str| match name {
        "JWT_CONFIG" => Some("/etc/jwtv/jwtv.toml".to_owned()),
        "JWT_FILTER_SECRET" => Some(SECRET.to_owned()),
        _ => None,
    };
    let read = |_: &std::path::Path| Ok(toml.as_bytes().to_vec());
    let names = ["JWT_CONFIG", "JWT_FILTER_SECRET", "JWT_FILTER_SECRETS"];
    let loaded = load_checked(&env, names, &read).expect("loads");
    let about = |name: &str| {
        loaded
            .warnings
            .iter()
            .filter(|w| w.starts_with(&format!("{name} is not a setting")))
            .count()
    };
    assert_eq!(
        (about("JWT_FILTER_SECRET"), about("JWT_FILTER_SECRETS")),
        (0, 1),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn unknown_toml_key_stays_an_error_listing_the_known_ones() {
    let e = Fixture::new()
        .config("[server]\nlisten_addr = \"127.0.0.1:1\"\n[[issuers]]\nsecret = \"x\"\n")
        .err();
    assert!(
        e.starts_with("/etc/jwtv/jwtv.toml:2:1: unknown field `listen_addr`, expected one of"),
        "{e}"
    );
    assert!(e.contains("`listen`"), "{e}");
}

/// The file sample in `--help` sets every key that has a default to it: loading it must give the
/// defaults, so a table default that drifted from the code's, or a TOML path the file reader does
/// not know, fails here.
#[cfg(feature = "reference")]
#[test]
fn file_sample_of_the_help_loads_as_the_defaults() {
    let sample = reference::toml_sample();
    let server_and_fetch = sample
        .split("[[issuers]]")
        .next()
        .expect("the sample starts with [server] and [fetch]");
    let toml = format!("{server_and_fetch}\n[[issuers]]\nsecret = \"{SECRET}\"\n");
    let from_file = Fixture::new().config(&toml).ok();
    let from_nothing = Fixture::new().env("JWT_SECRET", SECRET).ok();
    assert_eq!(from_file.server, from_nothing.server);
    assert_eq!(from_file.server, ServerSettings::default());
    assert_eq!(from_file.options, from_nothing.options);
    assert_eq!(
        from_file.verifier.limits().max_json_depth,
        from_nothing.verifier.limits().max_json_depth
    );
}

/// Every whole-number variable set to the default the table states loads as if it were unset.
#[test]
fn stated_defaults_of_variables_are_the_real_ones() {
    let unset = Fixture::new().env("JWT_SECRET", SECRET).ok();
    for row in SETTINGS {
        let (Some(var), Kind::Int(_)) = (row.env, row.kind) else {
            continue;
        };
        let Some(default) = row
            .default
            .split(',')
            .next()
            .and_then(|d| d.parse::<u64>().ok())
        else {
            continue;
        };
        let set = Fixture::new()
            .env("JWT_SECRET", SECRET)
            .env(var, &default.to_string())
            .ok();
        assert_eq!(set.server, unset.server, "{var}={default}");
        assert_eq!(set.options, unset.options, "{var}={default}");
        assert_eq!(
            set.verifier.policies()[0].leeway_secs,
            unset.verifier.policies()[0].leeway_secs,
            "{var}={default}"
        );
        assert_eq!(
            set.verifier.limits().max_token_bytes,
            unset.verifier.limits().max_token_bytes,
            "{var}={default}"
        );
    }
}

/// A range check takes its bounds from the row, and the message says them, for a variable and a
/// file key alike.
#[test]
fn out_of_range_values_are_refused_with_the_rows_range() {
    let e = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_FETCH_TIMEOUT", "121")
        .err();
    assert_eq!(
        e,
        "JWT_FETCH_TIMEOUT: 121 is out of range: use 1 to 120 seconds"
    );
    let e = Fixture::new()
        .config("[fetch]\ntimeout_secs = 121\n[[issuers]]\njwks_uri = \"https://a/k\"\n")
        .err();
    assert_eq!(
        e,
        "/etc/jwtv/jwtv.toml: fetch.timeout_secs: 121 is out of range: use 1 to 120 seconds"
    );
}

#[cfg(feature = "reference")]
#[test]
fn every_row_is_documented_where_it_can_be_set() {
    let help = format!(
        "{}{}",
        reference::help_environment(),
        reference::help_file()
    );
    let doc = reference::markdown();
    for row in SETTINGS {
        if let Some(var) = row.env {
            assert!(help.contains(var) && doc.contains(var), "{var}");
        }
        if let Some(key) = row.toml_key().filter(|k| *k != "<name>") {
            assert!(help.contains(&format!("{key} = ")), "{key}");
        }
        assert!(row.env.is_some() || row.toml.is_some(), "{row:?}");
    }
}

/// Added as one row (issue 22's measure of a setting's cost): the component, which has no file,
/// can bound JSON nesting too.
#[test]
fn json_depth_variable_bounds_nesting_and_names_its_range() {
    let loaded = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_MAX_JSON_DEPTH", "4")
        .ok();
    assert_eq!(loaded.verifier.limits().max_json_depth, 4);
    let e = Fixture::new()
        .env("JWT_SECRET", SECRET)
        .env("JWT_MAX_JSON_DEPTH", "129")
        .err();
    assert_eq!(e, "JWT_MAX_JSON_DEPTH: 129 is out of range: use 1 to 128");
}

/// The tables the file reader still reads through serde (`[[issuers]]`, `[gateway]`,
/// `[policies.NAME]`) accept exactly the keys the table lists for them: serde's unknown-field
/// message lists the keys it knows, and the table must list the same ones.
#[test]
fn serde_read_tables_know_exactly_the_tables_keys() {
    for (table_name, header) in [
        ("issuers[]", "[[issuers]]"),
        ("gateway", "[gateway]"),
        ("policies.<name>", "[policies.admin]"),
    ] {
        let e = Fixture::new()
            .config(&format!("{header}\nno_such_key = 1\n"))
            .err();
        // serde says "expected `a` or `b`" for two keys, "expected one of `a`, `b`, `c`" for more.
        let (_, expected) = e
            .split_once("expected ")
            .unwrap_or_else(|| panic!("{table_name}: {e}"));
        let expected = expected.trim_start_matches("one of ");
        let mut known: Vec<&str> = expected
            .split(", ")
            .flat_map(|k| k.split(" or "))
            .map(|k| k.trim_matches('`'))
            .collect();
        known.sort_unstable();
        let mut rows: Vec<&str> = SETTINGS
            .iter()
            .filter(|row| row.toml_table() == Some(table_name))
            .filter_map(|row| row.toml_key())
            .collect();
        rows.sort_unstable();
        assert_eq!(rows, known, "{table_name}");
    }
}
