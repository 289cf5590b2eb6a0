use super::*;
use crate::digest::hex;

fn spec() -> Fat32Spec {
    Fat32Spec {
        label: "TEST".into(),
        volume_id: 0x1234_5678,
        size_bytes: 40 << 20,
        bytes_per_cluster: 512,
        hidden_sectors: 2048,
        timestamp: 1_700_000_000,
    }
}

fn dir_node(secs: i64) -> Node {
    let mut n = Node::new(Kind::Dir, 0o755);
    n.mtime.secs = secs;
    n
}

fn file_node(bytes: &[u8], secs: i64) -> Node {
    let mut n = Node::new(Kind::File(Content::bytes(bytes.to_vec())), 0o644);
    n.mtime.secs = secs;
    n
}

/// Where a cluster's bytes start, from the boot sector.
fn cluster_offset(volume: &[u8], cluster: u32) -> usize {
    let bps = u16::from_le_bytes([volume[11], volume[12]]) as usize;
    let spc = volume[13] as usize;
    let reserved = u16::from_le_bytes([volume[14], volume[15]]) as usize;
    let fats = volume[16] as usize;
    let fat_size = u32::from_le_bytes(volume[0x24..0x28].try_into().unwrap()) as usize;
    (reserved + fats * fat_size) * bps + (cluster as usize - 2) * spc * bps
}

/// The first cluster of the short entry named `short` in the directory starting at `cluster`.
fn entry_cluster(volume: &[u8], cluster: u32, short: &[u8; 11]) -> u32 {
    let at = cluster_offset(volume, cluster);
    let e = volume[at..at + 512].chunks(32).find(|e| &e[..11] == short && e[11] != 0x0F).unwrap();
    (u32::from(u16::from_le_bytes([e[20], e[21]])) << 16) | u32::from(u16::from_le_bytes([e[26], e[27]]))
}

#[test]
fn same_input_same_bytes() {
    let a = fat32_volume(&spec(), &[("b.txt", b"2"), ("a.txt", b"1")]).unwrap();
    let b = fat32_volume(&spec(), &[("a.txt", b"1"), ("b.txt", b"2")]).unwrap();
    assert!(a == b);
}

#[test]
fn volume_reads_back_with_fatfs() {
    let image = fat32_volume(&spec(), &[("hello.txt", b"hi")]).unwrap();
    let fs = FileSystem::new(Cursor::new(image), FsOptions::new()).unwrap();
    assert_eq!(fs.fat_type(), FatType::Fat32);
    assert!(fs.stats().unwrap().free_clusters() > 0);
    assert_eq!(fs.volume_id(), 0x1234_5678);
    let entry = fs.root_dir().iter().map(|e| e.unwrap()).find(|e| e.file_name() == "hello.txt").unwrap();
    assert_eq!(entry.len(), 2);
    let m = entry.modified();
    assert_eq!((m.date.year, m.date.month, m.date.day, m.time.hour, m.time.min), (2023, 11, 14, 22, 13));
}

#[test]
fn bad_specs_are_refused() {
    assert!(fat32_volume(&Fat32Spec { size_bytes: 8 << 20, ..spec() }, &[]).is_err());
    assert!(fat32_volume(&Fat32Spec { size_bytes: (40 << 20) + 1, ..spec() }, &[]).is_err());
    assert!(fat32_volume(&Fat32Spec { bytes_per_cluster: 1000, ..spec() }, &[]).is_err());
    assert!(fat32_volume(&Fat32Spec { label: "lower".into(), ..spec() }, &[]).is_err());
    assert!(fat32_volume(&Fat32Spec { timestamp: 0, ..spec() }, &[]).is_err());
    let full = vec![0u8; 41 << 20];
    assert!(fat32_volume(&spec(), &[("big.bin", &full)]).is_err());
    let small = fat32_volume(&Fat32Spec { size_bytes: 20 << 20, ..spec() }, &[]).unwrap_err();
    assert!(format!("{small:#}").contains("fat32_size_for"), "{small:#}");
}

