//! Random access to the contents of a `.xz` file without decompressing it to disk: a 2–3 GiB
//! Raspberry Pi OS `.img.xz` can be read at any offset (partition table, FAT, ext4, file
//! contents) through [`ReadAt`], decompressing only the blocks a read touches.
//!
//! For: multi-block files, which is what `xz -T0` (and `-T2`, `--block-size=…`) writes: each
//! block decompresses on its own, so a read costs at most one block's decoding. Streams may be
//! concatenated and padded. Not for: writing, `.lzma`/`.lz` files, reading from a pipe, or files
//! that are one huge block (`xz -T1`, or any single-threaded xz): those are refused with
//! [`XzError::NotSeekable`] when the block does not fit the cache, since serving them would
//! mean decoding from the start for every read.
//!
//! Opening parses only the stream footers, indexes and stream headers, walking backwards from
//! the end of the file; nothing is decompressed until read, and liblzma verifies each block's
//! check (CRC32, CRC64 or SHA-256) when it is decoded.
//!
//! # Memory
//! - Decoded blocks never exceed [`XzOptions::cache_bytes`] in total: the budget counts cached
//!   blocks, blocks being decoded (reserved before decoding starts) and blocks a reader is
//!   copying out of. A read that needs budget held by others waits for it rather than exceed
//!   it. A block bigger than the whole budget makes [`XzReader::open`] fail with
//!   [`XzError::NotSeekable`], so memory stays predictable instead of degrading per file.
//! - Each decode in progress (one per read-ahead thread, plus one per reading thread whose
//!   block is not cached) also holds liblzma's dictionary, capped by [`XzOptions::memlimit`]
//!   and in practice 8 MiB for `xz -6`, and a 1 MiB buffer of compressed input.
//! - The block table takes about 40 bytes a block, capped by [`XzOptions::max_blocks`].
//!
//! So peak memory is about `cache_bytes + decoders × (dictionary + 1 MiB)`: with the defaults
//! and an `xz -T0 -6` image on two cores, under 300 MiB.
//!
//! # Threads
//! - [`XzReader`] is `Send + Sync`; readers on any number of threads share one cache, and a
//!   block being decoded by one thread is waited for, not decoded again, by the others.
//! - Read-ahead: when reads go forward (four in a row, each starting where the previous one
//!   ended or up to 256 KiB after), or during [`XzReader::copy_to`], the next blocks (twice
//!   as many as threads, or 64 MiB worth if more, and never so many that the reader's own
//!   block would not fit beside them) are decoded ahead on [`XzOptions::threads`] worker
//!   threads. Read-ahead never evicts blocks
//!   decoded ahead that nobody has read yet, and stops when the budget has no room, so it
//!   cannot crowd out the reader it serves. The workers are started on first need and
//!   stopped and joined when the reader is dropped (which waits for any decode in hand).
//! - Random reads (practically) never start read-ahead, so random access costs no background
//!   CPU. Several threads each reading sequentially look random together and get none.
//!
//! # Errors
//! Through [`ReadAt`], format and decoding errors are `io::ErrorKind::InvalidData` carrying the
//! [`XzError`]. A failed decode is not cached: each read of a corrupt block fails again.

mod cache;
mod decode;
mod format;
#[cfg(test)]
mod tests;

pub use cache::XzStats;

use crate::read_at::ReadAt;
use cache::Engine;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, Once, PoisonError};
use std::thread::JoinHandle;

const MIB: u64 = 1024 * 1024;

