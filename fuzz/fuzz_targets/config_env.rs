//! The environment front end of `config::load`: any set of `JWT_*` variables, and any content for the
//! files they name (read from memory, never the disk). A bad configuration is one line, never a panic.
//!
//! An input is `NAME=value` lines, then a NUL, then what every named file holds.
#![no_main]

use jwtv_config as config;
use jwtv_fuzz::split_once;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;

fuzz_target!(|data: &[u8]| {
    let (vars, file) = split_once(data, 0);
    let Ok(vars) = std::str::from_utf8(vars) else {
        return;
    };
    let env: HashMap<&str, &str> = vars.lines().filter_map(|l| l.split_once('=')).collect();
    let var = |name: &str| env.get(name).map(|v| (*v).to_owned());
    let read = |_: &std::path::Path| Ok(file.to_vec());
    if let Err(e) = config::load(&var, &read) {
        assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
    }
});
