//! Why a fetch failed. The shell reports transport faults (timeout … proxy); the machine adds the
//! verdicts on the document (invalid, discovery, no usable keys). `kind` is the metric label; the text
//! is for logs and never holds the body.

/// The answer's head as every shell judges it, before reading the body: only a 200 carries a
/// document (redirects are not followed), and a declared length over the cap is refused unread.
pub fn check_head(
    status: u16,
    declared_len: Option<u64>,
    max_bytes: usize,
) -> Result<(), FetchError> {
    if status != 200 {
        return Err(FetchError::Status(status));
    }
    if declared_len.is_some_and(|n| n > max_bytes as u64) {
        return Err(FetchError::TooLarge(max_bytes));
    }
    Ok(())
}

/// A failed fetch, transport fault or refused document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    /// The peer does not speak HTTP/1.1 correctly.
    #[error("HTTP: {0}")]
    Http(String),
    #[error("status {0} ({hint})", hint = status_hint(*.0))]
    Status(u16),
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not a usable document (not JSON, not a key set, a key set we cannot read).
    #[error("unusable document: {0}")]
    Invalid(String),
    /// The discovery document is refused (wrong `issuer`, missing or unacceptable `jwks_uri`).
    #[error("discovery refused: {0}")]
    Discovery(String),
    /// A key set without a single key we can verify with.
    #[error("no usable key: {0}")]
    NoUsableKeys(String),
    /// The proxy refused or failed the CONNECT (its status, or what went wrong).
    #[error("proxy: {0}")]
    Proxy(String),
}

fn status_hint(code: u16) -> &'static str {
    if (300..400).contains(&code) {
        "redirects are not followed"
    } else {
        "expected 200"
    }
}

impl FetchError {
    /// Every kind, in metric order.
    pub const KINDS: [&'static str; 10] = [
        "timeout",
        "connect",
        "tls",
        "http",
        "status",
        "too_large",
        "invalid",
        "discovery",
        "no_usable_keys",
        "proxy",
    ];

    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }

    pub fn kind_index(&self) -> usize {
        match self {
            FetchError::Timeout => 0,
            FetchError::Connect(_) => 1,
            FetchError::Tls(_) => 2,
            FetchError::Http(_) => 3,
            FetchError::Status(_) => 4,
            FetchError::TooLarge(_) => 5,
            FetchError::Invalid(_) => 6,
            FetchError::Discovery(_) => 7,
            FetchError::NoUsableKeys(_) => 8,
            FetchError::Proxy(_) => 9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_are_stable_labels() {
        assert_eq!(FetchError::TooLarge(1).kind(), "too_large");
        assert_eq!(FetchError::Status(302).kind(), "status");
        assert!(FetchError::Status(302).to_string().contains("redirects"));
        assert!(FetchError::Status(500).to_string().contains("expected 200"));
        for (i, kind) in FetchError::KINDS.iter().enumerate() {
            assert!(kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert_eq!(FetchError::KINDS.iter().position(|k| k == kind), Some(i));
        }
    }
}
