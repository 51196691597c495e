//! Forward compatibility: a scripted WebSocket server speaks like a newer Switchboard (an
//! error code, a frame type and a conversation event this SDK does not know). The SDK skips
//! what it cannot read, and a refusal with an unknown code fails the message with the
//! server's text instead of resending it forever.

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use switchboard_sdk::{Auth, Client, Event, MessageState};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::harness::{Events, KEY, expect_event, temp_dir};

#[tokio::test]
async fn an_unknown_error_code_fails_the_message_with_the_servers_text() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let text = |json: &str| WsMessage::Text(json.to_owned().into());
        let mut sends = 0;
        while let Some(Ok(message)) = ws.next().await {
            let WsMessage::Text(frame) = message else { continue };
            let frame: Value = serde_json::from_str(&frame).unwrap();
            match frame["t"].as_str() {
                Some("hello") => {
                    ws.send(text(r#"{"t":"welcome","v":1,"me":{"id":7},"anon":"device-secret","hb":30}"#))
                        .await
                        .unwrap();
                    // Things only a newer server sends: skipped, the link stays up.
                    ws.send(text(r#"{"t":"presence","agents_online":3}"#)).await.unwrap();
                    ws.send(text(r#"{"t":"conv","c":1,"ev":"snoozed"}"#)).await.unwrap();
                }
                Some("send") => {
                    sends += 1;
                    let answer = serde_json::json!({"t": "err", "id": frame["id"], "code": "rate_limited",
                        "msg": "Too many messages; wait a minute"});
                    ws.send(text(&answer.to_string())).await.unwrap();
                }
                Some("ping") => {
                    let answer = serde_json::json!({"t": "pong", "id": frame["id"]});
                    ws.send(text(&answer.to_string())).await.unwrap();
                }
                _ => {}
            }
        }
        sends
    });

    let dir = temp_dir("newer-server");
    let client = Client::builder(&url, "demo", "demo-app")
        .auth(Auth::Anonymous)
        .data_dir(&dir)
        .encryption_key(KEY)
        .build()
        .unwrap();
    let mut events = Events::of(&client);
    client.connect();
    let pending = client.send_text("Hello from an older app").unwrap();
    let failed = expect_event(&mut events, |event| {
        matches!(event, Event::MessageStateChanged { state: MessageState::Failed, .. })
    })
    .await;
    let Event::MessageStateChanged { client_id, error, .. } = failed else { unreachable!() };
    assert_eq!(Some(client_id), pending.client_id);
    assert_eq!(error.as_deref(), Some("Too many messages; wait a minute"));
    let shown = client.pending_messages().unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(
        (shown[0].state, shown[0].error.as_deref()),
        (MessageState::Failed, Some("Too many messages; wait a minute"))
    );
    client.shutdown().await;
    assert_eq!(server.await.unwrap(), 1, "sent once, not resent");
}
