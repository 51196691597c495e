//! SDK errors. Every error says whether trying again later can help (`is_transient`), so an
//! app can tell "you are offline" from "this will never work".

use crate::store::StoreError;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdkError {
    /// The encryption key does not open this data directory. Permanent.
    #[error("the encryption key does not match this data directory")]
    WrongKey,
    /// The local cache failed (disk full, corrupted file). Permanent until fixed.
    #[error("local storage: {0}")]
    Storage(String),
    /// No connection to the server right now; the request was not sent. Transient.
    #[error("not connected to the server")]
    Offline,
    /// The server refused the request; `code` is from the server's error table.
    #[error("{code}: {message}")]
    Server { code: String, message: String },
    /// The app passed a bad value (named in the message). Permanent.
    #[error("{0}")]
    InvalidInput(String),
    /// Authentication failed: the token provider failed, or the server refused the token.
    #[error("authentication: {0}")]
    Auth(String),
    /// The server's TLS certificate was refused (expired, for another host name, not signed
    /// by a trusted authority); the message says which. Permanent until the server's
    /// certificate or the app's trust settings change; the client keeps retrying meanwhile.
    #[error("the server's TLS certificate was refused: {0}")]
    Certificate(String),
    /// The client was shut down.
    #[error("the client is shut down")]
    Closed,
}

impl SdkError {
    /// Whether the same call may succeed later without changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            SdkError::Offline => true,
            SdkError::Server { code, .. } => matches!(code.as_str(), "internal" | "unavailable" | "token_expired"),
            SdkError::Auth(_) => true,
            SdkError::WrongKey
            | SdkError::Storage(_)
            | SdkError::InvalidInput(_)
            | SdkError::Certificate(_)
            | SdkError::Closed => false,
        }
    }
}

impl From<StoreError> for SdkError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::WrongKey => SdkError::WrongKey,
            other => SdkError::Storage(other.to_string()),
        }
    }
}
