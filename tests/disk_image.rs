//! Whole disk images as the server image is made: a FAT32 boot volume from a tree (in memory)
//! and an ext4 root made by `mke2fs -d` (a file), laid out under MBR and GPT by
//! `disk::image_file`, then the bmap, the `.img.xz` and the Raspberry Pi Imager entry for it.
//! Judged by real tools: `du` (holes), `sfdisk -d`, `sgdisk -v`, `dd` + `fsck.fat` + `e2fsck`
//! on each partition, `cmp` of each partition against its source, `bmaptool create` (same
//! text) and `bmaptool copy` (same bytes), `xz -t`/`-l`/`-dc`, `sha256sum`, Python's `json`.

mod common;

use bramble::disk::bmap::bmap_for_image;
use bramble::disk::fat::{Fat32Spec, fat32_volume_tree};
use bramble::disk::gpt;
use bramble::disk::image_file::{BLOCK, WrittenImage, write_disk_image};
use bramble::disk::imager::{ImagerEntry, os_list_json, release_date};
use bramble::disk::layout::{DiskLayout, DiskPartition, PartitionData, Table, TableEntry};
use bramble::disk::xz_write::{XzSettings, XzSummary, compress_file};
use bramble::tree::{Content, Kind, Node, Tree};
use common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

const WHEN: i64 = 1_700_000_000;
const DISK_ID: u32 = 0x1b2c_3d4e;
const BOOT_LBA: u64 = 16384; // 8 MiB, as Raspberry Pi OS since 2025
const BOOT_BYTES: u64 = 40 << 20;
const ROOT_BYTES: u64 = 96 << 20;
const ROOT_LBA: u64 = BOOT_LBA + BOOT_BYTES / 512;
const DISK_GUID: &str = "5c1d5e0a-3b0c-4d6e-9f11-2a3b4c5d6e7f";
const BOOT_GUID: &str = "6a9f0c1e-1111-4222-8333-944455556666";
const ROOT_GUID: &str = "7b8e1d2f-aaaa-4bbb-8ccc-dddd0000eeee";

struct Fixture {
    dir: tempfile::TempDir,
    boot: Vec<u8>,
    root: PathBuf,
}

impl Fixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// The boot volume (bytes) and the root filesystem (a file), made once for every test here.
fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = Tree::new();
        let mut d = Node::new(Kind::Dir, 0o755);
        d.mtime.secs = WHEN;
        tree.insert("", d.clone());
        let file = |bytes: Vec<u8>| {
            let mut n = Node::new(Kind::File(Content::bytes(bytes)), 0o644);
            n.mtime.secs = WHEN;
            n
        };
        tree.insert("config.txt", file(b"arm_64bit=1\n".to_vec()));
        tree.insert("kernel8.img", file(pseudo_random(1 << 20, 1)));
        for i in 0..40 {
            tree.insert_with_parents(
                format!("overlays/o{i:02}.dtbo"),
                file(pseudo_random(3000 + i * 100, i as u64)),
                &d,
            );
        }
        let spec = Fat32Spec {
            label: "BOOTFS".into(),
            volume_id: 0x1b2c_3d4e,
            size_bytes: BOOT_BYTES,
            bytes_per_cluster: 512,
            hidden_sectors: BOOT_LBA as u32,
            timestamp: WHEN,
        };
        let boot = fat32_volume_tree(&spec, &tree).unwrap();

        // The root: an ext4 image mke2fs fills from a folder, sparse where it is empty.
        let src = dir.path().join("rootdir");
        std::fs::create_dir_all(src.join("usr/lib")).unwrap();
        std::fs::write(src.join("usr/lib/blob"), pseudo_random(2 << 20, 7)).unwrap();
        let text: String = (0..200_000).map(|i| format!("line {i} of a fairly ordinary text file\n")).collect();
        std::fs::write(src.join("usr/lib/words"), text).unwrap();
        std::fs::write(src.join("hostname"), "server\n").unwrap();
        let root = dir.path().join("root.ext4");
        let out = std::process::Command::new("mke2fs")
            .args(["-q", "-F", "-t", "ext4", "-L", "rootfs", "-U", "0f3e1c7a-5b6d-4e8f-9a0b-1c2d3e4f5a6b"])
            .args(["-E", "hash_seed=8d5b6a3c-1e2f-4a5b-8c7d-9e0f1a2b3c4d,lazy_itable_init=0,lazy_journal_init=0"])
            .arg("-d")
            .arg(&src)
            .arg(&root)
            .arg(format!("{}k", ROOT_BYTES / 1024))
            .env("SOURCE_DATE_EPOCH", WHEN.to_string())
            .output()
            .expect("mke2fs (run `just setup`)");
        assert!(out.status.success(), "mke2fs: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(dir.path().join("boot.vfat"), &boot).unwrap();
        Fixture { dir, boot, root }
    })
}

