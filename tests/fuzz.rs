//! A bounded fuzz run over every reader of untrusted bytes: small valid seeds (tests/corpus/, or
//! made here with real tools), mutated by a seeded generator, each input given to the reader on
//! a worker thread with a time limit. No input may panic or hang.
//!
//! `BRAMBLE_FUZZ_ITERS` (inputs per text or packet reader, default 3000; image and archive readers take a
//! half, the 2 MiB EEPROM images an eighth) and `BRAMBLE_FUZZ_SEED` (default
//! fixed, so a failure repeats) make `just fuzz` a long run of the same harness. A failing
//! input is written to target/fuzz-failures/ to be added to tests/corpus/ with its fix.

mod common;

use bramble::read_at::ReadAt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// What one input may take; generous, for a loaded 2-core machine.
const PER_INPUT: Duration = Duration::from_secs(20);

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Values that break length and offset fields.
const INTERESTING: &[u64] = &[0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x1_0000, 0x7fff_ffff, 0xffff_ffff, u64::MAX];

/// One mutation of `seed`: a few byte flips, overwrites with edge values, cuts, copies and
/// insertions, clustered near the start where headers are (or anywhere, half the time).
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = data.len();
        let span = if rng.below(2) == 0 { len.min(4096) } else { len };
        let at = rng.below(span.max(1));
        match rng.below(7) {
            0 if len > 0 => data[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => data[at.min(len - 1)] = rng.next() as u8,
            2 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let width = [1, 2, 4, 8][rng.below(4)];
                let bytes = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
                for (i, b) in bytes.iter().take(width).enumerate() {
                    if let Some(slot) = data.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            3 if len > 0 => data.truncate(rng.below(len)),
            4 => {
                let n = 1 + rng.below(64);
                let fill: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                let at = at.min(data.len());
                data.splice(at..at, fill);
            }
            5 if len > 1 => {
                let from = rng.below(len);
                let n = rng.below(64).min(len - from);
                let chunk = data[from..from + n].to_vec();
                let at = at.min(data.len());
                data.splice(at..at, chunk);
            }
            _ if len > 0 => {
                let n = rng.below(64).min(len - at.min(len));
                data.drain(at.min(len)..at.min(len) + n);
            }
            _ => data.push(rng.next() as u8),
        }
    }
    data
}

fn iterations() -> usize {
    std::env::var("BRAMBLE_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000)
}

fn failures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-failures")
}

/// Run `reader` over `iters` mutations of the seeds (and the seeds themselves), each on a
/// worker thread with [`PER_INPUT`]; fail naming the saved input on a panic or a hang. `reader`
/// says whether it accepted the input: every seed must be accepted, so mutations start valid.
fn fuzz(name: &str, seeds: Vec<Vec<u8>>, iters: usize, reader: fn(&[u8]) -> bool) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let base: u64 = std::env::var("BRAMBLE_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed);
    let mut rng =
        Rng(base ^ name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)));
    let (to_worker, inputs) = mpsc::channel::<Arc<Vec<u8>>>();
    let (done, results) = mpsc::channel::<Result<bool, String>>();
    let worker = std::thread::spawn(move || {
        for input in inputs {
            let outcome = std::panic::catch_unwind(|| reader(&input)).map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            if done.send(outcome).is_err() {
                return;
            }
        }
    });
    let save = |input: &[u8], what: &str| -> PathBuf {
        std::fs::create_dir_all(failures()).unwrap();
        let path = failures().join(format!("{name}-{what}-{:016x}", rng_hash(input)));
        std::fs::write(&path, input).unwrap();
        path
    };
    // Inputs that once failed come first; they need not be valid.
    let regressions = regressions(name);
    let total = regressions.len() + seeds.len() + iters;
    for i in 0..total {
        let input = Arc::new(match i.checked_sub(regressions.len()) {
            None => regressions[i].clone(),
            Some(s) if s < seeds.len() => seeds[s].clone(),
            Some(_) => mutate(&seeds[rng.below(seeds.len())], &mut rng),
        });
        to_worker.send(input.clone()).unwrap();
        match results.recv_timeout(PER_INPUT) {
            Ok(Ok(accepted)) => {
                let seed = (regressions.len()..regressions.len() + seeds.len()).contains(&i);
                assert!(accepted || !seed, "{name}: seed {} is not read as valid", i - regressions.len());
            }
            Ok(Err(why)) => panic!("{name}: input {i} panicked ({why}); saved as {}", save(&input, "panic").display()),
            Err(_) => panic!("{name}: input {i} took over {PER_INPUT:?}; saved as {}", save(&input, "hang").display()),
        }
    }
    drop(to_worker);
    worker.join().unwrap();
}

fn rng_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3))
}

