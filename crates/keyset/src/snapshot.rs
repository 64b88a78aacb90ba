//! The set in hand of a [`crate::Source`], as bytes a shell can keep where its short-lived instances
//! all see it (a host key-value store, proxy-wasm shared data). Times are the exporting shell's
//! milliseconds, so importers must share its clock (wall-clock milliseconds since the epoch).

use serde_json::{Value, json};

/// What [`crate::Source::export`] gives and [`crate::Source::import`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The published key-set document, as fetched (checked again on import).
    pub body: Vec<u8>,
    pub fetched_at: u64,
    /// When the set falls due for a refresh.
    pub refresh_at: u64,
    /// The `jwks_uri` discovery found, if the source uses discovery.
    pub jwks_uri: Option<String>,
}

/// Why snapshot bytes were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a key-set snapshot: {0}")]
pub struct SnapshotError(&'static str);

impl Snapshot {
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_value().to_string().into_bytes()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
        let root: Value = serde_json::from_slice(bytes).map_err(|_| SnapshotError("not JSON"))?;
        Snapshot::from_value(&root)
    }

    /// As a JSON value, for a record that holds a snapshot among other fields ([`crate::shared`]).
    pub fn to_value(&self) -> Value {
        // The body was parsed as JSON before it was installed, so it is UTF-8.
        let body = String::from_utf8_lossy(&self.body);
        json!({
            "v": 1,
            "fetched_at": self.fetched_at,
            "refresh_at": self.refresh_at,
            "jwks_uri": self.jwks_uri,
            "body": body,
        })
    }

    pub fn from_value(root: &Value) -> Result<Snapshot, SnapshotError> {
        if root.get("v").and_then(Value::as_u64) != Some(1) {
            return Err(SnapshotError("unknown version"));
        }
        let number = |name: &'static str| {
            root.get(name)
                .and_then(Value::as_u64)
                .ok_or(SnapshotError(name))
        };
        let body = root
            .get("body")
            .and_then(Value::as_str)
            .ok_or(SnapshotError("body"))?;
        Ok(Snapshot {
            body: body.as_bytes().to_vec(),
            fetched_at: number("fetched_at")?,
            refresh_at: number("refresh_at")?,
            jwks_uri: root
                .get("jwks_uri")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_survives_its_bytes() {
        let snapshot = Snapshot {
            body: br#"{"keys":[]}"#.to_vec(),
            fetched_at: 5,
            refresh_at: 600_005,
            jwks_uri: Some("https://idp.example.com/keys".into()),
        };
        assert_eq!(Snapshot::from_bytes(&snapshot.to_bytes()), Ok(snapshot));
        assert!(Snapshot::from_bytes(b"{}").is_err());
        assert!(Snapshot::from_bytes(b"garbage").is_err());
    }
}
