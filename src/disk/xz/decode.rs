//! Decompressing one block on its own: liblzma's stream decoder is given the block wrapped in a
//! stream of its own (the real stream header, the block's bytes, a one-record index and a
//! footer), so it checks the block header, the data, the block's check and its sizes for us.

use super::XzError;
use super::format::{BlockInfo, one_block_tail};
use crate::read_at::ReadAt;
use liblzma::stream::{Action, Error as LzmaError, Status, Stream};

/// Compressed bytes are read from the source in pieces this big, so a block's compressed form is
/// never held whole.
const INPUT_CHUNK: u64 = 1024 * 1024;

/// The block's uncompressed bytes, exactly `block.uncompressed_size` of them.
pub(super) fn decode_block(
    src: &dyn ReadAt,
    stream_header: &[u8; 12],
    block: &BlockInfo,
    number: usize,
    memlimit: u64,
) -> Result<Vec<u8>, XzError> {
    let fail = |message: String| XzError::Decode { block: number, message };
    let size = usize::try_from(block.uncompressed_size)
        .map_err(|_| fail(format!("{} bytes do not fit in memory", block.uncompressed_size)))?;
    let mut decoder = Stream::new_stream_decoder(memlimit, 0).map_err(|e| fail(describe(e, memlimit)))?;
    let mut feeder = Feeder { decoder: &mut decoder, out: Vec::with_capacity(size), size, ended: false };

    feeder.feed(stream_header).map_err(|e| fail(format!("{e} (in the stream header)")))?;
    let mut input = vec![0u8; block.padded().min(INPUT_CHUNK) as usize];
    let mut at = block.offset;
    let end = block.offset + block.padded();
    while at < end {
        let n = (end - at).min(INPUT_CHUNK) as usize;
        src.read_exact_at(&mut input[..n], at)?;
        feeder.feed(&input[..n]).map_err(|e| fail(format!("{e} (compressed bytes near offset {at})")))?;
        at += n as u64;
    }
    let tail = one_block_tail(block, [stream_header[6], stream_header[7]]);
    feeder.feed(&tail).map_err(|e| fail(format!("{e} (block at offset {} disagrees with the index)", block.offset)))?;
    if !feeder.ended {
        return Err(fail(format!("block at offset {} ends early", block.offset)));
    }
    if feeder.out.len() != size {
        return Err(fail(format!("gave {} bytes where the index says {size}", feeder.out.len())));
    }
    Ok(feeder.out)
}

struct Feeder<'a> {
    decoder: &'a mut Stream,
    out: Vec<u8>,
    /// What the index promises; output past it is corruption, not a reason to grow.
    size: usize,
    ended: bool,
}

impl Feeder<'_> {
    /// Gives all of `input` to the decoder.
    fn feed(&mut self, mut input: &[u8]) -> Result<(), String> {
        let mut spill = [0u8; 64];
        while !input.is_empty() {
            if self.ended {
                return Err("data after the end of the block's stream".to_string());
            }
            let (in_before, out_before) = (self.decoder.total_in(), self.decoder.total_out());
            // Only the promised room is offered, so a block that decodes to more than the
            // index says shows up as output into `spill` rather than as a larger buffer.
            let full = self.out.len() >= self.size;
            let result = if !full {
                self.decoder.process_vec(input, &mut self.out, Action::Run)
            } else {
                self.decoder.process(input, &mut spill, Action::Run)
            };
            let status = result.map_err(|e| describe(e, self.decoder.memlimit()))?;
            if self.out.len() > self.size || (full && self.decoder.total_out() != out_before) {
                return Err(format!("decodes to more than the {} bytes the index says", self.size));
            }
            let used = (self.decoder.total_in() - in_before) as usize;
            input = input.get(used..).unwrap_or_default();
            match status {
                Status::StreamEnd => self.ended = true,
                // liblzma reports "no progress possible" as this; with input left, that means
                // it wants more room than the index promised.
                Status::MemNeeded => return Err("no progress (sizes disagree with the index)".to_string()),
                Status::Ok | Status::GetCheck => {}
            }
            if used == 0 && self.decoder.total_out() == out_before && !self.ended {
                return Err("no progress (sizes disagree with the index)".to_string());
            }
        }
        Ok(())
    }
}

fn describe(e: LzmaError, memlimit: u64) -> String {
    match e {
        LzmaError::Data => "compressed data is corrupt".to_string(),
        LzmaError::Format => "not a .xz stream".to_string(),
        LzmaError::Options => "the block uses filters or options liblzma does not support".to_string(),
        LzmaError::MemLimit => {
            format!("decoding needs more than the {memlimit}-byte decoder memory limit (raise XzOptions::memlimit)")
        }
        LzmaError::Mem => "out of memory".to_string(),
        LzmaError::NoCheck | LzmaError::UnsupportedCheck => "unexpected check report".to_string(),
        LzmaError::Program => "liblzma reported a usage error".to_string(),
    }
}
