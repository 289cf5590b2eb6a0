//! An ext4 filesystem image made from a tree by e2fsprogs' `mke2fs -d` reading a tar on stdin
//! (e2fsprogs ≥ 1.47.1: rootless, owners and xattrs from the tar's headers, times clamped to
//! SOURCE_DATE_EPOCH), reproducible: the UUID and the directory hash seed are the caller's, the
//! features and every other default are pinned here instead of read from the host's
//! mke2fs.conf, which differs between releases (1.47 turned on `orphan_file`).

use crate::tree::tar::{TarOptions, write_tar};
use crate::tree::{Kind, Tree};
use anyhow::{Context, Result, bail};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// What the Pi's kernels mount (6.1 and later): the ext4 defaults of e2fsprogs 1.46, without
/// `orphan_file` and `metadata_csum_seed`, which older kernels and tools refuse.
pub const FEATURES: &str = "none,has_journal,ext_attr,resize_inode,dir_index,filetype,extent,64bit,\
flex_bg,sparse_super,large_file,huge_file,dir_nlink,extra_isize,metadata_csum";

/// A mke2fs.conf with nothing in it but what the command line does not say.
const CONFIG: &str = "[defaults]\n\tblocksize = 4096\n\tinode_size = 256\n\tinode_ratio = 16384\n\n\
[fs_types]\n\text4 = {\n\t}\n\tdefault = {\n\t}\n";

const BLOCK: u64 = 4096;
const INODE_SIZE: u64 = 256;

#[derive(Clone, Debug)]
pub struct Ext4Spec {
    pub label: String,
    /// The filesystem UUID, also the directory hash seed.
    pub uuid: [u8; 16],
    pub size_bytes: u64,
    pub inodes: u64,
    pub journal_mib: u64,
    /// SOURCE_DATE_EPOCH: the superblock's times and every inode's are at most this.
    pub timestamp: i64,
}

fn uuid_text(u: &[u8; 16]) -> String {
    let h = crate::digest::hex(u);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// The version of `mke2fs`, e.g. (1, 47, 2); an error says what to install when it is missing.
pub fn version() -> Result<(u32, u32, u32)> {
    let out = Command::new("mke2fs").arg("-V").output().map_err(|e| {
        anyhow::anyhow!(
            "cannot run mke2fs ({e}): install e2fsprogs 1.47.1 or newer (Debian 12: from bookworm-backports)"
        )
    })?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().nth(1).unwrap_or("");
    let mut parts = v.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).map(|p| p.parse().unwrap_or(0));
    Ok((parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0)))
}

/// The journal for a filesystem of about `bytes`: mke2fs's own choice for such sizes.
pub fn journal_mib(bytes: u64) -> u64 {
    match bytes >> 20 {
        0..=127 => 4,
        128..=1023 => 16,
        1024..=4095 => 32,
        _ => 64,
    }
}

/// Bytes and inodes `tree` needs, with `headroom` bytes free: every file rounded up to whole
/// blocks, a block per folder and long symlink, the inode tables, the journal, and 5% for
/// extents, group metadata and reserved blocks.
pub fn size_for(tree: &Tree, headroom: u64) -> (u64, u64) {
    let mut blocks = 0u64;
    let mut inodes = 0u64;
    for (_, n) in tree.iter() {
        match &n.kind {
            Kind::File(c) => {
                blocks += c.len().div_ceil(BLOCK);
                inodes += 1;
            }
            Kind::Dir => {
                blocks += 1;
                inodes += 1;
            }
            Kind::Symlink(t) if t.as_os_str().len() >= 60 => {
                blocks += 1;
                inodes += 1;
            }
            Kind::HardLink(_) => {}
            _ => inodes += 1,
        }
        if !n.xattrs.is_empty() {
            blocks += 1;
        }
    }
    let inodes = (inodes + inodes / 4 + 4096).next_multiple_of(1024);
    let data = blocks * BLOCK + inodes * INODE_SIZE;
    let data = data + (journal_mib(data + headroom) << 20);
    let size = (data + data / 20 + headroom + (16 << 20)).next_multiple_of(1 << 20);
    (size, inodes)
}

