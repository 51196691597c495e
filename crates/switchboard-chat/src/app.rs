//! The sample app's state: what the screen shows, updated by SDK events, key presses and
//! clock ticks. Pure (no I/O): every effect is returned as an [`Action`] for the main loop to
//! perform, so the whole behaviour can be tested without a terminal or a server.

use std::cell::Cell;
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use switchboard_sdk::{
    ChatMessage, ConnectionState, ConversationInfo, ConversationStatus, Event, MAX_TEXT_CHARS, MessageState,
    QueueEstimate, Side,
};

/// Lines scrolled by PageUp/PageDown.
pub const SCROLL_PAGE: usize = 10;

/// How long an untouched, non-empty input still counts as typing.
pub const TYPING_IDLE: Duration = Duration::from_secs(10);

/// Something the main loop must do on the app's behalf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write a message (goes to the SDK's outbox; sent now or on reconnect).
    Send(String),
    /// Tell the agent the consumer started (`true`) or stopped (`false`) typing.
    Typing(bool),
    /// Tell the agent the consumer read everything up to `seq`.
    MarkRead { conversation: i64, seq: i64 },
    /// Close the open conversation.
    Close,
    /// Answer the CSAT survey of `conversation` with `score` (1–5).
    Rate { conversation: i64, score: u8 },
    /// Leave the app.
    Quit,
}

/// Where the open conversation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConversationView {
    /// No conversation yet: the first message opens one.
    None,
    /// Open, no agent yet (a fresh conversation, before the queue reports).
    Open,
    /// Waiting in the queue; `eta_secs` is the estimated wait left, counted down by ticks
    /// from when the server sent it.
    Queued { eta_secs: Option<u32> },
    /// An agent took it.
    Assigned { agent: Option<String> },
    /// Closed; the next message opens a new conversation.
    Closed,
}

/// A one-line notice under the conversation (errors in red).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub error: bool,
}

/// The whole state of the screen.
#[derive(Debug, Clone)]
pub struct App {
    /// Brand id shown in the header.
    pub brand: String,
    /// The link to the server.
    pub connection: ConnectionState,
    /// Milliseconds until the next connection attempt, counted down by ticks.
    pub retry_in_ms: u64,
    /// The conversation shown (the open one, or the last one).
    pub conversation: Option<i64>,
    pub view: ConversationView,
    /// Messages shown, oldest first: the conversation's, then our pending/failed ones.
    pub messages: Vec<ChatMessage>,
    /// The agent is typing.
    pub agent_typing: bool,
    /// The typing agent's name, as the typing event gave it.
    pub typing_name: Option<String>,
    /// What the consumer is writing. Edited by grapheme cluster: Backspace removes a whole
    /// 👨‍👩‍👧 or 🇪🇸, never a fragment of one.
    pub input: String,
    /// How many lines the conversation is scrolled up from the newest (0: following it).
    pub scroll: usize,
    /// The most `scroll` can be, as the last drawing found it (it depends on the terminal's
    /// size, which only the drawing knows); a cache written by `ui::render`, not state.
    pub scroll_limit: Cell<usize>,
    /// The survey of this conversation was answered here.
    rated: Option<i64>,
    pub notice: Option<Notice>,
    /// A CSAT survey waits for an answer in this conversation.
    pub survey: Option<i64>,
    /// The typing state last reported to the agent.
    typing_sent: bool,
    /// Milliseconds since the input last changed (to stop "typing" when abandoned).
    idle_ms: u64,
    /// The last read mark sent.
    read_sent: Option<(i64, i64)>,
    /// Milliseconds of estimated queue wait left (behind `ConversationView::Queued`).
    queue_left_ms: u64,
}

impl App {
    /// A fresh, empty screen for `brand`.
    pub fn new(brand: impl Into<String>) -> App {
        App {
            brand: brand.into(),
            connection: ConnectionState::Disconnected,
            retry_in_ms: 0,
            conversation: None,
            view: ConversationView::None,
            messages: Vec::new(),
            agent_typing: false,
            typing_name: None,
            input: String::new(),
            scroll: 0,
            scroll_limit: Cell::new(usize::MAX),
            rated: None,
            notice: None,
            survey: None,
            typing_sent: false,
            idle_ms: 0,
            read_sent: None,
            queue_left_ms: 0,
        }
    }

