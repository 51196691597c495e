//! The SDK's local cache: one SQLite file in the app's data directory holding the outbox,
//! conversations, messages, receipts and small settings (device secret, push token, the last
//! queue estimate).
//!
//! # Encryption
//! Message text, author names (messages and the conversation's agent), failure reasons and
//! meta values are sealed with AES-256-GCM under the key the app supplies (see
//! [`crate::crypto`]). Ids, seqs, times, sides and states stay in clear so the cache can be
//! queried. Every sealed value's AAD is `"<table>.<column>|<row key>"`, so a value moved to
//! another column or another row fails to open ([`StoreError::Corrupt`]) instead of showing
//! the wrong text. The first open stores an encrypted known constant; a later open with
//! another key fails with [`StoreError::WrongKey`] before anything is read.
//!
//! # Durability
//! WAL journal with `synchronous=FULL`: every method that writes commits (and syncs) before
//! it returns, so an outbox entry returned by [`LocalStore::enqueue`] survives a process kill
//! or power loss.
//!
//! # Concurrency
//! One connection behind a `Mutex`; methods are synchronous and short. Call them from
//! `spawn_blocking` (or accept the brief blocking). Each method is one transaction.
//!
//! # Message states
//! Only two states are stored per message row: sent (it has a conversation and a `seq`) or
//! failed. `Pending` messages live in the outbox. `Delivered`/`Read` are derived when
//! reading from the cumulative receipt watermarks kept per (conversation, side): a message
//! is `Read` if the *other* side's read watermark reaches its seq, else `Delivered` if the
//! other side's delivered (or read) watermark does. Watermarks only grow, so states never
//! go backwards, and a message stored after its receipt still gets the right state.
//! (Consumer messages take the agent's receipts; agent messages take the consumer's own
//! receipts, sent from any of their devices; system messages stay `Sent`.)

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use switchboard_protocol::{ConversationStatus, ConversationSummary, Message, ReceiptKind, Side};

use crate::crypto::Cipher;
use crate::model::{ChatMessage, ConversationInfo, MessageState, OutboxEntry, QueueEstimate};

/// Name of the database file inside the data directory.
pub(crate) const FILE_NAME: &str = "switchboard.sqlite3";

/// Meta name of the last queue estimate: `"<conversation> <eta_secs> <received_ms>"`.
const QUEUE_META: &str = "queue_estimate";

/// Schema version stored in `PRAGMA user_version`. Bump with a migration.
const SCHEMA_VERSION: i64 = 1;

/// The constant sealed at first open to recognise the key later.
const KEY_CHECK_PLAINTEXT: &[u8] = b"switchboard local store key check v1";
const KEY_CHECK_AAD: &[u8] = b"store_info.key_check|1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS store_info (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    key_check BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    local_id INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT NOT NULL UNIQUE,
    text BLOB NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation INTEGER,
    seq INTEGER,
    client_id TEXT,
    local_id INTEGER,
    side TEXT NOT NULL,
    author BLOB,
    text BLOB NOT NULL,
    ts_ms INTEGER NOT NULL,
    failed INTEGER NOT NULL DEFAULT 0,
    error BLOB,
    UNIQUE (conversation, seq)
);
CREATE INDEX IF NOT EXISTS messages_client_id ON messages (client_id) WHERE client_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_failed ON messages (local_id) WHERE failed = 1;
CREATE TABLE IF NOT EXISTS receipts (
    conversation INTEGER NOT NULL,
    side TEXT NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0,
    read INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation, side)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    status TEXT NOT NULL,
    opened_ms INTEGER NOT NULL,
    closed_ms INTEGER,
    last_seq INTEGER NOT NULL DEFAULT 0,
    agent BLOB,
    csat INTEGER,
    survey_open INTEGER NOT NULL DEFAULT 0
);
";

