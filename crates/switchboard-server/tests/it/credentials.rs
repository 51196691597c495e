//! Credentials hygiene (issue 15, item 5): the password policy wherever a password is set,
//! a new password or a disabled account ends the user's sessions and sockets, answers that
//! carry secrets are not cached, and staff emails are unique per brand with a login that
//! finds the right account.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_server::ServerConfig;
use switchboard_store::Role;

use crate::harness::*;

#[tokio::test]
async fn weak_passwords_are_refused_wherever_a_password_is_set() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let agent_id = server.store.user_by_email(&brand.id, &brand.agent_email).await.unwrap().unwrap().id;
    let weak = ["password12", "          ", "qwertyuiop12", "agent12345"];
    for password in weak {
        let (status, body) = call(
            &server,
            &admin,
            Method::POST,
            "/api/v1/users",
            json!({"email": "new@x.test", "name": "New Agent", "role": "agent", "password": password}),
        )
        .await;
        assert_eq!((status, body["code"].as_str()), (400, Some("weak_password")), "create {password:?}: {body}");
        assert!(body["message"].as_str().unwrap().contains("at least 3 is needed"), "{body}");
        let (status, body) =
            call(&server, &admin, Method::PATCH, &format!("/api/v1/users/{agent_id}"), json!({"password": password}))
                .await;
        assert_eq!((status, body["code"].as_str()), (400, Some("weak_password")), "reset {password:?}: {body}");
    }
    // Built from the account's own name and email.
    let (status, body) = call(
        &server,
        &admin,
        Method::POST,
        "/api/v1/users",
        json!({"email": "qorvanix@x.test", "name": "Dana Qorvanix", "role": "agent", "password": "qorvanix1985"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("weak_password")), "{body}");
    // The user's own change: the current password is checked first, then the policy.
    let agent = server.login(&brand.agent_email).await;
    let (status, body) = call(
        &server,
        &agent,
        Method::PUT,
        "/api/v1/me/password",
        json!({"current_password": "not it at all", "new_password": "Tq7#vW2!pLm9zR"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_credentials")), "{body}");
    let (status, body) = call(
        &server,
        &agent,
        Method::PUT,
        "/api/v1/me/password",
        json!({"current_password": PASSWORD, "new_password": "password12"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("weak_password")), "{body}");
    // A strong one everywhere.
    let (status, _) = call(
        &server,
        &admin,
        Method::POST,
        "/api/v1/users",
        json!({"email": "new@x.test", "name": "New Agent", "role": "agent", "password": "Tq7#vW2!pLm9zR"}),
    )
    .await;
    assert_eq!(status, 201);
}

/// Waits until the socket closes with `code` (within two heartbeats of 1 s).
async fn closes_with(socket: &mut Client, code: u16) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        assert!(tokio::time::Instant::now() < deadline, "the socket stayed open");
        match socket.next().await {
            Some(frame) if frame["t"] == "closed" => {
                assert_eq!(frame["code"], code, "{frame}");
                return;
            }
            Some(_) => continue,
            None => return,
        }
    }
}

#[tokio::test]
async fn a_reset_a_change_or_disabling_ends_the_users_sessions_and_sockets() {
    let server = TestServer::start_with(ServerConfig { heartbeat_secs: 1, ..ServerConfig::default() }).await;
    let brand = server.brand().await;
    let admin = server.login(&brand.admin_email).await;
    let agent_id = server.store.user_by_email(&brand.id, &brand.agent_email).await.unwrap().unwrap().id;
    let me = |token: String| {
        let server = &server;
        async move { call(server, &token, Method::GET, "/api/v1/me", json!(null)).await.0 }
    };

    // An admin's reset: every session of the agent ends, the socket closes within a heartbeat.
    let session = server.login(&brand.agent_email).await;
    let mut socket = server.online_agent(&brand.agent_email).await;
    let (status, _) = call(
        &server,
        &admin,
        Method::PATCH,
        &format!("/api/v1/users/{agent_id}"),
        json!({"password": "Tq7#vW2!pLm9zR"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(me(session).await, 401, "the old session ended");
    closes_with(&mut socket, 4003).await;

    // The user's own change: other sessions end, the one that changed it stays.
    let login = |password: &'static str| {
        let server = &server;
        let email = brand.agent_email.clone();
        async move {
            let answer: Value = reqwest::Client::new()
                .post(format!("{}/api/v1/auth/login", server.http))
                .json(&json!({"email": email, "password": password}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            answer["token"].as_str().unwrap().to_owned()
        }
    };
    let here = login("Tq7#vW2!pLm9zR").await;
    let elsewhere = login("Tq7#vW2!pLm9zR").await;
    let (status, body) = call(
        &server,
        &here,
        Method::PUT,
        "/api/v1/me/password",
        json!({"current_password": "Tq7#vW2!pLm9zR", "new_password": "violet-harbor-lantern-87"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(me(here.clone()).await, 200, "the session that changed it stays");
    assert_eq!(me(elsewhere).await, 401);

    // Disabling: the remaining session ends.
    let (status, _) =
        call(&server, &admin, Method::PATCH, &format!("/api/v1/users/{agent_id}"), json!({"disabled": true})).await;
    assert_eq!(status, 200);
    assert_eq!(me(here).await, 401);
}

#[tokio::test]
async fn answers_with_secrets_are_not_cached() {
    let server = TestServer::start().await;
    let brand = server.brand().await;
    let http = reqwest::Client::new();
    let login = http
        .post(format!("{}/api/v1/auth/login", server.http))
        .json(&json!({"email": brand.admin_email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.headers()["cache-control"], "no-store");
    let admin = login.json::<Value>().await.unwrap()["token"].as_str().unwrap().to_owned();
    let token = http
        .post(format!("{}/api/v1/tokens", server.http))
        .bearer_auth(&admin)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap();
    assert_eq!(token.status(), 201);
    assert_eq!(token.headers()["cache-control"], "no-store");
    for path in ["/api/v1/me", "/api/v1/users", "/api/v1/tokens"] {
        let response = http.get(format!("{}{path}", server.http)).bearer_auth(&admin).send().await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
    }
    // The workspace's files keep their revalidation.
    let page = http.get(format!("{}/", server.http)).send().await.unwrap();
    assert_eq!(page.headers()["cache-control"], "no-cache");
}

/// Issue 15: staff emails were unique across brands, so one brand's admin learnt another
/// brand's staff addresses from a conflict. Now the same email may exist in each brand; a
/// login finds the account whose password it is, and asks for the brand only when one
/// password opens several.
#[tokio::test]
async fn staff_emails_are_unique_per_brand_and_login_finds_the_account() {
    let server = TestServer::start().await;
    let (acme, globex) = (server.brand().await, server.brand().await);
    let email = "sam@contractor.test";
    let sam_acme = server.user(&acme, email, "Sam at Acme", Role::Agent, 3, vec![]).await;
    let acme_admin = server.login(&acme.admin_email).await;
    let globex_admin = server.login(&globex.admin_email).await;
    // Globex creates its own Sam: no conflict, so nothing learnt about Acme's staff.
    let (status, body) = call(&server, &globex_admin, Method::POST, "/api/v1/users",
        json!({"email": "SAM@contractor.test", "name": "Sam at Globex", "role": "manager", "password": "Tq7#vW2!pLm9zR"})).await;
    assert_eq!(status, 201, "{body}");
    let sam_globex = body["id"].as_i64().unwrap();
    // Within a brand the email is still unique.
    let (status, body) = call(
        &server,
        &acme_admin,
        Method::POST,
        "/api/v1/users",
        json!({"email": email, "name": "Sam again", "role": "agent", "password": "Tq7#vW2!pLm9zR"}),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("conflict")), "{body}");

    let login = |body: Value| {
        let server = &server;
        async move {
            let response = reqwest::Client::new()
                .post(format!("{}/api/v1/auth/login", server.http))
                .json(&body)
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.json::<Value>().await.unwrap())
        }
    };
    // Different passwords: each opens its own account, no brand needed.
    let (status, body) = login(json!({"email": email, "password": PASSWORD})).await;
    assert_eq!((status, body["user"]["id"].as_i64()), (200, Some(sam_acme)), "{body}");
    let (status, body) = login(json!({"email": email, "password": "Tq7#vW2!pLm9zR"})).await;
    assert_eq!((status, body["user"]["id"].as_i64()), (200, Some(sam_globex)), "{body}");
    // The same password in both: the brand is asked for, naming both; with it, the login works.
    let (status, _) = call(
        &server,
        &globex_admin,
        Method::PATCH,
        &format!("/api/v1/users/{sam_globex}"),
        json!({"password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = login(json!({"email": email, "password": PASSWORD})).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("brand_required")), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(&acme.id) && message.contains(&globex.id), "{message}");
    let (status, body) = login(json!({"email": email, "password": PASSWORD, "brand": globex.id})).await;
    assert_eq!((status, body["user"]["id"].as_i64()), (200, Some(sam_globex)), "{body}");
    // A wrong password says nothing about brands.
    let (status, body) = login(json!({"email": email, "password": "wrong password here"})).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("invalid_credentials")));
    // Each brand sees only its own Sam.
    let (_, users) = call(&server, &acme_admin, Method::GET, "/api/v1/users", json!(null)).await;
    let sams: Vec<i64> =
        users.as_array().unwrap().iter().filter(|u| u["email"] == email).map(|u| u["id"].as_i64().unwrap()).collect();
    assert_eq!(sams, [sam_acme]);
}
