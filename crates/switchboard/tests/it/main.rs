//! Tests of the `switchboard` binary as an operator runs it: a real process, real sockets.
//! `fleet` runs several of them as a fleet on PostgreSQL and NATS, and breaks things.

mod fleet;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Starts `switchboard serve` on a free port with `data_dir`; returns the child and its URL.
fn start_server(data_dir: &Path) -> (Child, String) {
    let (child, url, _) = start_server_logging(data_dir, "warn");
    (child, url)
}

/// [`start_server`] with the log filter `log`; also returns what it printed up to the end of
/// its banner (logs and banner: both go to stdout).
fn start_server_logging(data_dir: &Path, log: &str) -> (Child, String, Vec<String>) {
    start_server_with(data_dir, log, &[])
}

/// [`start_server_logging`] with more flags for `serve`.
fn start_server_with(data_dir: &Path, log: &str, flags: &[&str]) -> (Child, String, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(flags)
        .env("SWITCHBOARD_LOG", log)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the switchboard binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let mut url = None;
    // The banner ends with the sample app's README (demo on) after the address.
    while !printed.last().is_some_and(|line: &String| line.starts_with("(crates/switchboard-chat/README.md")) {
        let line = lines.next().expect("the server prints its banner").unwrap();
        if let Some(rest) = line.strip_prefix("Switchboard is listening on ") {
            url = Some(rest.trim().to_owned());
        }
        printed.push(line);
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, url.expect("the banner names the address"), printed)
}