    /// Shows the queue estimate the SDK kept from an earlier run (at start, before any
    /// connection), counted down from when it was received; `now_ms` is the current time
    /// (ms since epoch). Ignored unless it is the shown conversation's and that one is open
    /// without an agent.
    pub fn restore_queue_estimate(&mut self, estimate: Option<QueueEstimate>, now_ms: i64) {
        let Some(estimate) = estimate else { return };
        if self.conversation != Some(estimate.conversation) || self.view != ConversationView::Open {
            return;
        }
        let elapsed_ms = now_ms.saturating_sub(estimate.received_ms).max(0);
        let left_ms = (i64::from(estimate.eta_secs) * 1000).saturating_sub(elapsed_ms).max(0);
        self.set_queued(Some(u64::try_from(left_ms).unwrap_or(0)));
    }

    /// Waiting in the queue with `left_ms` of estimated wait (or no estimate).
    fn set_queued(&mut self, left_ms: Option<u64>) {
        self.queue_left_ms = left_ms.unwrap_or(0);
        let eta_secs = left_ms.map(|ms| u32::try_from(ms.div_ceil(1000)).unwrap_or(u32::MAX));
        self.view = ConversationView::Queued { eta_secs };
    }

    /// Fills the screen from the SDK's local cache (at start, and after a message failed,
    /// whose reason only the cache has). `conversations` is newest first, as the SDK returns
    /// them; `messages` are the shown conversation's; `pending` the outbox and refused ones.
    pub fn load(
        &mut self,
        conversations: &[ConversationInfo],
        messages: Vec<ChatMessage>,
        pending: Vec<ChatMessage>,
    ) -> Vec<Action> {
        if let Some(latest) = conversations.first() {
            self.conversation = Some(latest.id);
            self.view = match (latest.status, &latest.agent) {
                (ConversationStatus::Closed, _) => ConversationView::Closed,
                (ConversationStatus::Open, Some(agent)) => ConversationView::Assigned { agent: Some(agent.clone()) },
                (ConversationStatus::Open, None) => match &self.view {
                    ConversationView::Queued { eta_secs } => ConversationView::Queued { eta_secs: *eta_secs },
                    _ => ConversationView::Open,
                },
            };
            self.survey = latest.survey_open.then_some(latest.id);
        }
        self.messages = messages;
        self.messages.extend(pending);
        self.read_mark().into_iter().collect()
    }

    /// The conversation to load from the cache, if any (`conversations` newest first).
    pub fn shown_conversation(conversations: &[ConversationInfo]) -> Option<i64> {
        conversations.first().map(|c| c.id)
    }

    /// Messages waiting to be sent.
    pub fn pending_count(&self) -> usize {
        self.messages.iter().filter(|m| m.state == MessageState::Pending).count()
    }

    /// Time passed: counts the reconnect delay down, and reports typing off once the
    /// consumer has not touched a non-empty input for [`TYPING_IDLE`] (the protocol asks for
    /// "off" when the composer is abandoned; the next key press turns it on again).
    pub fn on_tick(&mut self, elapsed: Duration) -> Vec<Action> {
        let elapsed = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.retry_in_ms = self.retry_in_ms.saturating_sub(elapsed);
        if let ConversationView::Queued { eta_secs: Some(_) } = self.view {
            self.set_queued(Some(self.queue_left_ms.saturating_sub(elapsed)));
        }
        self.idle_ms = self.idle_ms.saturating_add(elapsed);
        let idle_limit = u64::try_from(TYPING_IDLE.as_millis()).unwrap_or(u64::MAX);
        if self.typing_sent && self.idle_ms >= idle_limit {
            self.typing_sent = false;
            return vec![Action::Typing(false)];
        }
        Vec::new()
    }