/// Why a local-store operation failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The key does not open the data already in the directory.
    #[error("the encryption key does not match this data directory")]
    WrongKey,
    /// The file holds something it should not: a value that fails authentication (tampered
    /// or moved), an unknown enum value, or a schema from a newer SDK.
    #[error("local store is corrupt: {0}")]
    Corrupt(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// The encrypted local cache. See the module documentation.
pub(crate) struct LocalStore {
    conn: Mutex<Connection>,
    cipher: Cipher,
    path: PathBuf,
}

impl std::fmt::Debug for LocalStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// AAD binding a sealed value to its column and row.
fn aad(column: &str, row: impl std::fmt::Display) -> Vec<u8> {
    format!("{column}|{row}").into_bytes()
}

fn side_of(s: &str) -> Result<Side, StoreError> {
    Side::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown side {s:?}")))
}

fn status_of(s: &str) -> Result<ConversationStatus, StoreError> {
    ConversationStatus::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown conversation status {s:?}")))
}

/// A message row as read, before decryption.
struct RawMessage {
    id: i64,
    conversation: Option<i64>,
    seq: Option<i64>,
    client_id: Option<String>,
    local_id: Option<i64>,
    side: String,
    author: Option<Vec<u8>>,
    text: Vec<u8>,
    ts_ms: i64,
    failed: bool,
    error: Option<Vec<u8>>,
    delivered: i64,
    read: i64,
}

const MESSAGE_COLUMNS: &str = "m.id, m.conversation, m.seq, m.client_id, m.local_id, m.side, m.author, m.text, \
     m.ts_ms, m.failed, m.error, coalesce(r.delivered, 0), coalesce(r.read, 0)
     FROM messages m LEFT JOIN receipts r ON r.conversation = m.conversation
       AND r.side = CASE m.side WHEN 'c' THEN 'a' WHEN 'a' THEN 'c' ELSE '' END";

fn raw_message(row: &rusqlite::Row<'_>) -> rusqlite::Result<RawMessage> {
    Ok(RawMessage {
        id: row.get(0)?,
        conversation: row.get(1)?,
        seq: row.get(2)?,
        client_id: row.get(3)?,
        local_id: row.get(4)?,
        side: row.get(5)?,
        author: row.get(6)?,
        text: row.get(7)?,
        ts_ms: row.get(8)?,
        failed: row.get(9)?,
        error: row.get(10)?,
        delivered: row.get(11)?,
        read: row.get(12)?,
    })
}

impl LocalStore {
    /// Opens (creating if needed) the store in `data_dir/switchboard.sqlite3`.
    ///
    /// The first open records a key check; later opens with another key fail with
    /// [`StoreError::WrongKey`] and change nothing.
    pub(crate) fn open(data_dir: &Path, key: &[u8; 32]) -> Result<LocalStore, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join(FILE_NAME);
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Corrupt(format!("could not enable WAL journal (got {mode})")));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Corrupt(format!(
                "written by a newer SDK (schema {version}, this SDK knows {SCHEMA_VERSION})"
            )));
        }
        let cipher = Cipher::new(key);
        {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            let check: Option<Vec<u8>> =
                tx.query_row("SELECT key_check FROM store_info WHERE id = 1", [], |r| r.get(0)).optional()?;
            match check {
                Some(sealed) => match cipher.open(&sealed, KEY_CHECK_AAD) {
                    Ok(plain) if plain == KEY_CHECK_PLAINTEXT => {}
                    _ => return Err(StoreError::WrongKey),
                },
                None => {
                    tx.execute(
                        "INSERT INTO store_info (id, key_check) VALUES (1, ?1)",
                        params![cipher.seal(KEY_CHECK_PLAINTEXT, KEY_CHECK_AAD)],
                    )?;
                }
            }
            tx.commit()?;
        }
        Ok(LocalStore { conn: Mutex::new(conn), cipher, path })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock dropped its transaction, which rolled back: the
        // connection is in a consistent state, so poisoning can be ignored.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    fn seal(&self, plaintext: &str, column: &str, row: impl std::fmt::Display) -> Vec<u8> {
        self.cipher.seal(plaintext.as_bytes(), &aad(column, row))
    }

    fn open_text(&self, sealed: &[u8], column: &str, row: impl std::fmt::Display) -> Result<String, StoreError> {
        let row = row.to_string();
        let plain = self
            .cipher
            .open(sealed, &aad(column, &row))
            .map_err(|e| StoreError::Corrupt(format!("{column} of row {row}: {e}")))?;
        String::from_utf8(plain).map_err(|_| StoreError::Corrupt(format!("{column} of row {row}: not UTF-8")))
    }

    // ---- meta -------------------------------------------------------------------------

    /// A small encrypted setting (device secret, push token, ...).
    pub(crate) fn meta_get(&self, name: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        let sealed: Option<Vec<u8>> = conn
            .prepare_cached("SELECT value FROM meta WHERE name = ?1")?
            .query_row([name], |r| r.get(0))
            .optional()?;
        sealed.map(|s| self.open_text(&s, "meta.value", name)).transpose()
    }

    /// Sets (replaces) a setting.
    pub(crate) fn meta_set(&self, name: &str, value: &str) -> Result<(), StoreError> {
        let sealed = self.seal(value, "meta.value", name);
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO meta (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            )?
            .execute(params![name, sealed])?;
            Ok(())
        })
    }

    /// Removes a setting (no error if absent).
    pub(crate) fn meta_delete(&self, name: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM meta WHERE name = ?1")?.execute([name])?;
            Ok(())
        })
    }

    /// The last queue estimate kept (sealed like every meta value: it tells when the
    /// consumer contacted the brand).
    pub(crate) fn queue_estimate(&self) -> Result<Option<QueueEstimate>, StoreError> {
        let Some(value) = self.meta_get(QUEUE_META)? else { return Ok(None) };
        let mut parts = value.split(' ').map(str::parse::<i64>);
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(Ok(conversation)), Some(Ok(eta)), Some(Ok(received_ms)), None) => Ok(Some(QueueEstimate {
                conversation,
                eta_secs: u32::try_from(eta).map_err(|_| StoreError::Corrupt(format!("queue estimate {value:?}")))?,
                received_ms,
            })),
            _ => Err(StoreError::Corrupt(format!("queue estimate {value:?}"))),
        }
    }

    /// Keeps (`Some`) or forgets (`None`) the queue estimate.
    pub(crate) fn set_queue_estimate(&self, estimate: Option<&QueueEstimate>) -> Result<(), StoreError> {
        match estimate {
            Some(e) => self.meta_set(QUEUE_META, &format!("{} {} {}", e.conversation, e.eta_secs, e.received_ms)),
            None => self.meta_delete(QUEUE_META),
        }
    }

    // ---- outbox -----------------------------------------------------------------------

    /// Queues a message for sending; committed (and synced) before it returns. Enqueueing a
    /// `client_id` that is already in the outbox returns the existing entry unchanged.
    pub(crate) fn enqueue(&self, client_id: &str, text: &str, now_ms: i64) -> Result<OutboxEntry, StoreError> {
        self.write(|tx| {
            let existing: Option<(i64, Vec<u8>, i64)> = tx
                .prepare_cached("SELECT local_id, text, created_ms FROM outbox WHERE client_id = ?1")?
                .query_row([client_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?;
            if let Some((local_id, sealed, created_ms)) = existing {
                let text = self.open_text(&sealed, "outbox.text", client_id)?;
                return Ok(OutboxEntry { local_id, client_id: client_id.to_owned(), text, created_ms });
            }
            let sealed = self.seal(text, "outbox.text", client_id);
            tx.prepare_cached("INSERT INTO outbox (client_id, text, created_ms) VALUES (?1, ?2, ?3)")?
                .execute(params![client_id, sealed, now_ms])?;
            Ok(OutboxEntry {
                local_id: tx.last_insert_rowid(),
                client_id: client_id.to_owned(),
                text: text.to_owned(),
                created_ms: now_ms,
            })
        })
    }

    /// Everything waiting to be sent, in the order written.
    pub(crate) fn pending(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let conn = self.lock();
        let rows: Vec<(i64, String, Vec<u8>, i64)> = conn
            .prepare_cached("SELECT local_id, client_id, text, created_ms FROM outbox ORDER BY local_id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        rows.into_iter()
            .map(|(local_id, client_id, sealed, created_ms)| {
                let text = self.open_text(&sealed, "outbox.text", &client_id)?;
                Ok(OutboxEntry { local_id, client_id, text, created_ms })
            })
            .collect()
    }

    /// The server acknowledged `client_id` as (`conversation`, `seq`) at `ts_ms`: removes it
    /// from the outbox and records it as sent. Idempotent: a repeated ack, or an ack for a
    /// message the server's `msg` already brought in, leaves one row. An ack for a message
    /// marked failed turns it into a sent one. An unknown `client_id` is ignored.
    pub(crate) fn mark_sent(&self, client_id: &str, conversation: i64, seq: i64, ts_ms: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            let outbox = take_outbox(tx, client_id)?;
            let by_seq = message_id_by_seq(tx, conversation, seq)?;
            let by_cid = own_message_by_cid(tx, client_id)?;
            if let Some(id) = by_seq {
                // The server's copy is already here: link it to our cid, drop a failed copy.
                tx.prepare_cached("UPDATE messages SET client_id = ?2 WHERE id = ?1 AND client_id IS NULL")?
                    .execute(params![id, client_id])?;
                if let Some((other, None)) = by_cid
                    && other != id
                {
                    tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?.execute([other])?;
                }
                return Ok(());
            }
            match (by_cid, outbox) {
                // Already recorded as sent (a repeated ack).
                (Some((_, Some(_))), _) => {}
                // Marked failed, but the server did store it after all.
                (Some((id, None)), _) => promote_failed(tx, id, conversation, seq, ts_ms)?,
                (None, Some((local_id, sealed, _))) => {
                    let text = self.open_text(&sealed, "outbox.text", client_id)?;
                    let id = next_message_id(tx)?;
                    tx.prepare_cached(
                        "INSERT INTO messages (id, conversation, seq, client_id, local_id, side, text, ts_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, 'c', ?6, ?7)",
                    )?
                    .execute(params![
                        id,
                        conversation,
                        seq,
                        client_id,
                        local_id,
                        self.seal(&text, "messages.text", id),
                        ts_ms
                    ])?;
                    touch_conversation(tx, conversation, seq, ts_ms)?;
                }
                (None, None) => {}
            }
            Ok(())
        })
    }

    /// The server refused `client_id` for good: removes it from the outbox and keeps it
    /// visible as `Failed` with `reason` (see [`LocalStore::pending_messages`]). Ignored if
    /// the message is not in the outbox or was already sent.
    pub(crate) fn mark_failed(&self, client_id: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            let Some((local_id, sealed, created_ms)) = take_outbox(tx, client_id)? else { return Ok(()) };
            if own_message_by_cid(tx, client_id)?.is_some() {
                return Ok(());
            }
            let text = self.open_text(&sealed, "outbox.text", client_id)?;
            let id = next_message_id(tx)?;
            tx.prepare_cached(
                "INSERT INTO messages (id, conversation, seq, client_id, local_id, side, text, ts_ms, failed, error)
                 VALUES (?1, NULL, NULL, ?2, ?3, 'c', ?4, ?5, 1, ?6)",
            )?
            .execute(params![
                id,
                client_id,
                local_id,
                self.seal(&text, "messages.text", id),
                created_ms,
                self.seal(reason, "messages.error", id)
            ])?;
            Ok(())
        })
    }

    // ---- messages ---------------------------------------------------------------------

    /// Stores messages from the server (`msg` events and `sync` answers), ignoring ones
    /// already held by (conversation, seq). A consumer message whose `cid` matches one of
    /// ours (pending in the outbox, failed, or sent) becomes or stays ONE row.
    ///
    /// Returns how many messages are new to this device: not counted are duplicates and
    /// messages that match a pending/failed/sent message of ours by `cid` (those were
    /// already shown; the app learns their new state from [`LocalStore::messages`]).
    ///
    /// Creates a placeholder conversation (open, opened at the message's time) for a
    /// conversation not yet known, and raises its `last_seq`; call
    /// [`LocalStore::upsert_conversation`] with the server's summary first when you have it.
    pub(crate) fn upsert_messages(&self, msgs: &[Message]) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut new = 0;
            for m in msgs {
                let by_seq = message_id_by_seq(tx, m.c, m.seq)?;
                let ours = match (&m.cid, m.from) {
                    (Some(cid), Side::Consumer) => {
                        Some((cid.as_str(), take_outbox(tx, cid)?, own_message_by_cid(tx, cid)?))
                    }
                    _ => None,
                };
                if let Some(id) = by_seq {
                    if let Some((cid, _, by_cid)) = ours {
                        tx.prepare_cached("UPDATE messages SET client_id = ?2 WHERE id = ?1 AND client_id IS NULL")?
                            .execute(params![id, cid])?;
                        if let Some((other, None)) = by_cid
                            && other != id
                        {
                            tx.prepare_cached("DELETE FROM messages WHERE id = ?1")?.execute([other])?;
                        }
                    }
                    continue;
                }
                let mut local_id = None;
                if let Some((_, outbox, by_cid)) = ours {
                    match by_cid {
                        // Held under another (conversation, seq): keep the one row we have.
                        Some((_, Some(_))) => continue,
                        Some((id, None)) => {
                            promote_failed(tx, id, m.c, m.seq, m.ts)?;
                            continue;
                        }
                        None => {}
                    }
                    local_id = outbox.map(|(local_id, _, _)| local_id);
                }
                let id = next_message_id(tx)?;
                tx.prepare_cached(
                    "INSERT INTO messages (id, conversation, seq, client_id, local_id, side, author, text, ts_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![
                    id,
                    m.c,
                    m.seq,
                    m.cid,
                    local_id,
                    m.from.as_str(),
                    m.name.as_deref().map(|n| self.seal(n, "messages.author", id)),
                    self.seal(&m.text, "messages.text", id),
                    m.ts
                ])?;
                touch_conversation(tx, m.c, m.seq, m.ts)?;
                if local_id.is_none() {
                    new += 1;
                }
            }
            Ok(new)
        })
    }

    fn decode_message(&self, raw: RawMessage) -> Result<ChatMessage, StoreError> {
        let from = side_of(&raw.side)?;
        let state = match raw.seq {
            _ if raw.failed => MessageState::Failed,
            Some(seq) if from != Side::System && seq <= raw.read => MessageState::Read,
            Some(seq) if from != Side::System && seq <= raw.delivered.max(raw.read) => MessageState::Delivered,
            _ => MessageState::Sent,
        };
        Ok(ChatMessage {
            conversation: raw.conversation,
            seq: raw.seq,
            client_id: raw.client_id,
            from,
            author: raw.author.map(|a| self.open_text(&a, "messages.author", raw.id)).transpose()?,
            text: self.open_text(&raw.text, "messages.text", raw.id)?,
            timestamp_ms: raw.ts_ms,
            state,
            error: raw.error.map(|e| self.open_text(&e, "messages.error", raw.id)).transpose()?,
        })
    }

    /// The messages held for `conversation`, by seq, with their current state.
    pub(crate) fn messages(&self, conversation: i64) -> Result<Vec<ChatMessage>, StoreError> {
        let raws: Vec<RawMessage> = {
            let conn = self.lock();
            let sql = format!("SELECT {MESSAGE_COLUMNS} WHERE m.conversation = ?1 ORDER BY m.seq");
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map([conversation], raw_message)?.collect::<Result<_, _>>()?
        };
        raws.into_iter().map(|r| self.decode_message(r)).collect()
    }

    /// Our messages without a conversation: the outbox (`Pending`) and the refused ones
    /// (`Failed`, with `error`), together in the order they were written.
    pub(crate) fn pending_messages(&self) -> Result<Vec<ChatMessage>, StoreError> {
        let mut all: Vec<(i64, ChatMessage)> = self
            .pending()?
            .into_iter()
            .map(|e| {
                let msg = ChatMessage {
                    conversation: None,
                    seq: None,
                    client_id: Some(e.client_id),
                    from: Side::Consumer,
                    author: None,
                    text: e.text,
                    timestamp_ms: e.created_ms,
                    state: MessageState::Pending,
                    error: None,
                };
                (e.local_id, msg)
            })
            .collect();
        let raws: Vec<RawMessage> = {
            let conn = self.lock();
            let sql = format!("SELECT {MESSAGE_COLUMNS} WHERE m.failed = 1 ORDER BY m.local_id");
            let mut stmt = conn.prepare_cached(&sql)?;
            stmt.query_map([], raw_message)?.collect::<Result<_, _>>()?
        };
        for raw in raws {
            let order = raw.local_id.unwrap_or(i64::MAX);
            all.push((order, self.decode_message(raw)?));
        }
        all.sort_by_key(|(order, _)| *order);
        Ok(all.into_iter().map(|(_, m)| m).collect())
    }

    /// The highest seq `n` such that every message 1..=n of `conversation` is held (0 if
    /// seq 1 is missing). Resume with `sync { after: last_seq }`.
    ///
    /// Contiguous rather than simply the highest held: a live `msg` can arrive after a
    /// message we never got (dropped events before a `resync`, a `sync` interrupted by a
    /// disconnect), and syncing after the highest would skip the hole forever. Syncing after
    /// the contiguous prefix fetches the hole; messages already held are ignored by
    /// [`LocalStore::upsert_messages`], so the cost of the choice is only some re-downloaded
    /// messages after a hole.
    pub(crate) fn last_seq(&self, conversation: i64) -> Result<i64, StoreError> {
        let conn = self.lock();
        let n: Option<i64> = conn
            .prepare_cached(
                "SELECT CASE WHEN EXISTS (SELECT 1 FROM messages WHERE conversation = ?1 AND seq = 1)
                 THEN (SELECT min(m.seq) FROM messages m WHERE m.conversation = ?1 AND m.seq >= 1
                       AND NOT EXISTS (SELECT 1 FROM messages n WHERE n.conversation = ?1 AND n.seq = m.seq + 1))
                 ELSE 0 END",
            )?
            .query_row([conversation], |r| r.get(0))?;
        Ok(n.unwrap_or(0))
    }

    // ---- receipts ---------------------------------------------------------------------

    /// Records a cumulative receipt: `by` has delivered/read everything of the other side
    /// up to `seq` in `conversation`. Never goes backwards (an older receipt is ignored).
    pub(crate) fn set_receipt(
        &self,
        conversation: i64,
        by: Side,
        kind: ReceiptKind,
        seq: i64,
    ) -> Result<(), StoreError> {
        let (delivered, read) = match kind {
            ReceiptKind::Delivered => (seq, 0),
            ReceiptKind::Read => (0, seq),
        };
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO receipts (conversation, side, delivered, read) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (conversation, side) DO UPDATE SET
                   delivered = max(delivered, excluded.delivered), read = max(read, excluded.read)",
            )?
            .execute(params![conversation, by.as_str(), delivered, read])?;
            Ok(())
        })
    }

    // ---- conversations ----------------------------------------------------------------

    /// Stores the server's summary of a conversation (`welcome`, `history`). `last_seq`
    /// never decreases, a known agent name and CSAT score are kept, and a closed
    /// conversation stays closed (the protocol has no reopening; this keeps a stale
    /// `history` page from undoing a live `closed` event).
    pub(crate) fn upsert_conversation(&self, summary: &ConversationSummary) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.prepare_cached(
                "INSERT INTO conversations (id, status, opened_ms, closed_ms, last_seq, csat, survey_open)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (id) DO UPDATE SET
                   status = CASE WHEN status = 'closed' THEN 'closed' ELSE excluded.status END,
                   opened_ms = excluded.opened_ms,
                   closed_ms = coalesce(excluded.closed_ms, closed_ms),
                   last_seq = max(last_seq, excluded.last_seq),
                   csat = coalesce(excluded.csat, csat),
                   survey_open = excluded.survey_open",
            )?
            .execute(params![
                summary.c,
                summary.status.as_str(),
                summary.opened,
                summary.closed,
                summary.last_seq,
                summary.csat,
                summary.survey
            ])?;
            Ok(())
        })
    }

    /// Sets the status (a `conv` event). `closed_ms` is kept when closing with `None`, and
    /// cleared when the status is `Open`. Creates the conversation if unknown.
    pub(crate) fn set_conversation_status(
        &self,
        id: i64,
        status: ConversationStatus,
        closed_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            ensure_conversation(tx, id)?;
            tx.prepare_cached(
                "UPDATE conversations SET status = ?2,
                   closed_ms = CASE WHEN ?2 = 'open' THEN NULL ELSE coalesce(?3, closed_ms) END
                 WHERE id = ?1",
            )?
            .execute(params![id, status.as_str(), closed_ms])?;
            Ok(())
        })
    }

    /// Sets (or clears) the assigned agent's display name. Creates the conversation if unknown.
    pub(crate) fn set_agent(&self, id: i64, agent: Option<&str>) -> Result<(), StoreError> {
        let sealed = agent.map(|a| self.seal(a, "conversations.agent", id));
        self.write(|tx| {
            ensure_conversation(tx, id)?;
            tx.prepare_cached("UPDATE conversations SET agent = ?2 WHERE id = ?1")?.execute(params![id, sealed])?;
            Ok(())
        })
    }

    /// Whether a CSAT survey waits for an answer. Creates the conversation if unknown.
    pub(crate) fn set_survey_open(&self, id: i64, open: bool) -> Result<(), StoreError> {
        self.write(|tx| {
            ensure_conversation(tx, id)?;
            tx.prepare_cached("UPDATE conversations SET survey_open = ?2 WHERE id = ?1")?.execute(params![id, open])?;
            Ok(())
        })
    }

    /// Records the CSAT score given; this also closes the survey (`survey_open = false`).
    pub(crate) fn set_csat(&self, id: i64, score: u8) -> Result<(), StoreError> {
        self.write(|tx| {
            ensure_conversation(tx, id)?;
            tx.prepare_cached("UPDATE conversations SET csat = ?2, survey_open = 0 WHERE id = ?1")?
                .execute(params![id, score])?;
            Ok(())
        })
    }

    fn query_conversations(&self, sql: &str) -> Result<Vec<ConversationInfo>, StoreError> {
        type Raw = (i64, String, i64, Option<i64>, i64, Option<Vec<u8>>, Option<i64>, bool);
        let raws: Vec<Raw> = {
            let conn = self.lock();
            let mut stmt = conn.prepare_cached(sql)?;
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?))
            })?
            .collect::<Result<_, _>>()?
        };
        raws.into_iter()
            .map(|(id, status, opened_ms, closed_ms, last_seq, agent, csat, survey_open)| {
                Ok(ConversationInfo {
                    id,
                    status: status_of(&status)?,
                    opened_ms,
                    closed_ms,
                    last_seq,
                    agent: agent.map(|a| self.open_text(&a, "conversations.agent", id)).transpose()?,
                    csat: csat
                        .map(|c| {
                            u8::try_from(c).map_err(|_| StoreError::Corrupt(format!("csat {c} of conversation {id}")))
                        })
                        .transpose()?,
                    survey_open,
                })
            })
            .collect()
    }

    /// All conversations held, newest (by opening time) first.
    pub(crate) fn conversations(&self) -> Result<Vec<ConversationInfo>, StoreError> {
        self.query_conversations(
            "SELECT id, status, opened_ms, closed_ms, last_seq, agent, csat, survey_open
             FROM conversations ORDER BY opened_ms DESC, id DESC",
        )
    }

    /// The open conversation (the newest one if, unexpectedly, several are open).
    pub(crate) fn open_conversation(&self) -> Result<Option<ConversationInfo>, StoreError> {
        Ok(self
            .query_conversations(
                "SELECT id, status, opened_ms, closed_ms, last_seq, agent, csat, survey_open
                 FROM conversations WHERE status = 'open' ORDER BY opened_ms DESC, id DESC LIMIT 1",
            )?
            .into_iter()
            .next())
    }
}

