//! The key sets a service reads, one slot per issuer, and the generation that counts what was
//! installed. Configured sets fill their slots at start; a shell installs each fetched set into its
//! issuer's slot. Every shell keeps its keys here, so "no set yet" (503) and "a set changed" (the
//! token cache forgets, an unknown-kid request verifies again) mean the same in all of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use jwtv_verifier::{KeySet, KeyStore};

/// One issuer's set. Shared: a configuration reload hands a fetched source's slot, with its set, to
/// the store that replaces this one.
#[derive(Debug, Default)]
pub struct Slot(RwLock<Option<Arc<KeySet>>>);

impl Slot {
    pub fn new(set: Option<Arc<KeySet>>) -> Slot {
        Slot(RwLock::new(set))
    }

    pub fn get(&self) -> Option<Arc<KeySet>> {
        // A poisoned lock still holds a valid `Option<Arc<_>>` (writers only assign it).
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `set` in place, then bumps `generation` (so whoever reads the new generation also reads
    /// the new set); returns the new generation. The same set again changes nothing.
    pub fn install(&self, set: Arc<KeySet>, generation: &AtomicU64) -> Option<u64> {
        {
            let mut slot = match self.0.write() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            if slot.as_ref().is_some_and(|old| Arc::ptr_eq(old, &set)) {
                return None;
            }
            *slot = Some(set);
        }
        Some(generation.fetch_add(1, Ordering::AcqRel) + 1)
    }
}

/// One slot per issuer, in the verifier's policy order, and the generation.
#[derive(Debug)]
pub struct Store {
    slots: Vec<Arc<Slot>>,
    generation: Arc<AtomicU64>,
}

impl Store {
    /// The sets known at start, one per issuer; `None` for an issuer whose keys are fetched, so that
    /// until a shell installs them the answer is 503, never a verdict.
    pub fn new(sets: Vec<Option<Arc<KeySet>>>) -> Store {
        Store {
            slots: sets.into_iter().map(|s| Arc::new(Slot::new(s))).collect(),
            generation: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Counts installs on `generation` instead of a counter of its own: a reloaded store keeps
    /// counting where the store it replaces stopped, so nothing verified before a change survives it.
    pub fn with_generation(mut self, generation: Arc<AtomicU64>) -> Store {
        self.generation = generation;
        self
    }

    /// Puts `slot` (a fetched source's, carried over from a previous store) at `issuer`.
    pub fn share_slot(&mut self, issuer: usize, slot: Arc<Slot>) {
        if issuer >= self.slots.len() {
            self.slots.resize_with(issuer + 1, Arc::default);
        }
        self.slots[issuer] = slot;
    }

    pub fn slot(&self, issuer: usize) -> Option<&Arc<Slot>> {
        self.slots.get(issuer)
    }

    /// Installs a fetched set for `issuer`; returns the new generation, `None` when nothing changed.
    pub fn install(&self, issuer: usize, set: Arc<KeySet>) -> Option<u64> {
        self.slots.get(issuer)?.install(set, &self.generation)
    }

    /// Sets installed so far, by every slot.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The counter behind [`Store::generation`], for the token cache.
    pub fn generation_counter(&self) -> Arc<AtomicU64> {
        self.generation.clone()
    }
}

impl KeyStore for Store {
    fn key_set(&self, issuer: usize) -> Option<Arc<KeySet>> {
        self.slots.get(issuer)?.get()
    }
}
