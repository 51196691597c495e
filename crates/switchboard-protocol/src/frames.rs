//! Frame types. [`ClientFrame`] is what consumers and agents send; [`ServerFrame`] is what
//! the server sends. Both are internally tagged by `t`. Unknown fields are ignored, so a
//! newer client can talk to an older server within one protocol version.
//!
//! Times are milliseconds since the Unix epoch (UTC). Conversation ids are integers.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;

/// Identifies a conversation. Unique across the whole deployment; never reused.
pub type ConversationId = i64;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Who wrote a message or sent a receipt.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// The consumer (any of their devices).
    #[serde(rename = "c")]
    Consumer,
    /// An agent of the brand.
    #[serde(rename = "a")]
    Agent,
    /// The system (notices such as "conversation closed").
    #[serde(rename = "s")]
    System,
}

impl Side {
    /// Stable one-letter form used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Consumer => "c",
            Side::Agent => "a",
            Side::System => "s",
        }
    }

    /// Parses [`Side::as_str`].
    pub fn parse(s: &str) -> Option<Side> {
        match s {
            "c" => Some(Side::Consumer),
            "a" => Some(Side::Agent),
            "s" => Some(Side::System),
            _ => None,
        }
    }
}

/// Kind of a receipt: delivered to the device, or read by the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// The message reached the other side's device.
    #[serde(rename = "dlv")]
    Delivered,
    /// The other side has seen the message.
    Read,
}

/// Conversation status.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationStatus {
    /// Open: waiting in a queue or assigned to an agent.
    Open,
    /// Closed by an agent, the consumer or the system.
    Closed,
}

impl ConversationStatus {
    /// Stable form used in storage and query strings.
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationStatus::Open => "open",
            ConversationStatus::Closed => "closed",
        }
    }

    /// Parses [`ConversationStatus::as_str`].
    pub fn parse(s: &str) -> Option<ConversationStatus> {
        match s {
            "open" => Some(ConversationStatus::Open),
            "closed" => Some(ConversationStatus::Closed),
            _ => None,
        }
    }
}

/// Agent availability. Only `online` agents receive new conversations; `away` and
/// `back_soon` keep the ones they have.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    /// Receives new conversations up to capacity.
    Online,
    /// Keeps current conversations, receives no new ones.
    Away,
    /// Like away, announced as a short break.
    BackSoon,
    /// Not working.
    Offline,
}

impl AgentState {
    /// Stable form used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Online => "online",
            AgentState::Away => "away",
            AgentState::BackSoon => "back_soon",
            AgentState::Offline => "offline",
        }
    }

    /// Parses [`AgentState::as_str`].
    pub fn parse(s: &str) -> Option<AgentState> {
        match s {
            "online" => Some(AgentState::Online),
            "away" => Some(AgentState::Away),
            "back_soon" => Some(AgentState::BackSoon),
            "offline" => Some(AgentState::Offline),
            _ => None,
        }
    }
}

/// The push service a device token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushProvider {
    /// Apple Push Notification service.
    Apns,
    /// Firebase Cloud Messaging.
    Fcm,
}

impl PushProvider {
    /// Stable form used in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            PushProvider::Apns => "apns",
            PushProvider::Fcm => "fcm",
        }
    }
}

/// Device information a consumer client reports in `hello`, shown to agents.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Operating system and version, e.g. "iOS 18.1".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// The brand's app version, e.g. "4.2.0".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_version: Option<String>,
    /// "phone", "tablet", "desktop", "web".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
}

/// The first frame on every socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Protocol version; must equal [`crate::PROTOCOL_VERSION`].
    pub v: u32,
    /// Consumer sockets: the Brand ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    /// Consumer sockets: the App ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Consumer sockets, JWT mode: the token signed by the brand's backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Consumer sockets, unauthenticated mode: the device secret issued earlier, or an empty
    /// string to ask for a new anonymous identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anon: Option<String>,
    /// Consumer sockets, OAuth2 code flow: an authorization code from the brand's identity
    /// provider, which the server exchanges for the consumer's id token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Box<AuthCode>>,
    /// Agent sockets: the session token from `POST /api/v1/auth/login` (browsers may send
    /// the session cookie instead), or an API token, which acts as itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// Consumer sockets: device information for agents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
    /// Consumer sockets: the entry point, a skill id the app allows (its default skill or
    /// one of its entry skills); conversations this device opens start in it. Absent: the
    /// app's default skill, else the brand's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<i64>,
    /// Consumer sockets: the language the app speaks, a BCP 47 tag (e.g. `de-AT`, at most
    /// 35 characters); automatic messages use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// An authorization code a device hands over (the OAuth2 code flow), with what its
