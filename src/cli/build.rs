//! `bramble build`: fetch the recipe's inputs, read them, plan the lab, write it.

use super::fetch::{FetchedInputs, InputArgs, fetch_inputs};
use super::validate::read_recipe;
use crate::fetch::resolve::Fetched;
use crate::lab::emit::{EmitOptions, emit};
use crate::lab::plan::{Inputs, OsInput, Plan, plan};
use crate::lab::{eeprom, pi_boot};
use crate::recipe::{self, FileRef, OsSource, Recipe};
use crate::source::debian_root::{self, DebianRootSpec};
use crate::source::inputs;
use crate::source::os_image::OsImage;
use crate::tree::{Content, HostFile, Timestamp, tar_reader};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  bramble build recipes/lab.toml -o out\n  \
    bramble build recipes/lab.toml -o out --dry-run\n  bramble build -o out   (the built-in default lab)")]
pub struct Args {
    /// The recipe; without one, the built-in default recipe
    recipe: Option<PathBuf>,
    /// Where to write: OUT/lab/ and OUT/manifest.json
    #[arg(short, long, value_name = "OUT", default_value = "out")]
    out: PathBuf,
    /// Print what would be built, write nothing (inputs are still fetched)
    #[arg(long)]
    dry_run: bool,
    /// Unpack the client roots as folders with their owners (needs root) instead of root.tar
    #[arg(long)]
    unpack: bool,
    /// Timestamp of the bootloader updates: Unix seconds or `now` [default: the build's
    /// SOURCE_DATE_EPOCH]. A Pi applies a network update only if it is newer than its own.
    #[arg(long, value_name = "SECONDS|now")]
    eeprom_timestamp: Option<String>,
    /// Also write the flashable server image: OUT/server.img(.xz, .bmap, .sha256), server.json
    #[arg(long)]
    server_image: bool,
    /// The bramble binary for aarch64 that goes into the server image [default: what `just
    /// cross` builds, target/cross/aarch64-unknown-linux-gnu/release/bramble]
    #[arg(long, value_name = "FILE", requires = "server_image")]
    daemon: Option<PathBuf>,
    /// The server image's partition table: `mbr` (every Pi) or `gpt` (Pi 4 and 5 only)
    #[arg(long, value_enum, default_value_t = TableArg::Mbr, requires = "server_image")]
    table: TableArg,
    /// Leave out server.img.xz (most of the image's build time): for flashing server.img with
    /// bmaptool or dd; server.json then names server.img
    #[arg(long, requires = "server_image")]
    no_xz: bool,
    #[command(flatten)]
    inputs: InputArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum TableArg {
    Mbr,
    Gpt,
}

/// Where `just cross` puts the aarch64 daemon.
const CROSS_DAEMON: &str = "target/cross/aarch64-unknown-linux-gnu/release/bramble";

/// Every timestamp of the build: SOURCE_DATE_EPOCH, else the recipe's, else the OS release date,
/// else a fixed date (so the same inputs always give the same bytes).
fn build_epoch(recipe: &Recipe, os: Option<&Fetched>) -> Result<u32> {
    if let Some(v) = std::env::var_os("SOURCE_DATE_EPOCH") {
        let text = v.to_string_lossy();
        return text.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={text} is not Unix seconds"));
    }
    if let Some(t) = recipe.lab.source_date_epoch {
        return Ok(t);
    }
    if let Some(date) = os.and_then(|f| f.input.release_date.as_deref()) {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        if let Ok(d) = time::Date::parse(date, &format) {
            return Ok(d.midnight().assume_utc().unix_timestamp() as u32);
        }
    }
    // 2026-01-01: any fixed value keeps builds reproducible; FAT needs one after 1980.
    Ok(1_767_225_600)
}

fn find<'a>(fetched: &'a FetchedInputs, name: &str) -> Option<&'a Fetched> {
    fetched.outcome.files.iter().find(|f| f.input.name == name)
}

