//! `bramble serve` TFTP against Debian's real clients: atftp (blksize, tsize, windowsize,
//! timeout), the tftp-hpa client (no options; netascii and binary), curl and busybox. Each
//! downloads files of 0 bytes, 1 byte, whole multiples of the block size, and more than 65535
//! blocks (the block counter wraps), and sha256sum must agree with the original. Netascii:
//! curl's unconverted copy must be the CR LF form, atftp's and tftp-hpa's the original.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// The served files: name and size. `wrap.bin` is 65536 blocks of 512 bytes and a bit.
const FILES: &[(&str, usize)] = &[
    ("empty.bin", 0),
    ("one.bin", 1),
    ("four-blocks.bin", 4 * 512),
    ("three-big-blocks.bin", 3 * 1468),
    ("random.bin", 200_003),
    ("text.txt", 0),
    ("wrap.bin", 65536 * 512 + 333),
];

fn make_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut noise = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                // xorshift: fast, deterministic bytes including CR and LF for netascii.
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect()
    };
    for &(name, size) in FILES {
        let bytes = if name == "text.txt" {
            b"line one\nline two\r\nbare\rcarriage\n\n# config.txt\narm_64bit=1\n".repeat(300)
        } else {
            noise(size)
        };
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

fn sha(path: &Path) -> String {
    tool_ok("sha256sum", &[path_str(path)]).split_whitespace().next().unwrap().to_string()
}

/// Download every file with `fetch(name, out)` and compare checksums.
fn fetch_all(root: &Path, names: &[&str], fetch: impl Fn(&str, &Path)) {
    let out_dir = tempfile::tempdir().unwrap();
    for name in names {
        let out: PathBuf = out_dir.path().join(name);
        fetch(name, &out);
        assert!(out.exists(), "{name} was not downloaded");
        assert_eq!(sha(&out), sha(&root.join(name)), "{name}: sha256 differs");
    }
}

fn all_names() -> Vec<&'static str> {
    FILES.iter().map(|(n, _)| *n).collect()
}

#[test]
fn atftp_with_every_option() {
    let tree = make_tree();
    let daemon = Daemon::start(&["--tftp-root", path_str(tree.path())]);
    let port = daemon.port();
    // Large blocks, a window and a timeout; then plain 512-byte blocks with a window through
    // the wrap; then no options at all.
    let runs: [&[&str]; 3] = [
        &["--option", "blksize 1468", "--option", "tsize enable", "--option", "windowsize 16", "--option", "timeout 2"],
        &["--option", "windowsize 8", "--option", "tsize enable"],
        &[],
    ];
    for options in runs {
        fetch_all(tree.path(), &all_names(), |name, out| {
            let mut args: Vec<&str> = options.to_vec();
            args.extend(["-g", "-r", name, "-l", path_str(out), "127.0.0.1", &port]);
            tool_ok("atftp", &args);
        });
    }
    let log = daemon.wait_log("file=random.bin", 3);
    assert!(log[0].contains("blksize=1468 windowsize=16"), "{}", log[0]);
    assert!(log[1].contains("blksize=512 windowsize=8"), "{}", log[1]);
    assert!(log[2].contains("blksize=512 windowsize=1"), "{}", log[2]);
    let wraps = daemon.wait_log("file=wrap.bin", 3);
    assert!(wraps.iter().all(|l| l.contains("bytes=33554765") && l.contains("outcome=\"complete\"")), "{wraps:?}");
}

#[test]
fn tftp_hpa_binary_and_netascii() {
    let tree = make_tree();
    let daemon = Daemon::start(&["--tftp-root", path_str(tree.path())]);
    let port = daemon.port();
    fetch_all(tree.path(), &all_names(), |name, out| {
        tool_ok("tftp", &["127.0.0.1", &port, "-m", "binary", "-c", "get", name, path_str(out)]);
    });
    // tftp-hpa's default mode is netascii: the server converts line ends and the client
    // converts them back, so every byte, text or not, survives.
    fetch_all(tree.path(), &["text.txt", "random.bin", "empty.bin", "one.bin"], |name, out| {
        tool_ok("tftp", &["127.0.0.1", &port, "-c", "get", name, path_str(out)]);
    });
    let log = daemon.wait_log("file=text.txt", 2);
    assert!(log.iter().all(|l| l.contains("outcome=\"complete\"")), "{log:?}");
}

