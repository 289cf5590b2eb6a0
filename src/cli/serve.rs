//! `bramble serve`: run the daemon's services (TFTP, and DHCP unless it is off) in one runtime
//! until Ctrl-C or SIGTERM, from a lab's daemon.toml or from dnsmasq-style flags. SIGHUP
//! (`systemctl reload bramble`) reads the configuration again and gives the running services
//! the new lab, keeping the transfers in flight and the leases.

use crate::daemon::config::{DaemonConfig, DhcpConfig, HttpConfig, TftpConfig};
use crate::daemon::dhcp::boot::BootFiles;
use crate::daemon::dhcp::known::KnownClients;
use crate::daemon::dhcp::{Answer, DhcpServer, DhcpServerConfig, Mode};
use crate::daemon::tftp::lookup::Routes;
use crate::daemon::tftp::{ServerConfig, TftpServer};
use crate::recipe::Ipv4Range;
use anyhow::{Context, Result, bail};
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  \
    bramble serve --config /srv/bramble/daemon.toml\n  \
    bramble serve --interface eth1 --dhcp proxy --answer pis --tftp-root ./tftp\n  \
    bramble serve --interface eth1 --dhcp server --range 10.42.0.100-10.42.0.199 --tftp-root ./tftp\n  \
    bramble serve --tftp-root ./tftp --tftp-bind 127.0.0.1:6969 --dhcp off")]
pub struct Args {
    /// The daemon configuration of a lab (daemon.toml; format in docs/daemon.md)
    #[arg(long, value_name = "FILE", required_unless_present = "tftp_root")]
    config: Option<PathBuf>,
    /// Serve this folder over TFTP as it is, without a lab configuration
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    tftp_root: Option<PathBuf>,
    /// Where TFTP listens [default: the config's, else 0.0.0.0:69 (on --interface when given);
    /// port 69 needs root]
    #[arg(long, value_name = "ADDR:PORT")]
    tftp_bind: Option<SocketAddr>,
    /// The lab interface: DHCP answers only there, and TFTP listens only there
    #[arg(long, value_name = "IF")]
    interface: Option<String>,
    /// The address clients are told (next server, option 54, URLs) [default: the interface's
    /// first IPv4 address]
    #[arg(long, value_name = "IP")]
    address: Option<Ipv4Addr>,
    /// DHCP: `proxy` (boot information beside the network's DHCP server), `server` (addresses
    /// from --range too) or `off` [default: the config's, else off]
    #[arg(long, value_enum, value_name = "MODE")]
    dhcp: Option<ModeArg>,
    /// Server mode's pool of addresses, FIRST-LAST
    #[arg(long, value_name = "FIRST-LAST")]
    range: Option<Ipv4Range>,
    /// Which boot clients get boot information: `known` (the lab's), `pis` (and any Raspberry
    /// Pi) or `all` [default: the config's; without --config `all`, since there are no known
    /// clients]
    #[arg(long, value_enum, value_name = "WHICH")]
    answer: Option<AnswerArg>,
    /// Where server mode keeps its leases [default: the config's, else
    /// /var/lib/bramble/leases.toml]
    #[arg(long, value_name = "FILE")]
    lease_file: Option<PathBuf>,
    /// Where HTTP listens (iPXE, UEFI HTTP boot) [default: the config's, else 0.0.0.0:80 on
    /// --interface; without --config HTTP runs only with DHCP or this flag]
    #[arg(long, value_name = "ADDR:PORT", conflicts_with = "no_http")]
    http_bind: Option<SocketAddr>,
    /// Do not run the HTTP server
    #[arg(long)]
    no_http: bool,
    /// Read and check the configuration, then exit (no sockets are opened)
    #[arg(long, requires = "config")]
    check: bool,
}

/// `--dhcp`, as the daemon's [`Mode`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ModeArg {
    Proxy,
    Server,
    Off,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Proxy => Mode::Proxy,
            ModeArg::Server => Mode::Server,
            ModeArg::Off => Mode::Off,
        }
    }
}

/// `--answer`, as the daemon's [`Answer`].
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum AnswerArg {
    Known,
    Pis,
    All,
}

impl From<AnswerArg> for Answer {
    fn from(a: AnswerArg) -> Answer {
        match a {
            AnswerArg::Known => Answer::Known,
            AnswerArg::Pis => Answer::Pis,
            AnswerArg::All => Answer::All,
        }
    }
}

