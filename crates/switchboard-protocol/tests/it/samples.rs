//! Realistic sample values of every frame, shared by the snapshot tests (`frames.rs`) and the
//! bandwidth budget (`size.rs`). Each sample has a stable name: it is the snapshot's name, so
//! renaming one renames a `.snap` file.

use switchboard_protocol::{
    AgentState, ClientFrame, ConsumerProfile, ConversationEventKind, ConversationId, ConversationStatus,
    ConversationSummary, DeviceInfo, ErrorCode, Hello, Me, Message, Millis, PushProvider, ReceiptKind, ServerFrame,
    Side,
};

/// The conversation most samples talk about.
pub const CONV: ConversationId = 4_821_337;
/// 2025-11-25 09:15:00 UTC, when `CONV` was opened.
pub const OPENED: Millis = 1_764_062_100_000;
/// The consumer's identity.
pub const CONSUMER_ID: i64 = 20_931;

/// An ES256 JWT as a brand backend would sign it (`iss`, `aud`, `sub`, `iat`, `exp`, `name`,
/// `email`); the signature is made up. 368 bytes, which matters for the bandwidth budget.
pub const JWT: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImFjbWUtMjAyNS0xMSJ9.\
eyJpc3MiOiJodHRwczovL2F1dGguYWNtZS5leGFtcGxlIiwiYXVkIjoic2ItYXBwLWlvcyIsInN1YiI6ImN1c3QtMjA5MzEi\
LCJpYXQiOjE3NjQwNjIxMDAsImV4cCI6MTc2NDA2NTcwMCwibmFtZSI6Ik1hcmlhIExvcGV6IiwiZW1haWwiOiJtYXJpYS5s\
b3BlekBleGFtcGxlLmNvbSJ9.\
BwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4_QEFCQ0RFRg";

/// A device secret as the server issues it to an anonymous consumer (`sba_` + 32 random bytes).
pub const ANON_SECRET: &str = "sba_VDDu7YWcrWHZJQl-xPUyRhzPGra5gCsJoxO-FHik1hQ";

/// An agent session token as `POST /api/v1/auth/login` returns it (`sbs_` + 32 random bytes).
pub const SESSION: &str = "sbs_vXF7RnB14FEkJFbdAFEckKOa_GKx2nGoBxTA-zmGy00";

pub fn iphone() -> DeviceInfo {
    DeviceInfo { os: Some("iOS 18.1".into()), app_version: Some("4.2.0".into()), device_type: Some("phone".into()) }
}

pub fn consumer_hello() -> Hello {
    Hello {
        v: 1,
        brand: Some("acme".into()),
        app: Some("acme-ios".into()),
        token: Some(JWT.into()),
        anon: None,
        code: None,
        session: None,
        device: Some(iphone()),
        skill: None,
        lang: None,
    }
}

pub fn open_summary() -> ConversationSummary {
    ConversationSummary {
        c: CONV,
        status: ConversationStatus::Open,
        opened: OPENED,
        closed: None,
        last_seq: 7,
        csat: None,
        survey: false,
        consumer: None,
        skill: None,
    }
}

pub fn agent_summary() -> ConversationSummary {
    ConversationSummary {
        consumer: Some(ConsumerProfile {
            id: CONSUMER_ID,
            name: Some("Maria Lopez".into()),
            email: Some("maria.lopez@example.com".into()),
            phone: Some("+34 612 345 678".into()),
            device: Some(iphone()),
        }),
        skill: Some("billing".into()),
        last_seq: 1,
        ..open_summary()
    }
}

pub fn closed_summary() -> ConversationSummary {
    ConversationSummary {
        c: 4_790_112,
        status: ConversationStatus::Closed,
        opened: 1_761_300_000_000,
        closed: Some(1_761_303_540_000),
        last_seq: 14,
        csat: Some(5),
        survey: false,
        consumer: None,
        skill: Some("billing".into()),
    }
}

