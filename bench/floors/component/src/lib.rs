//! The wasm floor of the showdown: a wasi:http component (WASI 0.2) that answers every request 200
//! `{"valid":true}` once its body has been read, through the same raw bindings and the same stream
//! calls as `crates/component`. Served with the same `wasmtime serve` flags as ours, it is what the
//! host costs per request with nothing else to do.

#[cfg(target_arch = "wasm32")]
mod handler;
