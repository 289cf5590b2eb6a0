//! Overlay folders: files laid over a root tree, `.j2` files rendered with minijinja first. The
//! repo's `overlays/` is built into the binary; a recipe's own folders are read from disk.
//! See overlays/README.md for the rules (names, modes, template values).

use crate::tree::{Content, HostFile, Kind, Node, Timestamp, Tree};
use anyhow::{Context, Result, anyhow};
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};
use std::sync::Arc;

static BUILT_IN: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/overlays");

/// Which root an overlay is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Client,
    Server,
}

impl Target {
    fn folder(self) -> &'static str {
        match self {
            Target::Client => "client",
            Target::Server => "server",
        }
    }
}

/// One file to lay over a root.
struct OverlayFile {
    /// Path in the target root.
    path: PathBuf,
    /// Where it came from, for messages (`overlays/client/etc/fstab.j2`).
    origin: String,
    bytes: Source,
    mode: u32,
}

enum Source {
    Embedded(&'static [u8]),
    Host(PathBuf, u64),
    /// A symlink in a recipe's overlay (enabling a unit: `multi-user.target.wants/x.service`).
    Link(PathBuf),
}

/// Built-in files get their mode from where they live (git keeps no modes worth trusting).
fn built_in_mode(path: &Path) -> u32 {
    if path.starts_with("usr/lib/bramble") || path.starts_with("usr/local/bin") {
        0o755
    } else if path.starts_with("etc/sudoers.d") {
        0o440
    } else if path.starts_with("etc/NetworkManager/system-connections") {
        // NetworkManager ignores a keyfile others can read.
        0o600
    } else {
        0o644
    }
}

fn built_in(target: Target) -> Vec<OverlayFile> {
    let mut out = Vec::new();
    let Some(dir) = BUILT_IN.get_dir(target.folder()) else { return out };
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        stack.extend(d.dirs());
        for f in d.files() {
            let rel = f.path().strip_prefix(target.folder()).unwrap_or(f.path()).to_path_buf();
            out.push(OverlayFile {
                mode: built_in_mode(&rel),
                origin: format!("overlays/{}", f.path().display()),
                path: rel,
                bytes: Source::Embedded(f.contents()),
            });
        }
    }
    out
}

fn from_disk(folder: &Path, target: Target) -> Result<Vec<OverlayFile>> {
    use std::os::unix::fs::PermissionsExt;
    let base = folder.join(target.folder());
    let mut out = Vec::new();
    if !base.exists() {
        return Ok(out);
    }
    let mut stack = vec![base.clone()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot read overlay folder {}", d.display()))? {
            let entry = entry?;
            // DirEntry::metadata does not follow symlinks: a link stays a link.
            let meta = entry.metadata()?;
            let path = entry.path();
            if meta.file_type().is_symlink() {
                out.push(OverlayFile {
                    path: path.strip_prefix(&base).expect("under the base").to_path_buf(),
                    origin: path.display().to_string(),
                    bytes: Source::Link(std::fs::read_link(&path)?),
                    mode: 0o777,
                });
            } else if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                out.push(OverlayFile {
                    path: path.strip_prefix(&base).expect("under the base").to_path_buf(),
                    origin: path.display().to_string(),
                    bytes: Source::Host(path.clone(), meta.len()),
                    mode: meta.permissions().mode() & 0o7777,
                });
            } else {
                anyhow::bail!("{}: only files and folders can be overlaid", path.display());
            }
        }
    }
    Ok(out)
}

