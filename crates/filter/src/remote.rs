//! Remote key sets in the filter: one [`Source`] (the pure refresh machine of `jwtv-keyset`) per
//! fetched issuer, driven from `on_tick` and `dispatch_http_call`, its set shared with the other VMs
//! of this Envoy through proxy-wasm shared data.
//!
//! The HTTP call goes to the Envoy cluster named after the URL's authority (`host:port`), which the
//! operator defines: a Wasm filter can only call clusters. Every VM imports a snapshot another VM
//! fetched later than its own set, so after the first round only the VM whose refresh falls due first
//! fetches.

use std::time::Duration;

use http::Uri;
use jwtv_keyset::{Event, Fetch, FetchError, FetchSettings, RemoteSource, Rules, Snapshot, Source};

/// One fetched issuer.
pub struct Remote {
    pub issuer: usize,
    pub source: Source,
    /// The shared-data key of its snapshot.
    pub shared_key: String,
    /// How it was configured, for log lines.
    pub configured_at: String,
}

impl Remote {
    pub fn new(remote: &RemoteSource, fetch: &FetchSettings, seed: u64) -> Remote {
        Remote {
            issuer: remote.issuer,
            source: Source::for_remote(
                remote,
                Rules::from_settings(fetch),
                seed.wrapping_add(remote.issuer as u64),
            ),
            shared_key: format!("jwt-validator/keys/{}", remote.location.url()),
            configured_at: remote.configured_at.clone(),
        }
    }

    /// Takes over the shared snapshot when it is newer than the set in hand.
    pub fn import(&mut self, bytes: &[u8]) {
        let Ok(snapshot) = Snapshot::from_bytes(bytes) else {
            return;
        };
        if self
            .source
            .fetched_at()
            .is_none_or(|mine| mine < snapshot.fetched_at)
        {
            // A snapshot is checked as if just fetched; one that fails is ignored (this VM fetches).
            let _ = self.source.import(&snapshot);
        }
    }

    /// The log line of an event, in keyset's words, naming the source.
    pub fn describe(&self, event: &Event) -> String {
        format!("jwt-validator: {}: {event}", self.configured_at)
    }
}

/// What `dispatch_http_call` needs for a fetch: the cluster, the request headers, the timeout.
pub struct Call {
    pub cluster: String,
    pub headers: Vec<(&'static str, String)>,
    pub timeout: Duration,
}

impl Call {
    pub fn new(fetch: &Fetch, settings: &FetchSettings) -> Result<Call, FetchError> {
        let cluster = cluster_of(&fetch.url)
            .ok_or_else(|| FetchError::Http(format!("{}: no host", fetch.url)))?;
        let path = fetch
            .url
            .path_and_query()
            .map_or("/".to_owned(), |p| p.as_str().to_owned());
        let mut headers = vec![
            (":method", fetch.method.to_owned()),
            (":path", path),
            (":authority", cluster.clone()),
        ];
        headers.extend(fetch.headers.iter().map(|(n, v)| (*n, (*v).to_owned())));
        Ok(Call {
            headers,
            cluster,
            timeout: settings.timeout,
        })
    }
}

/// `host:port` of a URL, the port defaulted by scheme: the name of the cluster to call.
fn cluster_of(url: &Uri) -> Option<String> {
    let host = url.host()?;
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    Some(format!("{host}:{port}"))
}

/// The answer to a call: the body with its `max-age` when it is a 200 within the size limit.
pub fn outcome(
    status: Option<&str>,
    body: Option<Vec<u8>>,
    size: usize,
    cache_control: Option<String>,
    max_bytes: usize,
) -> Result<(Vec<u8>, Option<u64>), FetchError> {
    let Some(status) = status.and_then(|s| s.parse::<u16>().ok()) else {
        return Err(FetchError::Connect(
            "no answer from the cluster (unreachable, reset or timed out)".to_owned(),
        ));
    };
    // Envoy hands over the whole body: its size stands in for the declared length.
    jwtv_keyset::error::check_head(status, Some(size as u64), max_bytes)?;
    Ok((
        body.unwrap_or_default(),
        cache_control
            .as_deref()
            .and_then(jwtv_keyset::cache_control::max_age),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cluster_is_the_urls_authority_with_the_schemes_port() {
        let of = |u: &str| cluster_of(&u.parse().unwrap());
        assert_eq!(
            of("http://127.0.0.1:8081/jwks").as_deref(),
            Some("127.0.0.1:8081")
        );
        assert_eq!(
            of("https://idp.example.com/keys").as_deref(),
            Some("idp.example.com:443")
        );
        assert_eq!(of("http://idp/keys").as_deref(), Some("idp:80"));
    }

    #[test]
    fn only_a_200_within_the_limit_is_a_document() {
        assert!(matches!(
            outcome(None, None, 0, None, 10),
            Err(FetchError::Connect(_))
        ));
        assert_eq!(
            outcome(Some("503"), None, 0, None, 10),
            Err(FetchError::Status(503))
        );
        assert_eq!(
            outcome(Some("200"), None, 11, None, 10),
            Err(FetchError::TooLarge(10))
        );
        assert_eq!(
            outcome(
                Some("200"),
                Some(b"{}".to_vec()),
                2,
                Some("max-age=60".into()),
                10
            ),
            Ok((b"{}".to_vec(), Some(60)))
        );
    }
}
