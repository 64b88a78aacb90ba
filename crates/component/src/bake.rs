//! The component's pre-initialisation export, `wizer-initialize`, which `scripts/bake` has
//! `wasmtime wizer` call once: it reads the configuration and prepares the keys, and wizer snapshots
//! the instance's memory into a new component whose instances start configured (no environment, no
//! key files, no key import at each instantiation: what a host that instantiates per request pays).
//!
//! Nothing is written to stderr while baking unless the bake fails: a stream opened then would be a
//! stale handle in every baked instance. Configuration warnings are kept and printed by each instance
//! at its first request instead, as an unbaked instance prints them at its load.

wit_bindgen::generate!({
    inline: "package jwtv:bake; world bake { export wizer-initialize: func(); }",
});

struct Bake;

export!(Bake);

impl Guest for Bake {
    fn wizer_initialize() {
        if let Err(line) = crate::setup::bake() {
            // The bake fails here, so this stream never reaches a snapshot; the trap makes wizer
            // exit non-zero, and scripts/bake shows this line alone.
            eprintln!("jwt-validator: cannot bake: {line}");
            core::arch::wasm32::unreachable();
        }
    }
}
