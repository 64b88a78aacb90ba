//! jwt-validator as a portable WebAssembly component: exports `wasi:http/incoming-handler` (WASI 0.2),
//! so it runs unchanged under `wasmtime serve`, Spin and any other wasi:http host; built with
//! `--features p3`, it exports WASI 0.3's `wasi:http/handler` instead (`wasmtime serve -Sp3`).
//!
//! It only moves bytes: reads the configuration (environment variables, key files mounted into the
//! component), turns the incoming request into an [`http::Request`], calls the same
//! [`jwtv_service::Service`] as the native server and writes the answer back.
//!
//! `scripts/bake` pre-initialises it for one configuration ([`bake`], WASI 0.2 build): instances of
//! the baked component start with their keys prepared.
//!
//! What it must not do: decide anything about a token, or read a configuration file format it cannot
//! honour (refused at load with a clear error instead). Remote key sets are fetched with outgoing
//! wasi:http under the shared refresh machine ([`jwtv_keyset`]): `remote` drives it, `outgoing`
//! (WASI 0.2) or `outgoing_p3` (WASI 0.3) makes the bounded GET, and in the `keyvalue` build `kv`
//! shares the last good set, the schedule and a fetch lease between instances through the host's
//! `wasi:keyvalue` store (Spin's `key_value_stores`), so the app, not each instance, fetches.

// Spin reuses WASI 0.3 instances, so the WASI 0.3 build keeps its key sets per instance.
#[cfg(all(feature = "keyvalue", feature = "p3"))]
compile_error!("the `keyvalue` build is a WASI 0.2 build: it does not combine with `p3`");

#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod bake;
#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod handler;
#[cfg(all(target_arch = "wasm32", feature = "p3"))]
mod handler_p3;
#[cfg(all(target_arch = "wasm32", feature = "keyvalue"))]
mod kv;
#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod outgoing;
#[cfg(all(target_arch = "wasm32", feature = "p3"))]
mod outgoing_p3;
#[cfg(target_arch = "wasm32")]
mod remote;
#[cfg(target_arch = "wasm32")]
mod setup;
