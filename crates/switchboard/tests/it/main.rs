//! Tests of the `switchboard` binary as an operator runs it: a real process, real sockets.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Starts `switchboard serve` on a free port with `data_dir`; returns the child and its URL.
fn start_server(data_dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env("SWITCHBOARD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the switchboard binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = lines.next().expect("the server prints its address").unwrap();
        if let Some(rest) = line.strip_prefix("Switchboard is listening on ") {
            break rest.trim().to_owned();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url)
}

async fn send_and_ack(ws_url: &str, n_messages: usize, tag: &str) -> Vec<(i64, i64, String)> {
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws_url}/v1/consumer")).await.unwrap();
    let hello = json!({"t": "hello", "v": 1, "brand": "demo", "app": "demo-app", "anon": ""});
    socket.send(Message::Text(hello.to_string().into())).await.unwrap();
    let mut acked = Vec::new();
    let mut sent = 0;
    while acked.len() < n_messages {
        // Keep a window of 8 sends in flight so acks come from shared group commits.
        while sent < n_messages && sent - acked.len() < 8 {
            let frame = json!({"t": "send", "id": sent, "cid": format!("{tag}-{sent}"), "text": format!("{tag} message {sent}")});
            socket.send(Message::Text(frame.to_string().into())).await.unwrap();
            sent += 1;
        }
        let message = tokio::time::timeout(Duration::from_secs(20), socket.next()).await.unwrap().unwrap().unwrap();
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            if frame["t"] == "ack" {
                let id = frame["id"].as_u64().unwrap();
                acked.push((frame["c"].as_i64().unwrap(), frame["seq"].as_i64().unwrap(), format!("{tag}-{id}")));
            }
        }
    }
    acked
}

#[tokio::test]
async fn kill_9_after_acks_loses_no_acknowledged_message() {
    let data_dir = std::env::temp_dir().join(format!("sb-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let (mut server, url) = start_server(&data_dir);
    let ws_url = url.replace("http://", "ws://");
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn({
                let ws_url = ws_url.clone();
                async move { send_and_ack(&ws_url, 60, &format!("device{i}")).await }
            })
        })
        .collect();
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.unwrap());
    }
    server.kill().unwrap(); // SIGKILL: no shutdown code runs.
    server.wait().unwrap();

    let (mut restarted, url) = start_server(&data_dir);
    let token = manager_token(&url, &data_dir).await;
    let token = token.as_str();
    let http = reqwest::Client::new();
    let mut by_conversation: std::collections::BTreeMap<i64, Vec<(i64, String)>> = Default::default();
    for (c, seq, cid) in &acked {
        by_conversation.entry(*c).or_default().push((*seq, cid.clone()));
    }
    assert_eq!(by_conversation.len(), 6, "one conversation per anonymous device");
    for (c, mut expected) in by_conversation {
        expected.sort();
        let detail: Value = http
            .get(format!("{url}/api/v1/conversations/{c}?limit=1000"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let stored: Vec<(i64, String)> = detail["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("conversation {c}: {detail}"))
            .iter()
            .map(|m| (m["seq"].as_i64().unwrap(), m["cid"].as_str().unwrap().to_owned()))
            .collect();
        assert_eq!(stored, expected, "conversation {c} holds exactly the acknowledged messages, in seq order");
    }
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[test]
fn a_bad_configuration_value_stops_the_start_naming_its_source() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve"])
        .env("SWITCHBOARD_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("listen = \"nowhere\"") && stderr.contains("SWITCHBOARD_"), "{stderr}");
}

/// Every source file of the workspace opens with a `//!` paragraph saying what it is for.
#[test]
fn every_module_starts_with_a_doc_comment() {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                out.push(path);
            }
        }
    }
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut files = Vec::new();
    for krate in std::fs::read_dir(crates).unwrap() {
        let src = krate.unwrap().path().join("src");
        if src.is_dir() {
            walk(&src, &mut files);
        }
    }
    assert!(files.len() > 10, "found the sources: {files:?}");
    let missing: Vec<_> =
        files.iter().filter(|path| !std::fs::read_to_string(path).unwrap().trim_start().starts_with("//!")).collect();
    assert!(missing.is_empty(), "files without a //! module doc: {missing:?}");
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_and_keeps_acknowledged_messages() {
    let data_dir = std::env::temp_dir().join(format!("sb-sigterm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let (mut server, url) = start_server(&data_dir);
    let acked = send_and_ack(&url.replace("http://", "ws://"), 20, "term").await;
    let status = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().unwrap();
    assert!(status.success());
    let exit = server.wait().unwrap();
    assert!(exit.success(), "a graceful shutdown exits 0, got {exit:?}");

    let (mut restarted, url) = start_server(&data_dir);
    let token = manager_token(&url, &data_dir).await;
    let c = acked[0].0;
    let detail: Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/conversations/{c}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(detail["messages"].as_array().unwrap().len(), 20);
    restarted.kill().unwrap();
    restarted.wait().unwrap();
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Logs in as the demo manager of the server using `data_dir`.
async fn manager_token(url: &str, data_dir: &Path) -> String {
    let credentials: Value =
        serde_json::from_slice(&std::fs::read(data_dir.join("demo-credentials.json")).unwrap()).unwrap();
    let manager = credentials["logins"].as_array().unwrap().iter().find(|l| l["role"] == "manager").unwrap().clone();
    let login: Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"email": manager["email"], "password": manager["password"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    login["token"].as_str().unwrap().to_owned()
}