#[test]
fn curl_tftp() {
    let tree = make_tree();
    let daemon = Daemon::start(&["--tftp-root", path_str(tree.path())]);
    let port = daemon.port();
    for extra in [&[][..], &["--tftp-blksize", "1468"][..]] {
        fetch_all(tree.path(), &all_names(), |name, out| {
            let url = format!("tftp://127.0.0.1:{port}/{name}");
            let mut args = vec!["-sS", "--fail", "-o", path_str(out)];
            args.extend_from_slice(extra);
            args.push(&url);
            tool_ok("curl", &args);
        });
    }
    let log = daemon.wait_log("file=wrap.bin", 2);
    assert!(log[1].contains("blksize=1468"), "{log:?}");
}

#[test]
fn busybox_tftp() {
    let tree = make_tree();
    let daemon = Daemon::start(&["--tftp-root", path_str(tree.path())]);
    let port = daemon.port();
    for blksize in ["512", "1468"] {
        fetch_all(tree.path(), &all_names(), |name, out| {
            tool_ok("busybox", &["tftp", "-g", "-r", name, "-l", path_str(out), "-b", blksize, "127.0.0.1", &port]);
        });
    }
}

#[test]
fn missing_files_get_a_prompt_error_from_every_client() {
    let tree = make_tree();
    let daemon = Daemon::start(&["--tftp-root", path_str(tree.path())]);
    let port = daemon.port();
    let out = tree.path().join("never");
    let started = std::time::Instant::now();
    assert!(
        !tool("curl", &["-sS", "-o", path_str(&out), &format!("tftp://127.0.0.1:{port}/nothing.bin")]).status.success()
    );
    assert!(!tool("atftp", &["-g", "-r", "nothing.bin", "-l", path_str(&out), "127.0.0.1", &port]).status.success());
    assert!(
        !tool("busybox", &["tftp", "-g", "-r", "nothing.bin", "-l", path_str(&out), "127.0.0.1", &port])
            .status
            .success()
    );
    // Every one was answered at once, not left to time out.
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(daemon.wait_log("outcome=\"file not found\"", 3).len(), 3);
}

#[test]
fn netascii_by_curl_atftp_and_tftp_hpa() {
    // Converted as the blocks go out: line ends that straddle block boundaries, bare CRs and
    // CR LF pairs, across many blocks. curl writes what it receives unconverted, so its copy
    // must be the CR LF form exactly; atftp and tftp-hpa convert back, so theirs must be the
    // original.
    let mut text = Vec::new();
    for i in 0..20_000usize {
        text.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, i % 37));
        text.extend_from_slice([&b"\n"[..], b"\r\n", b"\r", b"\n\n"][i % 4]);
    }
    let mut wire = Vec::new();
    for &b in &text {
        match b {
            b'\n' => wire.extend_from_slice(b"\r\n"),
            b'\r' => wire.extend_from_slice(b"\r\0"),
            _ => wire.push(b),
        }
    }
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("notes.txt"), &text).unwrap();
    let daemon = Daemon::start(&["--tftp-root", path_str(tree.path())]);
    let port = daemon.port();
    let out = tempfile::tempdir().unwrap();
    for (i, extra) in [&[][..], &["--tftp-blksize", "1468"][..]].iter().enumerate() {
        let file = out.path().join(format!("curl{i}"));
        let url = format!("tftp://127.0.0.1:{port}/notes.txt;mode=netascii");
        let mut args = vec!["-sS", "--fail", "-o", path_str(&file)];
        args.extend_from_slice(extra);
        args.push(&url);
        tool_ok("curl", &args);
        assert_eq!(sha(&file), sha256_of(&wire), "curl {extra:?}: not the CR LF conversion");
    }
    let hpa = out.path().join("hpa");
    tool_ok("tftp", &["127.0.0.1", &port, "-m", "netascii", "-c", "get", "notes.txt", path_str(&hpa)]);
    assert_eq!(sha(&hpa), sha256_of(&text), "tftp-hpa");
    let atftp = out.path().join("atftp");
    tool_ok("atftp", &["--mode", "netascii", "-g", "-r", "notes.txt", "-l", path_str(&atftp), "127.0.0.1", &port]);
    assert_eq!(sha(&atftp), sha256_of(&text), "atftp");
    let log = daemon.wait_log("file=notes.txt", 4);
    let bytes = format!("bytes={}", wire.len());
    assert!(log.iter().all(|l| l.contains("outcome=\"complete\"") && l.contains(&bytes)), "{log:#?}");
}
