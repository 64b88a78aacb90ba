//! The proxy-wasm shell: one root context per plugin (it reads the configuration), one HTTP context
//! per request (it asks [`Plugin::decide`] and carries the verdict out through hostcalls).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use jwtv_keyset::Level;

use crate::plugin::{self, Plugin, Verdict};
use crate::remote::{self, Call, Remote};

/// How often each VM looks at its remote key sets (imports, refreshes, retries, unknown-kid refetches).
const TICK: Duration = Duration::from_millis(200);

/// Where a route names its policy: `metadata.filter_metadata["jwt-validator"].policy` of the route
/// (Envoy's Wasm filter has no per-route configuration; route metadata is what it lets a filter read).
/// Envoy's attribute: the hex SHA-256 of the downstream peer's certificate, when the listener
/// terminated TLS and the client presented one.
const PEER_CERTIFICATE_PROPERTY: [&str; 2] = ["connection", "sha256_peer_certificate_digest"];
const POLICY_PROPERTY: [&str; 5] = [
    "xds",
    "route_metadata",
    "filter_metadata",
    "jwt-validator",
    "policy",
];

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| {
        Box::new(Root {
            plugin: None,
            remotes: Rc::default(),
            calls: HashMap::new(),
        })
    });
}}

/// The plugin as configured: `Err` holds the configuration error, answered on every request.
type Configured = Rc<Result<Plugin, String>>;

/// The remote key sets, shared by the root context (which fetches) and the requests (which report
/// unknown kids). A VM is single-threaded.
type Remotes = Rc<RefCell<Vec<Remote>>>;

struct Root {
    plugin: Option<Configured>,
    remotes: Remotes,
    /// Calls under way: token → index in `remotes`.
    calls: HashMap<u32, usize>,
}

impl Context for Root {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        size: usize,
        _trailers: usize,
    ) {
        let Some(index) = self.calls.remove(&token) else {
            return;
        };
        let Some(configured) = self.plugin.clone() else {
            return;
        };
        let Ok(plugin) = configured.as_ref() else {
            return;
        };
        let result = remote::outcome(
            self.get_http_call_response_header(":status").as_deref(),
            self.get_http_call_response_body(0, size.min(plugin.fetch.max_bytes)),
            size,
            self.get_http_call_response_header("cache-control"),
            plugin.fetch.max_bytes,
        );
        let now = millis(self.get_current_time());
        {
            let mut remotes = self.remotes.borrow_mut();
            let Some(remote) = remotes.get_mut(index) else {
                return;
            };
            match result {
                Ok((body, max_age)) => remote.source.handle_fetched(now, &body, max_age),
                Err(error) => remote.source.handle_failed(now, error),
            }
            if let Some(snapshot) = remote.source.export() {
                let _ = self.set_shared_data(&remote.shared_key, Some(&snapshot.to_bytes()), None);
            }
        }
        self.drive(plugin, index, now);
    }
}

impl Root {
    /// After any input to a source: install a new set, log its events, make the fetch it asks for.
    fn drive(&mut self, plugin: &Plugin, index: usize, now: u64) {
        let mut remotes = self.remotes.borrow_mut();
        let Some(remote) = remotes.get_mut(index) else {
            return;
        };
        if let Some(set) = remote.source.key_set() {
            plugin.install(remote.issuer, set.clone());
        }
        log_events(remote);
        let Some(fetch) = remote.source.poll_fetch(now) else {
            return;
        };
        let dispatched = Call::new(&fetch, &plugin.fetch).and_then(|call| {
            let headers = call.headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            self.dispatch_http_call(&call.cluster, headers, None, vec![], call.timeout)
                .map_err(|status| {
                    jwtv_keyset::FetchError::Connect(format!(
                        "cannot call the Envoy cluster {:?} ({status:?}): define it",
                        call.cluster
                    ))
                })
        });
        match dispatched {
            Ok(token) => {
                self.calls.insert(token, index);
            }
            Err(error) => {
                // Backoff from here; the retry goes out on a later tick.
                remote.source.handle_failed(now, error);
                log_events(remote);
            }
        }
    }
}

