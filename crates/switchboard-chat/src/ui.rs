//! Drawing: a pure function of [`App`] onto a ratatui [`Frame`], so that every screen can be
//! rendered into a `TestBackend` and snapshot-tested.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use switchboard_sdk::{ChatMessage, ConnectionState, MAX_TEXT_CHARS, MessageState, Side};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::app::{App, ConversationView};

/// Draws the whole screen.
pub fn render(app: &App, frame: &mut Frame) {
    let survey = app.survey.is_some();
    let [header, messages, status, banner, input, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(u16::from(survey)),
        Constraint::Length(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_header(app, frame, header);
    render_messages(app, frame, messages);
    render_status(app, frame, status);
    if survey {
        let line = Line::from(vec![
            Span::styled(" ★ How did we do? ", Style::new().fg(Color::Black).bg(Color::Yellow)),
            Span::raw(" Rate this conversation: type /rate 1 to /rate 5"),
        ]);
        frame.render_widget(Paragraph::new(line), banner);
    }
    render_input(app, frame, input);
    let keys = Line::from(vec![
        Span::styled("Enter", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(" send  "),
        Span::styled("Ctrl-C", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(" quit  "),
        Span::styled("/close", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(" close conversation  "),
        Span::styled("/rate N", Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(" answer survey"),
    ])
    .style(Style::new().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(keys), footer);
}

fn render_header(app: &App, frame: &mut Frame, area: Rect) {
    let (state, colour) = match app.connection {
        ConnectionState::Connected => ("● Connected".to_owned(), Color::Green),
        ConnectionState::Connecting => ("◌ Connecting…".to_owned(), Color::Yellow),
        ConnectionState::WaitingToReconnect { .. } => {
            (format!("○ Offline, retry in {} s", app.retry_in_ms.div_ceil(1000)), Color::Red)
        }
        ConnectionState::Disconnected => ("○ Offline".to_owned(), Color::Red),
    };
    let conversation = match &app.view {
        ConversationView::None => "No conversation yet".to_owned(),
        ConversationView::Open => "Finding an agent…".to_owned(),
        ConversationView::Queued { eta_secs: Some(secs @ 1..) } => format!("Queued – {}", wait_text(*secs)),
        ConversationView::Queued { eta_secs: _ } => "Queued – waiting for an agent".to_owned(),
        ConversationView::Assigned { agent: Some(agent) } => format!("Chatting with {agent}"),
        ConversationView::Assigned { agent: None } => "Chatting with an agent".to_owned(),
        ConversationView::Closed => "Conversation closed".to_owned(),
    };
    let mut spans = vec![Span::styled(state, Style::new().fg(colour)), Span::raw(" │ "), Span::raw(conversation)];
    let pending = app.pending_count();
    if pending > 0 {
        spans.push(Span::styled(format!(" │ {pending} waiting to send"), Style::new().fg(Color::Yellow)));
    }
    let block = Block::new()
        .borders(Borders::ALL)
        .title(Line::from(format!(" Switchboard · {} ", app.brand)).style(Style::new().add_modifier(Modifier::BOLD)));
    frame.render_widget(Paragraph::new(Line::from(spans)).block(block), area);
}

/// "estimated wait ~3 min", "estimated wait < 1 min".
fn wait_text(secs: u32) -> String {
    if secs < 60 { "estimated wait < 1 min".to_owned() } else { format!("estimated wait ~{} min", secs.div_ceil(60)) }
}

fn render_messages(app: &App, frame: &mut Frame, area: Rect) {
    let title = match app.conversation {
        Some(id) => format!(" Conversation #{id} "),
        None => " New conversation ".to_owned(),
    };
    let inner = Block::new().borders(Borders::ALL).inner(area);
    let width = usize::from(inner.width.max(4));
    let mut lines: Vec<Line<'static>> = Vec::new();
    for message in &app.messages {
        lines.extend(message_lines(message, width));
    }
    // Newest at the bottom: show the tail that fits, moved up by the scroll (PageUp).
    let height = usize::from(inner.height);
    let limit = lines.len().saturating_sub(height);
    app.scroll_limit.set(limit);
    let scroll = app.scroll.min(limit);
    let skip = limit - scroll;
    let mut block = Block::new().borders(Borders::ALL).title(title);
    if scroll > 0 {
        let more = Line::from(format!(" ↓ {scroll} newer lines: PageDown ")).style(Style::new().fg(Color::Yellow));
        block = block.title_bottom(more.right_aligned());
    }
    if skip > 0 {
        block = block
            .title_top(Line::from(" ↑ PageUp for earlier ").style(Style::new().fg(Color::DarkGray)).right_aligned());
    }
    frame.render_widget(block, area);
    let shown: Vec<Line<'static>> = lines.into_iter().skip(skip).take(height).collect();
    frame.render_widget(Paragraph::new(shown), inner);
}

/// A message as display lines: ours right-aligned with its mark, the agent's and the
/// system's left-aligned with the author.
fn message_lines(message: &ChatMessage, width: usize) -> Vec<Line<'static>> {
    let body_width = (width * 3 / 4).max(10).min(width);
    match message.from {
        Side::Consumer => {
            let mut lines: Vec<Line<'static>> = wrap(&message.text, body_width)
                .into_iter()
                .map(|text| Line::from(Span::styled(text, Style::new().fg(Color::Cyan))).alignment(Alignment::Right))
                .collect();
            let (mark, style) = mark(message);
            lines.push(Line::from(Span::styled(mark, style)).alignment(Alignment::Right));
            lines
        }
        Side::Agent | Side::System => {
            let (name, style) = match message.from {
                Side::Agent => (message.author.clone().unwrap_or_else(|| "Agent".to_owned()), Style::new()),
                _ => ("System".to_owned(), Style::new().fg(Color::DarkGray).add_modifier(Modifier::ITALIC)),
            };
            let mut lines = vec![Line::from(Span::styled(name, Style::new().add_modifier(Modifier::BOLD)))];
            lines.extend(wrap(&message.text, body_width).into_iter().map(|text| Line::from(Span::styled(text, style))));
            lines
        }
    }
}

/// The delivery mark under one of our messages.
fn mark(message: &ChatMessage) -> (String, Style) {
    match message.state {
        MessageState::Pending => ("… pending".to_owned(), Style::new().fg(Color::Yellow)),
        MessageState::Sent => ("✓ sent".to_owned(), Style::new().fg(Color::DarkGray)),
        MessageState::Delivered => ("✓✓ delivered".to_owned(), Style::new().fg(Color::DarkGray)),
        MessageState::Read => ("✓✓ read".to_owned(), Style::new().fg(Color::Blue).add_modifier(Modifier::BOLD)),
        MessageState::Failed => {
            let reason = message.error.as_deref().unwrap_or("refused by the server");
            (format!("✗ not sent: {reason}"), Style::new().fg(Color::Red))
        }
    }
}

/// Greedy word wrap by display width (a wide emoji takes two columns); a word longer than a
/// line is cut between grapheme clusters, never inside one (a 👨‍👩‍👧 or a 🇪🇸 stays whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let width = width.max(2);
    let mut lines = Vec::new();
    for paragraph in text.split('\n') {
        let mut line = String::new();
        let mut line_width = 0;
        for word in paragraph.split_whitespace() {
            let word_width = word.width();
            let needed = if line_width == 0 { word_width } else { line_width + 1 + word_width };
            if needed <= width {
                if line_width > 0 {
                    line.push(' ');
                    line_width += 1;
                }
                line.push_str(word);
                line_width += word_width;
                continue;
            }
            if line_width > 0 {
                lines.push(std::mem::take(&mut line));
                line_width = 0;
            }
            for grapheme in word.graphemes(true) {
                let grapheme_width = grapheme.width();
                if line_width + grapheme_width > width && line_width > 0 {
                    lines.push(std::mem::take(&mut line));
                    line_width = 0;
                }
                line.push_str(grapheme);
                line_width += grapheme_width;
            }
        }
        lines.push(line);
    }
    lines
}

fn render_status(app: &App, frame: &mut Frame, area: Rect) {
    let line = if let Some(notice) = &app.notice {
        let style = if notice.error { Style::new().fg(Color::Red) } else { Style::new().fg(Color::Green) };
        Line::from(Span::styled(format!(" {}", notice.text), style))
    } else if app.agent_typing {
        // The name the typing event carried; else the assigned agent's; else generic.
        let who = match (&app.typing_name, &app.view) {
            (Some(name), _) => name.clone(),
            (None, ConversationView::Assigned { agent: Some(agent) }) => agent.clone(),
            (None, _) => "The agent".to_owned(),
        };
        Line::from(Span::styled(
            format!(" {who} is typing…"),
            Style::new().fg(Color::DarkGray).add_modifier(Modifier::ITALIC),
        ))
    } else {
        Line::default()
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn render_input(app: &App, frame: &mut Frame, area: Rect) {
    let count = app.input.chars().count();
    let count_style =
        if count > MAX_TEXT_CHARS { Style::new().fg(Color::Red).add_modifier(Modifier::BOLD) } else { Style::new() };
    let block = Block::new()
        .borders(Borders::ALL)
        .title(" Message ")
        .title_top(Line::from(Span::styled(format!(" {count}/{MAX_TEXT_CHARS} "), count_style)).right_aligned());
    let inner = block.inner(area);
    // Keep the end of a long input (where the cursor is) in view: whole grapheme clusters from
    // the end, as many as fit in the width (one column is kept for the cursor).
    let visible = usize::from(inner.width.saturating_sub(1));
    let mut shown_width = 0;
    let mut start = app.input.len();
    for (at, grapheme) in app.input.grapheme_indices(true).rev() {
        if shown_width + grapheme.width() > visible {
            break;
        }
        shown_width += grapheme.width();
        start = at;
    }
    let shown = app.input[start..].to_owned();
    let cursor_x = inner.x + u16::try_from(shown_width).unwrap_or(u16::MAX);
    frame.render_widget(Paragraph::new(shown).block(block), area);
    frame.set_cursor_position((cursor_x.min(inner.right().saturating_sub(1)), inner.y));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_on_words_and_cuts_long_words() {
        assert_eq!(wrap("hello there world", 11), vec!["hello there", "world"]);
        assert_eq!(wrap("abcdefghij", 4), vec!["abcd", "efgh", "ij"]);
        assert_eq!(wrap("a\nb", 10), vec!["a", "b"]);
        assert_eq!(wrap("", 10), vec![""]);
    }

    #[test]
    fn wrap_never_splits_a_family_or_a_flag() {
        let family = "👨\u{200d}👩\u{200d}👧";
        let flags = "🇪🇸🇫🇷🇯🇵";
        for line in wrap(&format!("{family}{family}{family} {flags}"), 4) {
            assert!(line.width() <= 4, "{line:?}");
            for grapheme in line.graphemes(true) {
                assert!(grapheme == family || ["🇪🇸", "🇫🇷", "🇯🇵"].contains(&grapheme), "a fragment: {grapheme:?}");
            }
        }
    }

    #[test]
    fn wait_is_shown_in_minutes() {
        assert_eq!(wait_text(30), "estimated wait < 1 min");
        assert_eq!(wait_text(60), "estimated wait ~1 min");
        assert_eq!(wait_text(170), "estimated wait ~3 min");
    }
}
