//! The HTTP API hosts talk to: versioned JSON under `/v1/`, with errors as JSON too.
//!
//! A malformed or oversized body is the client's fault and answers 4xx with what to fix;
//! a 5xx means the server or its database failed.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{middleware, Json, Router};
use serde::de::DeserializeOwned;
use sshield_core::config::RateLimit;
use sshield_core::{Policy, UnixTime};
pub use sshield_wire::api::{ErrorBody, JoinRequest, JoinResponse, VerifyRequest, VerifyResponse};
use sshield_wire::api::{JOIN_PATH, VERIFY_PATH};
use sshield_wire::offline::{AUDIT_PATH, OFFLINE_PATH, REPORT_PATH};

use crate::config::Retention;
use crate::hosts;
use crate::metrics::{self, Metrics};
use crate::offline;
use crate::push::app;
use crate::push::approval::{self, Push};
use crate::push::passkey;
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
    /// Failure counting and lockout per (user, source).
    pub rate_limit: RateLimit,
    /// Accepted clock skew of signed host requests.
    pub signature_skew: Duration,
    /// How long a join token stays valid.
    pub join_token_ttl: Duration,
    /// How long audit entries are kept.
    pub audit_retention: Retention,
    /// What `/metrics` reports.
    pub metrics: Metrics,
    /// Push approval: settings, notifier, waiters.
    pub push: Push,
    /// The longest offline window a host is given (zero: none).
    pub offline_max_window: Duration,
    /// Hosts' public keys from good requests, for checking a verification's signature before
    /// its reads (confirmed by the host's row read with them).
    pub host_keys: hosts::KeyCache,
    /// The user and source rows of verifications, for the next of the same user and source
    /// (confirmed by the writes they decide).
    pub verification_reads: crate::verify::ReadCache,
}

/// The routes, with `max_body` the largest body accepted.
pub fn router(app: Arc<App>, max_body: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route(VERIFY_PATH, post(verify_handler))
        .route(JOIN_PATH, post(join_handler))
        .route(OFFLINE_PATH, post(offline::material_handler))
        .route(REPORT_PATH, post(offline::report_handler))
        .route(AUDIT_PATH, get(offline::audit_handler))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics::handler))
        .route("/v1/enroll", post(approval::enroll_handler))
        .route("/v1/enroll/passkey", post(passkey::enroll_begin_handler))
        .route("/v1/push", post(approval::create_handler))
        .route("/v1/push/wait", post(approval::wait_handler))
        .route("/v1/push/key", get(approval::key_handler))
        .route("/v1/me/approvals", get(approval::list_handler))
        .route("/v1/me/approvals/{id}", post(approval::decide_handler))
        .route(
            "/v1/me/approvals/{id}/challenge",
            post(passkey::challenge_handler),
        )
        .route("/v1/me/subscription", put(approval::subscribe_handler))
        .route("/v1/me/authenticator", post(app::begin_handler))
        .route("/v1/me/authenticator/confirm", post(app::confirm_handler))
        .merge(crate::web::routes())
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn_with_state(
            Arc::clone(&app),
            metrics::track,
        ))
        .with_state(app)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// The API's OpenAPI 3 document, written by hand next to the docs (docs/openapi.json) and
/// served as committed; tests/openapi.rs checks it against the routes and types.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// An error answer: a status and a message that says what to fix.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for the client's log.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                error: self.message,
            }),
        )
            .into_response()
    }
}

impl From<BytesRejection> for ApiError {
    fn from(rejection: BytesRejection) -> Self {
        // 413 for a body over the limit.
        let status = rejection.status();
        let mut message = rejection.body_text();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            message.push_str(
                "; the body is larger than this server accepts (`max_body_bytes` in its \
                 config, 16384 by default; a verification is well under 1 kB)",
            );
        }
        Self { status, message }
    }
}

/// The JSON body of a request: 415 if it is not JSON, 400 if it does not parse, 422 if a
/// field is missing, unknown or of the wrong type. The message names the field and where.
pub(crate) fn parse_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: "send the body as JSON with Content-Type: application/json".to_owned(),
        });
    }
    serde_json::from_slice(body).map_err(|e| {
        let status = match e.classify() {
            serde_json::error::Category::Data => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError {
            status,
            message: format!("the request body: {e}"),
        }
    })
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        tracing::error!(error = %e, "database");
        metrics::database_error();
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

async fn verify_handler(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let body = body?;
    let now = UnixTime::now();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    // Only a joined host may ask: an open endpoint would let anyone guess codes.
    let signed =
        hosts::check_signature_cached(&app, method.as_str(), path, &headers, &body, now).await?;
    let answer = match parse_json::<VerifyRequest>(&headers, &body) {
        Ok(request) => verify::verify(&app, &signed, &request, now).await,
        Err(e) => Err(e),
    };
    match answer {
        Ok(answer) => Ok(Json(answer)),
        // Refused before its nonce was stored with a decision: remembered on its own, so a
        // second sending is a replay as any other (and answered as one).
        Err(e) if e.status.is_client_error() => {
            // (A host refused on its row, or its row not read yet: its nonce is not kept.)
            hosts::confirm(&app, &signed).await?;
            hosts::remember(&app, &signed).await?;
            Err(e)
        }
        Err(e) => Err(e),
    }
}

async fn join_handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<JoinResponse>, ApiError> {
    let body = body?;
    let request: JoinRequest = parse_json(&headers, &body)?;
    let host = hosts::join(
        &app,
        &request.token,
        &request.name,
        &request.public_key,
        UnixTime::now(),
    )
    .await?;
    Ok(Json(JoinResponse { host }))
}