/// authorization request used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthCode {
    /// The authorization code.
    pub code: String,
    /// The `redirect_uri` of the authorization request (else the app's configured one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// The PKCE `code_verifier`, if the authorization request used PKCE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier: Option<String>,
}

/// A frame from a client (consumer or agent). `id`, where present, is echoed in the answer.
/// Commands whose only answer is `ok` (`rcpt`, `close`, `csat`, `state`) are not answered on
/// success when they carry no `id`; `send` is always answered by `ack`, `sync` by `msgs`,
/// `history` by `history` and `ping` by `pong`. Errors are always answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Authenticate the socket. Answered by `welcome` or by `err` and a close.
    Hello(Hello),
    /// Send a text message. Answered by `ack` once the message is durably stored.
    Send {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Client idempotency id: resending the same `cid` never stores a second message.
        cid: String,
        /// Message text, at most 2000 Unicode scalar values on in-app and web.
        text: String,
        /// Agents: the conversation to write to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        c: Option<ConversationId>,
        /// Agents: write to a consumer instead of a conversation id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        consumer: Option<i64>,
    },
    /// Cumulative receipt: every message of the other side up to `seq` is delivered/read.
    Rcpt {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
        seq: i64,
        k: ReceiptKind,
    },
    /// Typing indicator; relayed, never stored.
    Typing { c: ConversationId, on: bool },
    /// Everything in conversation `c` after `after` (resume). Answered by `msgs`.
    Sync {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
        after: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Resolve (close) a conversation.
    Close {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
    },
    /// Answer the CSAT survey of a conversation an agent closed.
    Csat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
        score: u8,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
    },
    /// Consumers: list own conversations. Answered by `history`.
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        /// Opened at or after this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<Millis>,
        /// Opened before this time.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        to: Option<Millis>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<ConversationStatus>,
        /// Opaque cursor from a previous page's `next`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cursor: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Agents: change availability.
    State {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        state: AgentState,
    },
    /// Consumers: register this device's push token, used when no device is connected.
    Push {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        provider: PushProvider,
        token: String,
    },
    /// Consumers: unregister this device's push token (the user logged out on the device):
    /// no push goes to it any more, whoever it was registered for in the brand.
    Unpush {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        provider: PushProvider,
        token: String,
    },
    /// Application-level heartbeat, answered by `pong`.
    Ping {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
    /// Agents: take a conversation offered to them.
    Accept {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
    },
    /// Agents: pass on a conversation offered to them (it is offered to someone else).
    Decline {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
    },
}

impl ClientFrame {
    /// The request id, if the frame carries one.
    pub fn request_id(&self) -> Option<u64> {
        match self {
            ClientFrame::Hello(_) | ClientFrame::Typing { .. } => None,
            ClientFrame::Send { id, .. }
            | ClientFrame::Rcpt { id, .. }
            | ClientFrame::Sync { id, .. }
            | ClientFrame::Close { id, .. }
            | ClientFrame::Csat { id, .. }
            | ClientFrame::History { id, .. }
            | ClientFrame::State { id, .. }
            | ClientFrame::Push { id, .. }
            | ClientFrame::Unpush { id, .. }
            | ClientFrame::Accept { id, .. }
            | ClientFrame::Decline { id, .. }
            | ClientFrame::Ping { id } => *id,
        }
    }
}

/// A stored message as clients see it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub c: ConversationId,
    /// Gap-free sequence number within the conversation, from 1.
    pub seq: i64,
    /// When the server stored it.
    pub ts: Millis,
    pub from: Side,
    /// Display name of the author (agent name for agent messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub text: String,
    /// The author's idempotency id; lets the author's other devices match pending messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cid: Option<String>,
}

