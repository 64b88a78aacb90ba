//! The key-set refresh policy of jwt-validator, as a pure state machine: one [`Source`] per remote key
//! set (a `jwks_uri`, or OIDC discovery of an issuer), driven by a shell that does the I/O.
//!
//! Nothing here reads a clock, opens a socket or spawns a task: every input carries `now` (milliseconds
//! on any monotonic scale the shell likes), and every output is data the shell acts on
//! ([`Fetch`], a deadline, an [`Event`]). So the native server (tokio), the WebAssembly component
//! (outgoing wasi:http, per request) and the proxy-wasm filter (`on_tick`, `dispatch_http_call`) share
//! the same rules of `design/security.md` ("Remote key sets"), and the tests prove them on a virtual
//! clock instead of sleeping.
//!
//! What it must not do: I/O of any kind, or depend on the service or the configuration (it depends on
//! the verifier only; the configuration builds its inputs, the shells drive it).
//!
//! - [`remote`]: where a remote set is, which URLs may be fetched, the bounds of a fetch.
//! - [`store`]: the sets a service reads, one slot per issuer, and their generation.
//! - [`source`]: the machine (TTL, backoff, unknown-kid refetch, stale-on-error, readiness).
//! - [`document`]: what a published key set or discovery document must hold.
//! - [`cache_control`]: the provider's `max-age`.
//! - [`jitter`]: how far each wait is brought forward, from a seed.
//! - [`snapshot`]: the set in hand, exported for a shell whose instances do not live long.
//! - [`shared`]: what those instances keep in a host key-value store: the set, the schedule, the
//!   fetch lease.
//! - [`error`]: why a fetch failed, with stable kinds for metrics.

pub mod cache_control;
pub mod document;
pub mod error;
pub mod jitter;
pub mod remote;
pub mod shared;
pub mod snapshot;
pub mod source;
pub mod store;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_shared;
#[cfg(test)]
mod tests_store;

pub use error::FetchError;
pub use remote::{
    CaBundle, DEFAULT_REFETCH_WAIT, FetchSettings, MAX_REFETCH_WAIT_MS, RemoteLocation,
    RemoteSource, Seed, check_remote_url, discovery_url, is_loopback_host,
};
pub use shared::{Shared, SharedError};
pub use snapshot::{Snapshot, SnapshotError};
pub use source::{
    Event, Fetch, Level, Purpose, REQUEST_HEADERS, Reason, Rules, Source, UnknownKid,
};
pub use store::{Slot, Store};