fn mbr_layout(f: &Fixture) -> DiskLayout {
    DiskLayout {
        table: Table::Mbr { disk_id: DISK_ID },
        partitions: vec![
            DiskPartition {
                start_lba: BOOT_LBA,
                size_bytes: BOOT_BYTES,
                data: PartitionData::Bytes(f.boot.clone()),
                entry: TableEntry::Mbr { kind: 0x0c, bootable: false },
            },
            DiskPartition {
                start_lba: ROOT_LBA,
                size_bytes: ROOT_BYTES,
                data: PartitionData::File(f.root.clone()),
                entry: TableEntry::Mbr { kind: 0x83, bootable: false },
            },
        ],
        size_bytes: None,
    }
}

fn gpt_layout(f: &Fixture) -> DiskLayout {
    let mut layout = mbr_layout(f);
    layout.table = Table::Gpt { disk_guid: DISK_GUID.parse().unwrap() };
    layout.partitions[0].entry =
        TableEntry::Gpt { type_guid: gpt::EFI_SYSTEM, guid: BOOT_GUID.parse().unwrap(), name: "bootfs".into() };
    layout.partitions[1].entry =
        TableEntry::Gpt { type_guid: gpt::LINUX_FILESYSTEM, guid: ROOT_GUID.parse().unwrap(), name: "rootfs".into() };
    // A round size with room for the backup table.
    layout.size_bytes = Some((ROOT_LBA * 512 + ROOT_BYTES) + (1 << 20));
    layout
}

/// The MBR image, written once.
fn mbr_image() -> &'static (PathBuf, WrittenImage) {
    static IMAGE: OnceLock<(PathBuf, WrittenImage)> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let f = fixture();
        let img = f.path("server.img");
        let started = Instant::now();
        let written = write_disk_image(&img, &mbr_layout(f)).unwrap();
        eprintln!(
            "wrote a {} MiB image ({} MiB mapped) in {:?}",
            written.size >> 20,
            (written.mapped_blocks() * BLOCK) >> 20,
            started.elapsed()
        );
        (img, written)
    })
}

/// `sfdisk -d` output with the column padding taken out of each line.
fn squash(text: &str) -> String {
    text.lines().map(|l| l.split_whitespace().collect::<String>() + "\n").collect()
}

fn s(p: &Path) -> &str {
    path_str(p)
}

/// `cmp` of `len` bytes at `offset` of `image` against the start of `source`.
fn assert_same_bytes(image: &Path, offset: u64, source: &Path, len: u64) {
    tool_ok("cmp", &["-n", &len.to_string(), &format!("--ignore-initial={offset}:0"), s(image), s(source)]);
}

fn extract(image: &Path, offset: u64, len: u64, to: &Path) {
    tool_ok(
        "dd",
        &[
            &format!("if={}", s(image)),
            &format!("of={}", s(to)),
            "bs=1M",
            "iflag=skip_bytes,count_bytes",
            &format!("skip={offset}"),
            &format!("count={len}"),
            "status=none",
        ],
    );
}