/// Write the filesystem of `tree` to `out` (created or truncated).
pub fn make(tree: &Tree, spec: &Ext4Spec, out: &Path) -> Result<()> {
    let v = version()?;
    if v < (1, 47, 1) {
        bail!(
            "mke2fs {}.{}.{} is too old: building an ext4 from a tar needs e2fsprogs 1.47.1 or newer (Debian 12: `apt-get install -t bookworm-backports e2fsprogs`)",
            v.0,
            v.1,
            v.2
        );
    }
    let dir = tempfile::tempdir()?;
    let conf = dir.path().join("mke2fs.conf");
    std::fs::write(&conf, CONFIG)?;
    std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?.set_len(spec.size_bytes)?;
    let uuid = uuid_text(&spec.uuid);
    let mut child = Command::new("mke2fs")
        .args(["-q", "-F", "-t", "ext4", "-b", "4096", "-I", "256", "-m", "1", "-L", &spec.label, "-U", &uuid])
        .args(["-T", "default", "-N", &spec.inodes.to_string(), "-O", FEATURES])
        .args(["-J", &format!("size={}", spec.journal_mib)])
        .args(["-E", &format!("hash_seed={uuid},lazy_itable_init=0,lazy_journal_init=0,root_owner=0:0")])
        .args(["-d", "-"])
        .arg(out)
        .arg(format!("{}k", spec.size_bytes / 1024))
        .env("MKE2FS_CONFIG", &conf)
        .env("SOURCE_DATE_EPOCH", spec.timestamp.to_string())
        .env("E2FSPROGS_FAKE_TIME", spec.timestamp.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start mke2fs")?;
    let stdin = child.stdin.take().context("mke2fs's stdin")?;
    let writer = std::thread::scope(|scope| {
        let feeding = scope.spawn(move || -> std::io::Result<()> {
            let mut done = write_tar(
                tree,
                std::io::BufWriter::with_capacity(1 << 20, stdin),
                TarOptions { mtime_limit: Some(spec.timestamp) },
            )?;
            done.flush()
        });
        let output = child.wait_with_output();
        (feeding.join(), output)
    });
    let (fed, output) = writer;
    let output = output.context("mke2fs")?;
    if !output.status.success() {
        let _ = std::fs::remove_file(out);
        bail!("mke2fs failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    match fed {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).context("writing the root's tar to mke2fs"),
        Err(_) => bail!("the thread feeding mke2fs panicked"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Content, Node, Timestamp};

    fn tree() -> Tree {
        let mut t = Tree::new();
        let mut d = Node::new(Kind::Dir, 0o755);
        d.mtime = Timestamp::from_secs(1_700_000_000);
        t.insert("", d.clone());
        t.insert("etc", d.clone());
        let mut f = Node::new(Kind::File(Content::bytes(b"hello\n".to_vec())), 0o640);
        f.gid = 42;
        f.mtime = Timestamp::from_secs(1_800_000_000);
        t.insert("etc/shadow", f);
        t.insert("etc/link", Node::new(Kind::Symlink("shadow".into()), 0o777));
        t
    }

    #[test]
    fn reproducible_and_checked_by_e2fsck() {
        let dir = tempfile::tempdir().unwrap();
        let t = tree();
        let (size, inodes) = size_for(&t, 8 << 20);
        let spec = Ext4Spec {
            label: "rootfs".into(),
            uuid: [7; 16],
            size_bytes: size,
            inodes,
            journal_mib: journal_mib(size),
            timestamp: 1_767_225_600,
        };
        let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
        make(&t, &spec, &a).unwrap();
        make(&t, &spec, &b).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "two builds differ");
        let fsck = Command::new("e2fsck").args(["-fn"]).arg(&a).output().unwrap();
        assert!(fsck.status.success(), "{}", String::from_utf8_lossy(&fsck.stdout));
        let stat = Command::new("debugfs").args(["-R", "stat /etc/shadow"]).arg(&a).output().unwrap();
        let text = String::from_utf8_lossy(&stat.stdout);
        assert!(text.contains("Group:    42"), "{text}");
        // Clamped to SOURCE_DATE_EPOCH.
        assert!(text.contains("mtime: 0x695"), "{text}");
        let dumpe2fs = Command::new("dumpe2fs").args(["-h"]).arg(&a).output().unwrap();
        let header = String::from_utf8_lossy(&dumpe2fs.stdout);
        assert!(header.contains("07070707-0707-0707-0707-070707070707") && !header.contains("orphan_file"), "{header}");
    }
}
