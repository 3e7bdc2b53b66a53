//! The Data Center connection checks against the simulator: every line of
//! the checklist, green and red, and every way a server can be unreachable.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bitbucket_simulator::{
    datacenter::{Token, DEMO_TOKEN, DEMO_USER},
    DataCenter, Simulator, Transport,
};
use bitgate_core::{
    bitbucket::datacenter::{check, parse_api_url, parse_ca_certificate, Connection, Report},
    config::Config,
};

/// Loopback is where the simulator lives: allow it, with a short timeout.
fn config() -> Config {
    Config::load(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).unwrap()
}

fn connection(url: &str, username: &str, token: &str) -> Connection {
    Connection {
        api_url: parse_api_url(url, &config()).unwrap(),
        username: username.into(),
        token: token.into(),
        ca: None,
        oauth1: None,
    }
}

fn lines(report: &Report) -> Vec<(&str, bool)> {
    report.checks.iter().map(|c| (c.name, c.ok)).collect()
}

fn message<'a>(report: &'a Report, name: &str) -> &'a str {
    &report.checks.iter().find(|c| c.name == name).unwrap().message
}

#[tokio::test]
async fn a_good_token_passes_every_line_and_the_version_is_shown() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let report = check(&connection(&sim.url, DEMO_USER, DEMO_TOKEN), &config()).await;
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.version.as_deref(), Some("8.19.1"));
    assert_eq!(lines(&report).len(), 5);
    assert!(message(&report, "repositories").contains("for example"));
}

#[tokio::test]
async fn each_token_problem_fails_its_own_line() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    sim.configure(|dc| {
        dc.tokens.push(Token {
            secret: "no-projects".into(),
            owner: DEMO_USER.into(),
            project_read: false,
            repository_read: true,
            repository_admin: false,
        });
        dc.tokens.push(Token {
            secret: "no-repos".into(),
            owner: DEMO_USER.into(),
            project_read: true,
            repository_read: false,
            repository_admin: false,
        });
    });
    let rejected = check(&connection(&sim.url, DEMO_USER, "BBDC-wrong"), &config()).await;
    assert_eq!(
        lines(&rejected),
        [("server", true), ("token", false), ("owner", false), ("projects", false), ("repositories", false)]
    );
    assert!(message(&rejected, "token").contains("refused the token"));
    assert!(message(&rejected, "owner").contains("Not checked"));

    let someone_else = check(&connection(&sim.url, "jsmith", DEMO_TOKEN), &config()).await;
    assert_eq!(lines(&someone_else)[2], ("owner", false));
    assert!(message(&someone_else, "owner").contains("belongs to jcitizen, not jsmith"));

    let no_projects = check(&connection(&sim.url, DEMO_USER, "no-projects"), &config()).await;
    assert_eq!(lines(&no_projects)[3..], [("projects", false), ("repositories", true)]);
    assert!(message(&no_projects, "projects").contains("Projects: read"));
    let no_repos = check(&connection(&sim.url, DEMO_USER, "no-repos"), &config()).await;
    assert_eq!(lines(&no_repos)[3..], [("projects", true), ("repositories", false)]);
    assert!(message(&no_repos, "repositories").contains("Repositories: read"));
}

#[tokio::test]
async fn servers_that_are_not_bitbucket_stop_the_checks_with_a_hint() {
    let sim =
        Simulator::start(DataCenter { context_path: "/bitbucket".into(), ..DataCenter::sample() }, Transport::Http)
            .await
            .unwrap();
    let html = check(&connection(&sim.url, DEMO_USER, DEMO_TOKEN), &config()).await;
    assert_eq!(lines(&html)[0], ("server", false));
    assert!(message(&html, "server").contains("context path"));
    assert!(html.checks[1..].iter().all(|c| c.message.starts_with("Not checked")));
    let right = check(&connection(&format!("{}/bitbucket/", sim.url), DEMO_USER, DEMO_TOKEN), &config()).await;
    assert!(right.passed(), "{right:?}");

    sim.configure(|dc| dc.redirect_to = Some("https://sso.example.com/login".into()));
    let redirected = check(&connection(&format!("{}/bitbucket", sim.url), DEMO_USER, DEMO_TOKEN), &config()).await;
    assert!(message(&redirected, "server").contains("redirect (302 Found)"), "{redirected:?}");
}

