//! Where the tests find Raspberry Pi's bootloader images and the reference outputs that
//! rpi-eeprom-config and rpi-eeprom-digest made from them: `$BRAMBLE_FIXTURES` if set, else the
//! shared folder beside the repository (`../shared/fixtures/eeprom`, what CI has), else a folder
//! assembled under `target/` from the pinned upstream files (fetched by sha256 into the download
//! cache, as `bramble fetch` does) and the small references committed in
//! `tests/fixtures/eeprom`. Every file is checked against that folder's `SHA256SUMS`.
//!
//! Test support, not used by the binary. The two large references (`*.f21.bin`) are kept as the
//! bytes rpi-eeprom-config changed in the upstream image (`*.f21.patch`: offset, new bytes in
//! hex), so a clone carries 3 KiB instead of 2.5 MiB and still compares against Raspberry Pi's
//! output, not ours.

use super::cache::Cache;
use super::download::{Downloader, Mirror};
use crate::digest::sha256_hex;
use crate::source::eeprom_release::{PinnedFile, RELEASES, RPI_EEPROM};
use std::path::{Path, PathBuf};

/// The committed references, by path relative to the fixture folder.
const COMMITTED: &[(&str, &[u8])] = &[
    (
        "firmware-2711/default/pieeprom-2026-05-17.bootconf.txt",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2711/default/pieeprom-2026-05-17.bootconf.txt"),
    ),
    (
        "firmware-2711/default/pieeprom-2026-05-17.f21.bootconf.txt",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2711/default/pieeprom-2026-05-17.f21.bootconf.txt"),
    ),
    (
        "firmware-2711/default/pieeprom-2026-05-17.f21.sig",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2711/default/pieeprom-2026-05-17.f21.sig"),
    ),
    (
        "firmware-2711/default/pieeprom-2026-05-17.f21.patch",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2711/default/pieeprom-2026-05-17.f21.patch"),
    ),
    (
        "firmware-2712/default/pieeprom-2026-05-26.bootconf.txt",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2712/default/pieeprom-2026-05-26.bootconf.txt"),
    ),
    (
        "firmware-2712/default/pieeprom-2026-05-26.f21.bootconf.txt",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2712/default/pieeprom-2026-05-26.f21.bootconf.txt"),
    ),
    (
        "firmware-2712/default/pieeprom-2026-05-26.f21.sig",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2712/default/pieeprom-2026-05-26.f21.sig"),
    ),
    (
        "firmware-2712/default/pieeprom-2026-05-26.f21.patch",
        include_bytes!("../../tests/fixtures/eeprom/firmware-2712/default/pieeprom-2026-05-26.f21.patch"),
    ),
];

/// `sha256  path` for every file a fixture folder holds (sha256sum's format).
pub const SHA256SUMS: &str = include_str!("../../tests/fixtures/eeprom/SHA256SUMS");

/// Where to look, and how to fetch.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `$BRAMBLE_FIXTURES`: used alone when given.
    pub given: Option<PathBuf>,
    /// The shared folder beside the repository.
    pub shared: PathBuf,
    /// Where a fetched set is assembled.
    pub assembled: PathBuf,
    /// The download cache.
    pub cache: PathBuf,
    /// Rewrites of the upstream URLs (`$BRAMBLE_FIXTURES_MIRROR` stands in for rpi-eeprom).
    pub mirrors: Vec<Mirror>,
}

impl Sources {
    pub fn from_env() -> Sources {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mirrors = std::env::var("BRAMBLE_FIXTURES_MIRROR")
            .ok()
            .filter(|m| !m.is_empty())
            .map(|to| vec![Mirror { from: RPI_EEPROM.into(), to }])
            .unwrap_or_default();
        Sources {
            given: std::env::var_os("BRAMBLE_FIXTURES").filter(|d| !d.is_empty()).map(PathBuf::from),
            shared: repo.join("../shared/fixtures/eeprom"),
            assembled: repo.join("target/eeprom-fixtures"),
            cache: super::cache::default_root(),
            mirrors,
        }
    }
}

/// Every `(sha256, relative path)` in SHA256SUMS.
pub fn manifest() -> Vec<(&'static str, &'static str)> {
    SHA256SUMS.lines().filter_map(|l| l.split_once("  ")).collect()
}

