//! Liveness and readiness probes.

use crate::response;
use http::{Method, Response, StatusCode};
use serde_json::json;

pub(crate) fn healthz(method: &Method) -> Response<Vec<u8>> {
    if !crate::is_read(method) {
        return response::method_not_allowed("GET, HEAD");
    }
    response::json(StatusCode::OK, &json!({"status": "ok"}))
}

/// 200 only once every key source has a usable key set, so an orchestrator sends no traffic before.
pub(crate) fn readyz(method: &Method, ready: bool) -> Response<Vec<u8>> {
    if !crate::is_read(method) {
        return response::method_not_allowed("GET, HEAD");
    }
    if ready {
        response::json(StatusCode::OK, &json!({"status": "ready"}))
    } else {
        response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not_ready"}),
        )
    }
}
