//! `bramble eeprom show|set|sign|card`: file handling around the pure `eeprom` module.

use super::{Reported, styled_stderr, to_stderr};
use crate::diagnostic::{Diagnostic, render, summary};
use crate::eeprom::card;
use crate::eeprom::image::{MAX_BOOTCONF_LEN, SectionKind};
use crate::eeprom::{Chip, EepromImage, bootconf, sig};
use crate::output;
use anyhow::{Context, Result, bail};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use time::macros::format_description;

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Show an image: chip, build, boot order, the embedded bootconf.txt
    Show(ShowArgs),
    /// Write a copy of an image with a new or edited bootconf.txt
    #[command(after_help = "Examples:\n  \
        bramble eeprom set pieeprom.bin --out netboot.bin BOOT_ORDER=0xf21\n  \
        bramble eeprom set pieeprom.bin --out custom.bin --config bootconf.txt")]
    Set(SetArgs),
    /// Write the .sig file (sha256, ts, target-soc) that goes beside an update image
    Sign(SignArgs),
    /// Make an SD-card image that flashes a Pi's bootloader (or write the same files to a folder)
    #[command(after_help = "Flash the card, put it in the Pi and power on: recovery.bin flashes the \
        bootloader, renames itself to recovery.000 and reboots (Pi 4: green LED blinks fast \
        when done; HDMI shows the result). Remove the card to boot from the network.")]
    Card(CardArgs),
}

#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The EEPROM image (pieeprom.bin, 512 KiB for Pi 4 or 2 MiB for Pi 5)
    image: PathBuf,
    /// Also list every section of the image
    #[arg(long)]
    sections: bool,
    /// Print only bootconf.txt, byte for byte (like `rpi-eeprom-config IMAGE`)
    #[arg(long, conflicts_with = "sections")]
    config_only: bool,
}

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    /// Replace bootconf.txt with this file (KEY=VALUE edits then apply on top)
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Set a bootloader property: replace its line, or append it
    #[arg(value_name = "KEY=VALUE", value_parser = parse_setting)]
    settings: Vec<(String, String)>,
}

#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// The EEPROM image to start from
    image: PathBuf,
    /// Where to write the new image (may be IMAGE itself)
    #[arg(short, long, value_name = "OUT")]
    out: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
    /// Also set the image's update timestamp (Unix seconds), as rpi-eeprom-update does
    #[arg(long, value_name = "T")]
    timestamp: Option<u32>,
}

#[derive(clap::Args, Debug)]
pub struct SignArgs {
    /// The image to sign (usually the output of `eeprom set`)
    image: PathBuf,
    /// Where to write the .sig file
    #[arg(short, long, value_name = "SIG")]
    out: PathBuf,
    /// The `ts:` line (Unix seconds); default SOURCE_DATE_EPOCH, else now
    #[arg(long, value_name = "T")]
    timestamp: Option<u32>,
}

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("target").required(true).multiple(true).args(["out", "dir"]))]
pub struct CardArgs {
    /// The bootloader image to flash (pieeprom-*.bin from rpi-eeprom's firmware-2711 or -2712)
    #[arg(long, value_name = "PIEEPROM.BIN")]
    image: PathBuf,
    /// recovery.bin for the same chip [default: recovery.bin beside the image]
    #[arg(long, value_name = "FILE")]
    recovery: Option<PathBuf>,
    /// BOOT_ORDER to write [default: 0xf21, SD then network, unless the config sets one]
    #[arg(long, value_name = "HEX")]
    boot_order: Option<String>,
    #[command(flatten)]
    config: ConfigArgs,
    /// Update timestamp and `ts:` (Unix seconds); default SOURCE_DATE_EPOCH, else now
    #[arg(long, value_name = "T")]
    timestamp: Option<u32>,
    /// Write the SD-card image here
    #[arg(short, long, value_name = "CARD.IMG")]
    out: Option<PathBuf>,
    /// Write recovery.bin, pieeprom.upd and pieeprom.sig into this folder
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn parse_setting(arg: &str) -> Result<(String, String), String> {
    let (key, value) = arg.split_once('=').ok_or_else(|| format!("`{arg}` is not KEY=VALUE"))?;
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!("`{key}` is not a property name (letters, digits, _)"));
    }
    if value.contains(['\n', '\r']) {
        return Err(format!("the value of {key} spans several lines"));
    }
    Ok((key.to_string(), value.to_string()))
}

