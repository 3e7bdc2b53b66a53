//! The connection checks of both products against servers that are not
//! Bitbucket and behave badly on purpose: answers without end, answers
//! dripped slowly, and answers carrying text meant to be echoed. The simulator answers as
//! Bitbucket does; these servers answer as an attacker would, so they are
//! written here, byte by byte.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bitgate_core::{
    bitbucket::{
        cloud::{self, Consumer, Mode},
        datacenter::{check, parse_api_url, Connection, Report},
        EXCERPT_CHARS,
    },
    config::Config,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

fn config() -> Config {
    Config::load(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).unwrap()
}

fn message<'a>(report: &'a Report, name: &str) -> &'a str {
    &report.checks.iter().find(|c| c.name == name).unwrap().message
}

/// How a hostile server answers one request.
enum Reply {
    /// Headers, then the body in twelve pieces spread over 1.2 seconds.
    Dripped { extra_headers: String, body: String },
    /// A JSON answer of unknown length that never ends.
    Endless,
    /// A JSON answer declaring a length of 1 GiB, then sending it.
    Declared,
    /// Exactly these bytes.
    Raw(String),
}

async fn request_path(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
        if socket.read(&mut byte).await.unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split_whitespace().nth(1).unwrap_or("/").to_owned()
}

/// A JSON answer that goes on until the client stops reading.
async fn endless(socket: &mut TcpStream, length: &str) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{length}\r\n");
    socket.write_all(head.as_bytes()).await?;
    let chunk = format!("{{\"version\": \"{}", "9".repeat(64 * 1024));
    loop {
        socket.write_all(chunk.as_bytes()).await?;
    }
}

/// A server answering each request with `reply(path)`; returns its URL.
async fn hostile(reply: fn(&str) -> Reply) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                loop {
                    let path = request_path(&mut socket).await;
                    let written = match reply(&path) {
                        Reply::Raw(text) => socket.write_all(text.as_bytes()).await,
                        Reply::Dripped { extra_headers, body } => {
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra_headers}content-length: {}\r\n\r\n",
                                body.len()
                            );
                            let mut result = socket.write_all(head.as_bytes()).await;
                            let parts: Vec<&[u8]> = body.as_bytes().chunks(body.len().div_ceil(12).max(1)).collect();
                            let pause = Duration::from_millis(1_200) / parts.len() as u32;
                            for part in parts {
                                tokio::time::sleep(pause).await;
                                result = result.and(socket.write_all(part).await);
                            }
                            result
                        }
                        Reply::Endless => endless(&mut socket, "connection: close\r\n").await,
                        Reply::Declared => endless(&mut socket, "content-length: 1073741824\r\n").await,
                    };
                    if written.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

fn connection(url: &str) -> Connection {
    Connection {
        api_url: parse_api_url(url, &config()).unwrap(),
        username: "jcitizen".into(),
        token: "BBDC-token".into(),
        ca: None,
        oauth1: None,
    }
}

