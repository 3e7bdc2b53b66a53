//! The legacy OAuth 1.0a application link (RSA-SHA1) answers as Bitbucket's
//! does: the admin's links page, the three legs, calls signed with the
//! access token acting as the approving user, and each refusal with its
//! `oauth_problem`.
//!
//! The requests are signed by a small signer written here from RFC 5849
//! alone; it shares nothing with the simulator's verifier but the RFC.

// An unwrap in a test is an assertion: a test fails loudly, with its place.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use base64::{engine::general_purpose::STANDARD, Engine};
use bitbucket_simulator::{
    datacenter::{DEMO_TOKEN, DEMO_USER},
    DataCenter, Simulator, Transport,
};
use reqwest::{redirect::Policy, Client, Method, Response, StatusCode};
use rsa::{
    pkcs1::EncodeRsaPublicKey,
    pkcs1v15::SigningKey,
    pkcs8::{EncodePublicKey, LineEnding},
    signature::{SignatureEncoding, Signer as _},
    RsaPrivateKey,
};
use serde_json::Value;

const CONSUMER_KEY: &str = "bitgate-dc-main";
const CALLBACK: &str = "http://bitgate.test/oauth/bitbucket/callback?integration=42";
const LINKS: &str = "/plugins/servlet/applinks/listApplicationLinks";

/// Two RSA 2048 keys: the consumer's, and another (a wrong paste).
fn keys() -> &'static (RsaPrivateKey, RsaPrivateKey) {
    static KEYS: OnceLock<(RsaPrivateKey, RsaPrivateKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut rng = rand::thread_rng();
        (RsaPrivateKey::new(&mut rng, 2048).unwrap(), RsaPrivateKey::new(&mut rng, 2048).unwrap())
    })
}

fn public_pem(key: &RsaPrivateKey) -> String {
    key.to_public_key().to_public_key_pem(LineEnding::LF).unwrap()
}

/// RFC 5849 §3.6, byte by byte.
fn pct(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// What a signed request may change from a well-formed one.
#[derive(Clone, Default)]
struct Tweaks {
    timestamp: Option<u64>,
    nonce: Option<String>,
    method: Option<&'static str>,
}

/// An OAuth 1.0a consumer signing with RSA-SHA1.
struct Consumer {
    key: &'static RsaPrivateKey,
    consumer_key: String,
}

impl Consumer {
    fn new(consumer_key: &str) -> Self {
        Self { key: &keys().0, consumer_key: consumer_key.into() }
    }

    /// The `Authorization` header for `method url` (its query included in
    /// the signature) with these `oauth_*` extras and form fields.
    fn authorization(
        &self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        form: &[(&str, &str)],
        t: &Tweaks,
    ) -> String {
        let parsed = url::Url::parse(url).unwrap();
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let nonce = t.nonce.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut oauth: Vec<(String, String)> = vec![
            ("oauth_consumer_key".into(), self.consumer_key.clone()),
            ("oauth_nonce".into(), nonce),
            ("oauth_signature_method".into(), t.method.unwrap_or("RSA-SHA1").into()),
            ("oauth_timestamp".into(), t.timestamp.unwrap_or(now).to_string()),
            ("oauth_version".into(), "1.0".into()),
        ];
        oauth.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        // Every parameter, encoded, in a sorted set: by name, then by value.
        let mut signed = BTreeSet::new();
        for (name, value) in oauth.iter().cloned().chain(parsed.query_pairs().into_owned()) {
            signed.insert((pct(&name), pct(&value)));
        }
        for (name, value) in form {
            signed.insert((pct(name), pct(value)));
        }
        let mut normalized = String::new();
        for (name, value) in &signed {
            if !normalized.is_empty() {
                normalized.push('&');
            }
            normalized += &format!("{name}={value}");
        }
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let base_uri = format!("{}://{}{port}{}", parsed.scheme(), parsed.host_str().unwrap(), parsed.path());
        let base = [method.to_string(), pct(&base_uri), pct(&normalized)].join("&");
        let signature = SigningKey::<sha1::Sha1>::new(self.key.clone()).sign(base.as_bytes());
        oauth.push(("oauth_signature".into(), STANDARD.encode(signature.to_bytes())));
        let fields: Vec<String> = oauth.iter().map(|(k, v)| format!("{}=\"{}\"", pct(k), pct(v))).collect();
        format!("OAuth realm=\"Bitbucket\", {}", fields.join(", "))
    }

    async fn send(&self, method: Method, url: &str, extra: &[(&str, &str)], form: &[(&str, &str)]) -> Response {
        let header = self.authorization(method.as_str(), url, extra, form, &Tweaks::default());
        send_signed(method, url, &header, form).await
    }
}

fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

async fn send_signed(method: Method, url: &str, authorization: &str, form: &[(&str, &str)]) -> Response {
    let request = client().request(method, url).header("authorization", authorization);
    let request = if form.is_empty() { request } else { request.form(form) };
    request.send().await.unwrap()
}

fn pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
}

