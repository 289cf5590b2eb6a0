//! FAT32 volumes with folders, built by `disk::fat::fat32_volume_tree` from a tree shaped like
//! Raspberry Pi OS's boot partition (512 MiB, `overlays/` with 300 files, a three-level path,
//! long and non-ASCII names, an empty file), judged by dosfstools and mtools: `fsck.fat -n`
//! finds nothing, `mdir -/ -b` lists exactly the tree, `mcopy` gives back every file's bytes,
//! `mdir` shows the tree's times; two builds are byte-identical; the build takes seconds.

mod common;

use bramble::disk::fat::{Fat32Spec, fat32_volume_tree};
use bramble::disk::fat_size::fat32_size_for;
use bramble::tree::{Content, Kind, Node, Tree};
use common::*;
use std::collections::BTreeSet;
use std::time::Instant;

const WHEN: i64 = 1_700_000_000; // 2023-11-14 22:13:20 UTC

/// The boot-partition-like tree; `reversed` inserts the same nodes in the opposite order.
fn boot_tree(reversed: bool) -> Tree {
    let mut nodes: Vec<(String, Node)> = Vec::new();
    let dir = |secs: i64| {
        let mut n = Node::new(Kind::Dir, 0o755);
        n.mtime.secs = secs;
        n
    };
    let file = |bytes: Vec<u8>, secs: i64| {
        let mut n = Node::new(Kind::File(Content::bytes(bytes)), 0o644);
        n.mtime.secs = secs;
        n
    };
    nodes.push((String::new(), dir(WHEN)));
    nodes.push(("overlays".into(), dir(1_690_000_000)));
    for i in 0..300u64 {
        // Sizes from 0 to ~40 KiB, some exactly a cluster or a multiple.
        let len = match i % 10 {
            0 => 2048,
            1 => 4096,
            _ => (i as usize * 137) % 40_000,
        };
        nodes.push((
            format!("overlays/overlay-number-{i:03}-with-a-long-name.dtbo"),
            file(pseudo_random(len, i), 1_690_000_000 + i as i64),
        ));
    }
    nodes.push(("overlays/README".into(), file(b"overlays live here\n".to_vec(), 1_690_000_000)));
    nodes.push(("a".into(), dir(1_680_000_000)));
    nodes.push(("a/b".into(), dir(1_680_000_000)));
    nodes.push(("a/b/c".into(), dir(1_680_000_000)));
    nodes.push(("a/b/c/deep file.txt".into(), file(b"three levels down\n".to_vec(), 1_680_000_000)));
    nodes.push(("empty".into(), file(Vec::new(), 1_600_000_000)));
    nodes.push(("Ünïcödé name.txt".into(), file(b"utf-16 long name\n".to_vec(), 1_600_000_000)));
    nodes.push(("config.txt".into(), file(b"arm_64bit=1\n".to_vec(), 1_650_000_000)));
    nodes.push(("kernel8.img".into(), file(pseudo_random(9 << 20, 99), 1_650_000_000)));
    if reversed {
        nodes.reverse();
    }
    let mut tree = Tree::new();
    for (path, node) in nodes {
        tree.insert(path, node);
    }
    tree
}

fn spec(size_bytes: u64, bytes_per_cluster: u32) -> Fat32Spec {
    Fat32Spec {
        label: "BOOTFS".into(),
        volume_id: 0x1b2c_3d4e,
        size_bytes,
        bytes_per_cluster,
        hidden_sectors: 16384,
        timestamp: WHEN,
    }
}

fn mtools(program: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(program)
        .args(args)
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); run `just setup`"));
    assert!(out.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_boot_partition_tree_passes_fsck_and_reads_back_with_mtools() {
    let tree = boot_tree(false);
    let started = Instant::now();
    let volume = fat32_volume_tree(&spec(512 << 20, 2048), &tree).unwrap();
    let took = started.elapsed();
    eprintln!("512 MiB FAT32, 2 KiB clusters, {} entries: built in {took:?}", tree.len());
    assert!(took.as_secs() < 20, "building took {took:?}");

    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("boot.vfat");
    std::fs::write(&img, &volume).unwrap();
    let img_s = path_str(&img);

    // fatfs's own output fails here ("Expected a valid '.' entry in this slot", "Bad short
    // file name (..)"); after the repair fsck.fat has nothing to say but its summary.
    let fsck = tool("fsck.fat", &["-n", img_s]);
    let report = String::from_utf8_lossy(&fsck.stdout).to_string() + &String::from_utf8_lossy(&fsck.stderr);
    assert!(fsck.status.success(), "{report}");
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "fsck.fat has remarks:\n{report}");
    // fsck.fat counts every entry and the root.
    assert!(lines[1].contains(&format!(": {} files, ", tree.len())), "{report}");

    // `mdir -/ -b` lists every file and folder, recursively, by full path.
    let listing = mtools("mdir", &["-/", "-b", "-i", img_s, "::"]);
    let listed: BTreeSet<String> = listing.lines().map(|l| l.trim_end_matches('/').to_string()).collect();
    let expected: BTreeSet<String> =
        tree.iter().filter(|(p, _)| !p.as_os_str().is_empty()).map(|(p, _)| format!("::/{}", p.display())).collect();
    assert_eq!(listed, expected);

    // Every file's bytes, copied out by mcopy.
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    mtools("mcopy", &["-s", "-n", "-i", img_s, "::/*", path_str(&out)]);
    for (path, node) in tree.iter() {
        if let Kind::File(content) = &node.kind {
            let copied = std::fs::read(out.join(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(copied == content.read_all().unwrap(), "{} differs", path.display());
        }
    }
    assert_eq!(mtools("mtype", &["-i", img_s, "::/a/b/c/deep file.txt"]), "three levels down\n");

    // Times as mtools shows them (UTC): a file's own time; a folder's own time, not its last child's.
    let config = mtools("mdir", &["-i", img_s, "::/config.txt"]);
    assert!(config.contains("2022-04-15   5:20"), "{config}"); // 1_650_000_000
    let root = mtools("mdir", &["-i", img_s, "::/"]);
    let overlays = root.lines().find(|l| l.contains("overlays")).unwrap();
    assert!(overlays.contains("2023-07-22   4:26"), "{overlays}"); // 1_690_000_000
}

#[test]
fn two_builds_are_byte_identical_and_the_size_helper_fits() {
    let a = boot_tree(false);
    let b = boot_tree(true);
    let size = fat32_size_for(&a, 512, 0).unwrap();
    eprintln!("fat32_size_for with 512-byte clusters and no headroom: {size} bytes");
    let started = Instant::now();
    let first = fat32_volume_tree(&spec(size, 512), &a).unwrap();
    eprintln!("{} MiB FAT32, 512-byte clusters: built in {:?}", size >> 20, started.elapsed());
    let second = fat32_volume_tree(&spec(size, 512), &b).unwrap();
    assert!(first == second, "two builds differ");
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("min.vfat");
    std::fs::write(&img, &first).unwrap();
    let fsck = tool("fsck.fat", &["-n", path_str(&img)]);
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    assert_eq!(String::from_utf8_lossy(&fsck.stdout).lines().count(), 2);
}