#[test]
fn mbr_image_is_sparse_and_every_tool_reads_it() {
    let f = fixture();
    let (img, written) = mbr_image();
    assert_eq!(written.size, ROOT_LBA * 512 + ROOT_BYTES);
    let meta = std::fs::metadata(img).unwrap();
    assert_eq!(meta.len(), written.size);
    // du: the holes are not allocated (allocation is what was mapped, give or take metadata).
    let du_kib: u64 = tool_ok("du", &["-k", s(img)]).split_whitespace().next().unwrap().parse().unwrap();
    let apparent_kib = written.size / 1024;
    let mapped_kib = written.mapped_blocks() * BLOCK / 1024;
    eprintln!("du: {du_kib} KiB allocated of {apparent_kib} KiB; {mapped_kib} KiB mapped");
    assert!(du_kib < apparent_kib / 4, "{du_kib} KiB allocated");
    assert!(du_kib <= mapped_kib + 1024 && du_kib + 64 >= mapped_kib, "du {du_kib} KiB vs mapped {mapped_kib} KiB");

    let dump = squash(&tool_ok("sfdisk", &["-d", s(img)]));
    assert!(dump.contains("label:dos") && dump.contains("label-id:0x1b2c3d4e"), "{dump}");
    assert!(dump.contains(&format!("start={BOOT_LBA},size={},type=c\n", BOOT_BYTES / 512)), "{dump}");
    assert!(dump.contains(&format!("start={ROOT_LBA},size={},type=83\n", ROOT_BYTES / 512)), "{dump}");

    assert_same_bytes(img, BOOT_LBA * 512, &f.path("boot.vfat"), BOOT_BYTES);
    assert_same_bytes(img, ROOT_LBA * 512, &f.root, ROOT_BYTES);
    let part = f.path("p1.vfat");
    extract(img, BOOT_LBA * 512, BOOT_BYTES, &part);
    let fsck = tool("fsck.fat", &["-n", s(&part)]);
    assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
    let root = f.path("p2.ext4");
    extract(img, ROOT_LBA * 512, ROOT_BYTES, &root);
    tool_ok("e2fsck", &["-fn", s(&root)]);
    // Holes in the gap before the boot partition and past the root's data.
    assert_eq!(written.mapped[0], 0..1);
}

#[test]
fn gpt_image_has_both_tables_with_our_guids() {
    let f = fixture();
    let img = f.path("gpt.img");
    let layout = gpt_layout(f);
    let written = write_disk_image(&img, &layout).unwrap();
    assert_eq!(written.size, layout.size_bytes.unwrap());
    let dump = squash(&tool_ok("sfdisk", &["-d", s(&img)])).to_lowercase();
    assert!(dump.contains("label:gpt"), "{dump}");
    assert!(dump.contains(&format!("label-id:{DISK_GUID}")), "{dump}");
    let boot = format!(
        "start={BOOT_LBA},size={},type=c12a7328-f81f-11d2-ba4b-00a0c93ec93b,uuid={BOOT_GUID},name=\"bootfs\"\n",
        BOOT_BYTES / 512
    );
    assert!(dump.contains(&boot), "{boot}\n{dump}");
    let root = format!(
        "start={ROOT_LBA},size={},type=0fc63daf-8483-4772-8e79-3d69d8477de4,uuid={ROOT_GUID},name=\"rootfs\"\n",
        ROOT_BYTES / 512
    );
    assert!(dump.contains(&root), "{root}\n{dump}");
    assert!(dump.contains(&format!("first-lba:34\nlast-lba:{}\n", written.size / 512 - 34)), "{dump}");

    let verify = tool_ok("sgdisk", &["-v", s(&img)]);
    assert!(verify.contains("No problems found"), "{verify}");
    assert_same_bytes(&img, ROOT_LBA * 512, &f.root, ROOT_BYTES);
    // The same layout writes the same bytes.
    let again = f.path("gpt2.img");
    write_disk_image(&again, &layout).unwrap();
    tool_ok("cmp", &[s(&img), s(&again)]);
}

