//! Replay of DPoP proofs (RFC 9449 §11.1): a proof's `jti` may be used once.
//!
//! The service is pure, so it cannot remember; it hands the shell a [`FirstUse`] (a key and how long
//! it must be remembered) with every answer that rests on a proof, and the shell records it in a
//! store before it answers (see [`crate::Handled::replay`]). [`Seen`] is the in-memory store, pure:
//! time comes in as an argument. Shells with several processes share another store (the native
//! server's Redis), keyed by the same [`FirstUse::key_hex`].
//!
//! When [`Seen`] is full of unexpired entries it refuses new proofs rather than evicting: an evicted
//! `jti` could be replayed before its proof expires, and the window is short (60 s by default), so a
//! full store empties itself quickly. The bound is a memory bound against a flood of proofs.

use std::collections::BTreeMap;

/// What a shell must record before it lets a proof through: the hash of the proof's key thumbprint
/// and `jti` (neither is kept in clear), and the second after which the proof is too old to be
/// accepted anyway, so the store may forget it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstUse {
    pub key: [u8; 32],
    pub expires_at: u64,
}

impl FirstUse {
    /// The key in lowercase hex (64 characters), for stores keyed by text.
    pub fn key_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(64);
        for b in self.key {
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
        out
    }
}

/// The store is full of proofs that have not expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the replay store holds {0} unexpired DPoP proofs, its maximum")]
pub struct Full(pub usize);

/// Proof keys seen and not yet expired, at most `max_entries` of them.
#[derive(Debug)]
pub struct Seen {
    /// Key → the second after which it may be forgotten. One ordered map: no hasher and its random
    /// seed in the WebAssembly builds, and one instantiation of the map's code.
    keys: BTreeMap<[u8; 32], u64>,
    /// No entry expires before this: until then a sweep would free nothing, so a full store refuses
    /// at once instead of scanning.
    earliest: u64,
    max_entries: usize,
}

impl Seen {
    pub fn new(max_entries: usize) -> Seen {
        Seen {
            keys: BTreeMap::new(),
            earliest: u64::MAX,
            max_entries,
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Records `use_` at `now`: `Ok(true)` the first time, `Ok(false)` when it was seen and has not
    /// expired, [`Full`] when it is new and there is no room.
    pub fn first_use(&mut self, use_: &FirstUse, now: u64) -> Result<bool, Full> {
        match self.keys.get(&use_.key) {
            Some(&expires_at) if expires_at >= now => return Ok(false),
            Some(_) => {}
            None if self.keys.len() < self.max_entries => {}
            None => {
                self.expire(now);
                if self.keys.len() >= self.max_entries {
                    return Err(Full(self.max_entries));
                }
            }
        }
        self.keys.insert(use_.key, use_.expires_at);
        self.earliest = self.earliest.min(use_.expires_at);
        Ok(true)
    }

    /// Drops every key whose proof can no longer be accepted at `now`: a scan, made only when the
    /// store is full and something has expired, so its cost is spread over the inserts that filled it.
    fn expire(&mut self, now: u64) {
        if self.earliest >= now {
            return;
        }
        self.keys.retain(|_, expires_at| *expires_at >= now);
        self.earliest = self.keys.values().copied().min().unwrap_or(u64::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn use_(n: u8, expires_at: u64) -> FirstUse {
        FirstUse {
            key: [n; 32],
            expires_at,
        }
    }

    // RFC 9449 §11.1: a jti is accepted once within the window.
    #[test]
    fn a_key_seen_before_its_expiry_is_a_replay() {
        let mut seen = Seen::new(10);
        assert_eq!(seen.first_use(&use_(1, 100), 50), Ok(true));
        assert_eq!(seen.first_use(&use_(1, 100), 60), Ok(false));
        assert_eq!(seen.first_use(&use_(1, 100), 100), Ok(false));
        assert_eq!(seen.first_use(&use_(2, 100), 60), Ok(true));
    }

    #[test]
    fn expired_keys_are_forgotten_when_room_is_needed() {
        let mut seen = Seen::new(2);
        assert_eq!(seen.first_use(&use_(1, 100), 50), Ok(true));
        assert_eq!(seen.first_use(&use_(2, 200), 50), Ok(true));
        assert_eq!(seen.first_use(&use_(3, 300), 101), Ok(true));
        assert_eq!(seen.len(), 2);
        // A key seen again after its expiry is a new proof (the proof itself is then too old).
        assert_eq!(seen.first_use(&use_(2, 200), 201), Ok(true));
    }

    // Evicting an unexpired key would let its proof be replayed.
    #[test]
    fn a_full_store_refuses_new_keys_and_still_knows_old_ones() {
        let mut seen = Seen::new(2);
        assert_eq!(seen.first_use(&use_(1, 100), 0), Ok(true));
        assert_eq!(seen.first_use(&use_(2, 100), 0), Ok(true));
        assert_eq!(seen.first_use(&use_(3, 100), 10), Err(Full(2)));
        assert_eq!(seen.first_use(&use_(1, 100), 10), Ok(false));
        // Room again once the old ones expire.
        assert_eq!(seen.first_use(&use_(3, 300), 101), Ok(true));
    }

    #[test]
    fn keys_print_as_hex() {
        let mut key = [0u8; 32];
        key[0] = 0xab;
        key[31] = 0x01;
        let hex = FirstUse { key, expires_at: 0 }.key_hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("ab00") && hex.ends_with("0001"));
    }
}
