//! Block maps in bmaptool's XML format 2.0 (github.com/yoctoproject/bmaptool,
//! `bmaptools/BmapCreate.py`): which 4 KiB blocks of an image hold data, each range with its
//! sha256, so `bmaptool copy --bmap IMG.bmap IMG DEVICE` writes only those blocks and checks
//! them.
//!
//! The text is byte for byte what `bmaptool create` writes for the same image and ranges,
//! comments and padding included: its `MappedBlocksCount` comment is written over blank
//! space it reserved, and `BmapFileChecksum` is the sha256 of the whole file with that field
//! all ASCII zeros. [`format_bmap`] is pure; [`bmap_for_image`] adds the hashing pass.
//!
//! Not for: reading bmaps, or other checksum types.

use super::image_file::{BLOCK, WrittenImage};
use crate::digest::hex;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The format version bmaptool 3.x writes and reads.
const VERSION: &str = "2.0";
const SHA256_HEX_LEN: usize = 64;

const HEADER_COMMENT: &str = r#"<?xml version="1.0" ?>
<!-- This file contains the block map for an image file, which is basically
     a list of useful (mapped) block numbers in the image file. In other words,
     it lists only those blocks which contain data (boot sector, partition
     table, file-system metadata, files, directories, extents, etc). These
     blocks have to be copied to the target device. The other blocks do not
     contain any useful data and do not have to be copied to the target
     device.

     The block map an optimization which allows to copy or flash the image to
     the image quicker than copying of flashing the entire image. This is
     because with bmap less data is copied: <MappedBlocksCount> blocks instead
     of <BlocksCount> blocks.

     Besides the machine-readable data, this file contains useful commentaries
     which contain human-readable information like image size, percentage of
     mapped data, etc.

     The 'version' attribute is the block map file format version in the
     'major.minor' format. The version major number is increased whenever an
     incompatible block map format change is made. The minor number changes
     in case of minor backward-compatible changes. -->

"#;

/// bmaptool's `human_size`: "1 byte", "N bytes" below 512, else one decimal in KiB…TiB (and,
/// as bmaptool does, "EiB" for anything past 1024 TiB).
fn human_size(size: u64) -> String {
    if size == 1 {
        return "1 byte".into();
    }
    if size < 512 {
        return format!("{size} bytes");
    }
    let mut value = size as f64;
    for unit in ["KiB", "MiB", "GiB", "TiB"] {
        value /= 1024.0;
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
    }
    format!("{value:.1} EiB")
}

/// Write `text` over `out` from `at`, as a file opened for update does.
fn overwrite(out: &mut Vec<u8>, at: usize, text: &str) {
    for (i, &b) in text.as_bytes().iter().enumerate() {
        match out.get_mut(at + i) {
            Some(slot) => *slot = b,
            None => out.push(b),
        }
    }
}

/// The bmap of an image of `image_size` bytes whose data is in `ranges` (block numbers, end
/// exclusive, in order, with each range's sha256).
pub fn format_bmap(image_size: u64, ranges: &[(Range<u64>, [u8; 32])]) -> String {
    let blocks = image_size.div_ceil(BLOCK);
    let image_human = human_size(image_size);
    let mut out: Vec<u8> = Vec::new();
    out.extend_from_slice(HEADER_COMMENT.as_bytes());
    out.extend_from_slice(
        format!(
            "<bmap version=\"{VERSION}\">\n    <!-- Image size in bytes: {image_human} -->\n    <ImageSize> {image_size} </ImageSize>\n\n    \
             <!-- Size of a block in bytes -->\n    <BlockSize> {BLOCK} </BlockSize>\n\n    \
             <!-- Count of blocks in the image file -->\n    <BlocksCount> {blocks} </BlocksCount>\n\n"
        )
        .as_bytes(),
    );
    out.extend_from_slice(b"    <!-- Count of mapped blocks: ");
    let mapped_comment_at = out.len();
    out.extend_from_slice(
        format!("{} or {}   -->\n", " ".repeat(image_human.len()), " ".repeat("100.0%".len())).as_bytes(),
    );
    out.extend_from_slice(b"    <MappedBlocksCount> ");
    let mapped_count_at = out.len();
    out.extend_from_slice(format!("{} </MappedBlocksCount>\n\n", " ".repeat(blocks.to_string().len())).as_bytes());
    out.extend_from_slice(
        b"    <!-- Type of checksum used in this file -->\n    <ChecksumType> sha256 </ChecksumType>\n\n",
    );
    out.extend_from_slice(
        b"    <!-- The checksum of this bmap file. When it is calculated, the value of\n         \
          the checksum has be zero (all ASCII \"0\" symbols).  -->\n    <BmapFileChecksum> ",
    );
    let checksum_at = out.len();
    out.extend_from_slice("0".repeat(SHA256_HEX_LEN).as_bytes());
    out.extend_from_slice(
        b" </BmapFileChecksum>\n\n    <!-- The block map which consists of elements which may either be a\n         \
          range of blocks or a single block. The 'chksum' attribute\n         \
          (if present) is the checksum of this blocks range. -->\n    <BlockMap>\n",
    );
    let mut mapped = 0u64;
    for (range, sha) in ranges {
        mapped += range.end - range.start;
        let (first, last) = (range.start, range.end - 1);
        let blocks = if first == last { first.to_string() } else { format!("{first}-{last}") };
        out.extend_from_slice(format!("        <Range chksum=\"{}\"> {blocks} </Range>\n", hex(sha)).as_bytes());
    }
    out.extend_from_slice(b"    </BlockMap>\n</bmap>\n");
    let percent = if blocks == 0 { 0.0 } else { mapped as f64 * 100.0 / blocks as f64 };
    overwrite(&mut out, mapped_comment_at, &format!("{} or {percent:.1}%", human_size(mapped * BLOCK)));
    overwrite(&mut out, mapped_count_at, &mapped.to_string());
    let checksum = hex(&Sha256::digest(&out));
    overwrite(&mut out, checksum_at, &checksum);
    // Every piece above is ASCII.
    String::from_utf8_lossy(&out).into_owned()
}

