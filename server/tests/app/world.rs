//! A small account for the permission tests: `root` with two child spaces,
//! `team` and `other`, and one caller per role from inside and outside.

use bitgate_core::{spaces, users::Role};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use crate::helpers::{Browser, TestApp};

pub struct World {
    pub app: TestApp,
    pub root: Uuid,
    pub team: Uuid,
    pub other: Uuid,
    /// (label, bearer token), in the order of [`CALLERS`].
    pub callers: Vec<(&'static str, String)>,
}

/// Who tries things: (label, space of their role, role).
pub const CALLERS: [&str; 6] = ["account admin", "team admin", "team writer", "team reader", "outsider", "nobody"];

pub fn email_of(label: &str) -> String {
    format!("{}@example.com", label.replace(' ', "-"))
}

pub async fn world() -> World {
    world_with(&[]).await
}

/// The world on a Bitgate with extra configuration variables.
pub async fn world_with(extra: &[(&str, &str)]) -> World {
    let app = TestApp::spawn_with(extra).await;
    let root = spaces::resolve(&app.pool, "root").await.unwrap().unwrap().id;
    let team = spaces::create(&app.pool, "team", root, "").await.unwrap().id;
    let other = spaces::create(&app.pool, "other", root, "").await.unwrap().id;
    let memberships = [
        Some((root, Role::Admin)),
        Some((team, Role::Admin)),
        Some((team, Role::Write)),
        Some((team, Role::Read)),
        Some((other, Role::Admin)),
        None,
    ];
    let mut callers = Vec::new();
    for (label, membership) in CALLERS.into_iter().zip(memberships) {
        let id = app.user_id(&app.create_user(&email_of(label), None).await.email).await;
        if let Some((space, role)) = membership {
            spaces::set_member(&app.pool, space, id, role).await.unwrap();
        }
        let (_, secret) = bitgate_core::api_tokens::create(&app.pool, id, "test", None).await.unwrap();
        callers.push((label, secret));
    }
    World { app, root, team, other, callers }
}

/// The world, on a Bitgate that may call the simulator (on loopback), and
/// the simulator with its sample instance.
pub async fn world_with_bitbucket() -> (World, bitbucket_simulator::Simulator) {
    let world = world_with(&[("BITGATE_OUTBOUND_DENY", ""), ("BITGATE_OUTBOUND_TIMEOUT", "2s")]).await;
    let simulator = bitbucket_simulator::Simulator::start(
        bitbucket_simulator::DataCenter::sample(),
        bitbucket_simulator::Transport::Http,
    )
    .await
    .unwrap();
    (world, simulator)
}

impl World {
    pub async fn call(&self, token: &str, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.app.api(token, method, path, body).await
    }

    pub fn token(&self, label: &str) -> &str {
        &self.callers.iter().find(|(l, _)| *l == label).unwrap().1
    }

    /// A browser logged in as the caller `label`.
    pub async fn browser(&self, label: &str) -> Browser {
        let browser = self.app.browser();
        let response = browser.login(&email_of(label), crate::helpers::PASSWORD).await;
        assert_eq!(response.status(), 303, "{label} logs in");
        browser
    }
}
