//! Listing and finding Data Center repositories through an integration's
//! credentials, against the simulator: Bitbucket's paging, the name filter,
//! what a narrow token sees, and the failures an admin must be told about.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitbucket_simulator::{
    datacenter::{Token, DEMO_TOKEN, DEMO_USER},
    DataCenter, Simulator, Transport,
};
use bitgate_core::{
    bitbucket::{
        datacenter::{parse_api_url, repositories, repository, Connection},
        ApiCallError, RepositorySearch,
    },
    config::Config,
};

fn config() -> Config {
    Config::load(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).unwrap()
}

fn connection(url: &str, token: &str) -> Connection {
    Connection {
        api_url: parse_api_url(url, &config()).unwrap(),
        username: DEMO_USER.into(),
        token: token.into(),
        ca: None,
        oauth1: None,
    }
}

#[tokio::test]
async fn pages_follow_bitbucket_until_the_last_and_the_name_filters() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let connection = connection(&sim.url, DEMO_TOKEN);
    let (mut seen, mut start) = (Vec::new(), Some(0));
    while let Some(at) = start {
        let page =
            repositories(&connection, &config(), RepositorySearch { name: "", start: at, limit: 25 }).await.unwrap();
        assert!(page.items.len() <= 25);
        seen.extend(page.items.into_iter().map(|r| r.id));
        start = page.next_start;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 60, "every repository once");

    let found =
        repositories(&connection, &config(), RepositorySearch { name: "MY-REPO", start: 0, limit: 25 }).await.unwrap();
    assert_eq!((found.items.len(), found.next_start), (1, None));
    let repo = &found.items[0];
    assert_eq!((repo.id.as_str(), repo.slug.as_str()), ("1", "my-repo"));
    assert_eq!(repo.full_name(), format!("{}/my-repo", repo.project));

    let one = repository(&connection, &config(), &repo.project, "my-repo").await.unwrap().unwrap();
    assert_eq!(one, *repo);
    assert_eq!(repository(&connection, &config(), &repo.project, "nope").await.unwrap(), None);
}

#[tokio::test]
async fn a_narrow_token_sees_nothing_and_a_revoked_one_is_explained() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    sim.configure(|dc| {
        dc.tokens.push(Token {
            secret: "BBDC-narrow".into(),
            owner: "jsmith".into(),
            project_read: true,
            repository_read: false,
            repository_admin: false,
        })
    });
    let narrow = connection(&sim.url, "BBDC-narrow");
    assert!(repositories(&narrow, &config(), RepositorySearch { name: "", start: 0, limit: 25 })
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(repository(&narrow, &config(), "PRJ", "my-repo").await.unwrap(), None);

    let revoked = connection(&sim.url, "BBDC-revoked");
    // A bearer token refused: the caller refreshes an OAuth one, or says so.
    let why = repositories(&revoked, &config(), RepositorySearch { name: "", start: 0, limit: 25 }).await.unwrap_err();
    assert_eq!(why, ApiCallError::Unauthorized);
    let why = repository(&revoked, &config(), "PRJ", "my-repo").await.unwrap_err();
    assert_eq!(why, ApiCallError::Unauthorized);

    // A wrong context path answers the login page: said so, not parsed.
    let html = connection(&format!("{}/bitbucket", sim.url), DEMO_TOKEN);
    let why = repositories(&html, &config(), RepositorySearch { name: "", start: 0, limit: 25 }).await.unwrap_err();
    assert!(matches!(&why, ApiCallError::Failed(failed) if failed.0.contains("context path")), "{why:?}");

    // Nobody listening.
    let gone = connection("http://127.0.0.1:9", DEMO_TOKEN);
    let why = repositories(&gone, &config(), RepositorySearch { name: "", start: 0, limit: 25 }).await.unwrap_err();
    assert!(matches!(&why, ApiCallError::Failed(failed) if failed.0.contains("refused the connection")), "{why:?}");
}
