//! A small, real Debian archive made by the real tools in a temporary folder: packages built
//! with `dpkg-deb --build` (data.tar as xz, gzip, zstd and uncompressed; a setuid file, an
//! executable, symlinks absolute and relative, a hard link, a file with its own owner, Depends,
//! Pre-Depends and Provides between them), the index by `apt-ftparchive packages`, `xz` for
//! Packages.xz, the Release by `apt-ftparchive release`, signed by a throwaway gpg key
//! (InRelease clear-signed, Release.gpg detached), and that key exported as the keyring.
#![allow(dead_code)]

use super::{path_str, tool_ok};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub const SUITE: &str = "bookworm";
pub const ARCH: &str = "arm64";

pub struct TestArchive {
    pub dir: tempfile::TempDir,
    /// The archive root: `dists/` and `pool/`.
    pub root: PathBuf,
    /// The binary public keyring that signed it.
    pub keyring: PathBuf,
    /// A keyring with another key only.
    pub other_keyring: PathBuf,
    /// GNUPGHOMEs of the archive key and of the other key.
    pub gnupg: PathBuf,
    pub other_gnupg: PathBuf,
    /// Package file name → path of the .deb.
    pub debs: BTreeMap<String, PathBuf>,
}

struct Pkg {
    control: &'static str,
    compression: &'static str,
    root_owner: bool,
    files: &'static [(&'static str, FileSpec)],
}