pub fn agent_message(seq: i64, ts: Millis, text: &str) -> Message {
    Message {
        c: CONV,
        seq,
        ts,
        from: Side::Agent,
        name: Some("Dana".into()),
        text: text.into(),
        cid: Some(format!("w-{seq:04}")),
    }
}

pub fn consumer_message(seq: i64, ts: Millis, text: &str, cid: &str) -> Message {
    Message { c: CONV, seq, ts, from: Side::Consumer, name: None, text: text.into(), cid: Some(cid.into()) }
}

/// One sample or more of every [`ClientFrame`] variant.
pub fn client_frames() -> Vec<(&'static str, ClientFrame)> {
    vec![
        ("hello_consumer_jwt", ClientFrame::Hello(consumer_hello())),
        ("hello_consumer_entry_skill", ClientFrame::Hello(Hello { skill: Some(12), ..consumer_hello() })),
        (
            "hello_consumer_code",
            ClientFrame::Hello(Hello {
                token: None,
                code: Some(Box::new(switchboard_protocol::AuthCode {
                    code: "SplxlOBeZQQYbYS6WxSbIA".into(),
                    redirect_uri: Some("com.acme.app:/oauth".into()),
                    verifier: Some("dBjftJeZ4CVP-mJ92K9cYp0ey7tZr7v4Vc8dAwo9Yx5".into()),
                })),
                ..consumer_hello()
            }),
        ),
        (
            "hello_consumer_anon_new",
            ClientFrame::Hello(Hello {
                v: 1,
                brand: Some("acme".into()),
                app: Some("acme-web".into()),
                token: None,
                anon: Some(String::new()),
                code: None,
                session: None,
                device: Some(DeviceInfo {
                    os: Some("Windows 11".into()),
                    app_version: None,
                    device_type: Some("web".into()),
                }),
                skill: None,
                lang: None,
            }),
        ),
        (
            "hello_consumer_anon_known",
            ClientFrame::Hello(Hello {
                v: 1,
                brand: Some("acme".into()),
                app: Some("acme-web".into()),
                token: None,
                anon: Some(ANON_SECRET.into()),
                code: None,
                session: None,
                device: None,
                skill: None,
                lang: None,
            }),
        ),
        (
            "hello_agent_session",
            ClientFrame::Hello(Hello {
                v: 1,
                brand: None,
                app: None,
                token: None,
                anon: None,
                code: None,
                session: Some(SESSION.into()),
                device: None,
                skill: None,
                lang: None,
            }),
        ),
        (
            "hello_agent_cookie",
            ClientFrame::Hello(Hello {
                v: 1,
                brand: None,
                app: None,
                token: None,
                anon: None,
                code: None,
                session: None,
                device: None,
                skill: None,
                lang: None,
            }),
        ),
        (
            "send_consumer",
            ClientFrame::Send {
                id: Some(1),
                cid: "019abf2e-6f10-7c4a-9d2e-3b5f1a2c4d01".into(),
                text: "Hi, my order #48213 hasn't arrived yet. It was due Monday.".into(),
                c: None,
                consumer: None,
            },
        ),
        (
            "send_consumer_no_id",
            ClientFrame::Send {
                id: None,
                cid: "019abf2e-7a31-7c4a-8b11-0c9d2e4f6a02".into(),
                text: "Thanks! 🙏".into(),
                c: None,
                consumer: None,
            },
        ),
        (
            "send_agent_conversation",
            ClientFrame::Send {
                id: Some(17),
                cid: "w-0017".into(),
                text: "Hi Maria, I'm Dana. Let me check order #48213 for you.".into(),
                c: Some(CONV),
                consumer: None,
            },
        ),
        (
            "send_agent_consumer",
            ClientFrame::Send {
                id: Some(18),
                cid: "w-0018".into(),
                text: "Following up: your replacement shipped today.".into(),
                c: None,
                consumer: Some(CONSUMER_ID),
            },
        ),
        ("rcpt_delivered", ClientFrame::Rcpt { id: None, c: CONV, seq: 3, k: ReceiptKind::Delivered }),
        ("rcpt_read", ClientFrame::Rcpt { id: Some(4), c: CONV, seq: 5, k: ReceiptKind::Read }),
        ("typing_on", ClientFrame::Typing { c: CONV, on: true }),
        ("typing_off", ClientFrame::Typing { c: CONV, on: false }),
        ("sync", ClientFrame::Sync { id: Some(2), c: CONV, after: 41, limit: None }),
        ("sync_limit", ClientFrame::Sync { id: Some(3), c: CONV, after: 0, limit: Some(50) }),
        ("close", ClientFrame::Close { id: Some(21), c: CONV }),
        ("accept", ClientFrame::Accept { id: Some(22), c: CONV }),
        ("decline", ClientFrame::Decline { id: Some(23), c: CONV }),
        (
            "csat",
            ClientFrame::Csat {
                id: Some(9),
                c: CONV,
                score: 4,
                comment: Some("Quick and friendly, thanks Dana.".into()),
            },
        ),
        ("csat_score_only", ClientFrame::Csat { id: None, c: CONV, score: 5, comment: None }),
        (
            "history",
            ClientFrame::History {
                id: Some(5),
                from: Some(1_732_440_000_000),
                to: Some(1_764_062_400_000),
                status: Some(ConversationStatus::Closed),
                cursor: Some("1761300000000.4790112".into()),
                limit: Some(20),
            },
        ),
        (
            "history_defaults",
            ClientFrame::History { id: Some(6), from: None, to: None, status: None, cursor: None, limit: None },
        ),
        ("state_back_soon", ClientFrame::State { id: Some(2), state: AgentState::BackSoon }),
        ("state_online", ClientFrame::State { id: None, state: AgentState::Online }),
        (
            "push_fcm",
            ClientFrame::Push { id: Some(7), provider: PushProvider::Fcm, token: "fcm:APA91bH-example".into() },
        ),
        (
            "unpush_fcm",
            ClientFrame::Unpush { id: Some(8), provider: PushProvider::Fcm, token: "fcm:APA91bH-example".into() },
        ),
        ("ping", ClientFrame::Ping { id: None }),
        ("ping_id", ClientFrame::Ping { id: Some(99) }),
    ]
}

