//! `GET /api/v1/events`: what deliveries make, the feed's order when
//! transactions commit out of order, waking waiting readers in any process,
//! who sees what, and the filters.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use bitbucket_simulator::sender;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::{
    webhooks::{endpoint, post, triggering, verified_row},
    world::{world_with_bitbucket, World},
};

const PUSHED: &str = "823b2230a56056231c9425d63758fa87078a66b4";

pub(crate) async fn events(w: &World, caller: &str, query: &str) -> (Vec<Value>, String) {
    let (status, page) = w.call(w.token(caller), Method::GET, &format!("/api/v1/events?{query}"), None).await;
    assert_eq!(status, 200, "{page}");
    (page["items"].as_array().unwrap().clone(), page["next_cursor"].as_str().unwrap().to_owned())
}

/// At least `n` events after `after`, waiting for them: a read answers
/// only with events below the oldest transaction still running (another
/// test's, here), so `n` committed events may take more than one read.
pub(crate) async fn at_least(w: &World, caller: &str, after: &str, n: usize) -> (Vec<Value>, String) {
    let (mut items, mut cursor) = (Vec::new(), after.to_owned());
    let deadline = Instant::now() + Duration::from_secs(10);
    while items.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} events within 10 s: {items:?}", items.len());
        let (more, next) = events(w, caller, &format!("after={cursor}&wait=2")).await;
        items.extend(more);
        cursor = next;
    }
    (items, cursor)
}

/// Moves the feed on as a restore does (core/src/db/backup.rs): every
/// position from now on is far above any transaction id of the test
/// cluster, so a writer or reader that took an id for a position would be
/// left behind. Before the world reads or writes events (plans fold the
/// offset in).
pub(crate) async fn as_after_a_restore(db: &sqlx::PgPool) {
    sqlx::query(
        "CREATE OR REPLACE FUNCTION feed_offset() RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
         AS 'SELECT 4611686018427387904::bigint'",
    )
    .execute(db)
    .await
    .unwrap();
}

fn body(value: Value) -> Vec<u8> {
    serde_json::to_vec(&value).unwrap()
}

