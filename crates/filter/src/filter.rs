//! The proxy-wasm shell: one root context per plugin (it reads the configuration), one HTTP context
//! per request (it asks [`Plugin::decide`] and carries the verdict out through hostcalls).

use std::rc::Rc;
use std::time::UNIX_EPOCH;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};

use crate::plugin::{self, Plugin, Verdict};

/// Where a route names its policy: `metadata.filter_metadata["jwt-validator"].policy` of the route
/// (Envoy's Wasm filter has no per-route configuration; route metadata is what it lets a filter read).
const POLICY_PROPERTY: [&str; 5] = [
    "xds",
    "route_metadata",
    "filter_metadata",
    "jwt-validator",
    "policy",
];

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| Box::new(Root { plugin: None }));
}}

/// The plugin as configured: `Err` holds the configuration error, answered on every request.
type Configured = Rc<Result<Plugin, String>>;

struct Root {
    plugin: Option<Configured>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let text = self.get_plugin_configuration().unwrap_or_default();
        let env = |name: &str| std::env::var(name).ok();
        let plugin = match Plugin::load(&text, &env) {
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
        self.plugin = Some(Rc::new(plugin));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Check {
            plugin: self.plugin.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Check {
    plugin: Option<Configured>,
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
        let verdict = plugin.decide(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())),
            policy.as_deref(),
            now,
        );
        match verdict {
            Verdict::Allow { remove, set } => {
                for name in remove {
                    self.set_http_request_header(&name, None);
                }
                for (name, value) in set {
                    self.set_http_request_header_bytes(&name, Some(&value));
                }
                Action::Continue
            }
            Verdict::Deny(response) => self.deny(response),
        }
    }
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
