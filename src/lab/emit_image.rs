//! Writing the server image: the boot partition (FAT32, folders included) and the root (ext4 by
//! mke2fs from a tar) laid out on an MBR or GPT disk, written sparse, then its bmap, its xz,
//! their sha256 files and a Raspberry Pi Imager entry. Every output goes to a temporary name and
//! is renamed when complete.

use super::server_image::{ServerParts, Table};
use crate::disk::fat::{Fat32Spec, fat32_volume_tree};
use crate::disk::fat_size::fat32_size_for;
use crate::disk::image_file::write_disk_image;
use crate::disk::layout::{DiskLayout, DiskPartition, PartitionData, Table as DiskTable, TableEntry};
use crate::disk::xz_write::{XzSettings, XzSummary, compress_file};
use crate::disk::{bmap, gpt, imager, mke2fs};
use crate::fetch::progress::Progress;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Raspberry Pi OS's own boot partition: 512 MiB FAT32, from 8 MiB (its 2025 layout).
const BOOT_START: u64 = 8 << 20;
const BOOT_MIN: u64 = 512 << 20;
const CLUSTER: u32 = 4096;
/// Room left in the root before the first boot grows it to the card.
pub const DEFAULT_HEADROOM: u64 = 512 << 20;

/// The files written, in `out`.
pub struct ImageFiles {
    pub img: PathBuf,
    /// `server.img.xz` and its size, unless the build was asked not to compress.
    pub xz: Option<(PathBuf, u64)>,
    pub bmap: PathBuf,
    pub json: PathBuf,
    pub img_size: u64,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// Write `parts` as `out/server.img` and its companions; `compress` adds `server.img.xz`, which
/// server.json then names (without it, server.json names server.img: Imager writes either).
pub fn write(
    parts: &ServerParts,
    out: &Path,
    name: &str,
    mtime: i64,
    compress: bool,
    quiet: bool,
) -> Result<ImageFiles> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let work = tempfile::Builder::new().prefix(".server-image-").tempdir_in(out)?;

    let boot_size = fat32_size_for(&parts.boot, CLUSTER, 64 << 20)?.max(BOOT_MIN).next_multiple_of(1 << 20);
    let boot_spec = Fat32Spec {
        label: "BOOTFS".into(),
        volume_id: parts.fat_volume_id,
        size_bytes: boot_size,
        bytes_per_cluster: CLUSTER,
        hidden_sectors: (BOOT_START / 512) as u32,
        timestamp: mtime,
    };
    let boot = fat32_volume_tree(&boot_spec, &parts.boot).context("making the boot partition")?;

    let (root_size, inodes) = mke2fs::size_for(&parts.root, DEFAULT_HEADROOM);
    let root_file = work.path().join("root.ext4");
    let root_spec = mke2fs::Ext4Spec {
        label: "rootfs".into(),
        uuid: parts.root_uuid,
        size_bytes: root_size,
        inodes,
        journal_mib: mke2fs::journal_mib(root_size),
        timestamp: mtime,
    };
    if !quiet {
        tracing::info!(
            "making the root filesystem ({:.0} MiB, {} entries) with mke2fs",
            mib(root_size),
            parts.root.len()
        );
    }
    mke2fs::make(&parts.root, &root_spec, &root_file).context("making the root partition")?;

    let root_start = BOOT_START + boot_size;
    let (table, boot_entry, root_entry) = match parts.table {
        Table::Mbr => (
            DiskTable::Mbr { disk_id: parts.disk_id },
            TableEntry::Mbr { kind: 0x0c, bootable: false },
            TableEntry::Mbr { kind: 0x83, bootable: false },
        ),
        Table::Gpt => (
            DiskTable::Gpt { disk_guid: Uuid::from_bytes(parts.disk_guid) },
            TableEntry::Gpt {
                type_guid: gpt::MICROSOFT_BASIC_DATA,
                guid: Uuid::from_bytes(parts.boot_guid),
                name: "bootfs".into(),
            },
            TableEntry::Gpt {
                type_guid: gpt::LINUX_FILESYSTEM,
                guid: Uuid::from_bytes(parts.root_guid),
                name: "rootfs".into(),
            },
        ),
    };
    let layout = DiskLayout {
        table,
        partitions: vec![
            DiskPartition {
                start_lba: BOOT_START / 512,
                size_bytes: boot_size,
                data: PartitionData::Bytes(boot),
                entry: boot_entry,
            },
            DiskPartition {
                start_lba: root_start / 512,
                size_bytes: root_size,
                data: PartitionData::File(root_file.clone()),
                entry: root_entry,
            },
        ],
        size_bytes: None,
    };
    let img = out.join("server.img");
    let written = write_disk_image(&img, &layout).context("writing server.img")?;
    drop(layout);
    let _ = std::fs::remove_file(&root_file);

    let bmap_path = out.join("server.img.bmap");
    let bmap_text = bmap::bmap_for_image(&img, &written)?;
    crate::output::write_file(&bmap_path, bmap_text.as_bytes())?;

    let (summary, xz) = if compress {
        let xz = out.join("server.img.xz");
        let mut progress = Progress::start_with("compressing", "server.img", Some(written.size), 0, quiet);
        let mut last = 0u64;
        let summary = compress_file(&img, &xz, &XzSettings::default(), &mut |read| {
            progress.advance(read - last);
            last = read;
        })?;
        progress.finish();
        (summary, Some(xz))
    } else {
        let (sha, size) =
            crate::fetch::cache::hash_file(&img).with_context(|| format!("cannot read {}", img.display()))?;
        (
            XzSummary {
                input_size: size,
                input_sha256: sha.clone(),
                output_size: size,
                output_sha256: sha,
                threads: 0,
            },
            None,
        )
    };

    let mut sums = vec![(&img, &summary.input_sha256)];
    if let Some(xz) = &xz {
        sums.push((xz, &summary.output_sha256));
    }
    for (path, sha) in sums {
        let file = path.file_name().expect("named").to_string_lossy().into_owned();
        crate::output::write_file(
            &path.with_file_name(format!("{file}.sha256")),
            format!("{sha}  {file}\n").as_bytes(),
        )?;
    }
    // Uncompressed, the download is the image itself: its size and sha256 are both.
    let entry = imager::ImagerEntry::for_compressed_image(
        &format!("Bramble lab server: {name}"),
        &format!("The lab server of the Bramble lab `{name}`: boots its Raspberry Pis over the network"),
        "https://downloads.raspberrypi.com/raspios_lite_armhf/Raspberry_Pi_OS_(32-bit).png",
        if xz.is_some() { "server.img.xz" } else { "server.img" },
        &imager::release_date(mtime)?,
        parts.table.imager_devices(),
        &summary,
    );
    let json = out.join("server.json");
    crate::output::write_file(&json, imager::os_list_json(&[entry])?.as_bytes())?;
    // A server.img.xz of an earlier build would no longer match server.img.
    if xz.is_none() {
        for stale in ["server.img.xz", "server.img.xz.sha256"] {
            match std::fs::remove_file(out.join(stale)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("cannot remove {}", out.join(stale).display()));
                }
                _ => {}
            }
        }
    }
    Ok(ImageFiles { xz: xz.map(|x| (x, summary.output_size)), img, bmap: bmap_path, json, img_size: written.size })
}