/// The OS's boot folder and root, read from its image or built by mmdebstrap.
fn load_os(recipe: &Recipe, fetched: &FetchedInputs, epoch: u32, quiet: bool) -> Result<OsInput> {
    match &recipe.os {
        OsSource::Debian(d) => {
            let spec = DebianRootSpec::new(
                &recipe.debian.mirror,
                &recipe.debian.suite,
                &recipe.debian.components,
                &d.packages,
                epoch,
            );
            let mut progress =
                crate::fetch::progress::Progress::steps("building", &format!("the Debian {} root", spec.suite), quiet);
            let tar = debian_root::build(&spec, fetched.cache.root(), &mut |line| progress.message(line))?;
            progress.finish();
            let root = tar_reader::read_tar_file(&tar)
                .with_context(|| format!("reading the Debian root {}", tar.display()))?;
            let boot = pi_boot::debian_boot_tree(&root)?;
            Ok(OsInput { id: format!("debian-{}-arm64", spec.suite), boot, root })
        }
        OsSource::Catalog(_) | OsSource::Url(_) => {
            let f = find(fetched, inputs::OS).context("the OS image was not fetched")?;
            let image = OsImage::open(&f.path)?;
            let volumes = image.volumes();
            let fat = volumes.iter().find(|v| v.filesystem == crate::disk::partition::Filesystem::Fat);
            let ext4 = volumes.iter().find(|v| v.filesystem == crate::disk::partition::Filesystem::Ext4);
            let (Some(fat), Some(ext4)) = (fat, ext4) else {
                bail!("{} has no FAT boot partition and ext4 root: is it a Raspberry Pi OS image?", f.input.url);
            };
            let boot = image.tree(fat)?;
            let root = image.tree(ext4)?;
            if let Some(arch) = crate::source::root_arch::architecture(&root).filter(|a| a != "arm64") {
                bail!("{}", foreign_root(&f.input.url, &arch));
            }
            let id = match (&recipe.os, f.input.release_date.as_deref()) {
                (OsSource::Catalog(name), Some(date)) => format!("{name}-{date}"),
                (OsSource::Catalog(name), None) => name.clone(),
                _ => format!("os-{}", &f.input.sha256[..12]),
            };
            Ok(OsInput { id, boot, root })
        }
    }
}

/// `[firmware]`'s GPU firmware over the OS's boot folder; the step line that says what changed.
fn lay_firmware(boot: &mut crate::tree::Tree, fetched: &FetchedInputs, url: &str) -> Result<String> {
    let f = find(fetched, inputs::FIRMWARE).context("the [firmware] archive was not fetched")?;
    let what = format!("the [firmware] archive {url}");
    let file =
        std::fs::File::open(&f.path).with_context(|| format!("cannot read {} (the cached {url})", f.path.display()))?;
    let files = crate::source::firmware::gpu_firmware(std::io::BufReader::new(file), &what)?;
    let (replaced, added) = pi_boot::lay_firmware(boot, &files);
    let mut step = format!("firmware: {} from {url}", replaced.join(", "));
    if replaced.is_empty() {
        step = format!("firmware: nothing the OS has is replaced from {url}");
    }
    if !added.is_empty() {
        step.push_str(&format!("; added {}", added.join(", ")));
    }
    Ok(step)
}

/// Why an OS image whose root is not arm64 cannot make a lab, and the 64-bit image to use.
fn foreign_root(url: &str, arch: &str) -> String {
    let file = url.rsplit('/').next().unwrap_or(url);
    let kind = if file.contains("lite") {
        "raspios-lite-arm64"
    } else if file.contains("full") {
        "raspios-full-arm64"
    } else {
        "raspios-arm64"
    };
    let what = if arch == "armhf" {
        "a 32-bit (armhf) Raspberry Pi OS image".to_string()
    } else {
        format!("built for {arch}")
    };
    format!(
        "{url} is {what}: Bramble builds 64-bit labs only (the server runs an aarch64 daemon and installs arm64 \
         packages); in [os], use catalog = \"{kind}\", or the url and sha256 of the arm64 image of this release"
    )
}

/// Files taken out of Debian packages, by package and path: each package is read once.
type DebFiles = std::collections::BTreeMap<(String, String), Content>;

fn extract_deb_files(recipe: &Recipe, fetched: &FetchedInputs) -> Result<DebFiles> {
    let mut wanted: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    if let Some(pc) = &recipe.pc {
        for f in crate::source::pc_loaders::needed_files(pc) {
            if let FileRef::Deb { package, path } = f {
                wanted.entry(package).or_default().push(path);
            }
        }
    }
    let mut out = DebFiles::new();
    for (package, paths) in wanted {
        let input = inputs::deb_input(&recipe.debian, &package, crate::source::pc_loaders::package_arch(&package));
        let got = find(fetched, &input.name).with_context(|| format!("package {package} was not fetched"))?;
        let deb = crate::source::deb_file::DebFile::open(&got.path)?;
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        for file in deb.extract(&refs).with_context(|| format!("taking files out of {package}"))? {
            out.insert((package.clone(), file.path.display().to_string()), Content::bytes(file.bytes));
        }
    }
    Ok(out)
}

