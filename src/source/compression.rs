//! The compressions Debian uses for package members and archive indexes, told apart by file
//! name suffix (as dpkg and apt do), and decoders over any reader: xz and legacy lzma
//! (liblzma), gzip (flate2), zstd (the zstd crate), or none. Not for bzip2, which Debian
//! dropped long ago; such a file is a clear error.

use std::io::{self, Read};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Lzma,
    Zstd,
}

impl Compression {
    /// The compression a name ending (`data.tar.xz`, `Packages.gz`) stands for, after `stem`;
    /// `None` (the Rust one) if the name is not `stem` plus a known suffix.
    pub fn from_name(name: &str, stem: &str) -> Option<Compression> {
        match name.strip_prefix(stem)? {
            "" => Some(Compression::None),
            ".gz" => Some(Compression::Gzip),
            ".xz" => Some(Compression::Xz),
            ".lzma" => Some(Compression::Lzma),
            ".zst" => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// A reader of the decompressed bytes.
    pub fn decoder<'a, R: Read + 'a>(self, reader: R) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(reader)),
            Compression::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX).map_err(io::Error::other)?;
                Box::new(liblzma::read::XzDecoder::new_stream(reader, stream))
            }
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        })
    }

    /// All of `bytes` decompressed, refusing more than `limit` bytes of output (a damaged or
    /// hostile file must not fill the memory).
    pub fn decompress(self, bytes: &[u8], limit: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decoder(bytes)?.take(limit.saturating_add(1)).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("it decompresses to more than {limit} bytes"),
            ));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn samples(data: &[u8]) -> Vec<(Compression, Vec<u8>)> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(data).unwrap();
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(data).unwrap();
        let lzma_stream =
            liblzma::stream::Stream::new_lzma_encoder(&liblzma::stream::LzmaOptions::new_preset(6).unwrap()).unwrap();
        let mut lzma = liblzma::write::XzEncoder::new_stream(Vec::new(), lzma_stream);
        lzma.write_all(data).unwrap();
        vec![
            (Compression::None, data.to_vec()),
            (Compression::Gzip, gz.finish().unwrap()),
            (Compression::Xz, xz.finish().unwrap()),
            (Compression::Lzma, lzma.finish().unwrap()),
            (Compression::Zstd, zstd::encode_all(data, 3).unwrap()),
        ]
    }

    #[test]
    fn every_kind_round_trips_and_limits_hold() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for (kind, packed) in samples(&data) {
            assert_eq!(kind.decompress(&packed, data.len() as u64).unwrap(), data, "{kind:?}");
            let err = kind.decompress(&packed, 1000).unwrap_err();
            assert!(err.to_string().contains("more than 1000 bytes"), "{kind:?}: {err}");
        }
    }

    #[test]
    fn names_pick_the_decoder() {
        assert_eq!(Compression::from_name("data.tar.xz", "data.tar"), Some(Compression::Xz));
        assert_eq!(Compression::from_name("control.tar", "control.tar"), Some(Compression::None));
        assert_eq!(Compression::from_name("Packages.zst", "Packages"), Some(Compression::Zstd));
        assert_eq!(Compression::from_name("data.tar.bz2", "data.tar"), None);
        assert_eq!(Compression::from_name("other", "data.tar"), None);
    }

    #[test]
    fn damaged_input_is_an_error_not_a_panic() {
        let data = b"hello hello hello hello".repeat(50);
        for (kind, packed) in samples(&data) {
            if kind == Compression::None {
                continue;
            }
            for cut in [0, 1, packed.len() / 2, packed.len() - 1] {
                assert!(
                    kind.decompress(&packed[..cut], 1 << 20).map(|d| d != data).unwrap_or(true),
                    "{kind:?} cut {cut}"
                );
            }
            let mut flipped = packed.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0x55;
            let _ = kind.decompress(&flipped, 1 << 20);
        }
    }
}