pub fn run(command: Command, quiet: bool) -> Result<()> {
    match command {
        Command::Show(args) => show(args),
        Command::Set(args) => set(args, quiet),
        Command::Sign(args) => sign(args, quiet),
        Command::Card(args) => make_card(args, quiet),
    }
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

fn parse_image<'a>(path: &Path, bytes: &'a [u8]) -> Result<EepromImage<'a>> {
    EepromImage::parse(bytes).with_context(|| format!("{} is not a usable bootloader EEPROM image", path.display()))
}

fn date(unix: u64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| "?".into())
}

fn show(args: ShowArgs) -> Result<()> {
    let bytes = read(&args.image, "EEPROM image")?;
    let image = parse_image(&args.image, &bytes)?;
    let config = image.bootconf().with_context(|| format!("{}", args.image.display()))?;
    if args.config_only {
        std::io::stdout().write_all(config)?;
        return Ok(());
    }
    let chip = image.chip();
    let mut out = String::new();
    let info = image.build_info();
    let text = String::from_utf8_lossy(config);
    writeln!(out, "{}", args.image.display())?;
    writeln!(out, "  chip        {chip} ({}), {} bytes", chip.boards(), image.len())?;
    let build = info.timestamp.map_or("unknown".into(), |t| format!("{} (BUILD_TIMESTAMP={t})", date(t)));
    writeln!(out, "  build       {build}, version {}", info.version.as_deref().unwrap_or("unknown"))?;
    match image.update_timestamp() {
        Some(ts) => writeln!(out, "  updated     {} (update timestamp {ts})", date(u64::from(ts)))?,
        None => writeln!(out, "  updated     no update timestamp set")?,
    }
    writeln!(out, "  A/B         {}", if image.is_ab_capable() { "yes (partitions A and B)" } else { "no" })?;
    let capacity = image.bootconf_capacity().map_or("read-only".into(), |c| format!("{c}"));
    let offset = image.file_section("bootconf.txt").map_or(0, |s| s.offset);
    writeln!(out, "  bootconf    {} of {capacity} bytes, at {offset:#x}", config.len())?;
    let (order, note) = match bootconf::effective(&text, "BOOT_ORDER").filter(|v| !v.is_empty()) {
        Some(v) => (v.to_string(), ""),
        None => (bootconf::DEFAULT_BOOT_ORDER.to_string(), " (not set: the bootloader's default)"),
    };
    let modes = bootconf::describe_boot_order(&order).unwrap_or_else(|why| format!("invalid: {why}"));
    writeln!(out, "  BOOT_ORDER  {order}{note}: {modes}")?;
    if args.sections {
        writeln!(out, "\nsections:\n  {:<10} {:<10} {:>8}  kind", "offset", "magic", "length")?;
        for s in image.sections() {
            let kind = match &s.kind {
                SectionKind::Bootcode => "bootcode".to_string(),
                SectionKind::File(name) => format!("file {name}"),
                SectionKind::Padding => "padding".to_string(),
                SectionKind::Opaque => "code/data".to_string(),
            };
            writeln!(out, "  {:#010x} {:#010x} {:>8}  {kind}", s.offset, s.magic, s.length)?;
        }
    }
    writeln!(out, "\nbootconf.txt:\n{}", text.trim_end_matches('\n'))?;
    std::io::stdout().write_all(out.as_bytes())?;
    Ok(())
}

