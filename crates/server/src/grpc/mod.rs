//! `envoy.service.auth.v3.Authorization/Check` on the listener's port (gRPC over HTTP/2): one more
//! way in to the same `/auth` decision, for Envoy's gRPC `ext_authz` (Istio's `envoyExtAuthzGrpc`,
//! Envoy Gateway's `extAuth.grpc`).
//!
//! A check is translated into the `/auth` request it stands for ([`translate`]), answered by the
//! service as any HTTP request is (the same timeout, metrics, decision logs and unknown-kid refetch),
//! and the answer translated back. This module only changes shapes and moves bytes: it must not look
//! at tokens or claims, nor decide anything the service would not decide from the HTTP request.

pub mod translate;

use std::sync::Arc;

use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use http::{Method, Request, Version};

use crate::serve::State;

/// The one gRPC method served.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// Whether `request` is a gRPC call of [`CHECK_PATH`] (gRPC needs HTTP/2's trailers; over HTTP/1.1 the
/// path is an unknown route like any other).
pub fn is_check<B>(request: &Request<B>) -> bool {
    request.version() == Version::HTTP_2
        && request.method() == Method::POST
        && request.uri().path() == CHECK_PATH
}

/// The gRPC service for one call, over the listener's state.
pub fn service(state: Arc<State>, max_message_bytes: usize) -> AuthorizationServer<Checker> {
    AuthorizationServer::new(Checker { state })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

pub struct Checker {
    state: Arc<State>,
}

#[tonic::async_trait]
impl Authorization for Checker {
    async fn check(
        &self,
        request: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let check = request.into_inner();
        let translated = translate::to_auth_request(&check).map_err(|error| {
            tracing::warn!(%error, "gRPC check refused: the gateway's request cannot be served");
            tonic::Status::unavailable(error.to_string())
        })?;
        let (handled, active) = self.state.decide(&translated.request).await;
        translate::to_check_response(
            &handled.response,
            &translated,
            &active.service.options().gateway,
        )
        .map(tonic::Response::new)
        .map_err(|undecided| tonic::Status::unavailable(undecided.to_string()))
    }
}
