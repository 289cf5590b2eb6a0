//! Debian packages as pinned inputs, end to end against a real archive made by dpkg-deb,
//! apt-ftparchive, xz and gpg (tests/common/deb_archive.rs) and served on 127.0.0.1: resolve
//! through the signed InRelease and Packages.xz, lock, download; the cached .debs match
//! sha256sum; what Bramble reads out of them matches `dpkg-deb -x` and `dpkg-deb -f`; tampered
//! indexes and foreign signatures are refused with the URL named; pinned inputs need no index
//! and work offline; the dependency closure over a status file picks exactly what is missing.

mod common;

use bramble::fetch::cache::Cache;
use bramble::fetch::download::Downloader;
use bramble::fetch::lock::Lock;
use bramble::fetch::resolve::{Options, Outcome, Status, fetch_all};
use bramble::recipe::DebianArchive;
use bramble::source::deb_file::DebFile;
use bramble::source::debian::{self, Index, status};
use bramble::source::inputs::{Input, deb_input};
use bramble::tree::dir::{DirOptions, write_dir};
use common::deb_archive::{ARCH, SUITE, TestArchive};
use common::http::HttpServer;
use common::{path_str, tool_ok};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn archive() -> &'static TestArchive {
    static ARCHIVE: OnceLock<TestArchive> = OnceLock::new();
    ARCHIVE.get_or_init(TestArchive::build)
}

/// The archive under /debian, with `changes` (path → bytes, or `None` to remove) applied.
fn serve(changes: &[(&str, Option<Vec<u8>>)]) -> HttpServer {
    let server = HttpServer::start();
    let mut files = archive().files();
    for (path, bytes) in changes {
        match bytes {
            Some(b) => files.insert(path.to_string(), b.clone()),
            None => files.remove(*path),
        };
    }
    for (path, bytes) in files {
        server.put(&format!("/debian/{path}"), bytes);
    }
    server
}

fn archive_at(server: &HttpServer, keyring: &Path) -> DebianArchive {
    DebianArchive {
        mirror: server.url("/debian"),
        suite: SUITE.into(),
        components: vec!["main".into()],
        keyring: keyring.to_path_buf(),
    }
}

fn inputs(archive: &DebianArchive) -> Vec<Input> {
    ["bramble-boot", "bramble-lib", "bramble-tools"].iter().map(|p| deb_input(archive, p, ARCH)).collect()
}

fn fetch(inputs: &[Input], lock: Option<&Lock>, cache: &Path, offline: bool) -> anyhow::Result<Outcome> {
    let cache = Cache::open(cache)?;
    let dl = Downloader::new(vec![], true)?;
    let opts = Options { locked: false, offline, update: false, os_list: "http://127.0.0.1:9/none".into() };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(fetch_all(inputs, lock, None, &cache, &dl, &opts))
}

fn sha256sum(path: &Path) -> String {
    tool_ok("sha256sum", &[path_str(path)]).split_whitespace().next().unwrap().to_string()
}

fn inrelease() -> String {
    format!("dists/{SUITE}/InRelease")
}

fn packages_xz() -> String {
    format!("dists/{SUITE}/main/binary-{ARCH}/Packages.xz")
}

#[test]
fn packages_resolve_lock_and_download_through_the_signed_index() {
    let a = archive();
    let server = serve(&[]);
    let cache = tempfile::tempdir().unwrap();
    let out = fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap();
    assert!(out.changed);
    let locked: Vec<(&str, &str, Option<&str>)> =
        out.lock.inputs.iter().map(|i| (i.name.as_str(), i.url.as_str(), i.version.as_deref())).collect();
    let url = |file: &str| server.url(&format!("/debian/pool/main/b/bramble/{file}"));
    assert_eq!(
        locked,
        [
            ("deb:bramble-boot:arm64", url("bramble-boot_1.0-1_all.deb").as_str(), Some("1.0-1")),
            // The higher of the two versions in the index.
            ("deb:bramble-lib:arm64", url("bramble-lib_2.0-1_arm64.deb").as_str(), Some("2.0-1")),
            ("deb:bramble-tools:arm64", url("bramble-tools_3.1_arm64.deb").as_str(), Some("3.1")),
        ]
    );
    for f in &out.files {
        assert_eq!(f.status, Status::Downloaded);
        let file = f.input.url.rsplit('/').next().unwrap();
        let original = a.deb(file);
        assert_eq!(f.input.sha256, sha256sum(original), "{file}");
        assert_eq!(sha256sum(&f.path), f.input.sha256, "{file}");
        assert_eq!(f.input.size, std::fs::metadata(original).unwrap().len());
        assert_eq!(
            f.input.from,
            format!("deb:{SUITE}/main/{ARCH}/{}@{}", &f.input.name[4..f.input.name.len() - 6], server.url("/debian"))
        );
    }
    // One InRelease and one index for three packages; the uncompressed index is not needed.
    assert_eq!(server.requests_for(&format!("/debian/{}", inrelease())).len(), 1);
    assert_eq!(server.requests_for(&format!("/debian/{}", packages_xz())).len(), 1);
    assert!(server.requests_for(&format!("/debian/dists/{SUITE}/Release")).is_empty());
    // The lock round-trips with its versions.
    let dir = tempfile::tempdir().unwrap();
    let lock_path = dir.path().join("lab.lock");
    std::fs::write(&lock_path, out.lock.to_text()).unwrap();
    let text = std::fs::read_to_string(&lock_path).unwrap();
    assert!(text.contains("version = \"2.0-1\""), "{text}");
    assert_eq!(Lock::load(&lock_path).unwrap().unwrap(), out.lock);
}