/// The bytes of a lab file, wherever it comes from.
fn resolve_file(f: &FileRef, recipe_dir: &Path, fetched: &FetchedInputs, debs: &DebFiles) -> Result<Content> {
    match f {
        FileRef::Local(p) => {
            let path = recipe_dir.join(p);
            let len = std::fs::metadata(&path).with_context(|| format!("cannot read {}", path.display()))?.len();
            Ok(Content::new(Arc::new(HostFile { path, len })))
        }
        FileRef::Url(d) => {
            let got = fetched
                .outcome
                .files
                .iter()
                .find(|x| x.input.sha256 == d.sha256)
                .with_context(|| format!("{} was not fetched", d.url))?;
            let len = std::fs::metadata(&got.path)
                .with_context(|| format!("cannot read {} (the cached {})", got.path.display(), d.url))?
                .len();
            Ok(Content::new(Arc::new(HostFile { path: got.path.clone(), len })))
        }
        FileRef::Deb { package, path } => debs
            .get(&(package.clone(), path.clone()))
            .cloned()
            .with_context(|| format!("{path} was not taken out of package {package}")),
    }
}

/// For a Raspberry Pi OS server image: the NFS server packages its release lacks, resolved
/// against the image's dpkg status, pinned in the lock beside the recipe's other inputs.
fn server_debs(
    recipe: &Recipe,
    plan: &Plan,
    fetched: &FetchedInputs,
    args: &InputArgs,
    quiet: bool,
) -> Result<Vec<(String, Content)>> {
    let Some(os) = plan.os.as_ref() else { return Ok(Vec::new()) };
    let release = crate::lab::nfsroot::os_release(&os.root)?;
    if !release.raspios {
        return Ok(Vec::new());
    }
    let Some(os_input) = find(fetched, inputs::OS) else { return Ok(Vec::new()) };
    let status = crate::lab::tree_edit::read_bytes(&os.root, Path::new("var/lib/dpkg/status"))
        .context("the Raspberry Pi OS image has no /var/lib/dpkg/status")?;
    let dl = crate::fetch::download::Downloader::new(args.mirrors(), quiet)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let debs = runtime.block_on(crate::fetch::server_debs::pin(
        &fetched.outcome.lock.inputs,
        &os_input.input.sha256,
        &release.codename,
        &status,
        &recipe.debian,
        &fetched.cache,
        &dl,
        args.offline(),
        args.locked(),
    ))?;
    // Pin what was resolved now beside the recipe's other inputs.
    let mut lock = fetched.outcome.lock.clone();
    let before = lock.inputs.len();
    for d in &debs {
        if !lock.inputs.iter().any(|i| i.name == d.input.name && i.from == d.input.from) {
            lock.inputs.retain(|i| i.name != d.input.name);
            lock.inputs.push(d.input.clone());
        }
    }
    if lock.inputs.len() != before || lock != fetched.outcome.lock {
        crate::output::write_file(&fetched.lock_path, lock.to_text().as_bytes())?;
    }
    let mut out = Vec::new();
    for d in debs {
        let file = d.input.url.rsplit('/').next().unwrap_or(&d.input.name).to_string();
        let len = std::fs::metadata(&d.path)
            .with_context(|| format!("cannot read {} (the cached {})", d.path.display(), d.input.url))?
            .len();
        out.push((file, Content::new(Arc::new(HostFile { path: d.path, len }))));
    }
    Ok(out)
}