/// Render diagnostics; fail if any is an error.
fn report(diagnostics: &[Diagnostic], source: &str, name: &str, quiet: bool) -> Result<()> {
    let shown: Vec<Diagnostic> = diagnostics.iter().filter(|d| !quiet || d.is_error()).cloned().collect();
    to_stderr(&render(&shown, source, name, styled_stderr()));
    if diagnostics.iter().any(Diagnostic::is_error) {
        return Err(Reported(format!(
            "{name}: {} in the bootloader configuration; nothing was written",
            summary(diagnostics)
        ))
        .into());
    }
    Ok(())
}

/// The new bootconf.txt: `--config` or the image's own, then `first` and the KEY=VALUE edits;
/// every input checked. `default_order` is set when neither the file nor the edits set one.
fn new_config(
    image: &EepromImage,
    args: &ConfigArgs,
    first: &[(String, String)],
    default_order: Option<&str>,
    quiet: bool,
) -> Result<String> {
    let chip = Some(image.chip());
    let replacement = match &args.config {
        Some(path) => {
            let bytes = read(path, "bootloader config")?;
            let text = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!("{} is not text (UTF-8); a bootconf.txt is plain ASCII", path.display())
            })?;
            report(&bootconf::check(&text, chip), &text, &path.display().to_string(), quiet)?;
            Some(text)
        }
        None => None,
    };
    let mut edits: Vec<(String, String)> = first.iter().chain(&args.settings).cloned().collect();
    let given_order = edits.iter().any(|(k, _)| k == "BOOT_ORDER")
        || replacement.as_deref().is_some_and(|t| bootconf::effective(t, "BOOT_ORDER").is_some());
    if let (Some(order), false) = (default_order, given_order) {
        edits.insert(0, ("BOOT_ORDER".into(), order.into()));
    }
    let diagnostics: Vec<Diagnostic> =
        edits.iter().flat_map(|(key, value)| bootconf::check_setting(key, value, chip)).collect();
    report(&diagnostics, "", "argument", quiet)?;
    let current = match (&replacement, edits.is_empty()) {
        (Some(_), _) | (None, true) => String::new(),
        (None, false) => String::from_utf8(image.bootconf()?.to_vec())
            .map_err(|_| anyhow::anyhow!("the image's bootconf.txt is not text; replace it with --config"))?,
    };
    Ok(card::edited_config(&current, replacement.as_deref(), &edits))
}

fn set(args: SetArgs, quiet: bool) -> Result<()> {
    let bytes = read(&args.image, "EEPROM image")?;
    let image = parse_image(&args.image, &bytes)?;
    let config = if args.config.config.is_none() && args.config.settings.is_empty() {
        image.bootconf()?.to_vec()
    } else {
        new_config(&image, &args.config, &[], None, quiet)?.into_bytes()
    };
    let mut out = image
        .with_bootconf(&config)
        .with_context(|| format!("{}: cannot store the new bootconf.txt", args.image.display()))?;
    if let Some(ts) = args.timestamp {
        out = EepromImage::parse(&out)?.with_update_timestamp(ts)?;
    }
    output::write_file(&args.out, &out)?;
    let order = bootconf::effective(std::str::from_utf8(&config).unwrap_or(""), "BOOT_ORDER")
        .unwrap_or(bootconf::DEFAULT_BOOT_ORDER);
    tracing::info!(
        "wrote {}: bootconf.txt {} of {MAX_BOOTCONF_LEN} bytes, BOOT_ORDER={order} ({})",
        args.out.display(),
        config.len(),
        bootconf::describe_boot_order(order).unwrap_or_default()
    );
    Ok(())
}

/// `--timestamp`, else SOURCE_DATE_EPOCH, else now.
fn timestamp(given: Option<u32>) -> Result<u32> {
    if let Some(t) = given {
        return Ok(t);
    }
    if let Some(value) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let text = value.to_string_lossy();
        return text.trim().parse().map_err(|_| {
            anyhow::anyhow!("SOURCE_DATE_EPOCH=`{text}` is not Unix seconds that fit in 32 bits; fix or unset it")
        });
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    u32::try_from(now).context("the system clock is past 2106")
}

