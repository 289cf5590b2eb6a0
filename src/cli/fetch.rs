//! `bramble fetch` and `bramble cache list|gc`.

use super::validate::read_recipe;
use crate::fetch::cache::{self, Cache};
use crate::fetch::download::{Downloader, Mirror};
use crate::fetch::lock::{self, Lock, SharedLock};
use crate::fetch::resolve::{self, Status};
use crate::recipe;
use crate::source::catalog::OS_LIST_URL;
use crate::source::inputs;
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct CacheArg {
    /// The download cache [default: $BRAMBLE_CACHE, else $XDG_CACHE_HOME/bramble, else ~/.cache/bramble]
    #[arg(long, value_name = "DIR", global = true)]
    cache: Option<PathBuf>,
}

impl CacheArg {
    pub fn open(&self) -> Result<Cache> {
        Cache::open(&self.cache.clone().unwrap_or_else(cache::default_root))
    }
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "The lock is <recipe>.lock beside the recipe (lab.toml: lab.lock; ./bramble.lock for the built-in one).\n\
    Examples:\n  bramble fetch recipes/lab.toml\n  bramble fetch lab.toml --locked --offline\n  \
    bramble fetch lab.toml --mirror https://downloads.raspberrypi.com=http://mirror.lab/rpi"
)]
pub struct FetchArgs {
    /// The recipe; without one, the built-in default recipe
    recipe: Option<PathBuf>,
    #[command(flatten)]
    inputs: InputArgs,
}

/// How inputs are pinned and fetched; `fetch` and `build` share these.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// The lock file to read and write [default: <recipe>.lock beside the recipe]
    #[arg(long, value_name = "FILE")]
    lock: Option<PathBuf>,
    /// Fail rather than change the lock
    #[arg(long)]
    locked: bool,
    /// Use the cache alone; list what is missing
    #[arg(long)]
    offline: bool,
    /// Resolve catalog names again, to the newest release
    #[arg(long, conflicts_with_all = ["locked", "offline"])]
    update: bool,
    /// Rewrite a base URL: FROM=TO (repeatable), for a local mirror
    #[arg(long, value_name = "FROM=TO")]
    mirror: Vec<Mirror>,
    /// Where Raspberry Pi's OS list is
    #[arg(long, value_name = "URL", default_value = OS_LIST_URL)]
    os_list: String,
    #[command(flatten)]
    cache: CacheArg,
}

