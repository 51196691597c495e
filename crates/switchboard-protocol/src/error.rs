//! The one table of error codes. Every error a client can see, over REST (`{code, message}`)
//! or WebSocket (`{"t":"err","code":…}`), carries one of these codes. `docs/errors.md` is
//! checked against [`ErrorCode::ALL`] by a test, so the table and the docs cannot drift.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = ($code:literal, $status:literal, $desc:literal), )*) => {
        /// A stable, snake_case error code. Adding a variant is a protocol change; renaming
        /// one is a breaking change.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status the REST API answers with.
            pub fn http_status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// One line saying when the code is used.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$variant => $desc,)* }
            }
        }
    };
}

error_codes! {
    BadRequest = ("bad_request", 400, "the request is malformed: a field is missing, of the wrong type or out of range"),
    MethodNotAllowed = ("method_not_allowed", 405, "the endpoint does not take this HTTP method; the Allow header lists the ones it takes"),
    BodyTooLarge = ("body_too_large", 413, "a REST request body is larger than 1 MiB"),
    MalformedFrame = ("malformed_frame", 400, "a WebSocket frame is not valid JSON or not a known frame shape"),
    FrameTooLarge = ("frame_too_large", 413, "a WebSocket frame is larger than 32 KiB"),
    UnsupportedVersion = ("unsupported_version", 400, "the hello frame asks for a protocol version this server does not speak"),
    HelloRequired = ("hello_required", 400, "the first frame on a socket must be hello"),
    Unauthenticated = ("unauthenticated", 401, "no valid credentials were presented"),
    TokenInvalid = ("token_invalid", 401, "the consumer JWT failed verification (signature, algorithm, issuer, audience or subject)"),
    TokenExpired = ("token_expired", 401, "the consumer JWT has expired (or is not yet valid), or the API token has expired; reconnect with a fresh one"),
    InvalidCredentials = ("invalid_credentials", 401, "wrong email or password"),
    SessionExpired = ("session_expired", 401, "the agent session has expired or was logged out; log in again"),
    Forbidden = ("forbidden", 403, "the caller's role does not allow this action"),
    AuthModeDisabled = ("auth_mode_disabled", 403, "the app does not allow this authentication mode"),
    NotFound = ("not_found", 404, "the resource does not exist or belongs to another brand"),
    BrandNotFound = ("brand_not_found", 404, "no brand has this id"),
    AppNotFound = ("app_not_found", 404, "the brand has no app with this id"),
    ConversationNotFound = ("conversation_not_found", 404, "no conversation with this id is visible to the caller"),
    ConsumerNeverWrote = ("consumer_never_wrote", 409, "agents cannot start a conversation: the consumer must write first"),
    ConversationClosed = ("conversation_closed", 409, "the conversation is closed; a new consumer message starts a new one"),
    NotAssigned = ("not_assigned", 403, "the conversation is not assigned to this agent"),
    TransferRefused = ("transfer_refused", 409, "the transfer target cannot take the conversation: the agent is not online, has no free capacity, or already holds it"),
    OfferGone = ("offer_gone", 409, "there is no offer of this conversation to this agent: it expired, was declined, or the conversation closed or moved"),
    TextEmpty = ("text_empty", 400, "a message must contain at least one non-whitespace character"),
    TextTooLong = ("text_too_long", 400, "the message is longer than the channel's limit (2000 characters for in-app and web); nothing was stored"),
    InvalidClientId = ("invalid_client_id", 400, "the idempotency id (cid) is empty or longer than 64 bytes"),
    SurveyNotAvailable = ("survey_not_available", 409, "no CSAT survey is open for this conversation (not closed by an agent, or CSAT is off)"),
    SurveyAlreadyAnswered = ("survey_already_answered", 409, "the CSAT survey of this conversation was already answered"),
    InvalidScore = ("invalid_score", 400, "a CSAT score must be an integer from 1 to 5 and the comment at most 1000 characters"),
    Conflict = ("conflict", 409, "a resource with this name or id already exists"),
    InvalidKey = ("invalid_key", 400, "a public key is not a valid PEM (RSA or P-256 EC) or JWKS document"),
    TlsRequired = ("tls_required", 400, "this server speaks https only and the request came over plain HTTP; use the https address"),
    OriginRefused = ("origin_refused", 403, "a browser request came from an origin the server does not allow (neither its own nor one in allowed_origins)"),
    WeakPassword = ("weak_password", 400, "the password is refused by the password policy (10 to 256 characters, strength score at least 3 of 4, not built from the account's own names); the message names the rule"),
    BrandRequired = ("brand_required", 400, "these credentials match accounts in more than one brand; log in again naming the brand"),
    TooManyRequests = ("too_many_requests", 429, "a limit against abuse was reached: failed logins per account or client address, new anonymous identities or open connections per client address; the message names the limit, and Retry-After says when to try again"),
    BodyTimeout = ("body_timeout", 408, "the request body did not arrive in full within the body read timeout (body_read_timeout_secs, 30 s by default); the connection is closed"),
    Internal = ("internal", 500, "an unexpected server error; it was logged with details"),
    Unavailable = ("unavailable", 503, "the server is shutting down, its storage is unavailable, or it is busy (too many passwords being checked, too many sockets waiting to authenticate); retry, after Retry-After when sent"),
    /// What a client decodes a code it does not know into (a newer server's). Never sent.
    #[serde(other)]
    Unknown = ("unknown", 500, "never sent: what a client decodes an error code it does not know (from a newer server) into; treat the request as refused and show the message"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// WebSocket close codes the server uses beyond the standard ones. Clients decide whether
/// to reconnect from these: see `docs/protocol.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCode {
    /// 1001: the server is shutting down. Reconnect with backoff.
    GoingAway,
    /// 1009: a frame exceeded the hard wire limit.
    TooBig,
    /// 4000: protocol violation (no hello, bad version). Do not retry unchanged.
    ProtocolError,
    /// 4001: the consumer token expired. Fetch a fresh token and reconnect.
    TokenExpired,
    /// 4003: authentication failed or access forbidden. Do not retry with the same credentials.
    Unauthorized,
    /// 4008: no frame (not even a pong) arrived within the heartbeat timeout.
    HeartbeatTimeout,
}

impl CloseCode {
    /// The numeric code sent in the close frame.
    pub fn code(self) -> u16 {
        match self {
            CloseCode::GoingAway => 1001,
            CloseCode::TooBig => 1009,
            CloseCode::ProtocolError => 4000,
            CloseCode::TokenExpired => 4001,
            CloseCode::Unauthorized => 4003,
            CloseCode::HeartbeatTimeout => 4008,
        }
    }
}