/// Self-update skips an image whose `ts` is not newer than the EEPROM's (research §3.8).
fn warn_if_stale(image: &EepromImage, ts: u32) {
    if let Some(built) = image.build_info().timestamp.filter(|&b| u64::from(ts) < b) {
        tracing::warn!(
            "timestamp {ts} ({}) is older than this bootloader's build ({}); a Pi's self-update skips \
             an update whose ts is not newer than the one it has",
            date(u64::from(ts)),
            date(built)
        );
    }
}

fn sign(args: SignArgs, _quiet: bool) -> Result<()> {
    let bytes = read(&args.image, "EEPROM image")?;
    let image = parse_image(&args.image, &bytes)?;
    let ts = timestamp(args.timestamp)?;
    warn_if_stale(&image, ts);
    output::write_file(&args.out, sig::digest_file(&bytes, u64::from(ts), image.chip()).as_bytes())?;
    tracing::info!("wrote {} (ts {ts}, target-soc {})", args.out.display(), image.chip().number());
    Ok(())
}

fn recovery_bin(args: &CardArgs, chip: Chip) -> Result<Vec<u8>> {
    let path = match &args.recovery {
        Some(p) => p.clone(),
        None => args.image.parent().unwrap_or(Path::new(".")).join("recovery.bin"),
    };
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "cannot read {}: the card needs recovery.bin for {chip}; pass --recovery FILE (it ships \
             beside the pieeprom images in rpi-eeprom's firmware-{} folders)",
            path.display(),
            chip.number()
        )
    })?;
    if bytes.is_empty() || EepromImage::parse(&bytes).is_ok() || bytes.starts_with(&0x55AA_F00Fu32.to_be_bytes()) {
        bail!("{} is not a recovery.bin (it is empty or an EEPROM image)", path.display());
    }
    Ok(bytes)
}

fn make_card(args: CardArgs, quiet: bool) -> Result<()> {
    let bytes = read(&args.image, "EEPROM image")?;
    let image = parse_image(&args.image, &bytes)?;
    let chip = image.chip();
    let recovery = recovery_bin(&args, chip)?;
    if args.boot_order.is_some() && args.config.settings.iter().any(|(k, _)| k == "BOOT_ORDER") {
        bail!("BOOT_ORDER is given twice (--boot-order and BOOT_ORDER=); keep one");
    }
    let explicit: Vec<(String, String)> = args.boot_order.iter().map(|o| ("BOOT_ORDER".into(), o.clone())).collect();
    let config = new_config(&image, &args.config, &explicit, Some(bootconf::NETWORK_BOOT_ORDER), quiet)?;
    let ts = timestamp(args.timestamp)?;
    warn_if_stale(&image, ts);
    let files = card::update_files(&image, config.as_bytes(), ts, recovery)
        .with_context(|| format!("{}: cannot store the new bootconf.txt", args.image.display()))?;
    if let Some(dir) = &args.dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for f in &files {
            output::write_file(&dir.join(f.name), &f.bytes)?;
        }
        tracing::info!("wrote {} (recovery.bin, pieeprom.upd, pieeprom.sig) for {chip}", dir.display());
    }
    if let Some(out) = &args.out {
        let disk = crate::lab::eeprom::card_image(&files, ts)?;
        output::write_sparse(out, &disk)?;
        let order = bootconf::effective(&config, "BOOT_ORDER").unwrap_or(bootconf::DEFAULT_BOOT_ORDER);
        tracing::info!(
            "wrote {} ({} MiB): bootloader update card for {chip} ({}), BOOT_ORDER={order} ({}), ts {ts}",
            out.display(),
            disk.len() >> 20,
            chip.boards(),
            bootconf::describe_boot_order(order).unwrap_or_default()
        );
        tracing::info!(
            "next: flash {} to an SD card (Raspberry Pi Imager: \"Use custom\", or dd), put it in the Pi and \
             power on; when the bootloader is updated, remove the card",
            out.display()
        );
    }
    Ok(())
}