#[test]
fn pinned_packages_need_no_index_and_work_offline() {
    let a = archive();
    let server = serve(&[]);
    let cache = tempfile::tempdir().unwrap();
    let wanted = inputs(&archive_at(&server, &a.keyring));
    let first = fetch(&wanted, None, cache.path(), false).unwrap();
    let before = server.requests().len();
    // Pinned and cached: nothing is asked of the archive, online or offline.
    let again = fetch(&wanted, Some(&first.lock), cache.path(), false).unwrap();
    assert!(!again.changed);
    assert!(again.files.iter().all(|f| f.status == Status::Cached));
    let offline = fetch(&wanted, Some(&first.lock), cache.path(), true).unwrap();
    assert_eq!(offline.lock, first.lock);
    assert_eq!(server.requests().len(), before);
    // Pinned but not cached: the .deb alone is downloaded, still without an index.
    let fresh = tempfile::tempdir().unwrap();
    let refetched = fetch(&wanted, Some(&first.lock), fresh.path(), false).unwrap();
    assert!(refetched.files.iter().all(|f| f.status == Status::Downloaded));
    assert_eq!(server.requests_for(&format!("/debian/{}", inrelease())).len(), 1);
    // Offline with an empty cache lists what is missing.
    let empty = tempfile::tempdir().unwrap();
    let err = format!("{:#}", fetch(&wanted, Some(&first.lock), empty.path(), true).unwrap_err());
    assert!(err.contains("3 input(s) are not in the cache") && err.contains("deb:bramble-lib:arm64"), "{err}");
    // A package the lock does not pin cannot be resolved offline.
    let extra = [wanted.clone(), vec![deb_input(&archive_at(&server, &a.keyring), "bramble-doc", ARCH)]].concat();
    let err = format!("{:#}", fetch(&extra, Some(&first.lock), cache.path(), true).unwrap_err());
    assert!(err.contains("cannot resolve `deb:bramble-doc:arm64`"), "{err}");
}

/// Walk a folder: relative path → (type letter, mode, uid, gid, mtime, link target or sha256).
fn listing(root: &Path) -> BTreeMap<PathBuf, (char, u32, u32, u32, i64, String)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let (kind, what) = if m.file_type().is_symlink() {
                ('l', std::fs::read_link(&p).unwrap().display().to_string())
            } else if m.is_dir() {
                stack.push(p.clone());
                ('d', String::new())
            } else {
                ('-', bramble::digest::sha256_hex(&std::fs::read(&p).unwrap()))
            };
            let mode = if kind == 'l' { 0 } else { m.permissions().mode() & 0o7777 };
            out.insert(p.strip_prefix(root).unwrap().to_path_buf(), (kind, mode, m.uid(), m.gid(), m.mtime(), what));
        }
    }
    out
}

/// Modification times of a package's payload as GNU tar lists them (`--full-time`, UTC).
fn tar_times(deb: &Path) -> BTreeMap<PathBuf, i64> {
    let script = format!("dpkg-deb --fsys-tarfile '{}' | TZ=UTC tar --full-time -tvf -", path_str(deb));
    let listing = tool_ok("sh", &["-c", &script]);
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    listing
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let when = time::PrimitiveDateTime::parse(&format!("{} {}", f[3], f[4]), &format).unwrap();
            let path = f[5].trim_start_matches("./").trim_end_matches('/');
            (PathBuf::from(path), when.assume_utc().unix_timestamp())
        })
        .collect()
}