/// An event written straight to the table (as a poll or another Bitgate would).
async fn write_event(db: impl sqlx::PgExecutor<'_>, stack: Uuid, integration: Uuid) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO events (type, kind, stack_id, integration_id, repository_id, repository_name, branch, commit)
         VALUES ('run.requested', 'tracked', $1, $2, '1', 'OPS/my-repo', 'main', $3) RETURNING id",
    )
    .bind(stack)
    .bind(integration)
    .bind(PUSHED)
    .fetch_one(db)
    .await
    .unwrap()
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn deliveries_make_events_once_and_the_feed_reads_them_in_order() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let secret = Some(e.secret.as_str());

    let (_, pushed) =
        post(&e.url, "repo:refs_changed", &body(sender::payload("repo:refs_changed").unwrap()), secret, "a").await;
    // Bitbucket's retry of the same delivery makes nothing more.
    let (status, _) =
        post(&e.url, "repo:refs_changed", &body(sender::payload("repo:refs_changed").unwrap()), secret, "a").await;
    assert_eq!(status, 200, "a duplicate");
    // A push to a branch no stack follows makes nothing.
    post(&e.url, "repo:refs_changed", &body(sender::datacenter_push("develop", "UPDATE")), secret, "b").await;
    let (_, opened) = post(&e.url, "pr:opened", &body(sender::payload("pr:opened").unwrap()), secret, "c").await;
    post(&e.url, "pr:reviewer:approved", &body(sender::payload("pr:reviewer:approved").unwrap()), secret, "d").await;
    let (_, merged) = post(&e.url, "pr:merged", &body(sender::payload("pr:merged").unwrap()), secret, "e").await;
    post(&e.url, "repo:refs_changed", &body(sender::datacenter_push("main", "DELETE")), secret, "f").await;

    let (items, cursor) = at_least(&w, "team reader", "", 4).await;
    let shape: Vec<(&str, Option<&str>)> =
        items.iter().map(|e| (e["type"].as_str().unwrap(), e["kind"].as_str())).collect();
    assert_eq!(
        shape,
        [
            ("run.requested", Some("tracked")),
            ("run.requested", Some("proposed")),
            ("pull_request.closed", None),
            ("branch.deleted", None)
        ]
    );
    let tracked = &items[0];
    let integration = e.id.as_str();
    assert_eq!(tracked["stack_id"], stack.as_str());
    assert_eq!(tracked["integration_id"], integration);
    assert_eq!(tracked["delivery_id"], pushed["delivery"]);
    assert_eq!(tracked["repository"], json!({"id": "1", "name": "OPS/my-repo"}));
    assert_eq!((tracked["branch"].as_str(), tracked["commit"].as_str()), (Some("main"), Some(PUSHED)));
    assert_eq!((tracked["resync"].as_bool(), &tracked["pull_request"]), (Some(false), &Value::Null));
    let proposed = &items[1];
    assert_eq!(proposed["delivery_id"], opened["delivery"]);
    assert_eq!(proposed["branch"], "feature/thing", "the source's code runs");
    assert_eq!(proposed["commit"], "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    let pr = &proposed["pull_request"];
    assert_eq!((pr["id"].as_u64(), pr["source_branch"].as_str()), (Some(7), Some("feature/thing")), "{pr}");
    assert_eq!((pr["target_branch"].as_str(), pr["title"].as_str()), (Some("main"), Some("Add the thing")), "{pr}");
    assert_eq!(pr["source_commit"], proposed["commit"]);
    assert_eq!(items[2]["delivery_id"], merged["delivery"]);
    assert!(items[2].get("kind").is_none() && items[2].get("resync").is_none(), "run.requested only");
    assert_eq!(items[3]["commit"], Value::Null, "a deleted branch has no commit");

    // Following the cursor: nothing more, and a cursor to go on from.
    let (more, next) = events(&w, "team reader", &format!("after={cursor}")).await;
    assert!(more.is_empty());
    assert!(!next.is_empty());
    // Pages of one.
    let (first, after_first) = events(&w, "team reader", "limit=1").await;
    let (second, _) = events(&w, "team reader", &format!("limit=1&after={after_first}")).await;
    assert_eq!(ids(&first).into_iter().chain(ids(&second)).collect::<Vec<_>>(), ids(&items[..2]));

    // Filters.
    let (closed, _) = events(&w, "team reader", "type=pull_request.closed").await;
    assert_eq!(ids(&closed), ids(&items[2..3]));
    let (of_stack, _) = events(&w, "team reader", &format!("stack_id={stack}&type=run.requested")).await;
    assert_eq!(ids(&of_stack), ids(&items[..2]));
}

#[tokio::test]
async fn events_go_with_their_delivery_and_with_their_stack() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let secret = Some(e.secret.as_str());
    let push = body(sender::payload("repo:refs_changed").unwrap());
    let (_, kept) = post(&e.url, "repo:refs_changed", &push, secret, "kept").await;
    let (_, aged) = post(&e.url, "repo:refs_changed", &push, secret, "aged").await;
    let count = |sql: &'static str| {
        let pool = w.app.pool.clone();
        async move { sqlx::query_scalar::<_, i64>(sql).fetch_one(&pool).await.unwrap() }
    };
    assert_eq!(count("SELECT count(*) FROM events").await, 2);

    // Retention deletes a delivery: its events go with it, the others stay.
    sqlx::query("UPDATE webhook_deliveries SET received_at = now() - interval '400 days' WHERE id = $1::text::uuid")
        .bind(aged["delivery"].as_str().unwrap())
        .execute(&w.app.pool)
        .await
        .unwrap();
    let mut db = w.app.pool.acquire().await.unwrap();
    bitgate_core::webhooks::deliveries::apply_retention(&mut db, Duration::from_secs(86_400)).await.unwrap();
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT delivery_id FROM events").fetch_all(&w.app.pool).await.unwrap();
    assert_eq!(left, [Uuid::parse_str(kept["delivery"].as_str().unwrap()).unwrap()]);

    // A stack deleted: its events go.
    let (status, _) = w.call(w.token("team writer"), Method::DELETE, &format!("/api/v1/stacks/{stack}"), None).await;
    assert_eq!(status, 204);
    assert_eq!(count("SELECT count(*) FROM events").await, 0);
}

