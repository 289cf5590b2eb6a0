//! Writing a planned disk ([`super::layout`]) to an image file, sparse: all-zero 4 KiB blocks
//! are holes (never written), so a 4 GiB image with 1 GiB of data takes 1 GiB on disk and
//! `bmaptool` can skip the rest. Partition contents stream from memory or from their files a
//! MiB at a time, and only the data extents of a source file (`SEEK_DATA`) are read, so a
//! mostly empty 8 GiB ext4 image is not read in full and no disk is ever held in memory.
//!
//! The image is written to a temporary file beside the target and renamed into place only when
//! complete (`crate::output`). Returns the mapped (non-hole) block ranges, which is what a
//! bmap lists. Not for: writing to a device (use `bmaptool copy` with the bmap), or images
//! whose blocks are not 4 KiB.

use super::layout::{self, DiskLayout, DiskPlan, RegionSource};
use anyhow::{Context, Result, bail};
use nix::errno::Errno;
use nix::unistd::{Whence, lseek};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The block size of holes and of the mapped ranges (bmaptool's, and every filesystem's page).
pub const BLOCK: u64 = 4096;
/// How much is assembled in memory at a time.
const CHUNK: u64 = 1 << 20;
static ZERO_BLOCK: [u8; BLOCK as usize] = [0; BLOCK as usize];

/// What was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenImage {
    /// The image's length in bytes.
    pub size: u64,
    /// Block numbers (of [`BLOCK`] bytes) that hold data, in order, merged, end exclusive; every
    /// other block is a hole that reads as zeros. The last block may be partial.
    pub mapped: Vec<Range<u64>>,
}

impl WrittenImage {
    /// How many blocks hold data.
    pub fn mapped_blocks(&self) -> u64 {
        self.mapped.iter().map(|r| r.end - r.start).sum()
    }
}

/// Check `layout` and write it to `path` (see the module comment).
pub fn write_disk_image(path: &Path, layout: &DiskLayout) -> Result<WrittenImage> {
    let plan = layout::plan(layout)?;
    write_plan(path, &plan)
}

/// A region with its source opened.
enum Source<'a> {
    Bytes(&'a [u8]),
    File { file: File, path: &'a Path },
}

struct Opened<'a> {
    offset: u64,
    /// Bytes of data available (the rest of the region is zeros).
    len: u64,
    source: Source<'a>,
    /// Byte ranges of the disk that may hold data.
    extents: Vec<Range<u64>>,
}

/// Write an already checked plan to `path`.
pub fn write_plan(path: &Path, plan: &DiskPlan<'_>) -> Result<WrittenImage> {
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        bail!(
            "{} is not a regular file; write the image to a file and copy it to a device with `bmaptool copy`",
            path.display()
        );
    }
    let regions = plan.all_regions();
    let mut opened = Vec::with_capacity(regions.len());
    for r in &regions {
        opened.push(match r.source {
            RegionSource::Bytes(bytes) => {
                let len = bytes.len() as u64;
                Opened {
                    offset: r.offset,
                    len,
                    source: Source::Bytes(bytes),
                    extents: std::iter::once(r.offset..r.offset + len).collect(),
                }
            }
            RegionSource::File(source) => {
                let file =
                    File::open(source).with_context(|| format!("cannot open {} ({})", source.display(), r.what))?;
                let len = file.metadata().with_context(|| format!("cannot read {}", source.display()))?.len();
                if len > r.len {
                    bail!("{} is {len} bytes, larger than {} ({} bytes)", source.display(), r.what, r.len);
                }
                let extents = data_extents(&file, len)
                    .with_context(|| format!("cannot find the data in {}", source.display()))?
                    .into_iter()
                    .map(|e| r.offset + e.start..r.offset + e.end)
                    .collect();
                Opened { offset: r.offset, len, source: Source::File { file, path: source }, extents }
            }
        });
    }
    let mut mapped = Vec::new();
    crate::output::write_with(path, |file| {
        file.set_len(plan.size)?;
        let mut buf = vec![0u8; CHUNK as usize];
        for extent in block_extents(&opened, plan.size) {
            let mut at = extent.start;
            while at < extent.end {
                let end = (at + CHUNK).min(extent.end);
                let chunk = &mut buf[..(end - at) as usize];
                fill(chunk, at, &opened)?;
                write_nonzero_blocks(file, chunk, at, &mut mapped)?;
                at = end;
            }
        }
        Ok(())
    })?;
    Ok(WrittenImage { size: plan.size, mapped })
}

