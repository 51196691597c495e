//! The docs agree with the code. `docs/errors.md` holds exactly one markdown table, and it is
//! [`ErrorCode::ALL`] rendered by [`error_table`]; `docs/protocol.md` documents every
//! [`CloseCode`].
//!
//! To regenerate the table after changing the error codes, run
//! `UPDATE_DOCS=1 cargo test -p switchboard-protocol docs`, then review the diff.

use std::collections::BTreeSet;
use std::path::PathBuf;

use switchboard_protocol::{CloseCode, ErrorCode};

fn doc_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs").join(name)
}

fn read_doc(name: &str) -> String {
    let path = doc_path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// The table of `docs/errors.md`, one line per row, in [`ErrorCode::ALL`] order.
fn error_table() -> Vec<String> {
    let mut lines = vec!["| code | HTTP status | description |".to_owned(), "| --- | --- | --- |".to_owned()];
    for code in ErrorCode::ALL {
        lines.push(format!("| `{}` | {} | {} |", code.as_str(), code.http_status(), code.description()));
    }
    lines
}

/// Contiguous runs of lines that start with `|`: the markdown tables of a document, with the
/// index of their first line.
fn tables(doc: &str) -> Vec<(usize, Vec<String>)> {
    let mut found: Vec<(usize, Vec<String>)> = Vec::new();
    let mut previous_was_row = false;
    for (index, line) in doc.lines().enumerate() {
        let is_row = line.trim_start().starts_with('|');
        if is_row {
            match found.last_mut() {
                Some((_, rows)) if previous_was_row => rows.push(line.to_owned()),
                _ => found.push((index, vec![line.to_owned()])),
            }
        }
        previous_was_row = is_row;
    }
    found
}

#[test]
fn errors_md_table_is_generated_from_error_code_all() {
    let doc = read_doc("errors.md");
    let expected = error_table();
    let found = tables(&doc);
    if found.len() == 1 && found[0].1 == expected {
        return;
    }
    if std::env::var_os("UPDATE_DOCS").is_some() && found.len() <= 1 {
        let mut lines: Vec<String> = doc.lines().map(str::to_owned).collect();
        match found.first() {
            Some((start, rows)) => {
                lines.splice(*start..start + rows.len(), expected);
            }
            None => {
                lines.push(String::new());
                lines.extend(expected);
            }
        }
        std::fs::write(doc_path("errors.md"), lines.join("\n") + "\n").unwrap();
        return;
    }
    panic!(
        "docs/errors.md must hold exactly one table, equal to ErrorCode::ALL (found {} tables).\n\
         Run `UPDATE_DOCS=1 cargo test -p switchboard-protocol docs` or paste:\n\n{}\n",
        found.len(),
        expected.join("\n"),
    );
}

#[test]
fn error_codes_are_consistent() {
    let mut seen = BTreeSet::new();
    for code in ErrorCode::ALL {
        let wire = code.as_str();
        assert!(seen.insert(wire), "duplicate code {wire}");
        assert!(
            !wire.is_empty() && wire.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{wire} is not snake_case"
        );
        // What serde puts on the wire is what the table says.
        assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{wire}\""));
        assert_eq!(serde_json::from_str::<ErrorCode>(&format!("\"{wire}\"")).unwrap(), *code);
        assert_eq!(code.to_string(), wire);
        assert!((400..600).contains(&code.http_status()), "{wire}: {}", code.http_status());
        let description = code.description();
        assert!(!description.is_empty() && !description.contains('|') && !description.contains('\n'), "{wire}");
        assert!(!description.ends_with('.'), "{wire}: descriptions have no trailing period");
    }
    // `ALL` and the enum come from the same macro table, so `ALL` is complete by
    // construction. A code this version does not know decodes as `unknown`.
    assert_eq!(serde_json::from_str::<ErrorCode>("\"~\"").unwrap(), ErrorCode::Unknown);
    assert!(seen.contains("unknown"));
}

/// Every [`CloseCode`]; the `match` breaks the build when a variant is added, so that it gets
/// added here and documented.
const CLOSE_CODES: [CloseCode; 6] = [
    CloseCode::GoingAway,
    CloseCode::TooBig,
    CloseCode::ProtocolError,
    CloseCode::TokenExpired,
    CloseCode::Unauthorized,
    CloseCode::HeartbeatTimeout,
];

#[allow(dead_code)]
fn close_codes_are_listed(code: CloseCode) {
    match code {
        CloseCode::GoingAway
        | CloseCode::TooBig
        | CloseCode::ProtocolError
        | CloseCode::TokenExpired
        | CloseCode::Unauthorized
        | CloseCode::HeartbeatTimeout => {}
    }
}

#[test]
fn protocol_md_documents_every_close_code() {
    let doc = read_doc("protocol.md");
    let rows: Vec<String> = tables(&doc).into_iter().flat_map(|(_, rows)| rows).collect();
    let mut numbers = BTreeSet::new();
    for code in CLOSE_CODES {
        let number = code.code();
        assert!(numbers.insert(number), "{code:?} reuses {number}");
        assert!(number == 1001 || number == 1009 || (4000..5000).contains(&number), "{code:?}: {number}");
        let prefix = format!("| {number} |");
        assert!(
            rows.iter().any(|row| row.starts_with(&prefix)),
            "docs/protocol.md has no close-code table row starting with `{prefix}` ({code:?})"
        );
    }
}

#[test]
fn protocol_md_mentions_every_error_code_it_relies_on() {
    // protocol.md links to errors.md for the full table, but the codes a client must react to
    // are named in the text; catch renames.
    let doc = read_doc("protocol.md");
    assert!(doc.contains("errors.md"), "protocol.md links to errors.md");
    for code in [
        ErrorCode::FrameTooLarge,
        ErrorCode::TextTooLong,
        ErrorCode::ConsumerNeverWrote,
        ErrorCode::UnsupportedVersion,
        ErrorCode::HelloRequired,
        ErrorCode::MalformedFrame,
        ErrorCode::InvalidClientId,
        ErrorCode::SurveyNotAvailable,
        ErrorCode::InvalidScore,
    ] {
        assert!(doc.contains(&format!("`{}`", code.as_str())), "protocol.md does not name `{code}`");
    }
}

#[test]
fn protocol_md_names_every_frame() {
    let doc = read_doc("protocol.md");
    for tag in crate::accepted_tags::<switchboard_protocol::ClientFrame>()
        .into_iter()
        .chain(crate::accepted_tags::<switchboard_protocol::ServerFrame>())
    {
        let example = format!("{{\"t\":\"{tag}\"");
        assert!(doc.contains(&example), "protocol.md has no JSON example of `{tag}` (looked for {example})");
    }
}

#[test]
fn protocol_md_states_the_limits_of_the_code() {
    let doc = read_doc("protocol.md");
    assert!(doc.contains(&format!("v{}", switchboard_protocol::PROTOCOL_VERSION)));
    assert_eq!(switchboard_protocol::MAX_FRAME_BYTES, 32 * 1024);
    assert!(doc.contains("32 KiB"));
    assert_eq!(switchboard_protocol::MAX_WIRE_FRAME_BYTES, 1024 * 1024);
    assert!(doc.contains("1 MiB"));
    assert!(doc.contains(&format!("{} bytes", switchboard_protocol::MAX_CLIENT_ID_BYTES)));
}
