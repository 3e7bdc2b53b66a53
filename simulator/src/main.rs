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
    if let Some(pem) = &simulator.ca_pem {
        println!("  CA certificate:\n{pem}");
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