fn field(text: &str, name: &str) -> Option<String> {
    pairs(text).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// A refusal's status, its `oauth_problem` (from the body, and checked in
/// the header), and its body.
async fn refusal(response: Response) -> (StatusCode, String, String) {
    let status = response.status();
    let challenge = response.headers()["www-authenticate"].to_str().unwrap().to_owned();
    let body = response.text().await.unwrap();
    let problem = field(&body, "oauth_problem").unwrap();
    assert!(challenge.starts_with("OAuth realm=\""), "{challenge}");
    assert!(challenge.contains(&format!("oauth_problem=\"{problem}\"")), "{challenge}");
    (status, problem, body)
}

/// Creates the link on the links page, as an admin pastes it.
async fn create_link(sim: &Simulator, consumer_key: &str, public_key: &str) {
    let answer = client()
        .post(format!("{}{LINKS}", sim.url))
        .form(&[
            ("type", "generic"),
            ("name", "Bitgate"),
            ("consumer_key", consumer_key),
            ("consumer_name", "Bitgate CI"),
            ("public_key", public_key),
        ])
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_redirection(), "{}", answer.text().await.unwrap());
}

/// The first leg: a request token and its secret.
async fn request_token(sim: &Simulator, consumer: &Consumer, callback: &str) -> String {
    let url = format!("{}/plugins/servlet/oauth/request-token", sim.url);
    let answer = consumer.send(Method::POST, &url, &[("oauth_callback", callback)], &[]).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let body = answer.text().await.unwrap();
    assert_eq!(field(&body, "oauth_callback_confirmed").as_deref(), Some("true"), "{body}");
    assert!(field(&body, "oauth_token_secret").is_some());
    field(&body, "oauth_token").unwrap()
}

/// The second leg: the consent page, then a click on `button`; where the
/// browser is sent.
async fn approve(sim: &Simulator, token: &str, button: &str) -> url::Url {
    let authorize = format!("{}/plugins/servlet/oauth/authorize", sim.url);
    let page = client().get(&authorize).query(&[("oauth_token", token)]).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Bitgate CI wants to access") && html.contains(DEMO_USER), "{html}");
    assert!(html.contains(">Allow</button>") && html.contains(">Deny</button>"), "{html}");
    let answer = client()
        .post(&authorize)
        .form(&[("oauth_token", token), ("decision", &button.to_lowercase())])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::FOUND);
    url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap()
}