    /// An event from the SDK.
    pub fn on_event(&mut self, event: Event) -> Vec<Action> {
        match event {
            Event::Connection(state) => {
                self.connection = state;
                if let ConnectionState::WaitingToReconnect { retry_in_ms } = state {
                    self.retry_in_ms = retry_in_ms;
                }
                if state == ConnectionState::Connected {
                    if self.notice.as_ref().is_some_and(|n| n.error) {
                        self.notice = None;
                    }
                    // Read marks are skipped offline: send the newest again.
                    self.read_sent = None;
                    return self.read_mark().into_iter().collect();
                }
            }
            Event::MessageReceived(message) => {
                if message.conversation.is_some() && message.conversation != self.conversation {
                    if self.view == ConversationView::Closed || self.conversation.is_none() {
                        self.start_conversation(message.conversation);
                    } else {
                        // Another conversation (e.g. a second device's): not shown.
                        return Vec::new();
                    }
                }
                let exists = self.messages.iter().any(|m| {
                    (m.client_id.is_some() && m.client_id == message.client_id)
                        || (m.seq.is_some() && m.seq == message.seq && m.conversation == message.conversation)
                });
                if !exists {
                    if message.from == Side::Agent {
                        self.agent_typing = false;
                    }
                    self.insert_message(message);
                }
                return self.read_mark().into_iter().collect();
            }
            Event::MessageStateChanged { client_id, conversation, seq, state, error } => {
                if conversation.is_some() && conversation != self.conversation {
                    self.start_conversation(conversation);
                }
                if let Some(message) = self.messages.iter_mut().find(|m| m.client_id.as_deref() == Some(&client_id)) {
                    message.state = state;
                    if error.is_some() {
                        message.error = error;
                    }
                    if conversation.is_some() {
                        message.conversation = conversation;
                    }
                    if seq.is_some() {
                        message.seq = seq;
                    }
                }
                self.sort_messages();
            }
            Event::Receipt { conversation, by, read, seq } => {
                if by != Side::Consumer && Some(conversation) == self.conversation {
                    for message in &mut self.messages {
                        let covered = message.from == Side::Consumer
                            && message.conversation == Some(conversation)
                            && message.seq.is_some_and(|s| s <= seq);
                        if covered && matches!(message.state, MessageState::Sent | MessageState::Delivered) {
                            message.state = if read { MessageState::Read } else { MessageState::Delivered };
                        }
                    }
                }
            }
            Event::Typing { conversation, on, name } => {
                if Some(conversation) == self.conversation {
                    self.agent_typing = on;
                    if name.is_some() {
                        self.typing_name = name;
                    }
                }
            }
            Event::Queued { conversation, eta_secs } => {
                self.follow(conversation);
                self.set_queued(eta_secs.map(|secs| u64::from(secs) * 1000));
            }
            Event::Assigned { conversation, agent } => {
                self.follow(conversation);
                self.view = ConversationView::Assigned { agent };
            }
            Event::Closed { conversation, by } => {
                if Some(conversation) == self.conversation {
                    self.view = ConversationView::Closed;
                    self.agent_typing = false;
                    let who = match by {
                        Some(Side::Consumer) => "you",
                        Some(Side::Agent) => "the agent",
                        Some(Side::System) | None => "the system",
                    };
                    self.info(format!("Conversation closed by {who}. Write to start a new one."));
                }
            }
            Event::SurveyRequested { conversation } => {
                self.survey = Some(conversation);
            }
            Event::Error { message, code, transient } => {
                let text = match code {
                    Some(code) if !message.starts_with(&code) => format!("{code}: {message}"),
                    _ => message,
                };
                let text = if transient { format!("{text} (retrying)") } else { text };
                self.notice = Some(Notice { text, error: true });
            }
        }
        Vec::new()
    }

