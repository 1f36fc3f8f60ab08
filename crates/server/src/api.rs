//! The HTTP API hosts talk to: versioned JSON under `/v1/`, with errors as JSON too.
//!
//! A malformed or oversized body is the client's fault and answers 4xx with what to fix;
//! a 5xx means the server or its database failed.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sshield_core::{Policy, UnixTime};

use crate::seal::SealKey;
use crate::storage::{Backend, StorageError};
use crate::verify;

/// What every request handler shares.
#[derive(Debug)]
pub struct App {
    /// The database.
    pub store: Backend,
    /// The key user records are sealed with.
    pub key: SealKey,
    /// How codes are checked.
    pub policy: Policy,
    /// Accepted clock skew of signed host requests.
    pub signature_skew: Duration,
}

/// The routes, with `max_body` the largest body accepted.
pub fn router(app: Arc<App>, max_body: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/verify", post(verify_handler))
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(app)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// An error answer: a status and a message that says what to fix.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client's log.
    pub message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: &self.message,
            }),
        )
            .into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum's own statuses: 400 bad JSON, 413 too large, 415 not JSON, 422 wrong fields.
        Self {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        tracing::error!(error = %e, "database");
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server's database failed; try again or another replica".to_owned(),
        }
    }
}

impl ApiError {
    /// A 422 for a well-formed body with an unusable value.
    pub fn invalid(message: String) -> Self {
        Self {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message,
        }
    }
}

/// `POST /v1/verify`: is this code good for this user?
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The login name.
    pub user: String,
    /// What the user typed.
    pub code: String,
    /// The client's address, as the host saw it.
    #[serde(default)]
    pub source: Option<String>,
    /// The PAM service (`sshd`, `sudo`...).
    pub service: String,
}

/// The answer to a verification.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct VerifyResponse {
    /// `allowed` or `denied`.
    pub outcome: String,
    /// How the user passed: `totp`, `hotp` or `backup`.
    pub method: Option<String>,
    /// Why not: `wrong-code`, `replayed`, `not-enrolled`... (the same words as a host's log).
    pub reason: Option<String>,
}

async fn verify_handler(
    State(app): State<Arc<App>>,
    body: Result<Json<VerifyRequest>, JsonRejection>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let Json(request) = body?;
    // Until hosts sign their requests, the host is not known.
    let answer = verify::verify(&app, "-", &request, UnixTime::now()).await?;
    Ok(Json(answer))
}
