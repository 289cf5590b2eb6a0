//! `bramble deploy LAB DEST`: the command line of [`crate::deploy`] (put a built lab in place on
//! the server, keep the clients' own roots, install the exports and the daemon's service).

use crate::deploy::Deploy;
use crate::deploy::client_roots::Reset;
use crate::lab::plan::SERVER_LAB_DIR;
use anyhow::{Result, bail};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  sudo bramble deploy out/lab /srv/bramble\n  \
    sudo bramble deploy out/lab --reset-client node3\n  \
    sudo bramble deploy out/lab /tmp/lab --no-exports --no-service")]
pub struct Args {
    /// The built lab (OUT/lab of `bramble build`)
    lab: PathBuf,
    /// Where the server keeps it
    #[arg(default_value = SERVER_LAB_DIR)]
    dest: PathBuf,
    /// Where the NFS exports go
    #[arg(long, value_name = "FILE", default_value = "/etc/exports.d/bramble.exports")]
    exports: PathBuf,
    /// Leave the NFS exports alone
    #[arg(long)]
    no_exports: bool,
    /// Do not install, enable, start or reload bramble.service (run `bramble serve` yourself)
    #[arg(long)]
    no_service: bool,
    /// Install the exports, the service and its account into this system root instead of /
    /// (an image, a test); nothing is started. DEST must be inside it
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Replace every client's own root with the build's: their files and SSH host keys are lost
    #[arg(long, conflicts_with = "reset_client")]
    reset: bool,
    /// Replace this client's own root with the build's (repeatable); others keep theirs
    #[arg(long, value_name = "NAME")]
    reset_client: Vec<String>,
}

pub fn run(args: Args) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("deploy unpacks the client roots with their owners: run it as root (sudo bramble deploy …)");
    }
    let reset = match (args.reset, args.reset_client.is_empty()) {
        (true, _) => Reset::All,
        (false, false) => Reset::Clients(args.reset_client),
        (false, true) => Reset::None,
    };
    let deploy = Deploy {
        lab: args.lab,
        dest: args.dest,
        root: args.root,
        exports: (!args.no_exports).then_some(args.exports),
        service: !args.no_service,
        reset,
    };
    deploy.run(&mut std::io::stdout().lock())
}
