//! Transcript exports: one or many conversations as TXT, XML or JSON, streamed.
//!
//! A producer task reads the conversations the search finds in keyset pages
//! ([`PAGE`] at a time), each one's messages in pages of [`MESSAGE_PAGE`], formats them
//! ([`Format`]) into a buffer and hands the buffer to the response body whenever it holds
//! [`CHUNK`] bytes. The channel between them holds [`IN_FLIGHT`] chunks, so a slow client
//! slows the reads down instead of growing memory: an export of any size holds one page of
//! conversations, one page of messages and a few chunks. If the client goes away the next
//! send fails and the task stops; if a read fails the body ends with an error, so the client
//! sees a broken transfer, never a short file that looks whole.
//!
//! Every transcript carries its participants, timestamps (RFC 3339, UTC, milliseconds), the
//! consumer (the brand's own id, profile, device), channel and app, skill, event log,
//! transfers, CSAT, and its messages masked as agents see them (the brand's masking rules;
//! what is hidden from storage was never stored). The JSON form is described by
//! `docs/transcripts.schema.json`.

use std::collections::{BTreeMap, HashMap};

use axum::body::{Body, Bytes};
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use serde::Serialize;
use switchboard_core::masking::{Audience, Masker};
use switchboard_protocol::{Millis, Side};
use switchboard_store::{ConversationEvent, ConversationSearch, PageCursor, StoredMessage};
use tokio::sync::mpsc;

use crate::AppState;
use crate::api::history::{Batch, Names, last_agent};
use crate::error::ApiError;

/// Conversations read per store query.
const PAGE: u32 = 100;
/// Messages read per store query.
const MESSAGE_PAGE: u32 = 500;
/// Bytes gathered before they are handed to the response.
const CHUNK: usize = 64 * 1024;
/// Chunks waiting for the client at most.
const IN_FLIGHT: usize = 4;

/// The `format` value and version written into every export.
pub const FORMAT_NAME: &str = "switchboard.transcripts";
/// Version of the export formats (bumped when a field changes meaning or goes away).
pub const FORMAT_VERSION: u32 = 1;

/// A transcript file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Txt,
    Xml,
    Json,
}

impl Format {
    /// Parses the `format` parameter.
    pub fn parse(text: &str) -> Option<Format> {
        match text {
            "txt" => Some(Format::Txt),
            "xml" => Some(Format::Xml),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Txt => "txt",
            Format::Xml => "xml",
            Format::Json => "json",
        }
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Txt => "text/plain; charset=utf-8",
            Format::Xml => "application/xml; charset=utf-8",
            Format::Json => "application/json",
        }
    }
}

/// Which conversations an export holds.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Those a search finds (newest first), all of them.
    Search(ConversationSearch),
    /// One conversation (the caller was allowed to read it).
    One(switchboard_store::Conversation),
    /// None (a search that can find nothing): an export with no conversation.
    Nothing,
}

/// What the export is, written at its top.
#[derive(Debug, Clone)]
pub struct Header {
    pub brand_id: String,
    pub exported_at: Millis,
}

/// The response body of an export: a stream fed by a task that reads and formats.
pub fn stream(state: AppState, header: Header, selection: Selection, format: Format) -> Body {
    // The producer's queue of finished chunks. The task holds the sender; the body holds the
    // receiver and ends when the task drops the sender (done or failed). Bounded: a slow
    // client makes `send` wait, which pauses the reads.
    let (chunks, receiver) = mpsc::channel::<Result<Bytes, std::io::Error>>(IN_FLIGHT);
    tokio::spawn(async move {
        let mut producer = Producer::new(format, chunks.clone());
        if let Err(error) = producer.run(&state, &header, selection).await {
            match error {
                Stop::ClientGone => {
                    tracing::debug!(brand_id = %header.brand_id, "export stopped: the client went away")
                }
                Stop::Failed(error) => {
                    tracing::error!(brand_id = %header.brand_id, %error, "export failed part way");
                    let _ = chunks.send(Err(std::io::Error::other("the export failed; see the server log"))).await;
                }
            }
        }
    });
    Body::from_stream(futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    }))
}