// ---- helpers running inside a transaction --------------------------------------------

/// Removes `client_id` from the outbox, returning its local id, sealed text and creation time.
fn take_outbox(tx: &Transaction<'_>, client_id: &str) -> Result<Option<(i64, Vec<u8>, i64)>, StoreError> {
    Ok(tx
        .prepare_cached("DELETE FROM outbox WHERE client_id = ?1 RETURNING local_id, text, created_ms")?
        .query_row([client_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?)
}

fn message_id_by_seq(tx: &Transaction<'_>, conversation: i64, seq: i64) -> Result<Option<i64>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT id FROM messages WHERE conversation = ?1 AND seq = ?2")?
        .query_row([conversation, seq], |r| r.get(0))
        .optional()?)
}

/// Our (consumer) message row with this cid: its id and conversation (`None` = failed).
fn own_message_by_cid(tx: &Transaction<'_>, client_id: &str) -> Result<Option<(i64, Option<i64>)>, StoreError> {
    Ok(tx
        .prepare_cached(
            "SELECT id, conversation FROM messages WHERE client_id = ?1 AND side = 'c'
             ORDER BY conversation IS NULL, id LIMIT 1",
        )?
        .query_row([client_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

fn next_message_id(tx: &Transaction<'_>) -> Result<i64, StoreError> {
    Ok(tx.prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM messages")?.query_row([], |r| r.get(0))?)
}

/// A failed message the server stored after all: give it its place, clear the failure.
fn promote_failed(tx: &Transaction<'_>, id: i64, conversation: i64, seq: i64, ts_ms: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "UPDATE messages SET conversation = ?2, seq = ?3, ts_ms = ?4, failed = 0, error = NULL WHERE id = ?1",
    )?
    .execute([id, conversation, seq, ts_ms])?;
    touch_conversation(tx, conversation, seq, ts_ms)
}

/// Makes sure a conversation row exists (an open placeholder opened at the message time)
/// and raises its `last_seq` to `seq`.
fn touch_conversation(tx: &Transaction<'_>, conversation: i64, seq: i64, ts_ms: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO conversations (id, status, opened_ms, last_seq) VALUES (?1, 'open', ?2, ?3)
         ON CONFLICT (id) DO UPDATE SET last_seq = max(last_seq, excluded.last_seq)",
    )?
    .execute([conversation, ts_ms, seq])?;
    Ok(())
}

/// Makes sure a conversation row exists, guessing its opening time from its messages.
fn ensure_conversation(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO conversations (id, status, opened_ms, last_seq) VALUES (?1, 'open',
           coalesce((SELECT min(ts_ms) FROM messages WHERE conversation = ?1), 0),
           coalesce((SELECT max(seq) FROM messages WHERE conversation = ?1), 0))",
    )?
    .execute([id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    const KEY: [u8; 32] = [0x42; 32];
    const MARKER: &str = "Zq7-MARKER-ceci-nest-pas-un-secret";

    /// A unique data directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
            let dir = std::env::temp_dir().join(format!(
                "switchboard-sdk-store-{name}-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn msg(c: i64, seq: i64, from: Side, text: &str, cid: Option<&str>) -> Message {
        Message {
            c,
            seq,
            ts: 1_000 + seq,
            from,
            name: (from == Side::Agent).then(|| "Alice Agent".to_owned()),
            text: text.to_owned(),
            cid: cid.map(str::to_owned),
        }
    }

    fn summary(c: i64, status: ConversationStatus, opened: i64, last_seq: i64) -> ConversationSummary {
        ConversationSummary {
            c,
            status,
            opened,
            closed: (status == ConversationStatus::Closed).then_some(opened + 10),
            last_seq,
            csat: None,
            survey: false,
            consumer: None,
            skill: None,
        }
    }

    fn states(store: &LocalStore, c: i64) -> Vec<MessageState> {
        store.messages(c).unwrap().into_iter().map(|m| m.state).collect()
    }

    /// Every byte of every file in the directory (database, -wal, -shm, ...).
    fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap())
            })
            .collect()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn file_is_wal_with_full_sync() {
        let dir = TempDir::new("pragmas");
        let store = LocalStore::open(&dir.0.join("nested/data"), &KEY).unwrap();
        assert!(dir.0.join("nested/data").join(FILE_NAME).is_file());
        let conn = store.lock();
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        let sync: i64 = conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(sync, 2, "synchronous=FULL");
        assert_eq!(version, SCHEMA_VERSION);
        assert!(!format!("{store:?}").contains("66, 66"), "Debug shows no key");
    }

    #[test]
    fn meta_round_trip() {
        let dir = TempDir::new("meta");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        assert_eq!(store.meta_get("device_secret").unwrap(), None);
        store.meta_set("device_secret", "s3cr3t").unwrap();
        store.meta_set("push_token", "tok").unwrap();
        assert_eq!(store.meta_get("device_secret").unwrap().as_deref(), Some("s3cr3t"));
        store.meta_set("device_secret", "other").unwrap();
        assert_eq!(store.meta_get("device_secret").unwrap().as_deref(), Some("other"));
        assert_eq!(store.meta_get("push_token").unwrap().as_deref(), Some("tok"));
    }

    #[test]
    fn queue_estimate_round_trip_survives_reopen_and_clears() {
        let dir = TempDir::new("queue");
        let estimate = QueueEstimate { conversation: 7, eta_secs: 170, received_ms: 1_700_000_000_000 };
        {
            let store = LocalStore::open(&dir.0, &KEY).unwrap();
            assert_eq!(store.queue_estimate().unwrap(), None);
            store.set_queue_estimate(Some(&estimate)).unwrap();
        }
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        assert_eq!(store.queue_estimate().unwrap(), Some(estimate));
        store.set_queue_estimate(None).unwrap();
        assert_eq!(store.queue_estimate().unwrap(), None);
        store.set_queue_estimate(None).unwrap();
    }

    #[test]
    fn outbox_keeps_order_and_ids_never_reused() {
        let dir = TempDir::new("outbox");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        let a = store.enqueue("a", "first", 10).unwrap();
        let b = store.enqueue("b", "second", 11).unwrap();
        let c = store.enqueue("c", "third ✓", 12).unwrap();
        assert!(a.local_id < b.local_id && b.local_id < c.local_id);
        assert_eq!(store.pending().unwrap(), vec![a.clone(), b.clone(), c.clone()]);
        // Enqueueing the same client id again is idempotent.
        assert_eq!(store.enqueue("b", "changed", 99).unwrap(), b);
        assert_eq!(store.pending().unwrap().len(), 3);

        let pm = store.pending_messages().unwrap();
        assert_eq!(pm.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["first", "second", "third ✓"]);
        assert!(pm.iter().all(|m| m.state == MessageState::Pending && m.conversation.is_none() && m.seq.is_none()));
        assert_eq!(pm[0].client_id.as_deref(), Some("a"));
        assert_eq!(pm[0].timestamp_ms, 10);

        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            store.mark_sent(id, 1, i as i64 + 1, 100 + i as i64).unwrap();
        }
        assert!(store.pending().unwrap().is_empty());
        let d = store.enqueue("d", "fourth", 13).unwrap();
        assert!(d.local_id > c.local_id, "local ids keep increasing after the outbox empties");
    }

    #[test]
    fn mark_sent_is_idempotent_and_matches_the_server_echo() {
        let dir = TempDir::new("sent");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        store.enqueue("cid-1", "hello", 10).unwrap();
        store.mark_sent("cid-1", 7, 1, 500).unwrap();
        store.mark_sent("cid-1", 7, 1, 500).unwrap();
        assert!(store.pending().unwrap().is_empty());
        assert_eq!(
            store.messages(7).unwrap(),
            vec![ChatMessage {
                conversation: Some(7),
                seq: Some(1),
                client_id: Some("cid-1".into()),
                from: Side::Consumer,
                author: None,
                text: "hello".into(),
                timestamp_ms: 500,
                state: MessageState::Sent,
                error: None,
            }]
        );
        // The server's `msg` for the same message: not new, not duplicated.
        assert_eq!(store.upsert_messages(&[msg(7, 1, Side::Consumer, "hello", Some("cid-1"))]).unwrap(), 0);
        assert_eq!(store.messages(7).unwrap().len(), 1);
        // The conversation became known, with its last seq.
        let conv = store.open_conversation().unwrap().unwrap();
        assert_eq!((conv.id, conv.last_seq, conv.opened_ms), (7, 1, 500));
        // An unknown client id is ignored.
        store.mark_sent("nope", 7, 9, 1).unwrap();
        assert_eq!(store.messages(7).unwrap().len(), 1);
    }

    #[test]
    fn echo_of_our_cid_before_the_ack_is_one_row() {
        let dir = TempDir::new("echo");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        store.enqueue("cid-1", "hello", 10).unwrap();
        store.enqueue("cid-2", "again", 11).unwrap();
        // Our message comes back through `msg`/`sync` before (or instead of) the ack.
        assert_eq!(store.upsert_messages(&[msg(3, 1, Side::Consumer, "hello", Some("cid-1"))]).unwrap(), 0);
        assert_eq!(store.pending().unwrap().iter().map(|e| e.client_id.as_str()).collect::<Vec<_>>(), ["cid-2"]);
        store.mark_sent("cid-1", 3, 1, 1001).unwrap();
        let msgs = store.messages(3).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].client_id.as_deref(), Some("cid-1"));
        assert_eq!(msgs[0].text, "hello");

        // Ack first, then a server copy without the cid, then with it: still one row.
        store.mark_sent("cid-2", 3, 2, 1002).unwrap();
        assert_eq!(store.upsert_messages(&[msg(3, 2, Side::Consumer, "again", None)]).unwrap(), 0);
        assert_eq!(store.upsert_messages(&[msg(3, 2, Side::Consumer, "again", Some("cid-2"))]).unwrap(), 0);
        assert_eq!(store.messages(3).unwrap().len(), 2);

        // A consumer message written on another device is new here.
        assert_eq!(store.upsert_messages(&[msg(3, 3, Side::Consumer, "from phone", Some("other-dev"))]).unwrap(), 1);
        // An agent cid equal to one of ours is not confused with ours.
        store.enqueue("shared", "mine", 12).unwrap();
        assert_eq!(store.upsert_messages(&[msg(3, 4, Side::Agent, "theirs", Some("shared"))]).unwrap(), 1);
        assert_eq!(store.pending().unwrap().len(), 1);
        assert_eq!(store.messages(3).unwrap().len(), 4);
    }

    #[test]
    fn upsert_ignores_duplicates_and_keeps_authors() {
        let dir = TempDir::new("upsert");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        let batch = [
            msg(1, 1, Side::Consumer, "hi", Some("x")),
            msg(1, 2, Side::Agent, "hello!", None),
            msg(1, 3, Side::System, "closed", None),
        ];
        assert_eq!(store.upsert_messages(&batch).unwrap(), 3);
        assert_eq!(store.upsert_messages(&batch).unwrap(), 0);
        let mut changed = batch[1].clone();
        changed.text = "rewritten".into();
        assert_eq!(store.upsert_messages(&[changed]).unwrap(), 0, "first copy wins");
        let got = store.messages(1).unwrap();
        assert_eq!(got.iter().map(|m| m.seq.unwrap()).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(got[1].text, "hello!");
        assert_eq!(got[1].author.as_deref(), Some("Alice Agent"));
        assert_eq!(got[1].from, Side::Agent);
        assert_eq!(got[1].timestamp_ms, 1002);
        assert_eq!(got[0].author, None);
        assert!(store.messages(2).unwrap().is_empty());
        assert_eq!(store.conversations().unwrap()[0].last_seq, 3);
    }

    #[test]
    fn failed_messages_stay_visible_in_order() {
        let dir = TempDir::new("failed");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        store.enqueue("a", "too long", 10).unwrap();
        store.enqueue("b", "fine", 11).unwrap();
        store.mark_failed("a", "text_too_long: 2001 > 2000").unwrap();
        store.mark_failed("a", "again").unwrap(); // no longer in the outbox: ignored
        assert_eq!(store.pending().unwrap().iter().map(|e| e.client_id.as_str()).collect::<Vec<_>>(), ["b"]);
        let pm = store.pending_messages().unwrap();
        assert_eq!(pm.len(), 2);
        assert_eq!(pm[0].state, MessageState::Failed);
        assert_eq!(pm[0].text, "too long");
        assert_eq!(pm[0].error.as_deref(), Some("text_too_long: 2001 > 2000"));
        assert_eq!((pm[0].conversation, pm[0].seq, pm[0].timestamp_ms), (None, None, 10));
        assert_eq!(pm[1].state, MessageState::Pending);
        // A failed message the server stored after all becomes sent, once.
        store.mark_sent("a", 4, 1, 77).unwrap();
        assert_eq!(store.pending_messages().unwrap().len(), 1);
        let m = store.messages(4).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].state, m[0].error.as_deref(), m[0].text.as_str()), (MessageState::Sent, None, "too long"));
        // Sent messages cannot fail afterwards.
        store.mark_sent("b", 4, 2, 78).unwrap();
        store.mark_failed("b", "late").unwrap();
        assert_eq!(states(&store, 4), [MessageState::Sent, MessageState::Sent]);
    }

    #[test]
    fn last_seq_is_the_contiguous_prefix() {
        let dir = TempDir::new("lastseq");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        assert_eq!(store.last_seq(1).unwrap(), 0);
        let m = |s| msg(1, s, Side::Agent, "x", None);
        store.upsert_messages(&[m(1), m(2), m(3), m(5), m(6)]).unwrap();
        assert_eq!(store.last_seq(1).unwrap(), 3);
        store.upsert_messages(&[m(4)]).unwrap();
        assert_eq!(store.last_seq(1).unwrap(), 6);
        store.upsert_messages(&[msg(2, 2, Side::Agent, "x", None)]).unwrap();
        assert_eq!(store.last_seq(2).unwrap(), 0, "seq 1 missing");
    }

    #[test]
    fn receipts_never_go_backwards() {
        let dir = TempDir::new("receipts");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        use MessageState::{Delivered, Read, Sent};
        store
            .upsert_messages(&[
                msg(1, 1, Side::Consumer, "a", None),
                msg(1, 2, Side::Consumer, "b", None),
                msg(1, 3, Side::Consumer, "c", None),
                msg(1, 4, Side::Agent, "d", None),
                msg(1, 5, Side::System, "e", None),
            ])
            .unwrap();
        assert_eq!(states(&store, 1), [Sent, Sent, Sent, Sent, Sent]);
        store.set_receipt(1, Side::Agent, ReceiptKind::Delivered, 2).unwrap();
        assert_eq!(states(&store, 1), [Delivered, Delivered, Sent, Sent, Sent]);
        store.set_receipt(1, Side::Agent, ReceiptKind::Read, 1).unwrap();
        assert_eq!(states(&store, 1), [Read, Delivered, Sent, Sent, Sent]);
        // Older receipts change nothing.
        store.set_receipt(1, Side::Agent, ReceiptKind::Delivered, 1).unwrap();
        store.set_receipt(1, Side::Agent, ReceiptKind::Read, 0).unwrap();
        assert_eq!(states(&store, 1), [Read, Delivered, Sent, Sent, Sent]);
        // Read implies delivered; a later delivered receipt does not demote Read.
        store.set_receipt(1, Side::Agent, ReceiptKind::Read, 5).unwrap();
        store.set_receipt(1, Side::Agent, ReceiptKind::Delivered, 5).unwrap();
        assert_eq!(states(&store, 1), [Read, Read, Read, Sent, Sent]);
        // The consumer's own receipts (from any device) mark the agent's messages.
        store.set_receipt(1, Side::Consumer, ReceiptKind::Read, 5).unwrap();
        assert_eq!(states(&store, 1), [Read, Read, Read, Read, Sent]);
        // A message stored after its receipt gets the right state at once.
        store.enqueue("late", "f", 1).unwrap();
        store.set_receipt(1, Side::Agent, ReceiptKind::Delivered, 6).unwrap();
        store.mark_sent("late", 1, 6, 2000).unwrap();
        assert_eq!(states(&store, 1)[5], Delivered);
        // Receipts of another conversation do not leak.
        store.set_receipt(2, Side::Agent, ReceiptKind::Read, 100).unwrap();
        assert_eq!(states(&store, 1)[5], Delivered);
    }

    #[test]
    fn conversations_round_trip() {
        let dir = TempDir::new("convs");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        assert_eq!(store.open_conversation().unwrap(), None);
        store.upsert_conversation(&summary(1, ConversationStatus::Closed, 100, 4)).unwrap();
        store.upsert_conversation(&summary(2, ConversationStatus::Open, 200, 2)).unwrap();
        let list = store.conversations().unwrap();
        assert_eq!(list.iter().map(|c| c.id).collect::<Vec<_>>(), [2, 1], "newest first");
        assert_eq!(
            list[1],
            ConversationInfo {
                id: 1,
                status: ConversationStatus::Closed,
                opened_ms: 100,
                closed_ms: Some(110),
                last_seq: 4,
                agent: None,
                csat: None,
                survey_open: false
            }
        );
        assert_eq!(store.open_conversation().unwrap().unwrap().id, 2);

        store.set_agent(2, Some("Bob")).unwrap();
        store.set_survey_open(1, true).unwrap();
        assert!(store.conversations().unwrap()[1].survey_open);
        store.set_csat(1, 5).unwrap();
        let c1 = store.conversations().unwrap().remove(1);
        assert_eq!((c1.csat, c1.survey_open), (Some(5), false));
        // A later summary keeps the agent name, the csat and the higher last_seq.
        store.upsert_conversation(&summary(2, ConversationStatus::Open, 200, 1)).unwrap();
        store.upsert_conversation(&summary(1, ConversationStatus::Closed, 100, 4)).unwrap();
        let list = store.conversations().unwrap();
        assert_eq!((list[0].agent.as_deref(), list[0].last_seq), (Some("Bob"), 2));
        assert_eq!(list[1].csat, Some(5));
        store.set_agent(2, None).unwrap();
        assert_eq!(store.conversations().unwrap()[0].agent, None);

        store.set_conversation_status(2, ConversationStatus::Closed, Some(300)).unwrap();
        assert_eq!(store.open_conversation().unwrap(), None);
        assert_eq!(store.conversations().unwrap()[0].closed_ms, Some(300));
        // A stale summary does not reopen it.
        store.upsert_conversation(&summary(2, ConversationStatus::Open, 200, 2)).unwrap();
        assert_eq!(store.conversations().unwrap()[0].status, ConversationStatus::Closed);

        // Setters create unknown conversations.
        store.set_conversation_status(9, ConversationStatus::Open, None).unwrap();
        assert_eq!(store.open_conversation().unwrap().unwrap().id, 9);
    }

    #[test]
    fn survives_a_kill_and_reopen() {
        let dir = TempDir::new("reopen");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        store.meta_set("device_secret", "abc").unwrap();
        store.upsert_conversation(&summary(5, ConversationStatus::Open, 50, 0)).unwrap();
        store.set_agent(5, Some("Carol")).unwrap();
        store.upsert_messages(&[msg(5, 1, Side::Agent, "welcome", None)]).unwrap();
        store.enqueue("q1", "queued one", 60).unwrap();
        store.enqueue("q2", "queued two", 61).unwrap();
        store.enqueue("q3", "queued three", 62).unwrap();
        store.mark_sent("q1", 5, 2, 70).unwrap();
        store.mark_failed("q3", "nope").unwrap();
        store.set_receipt(5, Side::Agent, ReceiptKind::Read, 2).unwrap();
        let before = (
            store.pending().unwrap(),
            store.pending_messages().unwrap(),
            store.messages(5).unwrap(),
            store.conversations().unwrap(),
        );
        // No shutdown: the connection is never closed and the WAL never checkpointed.
        std::mem::forget(store);

        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        let after = (
            store.pending().unwrap(),
            store.pending_messages().unwrap(),
            store.messages(5).unwrap(),
            store.conversations().unwrap(),
        );
        assert_eq!(before, after);
        assert_eq!(after.0.len(), 1);
        assert_eq!(after.2.len(), 2);
        assert_eq!(after.2[1].state, MessageState::Read);
        assert_eq!(store.meta_get("device_secret").unwrap().as_deref(), Some("abc"));
        assert_eq!(store.last_seq(5).unwrap(), 2);
        assert!(store.enqueue("q4", "x", 63).unwrap().local_id > after.0[0].local_id);
    }

    #[test]
    fn another_key_is_refused() {
        let dir = TempDir::new("wrongkey");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        store.enqueue("a", "hello", 1).unwrap();
        drop(store);
        let mut other = KEY;
        other[0] ^= 0x80;
        let err = LocalStore::open(&dir.0, &other).unwrap_err();
        assert!(matches!(err, StoreError::WrongKey), "{err:?}");
        assert_eq!(err.to_string(), "the encryption key does not match this data directory");
        // Nothing was changed: the right key still opens it.
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        assert_eq!(store.pending().unwrap()[0].text, "hello");
    }

    #[test]
    fn newer_schema_is_refused() {
        let dir = TempDir::new("schema");
        drop(LocalStore::open(&dir.0, &KEY).unwrap());
        let conn = Connection::open(dir.0.join(FILE_NAME)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        drop(conn);
        assert!(matches!(LocalStore::open(&dir.0, &KEY), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn no_secret_in_clear_on_disk() {
        let dir = TempDir::new("clear");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        let mut agent = msg(1, 1, Side::Agent, &format!("agent says {MARKER}"), None);
        agent.name = Some(format!("name {MARKER}"));
        store.upsert_messages(&[agent, msg(1, 2, Side::Consumer, &format!("consumer {MARKER}"), Some("c0"))]).unwrap();
        store.enqueue("c1", &format!("pending {MARKER}"), 1).unwrap();
        store.enqueue("c2", &format!("soon sent {MARKER}"), 2).unwrap();
        store.enqueue("c3", &format!("soon failed {MARKER}"), 3).unwrap();
        store.mark_sent("c2", 1, 3, 4).unwrap();
        store.mark_failed("c3", &format!("reason {MARKER}")).unwrap();
        store.meta_set("push_token", MARKER).unwrap();
        store.set_agent(1, Some(MARKER)).unwrap();
        // Sanity: the data is there.
        assert_eq!(store.messages(1).unwrap().len(), 3);

        let check = |when: &str| {
            let files = all_bytes(&dir.0);
            assert!(files.iter().any(|(n, b)| n == FILE_NAME && !b.is_empty()));
            for (name, bytes) in files {
                assert!(!contains(&bytes, MARKER.as_bytes()), "{when}: marker in clear in {name}");
                assert!(!contains(&bytes, b"MARKER"), "{when}: part of the marker in clear in {name}");
            }
        };
        check("while open (WAL)");
        assert!(dir.0.join(format!("{FILE_NAME}-wal")).exists(), "the WAL was checked too");
        drop(store);
        check("after close");
    }

    #[test]
    fn tampered_or_moved_values_are_errors_not_garbage() {
        let dir = TempDir::new("tamper");
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        store
            .upsert_messages(&[msg(1, 1, Side::Agent, "first", None), msg(1, 2, Side::Agent, "second", None)])
            .unwrap();
        store.meta_set("a", "value a").unwrap();
        store.meta_set("b", "value b").unwrap();
        store.enqueue("o", "outbox text", 1).unwrap();
        drop(store);

        let raw = Connection::open(dir.0.join(FILE_NAME)).unwrap();
        let store = LocalStore::open(&dir.0, &KEY).unwrap();
        assert_eq!(store.messages(1).unwrap().len(), 2);

        // One flipped bit in a message's ciphertext.
        let mut text: Vec<u8> = raw.query_row("SELECT text FROM messages WHERE seq = 1", [], |r| r.get(0)).unwrap();
        let original = text.clone();
        text[20] ^= 0x01;
        raw.execute("UPDATE messages SET text = ?1 WHERE seq = 1", [&text]).unwrap();
        assert!(matches!(store.messages(1), Err(StoreError::Corrupt(_))));
        raw.execute("UPDATE messages SET text = ?1 WHERE seq = 1", [&original]).unwrap();
        assert_eq!(store.messages(1).unwrap()[0].text, "first");

        // A valid ciphertext moved to another row or column.
        raw.execute("UPDATE messages SET text = (SELECT text FROM messages WHERE seq = 2) WHERE seq = 1", []).unwrap();
        assert!(matches!(store.messages(1), Err(StoreError::Corrupt(_))));
        raw.execute("UPDATE messages SET text = ?1 WHERE seq = 1", [&original]).unwrap();
        raw.execute("UPDATE messages SET text = author WHERE seq = 2", []).unwrap();
        assert!(matches!(store.messages(1), Err(StoreError::Corrupt(_))));

        // Meta values swapped between names; a truncated outbox text.
        raw.execute("UPDATE meta SET value = (SELECT value FROM meta WHERE name = 'b') WHERE name = 'a'", []).unwrap();
        assert!(matches!(store.meta_get("a"), Err(StoreError::Corrupt(_))));
        assert_eq!(store.meta_get("b").unwrap().as_deref(), Some("value b"));
        raw.execute("UPDATE outbox SET text = substr(text, 1, 10)", []).unwrap();
        assert!(matches!(store.pending(), Err(StoreError::Corrupt(_))));
        assert!(matches!(store.pending_messages(), Err(StoreError::Corrupt(_))));
    }

    // ---- property tests: the outbox and the resume logic against a model ----------------

    /// What a test step does. Indices are taken modulo what exists when the step runs, so
    /// every generated sequence is meaningful.
    #[derive(Debug, Clone)]
    enum Op {
        /// The app writes a message.
        Enqueue,
        /// The server stores the n-th outbox entry (not yet on the server) in conversation c.
        ServerStoresOurs { n: usize, c: i64 },
        /// The agent (or the consumer's other device) writes in conversation c.
        ServerStoresOther { c: i64, other_device: bool },
        /// The server refuses the n-th outbox entry for good (it may still have stored an
        /// earlier attempt: `ServerStoresOurs` can pick failed messages too).
        Fail(usize),
        /// The ack of the n-th of our messages on the server arrives (possibly again).
        Ack(usize),
        /// `msg`/`sync` brings server messages n..n+len of conversation c (any order, repeats).
        Deliver { c: i64, n: usize, len: usize, reversed: bool },
        /// A cumulative receipt.
        Receipt { c: i64, by_agent: bool, read: bool, seq: i64 },
        /// The app is killed and restarted (`forget`: no orderly close) or closed and reopened.
        Reopen { kill: bool },
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            3 => Just(Op::Enqueue),
            3 => (0..8usize, 1..=2i64).prop_map(|(n, c)| Op::ServerStoresOurs { n, c }),
            2 => (1..=2i64, any::<bool>()).prop_map(|(c, other_device)| Op::ServerStoresOther { c, other_device }),
            3 => (0..32usize).prop_map(Op::Ack),
            1 => (0..8usize).prop_map(Op::Fail),
            4 => (1..=2i64, 0..32usize, 1..4usize, any::<bool>())
                .prop_map(|(c, n, len, reversed)| Op::Deliver { c, n, len, reversed }),
            2 => (1..=2i64, any::<bool>(), any::<bool>(), 0..12i64)
                .prop_map(|(c, by_agent, read, seq)| Op::Receipt { c, by_agent, read, seq }),
            1 => any::<bool>().prop_map(|kill| Op::Reopen { kill }),
        ]
    }

    /// The reference: the server's log per conversation, what reached this device, receipts.
    #[derive(Default)]
    struct Model {
        /// Every message written here, in order: (cid, text).
        written: Vec<(String, String)>,
        /// Server log per conversation (index = seq - 1).
        server: std::collections::BTreeMap<i64, Vec<Message>>,
        /// Our cids refused for good.
        failed: std::collections::HashSet<String>,
        /// Our cids the server stored → (conversation, seq).
        stored: std::collections::HashMap<String, (i64, i64)>,
        /// (conversation, seq) this device received (ack or message).
        held: std::collections::BTreeSet<(i64, i64)>,
        /// (conversation, side) → (delivered, read) watermarks.
        receipts: std::collections::HashMap<(i64, Side), (i64, i64)>,
        /// (conversation, seq) → state last observed, to check it never goes backwards.
        last_state: std::collections::HashMap<(i64, i64), MessageState>,
        next_other: usize,
    }

    impl Model {
        fn received(&self, cid: &str) -> bool {
            self.stored.get(cid).is_some_and(|place| self.held.contains(place))
        }

        fn unacked(&self) -> Vec<&(String, String)> {
            self.written.iter().filter(|(cid, _)| !self.received(cid) && !self.failed.contains(cid)).collect()
        }

        fn log(&mut self, c: i64) -> &mut Vec<Message> {
            self.server.entry(c).or_default()
        }
    }

    fn rank(state: MessageState) -> u8 {
        match state {
            MessageState::Pending | MessageState::Failed => 0,
            MessageState::Sent => 1,
            MessageState::Delivered => 2,
            MessageState::Read => 3,
        }
    }

    fn check(store: &LocalStore, model: &mut Model) {
        // The outbox: exactly the unacknowledged messages, in the order written.
        let pending = store.pending().unwrap();
        let want: Vec<(String, String)> = model.unacked().into_iter().cloned().collect();
        let got: Vec<(String, String)> = pending.iter().map(|e| (e.client_id.clone(), e.text.clone())).collect();
        assert_eq!(got, want, "pending()");
        assert!(pending.windows(2).all(|w| w[0].local_id < w[1].local_id), "local ids increase");
        // Pending and failed together, in the order written.
        let pm = store.pending_messages().unwrap();
        let want: Vec<(String, MessageState)> = model
            .written
            .iter()
            .filter(|(cid, _)| !model.received(cid))
            .map(|(cid, _)| {
                let state = if model.failed.contains(cid) { MessageState::Failed } else { MessageState::Pending };
                (cid.clone(), state)
            })
            .collect();
        let got: Vec<(String, MessageState)> = pm.iter().map(|m| (m.client_id.clone().unwrap(), m.state)).collect();
        assert_eq!(got, want, "pending_messages()");
        assert!(pm.iter().all(|m| m.conversation.is_none() && m.seq.is_none()));

        let mut cids = std::collections::HashSet::new();
        for m in &pm {
            let cid = m.client_id.clone().unwrap();
            assert!(cids.insert(cid.clone()), "cid {cid} twice");
        }
        for c in [1, 2] {
            let messages = store.messages(c).unwrap();
            let seqs: Vec<i64> = messages.iter().map(|m| m.seq.unwrap()).collect();
            let want: Vec<i64> = model.held.iter().filter(|(mc, _)| *mc == c).map(|(_, s)| *s).collect();
            assert_eq!(seqs, want, "messages({c}) sorted by seq, each held seq once");
            let log = model.server.get(&c).cloned().unwrap_or_default();
            let (agent_dlv, agent_read) = model.receipts.get(&(c, Side::Agent)).copied().unwrap_or_default();
            let (cons_dlv, cons_read) = model.receipts.get(&(c, Side::Consumer)).copied().unwrap_or_default();
            for m in &messages {
                let seq = m.seq.unwrap();
                let server = &log[usize::try_from(seq - 1).unwrap()];
                assert_eq!((m.conversation, m.from, &m.text), (Some(c), server.from, &server.text), "seq {seq}");
                assert_eq!(m.client_id, server.cid, "cid of ({c}, {seq})");
                if let Some(cid) = &m.client_id
                    && m.from == Side::Consumer
                {
                    assert!(cids.insert(cid.clone()), "cid {cid} held twice (pending or messages)");
                }
                let (dlv, read) = match m.from {
                    Side::Consumer => (agent_dlv, agent_read),
                    Side::Agent => (cons_dlv, cons_read),
                    _ => (0, 0),
                };
                let want = if m.from == Side::System {
                    MessageState::Sent
                } else if seq <= read {
                    MessageState::Read
                } else if seq <= dlv.max(read) {
                    MessageState::Delivered
                } else {
                    MessageState::Sent
                };
                assert_eq!(m.state, want, "state of ({c}, {seq})");
                if let Some(before) = model.last_state.insert((c, seq), m.state) {
                    assert!(rank(m.state) >= rank(before), "({c}, {seq}) went from {before:?} to {:?}", m.state);
                }
            }
            let mut contiguous = 0;
            while model.held.contains(&(c, contiguous + 1)) {
                contiguous += 1;
            }
            assert_eq!(store.last_seq(c).unwrap(), contiguous, "last_seq({c})");
        }
    }

    fn run_ops(ops: &[Op]) {
        let dir = TempDir::new("prop");
        let mut store = LocalStore::open(&dir.0, &KEY).unwrap();
        let mut model = Model::default();
        for op in ops {
            match *op {
                Op::Enqueue => {
                    let n = model.written.len();
                    let (cid, text) = (format!("cid-{n}"), format!("message {n}"));
                    let entry = store.enqueue(&cid, &text, i64::try_from(n).unwrap()).unwrap();
                    assert_eq!((entry.client_id.as_str(), entry.text.as_str()), (cid.as_str(), text.as_str()));
                    model.written.push((cid, text));
                }
                Op::ServerStoresOurs { n, c } => {
                    let unsent: Vec<(String, String)> =
                        model.written.iter().filter(|(cid, _)| !model.stored.contains_key(cid)).cloned().collect();
                    if unsent.is_empty() {
                        continue;
                    }
                    let (cid, text) = unsent[n % unsent.len()].clone();
                    let log = model.log(c);
                    let seq = i64::try_from(log.len()).unwrap() + 1;
                    log.push(msg(c, seq, Side::Consumer, &text, Some(&cid)));
                    model.stored.insert(cid, (c, seq));
                }
                Op::ServerStoresOther { c, other_device } => {
                    model.next_other += 1;
                    let k = model.next_other;
                    let log = model.log(c);
                    let seq = i64::try_from(log.len()).unwrap() + 1;
                    log.push(if other_device {
                        msg(c, seq, Side::Consumer, &format!("from the tablet {k}"), Some(&format!("tablet-{k}")))
                    } else {
                        msg(c, seq, Side::Agent, &format!("agent says {k}"), Some(&format!("agent-{k}")))
                    });
                }
                Op::Fail(n) => {
                    let unacked: Vec<String> = model.unacked().into_iter().map(|(cid, _)| cid.clone()).collect();
                    if unacked.is_empty() {
                        continue;
                    }
                    let cid = &unacked[n % unacked.len()];
                    store.mark_failed(cid, "refused").unwrap();
                    model.failed.insert(cid.clone());
                }
                Op::Ack(n) => {
                    let mut ours: Vec<(&String, &(i64, i64))> = model.stored.iter().collect();
                    if ours.is_empty() {
                        continue;
                    }
                    ours.sort();
                    let (cid, &(c, seq)) = ours[n % ours.len()];
                    store.mark_sent(cid, c, seq, 5_000 + seq).unwrap();
                    model.held.insert((c, seq));
                }
                Op::Deliver { c, n, len, reversed } => {
                    let log = model.server.get(&c).cloned().unwrap_or_default();
                    if log.is_empty() {
                        continue;
                    }
                    let start = n % log.len();
                    let mut batch: Vec<Message> = log[start..(start + len).min(log.len())].to_vec();
                    if reversed {
                        batch.reverse();
                    }
                    store.upsert_messages(&batch).unwrap();
                    model.held.extend(batch.iter().map(|m| (m.c, m.seq)));
                }
                Op::Receipt { c, by_agent, read, seq } => {
                    let by = if by_agent { Side::Agent } else { Side::Consumer };
                    let kind = if read { ReceiptKind::Read } else { ReceiptKind::Delivered };
                    store.set_receipt(c, by, kind, seq).unwrap();
                    let marks = model.receipts.entry((c, by)).or_default();
                    if read {
                        marks.1 = marks.1.max(seq);
                    } else {
                        marks.0 = marks.0.max(seq);
                    }
                }
                Op::Reopen { kill } => {
                    if kill {
                        std::mem::forget(store);
                    } else {
                        drop(store);
                    }
                    store = LocalStore::open(&dir.0, &KEY).unwrap();
                }
            }
            check(&store, &mut model);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
            failure_persistence: None,
            ..proptest::test_runner::Config::default()
        })]

        #[test]
        fn outbox_and_resume_match_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            run_ops(&ops);
        }
    }
}