/// What is wrong with `dir` as a fixture folder: missing or changed files (empty: nothing).
pub fn problems(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (sha, rel) in manifest() {
        match std::fs::read(dir.join(rel)) {
            Ok(bytes) if sha256_hex(&bytes) == sha => {}
            Ok(_) => out.push(format!("{rel} (its sha256 is not {sha})")),
            Err(e) => out.push(format!("{rel} ({e})")),
        }
    }
    out
}

/// How to give the tests their fixtures, for every message that says they have none.
const HOW: &str = concat!(
    "Provide them one of these ways:\n",
    "  - be online once: the pinned files are fetched from raw.githubusercontent.com/raspberrypi/rpi-eeprom ",
    "into the download cache ($BRAMBLE_CACHE, else ~/.cache/bramble) and reused offline after that;\n",
    "  - BRAMBLE_FIXTURES_MIRROR=URL: a mirror of rpi-eeprom (URL/<commit>/firmware-27xx/default/<file>);\n",
    "  - BRAMBLE_FIXTURES=DIR: a copy of the shared fixture folder (../shared/fixtures/eeprom: the files ",
    "tests/fixtures/eeprom/SHA256SUMS lists, in its layout).",
);

/// The pinned upstream files, each with its path in a fixture folder.
fn upstream() -> Vec<(String, PinnedFile)> {
    let mut out = Vec::new();
    for r in RELEASES {
        for f in [r.image, r.recovery] {
            let name = f.url.rsplit('/').next().expect("a file name");
            out.push((format!("firmware-{}/default/{name}", r.chip.number()), f));
        }
    }
    out
}

