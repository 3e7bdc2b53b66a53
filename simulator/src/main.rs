//! `bitbucket-simulator`: runs the simulator beside Bitgate for the offline
//! demo, and prints what to enter in Bitgate's wizard.

use clap::Parser;

#[derive(Parser)]
#[command(about = "A stand-in for Bitbucket, for trying Bitgate without one")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7990")]
    listen: std::net::SocketAddr,
    /// Serve https with a certificate from a private CA (printed at start).
    #[arg(long)]
    tls: bool,
    /// Where Bitgate runs: the demo consumer's callback is its OAuth callback.
    #[arg(long, env = "BITGATE_PUBLIC_URL", default_value = "http://127.0.0.1:3000")]
    bitgate_url: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let transport = if args.tls { bitbucket_simulator::Transport::Tls } else { bitbucket_simulator::Transport::Http };
    let simulator =
        bitbucket_simulator::Simulator::start_on(args.listen, bitbucket_simulator::DataCenter::sample(), transport)
            .await?;
    println!("Bitbucket Data Center simulator at {}", simulator.url);
    println!("  API URL:      {}", simulator.url);
    println!("  username:     {}", bitbucket_simulator::datacenter::DEMO_USER);
    println!("  access token: {}", bitbucket_simulator::datacenter::DEMO_TOKEN);
    let callback = format!("{}/oauth/bitbucket/callback", args.bitgate_url.trim_end_matches('/'));
    simulator.configure_cloud(|cloud| cloud.consumers[0].callback_url = Some(callback.clone()));
    println!("Bitbucket Cloud simulator at the same address");
    println!("  workspace:    {}", bitbucket_simulator::cloud::DEMO_WORKSPACE);
    println!("  consumer key: {}", bitbucket_simulator::cloud::DEMO_KEY);
    println!("  secret:       {}", bitbucket_simulator::cloud::DEMO_SECRET);
    println!("  callback:     {callback}");
    if let Some(pem) = &simulator.ca_pem {
        println!("  CA certificate:\n{pem}");
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