#[tokio::test]
async fn unreachable_servers_say_why_within_one_timeout() {
    // Refused: a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let refused = check(&connection(&format!("http://127.0.0.1:{port}"), DEMO_USER, DEMO_TOKEN), &config()).await;
    assert!(message(&refused, "server").contains("refused the connection"), "{refused:?}");

    // Too slow: the simulator waits longer than the timeout.
    let sim = Simulator::start(DataCenter { delay: Duration::from_secs(5), ..DataCenter::sample() }, Transport::Http)
        .await
        .unwrap();
    let started = Instant::now();
    let slow = check(&connection(&sim.url, DEMO_USER, DEMO_TOKEN), &config()).await;
    assert!(message(&slow, "server").contains("within 2 seconds (BITGATE_OUTBOUND_TIMEOUT)"), "{slow:?}");
    assert!(started.elapsed() < Duration::from_secs(4), "the checks stop at the first timeout");

    // Denied after resolution: localhost is loopback, which the default list denies.
    let strict = Config::load(&[]).unwrap();
    let url = sim.url.replace("127.0.0.1", "localhost");
    let denied = check(
        &Connection {
            api_url: parse_api_url(&url, &strict).unwrap(),
            username: DEMO_USER.into(),
            token: DEMO_TOKEN.into(),
            ca: None,
            oauth1: None,
        },
        &strict,
    )
    .await;
    assert!(message(&denied, "server").contains("BITGATE_OUTBOUND_DENY"), "{denied:?}");

    // A host that does not resolve (.invalid never does).
    let nowhere = check(&connection("http://bitbucket.invalid", DEMO_USER, DEMO_TOKEN), &config()).await;
    let why = message(&nowhere, "server");
    assert!(why.contains("does not resolve") || why.contains("BITGATE_OUTBOUND_TIMEOUT"), "{why}");
}

#[tokio::test]
async fn a_private_ca_is_refused_until_its_certificate_is_given() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Tls).await.unwrap();
    let untrusted = check(&connection(&sim.url, DEMO_USER, DEMO_TOKEN), &config()).await;
    assert!(message(&untrusted, "server").contains("certificate is not trusted"), "{untrusted:?}");
    let ca = parse_ca_certificate(sim.ca_pem.as_deref().unwrap()).unwrap();
    let trusted = check(&Connection { ca: Some(ca), ..connection(&sim.url, DEMO_USER, DEMO_TOKEN) }, &config()).await;
    assert!(trusted.passed(), "{trusted:?}");
    assert!(parse_ca_certificate("not a certificate").is_err());
}

#[test]
fn api_urls_are_checked_before_any_call() {
    let strict = Config::load(&[]).unwrap();
    for (bad, why) in [
        ("", "Enter the URL"),
        ("bitbucket.example.com", "is not a URL"),
        ("ftp://bitbucket.example.com", "http:// or https://"),
        ("https://admin:pw@bitbucket.example.com", "user name and password"),
        ("https://bitbucket.example.com/?x=1", "query"),
        ("https://bitbucket.example.com/#top", "fragment"),
        ("http://127.0.0.1:7990", "BITGATE_OUTBOUND_DENY"),
        ("http://169.254.169.254/", "BITGATE_OUTBOUND_DENY"),
    ] {
        let error = parse_api_url(bad, &strict).unwrap_err();
        assert!(error.contains(why), "{bad}: {error}");
    }
    assert_eq!(
        parse_api_url(" https://git.example.com/bitbucket/ ", &strict).unwrap().as_str(),
        "https://git.example.com/bitbucket"
    );
}