#[tokio::test]
async fn callers_read_the_events_of_the_stacks_they_can_see_and_bad_parameters_are_refused() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    post(&e.url, "repo:refs_changed", &body(sender::payload("repo:refs_changed").unwrap()), Some(&e.secret), "a").await;
    // Readable once no older transaction (another test's) runs; then to every reader.
    at_least(&w, "team reader", "", 1).await;
    for caller in ["account admin", "team admin", "team writer", "team reader"] {
        assert_eq!(events(&w, caller, "").await.0.len(), 1, "{caller}");
    }
    for caller in ["outsider", "nobody"] {
        assert!(events(&w, caller, "").await.0.is_empty(), "{caller}");
        let path = format!("/api/v1/events?stack_id={stack}");
        let (status, _) = w.call(w.token(caller), Method::GET, &path, None).await;
        assert_eq!(status, 404, "{caller} learns nothing of the stack");
    }
    let (status, _) = w.call("bgt_not-a-token", Method::GET, "/api/v1/events", None).await;
    assert_eq!(status, 401);
    for (query, field) in [
        ("after=12", "after"),
        ("after=a.b", "after"),
        ("wait=31", "wait"),
        ("wait=-1", "wait"),
        ("wait=soon", "wait"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("type=run.finished", "type"),
        ("stack_id=web", "stack_id"),
    ] {
        let (status, answer) =
            w.call(w.token("team reader"), Method::GET, &format!("/api/v1/events?{query}"), None).await;
        assert_eq!(status, 400, "{query}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_request");
        assert!(answer["error"]["message"].as_str().unwrap().contains(field), "{query}: {answer}");
    }
}

/// Starts a reader waiting up to `wait` seconds after `cursor` on `base`.
fn wait_for_events(base: &str, token: &str, cursor: &str, wait: u64) -> tokio::task::JoinHandle<(Vec<Value>, Instant)> {
    let url = format!("{base}/api/v1/events?after={cursor}&wait={wait}");
    let token = token.to_owned();
    tokio::spawn(async move {
        let page: Value =
            reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().json().await.unwrap();
        (page["items"].as_array().unwrap().clone(), Instant::now())
    })
}

#[tokio::test]
async fn a_waiting_reader_wakes_when_an_event_commits_in_any_process() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let (_, cursor) = events(&w, "team reader", "").await;
    let other = crate::helpers::TestApp::spawn_on(
        w.app.services.config.database_url.clone().unwrap(),
        &[("BITGATE_SECRET_KEYS", &crate::cloud::keys_of(&w.app))],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await; // both are listening
    for (n, base) in [&w.app.base, &other.base].into_iter().enumerate() {
        let (_, cursor) = events(&w, "team reader", &format!("after={cursor}")).await;
        let reader = wait_for_events(base, w.token("team reader"), &cursor, 20);
        tokio::time::sleep(Duration::from_millis(300)).await; // it waits
        assert!(!reader.is_finished(), "nothing to answer yet");
        // The delivery goes to the first process; the reader waits on either.
        let (_, answer) = post(
            &e.url,
            "repo:refs_changed",
            &body(sender::payload("repo:refs_changed").unwrap()),
            Some(&e.secret),
            &format!("wake-{n}"),
        )
        .await;
        let acknowledged = Instant::now();
        let (items, answered) = reader.await.unwrap();
        assert_eq!(items.len(), 1, "process {n}");
        assert_eq!(items[0]["delivery_id"], answer["delivery"]);
        // Woken by the notification, not by a re-read (one a second) or the wait's end.
        let latency = answered.saturating_duration_since(acknowledged);
        assert!(latency < Duration::from_millis(500), "process {n} answered {latency:?} after the commit");
    }
}

#[tokio::test]
async fn a_burst_of_announcements_reaches_the_other_processes_as_a_few_notifications() {
    // Every notification wakes each listening connection of every process:
    // one per delivery would cost more than the deliveries themselves.
    use bitgate_core::platform::feed::CHANNEL;
    let (w, _simulator) = world_with_bitbucket().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&w.app.pool).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    let local = w.app.services.events.subscribe();
    for _ in 0..200 {
        w.app.services.events.announce(&w.app.pool, CHANNEL);
    }
    assert!(local.has_changed().unwrap(), "this process's readers are woken at once");
    let mut heard = 0;
    while let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await {
        heard += 1;
    }
    assert!((1..=3).contains(&heard), "200 announcements made {heard} notifications");
}