/// One sample or more of every [`ServerFrame`] variant.
pub fn server_frames() -> Vec<(&'static str, ServerFrame)> {
    vec![
        (
            "welcome_consumer",
            ServerFrame::Welcome {
                v: 1,
                me: Me { id: CONSUMER_ID, name: Some("Maria Lopez".into()), state: None },
                convs: vec![open_summary()],
                anon: None,
                merged: None,
                hb: 30,
            },
        ),
        (
            "welcome_consumer_anon_new",
            ServerFrame::Welcome {
                v: 1,
                me: Me { id: 20_977, name: None, state: None },
                convs: vec![],
                anon: Some(ANON_SECRET.into()),
                merged: None,
                hb: 30,
            },
        ),
        (
            "welcome_consumer_upgraded",
            ServerFrame::Welcome {
                v: 1,
                me: Me { id: CONSUMER_ID, name: Some("Maria Lopez".into()), state: None },
                convs: vec![open_summary()],
                anon: None,
                merged: Some(2),
                hb: 30,
            },
        ),
        (
            "welcome_agent",
            ServerFrame::Welcome {
                v: 1,
                me: Me { id: 12, name: Some("Dana".into()), state: Some(AgentState::Online) },
                convs: vec![agent_summary()],
                anon: None,
                merged: None,
                hb: 30,
            },
        ),
        ("ack", ServerFrame::Ack { id: Some(1), c: CONV, seq: 1, ts: OPENED + 412 }),
        ("ack_no_id", ServerFrame::Ack { id: None, c: CONV, seq: 8, ts: OPENED + 95_020 }),
        ("ok", ServerFrame::Ok { id: 21 }),
        (
            "err",
            ServerFrame::error(
                Some(1),
                ErrorCode::TextTooLong,
                "message is 2417 characters; the limit on in_app is 2000",
            ),
        ),
        (
            "err_no_id",
            ServerFrame::error(
                None,
                ErrorCode::MalformedFrame,
                "cannot decode frame: missing field `cid` at line 1 column 31",
            ),
        ),
        (
            "msg_agent",
            ServerFrame::Msg(agent_message(
                2,
                OPENED + 61_870,
                "Hi Maria, I'm Dana. Let me check order #48213 for you.",
            )),
        ),
        (
            "msg_consumer_other_device",
            ServerFrame::Msg(consumer_message(
                3,
                OPENED + 70_004,
                "Sure, it's the blue one.",
                "019abf2e-8c55-7c4a-a3f0-5e6d7c8b9a03",
            )),
        ),
        (
            "msg_system",
            ServerFrame::Msg(Message {
                c: CONV,
                seq: 14,
                ts: OPENED + 600_000,
                from: Side::System,
                name: None,
                text: "Dana closed the conversation.".into(),
                cid: None,
            }),
        ),
        ("rcpt", ServerFrame::Rcpt { c: CONV, by: Side::Agent, k: ReceiptKind::Read, seq: 3 }),
        ("typing", ServerFrame::Typing { c: CONV, by: Side::Agent, on: true, name: Some("Alice".into()) }),
        (
            "conv_opened",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Opened,
                agent: None,
                eta: None,
                by: None,
                conv: None,
                until: None,
            },
        ),
        (
            "conv_queued",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Queued,
                agent: None,
                eta: Some(90),
                by: None,
                conv: None,
                until: None,
            },
        ),
        (
            "conv_assigned_consumer",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Assigned,
                agent: Some("Dana".into()),
                eta: None,
                by: None,
                conv: None,
                until: None,
            },
        ),
        (
            "conv_assigned_agent",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Assigned,
                agent: Some("Dana".into()),
                eta: None,
                by: None,
                conv: Some(Box::new(agent_summary())),
                until: None,
            },
        ),
        (
            "conv_closed",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Closed,
                agent: None,
                eta: None,
                by: Some(Side::Agent),
                conv: None,
                until: None,
            },
        ),
        (
            "conv_transferred",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Transferred,
                agent: Some("Bob".into()),
                eta: None,
                by: None,
                conv: None,
                until: None,
            },
        ),
        (
            "conv_offered",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Offered,
                agent: None,
                eta: None,
                by: None,
                conv: None,
                until: Some(1_764_062_130_000),
            },
        ),
        (
            "conv_withdrawn",
            ServerFrame::Conv {
                c: CONV,
                ev: ConversationEventKind::Withdrawn,
                agent: None,
                eta: None,
                by: None,
                conv: None,
                until: None,
            },
        ),
        ("survey", ServerFrame::Survey { c: CONV }),
        ("floor", ServerFrame::Floor),
        (
            "msgs",
            ServerFrame::Msgs {
                id: Some(2),
                c: CONV,
                msgs: vec![
                    agent_message(42, OPENED + 3_600_000, "Your refund is on its way."),
                    consumer_message(
                        43,
                        OPENED + 3_660_000,
                        "Great, thank you!",
                        "019abfa1-0b22-7c4a-9e1d-2a3b4c5d6e04",
                    ),
                ],
                more: true,
            },
        ),
        ("msgs_empty", ServerFrame::Msgs { id: None, c: CONV, msgs: vec![], more: false }),
        (
            "history",
            ServerFrame::History {
                id: Some(5),
                convs: vec![closed_summary()],
                next: Some("1761300000000.4790112".into()),
            },
        ),
        ("history_last_page", ServerFrame::History { id: Some(6), convs: vec![], next: None }),
        ("resync", ServerFrame::Resync),
        ("pong", ServerFrame::Pong { id: None }),
        ("pong_id", ServerFrame::Pong { id: Some(99) }),
    ]
}