#[tokio::test]
async fn an_answer_without_end_is_cut_at_the_cap_not_read_to_the_end() {
    for reply in [(|_: &str| Reply::Endless) as fn(&str) -> Reply, |_: &str| Reply::Declared] {
        let url = hostile(reply).await;
        let started = Instant::now();
        let report = check(&connection(&url), &config()).await;
        let why = message(&report, "server");
        assert!(why.contains("more than 64 KiB"), "{report:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "stopped at the cap, before the timeout");
        assert!(report.checks[1..].iter().all(|c| c.message.starts_with("Not checked")));
    }
}

/// Every answer right, each taking 1.2 seconds to arrive.
fn dripping(path: &str) -> Reply {
    let json = |body: &str| Reply::Dripped { extra_headers: String::new(), body: body.to_owned() };
    match path {
        "/rest/api/1.0/application-properties" => json(r#"{"version": "8.19.1"}"#),
        "/plugins/servlet/applinks/whoami" => {
            Reply::Dripped { extra_headers: "x-ausername: jcitizen\r\n".into(), body: "jcitizen".into() }
        }
        "/rest/api/1.0/projects?limit=1" => json(r#"{"values": [{"key": "OPS"}]}"#),
        _ => json(r#"{"values": [{"slug": "my-repo", "project": {"key": "OPS"}}]}"#),
    }
}

#[tokio::test]
async fn a_server_dripping_every_answer_cannot_hold_a_check_past_one_timeout() {
    let url = hostile(dripping).await;
    let started = Instant::now();
    let report = check(&connection(&url), &config()).await;
    let took = started.elapsed();
    // Five answers of 1.2 s each would take 6 s; the check has 2 s in all.
    assert!(took < Duration::from_millis(2_800), "the check took {took:?}");
    assert!(report.checks[0].ok, "the first answer came in time: {report:?}");
    assert!(message(&report, "token").contains("within 2 seconds (BITGATE_OUTBOUND_TIMEOUT)"), "{report:?}");
}

/// Answers of the right shape carrying text an attacker wants shown.
fn echoing(path: &str) -> Reply {
    let long = "A".repeat(2_000);
    let json = |body: String| {
        Reply::Raw(format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
    };
    match path {
        "/rest/api/1.0/application-properties" => {
            json(r#"{"version": "8.19.1 <img src=x onerror=alert(1)>\u202e\u001b[2J"}"#.to_owned())
        }
        "/plugins/servlet/applinks/whoami" => {
            Reply::Raw(format!("HTTP/1.1 200 OK\r\nx-ausername: mallory{long}\r\ncontent-length: 0\r\n\r\n"))
        }
        "/rest/api/1.0/projects?limit=1" => {
            json(format!(r#"{{"values": [{{"key": "\u001b[31mOPS\n\nFAKE LINE{long}"}}]}}"#))
        }
        _ => json(format!(r#"{{"values": [{{"slug": "r\u202e", "project": {{"key": "{long}"}}}}]}}"#)),
    }
}

#[tokio::test]
async fn what_a_server_says_is_quoted_short_and_harmless_if_at_all() {
    let url = hostile(echoing).await;
    let report = check(&connection(&url), &config()).await;
    assert_eq!(report.version, None, "a version not in a version's shape is not kept");
    let server = message(&report, "server");
    assert!(server.contains("answered") && !server.contains('<') && !server.contains("8.19.1 "), "{server}");
    for check in &report.checks {
        let text = &check.message;
        assert!(!text.chars().any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)), "{text:?}");
        assert!(!text.contains(&"A".repeat(EXCERPT_CHARS)), "{text}");
        assert!(text.chars().count() < 400, "{text}");
    }
    assert!(message(&report, "owner").contains("belongs to mallory"), "{report:?}");

    let url = hostile(|_| {
        Reply::Raw(format!(
            "HTTP/1.1 302 Found\r\nlocation: https://sso.example.com/{}\r\ncontent-length: 0\r\n\r\n",
            "x".repeat(4_000)
        ))
    })
    .await;
    let redirected = check(&connection(&url), &config()).await;
    let why = message(&redirected, "server");
    assert!(why.contains("redirect (302 Found)") && !why.contains("sso.example.com"), "{why}");
}

/// Bitgate's configuration with Bitbucket Cloud at `url`.
fn cloud_at(url: &str) -> Config {
    Config::load(&[
        ("BITGATE_BITBUCKET_CLOUD_URL", url),
        ("BITGATE_BITBUCKET_CLOUD_API_URL", url),
        ("BITGATE_OUTBOUND_TIMEOUT", "2s"),
    ])
    .unwrap()
}

async fn cloud_report(reply: fn(&str) -> Reply) -> Report {
    let url = hostile(reply).await;
    let consumer = Consumer { key: "key".into(), secret: "secret".into() };
    match cloud::check_new(&cloud_at(&url), "acme", &consumer, Mode::ClientCredentials).await {
        Ok(_) => panic!("a hostile server passed the checks"),
        Err(report) => report,
    }
}

fn token_answer() -> Reply {
    let body = r#"{"access_token": "a", "token_type": "bearer", "expires_in": 7200, "scope": "account repository"}"#;
    Reply::Raw(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    ))
}

#[tokio::test]
async fn cloud_answers_without_end_are_cut_at_the_cap_too() {
    let token = cloud_report(|_| Reply::Endless).await;
    let why = &token.checks.iter().find(|c| !c.ok).unwrap().message;
    assert!(why.contains("more than 64 KiB"), "the token endpoint: {token:?}");

    let user =
        cloud_report(|path| if path.starts_with("/site/oauth2/") { token_answer() } else { Reply::Endless }).await;
    assert!(message(&user, "user").contains("more than 64 KiB"), "/2.0/user: {user:?}");
}

#[tokio::test]
async fn a_cloud_token_error_of_the_server_s_own_is_not_repeated() {
    let report = cloud_report(|_| {
        let body = format!(r#"{{"error": "<img src=x>{}", "error_description": "\u202e gotcha"}}"#, "A".repeat(3000));
        Reply::Raw(format!(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ))
    })
    .await;
    let why = &report.checks.iter().find(|c| !c.ok).unwrap().message;
    assert!(why.contains("an error OAuth does not define"), "{why}");
    assert!(!why.contains('<') && !why.contains("AAAA") && !why.contains("gotcha"), "{why}");
}
