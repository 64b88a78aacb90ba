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
//! wasi:http under the shared refresh machine ([`jwtv_keyset`]): `remote` drives it, `outgoing` makes
//! the bounded GET (WASI 0.2 build; the WASI 0.3 build refuses them at load for now).

#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod bake;
#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod handler;
#[cfg(all(target_arch = "wasm32", feature = "p3"))]
mod handler_p3;
#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod outgoing;
#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod remote;
#[cfg(target_arch = "wasm32")]
mod setup;
