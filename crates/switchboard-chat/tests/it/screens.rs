//! Snapshot tests of the app's screens: the [`App`] is put in a state through the same
//! events and keys the real loop feeds it, rendered into an 80×20 `TestBackend`, and the
//! buffer's text compared with the stored snapshot.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use switchboard_chat::app::App;
use switchboard_chat::ui::render;
use switchboard_sdk::{
    ChatMessage, ConnectionState, ConversationInfo, ConversationStatus, Event, MessageState, QueueEstimate, Side,
};

fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(80, 20)).unwrap();
    terminal.draw(|frame| render(app, frame)).unwrap();
    let buffer = terminal.backend().buffer();
    let width = usize::from(buffer.area.width);
    buffer
        .content()
        .chunks(width)
        .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>().trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn ours(text: &str, c: Option<i64>, seq: Option<i64>, state: MessageState) -> ChatMessage {
    ChatMessage {
        conversation: c,
        seq,
        client_id: Some(format!("cid-{text}")),
        from: Side::Consumer,
        author: None,
        text: text.to_owned(),
        timestamp_ms: 1_700_000_000_000,
        state,
        error: None,
    }
}

fn agents(text: &str, c: i64, seq: i64) -> ChatMessage {
    ChatMessage {
        conversation: Some(c),
        seq: Some(seq),
        client_id: None,
        from: Side::Agent,
        author: Some("Alice Agent".to_owned()),
        text: text.to_owned(),
        timestamp_ms: 1_700_000_000_000,
        state: MessageState::Sent,
        error: None,
    }
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
}

#[test]
fn offline_with_a_pending_message() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::WaitingToReconnect { retry_in_ms: 4_200 }));
    app.on_tick(std::time::Duration::from_millis(1_000));
    app.on_sent(ours("Hello, my order #1234 is late", None, None, MessageState::Pending));
    type_text(&mut app, "Are you there?");
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn connected_and_queued_with_an_estimated_wait() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::Connected));
    app.on_sent(ours("Hello, my order #1234 is late", None, None, MessageState::Pending));
    app.on_event(Event::MessageStateChanged {
        client_id: "cid-Hello, my order #1234 is late".to_owned(),
        conversation: Some(12),
        seq: Some(1),
        state: MessageState::Sent,
        error: None,
    });
    app.on_event(Event::Queued { conversation: 12, eta_secs: Some(170) });
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn restarted_offline_with_the_queue_estimate_kept_by_the_sdk() {
    let mut app = App::new("demo");
    let received_ms = 1_700_000_000_000;
    let conversation = ConversationInfo {
        id: 12,
        status: ConversationStatus::Open,
        opened_ms: received_ms,
        closed_ms: None,
        last_seq: 1,
        agent: None,
        csat: None,
        survey_open: false,
    };
    app.load(
        &[conversation],
        vec![ours("Hello, my order #1234 is late", Some(12), Some(1), MessageState::Sent)],
        Vec::new(),
    );
    // Received 5 min 50 s ago with a 9-minute estimate: 3 min 10 s left, shown rounded up.
    let estimate = QueueEstimate { conversation: 12, eta_secs: 540, received_ms };
    app.restore_queue_estimate(Some(estimate), received_ms + 350_000);
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn assigned_with_marks_and_the_agent_typing() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::Connected));
    let conversation = ConversationInfo {
        id: 12,
        status: ConversationStatus::Open,
        opened_ms: 1_700_000_000_000,
        closed_ms: None,
        last_seq: 4,
        agent: None,
        csat: None,
        survey_open: false,
    };
    app.load(
        &[conversation],
        vec![
            ours("Hello, my order #1234 is late", Some(12), Some(1), MessageState::Sent),
            agents("Hi! I'm Alice. Let me check that for you.", 12, 2),
            ours("Thanks! It was due on Monday.", Some(12), Some(3), MessageState::Sent),
            ours("Tracking says it is still in the warehouse.", Some(12), Some(4), MessageState::Sent),
        ],
        Vec::new(),
    );
    app.on_event(Event::Assigned { conversation: 12, agent: Some("Alice Agent".to_owned()) });
    app.on_event(Event::Receipt { conversation: 12, by: Side::Agent, read: true, seq: 1 });
    app.on_event(Event::Receipt { conversation: 12, by: Side::Agent, read: false, seq: 3 });
    app.on_event(Event::Typing { conversation: 12, on: true, name: Some("Alice Agent".to_owned()) });
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn survey_requested_after_the_agent_closed() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::Connected));
    app.on_event(Event::Assigned { conversation: 12, agent: Some("Alice Agent".to_owned()) });
    app.on_event(Event::MessageReceived(agents("Your parcel ships today. Anything else?", 12, 5)));
    app.on_event(Event::Closed { conversation: 12, by: Some(Side::Agent) });
    app.on_event(Event::SurveyRequested { conversation: 12 });
    type_text(&mut app, "/rate 5");
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn a_failed_message_shows_its_reason() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::Connected));
    let mut failed = ours("Please call me back", None, None, MessageState::Failed);
    failed.error = Some("text_too_long: at most 2000 characters".to_owned());
    app.load(&[], Vec::new(), vec![failed]);
    app.on_event(Event::Error {
        message: "the server refused the message".to_owned(),
        code: Some("text_too_long".to_owned()),
        transient: false,
    });
    insta::assert_snapshot!(screen(&app));
}

#[test]
fn connecting_with_an_over_long_input() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::Connecting));
    app.on_paste(&"x".repeat(2_001));
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    insta::assert_snapshot!(screen(&app));
}

/// Issue 13: family and flag emoji render whole, in messages and in the input.
#[test]
fn emoji_families_and_flags_render_whole() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::Connected));
    let family = "👨\u{200d}👩\u{200d}👧";
    app.on_event(Event::MessageReceived(agents(&format!("Welcome {family} 🇪🇸🇫🇷"), 3, 1)));
    app.on_paste(&format!("Thanks {family}🇯🇵"));
    insta::assert_snapshot!(screen(&app));
}

/// Issue 13: there was no scroll back. After PageUp the earlier messages show, with a hint of
/// how far below the newest is.
#[test]
fn scrolled_back_to_earlier_messages() {
    let mut app = App::new("demo");
    app.on_event(Event::Connection(ConnectionState::Connected));
    for seq in 1..=20 {
        app.on_event(Event::MessageReceived(agents(&format!("message number {seq}"), 3, seq)));
    }
    screen(&app);
    app.on_key(KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE));
    insta::assert_snapshot!(screen(&app));
}