/// What to run, resolved from the config and the flags.
struct Plan {
    tftp: ServerConfig,
    dhcp: Option<DhcpServerConfig>,
    http: Option<crate::daemon::http::ServerConfig>,
}

fn plan(args: &Args) -> Result<Plan> {
    let config = args.config.as_deref().map(DaemonConfig::load).transpose()?;
    let with_config = config.is_some();
    let (mut tftp, interface, address, dhcp, boot, http, clients) = match (config, &args.tftp_root) {
        (Some(daemon), _) => {
            let clients = daemon.known_clients()?;
            let tftp = ServerConfig { routes: daemon.routes()?, root: daemon.lab, tftp: daemon.tftp, device: None };
            (tftp, daemon.interface, daemon.address, daemon.dhcp, daemon.boot, daemon.http, clients)
        }
        (None, Some(root)) => {
            let tftp =
                ServerConfig { root: root.clone(), routes: Routes::plain(), tftp: TftpConfig::default(), device: None };
            let dhcp = DhcpConfig {
                answer: Answer::All,
                lease_file: "/var/lib/bramble/leases.toml".into(),
                ..DhcpConfig::default()
            };
            (
                tftp,
                None,
                None,
                Some(dhcp).filter(|_| args.dhcp.is_some()),
                BootFiles::default(),
                HttpConfig::default(),
                KnownClients::default(),
            )
        }
        (None, None) => unreachable!("clap requires --config or --tftp-root"),
    };
    let interface = args.interface.clone().or(interface);
    let address = args.address.or(address);
    let mut http = http;
    if let Some(bind) = args.http_bind {
        http.bind = bind;
    }
    if let Some(bind) = args.tftp_bind {
        tftp.tftp.bind = bind;
    }
    // On the lab interface only, unless the operator named an address to listen on.
    if tftp.tftp.bind.ip().is_unspecified() {
        tftp.device = interface.clone();
    }
    let mut dhcp = match (dhcp, args.dhcp.map(Mode::from)) {
        (_, Some(Mode::Off)) | (None, None) => None,
        (Some(d), None) => Some(d),
        (Some(d), Some(mode)) => Some(DhcpConfig { mode, ..d }),
        (None, Some(mode)) => Some(DhcpConfig { mode, ..DhcpConfig::default() }),
    }
    .filter(|d| d.mode != Mode::Off);
    if let Some(d) = dhcp.as_mut() {
        if let Some(range) = args.range {
            d.range = Some(range);
        }
        if let Some(answer) = args.answer {
            d.answer = answer.into();
        }
        if let Some(file) = &args.lease_file {
            d.lease_file = file.clone();
        }
        if d.mode == Mode::Server && d.range.is_none() {
            bail!("DHCP server mode needs a pool: give --range FIRST-LAST (or [dhcp] range in the config)");
        }
    } else if args.range.is_some() || args.answer.is_some() {
        bail!("--range and --answer are DHCP settings; DHCP is off (give --dhcp proxy or --dhcp server)");
    }
    let dhcp = match dhcp {
        None => None,
        Some(d) => {
            let interface = interface.as_deref().context(
                "DHCP needs the lab interface, to answer there and nowhere else: give --interface (or `interface` in the config)",
            )?;
            if d.mode == Mode::Server
                && let Some(dir) = d.lease_file.parent().filter(|p| !p.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {} for the lease file", dir.display()))?;
            }
            Some(DhcpServerConfig::resolve(interface, address, &d, &boot, http.bind.port(), clients)?)
        }
    };
    // A lab serves HTTP (iPXE menus, UEFI HTTP boot); a plain folder only when DHCP hands out
    // {http} URLs or the operator asks.
    let http_on = !args.no_http && (with_config || dhcp.is_some() || args.http_bind.is_some());
    let http = http_on.then(|| crate::daemon::http::ServerConfig {
        root: tftp.root.clone(),
        interface: if http.bind.ip().is_unspecified() { interface.clone() } else { None },
        http,
        generator: None,
    });
    Ok(Plan { tftp, dhcp, http })
}

