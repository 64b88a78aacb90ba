//! The committed `docs/configuration.md` is the rendering of the settings table: a row added or
//! changed without regenerating the reference fails here.
//!
//! Regenerate with `UPDATE_DOCS=1 cargo test -p jwtv-config --test reference`, or
//! `jwt-validator config-reference > docs/configuration.md`.

#![cfg(feature = "reference")]

use std::path::PathBuf;

#[test]
fn committed_configuration_reference_matches_the_table() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let rendered = jwtv_config::reference::markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &rendered).expect("write docs/configuration.md");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/configuration.md differs from the settings table; regenerate it with \
         `UPDATE_DOCS=1 cargo test -p jwtv-config --test reference` (or \
         `jwt-validator config-reference > docs/configuration.md`)"
    );
}
