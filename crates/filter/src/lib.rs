//! jwt-validator as a proxy-wasm HTTP filter (Envoy, and so Istio and Envoy Gateway): the `/auth`
//! check of gateway mode, run inside the proxy instead of behind an `ext_authz` hop.
//!
//! [`plugin`] is the whole decision and is pure: the plugin configuration (the TOML file's schema,
//! read by the service's loader) becomes a [`jwtv_service::Service`], and each request's headers
//! become an [`http::Request`] to `/auth` (or `/policy/{name}/auth` for a route that names a policy).
//! Its answer is either the identity headers to set on the request, or the exact `/auth` refusal to
//! send back. The `filter` module (wasm32 only) is the shell: hostcalls, clock and log lines.
//!
//! What it must not do: decide anything about a token, a header or a status itself; read files (V8
//! filters have none: keys go inline in the configuration).

pub mod plugin;
pub mod remote;

#[cfg(target_arch = "wasm32")]
mod filter;