pub fn run(args: Args) -> Result<()> {
    if args.check {
        let path = args.config.as_deref().context("--check needs --config")?;
        let config = DaemonConfig::load(path)?;
        let routes = config.routes()?;
        config.known_clients()?;
        let dhcp = config.dhcp.as_ref().map(|d| format!("{:?}", d.mode).to_lowercase()).unwrap_or_else(|| "off".into());
        println!(
            "{}: ok: lab {}, {} clients, dhcp {dhcp}, tftp {}, http {}",
            path.display(),
            config.lab.display(),
            routes.clients.len(),
            config.tftp.bind,
            config.http.bind
        );
        return Ok(());
    }
    let plan = plan(&args)?;
    // Multi-threaded: with many clients, sending is spread over every core (a single thread was
    // 30% slower for 200 clients at once, and no faster for one).
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the runtime")?;
    runtime.block_on(async {
        let tftp = TftpServer::bind(plan.tftp)?;
        let dhcp = plan.dhcp.map(DhcpServer::bind).transpose()?;
        let http = plan.http.map(crate::daemon::http::HttpServer::bind).transpose()?;
        let reload = Reloaders {
            tftp: tftp.reloader(),
            dhcp: dhcp.as_ref().map(DhcpServer::reloader),
            http: http.as_ref().map(crate::daemon::http::HttpServer::reloader),
        };
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let until_stopped = || {
            let mut rx = stopped.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let signal = async {
            shutdown_signal().await;
            let _ = stop.send(true);
            Ok(())
        };
        // Each service runs until the stop signal.
        let tftp = tftp.run(until_stopped());
        let dhcp = optional(dhcp.map(|d| d.run(until_stopped())));
        let http = optional(http.map(|h| h.run(until_stopped())));
        let reloads = reload.run(&args, until_stopped());
        tokio::try_join!(signal, tftp, dhcp, http, reloads)?;
        Ok(())
    })
}

/// The running services' reload handles.
struct Reloaders {
    tftp: crate::daemon::tftp::server::TftpReload,
    dhcp: Option<crate::daemon::dhcp::server::DhcpReload>,
    http: Option<crate::daemon::http::server::HttpReload>,
}

impl Reloaders {
    /// On each SIGHUP until `shutdown`: read the configuration again and apply it. A
    /// configuration that does not load changes nothing: the daemon goes on with the lab it has.
    async fn run(self, args: &Args, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "reload: cannot watch for SIGHUP; restart the daemon to load a new lab");
                return Ok(());
            }
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => return Ok(()),
                _ = hangup.recv() => {}
            }
            // Reading the files and the interface's address is quick, blocking work.
            match tokio::task::block_in_place(|| plan(args)).and_then(|p| self.apply(p)) {
                Ok(restart) => {
                    for what in restart {
                        tracing::warn!("reload: {what}");
                    }
                    tracing::info!(config = ?args.config, "reload: serving the new lab");
                }
                Err(e) => tracing::error!(error = format!("{e:#}"), "reload failed; still serving the previous lab"),
            }
        }
    }

    /// The new configuration has loaded (clients, routes, DHCP settings); its folders are
    /// checked before any service swaps, so a lab that is not there reaches none of them.
    fn apply(&self, plan: Plan) -> Result<Vec<String>> {
        for root in std::iter::once(&plan.tftp.root).chain(plan.http.as_ref().map(|h| &h.root)) {
            let meta = std::fs::metadata(root).with_context(|| format!("cannot serve {}", root.display()))?;
            anyhow::ensure!(meta.is_dir(), "cannot serve {}: not a folder", root.display());
        }
        let mut restart = Vec::new();
        if plan.dhcp.is_some() != self.dhcp.is_some() || plan.http.is_some() != self.http.is_some() {
            restart.push("DHCP or HTTP was switched on or off; that applies at the next restart".to_string());
        }
        if let (Some(reload), Some(config)) = (&self.http, plan.http) {
            restart.extend(reload.apply(config)?);
        }
        restart.extend(self.tftp.apply(&plan.tftp)?);
        if let (Some(reload), Some(config)) = (&self.dhcp, plan.dhcp) {
            restart.extend(reload.apply(config));
        }
        Ok(restart)
    }
}

/// A service that may be switched off.
async fn optional(service: Option<impl Future<Output = Result<()>>>) -> Result<()> {
    match service {
        Some(s) => s.await,
        None => Ok(()),
    }
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
