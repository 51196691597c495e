//! The API error type: an [`ErrorCode`] from the one table plus a human message. REST
//! answers it as `{"code", "message"}` with the code's HTTP status; WebSocket handlers turn
//! it into an `err` frame. Internal errors are logged in full and answered generically.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::ErrorCode;
use switchboard_store::{AppendError, CsatError, StoreError};

/// An error a client may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Seconds to wait before trying again: REST sends them as `Retry-After`.
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a specific message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), retry_after: None }
    }

    /// An error with the code's table description as message.
    pub fn code(code: ErrorCode) -> ApiError {
        ApiError { code, message: code.description().to_owned(), retry_after: None }
    }

    /// The same error, telling the client to wait `secs` seconds before trying again.
    pub fn retry_after(mut self, secs: u64) -> ApiError {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// A bad request naming what was wrong.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// Logs `error` in full and returns the generic internal error.
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(%error, "internal error");
        ApiError::code(ErrorCode::Internal)
    }
}

/// The JSON body of a REST error.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case code from docs/errors.md.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response =
            (status, Json(ErrorBody { code: self.code.as_str().to_owned(), message: self.message })).into_response();
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound => ApiError::code(ErrorCode::NotFound),
            StoreError::Conflict(_) => ApiError::code(ErrorCode::Conflict),
            StoreError::ShuttingDown => ApiError::code(ErrorCode::Unavailable),
            other => ApiError::internal(other),
        }
    }
}

impl From<AppendError> for ApiError {
    fn from(error: AppendError) -> ApiError {
        match error {
            AppendError::ConversationNotFound => ApiError::code(ErrorCode::ConversationNotFound),
            AppendError::ConversationClosed => ApiError::code(ErrorCode::ConversationClosed),
            AppendError::ConsumerNeverWrote => ApiError::code(ErrorCode::ConsumerNeverWrote),
            AppendError::NotAssigned => ApiError::code(ErrorCode::NotAssigned),
            AppendError::Store(error) => error.into(),
        }
    }
}

impl From<CsatError> for ApiError {
    fn from(error: CsatError) -> ApiError {
        match error {
            CsatError::NotFound => ApiError::code(ErrorCode::ConversationNotFound),
            CsatError::NotAvailable => ApiError::code(ErrorCode::SurveyNotAvailable),
            CsatError::AlreadyAnswered => ApiError::code(ErrorCode::SurveyAlreadyAnswered),
            CsatError::Store(error) => error.into(),
        }
    }
}

/// Result of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
