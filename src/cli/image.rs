//! `bramble inspect` and `bramble extract`: look inside an OS image without mounting it, and
//! write one of its filesystems (or a folder of one) out as a tar or a folder.

use crate::source::os_image::{OsImage, Storage, Volume};
use crate::tree::dir::{DirOptions, write_dir};
use crate::tree::tar::{TarOptions, write_tar};
use crate::tree::{Kind, Tree};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::{Path, PathBuf};
use time::OffsetDateTime;
use time::macros::format_description;

#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:\n  bramble inspect raspios.img.xz\n  bramble inspect raspios.img.xz rootfs:/etc\n  \
    bramble inspect raspios.img.xz 1:/config.txt --cat\n  bramble inspect raspios.img.xz --sha256")]
pub struct InspectArgs {
    /// A disk image (`.img` or `.img.xz`) or a bare FAT or ext4 filesystem image
    image: PathBuf,
    /// A partition (number or filesystem label) and a path in it: `rootfs:/etc`, `1:/config.txt`
    #[arg(value_name = "PART:PATH")]
    target: Option<String>,
    /// Print the file's bytes instead of listing it
    #[arg(long, requires = "target")]
    cat: bool,
    /// Print the sha256 of the whole uncompressed image (`xz -dc IMAGE | sha256sum`), checking
    /// every xz block on the way; with a value, fail unless it matches
    #[arg(long, value_name = "EXPECTED", num_args = 0..=1, default_missing_value = "", conflicts_with = "target")]
    sha256: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(group = clap::ArgGroup::new("to").required(true).args(["tar", "dir"]))]
#[command(after_help = "Modification times are clamped to SOURCE_DATE_EPOCH when it is set.\n\
    Examples:\n  bramble extract raspios.img.xz rootfs:/ --tar root.tar\n  bramble extract raspios.img.xz bootfs:/ --dir boot/")]
pub struct ExtractArgs {
    /// A disk image, `.img` or `.img.xz`
    image: PathBuf,
    /// A partition (number or label) and a folder in it: `rootfs:/`
    #[arg(value_name = "PART:PATH")]
    target: String,
    /// Write a tar archive (owners, modes, xattrs, links and devices kept without root); `-` is stdout
    #[arg(long, value_name = "FILE")]
    tar: Option<PathBuf>,
    /// Write a new folder (owners and devices only when run as root)
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `PART:PATH` → (partition spec, path relative to the filesystem root).
fn split_target(target: &str) -> Result<(&str, PathBuf)> {
    let (part, path) =
        target.split_once(':').with_context(|| format!("`{target}` is not PART:PATH (e.g. rootfs:/etc)"))?;
    let rel: PathBuf = Path::new(path).components().filter(|c| matches!(c, std::path::Component::Normal(_))).collect();
    Ok((part, rel))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn date(secs: i64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]");
    OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| secs.to_string())
}

pub fn inspect(args: InspectArgs, quiet: bool) -> Result<()> {
    let image = OsImage::open(&args.image)?;
    if let Some(expected) = &args.sha256 {
        return verify(&image, expected, quiet);
    }
    let mut out = Vec::new();
    match &args.target {
        None => summary(&image, &mut out)?,
        Some(target) => {
            let (part, path) = split_target(target)?;
            let volume = image.find(part)?;
            let tree = image.tree(&volume)?;
            let Some(node) = tree.get(&path) else {
                bail!("{target}: no such file or folder in partition {}", volume.partition.number);
            };
            if args.cat {
                match &node.kind {
                    Kind::File(content) => {
                        let mut stdout = std::io::stdout().lock();
                        std::io::copy(&mut content.open()?, &mut stdout)?;
                        return Ok(());
                    }
                    Kind::HardLink(first) => match tree.get(first).map(|n| &n.kind) {
                        Some(Kind::File(content)) => {
                            std::io::copy(&mut content.open()?, &mut std::io::stdout().lock())?;
                            return Ok(());
                        }
                        _ => bail!("{target}: a hard link to nothing"),
                    },
                    _ => bail!("{target} is not a regular file; list it without --cat"),
                }
            }
            let links = link_counts(&tree);
            if matches!(node.kind, Kind::Dir) {
                for (child, n) in tree.children(&path) {
                    listing_line(&mut out, &tree, &links, child, n)?;
                }
            } else {
                listing_line(&mut out, &tree, &links, &path, node)?;
            }
        }
    }
    std::io::stdout().write_all(&out)?;
    Ok(())
}

