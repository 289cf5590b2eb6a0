//! The parts of the .xz container this reader parses itself: stream headers and footers, stream
//! padding and indexes (xz-file-format.txt, sections 2 and 4). Block contents are left to liblzma.

use super::XzError;
use crate::read_at::ReadAt;

pub(super) const HEADER_MAGIC: [u8; 6] = [0xFD, b'7', b'z', b'X', b'Z', 0x00];
const FOOTER_MAGIC: [u8; 2] = [b'Y', b'Z'];
/// Stream header and stream footer are both this long.
pub(super) const HEADER_LEN: u64 = 12;
/// A block header is at least 8 bytes and LZMA2 data at least its end marker, so no real block
/// is smaller; refusing smaller records also caps how many records a file of a given size holds.
const MIN_UNPADDED: u64 = 9;
/// Largest value a multibyte integer may hold, and so any size in the format.
const VLI_MAX: u64 = u64::MAX / 2;
/// Unpadded sizes are at most this, so that rounding up to four cannot overflow.
const MAX_UNPADDED: u64 = VLI_MAX & !3;
/// How much of the file is read at once while parsing indexes and skipping padding.
const CHUNK: usize = 64 * 1024;

/// One stream's header, kept so each block can be given to liblzma as a stream of its own.
#[derive(Clone, Debug)]
pub(super) struct StreamInfo {
    pub header: [u8; 12],
}

/// Where one block lies, compressed and uncompressed, as its stream's index says.
#[derive(Clone, Debug)]
pub(super) struct BlockInfo {
    /// Index into `Layout::streams`.
    pub stream: u32,
    /// Offset of the block header in the file.
    pub offset: u64,
    /// Block header + compressed data + check, without block padding.
    pub unpadded: u64,
    pub uncompressed_start: u64,
    pub uncompressed_size: u64,
}

impl BlockInfo {
    pub fn padded(&self) -> u64 {
        round4(self.unpadded)
    }

    pub fn uncompressed_end(&self) -> u64 {
        self.uncompressed_start + self.uncompressed_size
    }
}

/// Every block of every stream, in file order.
#[derive(Debug)]
pub(super) struct Layout {
    pub streams: Vec<StreamInfo>,
    pub blocks: Vec<BlockInfo>,
    pub uncompressed_len: u64,
}

fn round4(n: u64) -> u64 {
    (n + 3) & !3
}

fn corrupt(what: &'static str, offset: u64) -> XzError {
    XzError::Corrupt { what, offset }
}

/// Reads the file backwards, stream by stream, from its end.
///
/// `max_entries` caps blocks plus streams, so a crafted index cannot make the table huge.
pub(super) fn parse(src: &dyn ReadAt, max_entries: usize) -> Result<Layout, XzError> {
    let len = src.len();
    let mut magic = [0u8; 6];
    if len < magic.len() as u64 {
        return Err(XzError::NotXz);
    }
    src.read_exact_at(&mut magic, 0)?;
    if magic != HEADER_MAGIC {
        return Err(XzError::NotXz);
    }
    // Every part of the format is a multiple of four bytes long, so a ragged end is a cut.
    if len % 4 != 0 {
        return Err(XzError::Truncated);
    }

    // Blocks are pushed stream by stream from the last stream backwards, each stream's blocks in
    // forward order; `segments` remembers how many each stream had, to put them in order after.
    let mut streams: Vec<StreamInfo> = Vec::new();
    let mut blocks: Vec<BlockInfo> = Vec::new();
    let mut segments: Vec<usize> = Vec::new();
    let mut end = len;
    while end > 0 {
        end = skip_padding(src, end)?;
        if end < 2 * HEADER_LEN + 8 {
            return Err(if streams.is_empty() {
                XzError::Truncated
            } else {
                corrupt("stream (too short to hold a header, an index and a footer)", 0)
            });
        }
        let footer_at = end - HEADER_LEN;
        let mut footer = [0u8; 12];
        src.read_exact_at(&mut footer, footer_at)?;
        if footer[10..12] != FOOTER_MAGIC {
            // The last footer missing is what a cut-short download looks like.
            return Err(if streams.is_empty() {
                XzError::Truncated
            } else {
                corrupt("stream footer magic", footer_at + 10)
            });
        }
        if crc32(&footer[4..10]) != le32(&footer[0..4]) {
            return Err(corrupt("stream footer CRC32", footer_at));
        }
        let flags = [footer[8], footer[9]];
        check_flags(flags, footer_at + 8)?;
        let backward = (u64::from(le32(&footer[4..8])) + 1) * 4;
        let index_at = footer_at
            .checked_sub(backward)
            .filter(|&at| at >= HEADER_LEN)
            .ok_or(corrupt("stream footer backward size (index would start before the stream)", footer_at + 4))?;

        if streams.len() + blocks.len() >= max_entries {
            return Err(XzError::TooManyBlocks { max: max_entries });
        }
        let first_block = blocks.len();
        let room = max_entries - streams.len() - blocks.len() - 1;
        let blocks_len = parse_index(src, index_at, footer_at, room, &mut blocks).map_err(|e| {
            if let XzError::TooManyBlocks { .. } = e { XzError::TooManyBlocks { max: max_entries } } else { e }
        })?;
        let stream_at = index_at
            .checked_sub(blocks_len)
            .and_then(|at| at.checked_sub(HEADER_LEN))
            .ok_or(corrupt("index (its blocks would start before the file)", index_at))?;

        let mut header = [0u8; 12];
        src.read_exact_at(&mut header, stream_at)?;
        if header[0..6] != HEADER_MAGIC {
            return Err(corrupt("stream header magic (or the index before it)", stream_at));
        }
        if crc32(&header[6..8]) != le32(&header[8..12]) {
            return Err(corrupt("stream header CRC32", stream_at + 8));
        }
        if header[6..8] != flags {
            return Err(corrupt("stream header flags (they differ from the footer's)", stream_at + 6));
        }

        let mut offset = stream_at + HEADER_LEN;
        for block in &mut blocks[first_block..] {
            block.offset = offset;
            offset += block.padded();
        }
        streams.push(StreamInfo { header });
        segments.push(blocks.len() - first_block);
        end = stream_at;
    }

    // Reversing the whole table puts the streams in order but each stream's blocks backwards.
    streams.reverse();
    blocks.reverse();
    segments.reverse();
    let mut start = 0;
    let mut uncompressed = 0u64;
    for (stream, count) in segments.into_iter().enumerate() {
        let segment = &mut blocks[start..start + count];
        segment.reverse();
        for block in segment {
            block.stream = u32::try_from(stream).map_err(|_| XzError::TooManyBlocks { max: max_entries })?;
            block.uncompressed_start = uncompressed;
            uncompressed = uncompressed
                .checked_add(block.uncompressed_size)
                .ok_or(corrupt("index (uncompressed sizes add up past 2^64)", block.offset))?;
        }
        start += count;
    }
    Ok(Layout { streams, blocks, uncompressed_len: uncompressed })
}

