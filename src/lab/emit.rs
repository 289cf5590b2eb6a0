//! Writing a [`Plan`] to the output folder: the whole lab is written to a temporary folder
//! beside the old one and swapped in only when complete, so a failed build leaves the previous
//! lab as it was; a killed build's temporaries are cleared (or the lab it had moved aside put
//! back) by the next build (`leftovers.rs`). `manifest.json` lists every file with its sha256
//! (hashed as it is written), which is how two builds are compared.

use super::plan::Plan;
use crate::digest::hex;
use crate::tree::dir::{DirOptions, write_dir};
use crate::tree::tar::{TarOptions, write_tar};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, Default)]
pub struct EmitOptions {
    /// Unpack the roots as folders (owners need root) instead of writing tars.
    pub unpack: bool,
}

#[derive(Serialize)]
struct Manifest<'a> {
    lab: &'a str,
    recipe: &'a str,
    files: Vec<ManifestFile>,
}

#[derive(Serialize)]
struct ManifestFile {
    path: String,
    sha256: String,
    size: u64,
}

struct Hashing<W> {
    inner: W,
    hash: Sha256,
    len: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What was written.
pub struct Emitted {
    pub lab: PathBuf,
    pub manifest: PathBuf,
    pub files: usize,
    pub bytes: u64,
}

fn hash_file(path: &Path) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read {} to hash it", path.display()))?;
    let mut h = Hashing { inner: io::sink(), hash: Sha256::new(), len: 0 };
    io::copy(&mut f, &mut h).with_context(|| format!("reading {} to hash it", path.display()))?;
    Ok((hex(&h.hash.finalize()), h.len))
}

/// Write `plan` as `out/lab` and `out/manifest.json`.
pub fn emit(plan: &Plan, out: &Path, lab_name: &str, recipe_name: &str, options: EmitOptions) -> Result<Emitted> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    // What a killed build left (its partial lab, or the previous lab it had moved aside).
    crate::leftovers::clear_dead(out, Some("lab"));
    let partial = crate::leftovers::partial_folder(out, "lab");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("cannot remove the unfinished {}", partial.display()))?;
    }
    let written = (|| -> Result<Vec<ManifestFile>> {
        let mut files = Vec::new();
        write_dir(&plan.lab, &partial, DirOptions::default()).context("writing the lab folder")?;
        for (rel, root) in &plan.roots {
            let target = partial.join(rel);
            if options.unpack {
                let folder = target.with_extension("");
                let report = write_dir(root, &folder, DirOptions::default())
                    .with_context(|| format!("unpacking {}", folder.display()))?;
                if report.owners_skipped > 0 || !report.devices_skipped.is_empty() {
                    bail!(
                        "--unpack needs root to keep the root's owners and device nodes; run as root, or leave --unpack out to write {}",
                        rel.display()
                    );
                }
            } else {
                let file =
                    std::fs::File::create(&target).with_context(|| format!("cannot create {}", target.display()))?;
                let hashing =
                    Hashing { inner: io::BufWriter::with_capacity(1 << 20, file), hash: Sha256::new(), len: 0 };
                let mut done = write_tar(root, hashing, TarOptions::default())
                    .with_context(|| format!("writing {}", rel.display()))?;
                let written = |e: io::Error| anyhow::Error::new(e).context(format!("writing {}", target.display()));
                done.flush().map_err(written)?;
                let file = done.inner.into_inner().map_err(|e| written(e.into_error()))?;
                file.sync_all().map_err(written)?;
                files.push(ManifestFile {
                    path: format!("lab/{}", rel.display()),
                    sha256: hex(&done.hash.finalize()),
                    size: done.len,
                });
            }
        }
        for entry in walk(&partial)? {
            let rel = entry.strip_prefix(&partial).expect("under the folder");
            if plan
                .roots
                .iter()
                .any(|(r, _)| rel == r.as_path() || (options.unpack && rel.starts_with(r.with_extension(""))))
            {
                continue;
            }
            let (sha256, size) = hash_file(&entry)?;
            files.push(ManifestFile { path: format!("lab/{}", rel.display()), sha256, size });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(files)
    })();
    let files = match written {
        Ok(f) => f,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    let lab = out.join("lab");
    let old = crate::leftovers::old_folder(out, "lab");
    if lab.exists() {
        std::fs::rename(&lab, &old).with_context(|| format!("cannot move the previous {} aside", lab.display()))?;
    }
    std::fs::rename(&partial, &lab).with_context(|| format!("cannot move the new lab into {}", lab.display()))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).with_context(|| format!("cannot remove the previous lab ({})", old.display()))?;
    }
    let bytes = files.iter().map(|f| f.size).sum();
    let count = files.len();
    let manifest = Manifest { lab: lab_name, recipe: recipe_name, files };
    let text = serde_json::to_string_pretty(&manifest)? + "\n";
    let manifest_path = out.join("manifest.json");
    crate::output::write_file(&manifest_path, text.as_bytes())?;
    Ok(Emitted { lab, manifest: manifest_path, files: count, bytes })
}

/// Every regular file under `dir`, sorted (symlinks are not followed).
fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let listed = |e: io::Error| anyhow::Error::new(e).context(format!("cannot list {}", d.display()));
        for entry in std::fs::read_dir(&d).map_err(listed)? {
            let entry = entry.map_err(listed)?;
            let t = entry.file_type().map_err(listed)?;
            if t.is_dir() {
                stack.push(entry.path());
            } else if t.is_file() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leftovers::{dead_token, live_process};
    use crate::tree::{Content, Kind, Node, Tree};

    fn plan(text: &str) -> Plan {
        let mut lab = Tree::new();
        lab.insert("", Node::new(Kind::Dir, 0o755));
        lab.insert("config.txt", Node::new(Kind::File(Content::bytes(text.as_bytes().to_vec())), 0o644));
        Plan {
            lab,
            roots: vec![],
            steps: vec![],
            os: None,
            server_daemon_toml: String::new(),
            exports: None,
            eeprom_stamps: vec![],
        }
    }

    /// Issue 12 item 13: a killed build's `.lab.partial-*` and `.lab.old-*` stayed forever.
    #[test]
    fn a_build_clears_what_a_killed_build_left_but_not_a_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        emit(&plan("first\n"), out, "l", "r", EmitOptions::default()).unwrap();
        let (mut other, live) = live_process();
        let dead = dead_token();
        for name in [format!(".lab.partial-{dead}"), format!(".lab.old-{dead}"), format!(".lab.partial-{live}")] {
            std::fs::create_dir_all(out.join(&name).join("os")).unwrap();
            std::fs::write(out.join(&name).join("os/root.tar"), vec![0u8; 1 << 20]).unwrap();
        }
        // A pid-only name from before, of a process that is gone.
        let legacy = out.join(format!(".lab.partial-{}", dead.split('-').next().unwrap()));
        std::fs::create_dir(&legacy).unwrap();
        emit(&plan("second\n"), out, "l", "r", EmitOptions::default()).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        left.sort();
        let live_name = format!(".lab.partial-{live}");
        assert_eq!(left, [live_name.as_str(), "lab", "manifest.json"]);
        assert_eq!(std::fs::read_to_string(out.join("lab/config.txt")).unwrap(), "second\n");
        other.kill().unwrap();
        other.wait().unwrap();
    }
}