/// The bmap of the image at `image`, which [`super::image_file`] wrote as `written`: each
/// mapped range read back and hashed (a range's last block may be partial).
pub fn bmap_for_image(image: &Path, written: &WrittenImage) -> Result<String> {
    let file = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let len = file.metadata().with_context(|| format!("cannot read {}", image.display()))?.len();
    if len != written.size {
        bail!("{} is {len} bytes, not the {} that were written; was it changed?", image.display(), written.size);
    }
    let mut buf = vec![0u8; 1 << 20];
    let mut ranges = Vec::with_capacity(written.mapped.len());
    for range in &written.mapped {
        let start = range.start * BLOCK;
        let end = (range.end * BLOCK).min(len);
        if range.start >= range.end || start >= end {
            bail!("block range {range:?} lies outside the {len}-byte image");
        }
        let mut hasher = Sha256::new();
        let mut at = start;
        while at < end {
            let n = (end - at).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], at).with_context(|| format!("reading {}", image.display()))?;
            hasher.update(&buf[..n]);
            at += n as u64;
        }
        ranges.push((range.clone(), hasher.finalize().into()));
    }
    Ok(format_bmap(len, &ranges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_follow_bmaptool() {
        assert_eq!(human_size(1), "1 byte");
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(511), "511 bytes");
        assert_eq!(human_size(512), "0.5 KiB");
        assert_eq!(human_size(4 << 30), "4.0 GiB");
        assert_eq!(human_size((1 << 20) - 1), "1024.0 KiB");
        assert_eq!(human_size(3 << 40), "3.0 TiB");
    }

    #[test]
    fn the_file_checksum_is_over_the_zeroed_field() {
        let text = format_bmap(10 * BLOCK + 100, &[(0..1, [1; 32]), (3..7, [2; 32])]);
        assert!(text.contains("<ImageSize> 41060 </ImageSize>"), "{text}");
        assert!(text.contains("<BlocksCount> 11 </BlocksCount>"));
        assert!(text.contains("<MappedBlocksCount> 5  </MappedBlocksCount>"), "{text}");
        assert!(text.contains("<!-- Count of mapped blocks: 20.0 KiB or 45.5%    -->"), "{text}");
        assert!(text.contains(&format!("<Range chksum=\"{}\"> 0 </Range>", hex(&[1; 32]))));
        assert!(text.contains(&format!("<Range chksum=\"{}\"> 3-6 </Range>", hex(&[2; 32]))));
        let at = text.find("<BmapFileChecksum> ").unwrap() + "<BmapFileChecksum> ".len();
        let claimed = text[at..at + 64].to_string();
        let zeroed = format!("{}{}{}", &text[..at], "0".repeat(64), &text[at + 64..]);
        assert_eq!(claimed, hex(&Sha256::digest(zeroed.as_bytes())));
    }
}