/// The committed seeds for `reader`: tests/corpus/<reader>/*.
fn corpus(reader: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(reader);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Inputs that made `reader` panic or hang before its fix: tests/corpus/regressions/<reader>/*,
/// compressed with xz when large (mostly a seed image with a few bytes changed).
fn regressions(reader: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/regressions").join(reader);
    let Ok(list) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = list.map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            if p.extension().is_some_and(|e| e == "xz") {
                let out = Command::new("xz").arg("-dc").arg(&p).output().unwrap();
                assert!(out.status.success(), "{}", p.display());
                out.stdout
            } else {
                std::fs::read(&p).unwrap()
            }
        })
        .collect()
}

fn source(bytes: &[u8]) -> Arc<dyn ReadAt> {
    Arc::new(bytes.to_vec())
}

/// A scratch file per thread, for readers that take a path.
fn as_file(bytes: &[u8], what: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(what);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A small image made by a tool, read back.
fn made_with(file: &str, build: impl FnOnce(&Path)) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    build(&path);
    std::fs::read(&path).unwrap()
}

#[test]
fn text_readers() {
    let n = iterations();
    fuzz("recipe", corpus("recipe"), n, |b| {
        let text = String::from_utf8_lossy(b);
        let parsed = bramble::recipe::parse(&text);
        let _ = bramble::diagnostic::render(&parsed.diagnostics, &text, "fuzz.toml", false);
        parsed.recipe.is_some()
    });
    fuzz("bootconf", corpus("bootconf"), n, |b| {
        let text = String::from_utf8_lossy(b);
        let _ = bramble::eeprom::bootconf::set(&text, "BOOT_ORDER", "0xf21");
        bramble::eeprom::bootconf::check(&text, None).is_empty()
    });
    fuzz("lock", corpus("lock"), n, |b| {
        let (_dir, path) = as_file(b, "bramble.lock");
        matches!(bramble::fetch::lock::Lock::load(&path), Ok(Some(_)))
    });
    fuzz("lease-file", corpus("lease-file"), n, |b| {
        let (_dir, path) = as_file(b, "leases.toml");
        bramble::daemon::dhcp::lease_file::load(&path).is_ok_and(|(_, l)| !l.is_empty())
    });
}

#[test]
fn packet_readers() {
    let n = iterations();
    fuzz("dhcp", corpus("dhcp"), n, |b| bramble::daemon::dhcp::wire::Request::parse(b).is_ok());
    fuzz("tftp", corpus("tftp"), n, |b| bramble::daemon::tftp::wire::Packet::parse(b).is_ok());
    fuzz("http-target", corpus("http-target"), n, |b| {
        bramble::daemon::http::target::components(&String::from_utf8_lossy(b)).is_ok()
    });
    fuzz("http-range", corpus("http-range"), n, |b| {
        let requested = bramble::daemon::http::range::parse(b);
        if let Some(bramble::daemon::http::range::Requested::One(spec)) = requested {
            let _ = bramble::daemon::http::range::resolve(spec, 1000);
            let _ = bramble::daemon::http::range::resolve(spec, 0);
        }
        requested.is_some()
    });
}

#[test]
fn disk_readers() {
    let n = iterations() / 2;
    let mbr = made_with("mbr.img", |p| {
        run(Command::new("truncate").args(["-s", "2M"]).arg(p));
        run(Command::new("sfdisk").arg("-q").arg(p).stdin_bytes(b"label: dos\n2048,,c\n"));
    });
    let gpt = made_with("gpt.img", |p| {
        run(Command::new("truncate").args(["-s", "1M"]).arg(p));
        run(Command::new("sgdisk").args(["-n", "1:34:1000", "-t", "1:8300"]).arg(p));
    });
    fuzz("partition-table", vec![mbr, gpt], n, |b| {
        let _ = bramble::disk::partition::probe(&b.to_vec());
        bramble::disk::partition::read_table(&source(b)).is_ok()
    });
    let fat16 = made_with("fat16.img", |p| {
        run(Command::new("mkfs.fat").args(["-C", "-F", "16", "-s", "1", "-n", "FUZZ"]).arg(p).arg("4200"));
        std::fs::write(p.with_extension("txt"), b"hello").unwrap();
        run(Command::new("mmd").arg("-i").arg(p).arg("::/dir"));
        run(Command::new("mcopy").arg("-i").arg(p).arg(p.with_extension("txt")).arg("::/dir/a-long-file-name.txt"));
    });
    let fat12 = made_with("fat12.img", |p| {
        run(Command::new("mkfs.fat").args(["-C", "-F", "12"]).arg(p).arg("360"));
    });
    fuzz("fat", vec![fat16, fat12], n, |b| {
        let src = source(b);
        let _ = bramble::disk::fat_reader::info(&src);
        let Ok(entries) = bramble::disk::fat_reader::walk(&src) else { return false };
        for e in entries.iter().filter(|e| !e.is_dir).take(8) {
            let _ = bramble::disk::fat_reader::read_file(&src, &e.path);
        }
        true
    });
    let ext4 = made_with("ext4.img", |p| {
        let root = p.with_extension("d");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/hostname"), b"fuzz\n").unwrap();
        std::os::unix::fs::symlink("etc/hostname", root.join("link")).unwrap();
        run(Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-b", "1024", "-N", "32", "-d"])
            .arg(&root)
            .arg(p)
            .arg("300"));
    });
    fuzz("ext4", vec![ext4], n, |b| {
        let Ok(fs) = bramble::disk::ext4::Ext4::open(source(b)) else { return false };
        let Ok(root) = fs.root() else { return false };
        for entry in fs.read_dir(&root).unwrap_or_default().into_iter().take(16) {
            if let Ok(inode) = fs.inode(entry.ino) {
                let _ = fs.read_file(&inode, 1 << 20);
                let _ = fs.read_dir(&inode);
            }
        }
        fs.lookup("/etc/hostname").is_ok()
    });
    let xz = made_with("a.xz", |p| {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(p.with_extension("raw"), &data).unwrap();
        let out =
            Command::new("xz").args(["-c", "-T2", "--block-size=65536"]).arg(p.with_extension("raw")).output().unwrap();
        assert!(out.status.success());
        std::fs::write(p, out.stdout).unwrap();
    });
    fuzz("xz-index", vec![xz], n, |b| {
        let options = bramble::disk::xz::XzOptions { threads: 0, ..Default::default() };
        let Ok(reader) = bramble::disk::xz::XzReader::open(source(b), options) else { return false };
        let mut buf = vec![0u8; 4096];
        let first = reader.read_exact_at(&mut buf, 0).is_ok();
        first && reader.read_exact_at(&mut buf, 150_000).is_ok()
    });
}

trait StdinBytes {
    fn stdin_bytes(&mut self, bytes: &'static [u8]) -> &mut Self;
}

impl StdinBytes for Command {
    /// Feed `bytes` on stdin (sfdisk reads its script there).
    fn stdin_bytes(&mut self, bytes: &'static [u8]) -> &mut Self {
        let script = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(script.path(), bytes).unwrap();
        let file = std::fs::File::open(script.path()).unwrap();
        self.stdin(file)
    }
}

#[test]
fn archive_and_eeprom_readers() {
    let n = iterations() / 2;
    let tar = made_with("a.tar", |p| {
        let root = p.with_extension("d");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("tool", root.join("usr/bin/alias")).unwrap();
        run(Command::new("tar").args(["--format=pax", "-cf"]).arg(p).arg("-C").arg(&root).arg("."));
    });
    fuzz("tar", vec![tar.clone()], n, |b| {
        let (_dir, path) = as_file(b, "root.tar");
        bramble::tree::tar_reader::read_tar_file(&path).is_ok()
    });
    let control = made_with("control.tar", |p| {
        let root = p.with_extension("d");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("control"), b"Package: fuzz\nVersion: 1.0\nArchitecture: arm64\nDescription: x\n")
            .unwrap();
        run(Command::new("tar").args(["-cf"]).arg(p).arg("-C").arg(&root).arg("./control"));
    });
    let deb = made_with("fuzz.deb", |p| {
        let dir = p.with_extension("d");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("debian-binary"), b"2.0\n").unwrap();
        std::fs::write(dir.join("control.tar"), &control).unwrap();
        std::fs::write(dir.join("data.tar"), &tar).unwrap();
        run(Command::new("ar").arg("rcD").arg(p).args(["debian-binary", "control.tar", "data.tar"]).current_dir(&dir));
    });
    fuzz("deb", vec![deb], n, |b| {
        let _ = bramble::source::ar::members(&b.to_vec());
        let Ok(deb) = bramble::source::deb_file::DebFile::from_source(source(b), "fuzz.deb") else { return false };
        let control = deb.control().is_ok();
        let entries = deb.entries().is_ok();
        control && entries && deb.extract(&["/usr/bin/alias"]).is_ok()
    });
    let images: Vec<Vec<u8>> =
        ["firmware-2711/default/pieeprom-2026-05-17.bin", "firmware-2712/default/pieeprom-2026-05-26.bin"]
            .iter()
            .map(|f| std::fs::read(common::eeprom_fixtures().join(f)).unwrap())
            .collect();
    fuzz("pieeprom", images, n / 4, |b| {
        let Ok(image) = bramble::eeprom::EepromImage::parse(b) else { return false };
        image.bootconf().is_ok() && image.with_bootconf(b"BOOT_ORDER=0xf21\n").is_ok()
    });
}