fn param(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// The three legs on a started simulator with the link; the access token.
async fn access_token(sim: &Simulator, consumer: &Consumer) -> String {
    let token = request_token(sim, consumer, CALLBACK).await;
    let callback = approve(sim, &token, "Allow").await;
    let verifier = param(&callback, "oauth_verifier").unwrap();
    let url = format!("{}/plugins/servlet/oauth/access-token", sim.url);
    let answer =
        consumer.send(Method::POST, &url, &[("oauth_token", &token), ("oauth_verifier", &verifier)], &[]).await;
    assert_eq!(answer.status(), 200);
    let body = answer.text().await.unwrap();
    assert!(field(&body, "oauth_token_secret").is_some() && field(&body, "oauth_expires_in").is_some(), "{body}");
    field(&body, "oauth_token").unwrap()
}

#[tokio::test]
async fn the_three_legs_then_signed_calls_act_as_the_user_who_allowed() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let consumer = Consumer::new(CONSUMER_KEY);
    create_link(&sim, CONSUMER_KEY, &public_pem(&keys().0)).await;
    let listed = client().get(format!("{}{LINKS}", sim.url)).send().await.unwrap().text().await.unwrap();
    assert!(listed.contains(CONSUMER_KEY) && listed.contains("RSA 2048 bits"), "{listed}");

    let token = request_token(&sim, &consumer, CALLBACK).await;
    let callback = approve(&sim, &token, "Allow").await;
    assert_eq!(callback.path(), "/oauth/bitbucket/callback");
    assert_eq!(param(&callback, "integration").as_deref(), Some("42"), "the callback's own query is kept");
    assert_eq!(param(&callback, "oauth_token").as_deref(), Some(token.as_str()));
    let verifier = param(&callback, "oauth_verifier").unwrap();

    let exchange = format!("{}/plugins/servlet/oauth/access-token", sim.url);
    let wrong =
        consumer.send(Method::POST, &exchange, &[("oauth_token", &token), ("oauth_verifier", "nope")], &[]).await;
    assert_eq!(refusal(wrong).await.1, "token_rejected");
    let answer =
        consumer.send(Method::POST, &exchange, &[("oauth_token", &token), ("oauth_verifier", &verifier)], &[]).await;
    assert_eq!(answer.status(), 200);
    let access = field(&answer.text().await.unwrap(), "oauth_token").unwrap();
    let again =
        consumer.send(Method::POST, &exchange, &[("oauth_token", &token), ("oauth_verifier", &verifier)], &[]).await;
    assert_eq!(refusal(again).await.1, "token_rejected", "a request token is exchanged once");

    // Signed calls: the REST API and the servlets, as jcitizen.
    let projects_url = format!("{}/rest/api/1.0/projects", sim.url);
    let projects = consumer.send(Method::GET, &projects_url, &[("oauth_token", &access)], &[]).await;
    assert_eq!(projects.status(), 200);
    assert_eq!(projects.headers()["x-ausername"], DEMO_USER);
    assert_eq!(projects.json::<Value>().await.unwrap()["size"], 3);
    let whoami_url = format!("{}/plugins/servlet/applinks/whoami", sim.url);
    let whoami = consumer.send(Method::GET, &whoami_url, &[("oauth_token", &access)], &[]).await;
    assert_eq!(whoami.text().await.unwrap(), DEMO_USER);

    // The query is signed: kept, it passes; changed after signing, it does not.
    let one = format!("{}/rest/api/1.0/repos?limit=1&name=service", sim.url);
    let page: Value = consumer.send(Method::GET, &one, &[("oauth_token", &access)], &[]).await.json().await.unwrap();
    assert_eq!(page["size"], 1);
    let header = consumer.authorization("GET", &one, &[("oauth_token", &access)], &[], &Tweaks::default());
    let tampered = send_signed(Method::GET, &one.replace("limit=1", "limit=2"), &header, &[]).await;
    let (status, problem, body) = refusal(tampered).await;
    assert_eq!((status.as_u16(), problem.as_str()), (401, "signature_invalid"));
    let base_string = field(&body, "oauth_signature_base_string").unwrap();
    assert!(base_string.starts_with("GET&http%3A%2F%2F127.0.0.1%3A") && base_string.contains("limit%3D2"), "{body}");

    // A JSON body is not signed; the call writes as the user.
    let builds = format!(
        "{}/rest/api/latest/projects/OPS/repos/my-repo/commits/0123456789abcdef0123456789abcdef01234567/builds",
        sim.url
    );
    let header = consumer.authorization("POST", &builds, &[("oauth_token", &access)], &[], &Tweaks::default());
    let posted = client()
        .post(&builds)
        .header("authorization", header)
        .json(&serde_json::json!({"key": "bitgate", "state": "SUCCESSFUL", "url": "https://ci/1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 204);

    // A token the instance never issued, and a call signed without one.
    let unknown = consumer.send(Method::GET, &projects_url, &[("oauth_token", "not-a-token")], &[]).await;
    assert_eq!(refusal(unknown).await.1, "token_rejected");
    let two_legged = consumer.send(Method::GET, &projects_url, &[], &[]).await;
    assert_eq!(refusal(two_legged).await.1, "permission_denied");
    // Bearer and HTTP tokens work as before beside it.
    let bearer = client().get(&projects_url).bearer_auth(DEMO_TOKEN).send().await.unwrap();
    assert_eq!(bearer.status(), 200);
    let as_bearer = client().get(&projects_url).bearer_auth(&access).send().await.unwrap();
    assert_eq!(as_bearer.status(), 401, "an OAuth 1.0a token is no bearer token");

    // Deleting the link ends its tokens.
    sim.configure(|dc| dc.remove_application_link(CONSUMER_KEY));
    let gone = consumer.send(Method::GET, &projects_url, &[("oauth_token", &access)], &[]).await;
    assert_eq!(refusal(gone).await.0, 401);
}

#[tokio::test]
async fn each_refusal_names_its_oauth_problem() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let consumer = Consumer::new(CONSUMER_KEY);
    let url = format!("{}/plugins/servlet/oauth/request-token", sim.url);
    let callback = [("oauth_callback", CALLBACK)];

    // No link with that consumer key yet.
    let (status, problem, _) = refusal(consumer.send(Method::POST, &url, &callback, &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (401, "consumer_key_unknown"));

    // The wrong public key pasted.
    sim.configure(|dc| dc.add_application_link(CONSUMER_KEY, "Bitgate", &public_pem(&keys().1)));
    let (status, problem, _) = refusal(consumer.send(Method::POST, &url, &callback, &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (401, "signature_invalid"));

    // The right one, as PKCS#1 this time: then it passes.
    let pkcs1 = keys().0.to_public_key().to_pkcs1_pem(LineEnding::CRLF).unwrap();
    sim.configure(|dc| dc.add_application_link(CONSUMER_KEY, "Bitgate", &pkcs1));
    let header = consumer.authorization("POST", &url, &callback, &[], &Tweaks::default());
    assert_eq!(send_signed(Method::POST, &url, &header, &[]).await.status(), 200);

    // The same request again: its nonce was used.
    let (status, problem, _) = refusal(send_signed(Method::POST, &url, &header, &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (401, "nonce_used"));

    // Ten minutes old.
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let old = Tweaks { timestamp: Some(now - 600), ..Tweaks::default() };
    let header = consumer.authorization("POST", &url, &callback, &[], &old);
    let (status, problem, body) = refusal(send_signed(Method::POST, &url, &header, &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (400, "timestamp_refused"));
    let acceptable = field(&body, "oauth_acceptable_timestamps").unwrap();
    let (low, high) = acceptable.split_once('-').unwrap();
    let (low, high): (u64, u64) = (low.parse().unwrap(), high.parse().unwrap());
    assert!(low <= now && now <= high && high - low == 600, "{acceptable}");

    // Another signature method.
    let hmac = Tweaks { method: Some("HMAC-SHA1"), ..Tweaks::default() };
    let header = consumer.authorization("POST", &url, &callback, &[], &hmac);
    let (status, problem, _) = refusal(send_signed(Method::POST, &url, &header, &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (400, "signature_method_rejected"));

    // No callback.
    let (status, problem, body) = refusal(consumer.send(Method::POST, &url, &[], &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (400, "parameter_absent"));
    assert_eq!(field(&body, "oauth_parameters_absent").as_deref(), Some("oauth_callback"));

    // A form body is signed: as sent, it passes; changed after signing, it does not.
    let form = [("xoauth_displayname", "Bitgate CI & co")];
    let header = consumer.authorization("POST", &url, &callback, &form, &Tweaks::default());
    assert_eq!(send_signed(Method::POST, &url, &header, &form).await.status(), 200);
    let header = consumer.authorization("POST", &url, &callback, &form, &Tweaks::default());
    let changed = send_signed(Method::POST, &url, &header, &[("xoauth_displayname", "Mallory")]).await;
    assert_eq!(refusal(changed).await.1, "signature_invalid");
}

#[tokio::test]
async fn a_drifted_clock_and_a_resent_request_are_refused_as_bitbucket_refuses_them() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let consumer = Consumer::new(CONSUMER_KEY);
    let url = format!("{}/plugins/servlet/oauth/request-token", sim.url);
    let callback = [("oauth_callback", CALLBACK)];
    sim.configure(|dc| dc.add_application_link(CONSUMER_KEY, "Bitgate", &public_pem(&keys().0)));

    // Bitbucket's clock ten minutes ahead: a request of now is too old.
    sim.configure(|dc| dc.oauth1_clock_offset_seconds = 600);
    let (status, problem, body) = refusal(consumer.send(Method::POST, &url, &callback, &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (400, "timestamp_refused"));
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let low: u64 = field(&body, "oauth_acceptable_timestamps").unwrap().split_once('-').unwrap().0.parse().unwrap();
    assert!(low > now, "the window is around Bitbucket's own clock");
    sim.configure(|dc| dc.oauth1_clock_offset_seconds = 0);
    assert_eq!(consumer.send(Method::POST, &url, &callback, &[]).await.status(), 200);

    // One request resent on the way: its first copy used the nonce.
    sim.configure(|dc| dc.oauth1_replayed_requests = 1);
    let (status, problem, _) = refusal(consumer.send(Method::POST, &url, &callback, &[]).await).await;
    assert_eq!((status.as_u16(), problem.as_str()), (401, "nonce_used"));
    assert_eq!(consumer.send(Method::POST, &url, &callback, &[]).await.status(), 200, "only the one");
}

#[tokio::test]
async fn deny_sends_the_denied_verifier_and_no_access_token_follows() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let consumer = Consumer::new(CONSUMER_KEY);
    create_link(&sim, CONSUMER_KEY, &public_pem(&keys().0)).await;
    let exchange = format!("{}/plugins/servlet/oauth/access-token", sim.url);

    let token = request_token(&sim, &consumer, CALLBACK).await;
    let early = consumer.send(Method::POST, &exchange, &[("oauth_token", &token), ("oauth_verifier", "x")], &[]).await;
    assert_eq!(refusal(early).await.1, "permission_unknown", "not approved yet");
    let callback = approve(&sim, &token, "Deny").await;
    assert_eq!(param(&callback, "oauth_token").as_deref(), Some(token.as_str()));
    assert_eq!(param(&callback, "oauth_verifier").as_deref(), Some("denied"));
    let denied =
        consumer.send(Method::POST, &exchange, &[("oauth_token", &token), ("oauth_verifier", "denied")], &[]).await;
    let (status, problem, _) = refusal(denied).await;
    assert_eq!((status.as_u16(), problem.as_str()), (401, "permission_denied"));
    // The page will not ask twice.
    let again =
        client().get(format!("{}/plugins/servlet/oauth/authorize?oauth_token={token}", sim.url)).send().await.unwrap();
    assert_eq!(again.status(), 401);

    // `oob`: the verifier is shown to the person instead.
    let token = request_token(&sim, &consumer, "oob").await;
    let shown = client()
        .post(format!("{}/plugins/servlet/oauth/authorize", sim.url))
        .form(&[("oauth_token", token.as_str()), ("decision", "allow")])
        .send()
        .await
        .unwrap();
    assert_eq!(shown.status(), 200);
    assert!(shown.text().await.unwrap().contains("class=\"verifier\""));
}

#[tokio::test]
async fn over_tls_and_under_a_context_path_the_base_string_names_both() {
    let instance = DataCenter { context_path: "/bitbucket".into(), ..DataCenter::sample() };
    let sim = Simulator::start(instance, Transport::Tls).await.unwrap();
    assert!(sim.url.starts_with("https://localhost:"));
    sim.configure(|dc| dc.add_application_link(CONSUMER_KEY, "Bitgate CI", &public_pem(&keys().0)));
    let consumer = Consumer::new(CONSUMER_KEY);
    let ca = reqwest::Certificate::from_pem(sim.ca_pem.as_ref().unwrap().as_bytes()).unwrap();
    let tls = Client::builder().add_root_certificate(ca).redirect(Policy::none()).build().unwrap();

    let url = format!("{}/bitbucket/plugins/servlet/oauth/request-token", sim.url);
    let header = consumer.authorization("POST", &url, &[("oauth_callback", CALLBACK)], &[], &Tweaks::default());
    let answer = tls.post(&url).header("authorization", header).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    // Signed for http while it came over https: not the same request.
    let as_http = url.replace("https://", "http://");
    let header = consumer.authorization("POST", &as_http, &[("oauth_callback", CALLBACK)], &[], &Tweaks::default());
    let refused = tls.post(&url).header("authorization", header).send().await.unwrap();
    let challenge = refused.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(challenge.contains("signature_invalid"), "{challenge}");
    assert!(
        challenge.contains("realm=\"https%3A%2F%2Flocalhost%3A") && challenge.contains("%2Fbitbucket\""),
        "{challenge}"
    );
    let body = refused.text().await.unwrap();
    assert!(field(&body, "oauth_signature_base_string").unwrap().starts_with("POST&https%3A%2F%2Flocalhost%3A"));
}

#[tokio::test]
async fn the_links_page_takes_a_pasted_key_and_refuses_what_is_not_one() {
    let sim = Simulator::start(DataCenter::sample(), Transport::Http).await.unwrap();
    let page = client().get(format!("{}{LINKS}", sim.url)).send().await.unwrap().text().await.unwrap();
    for field in ["name=\"name\"", "name=\"consumer_key\"", "name=\"consumer_name\"", "name=\"public_key\""] {
        assert!(page.contains(field), "{field}: {page}");
    }
    assert!(page.contains("Generic Application") && page.contains("Allow 2-Legged OAuth"), "{page}");
    assert!(!page.contains("name=\"two_legged\" value=\"on\" checked"));

    let refused = client()
        .post(format!("{}{LINKS}", sim.url))
        .form(&[("name", "Bitgate"), ("consumer_key", "k<1>"), ("consumer_name", "B"), ("public_key", "not a key")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.unwrap();
    assert!(html.contains("RSA public key") && html.contains("k&lt;1&gt;"), "{html}");
    assert!(sim.datacenter.read().unwrap().application_links.is_empty());

    // A key pasted from a browser's textarea: CRLF line ends.
    let crlf = public_pem(&keys().0).replace('\n', "\r\n");
    create_link(&sim, CONSUMER_KEY, &crlf).await;
    let consumer = Consumer::new(CONSUMER_KEY);
    assert_eq!(access_token(&sim, &consumer).await.len(), 32);
}