#[tokio::test]
async fn only_deliveries_that_make_events_are_announced() {
    use bitgate_core::platform::feed::CHANNEL;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, _) = endpoint(&w, &simulator.url).await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&w.app.pool).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    // A push to a branch no stack follows: stored, no event, nobody woken.
    let (status, _) =
        post(&e.url, "repo:refs_changed", &body(sender::datacenter_push("develop", "UPDATE")), Some(&e.secret), "x")
            .await;
    assert_eq!(status, 202);
    assert!(!heard(&mut listener).await, "a delivery that made no event");
    // One to the stack's branch: the other processes hear of it.
    let push = body(sender::payload("repo:refs_changed").unwrap());
    post(&e.url, "repo:refs_changed", &push, Some(&e.secret), "y").await;
    assert!(heard(&mut listener).await, "a delivery that made an event");
}

/// Whether a notification comes within 300 ms.
async fn heard(listener: &mut sqlx::postgres::PgListener) -> bool {
    matches!(tokio::time::timeout(Duration::from_millis(300), listener.recv()).await, Ok(Ok(_)))
}

async fn stack_and_integration(w: &World, stack: &str) -> (Uuid, Uuid) {
    let integration: Uuid = sqlx::query_scalar("SELECT integration_id FROM stacks WHERE id = $1")
        .bind(Uuid::parse_str(stack).unwrap())
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    (Uuid::parse_str(stack).unwrap(), integration)
}

#[tokio::test]
async fn an_event_committed_after_a_later_one_is_not_skipped() {
    let (w, simulator) = world_with_bitbucket().await;
    let (_, stack) = endpoint(&w, &simulator.url).await;
    let (stack, integration) = stack_and_integration(&w, &stack).await;
    let (_, start) = events(&w, "team reader", "").await;

    // A takes the smaller sequence number, B the larger; B commits first.
    let mut a = w.app.pool.begin().await.unwrap();
    let first = write_event(&mut *a, stack, integration).await;
    let second = write_event(&w.app.pool, stack, integration).await;
    let (items, cursor) = events(&w, "team reader", &format!("after={start}")).await;
    assert!(items.is_empty(), "B's event waits while A may still commit before it: {items:?}");

    // A reader waiting meanwhile gets both once A commits, A's first.
    let reader = wait_for_events(&w.app.base, w.token("team reader"), &cursor, 20);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!reader.is_finished());
    a.commit().await.unwrap();
    let (items, _) = reader.await.unwrap();
    assert_eq!(ids(&items), [first.to_string(), second.to_string()]);
}

