//! Key sets of the native server: the configured ones, and those fetched from identity providers
//! (`jwks_uri`, OIDC discovery), kept fresh in the background.
//!
//! - [`store`]: the keyset [`jwtv_keyset::Store`] the service reads (one slot per issuer, as in every
//!   shell), with the remote sources that install into it, carried over by a reload.
//! - [`remote`]: one fetched source: the tokio driver of its refresh machine (`jwtv_keyset`), its
//!   live set, unknown-kid waits, statistics.
//! - [`fetch`]: the bounded HTTP(S) GET under all of it.
//! - [`proxy`]: whether that GET goes through `HTTPS_PROXY` / `HTTP_PROXY`, per `NO_PROXY`.

pub mod fetch;
pub mod proxy;
pub mod remote;
pub mod store;

pub use store::Keys;