#[test]
fn what_bramble_reads_out_of_a_deb_is_what_dpkg_deb_extracts() {
    let a = archive();
    for (file, deb) in &a.debs {
        let work = tempfile::tempdir().unwrap();
        let (ours, theirs) = (work.path().join("ours"), work.path().join("theirs"));
        tool_ok("dpkg-deb", &["-x", path_str(deb), path_str(&theirs)]);
        let package = DebFile::open(deb).unwrap();
        let tree = package.tree().unwrap();
        write_dir(&tree, &ours, DirOptions::default()).unwrap();
        let (mut l_ours, mut l_theirs) = (listing(&ours), listing(&theirs));
        assert!(l_theirs.len() >= 4, "{file}: {l_theirs:?}");
        // GNU tar creates symlinks last, which moves their folders' mtimes: folder times are
        // checked against the archive's own listing instead.
        let listed = tar_times(deb);
        for (path, entry) in l_ours.iter_mut().filter(|(_, e)| e.0 == 'd') {
            assert_eq!(Some(&entry.4), listed.get(path), "{file}: {}", path.display());
            entry.4 = 0;
        }
        for (_, entry) in l_theirs.iter_mut().filter(|(_, e)| e.0 == 'd') {
            entry.4 = 0;
        }
        assert_eq!(l_ours, l_theirs, "{file}");
        // The control fields, against dpkg-deb -f.
        let control = package.control().unwrap();
        let fields = tool_ok("dpkg-deb", &["-f", path_str(deb), "Package", "Version", "Architecture"]);
        assert_eq!(
            fields,
            format!(
                "Package: {}\nVersion: {}\nArchitecture: {}\n",
                control.name, control.version, control.architecture
            )
        );
    }
    // The members, against binutils' `ar t`; the payloads cover every compression.
    let mut data_members = Vec::new();
    for deb in a.debs.values() {
        let source = std::sync::Arc::new(std::fs::read(deb).unwrap());
        let ours: Vec<String> =
            bramble::source::ar::members(source.as_ref()).unwrap().into_iter().map(|m| m.name).collect();
        let theirs: Vec<String> = tool_ok("ar", &["t", path_str(deb)]).lines().map(str::to_string).collect();
        assert_eq!(ours, theirs);
        data_members.push(ours[2].clone());
    }
    data_members.sort();
    assert_eq!(data_members, ["data.tar", "data.tar.gz", "data.tar.xz", "data.tar.xz", "data.tar.zst"]);
    // Named files follow the package's own symlinks; the hard link holds the same bytes.
    let boot = DebFile::open(a.deb("bramble-boot_1.0-1_all.deb")).unwrap();
    let theirs = tempfile::tempdir().unwrap();
    tool_ok("dpkg-deb", &["-x", path_str(a.deb("bramble-boot_1.0-1_all.deb")), path_str(theirs.path())]);
    let got = boot.extract(&["/boot/boot.efi", "usr/lib/bramble/same.efi", "usr/lib/bramble/run.sh"]).unwrap();
    let efi = std::fs::read(theirs.path().join("usr/lib/bramble/boot.efi")).unwrap();
    assert_eq!(got[0].resolved, Path::new("usr/lib/bramble/boot.efi"));
    assert_eq!(got[0].bytes, efi);
    assert_eq!(got[1].bytes, efi);
    assert_eq!(got[2].mode, 0o755);
    let err = boot.extract(&["usr/lib/bramble/none"]).unwrap_err().to_string();
    assert!(err.contains("`usr/lib/bramble/none` is not in the package"), "{err}");
    // Owners other than root survive (the tools package was built without --root-owner-group).
    let tools = DebFile::open(a.deb("bramble-tools_3.1_arm64.deb")).unwrap();
    let owned = tools.entries().unwrap().into_iter().find(|e| e.path == Path::new("srv/lab/owned")).unwrap();
    assert_eq!((owned.uid, owned.gid, owned.mode), (1234, 5678, 0o640));
}