async fn events_of_stack(w: &World, stack: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE stack_id = $1")
        .bind(stack)
        .fetch_one(&w.app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_delivery_routed_to_a_stack_deleted_meanwhile_is_stored_without_its_event() {
    // A process's cached routes lag a deletion in another process by a
    // moment: a delivery routed by them in that moment is still stored
    // (answered 202, not lost to a foreign-key error), and makes no event.
    let (w, simulator) = world_with_bitbucket().await;
    let (_, stack) = endpoint(&w, &simulator.url).await;
    let (live, integration) = stack_and_integration(&w, &stack).await;
    let gone = Uuid::new_v4();
    let row = verified_row(integration, "stale-routes".into(), "{}", triggering(&[gone, live]));
    let stored = w.app.services.webhooks.writer.store(&w.app.pool, &w.app.services.events, row).await.unwrap();
    let delivery = stored.expect("stored, not a duplicate");
    let made: Vec<Uuid> = sqlx::query_scalar("SELECT stack_id FROM events WHERE delivery_id = $1")
        .bind(delivery)
        .fetch_all(&w.app.pool)
        .await
        .unwrap();
    assert_eq!(made, [live], "the live stack's event is made, the deleted one's is not");
}

// Multi-threaded: the store and the deletion run at the same time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_event_outlives_a_stack_deleted_while_its_delivery_is_stored() {
    // Deleting a stack deletes its events (a trigger); an event written by
    // a batch that had read the stack before the deletion committed would
    // escape it. The batch locks the stacks it writes events for: it waits
    // for a deletion under way and then finds the stack gone.
    let (w, simulator) = world_with_bitbucket().await;
    let (_, stack) = endpoint(&w, &simulator.url).await;
    let (stack, integration) = stack_and_integration(&w, &stack).await;
    let mut deletion = w.app.pool.begin().await.unwrap();
    sqlx::query("DELETE FROM stacks WHERE id = $1").bind(stack).execute(&mut *deletion).await.unwrap();
    let store = {
        let services = w.app.services.clone();
        let row = verified_row(integration, "during-deletion".into(), "{}", triggering(&[stack]));
        tokio::spawn(async move { services.webhooks.writer.store(&services.pool, &services.events, row).await })
    };
    // The batch's statement comes to wait for the deletion's row lock.
    let deadline = Instant::now() + Duration::from_secs(10);
    let waiting =
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'";
    while sqlx::query_scalar::<_, i64>(waiting).fetch_one(&w.app.pool).await.unwrap() == 0 {
        assert!(!store.is_finished(), "the batch waits for the deletion under way");
        assert!(Instant::now() < deadline, "the batch never waited for the deletion");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!store.is_finished(), "the batch waits for the deletion under way");
    deletion.commit().await.unwrap();
    assert!(store.await.unwrap().unwrap().is_some(), "the delivery is stored");
    assert_eq!(events_of_stack(&w, stack).await, 0, "no event of the deleted stack");
}

#[tokio::test]
async fn a_reader_following_the_cursor_gets_every_event_of_concurrent_writers_exactly_once() {
    let (w, simulator) = world_with_bitbucket().await;
    let (_, stack) = endpoint(&w, &simulator.url).await;
    let (stack, integration) = stack_and_integration(&w, &stack).await;
    let (_, start) = events(&w, "team reader", "").await;
    const WRITERS: usize = 8;
    const EACH: usize = 25;

    // Each writer holds its transaction open for a while after writing, so
    // that commits come in another order than sequence numbers.
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let pool = w.app.pool.clone();
            tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..EACH {
                    let mut tx = pool.begin().await.unwrap();
                    written.push(write_event(&mut *tx, stack, integration).await);
                    tokio::time::sleep(Duration::from_millis(((n * 7 + i * 13) % 17) as u64)).await;
                    tx.commit().await.unwrap();
                }
                written
            })
        })
        .collect();

    let mut seen = Vec::new();
    let mut cursor = start;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < WRITERS * EACH && Instant::now() < deadline {
        let (items, next) = events(&w, "team reader", &format!("after={cursor}&wait=2&limit=7")).await;
        seen.extend(ids(&items));
        cursor = next;
    }
    let mut written = HashSet::new();
    for writer in writers {
        written.extend(writer.await.unwrap().into_iter().map(|id| id.to_string()));
    }
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no event twice");
    assert_eq!(unique, written, "every event, none skipped");
    let (after, _) = events(&w, "team reader", &format!("after={cursor}")).await;
    assert!(after.is_empty(), "nothing left behind the cursor");
}

