//! What one client may hold of the server, whoever it is: headers that never
//! finish, a body that never ends, and connections past the bound. Served by
//! the same accept loop as production, with shorter limits.

use std::time::{Duration, Instant};

use bitgate_core::users::Role;
use bitgate_server::http::limits::Limits;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{fresh_database, TestApp};

fn short(connections: usize) -> Limits {
    Limits { header_read: Duration::from_millis(500), body: Duration::from_secs(1), connections, ..Limits::default() }
}

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.base.trim_start_matches("http://")).await.unwrap()
}

/// Reads until the server closes the connection (or `within` passes), and
/// returns what it said.
async fn read_until_closed(socket: &mut TcpStream, within: Duration) -> Option<String> {
    let mut said = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match tokio::time::timeout(left, socket.read(&mut buffer)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&said).into_owned()),
            Ok(Ok(n)) => said.extend_from_slice(&buffer[..n]),
        }
    }
}

#[tokio::test]
async fn headers_sent_a_byte_at_a_time_are_cut_off() {
    let app = TestApp::spawn_limited(fresh_database().await, &[], short(64)).await;
    let mut socket = connect(&app).await;
    socket.write_all(b"POST /webhooks/bitbucket/main HTTP/1.1\r\nHost: bitgate\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    // Drip a byte every 100 ms: each byte arrives well within any idle
    // timeout, so only a deadline on the whole header ends it.
    let closed = loop {
        if started.elapsed() > Duration::from_secs(5) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        if socket.write_all(b"a").await.is_err() {
            break true;
        }
        let mut probe = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(1), socket.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            _ => {}
        }
    };
    assert!(closed, "the connection was still open after 5 s of headers");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
}

#[tokio::test]
async fn an_idle_connection_is_closed_too() {
    let app = TestApp::spawn_limited(fresh_database().await, &[], short(64)).await;
    let mut socket = connect(&app).await;
    let closed = read_until_closed(&mut socket, Duration::from_secs(3)).await;
    assert!(closed.is_some(), "a connection that sends nothing is closed after the header deadline");
}

#[tokio::test]
async fn a_body_that_never_ends_is_answered_408_at_its_deadline() {
    let app = TestApp::spawn_limited(fresh_database().await, &[], short(64)).await;

    // A webhook delivery: the body is read before anything else.
    let mut socket = connect(&app).await;
    socket
        .write_all(
            b"POST /webhooks/bitbucket/main HTTP/1.1\r\nHost: bitgate\r\nContent-Type: application/json\r\n\
              Content-Length: 5000\r\n\r\n{\"eventKey\": ",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let answer = read_until_closed(&mut socket, Duration::from_secs(5)).await.expect("answered within 5 s");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900), "not before the deadline: {:?}", started.elapsed());
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM webhook_deliveries").fetch_one(&app.pool).await.unwrap();
    assert_eq!(recorded, 0, "an unfinished request is not recorded");

    // An API call with a valid token.
    app.create_user("slow@example.com", Some(Role::Admin)).await;
    let user = app.user_id("slow@example.com").await;
    let (_, token) = bitgate_core::api_tokens::create(&app.pool, user, "slow", None).await.unwrap();
    let mut socket = connect(&app).await;
    let head = format!(
        "POST /api/v1/spaces HTTP/1.1\r\nHost: bitgate\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{\"name\": "
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut socket, Duration::from_secs(5)).await.expect("answered within 5 s");
    assert!(answer.starts_with("HTTP/1.1 408") && answer.contains("request_timeout"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_bound_wait_for_a_free_slot() {
    let app = TestApp::spawn_limited(
        fresh_database().await,
        &[],
        Limits {
            header_read: Duration::from_secs(30),
            body: Duration::from_secs(30),
            connections: 2,
            ..Limits::default()
        },
    )
    .await;
    let held = [connect(&app).await, connect(&app).await];
    let client = reqwest::Client::builder().timeout(Duration::from_millis(700)).build().unwrap();
    let waited = client.get(format!("{}/healthz", app.base)).send().await;
    assert!(waited.is_err(), "a third connection is not served while two are held");
    drop(held);
    let served = client.get(format!("{}/healthz", app.base)).send().await.unwrap();
    assert_eq!(served.status(), 200, "served once a slot is free");
}