    /// A key press.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.kind == KeyEventKind::Release {
            return Vec::new();
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('c' | 'd') if ctrl => vec![Action::Quit],
            KeyCode::Char('u') if ctrl => {
                self.input.clear();
                self.typing_changed()
            }
            KeyCode::Char(c) if !ctrl => {
                self.input.push(c);
                self.typing_changed()
            }
            KeyCode::Backspace => {
                use unicode_segmentation::UnicodeSegmentation;
                let last = self.input.grapheme_indices(true).next_back().map(|(at, _)| at);
                if let Some(at) = last {
                    self.input.truncate(at);
                }
                self.typing_changed()
            }
            KeyCode::PageUp => {
                self.scroll = (self.scroll + SCROLL_PAGE).min(self.scroll_limit.get());
                Vec::new()
            }
            KeyCode::PageDown => {
                self.scroll = self.scroll.saturating_sub(SCROLL_PAGE);
                Vec::new()
            }
            KeyCode::End if ctrl => {
                self.scroll = 0;
                Vec::new()
            }
            KeyCode::Esc => {
                self.notice = None;
                Vec::new()
            }
            KeyCode::Enter => self.submit(),
            _ => Vec::new(),
        }
    }

    /// Pasted text (bracketed paste): added to the input, newlines as spaces.
    pub fn on_paste(&mut self, text: &str) -> Vec<Action> {
        self.input.extend(text.chars().map(|c| if c == '\n' || c == '\r' { ' ' } else { c }));
        self.typing_changed()
    }

    /// The SDK accepted a message written here (it returned it as pending).
    pub fn on_sent(&mut self, message: ChatMessage) {
        if self.view == ConversationView::Closed {
            self.start_conversation(None);
        }
        self.messages.push(message);
        // Writing brings the newest messages back into view.
        self.scroll = 0;
    }

    /// Shows an informational notice.
    pub fn info(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice { text: text.into(), error: false });
    }

    /// Shows an error notice.
    pub fn error(&mut self, text: impl Into<String>) {
        self.notice = Some(Notice { text: text.into(), error: true });
    }

    /// The survey was answered.
    pub fn survey_answered(&mut self, score: u8) {
        self.rated = self.survey.take();
        self.info(format!("Thanks for rating us {score}/5."));
    }

    fn submit(&mut self) -> Vec<Action> {
        let text = self.input.trim().to_owned();
        if text.is_empty() {
            return Vec::new();
        }
        if let Some(command) = text.strip_prefix('/') {
            let mut words = command.split_whitespace();
            let action = match (words.next(), words.next(), words.next()) {
                (Some("close"), None, _) => {
                    if self.conversation.is_some() && self.view != ConversationView::Closed {
                        Some(Action::Close)
                    } else {
                        self.error("There is no open conversation to close.");
                        None
                    }
                }
                (Some("rate"), Some(score), None) => match (self.survey, score.parse::<u8>()) {
                    (None, _) => {
                        // The command is spent either way: it does not stay in the input.
                        self.input.clear();
                        let typing = self.typing_changed();
                        if self.rated.is_some() && self.rated == self.conversation {
                            self.error("You already rated this conversation.");
                        } else {
                            self.error("No survey is waiting for an answer.");
                        }
                        return typing;
                    }
                    (Some(conversation), Ok(score @ 1..=5)) => Some(Action::Rate { conversation, score }),
                    (Some(_), _) => {
                        self.error("Rate with a number from 1 to 5, e.g. /rate 5");
                        None
                    }
                },
                (Some("quit"), None, _) => Some(Action::Quit),
                _ => {
                    self.error(format!("Unknown command /{command}. Try /close, /rate N or /quit."));
                    None
                }
            };
            let Some(action) = action else { return Vec::new() };
            self.input.clear();
            let mut actions = self.typing_changed();
            actions.push(action);
            return actions;
        }
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            self.error(format!("Message is {chars} characters; the limit is {MAX_TEXT_CHARS}. Not sent."));
            return Vec::new();
        }
        self.input.clear();
        if self.notice.as_ref().is_some_and(|n| n.error) {
            self.notice = None;
        }
        let mut actions = self.typing_changed();
        actions.push(Action::Send(text));
        actions
    }

    /// Reports typing on/off when the input becomes non-empty/empty.
    fn typing_changed(&mut self) -> Vec<Action> {
        self.idle_ms = 0;
        let typing = !self.input.trim().is_empty();
        if typing == self.typing_sent {
            return Vec::new();
        }
        self.typing_sent = typing;
        vec![Action::Typing(typing)]
    }

    /// A read mark for the newest agent message shown, if not sent yet.
    fn read_mark(&mut self) -> Option<Action> {
        let conversation = self.conversation?;
        let seq = self
            .messages
            .iter()
            .filter(|m| m.from != Side::Consumer && m.conversation == Some(conversation))
            .filter_map(|m| m.seq)
            .max()?;
        if self.read_sent.is_some_and(|(c, s)| c == conversation && s >= seq) {
            return None;
        }
        self.read_sent = Some((conversation, seq));
        Some(Action::MarkRead { conversation, seq })
    }

    /// Switches to a new conversation: the old one's messages go, pending ones stay.
    fn start_conversation(&mut self, conversation: Option<i64>) {
        self.messages.retain(|m| m.seq.is_none());
        self.conversation = conversation;
        self.view = if conversation.is_some() { ConversationView::Open } else { ConversationView::None };
        self.agent_typing = false;
        self.typing_name = None;
        self.survey = None;
    }

    /// Queue/assignment events name the conversation: adopt it if none is shown yet.
    fn follow(&mut self, conversation: i64) {
        if self.conversation != Some(conversation) {
            self.start_conversation(Some(conversation));
        }
    }

    fn insert_message(&mut self, message: ChatMessage) {
        self.messages.push(message);
        self.sort_messages();
    }

    /// Messages with a seq in seq order, then the ones without (pending, failed) as written.
    fn sort_messages(&mut self) {
        self.messages.sort_by_key(|m| (m.seq.is_none(), m.seq.unwrap_or(0)));
    }
}