#[tokio::test]
async fn events_follow_prints_what_comes_as_json_lines() {
    use std::io::BufRead;
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    as_after_a_restore(&w.app.pool).await;
    let before = body(sender::payload("repo:refs_changed").unwrap());
    assert_eq!(post(&e.url, "repo:refs_changed", &before, Some(&e.secret), "before-follow").await.0, 202);
    at_least(&w, "team reader", "", 1).await; // readable: the start is past it
    let url = w.app.services.config.database_url.clone().unwrap();
    let data = crate::helpers::TempDir::new("follow");
    let data_dir = data.path().to_str().unwrap().to_owned();
    let env = [("DATABASE_URL", url.as_str()), ("BITGATE_DATA_DIR", data_dir.as_str())];

    let unknown = crate::cli::run(crate::cli::bitgate(&env).args(["events", "follow", "--stack", "nope"]), None);
    crate::cli::assert_one_sentence(&unknown, "no stack is named");

    let mut child = crate::cli::bitgate(&env)
        .args(["events", "follow", "--stack", "web"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, printed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    // It follows from when it starts: push until a line comes.
    let mut line = None;
    for n in 0..40 {
        let push = body(sender::payload("repo:refs_changed").unwrap());
        post(&e.url, "repo:refs_changed", &push, Some(&e.secret), &format!("follow-{n}")).await;
        if let Ok(first) = printed.recv_timeout(Duration::from_millis(500)) {
            line = Some(first);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let event: Value = serde_json::from_str(&line.expect("a line within 20 s")).unwrap();
    let earlier: Uuid = sqlx::query_scalar("SELECT id FROM webhook_deliveries WHERE request_id = 'before-follow'")
        .fetch_one(&w.app.pool)
        .await
        .unwrap();
    assert_ne!(event["delivery_id"], earlier.to_string(), "an event from before it started: {event}");
    assert_eq!((event["type"].as_str(), event["kind"].as_str()), (Some("run.requested"), Some("tracked")));
    assert_eq!(event["stack_id"], stack.as_str());
    assert_eq!(event["repository"]["name"], "OPS/my-repo");
}

#[tokio::test]
async fn a_stack_s_triggers_decide_which_events_its_deliveries_make() {
    let (w, simulator) = world_with_bitbucket().await;
    let (e, stack) = endpoint(&w, &simulator.url).await;
    let secret = Some(e.secret.as_str());
    let set = |triggers: Value| {
        let (w, stack) = (&w, &stack);
        async move {
            let path = format!("/api/v1/stacks/{stack}");
            let (status, answer) =
                w.call(w.token("team writer"), Method::PATCH, &path, Some(json!({"triggers": triggers}))).await;
            assert_eq!(status, 200, "{answer}");
        }
    };
    let (_, start) = events(&w, "team reader", "").await;

    // Every branch, and no pull requests.
    set(json!({"all_branches": true, "build_pull_requests": false})).await;
    post(&e.url, "repo:refs_changed", &body(sender::datacenter_push("develop", "UPDATE")), secret, "a").await;
    post(&e.url, "pr:opened", &body(sender::payload("pr:opened").unwrap()), secret, "b").await;
    let (items, cursor) = at_least(&w, "team reader", &start, 1).await;
    let made: Vec<_> = items.iter().map(|e| (e["type"].as_str().unwrap(), e["branch"].as_str().unwrap())).collect();
    assert_eq!(made, [("run.requested", "develop")], "a push to develop; the pull request made nothing");

    // No pruning: a deleted branch is not announced.
    set(json!({"all_branches": false, "prune_branches": false, "build_pull_requests": true})).await;
    post(&e.url, "repo:refs_changed", &body(sender::datacenter_push("main", "DELETE")), secret, "c").await;
    let (items, cursor) = events(&w, "team reader", &format!("after={cursor}")).await;
    assert!(items.is_empty(), "{items:?}");

    // Resync: the pull request is open; a push to its source asks for it again.
    set(json!({"resync_pull_requests": true})).await;
    post(&e.url, "pr:from_ref_updated", &body(sender::payload("pr:from_ref_updated").unwrap()), secret, "d").await;
    post(&e.url, "repo:refs_changed", &body(sender::datacenter_push("feature/thing", "UPDATE")), secret, "e").await;
    let (items, cursor) = at_least(&w, "team reader", &cursor, 2).await;
    let made: Vec<_> = items.iter().map(|e| (e["kind"].as_str(), e["resync"].as_bool())).collect();
    assert_eq!(made, [(Some("proposed"), Some(false)), (Some("proposed"), Some(true))]);
    assert_eq!(items[1]["pull_request"]["id"], 7);
    assert_eq!(items[1]["commit"], PUSHED, "the pushed commit");
    // Once it is merged, pushes to its source ask for nothing more.
    post(&e.url, "pr:merged", &body(sender::payload("pr:merged").unwrap()), secret, "f").await;
    post(&e.url, "repo:refs_changed", &body(sender::datacenter_push("feature/thing", "UPDATE")), secret, "g").await;
    let (items, _) = at_least(&w, "team reader", &cursor, 1).await;
    let made: Vec<_> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(made, ["pull_request.closed"]);
}