#[test]
fn bmap_matches_bmaptool_and_copies_back() {
    let f = fixture();
    let (img, written) = mbr_image();
    let bmap = bmap_for_image(img, written).unwrap();
    let bmap_path = f.path("server.img.bmap");
    std::fs::write(&bmap_path, &bmap).unwrap();
    // bmaptool's own bmap of the same (sparse) file, found by FIEMAP, is the same text.
    let theirs = f.path("theirs.bmap");
    tool_ok("bmaptool", &["create", "-o", s(&theirs), s(img)]);
    let theirs = std::fs::read_to_string(&theirs).unwrap();
    assert!(bmap == theirs, "our bmap differs from bmaptool's:\n--- ours\n{bmap}\n--- bmaptool\n{theirs}");
    // bmaptool copy checks every range's sha256 and the bmap's own checksum.
    let out = f.path("copy.img");
    tool_ok("bmaptool", &["copy", "--bmap", s(&bmap_path), s(img), s(&out)]);
    tool_ok("cmp", &[s(img), s(&out)]);
    // A damaged range is caught.
    let damaged = f.path("damaged.img");
    std::fs::copy(img, &damaged).unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&damaged).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"X", ROOT_LBA * 512 + 2000).unwrap();
    let bad = tool("bmaptool", &["copy", "--bmap", s(&bmap_path), s(&damaged), s(&f.path("bad.img"))]);
    assert!(!bad.status.success(), "bmaptool accepted a damaged image");
}

fn compress(img: &Path, out: &Path, threads: u32) -> XzSummary {
    let settings = XzSettings { threads, ..XzSettings::default() };
    let mut last = 0;
    let started = Instant::now();
    let summary = compress_file(img, out, &settings, &mut |n| last = n).unwrap();
    let took = started.elapsed();
    eprintln!(
        "xz -6, 16 MiB blocks, {threads} thread(s): {} MiB in {took:?} ({:.0} MiB/s), {} MiB out",
        summary.input_size >> 20,
        summary.input_size as f64 / 1048576.0 / took.as_secs_f64(),
        summary.output_size >> 20
    );
    assert_eq!(last, summary.input_size);
    summary
}

#[test]
fn xz_is_the_same_at_any_thread_count_and_xz_reads_it() {
    let f = fixture();
    let (img, written) = mbr_image();
    let one = f.path("one.img.xz");
    let two = f.path("server.img.xz");
    let a = compress(img, &one, 1);
    let b = compress(img, &two, 2);
    assert_eq!(a.threads, 1);
    assert_eq!(b.threads, 2);
    tool_ok("cmp", &[s(&one), s(&two)]);
    assert_eq!(a, XzSummary { threads: 1, ..b.clone() });
    assert_eq!(b.input_size, written.size);
    // sha256sum agrees with the hashes taken while compressing.
    let sum = |p: &Path| tool_ok("sha256sum", &[s(p)]).split_whitespace().next().unwrap().to_string();
    assert_eq!(b.input_sha256, sum(img));
    assert_eq!(b.output_sha256, sum(&two));
    assert_eq!(b.output_size, std::fs::metadata(&two).unwrap().len());

    tool_ok("xz", &["-t", s(&two)]);
    let list = tool_ok("xz", &["-l", "--robot", s(&two)]);
    let totals = list.lines().find(|l| l.starts_with("totals")).unwrap();
    let fields: Vec<&str> = totals.split('\t').collect();
    let blocks: u64 = fields[2].parse().unwrap();
    assert_eq!(blocks, written.size.div_ceil(16 << 20), "{list}");
    assert_eq!(fields[4], written.size.to_string(), "{list}");
    assert_eq!(fields[6], "CRC64", "{list}");
    // Decompressed by xz, it is the image.
    let back = f.path("back.img");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("xz -dc '{}' > '{}'", s(&two), s(&back)))
        .status()
        .unwrap();
    assert!(status.success());
    tool_ok("cmp", &[s(img), s(&back)]);

    // The Imager entry for it, read by Python's json module.
    let entry = ImagerEntry::for_compressed_image(
        "Bramble lab server",
        "Serves the lab's Raspberry Pis",
        "https://example.org/icon.png",
        &format!("file://{}", s(&two)),
        &release_date(WHEN).unwrap(),
        &["pi5-64bit", "pi4-64bit", "pi3-64bit"],
        &b,
    );
    let json_path = f.path("os_list.json");
    std::fs::write(&json_path, os_list_json(&[entry]).unwrap()).unwrap();
    let script = "import json,sys; d=json.load(open(sys.argv[1])); e=d['os_list'][0]; \
                  print(e['extract_size'], e['extract_sha256'], e['image_download_size'], e['image_download_sha256'], e['release_date'])";
    let out = tool_ok("python3", &["-c", script, s(&json_path)]);
    assert_eq!(out.trim(), format!("{} {} {} {} 2023-11-14", b.input_size, sum(img), b.output_size, sum(&two)));
}

