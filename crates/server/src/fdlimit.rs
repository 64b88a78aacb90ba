//! The process's file-descriptor limit: raised to the hard limit at start, and the default connection
//! limit derived from it, so that the server runs out of connection slots (and then reclaims idle
//! ones) before it runs out of descriptors (where `accept` fails for every client alike).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but client connections: the listener, the runtime's epoll and
/// wake-up handles, stdio, key-set fetches (one connection each, a few at once).
const RESERVED_MIN: u64 = 64;
/// And an eighth of a large limit, for what scales with load (bursts of accepts being reclaimed).
const RESERVED_SHARE: u64 = 8;
/// A default limit higher than this is not a file-descriptor question any more but one of memory
/// (each open connection holds buffers and a task): set `max_connections` explicitly to go beyond.
pub const DEFAULT_CEILING: usize = 65_536;

/// What the start found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit in force after the start (`None`: unlimited).
    pub soft: Option<u64>,
    /// The soft limit found, when it was raised.
    pub raised_from: Option<u64>,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard one when it is lower. A refusal leaves the limit as it
/// was: the server still runs, with a connection limit sized for what it has.
pub fn raise() -> FdLimit {
    let found = getrlimit(Resource::Nofile);
    let lower = match (found.current, found.maximum) {
        (Some(soft), Some(hard)) => soft < hard,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if lower {
        let wanted = Rlimit {
            current: found.maximum,
            maximum: found.maximum,
        };
        if setrlimit(Resource::Nofile, wanted).is_ok() {
            return FdLimit {
                soft: getrlimit(Resource::Nofile).current,
                raised_from: found.current,
            };
        }
    }
    FdLimit {
        soft: found.current,
        raised_from: None,
    }
}

/// Raises the descriptor limit, then picks the connection limit: the configured one, else one sized
/// from the descriptors. Both are logged.
pub fn connection_limit(configured: Option<usize>) -> usize {
    let fds = raise();
    let soft = fds
        .soft
        .map_or_else(|| "unlimited".to_owned(), |n| n.to_string());
    if let Some(from) = fds.raised_from {
        tracing::info!("file-descriptor limit raised from {from} to {soft} (the hard limit)");
    }
    let sized = default_connections(fds.soft);
    match configured {
        Some(n) => {
            if n > sized && fds.soft.is_some() {
                tracing::warn!(
                    "max_connections {n} leaves too few of the {soft} file descriptors for key-set \
                     fetches and logs (about {sized} would): accepting may fail before the limit"
                );
            }
            tracing::info!("connection limit {n} (configured; file-descriptor limit {soft})");
            n
        }
        None => {
            tracing::info!("connection limit {sized}, sized from the file-descriptor limit {soft}");
            sized
        }
    }
}

/// The default connection limit for a soft descriptor limit, headroom left.
pub fn default_connections(soft: Option<u64>) -> usize {
    let Some(soft) = soft else {
        return DEFAULT_CEILING;
    };
    let reserved = RESERVED_MIN.max(soft / RESERVED_SHARE);
    let usable = soft.saturating_sub(reserved).max(1);
    usize::try_from(usable).map_or(DEFAULT_CEILING, |n| n.min(DEFAULT_CEILING))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_is_kept_below_the_descriptor_limit() {
        assert_eq!(default_connections(Some(1024)), 1024 - 128);
        assert_eq!(default_connections(Some(256)), 256 - 64);
        assert_eq!(default_connections(Some(20_000)), 20_000 - 2_500);
    }

    #[test]
    fn tiny_or_huge_limits_stay_usable() {
        assert_eq!(default_connections(Some(10)), 1);
        assert_eq!(default_connections(Some(1 << 20)), DEFAULT_CEILING);
        assert_eq!(default_connections(None), DEFAULT_CEILING);
    }
}