/// Pin the bootloader updates' new timestamps in the lock (not on a dry run). `--locked`
/// refuses to move a pinned one, as a Pi would then get another update than the lock says; a
/// chip the lock pins nothing for yet (a lock `bramble fetch` wrote) gets the build's epoch,
/// as a first pin would, without writing the lock.
fn pin_eeprom_stamps(fetched: &mut FetchedInputs, stamps: &[eeprom::Stamp], locked: bool, dry_run: bool) -> Result<()> {
    let lock = &mut fetched.outcome.lock;
    let pinned = |chip: u32| lock.eeprom.iter().find(|p| p.chip == chip);
    let moved: Vec<String> = stamps
        .iter()
        .filter_map(|s| pinned(s.chip).filter(|p| *p != s).map(|p| format!("{} from ts {} to {}", s.chip, p.ts, s.ts)))
        .collect();
    let new: Vec<String> =
        stamps.iter().filter(|s| pinned(s.chip).is_none()).map(|s| format!("{} at ts {}", s.chip, s.ts)).collect();
    if locked {
        if !moved.is_empty() {
            bail!(
                "the bootloader updates changed since the lock {} was written ({}); run without --locked to pin \
                 the new timestamps",
                fetched.lock_path.display(),
                moved.join(", ")
            );
        }
        if !new.is_empty() {
            tracing::info!(
                "bootloader updates: {} (not pinned in {} yet; run without --locked to pin)",
                new.join(", "),
                fetched.lock_path.display()
            );
        }
        return Ok(());
    }
    lock.eeprom = stamps.to_vec();
    if dry_run {
        return Ok(());
    }
    crate::output::write_file(&fetched.lock_path, lock.to_text().as_bytes())?;
    let told: Vec<String> = moved.into_iter().chain(new).collect();
    if !told.is_empty() {
        tracing::info!("bootloader updates: {}, pinned in {}", told.join(", "), fetched.lock_path.display());
    }
    Ok(())
}

fn epoch_arg(arg: &Option<String>, epoch: u32) -> Result<u32> {
    match arg.as_deref() {
        None => Ok(epoch),
        Some("now") => Ok(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as u32),
        Some(t) => t.parse().with_context(|| format!("--eeprom-timestamp {t}: give Unix seconds or `now`")),
    }
}