#[test]
fn a_tampered_index_is_refused_naming_its_url() {
    let a = archive();
    let url = |s: &HttpServer| s.url(&format!("/debian/{}", packages_xz()));
    // Same size, one byte changed: the sha256 differs.
    let mut flipped = a.files()[&packages_xz()].clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 1;
    let server = serve(&[(&packages_xz(), Some(flipped))]);
    let cache = tempfile::tempdir().unwrap();
    let err = format!("{:#}", fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap_err());
    assert!(err.contains(&format!("{} does not match the signed Release file", url(&server))), "{err}");
    assert!(err.contains("the download's sha256 is"), "{err}");
    // A package added to the index: the size differs.
    let real = a.files()[&format!("dists/{SUITE}/main/binary-{ARCH}/Packages")].clone();
    let mut evil = real.clone();
    evil.extend_from_slice(b"\nPackage: bramble-evil\nVersion: 1\nArchitecture: all\nFilename: pool/evil.deb\nSize: 1\nSHA256: 0000000000000000000000000000000000000000000000000000000000000000\n");
    let xz = {
        use std::io::Write;
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&evil).unwrap();
        e.finish().unwrap()
    };
    let server = serve(&[(&packages_xz(), Some(xz))]);
    let err = format!("{:#}", fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap_err());
    assert!(err.contains(&format!("{} does not match the signed Release file", url(&server))), "{err}");
    assert!(err.contains("bytes, but") && err.contains("were expected"), "{err}");
    // Nothing unverified entered the cache.
    assert!(std::fs::read_dir(cache.path().join("sha256")).unwrap().next().is_none());
}

#[test]
fn signatures_by_other_keys_or_of_other_text_are_refused() {
    let a = archive();
    let release = a.files()[&format!("dists/{SUITE}/Release")].clone();
    let url = |s: &HttpServer| s.url(&format!("/debian/{}", inrelease()));
    // Signed, but by a key the keyring does not hold.
    let server = serve(&[(&inrelease(), Some(a.clearsign(&release, true)))]);
    let cache = tempfile::tempdir().unwrap();
    let err = format!("{:#}", fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap_err());
    assert!(err.contains(&format!("{}: its signature does not check out against", url(&server))), "{err}");
    assert!(err.contains("which is not in the keyring"), "{err}");
    // The right signature, checked against the wrong keyring.
    let server = serve(&[]);
    let err =
        format!("{:#}", fetch(&inputs(&archive_at(&server, &a.other_keyring)), None, cache.path(), false).unwrap_err());
    assert!(err.contains("which is not in the keyring"), "{err}");
    // The text changed after signing.
    let signed = String::from_utf8(a.files()[&inrelease()].clone()).unwrap();
    let edited = signed.replace("Origin: Bramble", "Origin: Evil");
    assert_ne!(signed, edited);
    let server = serve(&[(&inrelease(), Some(edited.into_bytes()))]);
    let err = format!("{:#}", fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap_err());
    assert!(err.contains("BAD signature"), "{err}");
    // Unsigned text appended after a good signature.
    let server = serve(&[(&inrelease(), Some(format!("{signed}Suite: evil\n").into_bytes()))]);
    let err = format!("{:#}", fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap_err());
    assert!(err.contains("text after the signature"), "{err}");
    // A missing keyring says what to install.
    let server = serve(&[]);
    let missing = Path::new("/nonexistent/debian-archive-keyring.gpg");
    let err = format!("{:#}", fetch(&inputs(&archive_at(&server, missing)), None, cache.path(), false).unwrap_err());
    assert!(err.contains("apt-get install debian-archive-keyring"), "{err}");
    assert!(std::fs::read_dir(cache.path().join("sha256")).unwrap().next().is_none());
}

#[test]
fn without_inrelease_the_detached_signature_is_checked() {
    let a = archive();
    let server = serve(&[(&inrelease(), None)]);
    let cache = tempfile::tempdir().unwrap();
    let out = fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap();
    assert_eq!(out.files.len(), 3);
    assert_eq!(server.requests_for(&format!("/debian/dists/{SUITE}/Release.gpg")).len(), 1);
    // A Release without its signature is not used.
    let server = serve(&[(&inrelease(), None), (&format!("dists/{SUITE}/Release.gpg"), None)]);
    let err = format!("{:#}", fetch(&inputs(&archive_at(&server, &a.keyring)), None, cache.path(), false).unwrap_err());
    assert!(err.contains("Bramble only uses signed archives"), "{err}");
    // A detached signature by another key is refused.
    let server = serve(&[(&inrelease(), None)]);
    let err =
        format!("{:#}", fetch(&inputs(&archive_at(&server, &a.other_keyring)), None, cache.path(), false).unwrap_err());
    assert!(
        err.contains(&format!(
            "{}: its signature does not check out",
            server.url(&format!("/debian/dists/{SUITE}/Release"))
        )),
        "{err}"
    );
}

