//! `bitbucket-simulator`: runs the simulator beside Bitgate for the offline
//! demo, and prints what to enter in Bitgate's wizard.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "A stand-in for Bitbucket, for trying Bitgate without one")]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7990")]
    listen: std::net::SocketAddr,
    /// Serve https with a certificate from a private CA (printed at start).
    #[arg(long)]
    tls: bool,
    /// Where Bitgate runs: its OAuth callback is the demo consumer's callback
    /// and the demo OAuth 2.0 link's redirect URL.
    #[arg(long, env = "BITGATE_PUBLIC_URL", default_value = "http://127.0.0.1:3000")]
    bitgate_url: String,
    /// Milliseconds Data Center takes to answer each request (a network's latency).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Percent of Data Center's REST calls answered 503 at random, as a
    /// node being restarted does.
    #[arg(long, default_value_t = 0.0)]
    fail_percent: f64,
    /// Percent of Data Center's REST calls answered 429 (`Retry-After: 1`)
    /// at random, as Bitbucket's rate limiter does.
    #[arg(long, default_value_t = 0.0)]
    throttle_percent: f64,
    /// An API token of Bitgate: the demo platform follows Bitgate's events
    /// with it from the start (its page, /simulator/platform, takes one too).
    #[arg(long, env = "BITGATE_TOKEN")]
    platform_token: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Answers every POST 202 once its body is read, and does nothing
    /// else: the HTTP floor (a bare axum handler) that `scripts/bench-webhooks`
    /// sets beside Bitgate's latency with one client.
    Acknowledge {
        /// Where to listen, such as 127.0.0.1:3196.
        #[arg(long)]
        listen: String,
    },
    /// Posts one signed, real-shaped delivery of an event to a webhook
    /// endpoint, as Bitbucket would (its headers, its signature).
    Send {
        /// The endpoint, such as http://127.0.0.1:3000/webhooks/bitbucket/dc-main.
        #[arg(long)]
        url: String,
        /// The webhook secret to sign with (left out: an unsigned delivery).
        #[arg(long, env = "BITGATE_WEBHOOK_SECRET")]
        secret: Option<String>,
        /// The event key, such as repo:refs_changed or pullrequest:created.
        #[arg(long)]
        event: String,
        /// The request id (a new one when left out; the same twice is a retry).
        #[arg(long)]
        request_id: Option<String>,
        /// A body of your own instead of the built-in one.
        #[arg(long)]
        body_file: Option<std::path::PathBuf>,
    },
    /// Prints the built-in body of an event key (what `send` posts), to
    /// read or to edit and send with `--body-file`.
    Payload {
        /// The event key, such as repo:refs_changed or pullrequest:created.
        event: String,
    },
    /// Sends signed deliveries for a while (the webhook benchmark): as fast
    /// as `--clients` senders go, or at `--rate` a second; prints the rate
    /// and the latency percentiles.
    Load {
        #[arg(long)]
        url: String,
        #[arg(long, env = "BITGATE_WEBHOOK_SECRET")]
        secret: String,
        #[arg(long, default_value = "repo:refs_changed")]
        event: String,
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Deliveries a second (open loop); left out: as fast as the clients go.
        #[arg(long)]
        rate: Option<u32>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// With --rate: each delivery pushes a commit of its own (so that
        /// each asks for a run and a build status of its own).
        #[arg(long)]
        distinct_commits: bool,
        /// With --rate: sends a delivery again (same request id) after a 5xx
        /// or no answer, as Bitbucket retries, for up to this many seconds.
        #[arg(long, default_value_t = 0)]
        retry_for: u64,
        /// The request ids' prefix (`PREFIX-n`), to find them in Bitgate's log.
        #[arg(long)]
        run_id: Option<String>,
        /// Also prints a line for every window of this many seconds.
        #[arg(long)]
        every: Option<u64>,
    },
    /// Plays the platform that runs the stacks' work: follows Bitgate's
    /// events feed and reports each requested run queued, running, then
    /// succeeded, or failed when its branch or pull request title says
    /// `fail`; Bitgate then posts the statuses and comments here.
    Platform {
        /// Where Bitgate runs.
        #[arg(long, env = "BITGATE_PUBLIC_URL", default_value = "http://127.0.0.1:3000")]
        bitgate_url: String,
        /// An API token of Bitgate with write on the stacks' spaces.
        #[arg(long, env = "BITGATE_TOKEN")]
        token: String,
        /// Only this stack's events.
        #[arg(long)]
        stack: Option<String>,
        /// Seconds each state lasts.
        #[arg(long, default_value_t = 2)]
        step: u64,
        /// The feed cursor to follow from (its `next_cursor`); left out: the feed's end.
        #[arg(long)]
        after: Option<String>,
    },
    /// The events feed benchmark: `--readers` follow Bitgate's feed while
    /// deliveries arrive at `--rate` a second; prints the latency from an
    /// event's transaction to each reader, p50 and p99.
    FeedBench {
        #[arg(long, env = "BITGATE_PUBLIC_URL", default_value = "http://127.0.0.1:3000")]
        bitgate_url: String,
        #[arg(long, env = "BITGATE_TOKEN")]
        token: String,
        /// The webhook endpoint the deliveries go to.
        #[arg(long)]
        url: String,
        #[arg(long, env = "BITGATE_WEBHOOK_SECRET")]
        secret: String,
        #[arg(long, default_value_t = 10)]
        readers: usize,
        #[arg(long, default_value_t = 500)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
}