fn check_flags(flags: [u8; 2], at: u64) -> Result<(), XzError> {
    if flags[0] != 0 || flags[1] & 0xF0 != 0 {
        return Err(corrupt("stream flags (reserved bits set)", at));
    }
    Ok(())
}

/// Moves `end` back over stream padding (whole four-byte words of zeros).
fn skip_padding(src: &dyn ReadAt, mut end: u64) -> Result<u64, XzError> {
    // Padding is rare; looking at one word first keeps a file of many small streams from
    // costing a large read per stream.
    let mut word = [0u8; 4];
    src.read_exact_at(&mut word, end.checked_sub(4).ok_or(XzError::Truncated)?)?;
    if word != [0; 4] {
        return Ok(end);
    }
    let mut buf = vec![0u8; CHUNK];
    while end > 0 {
        let n = end.min(CHUNK as u64);
        let chunk = &mut buf[..n as usize];
        src.read_exact_at(chunk, end - n)?;
        if let Some(last) = chunk.iter().rposition(|&b| b != 0) {
            return Ok(round4(end - n + last as u64 + 1));
        }
        end -= n;
    }
    Err(corrupt("stream padding (the file holds nothing else)", 0))
}

/// Parses the index in `[start, end)`, appending its records to `blocks` (offsets and stream
/// numbers are filled in by the caller); returns the bytes its blocks take, padding included.
fn parse_index(
    src: &dyn ReadAt,
    start: u64,
    end: u64,
    max_records: usize,
    blocks: &mut Vec<BlockInfo>,
) -> Result<u64, XzError> {
    let mut r = IndexReader { src, pos: start, end, buf: Vec::new(), at: 0, crc: CRC_INIT };
    if r.byte()? != 0 {
        return Err(corrupt("index indicator", start));
    }
    let count_at = r.pos;
    let count = r.vli("index record count")?;
    // Each record takes at least two bytes and the CRC32 four, so the count is checked against
    // the room the footer gives the index before anything is allocated for it.
    if count > (end - r.pos).saturating_sub(4) / 2 {
        return Err(corrupt("index record count (more records than the index has room for)", count_at));
    }
    if count > max_records as u64 {
        return Err(XzError::TooManyBlocks { max: max_records });
    }
    let mut blocks_len = 0u64;
    let mut uncompressed = 0u64;
    for _ in 0..count {
        let at = r.pos;
        let unpadded = r.vli("index record unpadded size")?;
        if !(MIN_UNPADDED..=MAX_UNPADDED).contains(&unpadded) {
            return Err(corrupt("index record unpadded size (out of range)", at));
        }
        let uncompressed_at = r.pos;
        let uncompressed_size = r.vli("index record uncompressed size")?;
        blocks_len = blocks_len
            .checked_add(round4(unpadded))
            .filter(|&n| n <= start)
            .ok_or(corrupt("index record unpadded size (blocks would be larger than the file)", at))?;
        uncompressed = uncompressed
            .checked_add(uncompressed_size)
            .filter(|&n| n <= VLI_MAX)
            .ok_or(corrupt("index record uncompressed size (stream larger than 2^63 bytes)", uncompressed_at))?;
        blocks.push(BlockInfo { stream: 0, offset: 0, unpadded, uncompressed_start: 0, uncompressed_size });
    }
    while (r.pos - start) % 4 != 0 {
        let at = r.pos;
        if r.byte()? != 0 {
            return Err(corrupt("index padding", at));
        }
    }
    let computed = r.crc ^ CRC_INIT;
    let crc_at = r.pos;
    let mut stored = [0u8; 4];
    for b in &mut stored {
        *b = r.byte()?;
    }
    if computed != le32(&stored) {
        return Err(corrupt("index CRC32", crc_at));
    }
    if r.pos != end {
        return Err(corrupt("index size (shorter than the footer's backward size says)", start));
    }
    Ok(blocks_len)
}

