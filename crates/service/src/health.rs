//! Liveness and readiness probes.

use crate::response;
use http::{Method, Response, StatusCode};
use serde::Serialize;

/// `{"status": …}`. A struct, not `json!`: that macro's fallible conversion links serde_json's error
/// tables into the size-budgeted component for nothing.
#[derive(Serialize)]
struct Status {
    status: &'static str,
}

pub(crate) fn healthz(method: &Method) -> Response<Vec<u8>> {
    if !crate::is_read(method) {
        return response::method_not_allowed("GET, HEAD");
    }
    response::json(StatusCode::OK, &Status { status: "ok" })
}

/// 200 only once every key source has a usable key set, so an orchestrator sends no traffic before.
pub(crate) fn readyz(method: &Method, ready: bool) -> Response<Vec<u8>> {
    if !crate::is_read(method) {
        return response::method_not_allowed("GET, HEAD");
    }
    if ready {
        response::json(StatusCode::OK, &Status { status: "ready" })
    } else {
        response::json(
            StatusCode::SERVICE_UNAVAILABLE,
            &Status {
                status: "not_ready",
            },
        )
    }
}