/// Lay the built-in overlay for `target`, then each of `folders` (in order), over `root`.
/// Returns the paths written.
pub fn apply(
    root: &mut Tree,
    target: Target,
    folders: &[PathBuf],
    values: &minijinja::Value,
    mtime: Timestamp,
) -> Result<Vec<PathBuf>> {
    let mut files = built_in(target);
    for f in folders {
        files.extend(from_disk(f, target)?);
    }
    let mut dir = Node::new(Kind::Dir, 0o755);
    dir.mtime = mtime;
    let mut written = Vec::new();
    for f in files {
        if let Source::Link(target) = &f.bytes {
            let mut node = Node::new(Kind::Symlink(target.clone()), 0o777);
            node.mtime = mtime;
            root.remove(&f.path);
            root.insert_with_parents(f.path.clone(), node, &dir);
            written.push(f.path.clone());
            continue;
        }
        let (path, content) = match f.path.to_str().and_then(|p| p.strip_suffix(".j2")) {
            Some(plain) => {
                let text = match &f.bytes {
                    Source::Embedded(b) => String::from_utf8(b.to_vec()).ok(),
                    Source::Host(p, _) => std::fs::read_to_string(p).ok(),
                    Source::Link(_) => None,
                }
                .ok_or_else(|| anyhow!("{}: a template must be UTF-8 text", f.origin))?;
                (PathBuf::from(plain), Content::bytes(render(&f.origin, &text, values)?.into_bytes()))
            }
            None => {
                let content = match f.bytes {
                    Source::Embedded(b) => Content::bytes(b),
                    Source::Host(p, len) => Content::new(Arc::new(HostFile { path: p, len })),
                    Source::Link(_) => unreachable!("links are laid above"),
                };
                (f.path.clone(), content)
            }
        };
        let mut node = Node::new(Kind::File(content), f.mode);
        node.mtime = mtime;
        // A symlink in the way (e.g. /etc/resolv.conf) is replaced, not written through.
        root.remove(&path);
        root.insert_with_parents(path.clone(), node, &dir);
        written.push(path);
    }
    written.sort();
    Ok(written)
}

/// Render one template; an error names the file and the line.
pub fn render(origin: &str, text: &str, values: &minijinja::Value) -> Result<String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder().keep_trailing_newline(true).build();
    env.set_syntax(syntax.map_err(|e| anyhow!("template syntax: {e}"))?);
    let rendered = env.render_named_str(origin, text, values);
    rendered.map_err(|e| {
        let line = e.line().map(|l| format!(":{l}")).unwrap_or_default();
        anyhow!("template {origin}{line}: {}", e.detail().unwrap_or(&e.kind().to_string()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_errors_name_the_file_and_line() {
        let values = minijinja::context! { lab => "t" };
        let err = render("x/fstab.j2", "a\n{{ lab }}\n{{ nope }}\n", &values).unwrap_err();
        assert_eq!(err.to_string(), "template x/fstab.j2:3: `nope` is undefined");
        assert_eq!(render("f", "{{ lab }}-x\n", &values).unwrap(), "t-x\n");
        let err = render("y.j2", "{% if %}", &values).unwrap_err().to_string();
        assert!(err.starts_with("template y.j2:1:"), "{err}");
    }

    #[test]
    fn built_in_client_overlay_renders() {
        let mut root = Tree::new();
        root.insert("", Node::new(Kind::Dir, 0o755));
        let values = minijinja::context! {
            lab => "t", user => "pi", shared => true, tmpfs => vec![("/tmp", "1777")],
        };
        let written = apply(&mut root, Target::Client, &[], &values, Timestamp::from_secs(5)).unwrap();
        assert!(written.contains(&PathBuf::from("etc/fstab")));
        let fstab = match &root.get(Path::new("etc/fstab")).unwrap().kind {
            Kind::File(c) => String::from_utf8(c.read_all().unwrap()).unwrap(),
            _ => panic!(),
        };
        assert!(fstab.contains("tmpfs /tmp tmpfs mode=1777,nosuid,nodev 0 0\n"), "{fstab}");
        assert_eq!(root.get(Path::new("etc/sudoers.d/010_bramble")).unwrap().mode, 0o440);
        assert_eq!(root.get(Path::new("usr/lib/bramble/netboot-setup")).unwrap().mode, 0o755);
        assert_eq!(root.get(Path::new("etc/ssh")).unwrap().mtime, Timestamp::from_secs(5));
    }

    #[test]
    fn recipe_overlays_win_and_keep_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("client/etc/sudoers.d/010_bramble");
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, "mine\n").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o400)).unwrap();
        let mut root = Tree::new();
        root.insert("", Node::new(Kind::Dir, 0o755));
        let values =
            minijinja::context! { lab => "t", user => "pi", shared => true, tmpfs => Vec::<(String, String)>::new() };
        apply(&mut root, Target::Client, &[dir.path().to_path_buf()], &values, Timestamp::default()).unwrap();
        let node = root.get(Path::new("etc/sudoers.d/010_bramble")).unwrap();
        assert_eq!(node.mode, 0o400);
        match &node.kind {
            Kind::File(c) => assert_eq!(c.read_all().unwrap(), b"mine\n"),
            _ => panic!(),
        }
    }
}
