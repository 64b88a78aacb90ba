//! Where the native server remembers the DPoP proofs it let through (RFC 9449 §11.1), so that a proof
//! is accepted once: the service hands each allow that rests on a proof to [`ReplayStore::first_use`]
//! (see `jwtv_service::Handled::replay`), and answers by what the store says.
//!
//! One variant per kind of store behind one async call: this process's memory, or a Redis shared by
//! every replica ([`crate::replay_redis`]). A store that cannot answer refuses the request (503
//! `replay_store_unavailable`): an unrecorded proof could be replayed; unless the operator chose
//! `allow` on store errors for the shared store, which lets the proof through, logged.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jwtv_config::replay_store::OnStoreError;
use jwtv_config::table;
use jwtv_service::replay::{FirstUse, Full, Seen};

use crate::replay_redis::{RedisError, RedisStore};

/// Why a store could not say whether a proof is new.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Full(#[from] Full),
    /// Worded for the client (the answer's description): the store's address and its error are in
    /// the server's log, not in the answer.
    #[error("the shared replay store did not answer")]
    Shared(#[source] RedisError),
}

/// The proofs seen, per process or shared.
pub enum ReplayStore {
    /// This process's memory: replicas do not see each other's proofs.
    Memory(Mutex<Seen>),
    /// A Redis every replica uses.
    Redis {
        store: RedisStore,
        on_error: OnStoreError,
        /// The second of the last store-error log line: one a second at most while the store is down.
        logged_at: AtomicU64,
    },
}

impl std::fmt::Debug for ReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReplayStore::Memory(seen) => f.debug_tuple("Memory").field(seen).finish(),
            ReplayStore::Redis {
                store, on_error, ..
            } => f
                .debug_struct("Redis")
                .field("target", &store.target())
                .field("on_error", on_error)
                .finish_non_exhaustive(),
        }
    }
}

impl ReplayStore {
    pub fn memory(max_entries: usize) -> ReplayStore {
        ReplayStore::Memory(Mutex::new(Seen::new(max_entries)))
    }

    pub fn redis(store: RedisStore, on_error: OnStoreError) -> ReplayStore {
        ReplayStore::Redis {
            store,
            on_error,
            logged_at: AtomicU64::new(0),
        }
    }

    /// Records `use_`: `Ok(true)` the first time, `Ok(false)` for a replay.
    pub async fn first_use(&self, use_: &FirstUse) -> Result<bool, StoreError> {
        match self {
            ReplayStore::Memory(seen) => {
                // A poisoned lock still holds a consistent set: every update is one insert.
                let mut seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                Ok(seen.first_use(use_, crate::serve::now_secs())?)
            }
            ReplayStore::Redis {
                store,
                on_error,
                logged_at,
            } => {
                // Kept a second past the proof's last acceptable second: the service compares whole
                // seconds, so the key outlives every moment the proof could still pass.
                let now = crate::serve::now_secs();
                let window = Duration::from_secs(use_.expires_at.saturating_sub(now) + 1);
                match store.first_use(&use_.key_hex(), window).await {
                    Ok(first) => Ok(first),
                    Err(e) => {
                        let allow = *on_error == OnStoreError::Allow;
                        if logged_at.swap(now, Ordering::Relaxed) != now {
                            tracing::warn!(
                                store = store.target(),
                                "DPoP replay store error: {e}; proofs are {} meanwhile",
                                if allow {
                                    format!(
                                        "allowed unrecorded ({}=allow)",
                                        table::DPOP_REPLAY_ON_STORE_ERROR.var()
                                    )
                                } else {
                                    "refused (503 replay_store_unavailable)".to_owned()
                                }
                            );
                        }
                        if allow {
                            Ok(true)
                        } else {
                            Err(StoreError::Shared(e))
                        }
                    }
                }
            }
        }
    }
}