/// `original` with a `.f21.patch` applied: lines of `OFFSET HEX`, `#` comments.
fn apply_patch(original: &[u8], patch: &str) -> Result<Vec<u8>, String> {
    let mut out = original.to_vec();
    for (n, line) in patch.lines().enumerate().filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty()) {
        let bad = || format!("patch line {}: `{line}` is not OFFSET HEXBYTES", n + 1);
        let (at, hex) = line.split_once(' ').ok_or_else(bad)?;
        let at: usize = at.parse().map_err(|_| bad())?;
        if hex.len() % 2 != 0 || at + hex.len() / 2 > out.len() {
            return Err(bad());
        }
        for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[at + i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
    }
    Ok(out)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    std::fs::create_dir_all(path.parent().expect("in a folder"))
        .and_then(|()| std::fs::write(path, bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The fixture folder, fetching and assembling it where nothing else provides it. The error is
/// the whole message: what is missing and how to provide it.
pub fn provide(s: &Sources) -> Result<PathBuf, String> {
    if let Some(dir) = &s.given {
        if !dir.is_dir() {
            return Err(format!("BRAMBLE_FIXTURES={} is not a folder.\n{HOW}", dir.display()));
        }
        let missing = problems(dir);
        if missing.is_empty() {
            return Ok(dir.clone());
        }
        return Err(format!(
            "BRAMBLE_FIXTURES={} does not hold the EEPROM test fixtures; missing or changed:\n  {}\n{HOW}",
            dir.display(),
            missing.join("\n  ")
        ));
    }
    if s.shared.is_dir() {
        let missing = problems(&s.shared);
        if missing.is_empty() {
            return Ok(s.shared.clone());
        }
        return Err(format!(
            "the shared EEPROM fixtures at {} are incomplete; missing or changed:\n  {}\n{HOW}",
            s.shared.display(),
            missing.join("\n  ")
        ));
    }
    if problems(&s.assembled).is_empty() {
        return Ok(s.assembled.clone());
    }
    assemble(s)
}

fn assemble(s: &Sources) -> Result<PathBuf, String> {
    let cache = Cache::open(&s.cache).map_err(|e| format!("{e:#}"))?;
    let mut fetched = Vec::new();
    let mut failed = Vec::new();
    // Off any caller's tokio runtime: the tests that ask may be async.
    let downloads = std::thread::scope(|scope| {
        scope
            .spawn(|| -> Result<(), String> {
                let rt =
                    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
                let dl = Downloader::new(s.mirrors.clone(), true).map_err(|e| e.to_string())?;
                for (rel, pin) in upstream() {
                    let cached = cache.verified(pin.sha256).map_err(|e| format!("{e:#}"))?;
                    let got = match cached {
                        Some(p) => Ok(p),
                        // After one failure (offline, say) the rest are only listed, not tried.
                        None if failed.is_empty() => {
                            rt.block_on(dl.fetch(&cache, &rel, pin.url, pin.sha256, Some(pin.size)))
                        }
                        None => {
                            failed.push((rel, pin, None));
                            continue;
                        }
                    };
                    match got {
                        Ok(p) => fetched.push((rel, p)),
                        Err(e) => failed.push((rel, pin, Some(e.to_string()))),
                    }
                }
                Ok(())
            })
            .join()
            .unwrap_or_else(|_| Err("the fixture download panicked".into()))
    });
    downloads?;
    if !failed.is_empty() {
        let list: Vec<String> = failed.iter().map(|(rel, pin, _)| format!("{rel} (sha256 {})", pin.sha256)).collect();
        let why = failed.iter().find_map(|(_, _, e)| e.clone()).unwrap_or_default();
        return Err(format!(
            "the EEPROM test fixtures are not here and cannot be fetched: no BRAMBLE_FIXTURES, no shared folder at {}, \
             and the download cache at {} lacks:\n  {}\nThe first download failed: {why}\n{HOW}",
            s.shared.display(),
            s.cache.display(),
            list.join("\n  ")
        ));
    }

    // Assembled beside its final name and renamed, so a failed run leaves no half folder.
    let parent = s.assembled.parent().expect("a parent folder");
    std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".eeprom-fixtures-")
        .tempdir_in(parent)
        .map_err(|e| format!("cannot create a folder in {}: {e}", parent.display()))?;
    for (rel, cached) in &fetched {
        let bytes = std::fs::read(cached).map_err(|e| format!("cannot read {}: {e}", cached.display()))?;
        write(&work.path().join(rel), &bytes)?;
    }
    for (rel, bytes) in COMMITTED {
        if let Some(stem) = rel.strip_suffix(".f21.patch") {
            let original = std::fs::read(work.path().join(format!("{stem}.bin"))).map_err(|e| e.to_string())?;
            let patch = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
            let derived = apply_patch(&original, patch).map_err(|e| format!("tests/fixtures/eeprom/{rel}: {e}"))?;
            write(&work.path().join(format!("{stem}.f21.bin")), &derived)?;
        } else {
            write(&work.path().join(rel), bytes)?;
        }
    }
    let wrong = problems(work.path());
    if !wrong.is_empty() {
        return Err(format!("the assembled EEPROM fixtures do not match SHA256SUMS:\n  {}", wrong.join("\n  ")));
    }
    let _ = std::fs::remove_dir_all(&s.assembled);
    let done = work.keep();
    std::fs::rename(&done, &s.assembled).map_err(|e| format!("cannot move {} into place: {e}", done.display()))?;
    Ok(s.assembled.clone())
}

/// The fixture folder from the environment, once per process; panics with the message when
/// there is none (`just test` asks first, so a run without fixtures stops before any test).
pub fn dir() -> PathBuf {
    static DIR: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    DIR.get_or_init(|| provide(&Sources::from_env())).clone().unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_lists_every_pin_and_every_committed_reference() {
        let listed = manifest();
        for (rel, pin) in upstream() {
            assert!(listed.contains(&(pin.sha256, rel.as_str())), "{rel} is not in SHA256SUMS with its pinned sha256");
        }
        for (rel, bytes) in COMMITTED {
            match rel.strip_suffix(".f21.patch") {
                Some(stem) => assert!(listed.iter().any(|(_, r)| *r == format!("{stem}.f21.bin")), "{rel}"),
                None => assert!(listed.contains(&(sha256_hex(bytes).as_str(), rel)), "{rel}"),
            }
        }
        assert_eq!(listed.len(), 12);
    }

    #[test]
    fn patches_are_checked() {
        assert_eq!(apply_patch(&[0; 4], "# comment\n1 abff\n").unwrap(), [0, 0xab, 0xff, 0]);
        for bad in ["3 abff", "x 00", "0 abc", "0 zz"] {
            assert!(apply_patch(&[0; 4], bad).unwrap_err().contains("patch line 1"), "{bad}");
        }
    }
}
