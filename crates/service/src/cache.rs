//! The verified-token cache a shell may give the service (the native server, one per configuration;
//! the proxy-wasm filter, one per VM): a token seen again skips parsing and the signature check (the
//! service still re-applies the claim rules at the current time on every hit).
//!
//! Clock-free and I/O-free like the rest of the crate: time comes in with each lookup, the key-set
//! generation through a counter the shell owns.
//!
//! - Keyed by the SHA-256 of the whole token: the bearer credential itself is not kept in memory, and
//!   the key is 32 bytes whatever the token's size. A different token is a different entry; there is
//!   no lookup by `kid`, subject or anything partial. A shell that can draw a random secret may key
//!   by SipHash-2-4-128 under it instead ([`VerifiedCache::keyed`]): a PRF, so without the secret no
//!   token can be made to land on another token's entry, at a tenth of SHA-256's cost in Wasm.
//! - Bounded: at most `capacity` entries, the oldest evicted first (tokens are short-lived, so the
//!   oldest entry is the likeliest to be expired or unused).
//! - Never past `exp`: an entry is not served at or after the token's `exp` (the full verification
//!   then decides, leeway included); tokens without `exp` are not cached at all.
//! - Never past its key set: entries are only valid for the key-store generation they were verified
//!   under, so a fetched key set that changes (rotation, a key withdrawn) empties the cache, and a
//!   verification that began before the change is not stored after it (the ticket).
//! - Never past its configuration: a reload that swaps in a new service gives it a new, empty cache
//!   ([`VerifiedCache::succeeding`]); requests still running on the old service fill only the old one.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use jwtv_verifier::Verified;
use sha2::{Digest as _, Sha256};
use siphasher::sip128::SipHasher24;

use crate::{Lookup, TokenCache};

type Digest = [u8; 32];

struct Entry {
    verified: Arc<Verified>,
    /// `exp` in seconds since the epoch.
    expires_at: f64,
    /// Insertion number, to tell a live entry from a stale slot of the eviction queue.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    /// The key-store generation the entries were verified under.
    generation: u64,
    map: HashMap<Digest, Entry>,
    /// Insertion order, for eviction; may hold slots of entries already gone (skipped by `seq`).
    order: VecDeque<(Digest, u64)>,
    next_seq: u64,
}

impl Inner {
    /// Forgets everything verified under an older generation.
    fn sync(&mut self, generation: u64) {
        if self.generation != generation {
            self.map.clear();
            self.order.clear();
            self.generation = generation;
        }
    }

    fn evict_one(&mut self) {
        while let Some((digest, seq)) = self.order.pop_front() {
            if self.map.get(&digest).is_some_and(|e| e.seq == seq) {
                self.map.remove(&digest);
                return;
            }
        }
    }
}

/// How a token becomes its map key; neither way keeps the token.
#[derive(Clone)]
enum Keying {
    Sha256,
    /// SipHash-2-4-128 under this secret (16 bytes of the key, the rest zero).
    Keyed(SipHasher24),
}