/// Why a `.xz` file cannot be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum XzError {
    #[error("not an .xz file (it does not start with an .xz stream header)")]
    NotXz,
    #[error("the .xz file is truncated (it does not end with a complete stream)")]
    Truncated,
    /// A header, footer, index or padding is malformed; `offset` is a byte offset in the
    /// compressed file.
    #[error("corrupt .xz file: {what} at byte {offset}")]
    Corrupt { what: &'static str, offset: u64 },
    /// A block decompresses to more than the cache may hold.
    #[error(
        "a block of {block_bytes} uncompressed bytes does not fit the {cache_bytes}-byte block cache: the file was \
         made with single-threaded xz (or with very large blocks); recompress with `xz -T0` or decompress it first"
    )]
    NotSeekable { block_bytes: u64, cache_bytes: u64 },
    /// liblzma rejected block number `block` (counting from 0 across all streams).
    #[error("cannot decompress .xz block {block}: {message}")]
    Decode { block: usize, message: String },
    /// The index lists more blocks (plus streams) than [`XzOptions::max_blocks`].
    #[error("the .xz index lists more than {max} blocks and streams (see XzOptions::max_blocks)")]
    TooManyBlocks { max: usize },
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// How much memory and how many threads a reader may use.
#[derive(Clone, Debug)]
pub struct XzOptions {
    /// Budget for decoded blocks: cached, being decoded and being copied from. Default 256 MiB.
    pub cache_bytes: u64,
    /// Read-ahead threads for sequential reading; 0 disables read-ahead. Default: the number
    /// of CPUs. No more are started than blocks fit in the read-ahead window.
    pub threads: usize,
    /// Decoder memory limit for one block (mostly the LZMA2 dictionary). Explicit because
    /// liblzma's own defaults mean either failure or a single thread. Default 128 MiB, enough
    /// for any `xz` preset (`-9` needs 65 MiB).
    pub memlimit: u64,
    /// Most blocks plus streams the index may list; bounds the block table a crafted file can
    /// make us allocate. Default 2^20, about 40 MiB of table and far more than real images
    /// have (a 3 GiB `xz -T0` image has about 130).
    pub max_blocks: usize,
}

impl Default for XzOptions {
    fn default() -> XzOptions {
        XzOptions {
            cache_bytes: 256 * MIB,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memlimit: 128 * MIB,
            max_blocks: 1 << 20,
        }
    }
}

/// Random-access reader of the uncompressed contents of a `.xz` file. See the module docs for
/// its memory and thread behaviour.
pub struct XzReader {
    engine: Arc<Engine>,
    threads: usize,
    workers: Mutex<Vec<JoinHandle<()>>>,
    started: Once,
}

impl XzReader {
    /// Parses the stream footer(s) and index(es), walking backwards through concatenated
    /// streams and stream padding, validates them (CRC32s, sizes, offsets inside the file),
    /// and builds the block table. Decompresses nothing.
    pub fn open(compressed: Arc<dyn ReadAt>, options: XzOptions) -> Result<XzReader, XzError> {
        let layout = format::parse(compressed.as_ref(), options.max_blocks)?;
        let largest = layout.blocks.iter().map(|b| b.uncompressed_size).max().unwrap_or(0);
        if largest > options.cache_bytes || usize::try_from(largest).is_err() {
            return Err(XzError::NotSeekable { block_bytes: largest, cache_bytes: options.cache_bytes });
        }
        let depth = read_ahead_depth(options.threads, largest, options.cache_bytes).min(layout.blocks.len());
        let engine = Engine::new(compressed, layout, options.cache_bytes, options.memlimit, depth);
        Ok(XzReader {
            engine: Arc::new(engine),
            threads: options.threads,
            workers: Mutex::new(Vec::new()),
            started: Once::new(),
        })
    }

    /// Length of the uncompressed contents.
    pub fn uncompressed_len(&self) -> u64 {
        self.engine.layout.uncompressed_len
    }

    /// Blocks in all streams, empty ones included.
    pub fn block_count(&self) -> usize {
        self.engine.layout.blocks.len()
    }

    /// Uncompressed size of the largest block.
    pub fn largest_block(&self) -> u64 {
        self.engine.layout.blocks.iter().map(|b| b.uncompressed_size).max().unwrap_or(0)
    }