/// The sources' data extents, widened to whole blocks and merged.
fn block_extents(opened: &[Opened<'_>], size: u64) -> Vec<Range<u64>> {
    let mut all: Vec<Range<u64>> = opened
        .iter()
        .flat_map(|o| o.extents.iter())
        .filter(|e| e.start < e.end)
        .map(|e| e.start / BLOCK * BLOCK..e.end.div_ceil(BLOCK).saturating_mul(BLOCK).min(size))
        .collect();
    all.sort_by_key(|e| e.start);
    let mut merged: Vec<Range<u64>> = Vec::with_capacity(all.len());
    for e in all {
        match merged.last_mut() {
            Some(last) if e.start <= last.end => last.end = last.end.max(e.end),
            _ => merged.push(e),
        }
    }
    merged
}

/// The disk's bytes from `at` into `chunk`: zeros, then every source's overlap.
fn fill(chunk: &mut [u8], at: u64, opened: &[Opened<'_>]) -> Result<()> {
    chunk.fill(0);
    let end = at + chunk.len() as u64;
    for o in opened {
        let lo = at.max(o.offset);
        let hi = end.min(o.offset + o.len);
        if lo >= hi {
            continue;
        }
        let into = &mut chunk[(lo - at) as usize..(hi - at) as usize];
        match &o.source {
            Source::Bytes(bytes) => into.copy_from_slice(&bytes[(lo - o.offset) as usize..(hi - o.offset) as usize]),
            Source::File { file, path } => file
                .read_exact_at(into, lo - o.offset)
                .with_context(|| format!("reading {} (did it change while the image was written?)", path.display()))?,
        }
    }
    Ok(())
}

/// Write the blocks of `chunk` (the disk's bytes from `at`, a block boundary) that are not all
/// zero, a run at a time, and record them in `mapped`.
fn write_nonzero_blocks(file: &File, chunk: &[u8], at: u64, mapped: &mut Vec<Range<u64>>) -> std::io::Result<()> {
    let first_block = at / BLOCK;
    let mut run: Option<usize> = None;
    let blocks = chunk.len().div_ceil(BLOCK as usize);
    for i in 0..=blocks {
        let data = i < blocks && {
            let block = &chunk[i * BLOCK as usize..((i + 1) * BLOCK as usize).min(chunk.len())];
            // Slice equality is a memcmp, fast even where this crate is built unoptimised.
            block != &ZERO_BLOCK[..block.len()]
        };
        match (data, run) {
            (true, None) => run = Some(i),
            (false, Some(start)) => {
                let bytes = &chunk[start * BLOCK as usize..(i * BLOCK as usize).min(chunk.len())];
                file.write_all_at(bytes, at + start as u64 * BLOCK)?;
                let blocks = first_block + start as u64..first_block + i as u64;
                match mapped.last_mut() {
                    Some(last) if last.end == blocks.start => last.end = blocks.end,
                    _ => mapped.push(blocks),
                }
                run = None;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Byte ranges of `file` (of `len` bytes) that hold data, by `SEEK_DATA`/`SEEK_HOLE`; the
/// whole file where the filesystem cannot say.
fn data_extents(file: &File, len: u64) -> std::io::Result<Vec<Range<u64>>> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let data = match lseek(file, pos as i64, Whence::SeekData) {
            Ok(d) => d as u64,
            // No data from here to the end.
            Err(Errno::ENXIO) => break,
            Err(Errno::EINVAL | Errno::EOPNOTSUPP) => {
                out.push(pos..len);
                break;
            }
            Err(e) => return Err(e.into()),
        };
        if data >= len {
            break;
        }
        let hole = match lseek(file, data as i64, Whence::SeekHole) {
            Ok(h) => (h as u64).min(len),
            Err(e) => return Err(e.into()),
        };
        // Each step moves forward; a filesystem answering otherwise gets the rest as data.
        if hole <= data {
            out.push(data..len);
            break;
        }
        out.push(data..hole);
        pos = hole;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::disk::layout::{DiskPartition, PartitionData, Table, TableEntry};
    use std::os::unix::fs::MetadataExt;

    fn layout(root: &Path) -> DiskLayout {
        let mut boot = vec![0u8; 1 << 20];
        boot[0] = 0xEB;
        boot[5000] = 7; // block 1 of the partition
        boot[(1 << 20) - 1] = 9; // its last block
        DiskLayout {
            table: Table::Mbr { disk_id: 0xdead_beef },
            partitions: vec![
                DiskPartition {
                    start_lba: 2048,
                    size_bytes: 2 << 20,
                    data: PartitionData::Bytes(boot),
                    entry: TableEntry::Mbr { kind: 0x0c, bootable: false },
                },
                DiskPartition {
                    start_lba: 8192,
                    size_bytes: 64 << 20,
                    data: PartitionData::File(root.to_path_buf()),
                    entry: TableEntry::Mbr { kind: 0x83, bootable: false },
                },
            ],
            size_bytes: None,
        }
    }

    #[test]
    fn holes_where_zeros_and_the_bytes_where_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.ext4");
        // A sparse 40 MiB source with data at 0, 8 MiB and its last byte.
        let f = File::create(&root).unwrap();
        f.set_len(40 << 20).unwrap();
        f.write_all_at(&[1u8; 10_000], 0).unwrap();
        f.write_all_at(&[2u8; 4096], 8 << 20).unwrap();
        f.write_all_at(&[3u8], (40 << 20) - 1).unwrap();
        drop(f);
        let img = dir.path().join("disk.img");
        let written = write_disk_image(&img, &layout(&root)).unwrap();
        assert_eq!(written.size, (8192 * 512) + (64 << 20));
        let boot_block = 2048 * 512 / BLOCK;
        let root_block = 8192 * 512 / BLOCK;
        assert_eq!(
            written.mapped,
            [
                0..1,
                boot_block..boot_block + 2,
                boot_block + 255..boot_block + 256,
                root_block..root_block + 3,
                root_block + 2048..root_block + 2049,
                root_block + 10239..root_block + 10240,
            ]
        );
        let bytes = std::fs::read(&img).unwrap();
        assert_eq!(bytes.len() as u64, written.size);
        assert_eq!(bytes[2048 * 512 + 5000], 7);
        assert_eq!(bytes[8192 * 512 + (8 << 20)], 2);
        assert_eq!(bytes[8192 * 512 + (40 << 20) - 1], 3);
        assert!(bytes[8192 * 512 + (40 << 20)..].iter().all(|&b| b == 0));
        let meta = std::fs::metadata(&img).unwrap();
        assert!(meta.blocks() * 512 <= (written.mapped_blocks() + 16) * BLOCK, "{} blocks allocated", meta.blocks());
    }

    #[test]
    fn sources_too_large_or_missing_and_device_targets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root.ext4");
        File::create(&root).unwrap().set_len(65 << 20).unwrap();
        let img = dir.path().join("disk.img");
        let err = format!("{:#}", write_disk_image(&img, &layout(&root)).unwrap_err());
        assert!(err.contains("larger than partition 2"), "{err}");
        assert!(!img.exists());
        let err = format!("{:#}", write_disk_image(&img, &layout(&dir.path().join("none"))).unwrap_err());
        assert!(err.contains("cannot open") && err.contains("none"), "{err}");
        File::create(&root).unwrap();
        let err = format!("{:#}", write_disk_image(Path::new("/dev/null"), &layout(&root)).unwrap_err());
        assert!(err.contains("bmaptool copy"), "{err}");
    }

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // lists of ranges that happen to hold one
    fn extents_merge_and_stay_inside_the_disk() {
        let o = |extents: Vec<Range<u64>>| Opened { offset: 0, len: 0, source: Source::Bytes(&[]), extents };
        let got = block_extents(&[o(vec![10..20, 5000..5001, 20000..20001]), o(vec![4096..4100, 9000..9001])], 30000);
        assert_eq!(got, [0..12288, 16384..20480]);
        assert_eq!(block_extents(&[o(vec![29000..31000])], 30000), [28672..30000]);
    }
}