fn nested_tree() -> Tree {
    let mut t = Tree::new();
    t.insert("", dir_node(1_600_000_000));
    t.insert("d", dir_node(1_600_000_000));
    t.insert("d/e", dir_node(1_600_000_000));
    t
}

/// What fatfs 0.3.6 writes at the start of a first-level folder `d` (cluster 3) of a volume
/// made at 2020-09-13 12:26:40 UTC: an LFN entry for ".", the "." entry, an LFN entry for
/// "..", and ".." naming cluster 2 (the root's cluster) where the FAT specification wants 0.
/// If a fatfs upgrade changes these bytes, `fat_dot_entries` must be looked at again.
const FATFS_036_FIRST_LEVEL_DIR: &str = concat!(
    "412e000000ffffffffffff0f0077ffffffffffffffffffffffff0000ffffffff",
    "2e2020202020202020202010000054632d512d51000054632d51030000000000",
    "412e002e000000ffffffff0f00c2ffffffffffffffffffffffff0000ffffffff",
    "2e2e20202020202020202010000054632d512d51000054632d51020000000000",
);

#[test]
fn fatfs_still_writes_the_dot_entries_we_repair() {
    let tree = nested_tree();
    let raw = unrepaired_volume(&spec(), &fat_items(&tree, spec().timestamp).unwrap()).unwrap();
    let root = u32::from_le_bytes(raw[0x2C..0x30].try_into().unwrap());
    let d = entry_cluster(&raw, root, b"D          ");
    assert_eq!(d, 3);
    let at = cluster_offset(&raw, d);
    assert_eq!(hex(&raw[at..at + 128]), FATFS_036_FIRST_LEVEL_DIR);
    // The next entry is "e", with its own LFN entry: what the repair must move up two slots.
    assert_eq!(raw[at + 128 + 11], 0x0F);
    assert_eq!(&raw[at + 160..at + 171], b"E          ");
}

#[test]
fn repaired_folders_start_with_plain_dot_entries() {
    let volume = fat32_volume_tree(&spec(), &nested_tree()).unwrap();
    let root = u32::from_le_bytes(volume[0x2C..0x30].try_into().unwrap());
    let d = entry_cluster(&volume, root, b"D          ");
    let at = cluster_offset(&volume, d);
    let raw_dir = hex::decode_hex(FATFS_036_FIRST_LEVEL_DIR);
    // "." as fatfs wrote it, then ".." with cluster 0, then "e"'s LFN and short entries.
    assert_eq!(&volume[at..at + 32], &raw_dir[32..64]);
    let mut dotdot = raw_dir[96..128].to_vec();
    dotdot[26] = 0;
    assert_eq!(&volume[at + 32..at + 64], &dotdot[..]);
    assert_eq!(volume[at + 64 + 11], 0x0F);
    assert_eq!(&volume[at + 96..at + 107], b"E          ");
    assert!(volume[at + 128..at + 512].iter().all(|&b| b == 0));
    // Second level: ".." names the parent's cluster.
    let e = entry_cluster(&volume, d, b"E          ");
    let at = cluster_offset(&volume, e);
    assert_eq!(&volume[at..at + 11], b".          ");
    assert_eq!(&volume[at + 32..at + 43], b"..         ");
    assert_eq!(u16::from_le_bytes([volume[at + 32 + 26], volume[at + 32 + 27]]), d as u16);
    // Repairing again finds nothing to do.
    let tree = nested_tree();
    let items = fat_items(&tree, spec().timestamp).unwrap();
    let mut again = volume.clone();
    assert_eq!(repair_folders(&mut again, &folder_plans(&items).unwrap().0), Ok(0));
    assert!(again == volume);
}

mod hex {
    pub fn decode_hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }
}

