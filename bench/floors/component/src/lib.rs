//! The wasm floor of the showdown: a wasi:http component (WASI 0.2) that answers every request 200
//! `{"valid":true}` once its body has been read, through the same raw bindings and the same stream
//! calls as `crates/component`. Served with the same `wasmtime serve` flags as ours, it is what the
//! host costs per request with nothing else to do. Built with `--features p3`, it exports WASI 0.3's
//! `wasi:http/handler` instead, through the same bindings as ours (`wasip3`): the floor of `wasm-p3`.

#[cfg(all(target_arch = "wasm32", not(feature = "p3")))]
mod handler;
#[cfg(all(target_arch = "wasm32", feature = "p3"))]
mod handler_p3;
