//! Tests against files made by the real `xz` tool (xz-utils must be installed).

use super::*;
use crate::read_at::{Cursor, FileSource};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

const KIB: usize = 1024;

/// splitmix64: fast, seedable, good enough to be incompressible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// Random, text-like and zero stretches, so blocks differ in how well they compress.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 8] = ["raspberry ", "pi ", "kernel ", "initramfs ", "cmdline.txt ", "boot ", "ext4 ", "\n"];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = (rng.below(96 * KIB as u64) as usize + 1).min(len - out.len());
        match rng.below(3) {
            0 => {
                let start = out.len();
                out.resize(start + run, 0);
                rng.fill(&mut out[start..]);
            }
            1 => {
                let end = out.len() + run;
                while out.len() < end {
                    let word = WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes();
                    out.extend_from_slice(&word[..word.len().min(end - out.len())]);
                }
            }
            _ => out.resize(out.len() + run, 0),
        }
    }
    out
}

/// `xz -c ARGS` of `data`, by the real tool.
fn xz(args: &[&str], data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in");
    std::fs::write(&path, data).unwrap();
    let out = Command::new("xz")
        .args(args)
        .arg("-c")
        .arg(&path)
        .output()
        .expect("these tests need the xz tool (apt-get install xz-utils)");
    assert!(out.status.success(), "xz {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn options(cache_bytes: u64, threads: usize) -> XzOptions {
    XzOptions { cache_bytes, threads, ..XzOptions::default() }
}

fn open(bytes: Vec<u8>, options: XzOptions) -> Result<XzReader, XzError> {
    XzReader::open(Arc::new(bytes), options)
}

fn read(reader: &XzReader, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    reader.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Offsets worth reading at: the start, the end, and both sides of every block boundary.
fn boundaries(reader: &XzReader) -> Vec<u64> {
    let mut at = vec![0, reader.len().saturating_sub(1)];
    for block in &reader.engine.layout.blocks {
        for edge in [block.uncompressed_start, block.uncompressed_end()] {
            at.extend([edge.saturating_sub(1), edge, edge + 1]);
        }
    }
    at.retain(|&o| o < reader.len());
    at
}

fn check_reads(reader: &XzReader, original: &[u8], seed: u64, random_reads: usize) {
    assert_eq!(reader.len(), original.len() as u64);
    let mut rng = Rng(seed);
    let mut spans: Vec<(u64, usize)> = Vec::new();
    for at in boundaries(reader) {
        for len in [1, 7, 4096, 300 * KIB] {
            spans.push((at, len));
        }
    }
    for _ in 0..random_reads {
        spans.push((rng.below(original.len() as u64), rng.below(200 * KIB as u64) as usize + 1));
    }
    spans.push((0, original.len()));
    for (at, len) in spans {
        let len = len.min(original.len() - at as usize);
        let got = read(reader, at, len).unwrap();
        assert!(got == original[at as usize..at as usize + len], "read of {len} at {at} differs");
    }
    let end = reader.len();
    assert_eq!(read(reader, end, 1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(read(reader, end - 1, 2).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert_eq!(read(reader, u64::MAX, 1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    assert!(read(reader, end, 0).unwrap().is_empty());
}

#[test]
fn reads_match_the_original_for_every_way_xz_writes() {
    let original = mixed(3 * 1024 * KIB + 12345, 1);
    let cases: [(&[&str], bool); 9] = [
        (&["-T0"], false),
        (&["-T2", "--block-size=1MiB"], true),
        (&["-T0", "-9", "--block-size=700KiB"], true),
        (&["-T0", "-9"], false),
        (&["--check=crc32", "--block-size=300KiB"], true),
        (&["--check=crc64", "-T2", "--block-size=256KiB"], true),
        (&["--check=sha256", "--block-size=512KiB"], true),
        (&["--check=none", "--block-size=400KiB"], true),
        (&["-T1"], false),
    ];
    for (i, (args, multi)) in cases.into_iter().enumerate() {
        let reader = open(xz(args, &original), XzOptions::default()).unwrap();
        assert_eq!(reader.block_count() > 1, multi, "{args:?}: {} blocks", reader.block_count());
        assert!(reader.largest_block() <= original.len() as u64);
        check_reads(&reader, &original, i as u64, 200);
        assert_eq!(reader.stats().failed_decodes, 0);
    }
}

#[test]
fn copy_to_matches_xz_dc_and_sha256sum() {
    let dir = tempfile::tempdir().unwrap();
    let original = mixed(5 * 1024 * KIB, 2);
    let path = dir.path().join("image.img.xz");
    std::fs::write(&path, xz(&["-T2", "--block-size=512KiB"], &original)).unwrap();
    let reference =
        Command::new("sh").arg("-c").arg(format!("xz -dc '{}' | sha256sum", path.display())).output().unwrap();
    let reference = String::from_utf8(reference.stdout).unwrap();
    assert_eq!(reference.split_whitespace().next().unwrap(), sha256_hex(&original));

    let source = Arc::new(FileSource::new(std::fs::File::open(&path).unwrap()).unwrap());
    let reader = XzReader::open(source, options(2 * 1024 * 1024, 2)).unwrap();
    let mut hasher = HashWriter(Sha256::new());
    assert_eq!(reader.copy_to(&mut hasher).unwrap(), original.len() as u64);
    let ours: String = hasher.0.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(ours, reference.split_whitespace().next().unwrap());
    let stats = reader.stats();
    assert!(stats.bytes_peak <= 2 * 1024 * 1024, "{stats:?}");
    assert_eq!(stats.decodes, reader.block_count() as u64, "{stats:?}");
}

struct HashWriter(Sha256);

impl Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn concatenated_streams_with_padding_read_as_one() {
    let a = mixed(700 * KIB, 3);
    let b = mixed(1500 * KIB, 4);
    let c: Vec<u8> = Vec::new();
    let d = mixed(900 * KIB, 5);
    let mut file = xz(&["--check=crc32"], &a);
    file.extend(xz(&["--check=sha256", "--block-size=256KiB"], &b));
    file.extend([0u8; 8]);
    file.extend(xz(&["--check=none"], &c));
    file.extend([0u8; 4]);
    file.extend(xz(&["--check=crc64", "-T2", "--block-size=200KiB"], &d));
    file.extend([0u8; 12]);
    let original = [a, b, c, d].concat();

    let reader = open(file, XzOptions::default()).unwrap();
    assert_eq!(reader.engine.layout.streams.len(), 4);
    // a: one block, b: six, c (empty): none, d: five.
    assert_eq!(reader.block_count(), 12);
    check_reads(&reader, &original, 3, 300);
    let mut all = Vec::new();
    reader.copy_to(&mut all).unwrap();
    assert!(all == original);
}

#[test]
fn padding_that_is_not_whole_words_is_refused() {
    let one = xz(&[], &mixed(50 * KIB, 6));
    let mut ragged = one.clone();
    ragged.extend([0u8; 2]);
    assert!(matches!(open(ragged, XzOptions::default()), Err(XzError::Truncated)));
    let mut misaligned = one.clone();
    misaligned.extend([0u8; 2]);
    misaligned.extend(&one[..one.len() - 2]);
    assert!(open(misaligned, XzOptions::default()).is_err());
    let mut leading = vec![0u8; 4];
    leading.extend(&one);
    assert!(matches!(open(leading, XzOptions::default()), Err(XzError::NotXz)));
}

#[test]
fn empty_contents_and_non_xz_files() {
    let empty = open(xz(&[], &[]), XzOptions::default()).unwrap();
    assert_eq!((empty.len(), empty.block_count(), empty.largest_block()), (0, 0, 0));
    assert!(read(&empty, 0, 0).unwrap().is_empty());
    assert_eq!(read(&empty, 0, 1).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    let mut sink = Vec::new();
    assert_eq!(empty.copy_to(&mut sink).unwrap(), 0);

    // Streams count against the table limit too, so a file of empty streams cannot make it huge.
    let many = xz(&[], &[]).repeat(1000);
    let reader = open(many.clone(), XzOptions::default()).unwrap();
    assert_eq!((reader.len(), reader.engine.layout.streams.len()), (0, 1000));
    assert!(matches!(
        open(many, XzOptions { max_blocks: 999, ..XzOptions::default() }),
        Err(XzError::TooManyBlocks { max: 999 })
    ));

    for junk in [Vec::new(), b"hello".to_vec(), mixed(10 * KIB, 7), vec![0x1F, 0x8B, 8, 0, 0, 0, 0, 0]] {
        assert!(matches!(open(junk, XzOptions::default()), Err(XzError::NotXz)));
    }
    // An .lzma (LZMA_Alone) file is not .xz either.
    assert!(matches!(open(xz(&["--format=lzma"], b"abc"), XzOptions::default()), Err(XzError::NotXz)));
}

#[test]
fn truncated_files_are_errors() {
    let file = xz(&["--block-size=64KiB"], &mixed(600 * KIB, 8));
    let mut cuts: Vec<usize> = (0..40).chain(file.len() - 64..file.len()).collect();
    cuts.extend((1..200).map(|i| file.len() * i / 200));
    for cut in cuts {
        let result = open(file[..cut].to_vec(), XzOptions::default());
        assert!(
            matches!(result, Err(XzError::Truncated | XzError::NotXz | XzError::Corrupt { .. })),
            "cut at {cut}: {:?}",
            result.err()
        );
    }
}

/// Where the (single) stream's index lies, from its footer.
fn index_range(file: &[u8]) -> std::ops::Range<usize> {
    let footer = &file[file.len() - 12..];
    let backward = (u32::from_le_bytes(footer[4..8].try_into().unwrap()) as usize + 1) * 4;
    file.len() - 12 - backward..file.len() - 12
}

#[test]
fn corrupt_index_and_footer_are_named() {
    let original = mixed(800 * KIB, 9);
    let file = xz(&["--block-size=100KiB"], &original);
    let index = index_range(&file);

    let mut bad = file.clone();
    bad[index.end - 2] ^= 0x40;
    match open(bad, XzOptions::default()) {
        Err(e @ XzError::Corrupt { what: "index CRC32", offset }) => {
            assert_eq!(offset as usize, index.end - 4);
            assert!(e.to_string().contains("index CRC32"), "{e}");
        }
        other => panic!("{:?}", other.err()),
    }
    for at in index.clone() {
        for bit in [0x01, 0x80] {
            let mut bad = file.clone();
            bad[at] ^= bit;
            match open(bad, XzOptions::default()) {
                Err(XzError::Corrupt { what, .. }) => assert!(what.contains("index"), "byte {at}: {what}"),
                other => panic!("index byte {at}: {:?}", other.err()),
            }
        }
    }
    for at in file.len() - 12..file.len() {
        let mut bad = file.clone();
        bad[at] ^= 0x01;
        let result = open(bad, XzOptions::default());
        assert!(
            matches!(result, Err(XzError::Corrupt { .. } | XzError::Truncated)),
            "footer byte {at}: {result:?}",
            result = result.as_ref().err()
        );
    }
    let mut bad = file.clone();
    bad[7] ^= 0x01;
    assert!(matches!(open(bad, XzOptions::default()), Err(XzError::Corrupt { .. })));
}

#[test]
fn corrupt_block_data_fails_only_reads_of_that_block() {
    let original = mixed(1024 * KIB, 10);
    let file = xz(&["--block-size=128KiB", "--check=crc64"], &original);
    let layout = open(file.clone(), XzOptions::default()).unwrap().engine.layout.blocks.clone();
    let victim = &layout[2];
    let mut bad = file.clone();
    bad[(victim.offset + victim.unpadded / 2) as usize] ^= 0x10;
    let reader = open(bad, options(64 * 1024 * 1024, 0)).unwrap();
    assert!(read(&reader, 0, 1000).unwrap() == original[..1000]);
    let err = read(&reader, victim.uncompressed_start + 5, 10).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    match err.get_ref().and_then(|e| e.downcast_ref::<XzError>()) {
        Some(XzError::Decode { block: 2, message }) => assert!(!message.is_empty()),
        other => panic!("{other:?}"),
    }
    let last = &layout[layout.len() - 1];
    assert!(
        read(&reader, last.uncompressed_start, 10).unwrap()[..] == original[last.uncompressed_start as usize..][..10]
    );
    assert!(matches!(reader.copy_to(&mut Vec::new()), Err(XzError::Decode { block: 2, .. })));
    assert!(reader.stats().failed_decodes >= 2);
    // Failed decodes give their budget back.
    assert!(reader.stats().bytes_now <= reader.stats().bytes_peak);
    let cached: u64 =
        reader.engine.layout.blocks.iter().map(|b| b.uncompressed_size).sum::<u64>() - victim.uncompressed_size;
    assert!(reader.stats().bytes_now <= cached);
}

#[test]
fn a_single_block_bigger_than_the_cache_is_not_seekable() {
    let original = mixed(3 * 1024 * KIB, 11);
    let file = xz(&["-T1"], &original);
    match open(file.clone(), options(1024 * 1024, 2)) {
        Err(e @ XzError::NotSeekable { block_bytes, cache_bytes: 1_048_576 }) => {
            assert_eq!(block_bytes, original.len() as u64);
            assert!(e.to_string().contains("xz -T0"), "{e}");
        }
        other => panic!("{:?}", other.err()),
    }
    // The same file is fine when its block fits.
    let reader = open(file, options(4 * 1024 * 1024, 2)).unwrap();
    assert_eq!(reader.block_count(), 1);
    check_reads(&reader, &original, 11, 50);
    assert_eq!(reader.stats().decodes, 1);
}

#[test]
fn the_budget_holds_under_concurrent_random_and_sequential_reads() {
    let original = Arc::new(mixed(3 * 1024 * KIB, 12));
    let file = xz(&["-T2", "--block-size=64KiB"], &original);
    let budget = 64 * 1024 * 7 / 2;
    let reader = Arc::new(open(file, options(budget, 2)).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (reader, original) = (reader.clone(), original.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(100 + t);
                for _ in 0..150 {
                    let at = rng.below(original.len() as u64);
                    let len = (rng.below(150 * KIB as u64) as usize + 1).min(original.len() - at as usize);
                    assert!(read(&reader, at, len).unwrap() == original[at as usize..at as usize + len]);
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    reader.copy_to(&mut all).unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert!(all == *original);
    let stats = reader.stats();
    assert!(stats.bytes_peak <= budget, "{stats:?}");
    assert!(stats.evictions > 0, "{stats:?}");
    assert_eq!(stats.failed_decodes, 0);
}

#[test]
fn a_budget_of_one_or_two_blocks_still_serves_many_threads() {
    let original = Arc::new(mixed(1024 * KIB, 18));
    let file = xz(&["--block-size=64KiB"], &original);
    for blocks in [1, 2] {
        let budget = 64 * 1024 * blocks;
        let reader = Arc::new(open(file.clone(), options(budget, 2)).unwrap());
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let (reader, original) = (reader.clone(), original.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(300 + t);
                    for _ in 0..40 {
                        let at = rng.below(original.len() as u64);
                        let len = (rng.below(200 * KIB as u64) as usize + 1).min(original.len() - at as usize);
                        assert!(read(&reader, at, len).unwrap() == original[at as usize..at as usize + len]);
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        reader.copy_to(&mut all).unwrap();
        for t in threads {
            t.join().unwrap();
        }
        assert!(all == *original);
        assert!(reader.stats().bytes_peak <= budget, "{:?}", reader.stats());
    }
}

#[test]
fn eight_threads_share_one_decode_per_block() {
    let original = Arc::new(mixed(4 * 1024 * KIB, 13));
    let file = xz(&["-T2", "--block-size=128KiB"], &original);
    let reader = Arc::new(open(file, XzOptions::default()).unwrap());
    let blocks: Vec<(u64, u64)> =
        reader.engine.layout.blocks.iter().map(|b| (b.uncompressed_start, b.uncompressed_size)).collect();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (reader, original, mut blocks) = (reader.clone(), original.clone(), blocks.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(200 + t);
                for i in (1..blocks.len()).rev() {
                    blocks.swap(i, rng.below(i as u64 + 1) as usize);
                }
                for (start, size) in blocks {
                    let at = start + rng.below(size);
                    let len = (rng.below(64 * KIB as u64) as usize + 1).min(original.len() - at as usize);
                    assert!(read(&reader, at, len).unwrap() == original[at as usize..at as usize + len]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let stats = reader.stats();
    assert_eq!(stats.decodes, reader.block_count() as u64, "{stats:?}");
    assert_eq!(stats.evictions, 0);
    assert_eq!(stats.bytes_now, original.len() as u64);
}

#[test]
fn sequential_reads_start_read_ahead_and_random_ones_do_not() {
    let original = mixed(4 * 1024 * KIB, 14);
    let file = xz(&["-T2", "--block-size=128KiB"], &original);

    let reader = Arc::new(open(file.clone(), options(16 * 1024 * 1024, 2)).unwrap());
    let mut all = Vec::new();
    Cursor::new(reader.clone()).read_to_end(&mut all).unwrap();
    assert!(all == original);
    let stats = reader.stats();
    assert!(stats.read_ahead > 0, "{stats:?}");
    assert_eq!(stats.decodes, reader.block_count() as u64, "{stats:?}");

    let reader = open(file, options(16 * 1024 * 1024, 2)).unwrap();
    let mut rng = Rng(14);
    for _ in 0..100 {
        let at = rng.below(original.len() as u64 - 10);
        assert!(read(&reader, at, 10).unwrap() == original[at as usize..at as usize + 10]);
    }
    assert_eq!(reader.stats().read_ahead, 0);
}

#[test]
fn limits_are_explicit_errors() {
    let original = mixed(600 * KIB, 15);
    let file = xz(&["-6", "--block-size=64KiB"], &original);
    let reader = open(file.clone(), XzOptions { memlimit: 1024 * 1024, ..XzOptions::default() }).unwrap();
    match reader.copy_to(&mut Vec::new()) {
        Err(XzError::Decode { block: 0, message }) => assert!(message.contains("memlimit"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Read-ahead workers may still be failing their own blocks; their reservations must go.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while reader.stats().bytes_now != 0 && std::time::Instant::now() < until {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(reader.stats().bytes_now, 0);
    assert!(matches!(
        open(file.clone(), XzOptions { max_blocks: 5, ..XzOptions::default() }),
        Err(XzError::TooManyBlocks { max: 5 })
    ));
    assert!(open(file.clone(), XzOptions { max_blocks: 11, ..XzOptions::default() }).is_ok());
    // Extreme settings are clamped, not overflowed.
    let reader = open(file, XzOptions { cache_bytes: u64::MAX, threads: usize::MAX, ..XzOptions::default() }).unwrap();
    let mut all = Vec::new();
    reader.copy_to(&mut all).unwrap();
    assert!(all == original);
}

/// A multi-block file and its contents, made once for the property tests.
fn fixture() -> &'static (Vec<u8>, Vec<u8>) {
    static FIXTURE: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let original = mixed(256 * KIB, 16);
        let file = xz(&["--check=crc64", "--block-size=40KiB"], &original);
        (original, file)
    })
}

fn fixture_reader() -> &'static XzReader {
    static READER: OnceLock<XzReader> = OnceLock::new();
    READER.get_or_init(|| open(fixture().1.clone(), options(100 * KIB as u64, 2)).unwrap())
}

proptest! {
    #[test]
    fn any_read_inside_matches_the_original(offset in 0u64..256 * 1024, len in 0usize..100_000) {
        let (original, _) = fixture();
        let reader = fixture_reader();
        let len = len.min(original.len() - offset as usize);
        let got = read(reader, offset, len).unwrap();
        prop_assert!(got == original[offset as usize..offset as usize + len]);
        prop_assert!(reader.stats().bytes_peak <= 100 * KIB as u64);
    }

    #[test]
    fn flipped_bytes_give_errors_never_panics_or_wrong_data(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        reads in proptest::collection::vec(any::<prop::sample::Index>(), 4),
    ) {
        let (original, file) = fixture();
        let mut bad = file.clone();
        for (at, mask) in flips {
            let at = at.index(bad.len());
            bad[at] ^= mask;
        }
        if let Ok(reader) = open(bad, options(1024 * 1024, 2)) {
            // A CRC64 on every block means anything that decodes is the original.
            let mut all = Vec::new();
            if reader.copy_to(&mut all).is_ok() {
                prop_assert!(all == *original);
            }
            for at in reads {
                let at = at.index(original.len()) as u64;
                if let Ok(got) = read(&reader, at, 1000.min(original.len() - at as usize)) {
                    prop_assert!(got == original[at as usize..at as usize + got.len()]);
                }
            }
        }
    }

    #[test]
    fn flipped_bytes_without_a_check_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
    ) {
        static FILE: OnceLock<Vec<u8>> = OnceLock::new();
        let file = FILE.get_or_init(|| xz(&["--check=none", "--block-size=30KiB"], &mixed(150 * KIB, 17)));
        let mut bad = file.clone();
        for (at, mask) in flips {
            let at = at.index(bad.len());
            bad[at] ^= mask;
        }
        if let Ok(reader) = open(bad, options(1024 * 1024, 1)) {
            let _ = reader.copy_to(&mut io::sink());
            let _ = read(&reader, 0, reader.len() as usize);
        }
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap_or("VmHWM: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Writes `len` bytes to `path`, a MiB at a time so the data is never all in memory: mostly
/// incompressible with zero runs, or (`text`) the compressible mix; returns its sha256.
fn write_big_image(path: &Path, len: usize, text: bool) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut rng = Rng(42);
    let mut hasher = Sha256::new();
    let mut chunk = vec![0u8; 1024 * KIB];
    for i in 0..len / chunk.len() {
        if text {
            chunk = mixed(chunk.len(), i as u64);
        } else if i % 8 == 7 {
            chunk.fill(0);
        } else {
            rng.fill(&mut chunk);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).unwrap();
    }
    file.flush().unwrap();
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn seconds(f: impl FnOnce()) -> f64 {
    let started = Instant::now();
    f();
    started.elapsed().as_secs_f64()
}

/// Throughput and memory on ~200 MiB images; run with
/// `cargo test --release -- --ignored --nocapture copy_to_throughput`.
#[test]
#[ignore = "slow: compresses 400 MiB; prints timings rather than asserting them"]
fn copy_to_throughput_against_xz() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("random+zeros", false), ("compressible", true)] {
        let raw = dir.path().join(format!("{name}.img"));
        let packed = dir.path().join(format!("{name}.img.xz"));
        let sha = write_big_image(&raw, 200 * 1024 * KIB, text);
        let took = seconds(|| assert!(Command::new("xz").arg("-T0").arg(&raw).status().unwrap().success()));
        let size = std::fs::metadata(&packed).unwrap().len();
        eprintln!("{name}: xz -T0 took {took:.1} s, {} MiB compressed", size / (1024 * 1024));
        let xz_dc = seconds(|| {
            let status = Command::new("xz").args(["-dc", "-T0"]).arg(&packed).stdout(Stdio::null()).status();
            assert!(status.unwrap().success());
        });
        let xz_sha = seconds(|| {
            let script = format!("xz -dc -T0 '{}' | sha256sum", packed.display());
            assert!(Command::new("sh").arg("-c").arg(script).stdout(Stdio::null()).status().unwrap().success());
        });
        eprintln!("{name}: xz -dc -T0 > /dev/null {xz_dc:.2} s; xz -dc -T0 | sha256sum {xz_sha:.2} s");
        // Smallest cache first: peak RSS only ever grows, so each line shows its own run's peak.
        for cache_mib in [64, 256] {
            let source: Arc<dyn ReadAt> = Arc::new(FileSource::new(std::fs::File::open(&packed).unwrap()).unwrap());
            let reader = XzReader::open(source.clone(), options(cache_mib * 1024 * 1024, 2)).unwrap();
            let mut n = 0;
            let sink = seconds(|| n = reader.copy_to(&mut io::sink()).unwrap());
            let stats = reader.stats();
            drop(reader);
            let reader = XzReader::open(source, options(cache_mib * 1024 * 1024, 2)).unwrap();
            let mut hasher = HashWriter(Sha256::new());
            let hashed = seconds(|| assert_eq!(reader.copy_to(&mut hasher).unwrap(), n));
            let got: String = hasher.0.finalize().iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got, sha);
            eprintln!(
                "{name}, cache {cache_mib} MiB, {} blocks of up to {} MiB: copy_to(sink) {sink:.2} s ({:.0} MiB/s, \
                 {:.2}x xz's time); copy_to(sha256) {hashed:.2} s; peak RSS so far {} MiB; {stats:?}",
                reader.block_count(),
                reader.largest_block() / (1024 * 1024),
                n as f64 / (1024.0 * 1024.0) / sink,
                sink / xz_dc,
                peak_rss_kib() / 1024,
            );
        }
        std::fs::remove_file(&packed).unwrap();
    }
}