    /// Cache and decoding counters.
    pub fn stats(&self) -> XzStats {
        self.engine.stats()
    }

    /// Writes the whole uncompressed contents to `out`, decoding blocks ahead on the read-ahead
    /// threads; returns the number of bytes written.
    pub fn copy_to(&self, out: &mut impl Write) -> Result<u64, XzError> {
        self.start_workers();
        let mut written = 0u64;
        for (number, block) in self.engine.layout.blocks.iter().enumerate() {
            if block.uncompressed_size == 0 {
                continue;
            }
            self.engine.read_ahead_after(number);
            let data = self.engine.get(number)?;
            out.write_all(&data)?;
            written += data.len() as u64;
        }
        out.flush()?;
        Ok(written)
    }

    /// The block holding uncompressed byte `offset`, which must be inside the contents.
    fn block_at(&self, offset: u64) -> usize {
        self.engine.layout.blocks.partition_point(|b| b.uncompressed_end() <= offset)
    }

    fn start_workers(&self) {
        if self.engine.depth == 0 {
            return;
        }
        self.started.call_once(|| {
            let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
            // More workers than blocks in the read-ahead window would have nothing to do.
            for i in 0..self.threads.min(self.engine.depth) {
                let engine = self.engine.clone();
                let spawned =
                    std::thread::Builder::new().name(format!("xz-read-ahead-{i}")).spawn(move || engine.work());
                // Without a thread there is just less read-ahead; reads still decode themselves.
                if let Ok(handle) = spawned {
                    workers.push(handle);
                }
            }
        });
    }
}

/// How many blocks to decode ahead of a sequential reader: enough to keep every thread busy
/// twice over (or 64 MiB, for small blocks), and never so many that the reader's own block
/// would not fit beside them.
fn read_ahead_depth(threads: usize, largest: u64, cache_bytes: u64) -> usize {
    if threads == 0 || largest == 0 {
        return 0;
    }
    let wanted = (threads as u64).saturating_mul(2).max((64 * MIB).div_ceil(largest));
    let room = (cache_bytes / largest).saturating_sub(1);
    usize::try_from(wanted.min(room)).unwrap_or(usize::MAX)
}

impl Drop for XzReader {
    fn drop(&mut self) {
        self.engine.shut_down();
        let workers = std::mem::take(self.workers.get_mut().unwrap_or_else(PoisonError::into_inner));
        for worker in workers {
            // A worker that panicked has nothing left to clean up.
            let _ = worker.join();
        }
    }
}

impl ReadAt for XzReader {
    fn len(&self) -> u64 {
        self.uncompressed_len()
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let len = self.uncompressed_len();
        let Some(end) = offset.checked_add(buf.len() as u64).filter(|&end| end <= len) else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("read of {} bytes at {offset} past the end ({len} bytes)", buf.len()),
            ));
        };
        if buf.is_empty() {
            return Ok(());
        }
        if self.engine.note_read(offset, end, self.block_at(end - 1)) {
            self.start_workers();
        }
        let mut done = 0;
        while done < buf.len() {
            let at = offset + done as u64;
            let number = self.block_at(at);
            let block = &self.engine.layout.blocks[number];
            let within = (at - block.uncompressed_start) as usize;
            let n = (block.uncompressed_size as usize - within).min(buf.len() - done);
            let data = self.engine.get(number).map_err(into_io)?;
            let part = data.get(within..within + n).ok_or_else(|| {
                into_io(XzError::Decode { block: number, message: "decoded to fewer bytes than the index says".into() })
            })?;
            buf[done..done + n].copy_from_slice(part);
            done += n;
        }
        Ok(())
    }
}

/// I/O errors pass through as they are; format errors become `InvalidData` carrying the
/// [`XzError`], which callers can get back with `get_ref`/`downcast`.
fn into_io(e: XzError) -> io::Error {
    match e {
        XzError::Io(e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other),
    }
}
