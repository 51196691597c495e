//! Behaviour of the app state: what keys and SDK events change, and which actions they ask
//! the main loop to perform.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use switchboard_chat::app::{Action, App, ConversationView, TYPING_IDLE};
use switchboard_sdk::{
    ChatMessage, ConnectionState, ConversationInfo, ConversationStatus, Event, MessageState, QueueEstimate, Side,
};

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_text(app: &mut App, text: &str) -> Vec<Action> {
    text.chars().flat_map(|c| app.on_key(key(KeyCode::Char(c)))).collect()
}

fn pending(text: &str, client_id: &str) -> ChatMessage {
    ChatMessage {
        conversation: None,
        seq: None,
        client_id: Some(client_id.to_owned()),
        from: Side::Consumer,
        author: None,
        text: text.to_owned(),
        timestamp_ms: 0,
        state: MessageState::Pending,
        error: None,
    }
}

fn from_agent(c: i64, seq: i64) -> ChatMessage {
    ChatMessage {
        conversation: Some(c),
        seq: Some(seq),
        client_id: None,
        from: Side::Agent,
        author: Some("Alice".to_owned()),
        text: format!("agent message {seq}"),
        timestamp_ms: 0,
        state: MessageState::Sent,
        error: None,
    }
}

#[test]
fn enter_with_empty_input_does_nothing() {
    let mut app = App::new("demo");
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    type_text(&mut app, "   ");
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    assert!(app.notice.is_none());
}

#[test]
fn typing_is_reported_when_the_input_becomes_non_empty_and_empty() {
    let mut app = App::new("demo");
    assert_eq!(type_text(&mut app, "hi"), vec![Action::Typing(true)]);
    assert!(app.on_key(key(KeyCode::Backspace)).is_empty());
    assert_eq!(app.on_key(key(KeyCode::Backspace)), vec![Action::Typing(false)]);
    assert!(app.on_key(key(KeyCode::Backspace)).is_empty());
}

#[test]
fn enter_sends_the_trimmed_text_and_stops_typing() {
    let mut app = App::new("demo");
    type_text(&mut app, " hello there ");
    assert_eq!(app.on_key(key(KeyCode::Enter)), vec![Action::Typing(false), Action::Send("hello there".to_owned())]);
    assert_eq!(app.input, "");
}

#[test]
fn over_2000_characters_shows_an_error_and_does_not_send() {
    let mut app = App::new("demo");
    assert_eq!(app.on_paste(&"é".repeat(2001)), vec![Action::Typing(true)]);
    assert!(app.on_key(key(KeyCode::Enter)).is_empty());
    let notice = app.notice.clone().expect("an error is shown");
    assert!(notice.error && notice.text.contains("2001"), "{notice:?}");
    assert_eq!(app.input.chars().count(), 2001, "the text stays for editing");
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(app.on_key(key(KeyCode::Enter)), vec![Action::Typing(false), Action::Send("é".repeat(2000))]);
}

#[test]
fn ctrl_c_quits_and_key_releases_are_ignored() {
    let mut app = App::new("demo");
    assert_eq!(app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), vec![Action::Quit]);
    let mut release = key(KeyCode::Char('x'));
    release.kind = KeyEventKind::Release;
    assert!(app.on_key(release).is_empty());
    assert_eq!(app.input, "");
}

#[test]
fn close_and_rate_commands() {
    let mut app = App::new("demo");
    type_text(&mut app, "/close");
    assert!(!app.on_key(key(KeyCode::Enter)).contains(&Action::Close), "no conversation yet");
    assert!(app.notice.as_ref().is_some_and(|n| n.error));

    app.on_event(Event::Assigned { conversation: 7, agent: Some("Alice".to_owned()) });
    app.input.clear();
    type_text(&mut app, "/close");
    assert!(app.on_key(key(KeyCode::Enter)).contains(&Action::Close));

    type_text(&mut app, "/rate 5");
    assert!(!app.on_key(key(KeyCode::Enter)).iter().any(|a| matches!(a, Action::Rate { .. })), "no survey yet");

    app.on_event(Event::SurveyRequested { conversation: 7 });
    app.input.clear();
    type_text(&mut app, "/rate 9");
    assert!(!app.on_key(key(KeyCode::Enter)).iter().any(|a| matches!(a, Action::Rate { .. })));
    app.input.clear();
    type_text(&mut app, "/rate 4");
    assert!(app.on_key(key(KeyCode::Enter)).contains(&Action::Rate { conversation: 7, score: 4 }));
    app.survey_answered(4);
    assert_eq!(app.survey, None);
}

