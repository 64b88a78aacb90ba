//! Where the native server remembers the DPoP proofs it let through (RFC 9449 §11.1), so that a proof
//! is accepted once: the service hands each allow that rests on a proof to [`ReplayStore::first_use`]
//! (see `jwtv_service::Handled::replay`), and answers by what the store says.
//!
//! One variant per kind of store behind one async call, so a shared store (several replicas) is one
//! more variant. A store that cannot answer refuses the request (503 `replay_store_unavailable`):
//! an unrecorded proof could be replayed.

use jwtv_service::replay::{FirstUse, Full, Seen};
use std::sync::Mutex;

/// Default of the in-memory store's bound (`JWT_DPOP_REPLAY_MAX_ENTRIES`): at the default 60 s
/// window, room for over 1,600 new proofs a second, at about 100 bytes each (10 MB).
pub const DEFAULT_MAX_ENTRIES: usize = 100_000;

/// Why a store could not say whether a proof is new.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Full(#[from] Full),
}

/// The proofs seen, per process or shared.
#[derive(Debug)]
pub enum ReplayStore {
    /// This process's memory: replicas do not see each other's proofs.
    Memory(Mutex<Seen>),
}

impl ReplayStore {
    pub fn memory(max_entries: usize) -> ReplayStore {
        ReplayStore::Memory(Mutex::new(Seen::new(max_entries)))
    }

    /// Records `use_`: `Ok(true)` the first time, `Ok(false)` for a replay.
    pub async fn first_use(&self, use_: &FirstUse) -> Result<bool, StoreError> {
        match self {
            ReplayStore::Memory(seen) => {
                // A poisoned lock still holds a consistent set: every update is one insert.
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                Ok(seen.first_use(use_, crate::serve::now_secs())?)
            }
        }
    }
}