#[test]
fn unknown_packages_suites_and_components_are_clear_errors() {
    let a = archive();
    let server = serve(&[]);
    let cache = tempfile::tempdir().unwrap();
    let arch = archive_at(&server, &a.keyring);
    let err = format!("{:#}", fetch(&[deb_input(&arch, "bramble-tool", ARCH)], None, cache.path(), false).unwrap_err());
    assert!(err.contains("`bramble-tool` is not in") && err.contains("did you mean `bramble-tools`?"), "{err}");
    let err =
        format!("{:#}", fetch(&[deb_input(&arch, "bramble-abi-2", ARCH)], None, cache.path(), false).unwrap_err());
    assert!(err.contains("virtual package") && err.contains("bramble-lib"), "{err}");
    let err =
        format!("{:#}", fetch(&[deb_input(&arch, "bramble-boot", "riscv64")], None, cache.path(), false).unwrap_err());
    assert!(err.contains("has no packages for `riscv64` (it has: arm64)"), "{err}");
    let contrib = DebianArchive { components: vec!["contrib".into()], ..arch.clone() };
    let err =
        format!("{:#}", fetch(&[deb_input(&contrib, "bramble-boot", ARCH)], None, cache.path(), false).unwrap_err());
    assert!(err.contains("has no component `contrib` (it has: main)"), "{err}");
    let trixie = DebianArchive { suite: "trixie".into(), ..arch };
    let err =
        format!("{:#}", fetch(&[deb_input(&trixie, "bramble-boot", ARCH)], None, cache.path(), false).unwrap_err());
    assert!(err.contains("dists/trixie/Release") && err.contains("check [debian] mirror and suite"), "{err}");
}

#[test]
fn the_closure_over_a_status_file_adds_exactly_what_is_missing() {
    let a = archive();
    let index = Index::parse(&a.files()[&format!("dists/{SUITE}/main/binary-{ARCH}/Packages")]).unwrap();
    assert_eq!(index.len(), 5);
    // libc6 and coreutils are installed; bramble-lib is, but too old for bramble-boot.
    let system = "Package: libc6\nStatus: install ok installed\nArchitecture: arm64\nMulti-Arch: same\nVersion: 2.36-9+deb12u4\n\n\
                  Package: coreutils\nStatus: install ok installed\nArchitecture: arm64\nMulti-Arch: foreign\nVersion: 9.1-1\nEssential: yes\n\n\
                  Package: bramble-lib\nStatus: install ok installed\nArchitecture: arm64\nMulti-Arch: same\nVersion: 1.0-1\n";
    let status = status::parse(system.as_bytes()).unwrap();
    let added = debian::closure(&index, &["bramble-boot"], &status, ARCH).unwrap();
    let got: Vec<String> =
        added.iter().map(|a| format!("{} {}", a.entry.package.name, a.entry.package.version)).collect();
    assert_eq!(got, ["bramble-lib 2.0-1", "bramble-tools 3.1", "bramble-boot 1.0-1"]);
    assert_eq!(added[1].needed_by, Some(("bramble-boot".into(), "bramble-tools | bramble-alt".into())));
    // Their files are the ones in the pool, by sha256.
    for add in &added {
        let file = add.entry.filename.rsplit('/').next().unwrap();
        assert_eq!(add.entry.sha256, sha256sum(a.deb(file)));
    }
    // Without libc6, bramble-lib cannot be installed: the error names the chain and the relation.
    let bare = status::parse(b"").unwrap();
    let err = debian::closure(&index, &["bramble-boot"], &bare, ARCH).unwrap_err().to_string();
    assert_eq!(
        err,
        "bramble-lib 2.0-1 (needed by bramble-boot) depends on `libc6 (>= 2.30)`, which nothing satisfies: `libc6 (>= 2.30)`: the archive does not have it"
    );
    let err = debian::closure(&index, &["bramble-doc"], &status, ARCH).unwrap_err().to_string();
    assert!(err.contains("depends on `bramble-missing (>= 1)`"), "{err}");
}

#[test]
fn this_machines_own_dpkg_status_parses() {
    let text = std::fs::read("/var/lib/dpkg/status").expect("a Debian system has /var/lib/dpkg/status");
    let entries = status::parse(&text).unwrap();
    let installed = entries.iter().filter(|e| e.is_installed()).count();
    let dpkg = tool_ok("dpkg-query", &["-W", "-f", "${db:Status-Status}\\n"]);
    let expected = dpkg.lines().filter(|l| matches!(*l, "installed" | "triggers-pending" | "triggers-awaited")).count();
    assert_eq!(installed, expected);
    assert!(installed > 100);
}
