//! Compressing a disk image to `.img.xz` with liblzma's multi-threaded encoder, so the output
//! is the same bytes whatever the machine: the preset, the block size and the check are fixed,
//! and the multi-threaded encoder cuts blocks at fixed offsets whatever its thread count (xz
//! 5.4's `-T1` runs a different, single-block encoder, which is why the research saw `-T1`
//! differ from `-T2`). Independent blocks also let `disk::xz` (and Raspberry Pi Imager's
//! streaming writer) read the result at any offset.
//!
//! One pass over the input: it is hashed (the `extract_sha256` Raspberry Pi Imager checks)
//! while it is compressed, and the output is hashed while it is written. Holes in a sparse
//! image read as zeros, which LZMA2 compresses to almost nothing.
//!
//! Not for: decompressing (`disk::xz`), or formats other than `.xz`.

use anyhow::{Context, Result, bail};
use liblzma::stream::{Check, MtStreamBuilder};
use liblzma::write::XzEncoder;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// How to compress. Everything that changes the output bytes is here, none of it chosen by
/// the machine; `threads` and `memlimit` change only speed and memory.
#[derive(Clone, Debug)]
pub struct XzSettings {
    /// 0–9, as `xz -0`…`-9`.
    pub preset: u32,
    /// Uncompressed bytes per block.
    pub block_size: u64,
    pub check: Check,
    /// Worker threads wanted; fewer are used if `memlimit` asks.
    pub threads: u32,
    /// Bytes the encoder may use. The thread count is lowered until liblzma's estimate fits
    /// (liblzma's own limits apply only to decoders); if one thread does not fit, it is an
    /// error rather than a different output.
    pub memlimit: u64,
}

impl Default for XzSettings {
    /// Preset 6 (xz's default), 16 MiB blocks (a few times preset 6's 8 MiB dictionary, as
    /// liblzma recommends; about 1 % larger output than one huge block), CRC64 (xz's default
    /// check), a thread per core, 2 GiB of memory (about 9 threads' worth).
    fn default() -> XzSettings {
        XzSettings {
            preset: 6,
            block_size: 16 << 20,
            check: Check::Crc64,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memlimit: 2 << 30,
        }
    }
}

/// What was compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XzSummary {
    pub input_size: u64,
    /// Lower-case hex sha256 of the uncompressed input.
    pub input_sha256: String,
    pub output_size: u64,
    /// Lower-case hex sha256 of the `.xz` file.
    pub output_sha256: String,
    /// Encoder threads used (at most `XzSettings::threads`).
    pub threads: u32,
}

/// Compress the file at `input` into `output` (written to a temporary file and renamed into
/// place), calling `progress` with the input bytes read so far after each MiB.
pub fn compress_file(
    input: &Path,
    output: &Path,
    settings: &XzSettings,
    progress: &mut dyn FnMut(u64),
) -> Result<XzSummary> {
    let (builder, threads) = encoder_for(settings)?;
    let mut source = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut summary = None;
    crate::output::write_with(output, |file| {
        let stream = builder.encoder().context("starting the xz encoder")?;
        let sink = Hashing { inner: BufWriter::with_capacity(1 << 20, file), hasher: Sha256::new(), len: 0 };
        let mut encoder = XzEncoder::new_stream(sink, stream);
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut read = 0u64;
        loop {
            let n = match source.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e).with_context(|| format!("reading {}", input.display())),
            };
            hasher.update(&buf[..n]);
            encoder.write_all(&buf[..n])?;
            read += n as u64;
            progress(read);
        }
        let mut sink = encoder.finish()?;
        sink.inner.flush()?;
        summary = Some(XzSummary {
            input_size: read,
            input_sha256: crate::digest::hex(&hasher.finalize()),
            output_size: sink.len,
            output_sha256: crate::digest::hex(&sink.hasher.finalize()),
            threads,
        });
        Ok(())
    })?;
    summary.context("the xz encoder produced no summary")
}