#[derive(clap::Subcommand, Debug)]
pub enum CacheCommand {
    /// List cached files and the locks that use them
    List(CacheArg),
    /// Remove cached files that no lock uses any more
    Gc {
        /// Show what would be removed, remove nothing
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        cache: CacheArg,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub fn fetch(args: FetchArgs, quiet: bool) -> Result<()> {
    let (name, text) = read_recipe(args.recipe.as_ref())?;
    let parsed = recipe::parse(&text);
    let Some(recipe) = parsed.recipe else {
        bail!("{name} has errors; run `bramble validate {name}` to see them");
    };
    let fetched = fetch_inputs(&recipe, args.recipe.as_deref(), &args.inputs, quiet)?;
    let outcome = &fetched.outcome;
    let mut out = std::io::stdout().lock();
    for f in &outcome.files {
        let status = match f.status {
            Status::Cached => "cached",
            Status::Downloaded => "downloaded",
        };
        let date = f.input.release_date.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
        let file = f.input.url.rsplit('/').next().unwrap_or(&f.input.url);
        writeln!(out, "{:<14} {:>10}  {status:<10} {file}{date}", f.input.name, mib(f.input.size))?;
    }
    if outcome.changed {
        writeln!(out, "wrote {}", fetched.lock_path.display())?;
    } else {
        writeln!(out, "{} is up to date", fetched.lock_path.display())?;
    }
    Ok(())
}

impl InputArgs {
    pub fn mirrors(&self) -> Vec<Mirror> {
        self.mirror.clone()
    }
    pub fn offline(&self) -> bool {
        self.offline
    }
    pub fn locked(&self) -> bool {
        self.locked
    }
}

/// A recipe's inputs, pinned in its lock and present in the cache.
pub struct FetchedInputs {
    pub outcome: resolve::Outcome,
    pub lock_path: PathBuf,
    pub cache: Cache,
}

/// Resolve, pin and download every input `recipe` needs (`recipe_path`: its file, if any),
/// writing the lock when it changed.
pub fn fetch_inputs(
    recipe: &recipe::Recipe,
    recipe_path: Option<&std::path::Path>,
    args: &InputArgs,
    quiet: bool,
) -> Result<FetchedInputs> {
    let recipe_file = recipe_path.and_then(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned());
    let lock_path = match &args.lock {
        Some(p) => p.clone(),
        None => {
            let own = lock::path_for(recipe_path);
            if let Some(file) = &recipe_file {
                match lock::adopt_shared(&own, file)? {
                    SharedLock::Absent => {}
                    SharedLock::Adopted { from, to } => tracing::info!(
                        "note: renamed {} to {}: each recipe keeps its own lock now",
                        from.display(),
                        to.display()
                    ),
                    SharedLock::Other { path, recipe } => tracing::info!(
                        "note: {} is the lock of {}, not of {file}; left as it is. {file}'s pins go in {}",
                        path.display(),
                        recipe.as_deref().map(|r| format!("`{r}`")).unwrap_or_else(|| "the built-in recipe".into()),
                        own.display()
                    ),
                }
            }
            own
        }
    };
    let existing = Lock::load(&lock_path)?;
    if let (Some(lock), Some(file)) = (&existing, &recipe_file)
        && lock.recipe.as_ref().is_some_and(|r| r != file)
    {
        tracing::warn!(
            "{} was written for {}; it will now pin {file} (without --lock, each recipe has its own <recipe>.lock)",
            lock_path.display(),
            lock.recipe.as_deref().unwrap_or("?")
        );
    }
    let cache = args.cache.open()?;
    let options = resolve::Options {
        locked: args.locked,
        offline: args.offline,
        update: args.update,
        os_list: args.os_list.clone(),
    };
    let wanted = inputs::inputs(recipe);
    let downloader = Downloader::new(args.mirror.clone(), quiet)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcome =
        runtime.block_on(resolve::fetch_all(&wanted, existing.as_ref(), recipe_file, &cache, &downloader, &options))?;
    for f in outcome.files.iter().filter(|f| f.status == Status::Downloaded) {
        verify_extracted(f, quiet)?;
    }
    if outcome.changed {
        crate::output::write_file(&lock_path, outcome.lock.to_text().as_bytes())?;
    }
    cache.register_lock(&lock_path)?;
    Ok(FetchedInputs { outcome, lock_path, cache })
}

/// A freshly downloaded OS image whose uncompressed sha256 the OS list publishes is checked
/// once, end to end: the download hash covers the transfer, this covers what gets built from.
/// A mismatch takes the file out of the cache again.
fn verify_extracted(f: &resolve::Fetched, quiet: bool) -> Result<()> {
    let Some(expected) = f.input.extract_sha256.as_deref().filter(|_| f.input.name == inputs::OS) else {
        return Ok(());
    };
    let checked = (|| {
        let image = crate::source::os_image::OsImage::open(&f.path)?;
        let file = f.input.url.rsplit('/').next().unwrap_or(&f.input.url);
        let mut progress =
            crate::fetch::progress::Progress::start_with("verifying", file, Some(image.disk.len()), 0, quiet);
        let (sha, _) = image.sha256(&mut progress)?;
        progress.finish();
        anyhow::ensure!(
            sha.eq_ignore_ascii_case(expected),
            "the uncompressed image's sha256 is {sha}, but the OS list says {expected}"
        );
        Ok(())
    })();
    checked.map_err(|e| {
        let _ = std::fs::remove_file(&f.path);
        e.context(format!("{} ({}) failed verification and was removed from the cache", f.input.name, f.input.url))
    })
}

pub fn cache_command(command: CacheCommand) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match command {
        CacheCommand::List(arg) => {
            let cache = arg.open()?;
            let refs = cache.references();
            let entries = cache.entries()?;
            writeln!(
                out,
                "{} ({} files, {})",
                cache.root().display(),
                entries.len(),
                mib(entries.iter().map(|e| e.size).sum())
            )?;
            for e in entries {
                let users = match refs.get(&e.sha256) {
                    Some(list) => list
                        .iter()
                        .map(|(lock, name)| format!("{name} in {}", lock.display()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    None => "unused: `bramble cache gc` removes it".into(),
                };
                writeln!(out, "{}  {:>10}  {users}", &e.sha256[..16], mib(e.size))?;
            }
        }
        CacheCommand::Gc { dry_run, cache } => {
            let cache = cache.open()?;
            let removed = cache.gc(dry_run).context("cleaning the cache")?;
            let verb = if dry_run { "would remove" } else { "removed" };
            for e in &removed {
                writeln!(out, "{verb} {} ({})", e.path.display(), mib(e.size))?;
            }
            writeln!(out, "{verb} {} file(s), {}", removed.len(), mib(removed.iter().map(|e| e.size).sum()))?;
        }
    }
    Ok(())
}