/// Why a producer stopped early.
enum Stop {
    ClientGone,
    Failed(String),
}

impl From<ApiError> for Stop {
    fn from(error: ApiError) -> Stop {
        Stop::Failed(error.message)
    }
}

impl From<switchboard_store::StoreError> for Stop {
    fn from(error: switchboard_store::StoreError) -> Stop {
        Stop::Failed(error.to_string())
    }
}

struct Producer {
    writer: TranscriptWriter,
    chunks: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Producer {
    fn new(format: Format, chunks: mpsc::Sender<Result<Bytes, std::io::Error>>) -> Producer {
        Producer { writer: TranscriptWriter::new(format), chunks }
    }

    /// Hands the buffer to the body once it is big enough (or always, with `force`).
    async fn flush(&mut self, force: bool) -> Result<(), Stop> {
        if self.writer.buffered() >= CHUNK || (force && self.writer.buffered() > 0) {
            let chunk = self.writer.take();
            self.chunks.send(Ok(Bytes::from(chunk))).await.map_err(|_| Stop::ClientGone)?;
        }
        Ok(())
    }

    async fn run(&mut self, state: &AppState, header: &Header, selection: Selection) -> Result<(), Stop> {
        let brand_id = header.brand_id.as_str();
        let names = Names::of(state, brand_id).await?;
        let masker = state.fanout.masker(brand_id).await?;
        self.writer.begin(header);
        match selection {
            Selection::One(conversation) => {
                self.conversations(state, brand_id, &names, &masker, vec![conversation]).await?;
            }
            Selection::Nothing => {}
            Selection::Search(search) => {
                let mut after: Option<PageCursor> = None;
                loop {
                    let page =
                        state.store.search_conversations(brand_id, &search, after, PAGE, header.exported_at).await?;
                    self.conversations(state, brand_id, &names, &masker, page.conversations).await?;
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
            }
        }
        self.writer.end();
        self.flush(true).await
    }

    async fn conversations(
        &mut self,
        state: &AppState,
        brand_id: &str,
        names: &Names,
        masker: &Masker,
        conversations: Vec<switchboard_store::Conversation>,
    ) -> Result<(), Stop> {
        let mut batch = Batch::read(state, brand_id, &conversations).await?;
        let ids: Vec<i64> = conversations.iter().map(|c| c.id).collect();
        let mut authors: HashMap<i64, Vec<(i64, String)>> = HashMap::new();
        for (conversation_id, author_id, name) in state.store.agent_authors(brand_id, &ids).await? {
            authors.entry(conversation_id).or_default().push((author_id, name));
        }
        for conversation in conversations {
            let events = batch.events.remove(&conversation.id).unwrap_or_default();
            let consumer = batch.consumers.get(&conversation.consumer_id);
            let head = Head::of(&conversation, consumer, &events, authors.remove(&conversation.id), names);
            self.writer.conversation(&head);
            let mut after_seq = 0;
            loop {
                let messages = state.store.messages_after(brand_id, conversation.id, after_seq, MESSAGE_PAGE).await?;
                for message in &messages {
                    self.writer.message(&MessageLine::of(message, masker));
                }
                self.flush(false).await?;
                match messages.last() {
                    Some(last) if messages.len() == MESSAGE_PAGE as usize => after_seq = last.seq,
                    _ => break,
                }
            }
            self.writer.conversation_end();
            self.flush(false).await?;
        }
        Ok(())
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-12-07T10:00:00.123Z`.
pub fn timestamp(ms: Millis) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&format).ok())
        .unwrap_or_else(|| ms.to_string())
}

fn side_name(side: Side) -> &'static str {
    match side {
        Side::Consumer => "consumer",
        Side::Agent => "agent",
        Side::System => "system",
    }
}

/// The consumer as an export shows them.
#[derive(Debug, Serialize)]
struct ConsumerPart {
    /// The brand's own id (JWT `sub`, or `anon:…`).
    external_id: String,
    name: Option<String>,
    email: Option<String>,
    phone: Option<String>,
    language: Option<String>,
    device: Option<DevicePart>,
}

#[derive(Debug, Serialize)]
struct DevicePart {
    os: Option<String>,
    app_version: Option<String>,
    device_type: Option<String>,
}

#[derive(Debug, Serialize)]
struct Participant {
    /// `consumer` or `agent`.
    role: &'static str,
    /// The consumer's external id, or the agent's user id.
    id: String,
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct SkillPart {
    id: i64,
    name: Option<String>,
}

#[derive(Debug, Serialize)]
struct CsatPart {
    score: i64,
    comment: Option<String>,
}

#[derive(Debug, Serialize)]
struct EventPart {
    kind: String,
    at: String,
    agent_id: Option<i64>,
    skill_id: Option<i64>,
}

#[derive(Debug, Serialize)]
struct TransferPart {
    at: String,
    from_agent_id: i64,
    from_agent: Option<String>,
    to_agent_id: Option<i64>,
    to_agent: Option<String>,
    to_skill_id: Option<i64>,
    to_skill: Option<String>,
}

/// Everything of a transcript but its messages (they are streamed after it).
#[derive(Debug, Serialize)]
struct Head {
    id: i64,
    status: &'static str,
    channel: String,
    app_id: String,
    skill: Option<SkillPart>,
    opened_at: String,
    closed_at: Option<String>,
    /// `consumer`, `agent`, `system` or `auto` (auto-closed).
    closed_by: Option<&'static str>,
    priority: &'static str,
    consumer: Option<ConsumerPart>,
    participants: Vec<Participant>,
    /// The agent holding it, or the last one who did.
    agent: Option<Participant>,
    csat: Option<CsatPart>,
    events: Vec<EventPart>,
    transfers: Vec<TransferPart>,
    message_count: i64,
}

impl Head {
    fn of(
        conversation: &switchboard_store::Conversation,
        consumer: Option<&switchboard_store::Consumer>,
        events: &[ConversationEvent],
        agent_authors: Option<Vec<(i64, String)>>,
        names: &Names,
    ) -> Head {
        let mut participants = Vec::new();
        if let Some(consumer) = consumer {
            participants.push(Participant {
                role: "consumer",
                id: consumer.external_id.clone(),
                name: consumer.name.clone(),
            });
        }
        // Agents who held it (event log) or wrote in it, in order of first appearance.
        let mut agents: BTreeMap<i64, Option<String>> = BTreeMap::new();
        let mut order = Vec::new();
        let held = events.iter().filter(|e| e.kind == "assigned").filter_map(|e| e.agent_id);
        for agent in held.chain(conversation.agent_id) {
            if agents.insert(agent, names.agent(Some(agent))).is_none() {
                order.push(agent);
            }
        }
        for (agent, name) in agent_authors.unwrap_or_default() {
            if agents.insert(agent, names.agent(Some(agent)).or(Some(name))).is_none() {
                order.push(agent);
            }
        }
        for agent in order {
            participants.push(Participant { role: "agent", id: agent.to_string(), name: agents[&agent].clone() });
        }
        let agent = last_agent(conversation, events).map(|id| Participant {
            role: "agent",
            id: id.to_string(),
            name: names.agent(Some(id)),
        });
        Head {
            id: conversation.id,
            status: conversation.status.as_str(),
            channel: conversation.channel.clone(),
            app_id: conversation.app_id.clone(),
            skill: conversation.skill_id.map(|id| SkillPart { id, name: names.skill(Some(id)) }),
            opened_at: timestamp(conversation.opened_at),
            closed_at: conversation.closed_at.map(timestamp),
            closed_by: if conversation.auto_closed { Some("auto") } else { conversation.closed_by.map(side_name) },
            priority: match conversation.priority {
                2 => "urgent",
                1 => "high",
                _ => "normal",
            },
            consumer: consumer.map(|consumer| ConsumerPart {
                external_id: consumer.external_id.clone(),
                name: consumer.name.clone(),
                email: consumer.email.clone(),
                phone: consumer.phone.clone(),
                language: consumer.language.clone(),
                device: consumer.device.as_ref().map(|device| DevicePart {
                    os: device.os.clone(),
                    app_version: device.app_version.clone(),
                    device_type: device.device_type.clone(),
                }),
            }),
            participants,
            agent,
            csat: conversation.csat_score.map(|score| CsatPart { score, comment: conversation.csat_comment.clone() }),
            events: events
                .iter()
                .map(|event| EventPart {
                    kind: event.kind.clone(),
                    at: timestamp(event.at),
                    agent_id: event.agent_id,
                    skill_id: event.skill_id,
                })
                .collect(),
            transfers: names
                .transfers(events)
                .into_iter()
                .map(|transfer| TransferPart {
                    at: timestamp(transfer.at),
                    from_agent_id: transfer.from_agent_id,
                    from_agent: transfer.from_agent,
                    to_agent_id: transfer.to_agent_id,
                    to_agent: transfer.to_agent,
                    to_skill_id: transfer.to_skill_id,
                    to_skill: transfer.to_skill,
                })
                .collect(),
            message_count: conversation.last_seq,
        }
    }
}

/// One message as an export shows it.
#[derive(Debug, Serialize)]
struct MessageLine {
    seq: i64,
    at: String,
    /// `consumer`, `agent` or `system`.
    from: &'static str,
    /// The agent's user id (agent messages).
    author_id: Option<i64>,
    name: Option<String>,
    /// Masked as agents see it.
    text: String,
}

impl MessageLine {
    fn of(message: &StoredMessage, masker: &Masker) -> MessageLine {
        MessageLine {
            seq: message.seq,
            at: timestamp(message.created_at),
            from: side_name(message.side),
            author_id: message.author_id.filter(|_| message.side == Side::Agent),
            name: message.author_name.clone(),
            text: masker.mask(&message.text, Audience::Agents).into_owned(),
        }
    }
}

/// Formats an export into a buffer, one piece at a time.
struct TranscriptWriter {
    format: Format,
    buffer: Vec<u8>,
    /// Conversations written so far (JSON needs commas between them).
    conversations: u64,
    /// Messages written in the current conversation.
    messages: u64,
}

impl TranscriptWriter {
    fn new(format: Format) -> TranscriptWriter {
        TranscriptWriter { format, buffer: Vec::with_capacity(CHUNK + 4096), conversations: 0, messages: 0 }
    }

    fn buffered(&self) -> usize {
        self.buffer.len()
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK + 4096))
    }

    fn xml(&mut self) -> Writer<&mut Vec<u8>> {
        Writer::new(&mut self.buffer)
    }

    fn begin(&mut self, header: &Header) {
        let exported_at = timestamp(header.exported_at);
        match self.format {
            Format::Txt => {
                self.line(&format!("Transcripts of brand {}, exported {exported_at}", header.brand_id));
                self.line("Times are UTC. Messages are shown as agents see them (the brand's masking rules).");
            }
            Format::Json => {
                let head = serde_json::json!({
                    "format": FORMAT_NAME,
                    "version": FORMAT_VERSION,
                    "brand": header.brand_id,
                    "exported_at": exported_at,
                });
                let head = head.to_string();
                // `{…}` without its closing brace, then the array.
                self.buffer.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
                self.buffer.extend_from_slice(b",\"conversations\":[");
            }
            Format::Xml => {
                let version = FORMAT_VERSION.to_string();
                let mut xml = self.xml();
                write_xml(&mut xml, Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
                self.buffer.push(b'\n');
                let start = BytesStart::new("transcripts").with_attributes([
                    ("format", FORMAT_NAME),
                    ("version", version.as_str()),
                    ("brand", header.brand_id.as_str()),
                    ("exported_at", exported_at.as_str()),
                ]);
                write_xml(&mut self.xml(), Event::Start(start));
                self.buffer.push(b'\n');
            }
        }
    }

    fn end(&mut self) {
        match self.format {
            Format::Txt => self.line(&format!("\n{} conversation(s).", self.conversations)),
            Format::Json => self.buffer.extend_from_slice(b"]}\n"),
            Format::Xml => {
                write_xml(&mut self.xml(), Event::End(BytesEnd::new("transcripts")));
                self.buffer.push(b'\n');
            }
        }
    }

    fn line(&mut self, text: &str) {
        self.buffer.extend_from_slice(text.as_bytes());
        self.buffer.push(b'\n');
    }

    fn conversation(&mut self, head: &Head) {
        self.messages = 0;
        match self.format {
            Format::Txt => self.txt_head(head),
            Format::Json => {
                if self.conversations > 0 {
                    self.buffer.push(b',');
                }
                self.buffer.push(b'\n');
                let json = serde_json::to_string(head).unwrap_or_else(|_| "{}".to_owned());
                self.buffer.extend_from_slice(&json.as_bytes()[..json.len() - 1]);
                self.buffer.extend_from_slice(b",\"messages\":[");
            }
            Format::Xml => self.xml_head(head),
        }
        self.conversations += 1;
    }

    fn conversation_end(&mut self) {
        match self.format {
            Format::Txt => {}
            Format::Json => self.buffer.extend_from_slice(b"]}"),
            Format::Xml => {
                let mut xml = self.xml();
                write_xml(&mut xml, Event::End(BytesEnd::new("messages")));
                write_xml(&mut xml, Event::End(BytesEnd::new("conversation")));
                self.buffer.push(b'\n');
            }
        }
    }

    fn message(&mut self, message: &MessageLine) {
        match self.format {
            Format::Txt => {
                let who = match (message.from, &message.name) {
                    ("consumer", _) => "Consumer".to_owned(),
                    ("system", _) => "Automatic".to_owned(),
                    (_, Some(name)) => format!("{name} (agent)"),
                    (_, None) => "Agent".to_owned(),
                };
                // Continuation lines are indented so every line of a message stays under its
                // time and author.
                let text = message.text.replace("\r\n", "\n").replace('\n', "\n    ");
                self.line(&format!("[{}] #{} {who}: {text}", message.at, message.seq));
            }
            Format::Json => {
                if self.messages > 0 {
                    self.buffer.push(b',');
                }
                let _ = serde_json::to_writer(&mut self.buffer, message);
            }
            Format::Xml => {
                let seq = message.seq.to_string();
                let author = message.author_id.map(|id| id.to_string());
                let mut start = BytesStart::new("message");
                start.push_attribute(("seq", seq.as_str()));
                start.push_attribute(("at", message.at.as_str()));
                start.push_attribute(("from", message.from));
                if let Some(author) = &author {
                    start.push_attribute(("author_id", author.as_str()));
                }
                let mut xml = self.xml();
                write_xml(&mut xml, Event::Start(start));
                if let Some(name) = &message.name {
                    xml_text_element(&mut xml, "name", name);
                }
                xml_text_element(&mut xml, "text", &message.text);
                write_xml(&mut xml, Event::End(BytesEnd::new("message")));
            }
        }
        self.messages += 1;
    }

    fn txt_head(&mut self, head: &Head) {
        self.line("");
        self.line(&"=".repeat(72));
        let skill = head
            .skill
            .as_ref()
            .map_or("none".to_owned(), |skill| skill.name.clone().unwrap_or_else(|| format!("#{}", skill.id)));
        self.line(&format!(
            "Conversation {} · {} · channel {} · app {} · skill {skill} · priority {}",
            head.id, head.status, head.channel, head.app_id, head.priority
        ));
        let closed = match (&head.closed_at, head.closed_by) {
            (Some(at), Some(by)) => format!(", closed {at} by {by}"),
            (Some(at), None) => format!(", closed {at}"),
            _ => String::new(),
        };
        self.line(&format!("Opened {}{closed}", head.opened_at));
        if let Some(consumer) = &head.consumer {
            let mut line = format!("Consumer: {}", consumer.external_id);
            for (label, value) in [
                ("name", &consumer.name),
                ("email", &consumer.email),
                ("phone", &consumer.phone),
                ("language", &consumer.language),
            ] {
                if let Some(value) = value {
                    line.push_str(&format!(" · {label} {value}"));
                }
            }
            self.line(&line);
            if let Some(device) = &consumer.device {
                let parts: Vec<&str> = [&device.os, &device.app_version, &device.device_type]
                    .into_iter()
                    .flatten()
                    .map(String::as_str)
                    .collect();
                self.line(&format!("Device: {}", parts.join(" · ")));
            }
        }
        let agents: Vec<String> = head
            .participants
            .iter()
            .filter(|p| p.role == "agent")
            .map(|p| p.name.clone().unwrap_or_else(|| format!("#{}", p.id)))
            .collect();
        if !agents.is_empty() {
            self.line(&format!("Agents: {}", agents.join(", ")));
        }
        for transfer in &head.transfers {
            let from = transfer.from_agent.clone().unwrap_or_else(|| format!("#{}", transfer.from_agent_id));
            let to = match (&transfer.to_agent, transfer.to_agent_id, &transfer.to_skill, transfer.to_skill_id) {
                (Some(name), _, _, _) => name.clone(),
                (None, Some(id), _, _) => format!("agent #{id}"),
                (_, None, Some(skill), _) => format!("the {skill} queue"),
                (_, None, None, Some(id)) => format!("the queue of skill #{id}"),
                _ => "the queue".to_owned(),
            };
            self.line(&format!("Transfer {}: {from} to {to}", transfer.at));
        }
        match &head.csat {
            Some(CsatPart { score, comment: Some(comment) }) => self.line(&format!("CSAT: {score}/5 \"{comment}\"")),
            Some(CsatPart { score, comment: None }) => self.line(&format!("CSAT: {score}/5")),
            None => {}
        }
        self.line(&format!("Messages: {}", head.message_count));
        self.line(&"-".repeat(72));
    }

    fn xml_head(&mut self, head: &Head) {
        let id = head.id.to_string();
        let mut start = BytesStart::new("conversation");
        start.push_attribute(("id", id.as_str()));
        start.push_attribute(("status", head.status));
        start.push_attribute(("channel", head.channel.as_str()));
        start.push_attribute(("app_id", head.app_id.as_str()));
        start.push_attribute(("priority", head.priority));
        start.push_attribute(("opened_at", head.opened_at.as_str()));
        if let Some(closed_at) = &head.closed_at {
            start.push_attribute(("closed_at", closed_at.as_str()));
        }
        if let Some(closed_by) = head.closed_by {
            start.push_attribute(("closed_by", closed_by));
        }
        let count = head.message_count.to_string();
        start.push_attribute(("message_count", count.as_str()));
        let mut xml = self.xml();
        write_xml(&mut xml, Event::Start(start));
        if let Some(skill) = &head.skill {
            let id = skill.id.to_string();
            let start = BytesStart::new("skill").with_attributes([("id", id.as_str())]);
            xml_element(&mut xml, start, skill.name.as_deref());
        }
        if let Some(consumer) = &head.consumer {
            write_xml(&mut xml, Event::Start(BytesStart::new("consumer")));
            xml_text_element(&mut xml, "external_id", &consumer.external_id);
            for (name, value) in [
                ("name", &consumer.name),
                ("email", &consumer.email),
                ("phone", &consumer.phone),
                ("language", &consumer.language),
            ] {
                if let Some(value) = value {
                    xml_text_element(&mut xml, name, value);
                }
            }
            if let Some(device) = &consumer.device {
                write_xml(&mut xml, Event::Start(BytesStart::new("device")));
                for (name, value) in
                    [("os", &device.os), ("app_version", &device.app_version), ("device_type", &device.device_type)]
                {
                    if let Some(value) = value {
                        xml_text_element(&mut xml, name, value);
                    }
                }
                write_xml(&mut xml, Event::End(BytesEnd::new("device")));
            }
            write_xml(&mut xml, Event::End(BytesEnd::new("consumer")));
        }
        write_xml(&mut xml, Event::Start(BytesStart::new("participants")));
        for participant in &head.participants {
            xml_participant(&mut xml, "participant", participant);
        }
        write_xml(&mut xml, Event::End(BytesEnd::new("participants")));
        if let Some(agent) = &head.agent {
            xml_participant(&mut xml, "agent", agent);
        }
        if let Some(csat) = &head.csat {
            let score = csat.score.to_string();
            let start = BytesStart::new("csat").with_attributes([("score", score.as_str())]);
            xml_element(&mut xml, start, csat.comment.as_deref());
        }
        write_xml(&mut xml, Event::Start(BytesStart::new("events")));
        for event in &head.events {
            let agent = event.agent_id.map(|id| id.to_string());
            let skill = event.skill_id.map(|id| id.to_string());
            let mut start = BytesStart::new("event");
            start.push_attribute(("kind", event.kind.as_str()));
            start.push_attribute(("at", event.at.as_str()));
            if let Some(agent) = &agent {
                start.push_attribute(("agent_id", agent.as_str()));
            }
            if let Some(skill) = &skill {
                start.push_attribute(("skill_id", skill.as_str()));
            }
            write_xml(&mut xml, Event::Empty(start));
        }
        write_xml(&mut xml, Event::End(BytesEnd::new("events")));
        write_xml(&mut xml, Event::Start(BytesStart::new("transfers")));
        for transfer in &head.transfers {
            let from = transfer.from_agent_id.to_string();
            let to_agent = transfer.to_agent_id.map(|id| id.to_string());
            let to_skill = transfer.to_skill_id.map(|id| id.to_string());
            let mut start = BytesStart::new("transfer");
            start.push_attribute(("at", transfer.at.as_str()));
            start.push_attribute(("from_agent_id", from.as_str()));
            if let Some(to_agent) = &to_agent {
                start.push_attribute(("to_agent_id", to_agent.as_str()));
            }
            if let Some(to_skill) = &to_skill {
                start.push_attribute(("to_skill_id", to_skill.as_str()));
            }
            write_xml(&mut xml, Event::Start(start));
            if let Some(name) = &transfer.from_agent {
                xml_text_element(&mut xml, "from_agent", name);
            }
            if let Some(name) = &transfer.to_agent {
                xml_text_element(&mut xml, "to_agent", name);
            }
            if let Some(name) = &transfer.to_skill {
                xml_text_element(&mut xml, "to_skill", name);
            }
            write_xml(&mut xml, Event::End(BytesEnd::new("transfer")));
        }
        write_xml(&mut xml, Event::End(BytesEnd::new("transfers")));
        write_xml(&mut xml, Event::Start(BytesStart::new("messages")));
    }
}

/// Writes to a `Vec`, which cannot fail.
fn write_xml(xml: &mut Writer<&mut Vec<u8>>, event: Event<'_>) {
    let _ = xml.write_event(event);
}

/// `<name>text</name>`, the text made XML-safe ([`xml_text`]).
fn xml_text_element(xml: &mut Writer<&mut Vec<u8>>, name: &str, text: &str) {
    xml_element(xml, BytesStart::new(name), Some(text));
}

fn xml_element(xml: &mut Writer<&mut Vec<u8>>, start: BytesStart<'_>, text: Option<&str>) {
    let end = start.to_end().into_owned();
    match text {
        Some(text) => {
            write_xml(xml, Event::Start(start));
            write_xml(xml, Event::Text(BytesText::from_escaped(xml_text(text))));
            write_xml(xml, Event::End(end));
        }
        None => write_xml(xml, Event::Empty(start)),
    }
}

fn xml_participant(xml: &mut Writer<&mut Vec<u8>>, element: &str, participant: &Participant) {
    let start = BytesStart::new(element).with_attributes([("role", participant.role), ("id", participant.id.as_str())]);
    xml_element(xml, start, participant.name.as_deref());
}

/// Text as XML 1.0 element content: `<`, `>`, `&`, quotes escaped; a carriage return as
/// `&#13;` (a parser would otherwise turn `\r\n` into `\n`); characters XML 1.0 cannot
/// carry at all (control characters other than tab, newline and carriage return, U+FFFE,
/// U+FFFF) replaced by U+FFFD.
pub fn xml_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#13;"),
            '\t' | '\n' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_utc_with_milliseconds() {
        assert_eq!(timestamp(1_764_104_400_123), "2025-11-25T21:00:00.123Z");
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn xml_text_escapes_markup_and_replaces_what_xml_cannot_carry() {
        assert_eq!(xml_text("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&apos;");
        assert_eq!(xml_text("line\r\nnext\ttab"), "line&#13;\nnext\ttab");
        assert_eq!(xml_text("nul\u{0}bell\u{7}\u{FFFF}ok 👍"), "nul\u{FFFD}bell\u{FFFD}\u{FFFD}ok 👍");
    }
}