/// One log line per event worth one, at the level keyset gives it.
fn log_events(remote: &mut Remote) {
    while let Some(event) = remote.source.poll_event() {
        match event.level() {
            Level::Warn => log::warn!("{}", remote.describe(&event)),
            Level::Info => log::info!("{}", remote.describe(&event)),
            Level::Debug => {}
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = self.get_plugin_configuration().unwrap_or_default();
        let env = |name: &str| std::env::var(name).ok();
        // A VM that cannot draw a secret keeps the SHA-256 cache key: slower, just as safe.
        let mut secret = [0u8; 16];
        let secret = getrandom::getrandom(&mut secret).ok().map(|()| secret);
        let plugin = match Plugin::load(&text, &env, secret) {
            Ok((plugin, warnings)) => {
                for warning in warnings {
                    log::warn!("jwt-validator: warning: {warning}");
                }
                Ok(plugin)
            }
            Err(e) => {
                // Accepted anyway (returning false would leave the route without this filter in some
                // hosts): every request is then refused, and this line says why.
                log::error!("jwt-validator: configuration error: {e}");
                Err(e.to_string())
            }
        };
        if let Ok(plugin) = &plugin {
            let seed = millis(self.get_current_time());
            let remotes: Vec<Remote> = plugin
                .remote
                .iter()
                .map(|r| Remote::new(r, &plugin.fetch, seed))
                .collect();
            if !remotes.is_empty() {
                self.set_tick_period(TICK);
            }
            *self.remotes.borrow_mut() = remotes;
        }
        self.plugin = Some(Rc::new(plugin));
        true
    }

    fn on_tick(&mut self) {
        let Some(configured) = self.plugin.clone() else {
            return;
        };
        let Ok(plugin) = configured.as_ref() else {
            return;
        };
        let now = millis(self.get_current_time());
        let count = self.remotes.borrow().len();
        for index in 0..count {
            let key = self.remotes.borrow()[index].shared_key.clone();
            if let (Some(bytes), _) = self.get_shared_data(&key) {
                self.remotes.borrow_mut()[index].import(&bytes);
            }
            self.remotes.borrow_mut()[index].source.handle_timeout(now);
            self.drive(plugin, index, now);
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Check {
            plugin: self.plugin.clone(),
            remotes: self.remotes.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Check {
    plugin: Option<Configured>,
    remotes: Remotes,
}

impl Context for Check {}

impl HttpContext for Check {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let Some(Ok(plugin)) = self.plugin.as_deref() else {
            return self.deny(plugin::misconfigured());
        };
        // A property lookup is a costly hostcall: only made when there are policies to pick.
        let policy = plugin
            .has_policies()
            .then(|| self.get_property(POLICY_PROPERTY.to_vec()))
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok());
        if let Some(name) = &policy {
            if !plugin.has_policy(name) {
                log::error!(
                    "jwt-validator: a route names the policy {name:?}, which the configuration does not define"
                );
                return self.deny(plugin::unknown_policy(name));
            }
        }
        let now = self
            .get_current_time()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let headers = self.get_http_request_headers_bytes();
        // Another hostcall, only made when certificate-bound tokens are checked against the
        // downstream TLS session; absent on a connection without a client certificate.
        let peer = plugin
            .reads_peer_certificate()
            .then(|| self.get_property(PEER_CERTIFICATE_PROPERTY.to_vec()))
            .flatten()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .filter(|digest| !digest.is_empty());
        let verdict = plugin.decide_with_peer(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            policy.as_deref(),
            peer,
            now,
        );
        match verdict {
            // One write per header, measured against writing the whole map back in one hostcall
            // (Envoy then removes and re-adds every header): no cheaper under callgrind.
            Verdict::Allow { remove, set } => {
                for name in remove {
                    self.set_http_request_header(&name, None);
                }
                for (name, value) in &set {
                    self.set_http_request_header_bytes(name.as_str(), Some(value.as_bytes()));
                }
                Action::Continue
            }
            Verdict::Deny(response) => self.deny(response),
            // Answered from the set in hand (a request cannot wait here); the refetch, if the cooldown
            // allows one, goes out on the next tick and serves the requests after it.
            Verdict::UnknownKid(response, issuer) => {
                let now = millis(self.get_current_time());
                for remote in self.remotes.borrow_mut().iter_mut() {
                    if remote.issuer == issuer {
                        let seen = remote.source.generation();
                        let _ = remote.source.handle_unknown_kid(now, seen);
                    }
                }
                self.deny(response)
            }
        }
    }
}

/// Wall-clock milliseconds: snapshots in shared data are compared across VMs, so one clock for all.
fn millis(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Check {
    /// Sends `response` as the local reply and stops the request there.
    fn deny(&self, response: http::Response<Vec<u8>>) -> Action {
        let headers: Vec<(&str, &str)> = response
            .headers()
            .iter()
            // Envoy frames the body itself.
            .filter(|(n, _)| *n != http::header::CONTENT_LENGTH)
            .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
            .collect();
        self.send_http_response(
            u32::from(response.status().as_u16()),
            headers,
            Some(response.body()),
        );
        Action::Pause
    }
}
