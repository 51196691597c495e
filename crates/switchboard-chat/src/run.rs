//! The main loop: terminal key events, SDK events and a clock tick feed the [`App`]; its
//! actions are carried out on the SDK; the screen is redrawn after each change.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::{Event as TermEvent, EventStream as TermEvents};
use futures_util::StreamExt;
use switchboard_sdk::{Auth, Client, DeviceInfo, Event, MessageState, Side, TokenProvider};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::app::{Action, App};
use crate::cli::{Args, CommandToken, StaticToken, derive_key};
use crate::ui::render;

/// Result of an action that needs the server, reported back to the loop.
enum Outcome {
    Closed(Result<(), String>),
    Rated(u8, Result<(), String>),
}

/// Builds the client from `args`, then runs the app until the user quits.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let auth = match (&args.token, &args.token_command, args.anonymous) {
        (Some(token), _, _) => Auth::Jwt(Arc::new(StaticToken(token.clone()))),
        (None, Some(command), _) => Auth::Jwt(Arc::new(CommandToken(command.clone()))),
        (None, None, true) => Auth::Anonymous,
        (None, None, false) => anyhow::bail!(
            "say how to log in: --token JWT, --token-command \"switchboard dev-token --sub alice\", or --anonymous"
        ),
    };
    let device = DeviceInfo {
        os: Some(std::env::consts::OS.to_owned()),
        app_version: Some(format!("switchboard-chat {}", env!("CARGO_PKG_VERSION"))),
        device_type: Some("desktop".to_owned()),
    };
    // The cache is per identity: a token command is asked once here for the `sub` it names.
    let token = match (&args.token, &args.token_command) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(command)) => CommandToken(command.clone()).fetch_token().ok(),
        (None, None) => None,
    };
    let data_dir = args.cache_dir(token.as_deref());
    let mut builder = Client::builder(&args.server, &args.brand, &args.app)
        .auth(auth)
        .data_dir(&data_dir)
        .encryption_key(derive_key(&args.passphrase))
        .device(device);
    if let Some(path) = &args.ca_cert {
        let pem = std::fs::read_to_string(path).with_context(|| format!("reading --ca-cert {}", path.display()))?;
        builder = builder.extra_root_certificate_pem(pem);
    }
    let client = builder.build().with_context(|| format!("opening the local cache in {}", data_dir.display()))?;

    let mut app = App::new(&args.brand);
    let initial = reload(&client, &mut app)?;
    // The estimated wait kept from the last run shows at once, before any connection.
    app.restore_queue_estimate(client.queue_estimate()?, now_ms());
    perform(&client, &mut app, initial, &mpsc::unbounded_channel().0)?;
    let mut sdk_events = client.events();
    client.connect();

    let mut terminal = ratatui::init();
    // Pasted text arrives as one event instead of a key press per character (and a pasted
    // newline does not send the message half-written).
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableBracketedPaste);
    let result = event_loop(&client, &mut app, &mut terminal, &mut sdk_events).await;
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableBracketedPaste);
    ratatui::restore();
    client.shutdown().await;
    result
}