/// Not part of the suite (minutes): the speeds in the report. A 2 GiB disk like the server
/// image (512 MiB FAT boot volume with 300 overlays, 1.5 GiB ext4 root holding
/// /usr/lib/x86_64-linux-gnu), written, bmapped and compressed at 2 threads, beside `xz -T2`
/// with the same settings. Run with `cargo test --release --test disk_image -- --ignored --nocapture`.
#[test]
#[ignore]
fn measure_a_two_gib_image() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut tree = Tree::new();
    let d = Node::new(Kind::Dir, 0o755);
    tree.insert("", d.clone());
    let file = |bytes: Vec<u8>| Node::new(Kind::File(Content::bytes(bytes)), 0o644);
    tree.insert("kernel8.img", file(pseudo_random(9 << 20, 1)));
    for i in 0..300 {
        tree.insert_with_parents(
            format!("overlays/overlay-{i:03}.dtbo"),
            file(pseudo_random(1000 + i * 97, i as u64)),
            &d,
        );
    }
    let started = Instant::now();
    let spec = Fat32Spec {
        label: "BOOTFS".into(),
        volume_id: 1,
        size_bytes: 512 << 20,
        bytes_per_cluster: 2048,
        hidden_sectors: 16384,
        timestamp: WHEN,
    };
    let boot = fat32_volume_tree(&spec, &tree).unwrap();
    eprintln!("FAT32 512 MiB, 302 files: {:?}", started.elapsed());
    let root = dir.path().join("root.ext4");
    let started = Instant::now();
    tool_ok("mke2fs", &["-q", "-F", "-t", "ext4", "-d", "/usr/lib/x86_64-linux-gnu", s(&root), "1536M"]);
    eprintln!("mke2fs -d (not ours): {:?}", started.elapsed());
    let layout = DiskLayout {
        table: Table::Mbr { disk_id: DISK_ID },
        partitions: vec![
            DiskPartition {
                start_lba: 16384,
                size_bytes: 512 << 20,
                data: PartitionData::Bytes(boot),
                entry: TableEntry::Mbr { kind: 0x0c, bootable: false },
            },
            DiskPartition {
                start_lba: 16384 + (512 << 11),
                size_bytes: 1536 << 20,
                data: PartitionData::File(root),
                entry: TableEntry::Mbr { kind: 0x83, bootable: false },
            },
        ],
        size_bytes: None,
    };
    let img = dir.path().join("server.img");
    let started = Instant::now();
    let written = write_disk_image(&img, &layout).unwrap();
    let took = started.elapsed();
    let mapped = written.mapped_blocks() * BLOCK;
    eprintln!(
        "image: {} MiB, {} MiB mapped, written in {took:?} ({:.0} MiB/s of data)",
        written.size >> 20,
        mapped >> 20,
        mapped as f64 / 1048576.0 / took.as_secs_f64()
    );
    let started = Instant::now();
    let bmap = bmap_for_image(&img, &written).unwrap();
    eprintln!("bmap: {} ranges in {:?}", bmap.matches("<Range").count(), started.elapsed());
    let ours = compress(&img, &dir.path().join("ours.img.xz"), 2);
    let started = Instant::now();
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("xz -6 -T2 --block-size=16MiB -c '{}' > '{}'", s(&img), s(&dir.path().join("xz.img.xz"))))
        .status()
        .unwrap();
    assert!(status.success());
    let took = started.elapsed();
    eprintln!(
        "xz -6 -T2 --block-size=16MiB (xz 5.4 CLI): {took:?} ({:.0} MiB/s)",
        written.size as f64 / 1048576.0 / took.as_secs_f64()
    );
    let theirs = std::fs::metadata(dir.path().join("xz.img.xz")).unwrap().len();
    eprintln!("sizes: ours {} bytes, xz CLI {theirs} bytes", ours.output_size);
}