#[test]
fn a_pending_message_becomes_sent_then_delivered_then_read() {
    let mut app = App::new("demo");
    app.on_sent(pending("hello", "cid-1"));
    assert_eq!(app.pending_count(), 1);
    app.on_event(Event::MessageStateChanged {
        client_id: "cid-1".to_owned(),
        conversation: Some(3),
        seq: Some(1),
        state: MessageState::Sent,
        error: None,
    });
    assert_eq!(app.conversation, Some(3));
    assert_eq!((app.messages[0].seq, app.messages[0].state), (Some(1), MessageState::Sent));
    assert_eq!(app.pending_count(), 0);
    app.on_event(Event::Receipt { conversation: 3, by: Side::Agent, read: false, seq: 1 });
    assert_eq!(app.messages[0].state, MessageState::Delivered);
    app.on_event(Event::Receipt { conversation: 3, by: Side::Agent, read: true, seq: 1 });
    assert_eq!(app.messages[0].state, MessageState::Read);
    // A late "delivered" receipt does not undo "read".
    app.on_event(Event::Receipt { conversation: 3, by: Side::Agent, read: false, seq: 1 });
    assert_eq!(app.messages[0].state, MessageState::Read);
}

#[test]
fn agent_messages_are_marked_read_once_and_again_after_a_reconnect() {
    let mut app = App::new("demo");
    app.on_event(Event::Assigned { conversation: 3, agent: None });
    app.on_event(Event::Typing { conversation: 3, on: true, name: Some("Alice Agent".to_owned()) });
    assert!(app.agent_typing);
    assert_eq!(app.typing_name.as_deref(), Some("Alice Agent"));
    assert_eq!(
        app.on_event(Event::MessageReceived(from_agent(3, 2))),
        vec![Action::MarkRead { conversation: 3, seq: 2 }]
    );
    assert!(!app.agent_typing, "a message ends the typing indicator");
    assert!(app.on_event(Event::MessageReceived(from_agent(3, 2))).is_empty(), "duplicates are ignored");
    assert_eq!(app.messages.len(), 1);
    assert_eq!(
        app.on_event(Event::Connection(ConnectionState::Connected)),
        vec![Action::MarkRead { conversation: 3, seq: 2 }]
    );
}

#[test]
fn queue_assignment_and_close_change_the_header_state() {
    let mut app = App::new("demo");
    app.on_event(Event::Queued { conversation: 5, eta_secs: Some(120) });
    assert_eq!(app.view, ConversationView::Queued { eta_secs: Some(120) });
    app.on_event(Event::Assigned { conversation: 5, agent: Some("Bob".to_owned()) });
    assert_eq!(app.view, ConversationView::Assigned { agent: Some("Bob".to_owned()) });
    app.on_event(Event::Closed { conversation: 5, by: Some(Side::Consumer) });
    assert_eq!(app.view, ConversationView::Closed);
    // Writing again starts a new conversation; the old messages go.
    app.on_event(Event::MessageReceived(from_agent(5, 1)));
    app.on_sent(pending("one more thing", "cid-2"));
    assert_eq!(app.view, ConversationView::None);
    assert_eq!(app.messages.len(), 1);
}

#[test]
fn the_queue_estimate_counts_down_with_ticks() {
    let mut app = App::new("demo");
    app.on_event(Event::Queued { conversation: 5, eta_secs: Some(120) });
    app.on_tick(std::time::Duration::from_millis(60_500));
    assert_eq!(app.view, ConversationView::Queued { eta_secs: Some(60) });
    app.on_tick(std::time::Duration::from_secs(100));
    assert_eq!(app.view, ConversationView::Queued { eta_secs: Some(0) }, "ran out: no negative wait");
    app.on_event(Event::Queued { conversation: 5, eta_secs: None });
    app.on_tick(std::time::Duration::from_secs(1));
    assert_eq!(app.view, ConversationView::Queued { eta_secs: None });
}