fn stop(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
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

/// Issue 13: with `RUST_BACKTRACE=1` a configuration error printed a stack trace, doubled
/// backticks and figment's internal key `default.listen_addr`. It is one line per problem, in
/// the user's words: the key as written in the file or the variable's full name.
#[test]
fn a_configuration_error_is_plain_lines_in_the_users_words_without_a_backtrace() {
    let dir = temp_dir("sb-config-error");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("switchboard.toml");
    std::fs::write(&file, "listen_addr = \"127.0.0.1:9000\"\n").unwrap();
    let run = |configure: &dyn Fn(&mut Command)| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        command.arg("serve").env("RUST_BACKTRACE", "1").env_remove("SWITCHBOARD_CONFIG");
        configure(&mut command);
        let output = command.output().unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8(output.stderr).unwrap();
        for unwanted in ["backtrace", "Backtrace", "``", "default.", "  0:"] {
            assert!(!stderr.contains(unwanted), "{unwanted:?} in {stderr}");
        }
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        stderr
    };
    let unknown = run(&|command| {
        command.arg("--config").arg(&file);
    });
    assert!(unknown.contains("listen_addr is not a configuration key"), "{unknown}");
    assert!(unknown.contains("listen, data_dir"), "the known keys are listed: {unknown}");
    assert!(unknown.contains(&file.display().to_string()), "the file is named: {unknown}");
    let env = run(&|command| {
        command.env("SWITCHBOARD_HEARTBEAT_SECS", "soon");
    });
    assert!(env.contains("SWITCHBOARD_HEARTBEAT_SECS must be"), "{env}");
    assert!(env.contains("environment variable SWITCHBOARD_HEARTBEAT_SECS"), "{env}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13: `--help` showed `[env: SWITCHBOARD_CONFIG=]` with the variable unset.
#[test]
fn help_names_the_config_variable_without_an_empty_value() {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("--help")
        .env_remove("SWITCHBOARD_CONFIG")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(help.contains("[env: SWITCHBOARD_CONFIG]"), "{help}");
    assert!(!help.contains("SWITCHBOARD_CONFIG="), "{help}");
}

/// Issue 13: the log got ANSI colour codes when stdout was a file or a pipe.
#[test]
fn logs_have_no_colour_codes_when_not_on_a_terminal() {
    let dir = temp_dir("sb-colour");
    let (server, _, printed) = start_server_logging(&dir, "info");
    stop(server);
    let log = printed
        .iter()
        .find(|line| line.contains("INFO") && line.contains("listening"))
        .expect("the info line saying where it listens, before the banner");
    assert!(!printed.iter().any(|line| line.contains('\u{1b}')), "escape codes in {printed:#?}");
    assert!(log.contains("listening"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13: the banner's consumer hint said `switchboard dev-token …`, which is not on the
/// `PATH` after `cargo run`, and never named the sample app. Built by cargo, the banner says
/// `cargo run …`; the dev-token command it prints, run as printed (by this binary in place of
/// cargo), gives a token.
#[test]
fn the_banner_shows_runnable_commands_for_a_token_and_the_sample_app() {
    let dir = temp_dir("sb-banner");
    let (server, url, printed) = start_server_logging(&dir, "warn");
    stop(server);
    let banner = printed.join("\n");
    // On another address than the sample app's default, the command names it.
    assert!(banner.contains(&format!("cargo run -p switchboard-chat -- --server {url} --anonymous")), "{banner}");
    let token_line = printed.iter().find(|line| line.contains("dev-token")).expect("a dev-token hint");
    let inner = token_line.split("$(").nth(1).and_then(|rest| rest.split(')').next()).expect("a $(…) command");
    let args = inner.strip_prefix("cargo run -q -- ").unwrap_or_else(|| panic!("runnable through cargo: {inner}"));
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard")).args(args.split_whitespace()).output().unwrap();
    assert!(output.status.success(), "{inner}: {}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).unwrap();
    assert_eq!(token.trim().split('.').count(), 3, "a JWT: {token}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13: after an admin reset a demo password, the banner and `demo-credentials.json`
/// kept showing the old one. They show only passwords that still work and say which changed.
#[tokio::test]
async fn a_demo_password_changed_by_an_admin_is_no_longer_printed() {
    let dir = temp_dir("sb-reset");
    let (server, url, _) = start_server_logging(&dir, "warn");
    let credentials: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    let login_of =
        |role: &str| credentials["logins"].as_array().unwrap().iter().find(|l| l["role"] == role).unwrap().clone();
    let (admin, agent) = (login_of("admin"), login_of("agent"));
    let http = reqwest::Client::new();
    let token = login(&url, &admin).await;
    let users: Value =
        http.get(format!("{url}/api/v1/users")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    let agent_id = users.as_array().unwrap().iter().find(|u| u["email"] == agent["email"]).unwrap()["id"].clone();
    let reset = http
        .patch(format!("{url}/api/v1/users/{agent_id}"))
        .bearer_auth(&token)
        .json(&json!({"password": "a brand new passphrase"}))
        .send()
        .await
        .unwrap();
    assert!(reset.status().is_success(), "{}", reset.text().await.unwrap());
    let old = agent["password"].as_str().unwrap();
    let file = std::fs::read_to_string(dir.join("demo-credentials.json")).unwrap();
    assert!(!file.contains(old), "the file forgets it at once, before any restart: {file}");
    stop(server);

    let (server, _, printed) = start_server_logging(&dir, "warn");
    stop(server);
    let banner = printed.join("\n");
    assert!(!banner.contains(old), "the old password is not printed: {banner}");
    let line = printed.iter().find(|line| line.contains(agent["email"].as_str().unwrap())).unwrap();
    assert!(line.contains("password changed"), "{line}");
    let file = std::fs::read_to_string(dir.join("demo-credentials.json")).unwrap();
    assert!(!file.contains(old), "{file}");
    assert!(file.contains(admin["password"].as_str().unwrap()), "{file}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 15: the data directory and its files were world-readable, and the demo passwords
/// went to stdout, which is the log when it is not a terminal. The directory is 0700, the
/// database (with its WAL), the signing key and the credentials file 0600; a server whose
/// stdout is a pipe never prints a password but says where they are; files of an older
/// version are tightened at start.
#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private_and_passwords_stay_out_of_the_log() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    let dir = temp_dir("sb-private");
    let (server, url, printed) = start_server_logging(&dir, "info");
    // A write so the WAL exists.
    send_and_ack(&url.replace("http://", "ws://"), 1, "private").await;
    let credentials: Value =
        serde_json::from_slice(&std::fs::read(dir.join("demo-credentials.json")).unwrap()).unwrap();
    let banner = printed.join("\n");
    for login in credentials["logins"].as_array().unwrap() {
        let password = login["password"].as_str().unwrap();
        assert!(!banner.contains(password), "a password in the log: {banner}");
        assert!(banner.contains(login["email"].as_str().unwrap()), "the logins are named: {banner}");
    }
    assert!(banner.contains(&format!("passwords: in {}", dir.join("demo-credentials.json").display())), "{banner}");
    assert_eq!(mode(&dir), 0o700);
    for name in ["switchboard.db", "switchboard.db-wal", "demo-credentials.json", "demo-signing-key.pk8"] {
        assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
    }
    stop(server);
    // An older version's looser modes are tightened at the next start.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("demo-credentials.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let (server, _, _) = start_server_logging(&dir, "warn");
    stop(server);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("demo-credentials.json")), 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 13: the sample app's default data directory was not ignored by git.
#[test]
fn gitignore_lists_the_default_data_directories() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let gitignore = std::fs::read_to_string(root.join(".gitignore")).unwrap();
    for dir in ["/switchboard-data", "/switchboard-chat-data"] {
        assert!(gitignore.lines().any(|line| line.trim() == dir), "{dir} not in .gitignore");
    }
    let chat_cli = std::fs::read_to_string(root.join("crates/switchboard-chat/src/cli.rs")).unwrap();
    assert!(chat_cli.contains("\"./switchboard-chat-data\""), "the sample app's default changed");
}

fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

async fn login(url: &str, login: &Value) -> String {
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/api/v1/auth/login"))
        .json(&json!({"email": login["email"], "password": login["password"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    answer["token"].as_str().unwrap_or_else(|| panic!("login failed: {answer}")).to_owned()
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

/// Issue 14: two nodes on one SQLite file would each route every brand; the second is
/// refused at start, saying why and what to do, and the first keeps serving.
#[tokio::test]
async fn a_second_node_on_the_same_sqlite_file_is_refused_at_start() {
    let data_dir = temp_dir("serve-lock");
    let (first, url) = start_server(&data_dir);
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .env("SWITCHBOARD_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success(), "the second node must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already using the SQLite database")
            && stderr.contains(&format!("process {}", first.id()))
            && stderr.contains("PostgreSQL"),
        "{stderr}"
    );
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert!(ready.status().is_success(), "the first node still serves");
    stop(first);
    // The lock ends with its process: a node can start again at once.
    let (again, _) = start_server(&data_dir);
    stop(again);
    std::fs::remove_dir_all(&data_dir).ok();
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

/// `switchboard` with `args`: exit success, stdout, stderr.
fn run_binary(args: &[&str], data_dir: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("the switchboard binary runs");
    (output.status.success(), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

/// Issue 9: `switchboard erase` deletes one consumer's data from the store, refuses while
/// they have an open conversation unless told, and says what it deleted.
#[tokio::test]
async fn erase_deletes_a_consumers_data_from_the_command_line() {
    let dir = temp_dir("sb-erase");
    let (server, url) = start_server(&dir);
    let (ok, token, _) = run_binary(&["dev-token", "--sub", "cli-erin"], &dir);
    assert!(ok);
    let ws_url = url.replace("http://", "ws://");
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("{ws_url}/v1/consumer")).await.unwrap();
    let hello = json!({"t": "hello", "v": 1, "brand": "demo", "app": "demo-app", "token": token.trim()});
    socket.send(Message::Text(hello.to_string().into())).await.unwrap();
    let send = json!({"t": "send", "id": 1, "cid": "c1", "text": "please forget me"});
    socket.send(Message::Text(send.to_string().into())).await.unwrap();
    while let Some(Ok(message)) = socket.next().await {
        if let Message::Text(text) = message
            && serde_json::from_str::<Value>(&text).unwrap()["t"] == "ack"
        {
            break;
        }
    }
    drop(socket);
    stop(server);

    let (ok, _, error) = run_binary(&["erase", "--brand", "demo", "--consumer", "cli-erin"], &dir);
    assert!(!ok);
    assert!(error.contains("has an open conversation") && error.contains("--close-open"), "{error}");
    let (ok, out, error) = run_binary(&["erase", "--brand", "demo", "--consumer", "cli-erin", "--close-open"], &dir);
    assert!(ok, "{error}");
    assert!(out.contains("erased consumer \"cli-erin\" of brand \"demo\""), "{out}");
    assert!(out.contains("conversations 1 (1 open)") && out.contains("messages      1"), "{out}");
    assert!(out.contains("profile       deleted"), "{out}");
    let (ok, _, error) = run_binary(&["erase", "--brand", "demo", "--consumer", "cli-erin"], &dir);
    assert!(!ok);
    assert!(error.contains("has no consumer \"cli-erin\""), "{error}");
    let (ok, _, error) = run_binary(&["erase", "--brand", "nobody", "--consumer", "x"], &dir);
    assert!(!ok && error.contains("there is no brand \"nobody\""), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 15, item 1: `serve --tls-self-signed` makes a CA and a certificate in the data
/// directory (owner-only files), serves https with it, and prints what to trust; a client
/// trusting the printed `ca.pem` connects, and the certificate is reused at the next start.
#[tokio::test]
async fn tls_self_signed_serves_https_and_says_what_to_trust() {
    let data_dir = std::env::temp_dir().join(format!("sb-tls-trial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let (server, url, banner) = start_server_with(&data_dir, "warn", &["--tls-self-signed"]);
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let ca = data_dir.join("tls").join("ca.pem");
    let text = banner.join("\n");
    assert!(text.contains(&format!("trust this certificate authority: {}", ca.display())), "{text}");
    assert!(text.contains("--ignore-certificate-errors-spki-list="), "{text}");
    assert!(text.contains(&format!("--ca-cert {}", ca.display())), "the sample app command trusts it: {text}");
    #[cfg(unix)]
    for name in ["ca.pem", "cert.pem", "key.pem"] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir.join("tls").join(name)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{name}");
    }
    let pem = std::fs::read(&ca).unwrap();
    let http =
        reqwest::Client::builder().tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()]).build().unwrap();
    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // Without trusting it, a client refuses the connection.
    assert!(reqwest::Client::new().get(format!("{url}/healthz")).send().await.is_err());
    stop(server);
    let (server, _, banner) = start_server_with(&data_dir, "warn", &["--tls-self-signed"]);
    assert!(banner.iter().any(|line| line.contains("made earlier")), "reused: {banner:?}");
    assert_eq!(std::fs::read(&ca).unwrap(), pem);
    stop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// Issue 15: with the inherited soft limit of 1,024 open files, 1,100 idle connections locked
/// agents out. The server raises its soft limit to the hard limit at start and logs both.
#[cfg(target_os = "linux")]
#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_and_logged() {
    let dir = temp_dir("sb-nofile");
    // Started with a lower soft limit than the hard one (when the hard one allows).
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -S -n 256 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_switchboard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("SWITCHBOARD_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the switchboard binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let logged = loop {
        let line = lines.next().expect("the server logs its open file limit").unwrap();
        if line.contains("open file limit") {
            break line;
        }
    };
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).unwrap();
    std::thread::spawn(move || for _ in lines {});
    stop(child);
    let _ = std::fs::remove_dir_all(&dir);
    let row = limits.lines().find(|line| line.starts_with("Max open files")).unwrap().to_owned();
    let numbers: Vec<&str> = row.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers[0], numbers[1], "soft = hard: {row}");
    assert!(logged.contains(&format!("soft={}", numbers[0])) && logged.contains("hard="), "{logged}");
    if numbers[1] != "256" {
        assert!(logged.contains("raised") && logged.contains("was=256"), "{logged}");
    }
}