/// Bytes of one index, read in chunks, with a running CRC32.
struct IndexReader<'a> {
    src: &'a dyn ReadAt,
    /// File offset of the next byte `byte` returns.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
    crc: u32,
}

impl IndexReader<'_> {
    fn byte(&mut self) -> Result<u8, XzError> {
        if self.at == self.buf.len() {
            let n = (self.end - self.pos).min(CHUNK as u64) as usize;
            if n == 0 {
                return Err(corrupt("index (runs into the stream footer)", self.pos));
            }
            self.buf.resize(n, 0);
            self.src.read_exact_at(&mut self.buf, self.pos)?;
            self.at = 0;
        }
        let b = self.buf[self.at];
        self.at += 1;
        self.pos += 1;
        self.crc = crc32_byte(self.crc, b);
        Ok(b)
    }

    /// A multibyte integer: seven bits a byte, least significant first, at most nine bytes,
    /// and no superfluous trailing zero byte (the format requires the shortest encoding).
    fn vli(&mut self, what: &'static str) -> Result<u64, XzError> {
        let at = self.pos;
        let mut value = 0u64;
        for i in 0..9 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(corrupt(what, at));
                }
                return Ok(value);
            }
        }
        Err(corrupt(what, at))
    }
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn push_vli(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// The index and footer of a stream that holds only `block`, to follow the block's bytes when
/// it is handed to liblzma on its own. liblzma checks the block against this index, so sizes
/// that disagree with the real index are caught while decoding.
pub(super) fn one_block_tail(block: &BlockInfo, flags: [u8; 2]) -> Vec<u8> {
    let mut out = vec![0x00];
    push_vli(&mut out, 1);
    push_vli(&mut out, block.unpadded);
    push_vli(&mut out, block.uncompressed_size);
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&crc32(&out).to_le_bytes());
    // At most 4 + 3 * 9 bytes, so the division cannot lose anything or underflow.
    let backward = (out.len() / 4 - 1) as u32;
    let mut footer = Vec::with_capacity(12);
    footer.extend_from_slice(&[0; 4]);
    footer.extend_from_slice(&backward.to_le_bytes());
    footer.extend_from_slice(&flags);
    footer.extend_from_slice(&FOOTER_MAGIC);
    let crc = crc32(&footer[4..10]);
    footer[0..4].copy_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&footer);
    out
}

const CRC_INIT: u32 = 0xFFFF_FFFF;

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

fn crc32_byte(crc: u32, b: u8) -> u32 {
    CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8)
}

/// CRC32 as the .xz format uses it (the IEEE polynomial, as in zlib); only headers, footers and
/// indexes go through this, so a bytewise table is plenty.
pub(super) fn crc32(data: &[u8]) -> u32 {
    data.iter().fold(CRC_INIT, |crc, &b| crc32_byte(crc, b)) ^ CRC_INIT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn multibyte_integers_round_trip_and_reject_overlong_forms() {
        for n in [0, 1, 127, 128, 300, 1 << 35, VLI_MAX] {
            let mut bytes = Vec::new();
            push_vli(&mut bytes, n);
            let src: Vec<u8> = bytes.clone();
            let mut r = IndexReader { src: &src, pos: 0, end: bytes.len() as u64, buf: Vec::new(), at: 0, crc: 0 };
            assert_eq!(r.vli("n").unwrap(), n);
        }
        for bad in [&[0x80, 0x00][..], &[0xFF; 10][..], &[0x80][..]] {
            let src: Vec<u8> = bad.to_vec();
            let mut r = IndexReader { src: &src, pos: 0, end: bad.len() as u64, buf: Vec::new(), at: 0, crc: 0 };
            assert!(r.vli("n").is_err(), "{bad:?}");
        }
    }
}