#[test]
fn a_queue_estimate_kept_from_the_last_run_shows_at_start_counted_down() {
    let received_ms = 1_700_000_000_000;
    let estimate = QueueEstimate { conversation: 5, eta_secs: 300, received_ms };
    let open = ConversationInfo {
        id: 5,
        status: ConversationStatus::Open,
        opened_ms: received_ms,
        closed_ms: None,
        last_seq: 1,
        agent: None,
        csat: None,
        survey_open: false,
    };
    let mut app = App::new("demo");
    app.load(std::slice::from_ref(&open), Vec::new(), Vec::new());
    app.restore_queue_estimate(Some(estimate), received_ms + 120_000);
    assert_eq!(app.view, ConversationView::Queued { eta_secs: Some(180) }, "2 of its 5 minutes passed while closed");

    // Not shown once an agent has the conversation, nor for another conversation.
    let mut assigned = App::new("demo");
    assigned.load(&[ConversationInfo { agent: Some("Bob".to_owned()), ..open.clone() }], Vec::new(), Vec::new());
    assigned.restore_queue_estimate(Some(estimate), received_ms);
    assert_eq!(assigned.view, ConversationView::Assigned { agent: Some("Bob".to_owned()) });
    let mut other = App::new("demo");
    other.load(&[ConversationInfo { id: 6, ..open }], Vec::new(), Vec::new());
    other.restore_queue_estimate(Some(estimate), received_ms);
    assert_eq!(other.view, ConversationView::Open);
}

#[test]
fn the_reconnect_countdown_follows_ticks() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::WaitingToReconnect { retry_in_ms: 3_000 }));
    assert!(app.on_tick(std::time::Duration::from_millis(2_500)).is_empty());
    assert_eq!(app.retry_in_ms, 500);
    app.on_tick(std::time::Duration::from_secs(10));
    assert_eq!(app.retry_in_ms, 0);
}

#[test]
fn an_abandoned_input_stops_typing_until_the_next_key() {
    let mut app = App::new("demo");
    assert_eq!(type_text(&mut app, "hel"), vec![Action::Typing(true)]);
    assert!(app.on_tick(TYPING_IDLE / 2).is_empty());
    assert!(type_text(&mut app, "l").is_empty(), "a key press restarts the idle time");
    assert!(app.on_tick(TYPING_IDLE / 2).is_empty());
    assert_eq!(app.on_tick(TYPING_IDLE / 2), vec![Action::Typing(false)]);
    assert!(app.on_tick(TYPING_IDLE).is_empty(), "reported once");
    assert_eq!(type_text(&mut app, "o"), vec![Action::Typing(true)]);
    assert_eq!(app.input, "hello");
}

#[test]
fn errors_are_shown_and_cleared_by_a_connection() {
    let mut app = App::new("demo");
    app.on_event(Event::Error {
        message: "authentication: token_invalid: bad signature".to_owned(),
        code: None,
        transient: true,
    });
    assert!(app.notice.as_ref().is_some_and(|n| n.error && n.text.contains("retrying")));
    app.on_event(Event::Connection(ConnectionState::Connected));
    assert!(app.notice.is_none());
}

#[test]
fn a_refused_message_shows_the_reason_from_the_event() {
    let mut app = App::new("demo");
    app.on_sent(pending("hello", "cid-9"));
    app.on_event(Event::MessageStateChanged {
        client_id: "cid-9".to_owned(),
        conversation: None,
        seq: None,
        state: MessageState::Failed,
        error: Some("message is 2001 characters; the limit on in_app is 2000".to_owned()),
    });
    assert_eq!(app.messages[0].state, MessageState::Failed);
    assert_eq!(app.messages[0].error.as_deref(), Some("message is 2001 characters; the limit on in_app is 2000"));
}

