//! The `bramble` command line: argument definitions (clap), logging set-up, and the mapping of
//! outcomes to exit codes: 0 success, 1 a problem with the user's input (the message names the
//! file and the fix), 2 a usage error (clap's own).
//!
//! Holds no logic of its own beyond reading and writing files for the library modules.

mod build;
mod deploy;
mod eeprom;
mod fetch;
mod image;
mod logging;
mod serve;
mod validate;

use clap::{ArgAction, Parser, Subcommand};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "bramble",
    version,
    about = "Build and network-boot Raspberry Pi labs",
    long_about = "Build and network-boot Raspberry Pi labs.\n\n\
        A recipe (TOML) describes the lab: its server, its Pi clients, the OS they boot and \
        their bootloader settings. See recipes/README.md for every key.",
    propagate_version = true
)]
struct Cli {
    /// More detail on stderr (-v: debug, -vv: trace)
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check a recipe and report every problem at once (no argument: the built-in default recipe)
    Validate(validate::Args),
    /// Read and rewrite the Raspberry Pi bootloader EEPROM (pieeprom.bin) and make update cards
    #[command(subcommand)]
    Eeprom(eeprom::Command),
    /// Download and pin every input of a lab (OS image, bootloader, firmware) into the cache
    Fetch(fetch::FetchArgs),
    /// Look after the download cache
    #[command(subcommand)]
    Cache(fetch::CacheCommand),
    /// Show an OS image's partitions, filesystems, folders and files, without mounting it
    Inspect(image::InspectArgs),
    /// Write a filesystem (or a folder) of an OS image out as a tar or a folder
    Extract(image::ExtractArgs),
    /// Build the lab: client roots, boot files, PC menus, bootloader updates, daemon config
    Build(build::Args),
    /// Put a built lab in place on the server (as root): unpack the roots, keep the clients' own,
    /// install the exports and the daemon's service
    Deploy(deploy::Args),
    /// Run the boot daemon: DHCP or proxyDHCP, TFTP and HTTP for Pi and PC clients
    Serve(serve::Args),
}

/// A failure whose details were already shown (rendered diagnostics); this is the summary line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Reported(String);

/// Whether stderr gets colours: a terminal, and NO_COLOR unset.
pub(crate) fn styled_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Diagnostics and summaries for a person; a closed stderr is not worth failing over.
pub(crate) fn to_stderr(text: &str) {
    use std::io::Write;
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// `bramble … | head` closes stdout early; that ends the command, it is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Run the command line and return the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet, matches!(cli.command, Command::Serve(_)));
    let quiet = cli.quiet;
    let result = match cli.command {
        Command::Validate(args) => validate::run(args, quiet),
        Command::Eeprom(command) => eeprom::run(command, quiet),
        Command::Serve(args) => serve::run(args),
        Command::Fetch(args) => fetch::fetch(args, quiet),
        Command::Inspect(args) => image::inspect(args, quiet),
        Command::Extract(args) => image::extract(args),
        Command::Cache(command) => fetch::cache_command(command),
        Command::Build(args) => build::run(args, quiet),
        Command::Deploy(args) => deploy::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            to_stderr(&format!("error: {e:#}\n"));
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
