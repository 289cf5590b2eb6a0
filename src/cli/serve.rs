//! `bramble serve`: run the daemon (TFTP for now) until interrupted.

use crate::daemon::config::{DaemonConfig, TftpConfig};
use crate::daemon::tftp::lookup::Routes;
use crate::daemon::tftp::{ServerConfig, TftpServer};
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    bramble serve --config /srv/bramble/daemon.toml\n  \
    bramble serve --tftp-root ./tftp --tftp-bind 127.0.0.1:6969 --dhcp off")]
pub struct Args {
    /// The daemon configuration of a lab (daemon.toml; format in docs/daemon.md)
    #[arg(long, value_name = "FILE", required_unless_present = "tftp_root")]
    config: Option<PathBuf>,
    /// Serve this folder over TFTP as it is, without a lab configuration
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    tftp_root: Option<PathBuf>,
    /// Where TFTP listens [default: the config's, else 0.0.0.0:69; port 69 needs root]
    #[arg(long, value_name = "ADDR:PORT")]
    tftp_bind: Option<SocketAddr>,
    /// DHCP service; only `off` for now (Bramble's DHCP server comes with the DHCP issue)
    #[arg(long, value_enum, default_value_t = DhcpArg::Off)]
    dhcp: DhcpArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum DhcpArg {
    Off,
}

fn server_config(args: &Args) -> Result<ServerConfig> {
    let mut config = match (&args.config, &args.tftp_root) {
        (Some(path), _) => {
            let daemon = DaemonConfig::load(path)?;
            ServerConfig { routes: daemon.routes()?, root: daemon.lab, tftp: daemon.tftp }
        }
        (None, Some(root)) => ServerConfig { root: root.clone(), routes: Routes::plain(), tftp: TftpConfig::default() },
        (None, None) => unreachable!("clap requires --config or --tftp-root"),
    };
    if let Some(bind) = args.tftp_bind {
        config.tftp.bind = bind;
    }
    Ok(config)
}

pub fn run(args: Args) -> Result<()> {
    let config = server_config(&args)?;
    // Multi-threaded: with many clients, sending is spread over every core (a single thread was
    // 30% slower for 200 clients at once, and no faster for one).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let server = TftpServer::bind(config)?;
        server.run(shutdown_signal()).await
    })
}

/// Ctrl-C or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