enum FileSpec {
    Data(&'static [u8], u32),
    Big(usize, u32),
    Symlink(&'static str),
    HardLink(&'static str),
    Dir(u32),
    Owned(&'static [u8], u32, u32),
}

fn packages() -> Vec<Pkg> {
    use FileSpec::*;
    vec![
        Pkg {
            control: "Package: bramble-boot\nVersion: 1.0-1\nArchitecture: all\nMulti-Arch: foreign\n\
                      Depends: bramble-lib (>= 2), bramble-tools | bramble-alt\n",
            compression: "xz",
            root_owner: true,
            files: &[
                ("usr/lib/bramble/boot.efi", Big(300_000, 0o644)),
                ("usr/lib/bramble/run.sh", Data(b"#!/bin/sh\necho boot\n", 0o755)),
                ("usr/lib/bramble/suid", Data(b"setuid\n", 0o4755)),
                ("usr/lib/bramble/current", Symlink("boot.efi")),
                ("usr/lib/bramble/same.efi", HardLink("usr/lib/bramble/boot.efi")),
                ("boot/boot.efi", Symlink("/usr/lib/bramble/current")),
                ("var/lib/bramble", Dir(0o2770)),
            ],
        },
        Pkg {
            control: "Package: bramble-lib\nVersion: 2.0-1\nArchitecture: arm64\nMulti-Arch: same\n\
                      Depends: libc6 (>= 2.30)\nProvides: bramble-abi-2 (= 2.0)\n",
            compression: "gzip",
            root_owner: true,
            files: &[("usr/lib/aarch64-linux-gnu/libbramble.so.2", Data(b"\x7fELF library", 0o644))],
        },
        Pkg {
            control: "Package: bramble-lib\nVersion: 1.0-1\nArchitecture: arm64\nMulti-Arch: same\n",
            compression: "none",
            root_owner: true,
            files: &[("usr/lib/aarch64-linux-gnu/libbramble.so.1", Data(b"\x7fELF old library", 0o644))],
        },
        Pkg {
            control: "Package: bramble-tools\nVersion: 3.1\nArchitecture: arm64\nPre-Depends: bramble-lib\n\
                      Depends: coreutils (>= 8), bramble-abi-2\n",
            compression: "zstd",
            root_owner: false,
            files: &[
                ("usr/bin/bramble-tool", Data(b"#!/bin/sh\necho tool\n", 0o755)),
                ("srv/lab/owned", Owned(b"lab data\n", 1234, 5678)),
            ],
        },
        Pkg {
            control: "Package: bramble-doc\nVersion: 1.0-1\nArchitecture: all\nDepends: bramble-missing (>= 1)\n",
            compression: "xz",
            root_owner: true,
            files: &[("usr/share/doc/bramble-doc/README", Data(b"docs\n", 0o644))],
        },
    ]
}

fn gpg(home: &Path, args: &[&str]) -> String {
    let out = Command::new("gpg")
        .env("GNUPGHOME", home)
        .args(["--batch", "--quiet", "--yes"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run gpg ({e}); run `just setup`"));
    assert!(out.status.success(), "gpg {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn new_key(home: &Path, uid: &str, keyring: &Path) {
    std::fs::create_dir_all(home).unwrap();
    std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)).unwrap();
    gpg(home, &["--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never"]);
    gpg(home, &["--output", path_str(keyring), "--export"]);
}

impl TestArchive {
    pub fn build() -> TestArchive {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("archive");
        let pool = root.join("pool/main/b/bramble");
        std::fs::create_dir_all(&pool).unwrap();
        let mut debs = BTreeMap::new();
        for (i, pkg) in packages().into_iter().enumerate() {
            let src = dir.path().join(format!("src{i}"));
            std::fs::create_dir_all(src.join("DEBIAN")).unwrap();
            let control = format!(
                "{}Maintainer: Bramble <lab@bramble.test>\nDescription: test package\n a package for Bramble's tests\n",
                pkg.control
            );
            std::fs::write(src.join("DEBIAN/control"), &control).unwrap();
            for (path, spec) in pkg.files {
                let p = src.join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                let write = |bytes: &[u8], mode: u32| {
                    std::fs::write(&p, bytes).unwrap();
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
                };
                match spec {
                    FileSpec::Data(bytes, mode) => write(bytes, *mode),
                    FileSpec::Big(len, mode) => {
                        let bytes: Vec<u8> = (0..*len).map(|i| (i * 7 % 251) as u8).collect();
                        write(&bytes, *mode)
                    }
                    FileSpec::Symlink(target) => std::os::unix::fs::symlink(target, &p).unwrap(),
                    FileSpec::HardLink(target) => std::fs::hard_link(src.join(target), &p).unwrap(),
                    FileSpec::Dir(mode) => {
                        std::fs::create_dir_all(&p).unwrap();
                        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
                    }
                    FileSpec::Owned(bytes, uid, gid) => {
                        write(bytes, 0o640);
                        std::os::unix::fs::chown(&p, Some(*uid), Some(*gid)).unwrap();
                    }
                }
            }
            let field =
                |name: &str| control.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).unwrap().to_string();
            let file = format!("{}_{}_{}.deb", field("Package"), field("Version"), field("Architecture"));
            let out = pool.join(&file);
            let mut args =
                vec![format!("-Z{}", pkg.compression), "--build".into(), path_str(&src).into(), path_str(&out).into()];
            if pkg.root_owner {
                args.insert(0, "--root-owner-group".into());
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            tool_ok("dpkg-deb", &args);
            debs.insert(file, out);
        }
        let suite = root.join("dists").join(SUITE);
        let binary = suite.join(format!("main/binary-{ARCH}"));
        std::fs::create_dir_all(&binary).unwrap();
        let packages = Command::new("apt-ftparchive").arg("packages").arg("pool").current_dir(&root).output();
        let packages = packages.unwrap_or_else(|e| panic!("cannot run apt-ftparchive ({e}); run `just setup`"));
        assert!(packages.status.success(), "{}", String::from_utf8_lossy(&packages.stderr));
        std::fs::write(binary.join("Packages"), &packages.stdout).unwrap();
        tool_ok("xz", &["-k", path_str(&binary.join("Packages"))]);
        let release = Command::new("apt-ftparchive")
            .args(["-o", &format!("APT::FTPArchive::Release::Suite={SUITE}")])
            .args(["-o", &format!("APT::FTPArchive::Release::Codename={SUITE}")])
            .args(["-o", &format!("APT::FTPArchive::Release::Architectures={ARCH}")])
            .args(["-o", "APT::FTPArchive::Release::Components=main"])
            .args(["-o", "APT::FTPArchive::Release::Origin=Bramble"])
            .arg("release")
            .arg(format!("dists/{SUITE}"))
            .current_dir(&root)
            .output()
            .unwrap();
        assert!(release.status.success(), "{}", String::from_utf8_lossy(&release.stderr));
        std::fs::write(suite.join("Release"), &release.stdout).unwrap();
        let (gnupg, other_gnupg) = (dir.path().join("gnupg"), dir.path().join("gnupg-other"));
        let (keyring, other_keyring) = (dir.path().join("archive-keyring.gpg"), dir.path().join("other-keyring.gpg"));
        new_key(&gnupg, "Bramble Test Archive <archive@bramble.test>", &keyring);
        new_key(&other_gnupg, "Someone Else <else@bramble.test>", &other_keyring);
        let release_path = path_str(&suite.join("Release")).to_string();
        gpg(&gnupg, &["--clearsign", "--output", path_str(&suite.join("InRelease")), &release_path]);
        gpg(&gnupg, &["--armor", "--detach-sign", "--output", path_str(&suite.join("Release.gpg")), &release_path]);
        TestArchive { dir, root, keyring, other_keyring, gnupg, other_gnupg, debs }
    }

    /// Every file of the archive by its path from the root (`dists/bookworm/InRelease`).
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(&self.root).unwrap().to_string_lossy().into_owned();
                    out.insert(rel, std::fs::read(&p).unwrap());
                }
            }
        }
        out
    }

    /// `text` clear-signed by the archive key (or, with `other`, by the other key).
    pub fn clearsign(&self, text: &[u8], other: bool) -> Vec<u8> {
        let home = if other { &self.other_gnupg } else { &self.gnupg };
        let input = self.dir.path().join("to-sign");
        std::fs::write(&input, text).unwrap();
        let output = self.dir.path().join("signed");
        gpg(home, &["--clearsign", "--output", path_str(&output), path_str(&input)]);
        std::fs::read(output).unwrap()
    }

    pub fn deb(&self, name: &str) -> &Path {
        &self.debs[name]
    }
}
