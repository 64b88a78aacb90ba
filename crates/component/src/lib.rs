//! jwt-validator as a portable WebAssembly component: exports `wasi:http/incoming-handler` (WASI 0.2),
//! so it runs unchanged under `wasmtime serve`, Spin and any other wasi:http host.
//!
//! It only moves bytes: reads the configuration (environment variables, key files mounted into the
//! component), turns the incoming request into an [`http::Request`], calls the same
//! [`jwtv_service::Service`] as the native server and writes the answer back.
//!
//! What it must not do: decide anything about a token, or read a configuration file format it cannot
//! honour (refused at load with a clear error instead). Remote key sets are fetched with outgoing
//! wasi:http under the shared refresh machine ([`jwtv_keyset`]): `remote` drives it, `outgoing` makes
//! the bounded GET.

#[cfg(target_arch = "wasm32")]
mod handler;
#[cfg(target_arch = "wasm32")]
mod outgoing;
#[cfg(target_arch = "wasm32")]
mod remote;