pub struct VerifiedCache {
    capacity: usize,
    keying: Keying,
    /// The key store's generation counter.
    generation: Arc<AtomicU64>,
    inner: Mutex<Inner>,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

impl VerifiedCache {
    pub fn new(capacity: usize, generation: Arc<AtomicU64>) -> VerifiedCache {
        let start = generation.load(Ordering::Acquire);
        VerifiedCache {
            capacity,
            keying: Keying::Sha256,
            generation,
            inner: Mutex::new(Inner {
                generation: start,
                ..Inner::default()
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// As [`VerifiedCache::new`], keyed by SipHash-2-4-128 under `secret`, which must be random and
    /// known only to this process (for a proxy-wasm VM, drawn when it starts).
    pub fn keyed(capacity: usize, generation: Arc<AtomicU64>, secret: [u8; 16]) -> VerifiedCache {
        VerifiedCache {
            keying: Keying::Keyed(SipHasher24::new_with_key(&secret)),
            ..VerifiedCache::new(capacity, generation)
        }
    }

    /// An empty cache for the service that replaces `previous`'s, its counters carried on so that
    /// `/metrics` counts across reloads.
    pub fn succeeding(
        previous: &VerifiedCache,
        capacity: usize,
        generation: Arc<AtomicU64>,
    ) -> VerifiedCache {
        // The same keying as before: a reload must not quietly fall back from a shell's keyed cache.
        let cache = VerifiedCache {
            keying: previous.keying.clone(),
            ..VerifiedCache::new(capacity, generation)
        };
        cache
            .hits
            .store(previous.hits.load(Ordering::Relaxed), Ordering::Relaxed);
        cache
            .misses
            .store(previous.misses.load(Ordering::Relaxed), Ordering::Relaxed);
        cache
    }

    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing in the critical sections can panic, but a poisoned map is still a valid map.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn miss(&self, ticket: u64) -> Lookup {
        self.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss { ticket }
    }
}

impl Keying {
    fn digest(&self, token: &str) -> Digest {
        match self {
            Keying::Sha256 => Sha256::digest(token.as_bytes()).into(),
            Keying::Keyed(hasher) => {
                let mut digest = [0u8; 32];
                digest[..16].copy_from_slice(&hasher.hash(token.as_bytes()).as_bytes());
                digest
            }
        }
    }
}

impl TokenCache for VerifiedCache {
    fn get(&self, token: &str, now: u64) -> Lookup {
        let current = self.generation.load(Ordering::Acquire);
        let key = self.keying.digest(token);
        let mut inner = self.lock();
        inner.sync(current);
        let fresh = match inner.map.get(&key) {
            None => return self.miss(current),
            Some(entry) if (now as f64) < entry.expires_at => Some(entry.verified.clone()),
            Some(_) => None,
        };
        match fresh {
            Some(verified) => {
                drop(inner);
                self.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(verified)
            }
            None => {
                inner.map.remove(&key);
                drop(inner);
                self.miss(current)
            }
        }
    }

    fn insert(&self, token: &str, verified: Arc<Verified>, ticket: u64) {
        let Some(expires_at) = verified.expires_at else {
            return;
        };
        if self.capacity == 0 || !expires_at.is_finite() {
            return;
        }
        let key = self.keying.digest(token);
        let current = self.generation.load(Ordering::Acquire);
        // Verified with a key set that has since been replaced: not worth keeping, possibly wrong.
        if ticket != current {
            return;
        }
        let mut inner = self.lock();
        inner.sync(current);
        if inner.map.len() >= self.capacity && !inner.map.contains_key(&key) {
            inner.evict_one();
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.map.insert(
            key,
            Entry {
                verified,
                expires_at,
                seq,
            },
        );
        inner.order.push_back((key, seq));
        // Replaced and expired entries leave stale slots behind; compact before the queue outgrows
        // the map by much.
        if inner.order.len() > 2 * self.capacity + 16 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|(d, s)| map.get(d).is_some_and(|e| e.seq == *s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwtv_verifier::{Algorithm, Claims};

    fn verified(exp: Option<f64>) -> Arc<Verified> {
        Arc::new(Verified {
            claims: Claims::new(),
            issuer: 0,
            alg: Algorithm::ES256,
            kid: None,
            expires_at: exp,
        })
    }

    fn ticket(cache: &VerifiedCache, token: &str, now: u64) -> u64 {
        match cache.get(token, now) {
            Lookup::Miss { ticket } => ticket,
            Lookup::Hit(_) => panic!("unexpected hit for {token}"),
        }
    }

    fn hit(cache: &VerifiedCache, token: &str, now: u64) -> bool {
        matches!(cache.get(token, now), Lookup::Hit(_))
    }

    #[test]
    fn entries_are_served_until_exp_only() {
        let cache = VerifiedCache::new(10, Arc::new(AtomicU64::new(0)));
        let t = ticket(&cache, "a", 100);
        cache.insert("a", verified(Some(110.0)), t);
        assert!(hit(&cache, "a", 109));
        assert!(!hit(&cache, "a", 110), "not at exp");
        assert_eq!(cache.len(), 0, "an expired entry is dropped");
        // No exp, nothing bounds the entry's life: not cached.
        cache.insert("b", verified(None), t);
        assert!(!hit(&cache, "b", 100));
        assert_eq!(cache.hits.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_keyed_cache_serves_exactly_the_token_it_stored_and_depends_on_its_secret() {
        let cache = VerifiedCache::keyed(10, Arc::new(AtomicU64::new(0)), [7; 16]);
        let t = ticket(&cache, "a.b.c", 0);
        cache.insert("a.b.c", verified(Some(1e9)), t);
        assert!(hit(&cache, "a.b.c", 0));
        assert!(!hit(&cache, "a.b.d", 0) && !hit(&cache, "a.b.c ", 0));
        let sha = Keying::Sha256.digest("a.b.c");
        let other = Keying::Keyed(SipHasher24::new_with_key(&[8; 16])).digest("a.b.c");
        assert_ne!(
            cache.keying.digest("a.b.c"),
            other,
            "another secret, another key"
        );
        assert_ne!(cache.keying.digest("a.b.c"), sha);
    }

    #[test]
    fn a_key_set_change_empties_the_cache_and_voids_tickets_taken_before() {
        let generation = Arc::new(AtomicU64::new(0));
        let cache = VerifiedCache::new(10, generation.clone());
        let before = ticket(&cache, "a", 0);
        cache.insert("a", verified(Some(1e9)), before);
        let stale = ticket(&cache, "b", 0);
        generation.fetch_add(1, Ordering::AcqRel);
        assert!(!hit(&cache, "a", 0), "verified with the replaced set");
        cache.insert("b", verified(Some(1e9)), stale);
        assert!(!hit(&cache, "b", 0), "began before the change");
        let after = ticket(&cache, "c", 0);
        cache.insert("c", verified(Some(1e9)), after);
        assert!(hit(&cache, "c", 0));
    }

    #[test]
    fn size_is_bounded_oldest_first_and_zero_disables() {
        let cache = VerifiedCache::new(3, Arc::new(AtomicU64::new(0)));
        for i in 0..5 {
            let token = format!("t{i}");
            let t = ticket(&cache, &token, 0);
            cache.insert(&token, verified(Some(1e9)), t);
        }
        assert_eq!(cache.len(), 3);
        assert!(!hit(&cache, "t0", 0) && !hit(&cache, "t1", 0));
        assert!(hit(&cache, "t2", 0) && hit(&cache, "t4", 0));
        // Re-inserting one token many times neither grows the map nor the queue without bound.
        for _ in 0..100 {
            cache.insert("t4", verified(Some(1e9)), 0);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.lock().order.len() <= 2 * 3 + 16 + 1);

        let off = VerifiedCache::new(0, Arc::new(AtomicU64::new(0)));
        off.insert("a", verified(Some(1e9)), 0);
        assert!(!hit(&off, "a", 0));
    }
}
