//! Netascii (RFC 764 via RFC 1350) as the blocks go out: LF becomes CR LF and a bare CR becomes
//! CR NUL, so the receiver's reverse mapping restores the bytes exactly. Converted one block at
//! a time from the shared file contents, a transfer holds one block whatever the file's size
//! (converting whole files cost three times the file per request: issue 12). Pure: the caller
//! reads the source bytes.

/// Where the conversion stands.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoder {
    /// Source bytes converted so far.
    consumed: u64,
    /// The second byte of a pair that did not fit in the previous block.
    carry: Option<u8>,
}

impl Encoder {
    /// Where the next source bytes are read from.
    pub fn source_offset(&self) -> u64 {
        self.consumed
    }

    /// Append up to `room` converted bytes to `out` from `source`, the bytes at
    /// [`source_offset`](Self::source_offset) (`room` of them suffice; fewer only at the end of
    /// the content). Returns how many bytes were appended: fewer than `room` means the
    /// content is done.
    pub fn encode(&mut self, source: &[u8], room: usize, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let full = |out: &Vec<u8>| out.len() - start == room;
        if let Some(byte) = self.carry.take() {
            if room == 0 {
                self.carry = Some(byte);
                return 0;
            }
            out.push(byte);
        }
        let mut used = 0;
        while !full(out) && used < source.len() {
            let b = source[used];
            used += 1;
            let second = match b {
                b'\n' => Some(b'\n'),
                b'\r' => Some(0),
                _ => None,
            };
            match second {
                Some(second) => {
                    out.push(b'\r');
                    if full(out) {
                        self.carry = Some(second);
                    } else {
                        out.push(second);
                    }
                }
                None => out.push(b),
            }
        }
        self.consumed += used as u64;
        out.len() - start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole-file conversion the streaming one must match.
    fn whole(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' => out.extend_from_slice(b"\r\n"),
                b'\r' => out.extend_from_slice(b"\r\0"),
                _ => out.push(b),
            }
        }
        out
    }

    /// Convert `source` in blocks of `blksize`, as a transfer does; the blocks and the bytes
    /// read at most per block.
    fn blocks(source: &[u8], blksize: usize) -> Vec<Vec<u8>> {
        let mut e = Encoder::default();
        let mut blocks = Vec::new();
        loop {
            let at = e.source_offset() as usize;
            let end = (at + blksize).min(source.len());
            let mut block = Vec::new();
            let n = e.encode(&source[at..end], blksize, &mut block);
            assert!(n <= blksize);
            let last = n < blksize;
            blocks.push(block);
            if last {
                return blocks;
            }
        }
    }

    #[test]
    fn blocks_join_to_the_whole_conversion() {
        assert_eq!(blocks(b"a\nb\rc\r\n", 512).concat(), b"a\r\nb\r\0c\r\0\r\n");
        assert_eq!(blocks(b"", 512), vec![Vec::<u8>::new()]);
        // A pair split across blocks: LF at the end of block 1 carries its second byte.
        let b = blocks(b"abc\nd", 4);
        assert_eq!(b, vec![b"abc\r".to_vec(), b"\nd".to_vec()]);
        // Exactly full blocks end with an empty one.
        assert_eq!(blocks(b"ab\n", 4), vec![b"ab\r\n".to_vec(), Vec::new()]);
        assert_eq!(blocks(b"\r", 1), vec![b"\r".to_vec(), b"\0".to_vec(), Vec::new()]);
    }

    #[test]
    fn any_bytes_any_block_size() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in [0usize, 1, 2, 7, 511, 512, 513, 4096, 10_000] {
            let source: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    // Plenty of CR and LF.
                    [b'\r', b'\n', b'a', (x >> 32) as u8][(x % 4) as usize]
                })
                .collect();
            for blksize in [1, 2, 3, 8, 512, 1468] {
                let b = blocks(&source, blksize);
                assert!(b[..b.len() - 1].iter().all(|b| b.len() == blksize), "{len} {blksize}");
                assert_eq!(b.concat(), whole(&source), "{len} {blksize}");
            }
        }
    }
}