#[test]
fn trees_read_back_with_their_times_and_bytes() {
    let mut t = nested_tree();
    t.insert("d/e/deep.txt", file_node(b"deep", 1_650_000_000));
    t.insert("d/empty", file_node(b"", 1_000_000_000));
    t.insert("d/later.bin", file_node(&[7u8; 3000], 1_900_000_000));
    t.insert("A Long Name With Spaces.txt", file_node(b"x", 1_650_000_000));
    t.insert("hard", Node::new(Kind::HardLink("d/e/deep.txt".into()), 0o644));
    let volume = fat32_volume_tree(&spec(), &t).unwrap();
    let fs = FileSystem::new(Cursor::new(volume), FsOptions::new()).unwrap();
    let root = fs.root_dir();
    let names: Vec<String> = root.iter().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["A Long Name With Spaces.txt", "d", "hard"]);
    let mut deep = String::new();
    root.open_file("d/e/deep.txt").unwrap().read_to_string(&mut deep).unwrap();
    assert_eq!(deep, "deep");
    let mut hard = Vec::new();
    root.open_file("hard").unwrap().read_to_end(&mut hard).unwrap();
    assert_eq!(hard, b"deep");
    let d = root.open_dir("d").unwrap();
    let entries: Vec<_> = d.iter().map(|e| e.unwrap()).collect();
    let listed: Vec<(String, u64)> = entries.iter().map(|e| (e.file_name(), e.len())).collect();
    assert_eq!(
        listed,
        [(".".into(), 0), ("..".into(), 0), ("e".into(), 0), ("empty".into(), 0), ("later.bin".into(), 3000)]
    );
    let when = |name: &str| {
        let m = entries.iter().find(|e| e.file_name() == name).unwrap().modified();
        (m.date.year, m.date.month, m.date.day, m.time.hour, m.time.min)
    };
    // 1_000_000_000 is 2001-09-09 01:46:40; 1_900_000_000 is past the spec's timestamp.
    assert_eq!(when("empty"), (2001, 9, 9, 1, 46));
    assert_eq!(when("later.bin"), (2023, 11, 14, 22, 13));
    assert_eq!(when("e"), (2020, 9, 13, 12, 26));
}

#[test]
fn trees_fat_cannot_hold_are_refused_by_path() {
    let cases: Vec<(&str, Node, &str)> = vec![
        ("d/link", Node::new(Kind::Symlink("e".into()), 0o777), "d/link: a symbolic link"),
        ("d/null", Node::new(Kind::CharDevice { major: 1, minor: 3 }, 0o666), "d/null: a character device"),
        ("d/fifo", Node::new(Kind::Fifo, 0o644), "d/fifo: a FIFO"),
        ("d/E", dir_node(1_600_000_000), "another name in d differs only in case"),
        ("d/a:b", file_node(b"", 1_600_000_000), "cannot hold ':'"),
        ("d/dot.", file_node(b"", 1_600_000_000), "trailing dots"),
        ("d/orphan/x", file_node(b"", 1_600_000_000), "parent folder d/orphan is not in the tree"),
        ("d/h", Node::new(Kind::HardLink("nowhere".into()), 0o644), "d/h: hard link to nowhere"),
    ];
    for (path, node, message) in cases {
        let mut t = nested_tree();
        t.insert(path, node);
        let err = format!("{:#}", fat32_volume_tree(&spec(), &t).unwrap_err());
        assert!(err.contains(message), "{path}: {err}");
    }
    let mut long = nested_tree();
    long.insert("x".repeat(256), file_node(b"", 1_600_000_000));
    assert!(fat32_volume_tree(&spec(), &long).is_err());
}

#[test]
fn a_name_equal_to_another_files_short_name_is_refused() {
    let mut t = nested_tree();
    // fatfs gives "abcdefghij.txt" the short name ABCDEF~1.TXT; a later "ABCDEF~1.TXT" would
    // open that file rather than create a second one.
    t.insert("abcdefghij.txt", file_node(b"1", 1_600_000_000));
    t.insert("abcdef~1.txt", file_node(b"2", 1_600_000_000));
    let err = format!("{:#}", fat32_volume_tree(&spec(), &t).unwrap_err());
    assert!(err.contains("collide"), "{err}");
}