async fn event_loop(
    client: &Client,
    app: &mut App,
    terminal: &mut ratatui::DefaultTerminal,
    sdk_events: &mut switchboard_sdk::EventStream,
) -> anyhow::Result<()> {
    let mut keys = TermEvents::new();
    let (outcomes_tx, mut outcomes) = mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut last_tick = Instant::now();
    // The screen is redrawn at most every FRAME, not after every event: drawing once per key
    // let a burst of typed input (or a paste without bracketed paste) pile up in the
    // terminal's input queue, which some systems cap and drop from (1,024 bytes on macOS).
    const FRAME: Duration = Duration::from_millis(16);
    let mut dirty = true;
    let mut next_draw = Instant::now();
    loop {
        if dirty && Instant::now() >= next_draw {
            terminal.draw(|frame| render(app, frame))?;
            dirty = false;
            next_draw = Instant::now() + FRAME;
        }
        let draw_due = tokio::time::sleep_until(next_draw);
        let actions = tokio::select! {
            () = draw_due, if dirty => continue,
            event = sdk_events.next() => {
                let Some(event) = event else { return Ok(()) };
                on_sdk_event(client, app, event)?
            }
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(key))) => app.on_key(key),
                Some(Ok(TermEvent::Paste(text))) => app.on_paste(&text),
                Some(Ok(_)) => Vec::new(),
                Some(Err(error)) => return Err(error.into()),
                None => return Ok(()),
            },
            outcome = outcomes.recv() => {
                match outcome {
                    Some(Outcome::Closed(Ok(()))) => {
                        // The server tells the consumer's *other* sockets; this one only gets
                        // the answer, so the app shows the close itself.
                        if let Some(conversation) = app.conversation {
                            app.on_event(Event::Closed { conversation, by: Some(Side::Consumer) });
                        }
                    }
                    Some(Outcome::Closed(Err(error))) => app.error(format!("Could not close: {error}")),
                    Some(Outcome::Rated(score, Ok(()))) => app.survey_answered(score),
                    Some(Outcome::Rated(_, Err(error))) => app.error(format!("Could not send the rating: {error}")),
                    None => {}
                }
                Vec::new()
            }
            _ = tick.tick() => {
                let now = Instant::now();
                let elapsed = now - last_tick;
                last_tick = now;
                app.on_tick(elapsed)
            }
        };
        dirty = true;
        if actions.contains(&Action::Quit) {
            return Ok(());
        }
        perform(client, app, actions, &outcomes_tx)?;
    }
}

/// Applies an SDK event; a failed message's reason is only in the cache, so it is read there.
fn on_sdk_event(client: &Client, app: &mut App, event: Event) -> anyhow::Result<Vec<Action>> {
    let failed = match &event {
        Event::MessageStateChanged { client_id, state: MessageState::Failed, .. } => Some(client_id.clone()),
        _ => None,
    };
    let actions = app.on_event(event);
    if let Some(client_id) = failed {
        let reason = client
            .pending_messages()?
            .into_iter()
            .find(|m| m.client_id.as_deref() == Some(client_id.as_str()))
            .and_then(|m| m.error);
        if let Some(message) = app.messages.iter_mut().find(|m| m.client_id.as_deref() == Some(client_id.as_str())) {
            message.error = reason;
        }
    }
    Ok(actions)
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// Loads the screen from the local cache.
fn reload(client: &Client, app: &mut App) -> anyhow::Result<Vec<Action>> {
    let conversations = client.conversations()?;
    let messages = match App::shown_conversation(&conversations) {
        Some(id) => client.messages(id)?,
        None => Vec::new(),
    };
    Ok(app.load(&conversations, messages, client.pending_messages()?))
}

/// Carries out the app's actions on the SDK. Calls that need an answer from the server run
/// in the background and report through `outcomes`.
fn perform(
    client: &Client,
    app: &mut App,
    actions: Vec<Action>,
    outcomes: &mpsc::UnboundedSender<Outcome>,
) -> anyhow::Result<()> {
    for action in actions {
        match action {
            Action::Send(text) => match client.send_text(&text) {
                Ok(message) => app.on_sent(message),
                Err(error) => app.error(format!("Not sent: {error}")),
            },
            Action::Typing(on) => {
                if let Err(error) = client.set_typing(on) {
                    app.error(error.to_string());
                }
            }
            Action::MarkRead { conversation, seq } => client.mark_read(conversation, seq),
            Action::Close => {
                let (client, outcomes) = (client.clone(), outcomes.clone());
                tokio::spawn(async move {
                    let result = client.close_conversation().await.map_err(|e| e.to_string());
                    let _ = outcomes.send(Outcome::Closed(result));
                });
            }
            Action::Rate { conversation, score } => {
                let (client, outcomes) = (client.clone(), outcomes.clone());
                tokio::spawn(async move {
                    let result = client.answer_survey(conversation, score, None).await.map_err(|e| e.to_string());
                    let _ = outcomes.send(Outcome::Rated(score, result));
                });
            }
            Action::Quit => {}
        }
    }
    Ok(())
}