/// What happened to a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationEventKind {
    /// A new conversation was opened by the consumer's message.
    Opened,
    /// Waiting for an agent; `eta` says how long, in seconds.
    Queued,
    /// An agent took it; `agent` is their display name.
    Assigned,
    /// Resolved; `by` says who closed it.
    Closed,
    /// Agents only: the conversation left this agent (transferred to `agent`, or back to a
    /// queue when `agent` is absent).
    Transferred,
    /// Agents only: the conversation is offered to this agent until `until`; answer with
    /// `accept` or `decline` (skills in offer mode).
    Offered,
    /// Agents only: an offer to this agent ended (declined, expired, or the conversation
    /// closed or moved); drop it.
    Withdrawn,
}

/// Consumer profile as agents see it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerProfile {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceInfo>,
}

/// Summary of a conversation, in `welcome`, `history` and agent `conv` events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationSummary {
    pub c: ConversationId,
    pub status: ConversationStatus,
    pub opened: Millis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<Millis>,
    /// Sequence number of the last message.
    pub last_seq: i64,
    /// CSAT score, once answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csat: Option<u8>,
    /// Consumers: a CSAT survey is waiting for an answer (`csat`), for a consumer who was
    /// away when the `survey` event was sent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub survey: bool,
    /// Agents only: who the consumer is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer: Option<ConsumerProfile>,
    /// Skill the conversation is routed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skill: Option<String>,
}

/// The authenticated identity, in `welcome`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Agents: current availability.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AgentState>,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The answer to a good `hello`.
    Welcome {
        v: u32,
        me: Me,
        /// Consumers: their open conversation, if any. Agents: their assigned ones.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        convs: Vec<ConversationSummary>,
        /// Unauthenticated mode: the device secret to present next time (only when new).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        anon: Option<String>,
        /// Consumers whose `hello` carried both a `token` and an `anon` device secret: the
        /// anonymous identity's conversations moved to the authenticated consumer (this many),
        /// and the device secret is retired — forget it. `0` when the secret was unknown
        /// (already retired).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merged: Option<u64>,
        /// Heartbeat interval in seconds: send anything (e.g. `ping`) at least this often.
        hb: u32,
    },
    /// A message was durably stored; `seq` is its place in the conversation.
    Ack {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
        seq: i64,
        ts: Millis,
    },
    /// A successful command that returns nothing else.
    Ok { id: u64 },
    /// A failed command (`id` absent when the frame had none or could not be decoded).
    Err {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        code: ErrorCode,
        msg: String,
    },
    /// A new message in a conversation the socket follows.
    Msg(Message),
    /// The other side delivered/read messages up to `seq`.
    Rcpt { c: ConversationId, by: Side, k: ReceiptKind, seq: i64 },
    /// The other side is (or stopped) typing.
    Typing {
        c: ConversationId,
        by: Side,
        on: bool,
        /// The agent's display name when an agent types (absent for consumers).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A conversation changed state.
    Conv {
        c: ConversationId,
        ev: ConversationEventKind,
        /// `assigned`: the agent's display name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<String>,
        /// `queued`: estimated seconds to an agent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        eta: Option<u32>,
        /// `closed`: who closed it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Side>,
        /// Agents: the conversation in full (on `assigned` and `offered`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conv: Option<Box<ConversationSummary>>,
        /// `offered`: when the offer expires (ms since the epoch).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<Millis>,
    },
    /// Consumers: please rate conversation `c` (answer with `csat`).
    Survey { c: ConversationId },
    /// The answer to `sync`: messages after the requested seq, oldest first.
    Msgs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        c: ConversationId,
        msgs: Vec<Message>,
        /// More messages follow: sync again after the last `seq`.
        more: bool,
    },
    /// The answer to `history`.
    History {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        convs: Vec<ConversationSummary>,
        /// Cursor of the next page, absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// The server dropped live events for this socket (it was too slow): sync every
    /// conversation from the last seq you hold.
    Resync,
    /// Managers only: something on the brand's floor changed (a conversation opened, was
    /// assigned, transferred or closed, an agent changed state). Dashboards refresh.
    Floor,
    /// The answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
    },
}

impl ServerFrame {
    /// An error answer.
    pub fn error(id: Option<u64>, code: ErrorCode, msg: impl Into<String>) -> ServerFrame {
        ServerFrame::Err { id, code, msg: msg.into() }
    }

    /// Serializes to the JSON text sent on the socket.
    pub fn to_json(&self) -> String {
        // Serialization of these types cannot fail: no maps with non-string keys, no
        // custom serializers that return errors.
        serde_json::to_string(self).expect("server frames always serialize")
    }
}