fn verify(image: &OsImage, expected: &str, quiet: bool) -> Result<()> {
    let name =
        image.path.file_name().map_or_else(|| image.path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let mut progress =
        crate::fetch::progress::Progress::start_with("verifying", &name, Some(image.disk.len()), 0, quiet);
    let (sha, len) = image.sha256(&mut progress)?;
    progress.finish();
    println!("{sha}  {len} bytes uncompressed");
    if !expected.is_empty() && !expected.eq_ignore_ascii_case(&sha) {
        bail!(
            "{}: the uncompressed image's sha256 is {sha}, not {expected}; the file is damaged or not the one expected",
            image.path.display()
        );
    }
    Ok(())
}

fn summary(image: &OsImage, out: &mut Vec<u8>) -> Result<()> {
    let storage = match &image.storage {
        Storage::Raw => "raw image".to_string(),
        Storage::Xz { blocks, largest_block } => format!("xz, {blocks} block(s) of up to {}", mib(*largest_block)),
    };
    writeln!(out, "{}: {storage}, {} uncompressed", image.path.display(), mib(image.disk.len()))?;
    let scheme = match &image.table.scheme {
        crate::disk::partition::Scheme::Mbr { disk_id } => format!("MBR, disk id 0x{disk_id:08x}"),
        crate::disk::partition::Scheme::Gpt { disk_guid } => format!("GPT, disk GUID {disk_guid}"),
        crate::disk::partition::Scheme::Whole => "no partition table: one filesystem, partition 0".to_string(),
    };
    writeln!(out, "partition table: {scheme}")?;
    writeln!(
        out,
        "  # {:>12} {:>12}  {:<38} {:<6} {:<10} {:<38} {:>10} {:>10}",
        "start", "size", "type", "fs", "label", "id", "fs size", "free"
    )?;
    for v in image.volumes() {
        volume_line(out, &v)?;
    }
    Ok(())
}

fn volume_line(out: &mut Vec<u8>, v: &Volume) -> Result<()> {
    let p = &v.partition;
    let kind = match &p.kind {
        crate::disk::partition::PartitionType::Mbr(t) => format!("0x{t:02x}"),
        crate::disk::partition::PartitionType::Whole => "-".to_string(),
        crate::disk::partition::PartitionType::Gpt { type_guid, name } if name.is_empty() => type_guid.clone(),
        crate::disk::partition::PartitionType::Gpt { type_guid, name } => format!("{type_guid} {name}"),
    };
    let fs = format!("{:?}", v.filesystem).to_lowercase();
    writeln!(
        out,
        "{:>3} {:>12} {:>12}  {:<38} {:<6} {:<10} {:<38} {:>10} {:>10}",
        p.number,
        p.start,
        p.len,
        kind,
        fs,
        v.label.as_deref().unwrap_or("-"),
        v.id.as_deref().unwrap_or("-"),
        v.size.map_or("-".into(), mib),
        v.free.map_or("-".into(), mib),
    )?;
    if let Some(e) = &v.error {
        writeln!(out, "      cannot read this filesystem: {e}")?;
    }
    Ok(())
}

/// How many paths each hard-linked file has, keyed by the path that holds its content.
fn link_counts(tree: &Tree) -> std::collections::HashMap<PathBuf, usize> {
    let mut counts = std::collections::HashMap::new();
    for (_, node) in tree.iter() {
        if let Kind::HardLink(first) = &node.kind {
            *counts.entry(first.clone()).or_insert(1) += 1;
        }
    }
    counts
}

/// One `ls -l` line with numeric owners: type and mode, links, uid, gid, size (or device
/// numbers), time, name, and a symlink's target.
fn listing_line(
    out: &mut Vec<u8>,
    tree: &Tree,
    counts: &std::collections::HashMap<PathBuf, usize>,
    path: &Path,
    node: &crate::tree::Node,
) -> Result<()> {
    let holder = match &node.kind {
        Kind::HardLink(first) => first.as_path(),
        _ => path,
    };
    let links = counts.get(holder).copied().unwrap_or(1);
    let size = match &node.kind {
        Kind::File(c) => c.len().to_string(),
        Kind::HardLink(first) => match tree.get(first).map(|n| &n.kind) {
            Some(Kind::File(c)) => c.len().to_string(),
            _ => "0".into(),
        },
        Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => format!("{major}, {minor}"),
        _ => "0".into(),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "/".into());
    let target = match &node.kind {
        Kind::Symlink(t) => format!(" -> {}", t.display()),
        Kind::HardLink(t) => format!(" (hard link to /{})", t.display()),
        _ => String::new(),
    };
    writeln!(
        out,
        "{} {links:>2} {:>6} {:>6} {size:>10} {} {name}{target}",
        node.mode_string(),
        node.uid,
        node.gid,
        date(node.mtime.secs)
    )?;
    Ok(())
}

pub fn extract(args: ExtractArgs) -> Result<()> {
    let limit = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => {
            Some(v.trim().parse::<i64>().map_err(|_| anyhow::anyhow!("SOURCE_DATE_EPOCH=`{v}` is not Unix seconds"))?)
        }
        Err(_) => None,
    };
    let image = OsImage::open(&args.image)?;
    let (part, path) = split_target(&args.target)?;
    let volume = image.find(part)?;
    let full = image.tree(&volume)?;
    if !full.get(&path).is_some_and(|n| matches!(n.kind, Kind::Dir)) {
        bail!("{}: not a folder in partition {}", args.target, volume.partition.number);
    }
    let tree = if path.as_os_str().is_empty() { full } else { full.subtree(&path) };
    if let Some(tar_path) = &args.tar {
        let started = std::time::Instant::now();
        let options = TarOptions { mtime_limit: limit };
        if tar_path.as_os_str() == "-" {
            // Stdout, as for tar itself: `bramble extract IMG rootfs:/ --tar - | ssh host tar -x`.
            let writer = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write_tar(&tree, writer, options)?.flush()?;
        } else {
            crate::output::write_with(tar_path, |file| {
                let writer = std::io::BufWriter::with_capacity(1 << 20, file);
                write_tar(&tree, writer, options)?.flush()?;
                Ok(())
            })?;
        }
        tracing::info!(
            "wrote {} ({} entries) in {:.1} s",
            tar_path.display(),
            tree.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if let Some(dir) = &args.dir {
        let report = crate::output::write_folder(dir, |tmp| write_dir(&tree, tmp, DirOptions { mtime_limit: limit }))?;
        tracing::info!("wrote {} ({} entries)", dir.display(), report.written);
    }
    Ok(())
}