/// Issue 13: a second `/rate` stayed in the input.
#[test]
fn a_second_rate_is_cleared_and_says_it_was_already_rated() {
    let mut app = App::new("demo");
    app.on_event(Event::Assigned { conversation: 7, agent: Some("Alice".to_owned()) });
    app.on_event(Event::SurveyRequested { conversation: 7 });
    type_text(&mut app, "/rate 5");
    assert!(app.on_key(key(KeyCode::Enter)).contains(&Action::Rate { conversation: 7, score: 5 }));
    app.survey_answered(5);
    type_text(&mut app, "/rate 5");
    assert!(!app.on_key(key(KeyCode::Enter)).iter().any(|a| matches!(a, Action::Rate { .. })));
    assert_eq!(app.input, "", "the spent command leaves the input");
    assert_eq!(app.notice.as_ref().map(|n| n.text.as_str()), Some("You already rated this conversation."));
}

/// Issue 13: family and flag emoji left broken fragments: Backspace removes a whole grapheme
/// cluster, not one scalar value of it.
#[test]
fn backspace_removes_a_whole_family_or_flag() {
    let mut app = App::new("demo");
    let family = "👨\u{200d}👩\u{200d}👧\u{200d}👦";
    app.on_paste(&format!("hi {family}🇪🇸"));
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(app.input, format!("hi {family}"));
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(app.input, "hi ");
    // é as e + combining acute is one grapheme too.
    app.on_paste("e\u{301}");
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(app.input, "hi ");
}

/// Issue 13: input arriving in one burst was cut at 1,024 characters without a word. A long
/// paste is kept whole; over the limit, Enter says so and sends nothing.
#[test]
fn a_long_burst_of_input_is_kept_whole_and_over_the_limit_is_refused_with_the_count() {
    let mut app = App::new("demo");
    let burst = "0123456789".repeat(150);
    app.on_paste(&burst);
    assert_eq!(app.input.chars().count(), 1_500);
    let actions = type_text(&mut app, &"x".repeat(600));
    assert!(!actions.contains(&Action::Typing(false)));
    assert_eq!(app.input.chars().count(), 2_100);
    assert!(app.on_key(key(KeyCode::Enter)).iter().all(|a| !matches!(a, Action::Send(_))));
    let notice = app.notice.clone().unwrap();
    assert!(notice.error && notice.text.contains("2100 characters") && notice.text.contains("2000"), "{notice:?}");
    assert_eq!(app.input.chars().count(), 2_100, "nothing is thrown away");
}

/// Issue 13: there was no scroll back. PageUp moves up by pages (not past the first line),
/// PageDown back, and writing follows the newest again.
#[test]
fn page_up_and_down_scroll_the_conversation() {
    let mut app = App::new("demo");
    app.scroll_limit.set(25);
    app.on_key(key(KeyCode::PageUp));
    assert_eq!(app.scroll, 10);
    for _ in 0..5 {
        app.on_key(key(KeyCode::PageUp));
    }
    assert_eq!(app.scroll, 25, "not past the first line");
    app.on_key(key(KeyCode::PageDown));
    assert_eq!(app.scroll, 15);
    app.on_sent(pending("hello", "c1"));
    assert_eq!(app.scroll, 0, "writing shows the newest again");
}

/// Issue 13: an anonymous run after a token run reused the same data directory and showed the
/// other identity's conversation. The default cache is per brand, app and identity.
#[test]
fn the_default_cache_is_one_per_identity() {
    use clap::Parser;
    use switchboard_chat::cli::Args;
    let parse = |args: &[&str]| Args::parse_from(std::iter::once("switchboard-chat").chain(args.iter().copied()));
    // A JWT whose payload is {"sub":"alice-customer"} (the signature does not matter here).
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZS1jdXN0b21lciJ9.c2ln";
    let alice = parse(&["--token", token]).cache_dir(Some(token));
    let anonymous = parse(&["--anonymous"]).cache_dir(None);
    let other_brand = parse(&["--anonymous", "--brand", "acme"]).cache_dir(None);
    assert_eq!(alice, std::path::Path::new("./switchboard-chat-data/demo/demo-app/sub-alice-customer"));
    assert_eq!(anonymous, std::path::Path::new("./switchboard-chat-data/demo/demo-app/anonymous"));
    assert_ne!(anonymous, other_brand);
    let chosen = parse(&["--anonymous", "--data-dir", "/tmp/mine"]).cache_dir(None);
    assert_eq!(chosen, std::path::Path::new("/tmp/mine"), "--data-dir is used as given");
}