pub fn run(args: Args, quiet: bool) -> Result<()> {
    let (name, text) = read_recipe(args.recipe.as_ref())?;
    let parsed = recipe::parse(&text);
    let Some(recipe) = parsed.recipe else {
        bail!("{name} has errors; run `bramble validate {name}` to see them");
    };
    // The recipe's warnings, as validate shows them: a build that succeeds says what it lacks.
    let mut warnings: Vec<_> = parsed.diagnostics.into_iter().filter(|d| !d.is_error()).collect();
    if args.server_image
        && recipe.server.ssh_keys.is_empty()
        && !warnings.iter().any(|d| d.message.starts_with("nobody can log in"))
    {
        warnings.push(recipe::no_login(&recipe.server.user, None));
    }
    if !quiet && !warnings.is_empty() {
        super::to_stderr(&crate::diagnostic::render(&warnings, &text, &name, super::styled_stderr()));
    }
    let recipe_dir = match &args.recipe {
        Some(p) => p.parent().map(Path::to_path_buf).unwrap_or_default(),
        None => PathBuf::from("."),
    };
    let mut fetched = fetch_inputs(&recipe, args.recipe.as_deref(), &args.inputs, quiet)?;
    let epoch = build_epoch(&recipe, find(&fetched, inputs::OS))?;
    let mtime = Timestamp::from_secs(i64::from(epoch));
    let mut os =
        if recipe.needs_os() || args.server_image { Some(load_os(&recipe, &fetched, epoch, quiet)?) } else { None };
    let mut early_steps = Vec::new();
    if let (Some(os), Some(fw)) = (os.as_mut(), &recipe.firmware) {
        early_steps.push(lay_firmware(&mut os.boot, &fetched, &fw.url)?);
    }
    // The server image's daemon is checked before the long work, not after it.
    let daemon = if args.server_image {
        let path = args.daemon.clone().unwrap_or_else(|| PathBuf::from(CROSS_DAEMON));
        let len = std::fs::metadata(&path)
            .with_context(|| {
                format!(
                    "the server image needs bramble built for aarch64 at {}: run `just cross`, or give --daemon FILE",
                    path.display()
                )
            })?
            .len();
        let mut head = vec![0u8; 64];
        let mut file = std::fs::File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        std::io::Read::read_exact(&mut file, &mut head)
            .with_context(|| format!("{} is not a program", path.display()))?;
        crate::lab::server_root::check_aarch64(&head).with_context(|| path.display().to_string())?;
        Some(Content::new(Arc::new(HostFile { path, len })))
    } else {
        None
    };
    let mut releases = Vec::new();
    for chip in recipe.models().into_iter().filter_map(|m| m.eeprom_chip()) {
        let read = |kind: &str| -> Result<Vec<u8>> {
            let f = find(&fetched, &format!("{kind}-{}", chip.number()))
                .with_context(|| format!("{kind} for {chip} was not fetched"))?;
            std::fs::read(&f.path)
                .with_context(|| format!("cannot read {} (the cached {})", f.path.display(), f.input.url))
        };
        releases.push(eeprom::Release { chip, image: read("pieeprom")?, recovery: read("recovery")? });
    }
    let debs = extract_deb_files(&recipe, &fetched)?;
    let mut resolve = |f: &FileRef| resolve_file(f, &recipe_dir, &fetched, &debs);
    let pins = fetched.outcome.lock.eeprom.clone();
    let eeprom_ts = match &args.eeprom_timestamp {
        Some(_) => eeprom::Timestamps::Fixed(epoch_arg(&args.eeprom_timestamp, epoch)?),
        None => eeprom::Timestamps::Pinned { base: epoch, pins: &pins },
    };
    let plan: Plan = plan(Inputs {
        recipe: &recipe,
        recipe_name: &name,
        recipe_dir: &recipe_dir,
        os,
        eeprom: releases,
        eeprom_ts,
        mtime,
        resolve: &mut resolve,
    })?;
    if plan.eeprom_stamps != pins {
        pin_eeprom_stamps(&mut fetched, &plan.eeprom_stamps, args.inputs.locked(), args.dry_run)?;
    }
    let mut out = std::io::stdout().lock();
    for step in early_steps.iter().chain(&plan.steps) {
        writeln!(out, "  {step}")?;
    }
    if args.dry_run {
        writeln!(
            out,
            "dry run: would write {}/lab ({} entries, {} root(s)) and {}/manifest.json",
            args.out.display(),
            plan.lab.len(),
            plan.roots.len(),
            args.out.display()
        )?;
        for (p, n) in plan.lab.iter() {
            if let crate::tree::Kind::File(c) = &n.kind {
                writeln!(out, "    lab/{:<60} {:>10}", p.display(), c.len())?;
            }
        }
        for (p, t) in &plan.roots {
            writeln!(out, "    lab/{:<60} {:>10} entries", p.display(), t.len())?;
        }
        return Ok(());
    }
    let emitted = emit(&plan, &args.out, &recipe.lab.name, &name, EmitOptions { unpack: args.unpack })?;
    if let Some(daemon) = daemon {
        let debs = server_debs(&recipe, &plan, &fetched, &args.inputs, quiet)?;
        let overlays: Vec<PathBuf> = recipe.lab.overlays.iter().map(|o| recipe_dir.join(o)).collect();
        let table = match args.table {
            TableArg::Mbr => crate::lab::server_image::Table::Mbr,
            TableArg::Gpt => crate::lab::server_image::Table::Gpt,
        };
        let parts = crate::lab::server_image::assemble(&plan, &recipe, daemon, &overlays, table, mtime, debs)?;
        for step in &parts.steps {
            writeln!(out, "  {step}")?;
        }
        let files =
            crate::lab::emit_image::write(&parts, &args.out, &recipe.lab.name, i64::from(epoch), !args.no_xz, quiet)?;
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let xz = match &files.xz {
            Some((path, size)) => format!(", {} ({:.0} MiB)", path.display(), mib(*size)),
            None => String::new(),
        };
        writeln!(
            out,
            "wrote {} ({:.0} MiB){xz}, {}, {}",
            files.img.display(),
            mib(files.img_size),
            files.bmap.display(),
            files.json.display()
        )?;
        let flash = files.xz.as_ref().map_or(&files.img, |(path, _)| path);
        writeln!(
            out,
            "next: flash {} to the server's SD card (Raspberry Pi Imager: \"Use custom\"; or `bmaptool copy {} /dev/sdX`), boot it on the lab network",
            flash.display(),
            flash.display()
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "wrote {} ({} files, {:.1} MiB) and {}",
        emitted.lab.display(),
        emitted.files,
        emitted.bytes as f64 / (1 << 20) as f64,
        emitted.manifest.display()
    )?;
    writeln!(
        out,
        "next: on the lab server, `sudo bramble deploy {} /srv/bramble`, then `bramble serve --config /srv/bramble/daemon.toml`",
        emitted.lab.display()
    )?;
    Ok(())
}
