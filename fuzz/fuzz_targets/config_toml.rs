//! The TOML front end of `config::load`: any file named by `JWT_CONFIG`, and any content for the key
//! files and secret variables it names (from memory, never the disk). A bad configuration is one line,
//! never a panic.
//!
//! An input is the TOML text, then a NUL, then what every other file and every variable holds.
#![no_main]

use jwtv_config as config;
use jwtv_fuzz::split_once;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const CONFIG: &str = "/etc/jwtv/config.toml";

fuzz_target!(|data: &[u8]| {
    let (toml, other) = split_once(data, 0);
    let var = |name: &str| match name {
        "JWT_CONFIG" => Some(CONFIG.to_owned()),
        _ => std::str::from_utf8(other).ok().map(str::to_owned),
    };
    let read = |path: &Path| {
        Ok(if path == Path::new(CONFIG) {
            toml
        } else {
            other
        }
        .to_vec())
    };
    if let Err(e) = config::load(&var, &read) {
        assert!(!e.to_string().contains('\n'), "a multi-line error: {e}");
    }
});