/// Posts one delivery and prints Bitgate's answer; fails unless it is 2xx.
async fn send(
    url: &str,
    secret: Option<&str>,
    event: &str,
    request_id: Option<String>,
    body_file: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use bitbucket_simulator::sender;
    let body = match body_file {
        Some(path) => std::fs::read(path)?,
        None => serde_json::to_vec(
            &sender::payload(event).ok_or_else(|| anyhow::anyhow!("no built-in body for the event key {event}"))?,
        )?,
    };
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let mut request = client.post(url).body(body.clone());
    for (name, value) in sender::headers(event, secret, &body, &request_id) {
        request = request.header(name, value);
    }
    let response = request.send().await?;
    let status = response.status();
    println!("{} {}", status.as_u16(), response.text().await.unwrap_or_default());
    anyhow::ensure!(status.is_success(), "Bitgate answered {status}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    match args.command {
        Some(Command::Send { url, secret, event, request_id, body_file }) => {
            return send(&url, secret.as_deref(), &event, request_id, body_file).await;
        }
        Some(Command::Payload { event }) => {
            let body = bitbucket_simulator::sender::payload(&event)
                .ok_or_else(|| anyhow::anyhow!("no built-in body for the event key {event}"))?;
            println!("{}", serde_json::to_string_pretty(&body)?);
            return Ok(());
        }
        Some(Command::Load {
            url,
            secret,
            event,
            clients,
            rate,
            seconds,
            distinct_commits,
            retry_for,
            run_id,
            every,
        }) => {
            use bitbucket_simulator::load;
            let duration = std::time::Duration::from_secs(seconds);
            let options =
                load::Options { distinct_commits, retry_for: std::time::Duration::from_secs(retry_for), run_id };
            let report = match rate {
                Some(rate) => load::open_loop_with(&url, &secret, &event, rate, duration, &options).await,
                None => load::closed_loop(&url, &secret, &event, clients, duration).await,
            };
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            if let Some(every) = every {
                for window in report.windows(std::time::Duration::from_secs(every.max(1))) {
                    println!(
                        "window={}s sent={} failed={} retried={} p50={:.2}ms p99={:.2}ms",
                        window.start.as_secs(),
                        window.sent,
                        window.failed,
                        window.retried,
                        ms(window.p50),
                        ms(window.p99)
                    );
                }
            }
            println!(
                "sent={} failed={} retried={} rate={:.1}/s p50={:.2}ms p99={:.2}ms max={:.2}ms",
                report.sent,
                report.failed,
                report.retried(),
                report.rate(),
                ms(report.percentile(0.5)),
                ms(report.percentile(0.99)),
                ms(report.percentile(1.0))
            );
            return Ok(());
        }
        Some(Command::Acknowledge { listen }) => {
            let acknowledge = |_: axum::body::Bytes| async { axum::http::StatusCode::ACCEPTED };
            let app = axum::Router::new().route("/{*path}", axum::routing::post(acknowledge));
            axum::serve(tokio::net::TcpListener::bind(&listen).await?, app).await?;
            return Ok(());
        }
        Some(Command::Platform { bitgate_url, token, stack, step, after }) => {
            let platform = bitbucket_simulator::platform::Platform {
                bitgate_url,
                token,
                stack,
                after,
                step: std::time::Duration::from_secs(step),
            };
            println!("Following {}/api/v1/events; runs are reported as they are requested.", platform.bitgate_url);
            return platform.follow().await;
        }
        Some(Command::FeedBench { bitgate_url, token, url, secret, readers, rate, seconds }) => {
            let bench = bitbucket_simulator::feed_bench::FeedBench {
                bitgate_url: &bitgate_url,
                token: &token,
                webhook_url: &url,
                secret: &secret,
                readers,
                rate,
                duration: std::time::Duration::from_secs(seconds),
            };
            let report = bench.run().await?;
            let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
            println!(
                "deliveries={} failed={} events_read={} p50={:.1}ms p99={:.1}ms max={:.1}ms",
                report.deliveries,
                report.failed,
                report.latencies.len(),
                ms(report.percentile(0.5)),
                ms(report.percentile(0.99)),
                ms(report.percentile(1.0))
            );
            return Ok(());
        }
        None => {}
    }
    let transport = if args.tls { bitbucket_simulator::Transport::Tls } else { bitbucket_simulator::Transport::Http };
    let simulator =
        bitbucket_simulator::Simulator::start_on(args.listen, bitbucket_simulator::DataCenter::sample(), transport)
            .await?;
    anyhow::ensure!(
        args.fail_percent >= 0.0 && args.throttle_percent >= 0.0 && args.fail_percent + args.throttle_percent <= 100.0,
        "--fail-percent and --throttle-percent are percents: together between 0 and 100"
    );
    simulator.configure(|instance| {
        instance.delay = std::time::Duration::from_millis(args.delay_ms);
        instance.random_faults = bitbucket_simulator::RandomFaults {
            unavailable_percent: args.fail_percent,
            rate_limited_percent: args.throttle_percent,
        };
    });
    simulator.set_bitgate_url(&args.bitgate_url);
    println!("Bitbucket Data Center simulator at {}", simulator.url);
    println!("  API URL:      {}", simulator.url);
    println!("  username:     {}", bitbucket_simulator::datacenter::DEMO_USER);
    println!("  access token: {}", bitbucket_simulator::datacenter::DEMO_TOKEN);
    // Where the demo's person plays the developer: pushes, pull requests, webhooks.
    let (_, key, slug) = bitbucket_simulator::sender::DATACENTER_REPOSITORY;
    println!(
        "  repository:   {}/projects/{key}/repos/{slug}/browse (push a commit, open a pull request)",
        simulator.url
    );
    println!("  webhooks:     {}/plugins/servlet/webhooks/projects/{key}/repos/{slug}", simulator.url);
    // Bitgate's one OAuth callback, for Cloud's consumer and Data Center's link alike.
    let callback = format!("{}/oauth/bitbucket/callback", args.bitgate_url.trim_end_matches('/'));
    simulator.configure(|instance| {
        if let Some(client) = instance.oauth2_clients.first_mut() {
            client.redirect_url = Some(callback.clone());
        }
    });
    println!("  OAuth 2.0 link (External application):");
    println!("    client id:     {}", bitbucket_simulator::datacenter::DEMO_OAUTH2_CLIENT_ID);
    println!("    client secret: {}", bitbucket_simulator::datacenter::DEMO_OAUTH2_CLIENT_SECRET);
    println!("    redirect URL:  {callback}");
    println!(
        "  OAuth 1.0a links (paste a consumer key and public key): {}{}",
        simulator.url,
        bitbucket_simulator::datacenter::oauth1::LINKS_PATH
    );
    simulator.configure_cloud(|cloud| cloud.consumers[0].callback_url = Some(callback.clone()));
    println!("Bitbucket Cloud simulator at the same address");
    println!("  workspace:    {}", bitbucket_simulator::cloud::DEMO_WORKSPACE);
    println!("  consumer key: {}", bitbucket_simulator::cloud::DEMO_KEY);
    println!("  secret:       {}", bitbucket_simulator::cloud::DEMO_SECRET);
    println!("  callback:     {callback}");
    // Where a person watching the demo sees Bitgate's statuses and comments.
    println!(
        "  pull request: {}/{}/{}/pull-requests/{}",
        simulator.url,
        bitbucket_simulator::cloud::DEMO_WORKSPACE,
        bitbucket_simulator::cloud::DEMO_REPOSITORY,
        bitbucket_simulator::cloud::DEMO_PULL_REQUEST
    );
    println!("The demo platform (a simulator page) at {}{}", simulator.url, bitbucket_simulator::platform_page::PATH);
    match args.platform_token.as_deref().map(str::trim).filter(|token| !token.is_empty()) {
        Some(token) => {
            simulator.start_platform(token);
            println!("  following {} with the token given; its page shows how it goes", args.bitgate_url);
        }
        None => println!("  paste an API token of Bitgate there (or start with --platform-token)"),
    }
    if let Some(pem) = &simulator.ca_pem {
        println!("  CA certificate:\n{pem}");
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