/// The encoder's settings, with as many threads as fit the memory limit.
fn encoder_for(settings: &XzSettings) -> Result<(MtStreamBuilder, u32)> {
    if settings.preset > 9 {
        bail!("xz presets are 0 to 9, not {}", settings.preset);
    }
    if settings.block_size == 0 {
        // 0 would let liblzma pick the block size from the preset: a machine-independent
        // value today, but not one this module promises.
        bail!("the xz block size must be set");
    }
    let mut builder = MtStreamBuilder::new();
    // timeout 0: process() returns when its input is taken or its output full, never early.
    builder.preset(settings.preset).block_size(settings.block_size).check(settings.check).timeout_ms(0);
    for threads in (1..=settings.threads.max(1)).rev() {
        builder.threads(threads);
        let needed = builder.memusage();
        if needed <= settings.memlimit {
            return Ok((builder, threads));
        }
        if threads == 1 {
            bail!(
                "xz preset {} with {}-byte blocks needs {needed} bytes even with one thread, more than the {}-byte limit",
                settings.preset,
                settings.block_size,
                settings.memlimit
            );
        }
    }
    unreachable!("the loop returns or fails at one thread")
}

/// A writer that hashes and counts what passes through.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mixed(len: usize) -> Vec<u8> {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        (0..len)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Half text-like, half zeros: compressible, as an image is.
                if (i / 65536) % 2 == 0 { b"bramble "[(x % 8) as usize] } else { 0 }
            })
            .collect()
    }

    #[test]
    fn thread_counts_give_the_same_bytes_and_the_input_hash() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.img");
        let data = mixed(5 << 20);
        std::fs::write(&input, &data).unwrap();
        let mut outputs = Vec::new();
        for threads in [1, 2, 3] {
            let out = dir.path().join(format!("out{threads}.xz"));
            let settings = XzSettings { threads, block_size: 1 << 20, ..XzSettings::default() };
            let mut seen = Vec::new();
            let summary = compress_file(&input, &out, &settings, &mut |n| seen.push(n)).unwrap();
            assert_eq!(summary.input_size, data.len() as u64);
            assert_eq!(summary.input_sha256, crate::digest::sha256_hex(&data));
            let bytes = std::fs::read(&out).unwrap();
            assert_eq!(summary.output_size, bytes.len() as u64);
            assert_eq!(summary.output_sha256, crate::digest::sha256_hex(&bytes));
            assert_eq!(seen.last(), Some(&(data.len() as u64)));
            assert!(seen.windows(2).all(|w| w[0] < w[1]));
            outputs.push(bytes);
        }
        assert!(outputs[0] == outputs[1] && outputs[1] == outputs[2]);
        // And our own multi-block reader reads it back.
        let source: std::sync::Arc<dyn crate::read_at::ReadAt> = std::sync::Arc::new(outputs.remove(0));
        let reader = crate::disk::xz::XzReader::open(source, crate::disk::xz::XzOptions::default()).unwrap();
        let mut back = vec![0u8; data.len()];
        crate::read_at::ReadAt::read_exact_at(&reader, &mut back, 0).unwrap();
        assert!(back == data);
    }

    #[test]
    fn memory_limits_lower_threads_or_refuse() {
        let settings = XzSettings { threads: 8, memlimit: 300 << 20, ..XzSettings::default() };
        let (_, threads) = encoder_for(&settings).unwrap();
        assert!((1..8).contains(&threads), "{threads}");
        let tiny = XzSettings { memlimit: 1 << 20, ..XzSettings::default() };
        let err = |s: &XzSettings| encoder_for(s).err().map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(err(&tiny).contains("even with one thread"));
        assert!(err(&XzSettings { preset: 10, ..XzSettings::default() }).contains("presets"));
        assert!(err(&XzSettings { block_size: 0, ..XzSettings::default() }).contains("block size"));
    }
}
