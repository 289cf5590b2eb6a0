//! Running the external tools the tests compare against, failing loudly when one is missing.
//!
//! Not for the reader itself, which does no I/O but through `ReadAt`.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The Debian package that provides each tool, for the failure message.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "mke2fs" | "debugfs" | "e2fsck" | "dumpe2fs" => "e2fsprogs",
        "setfattr" | "getfattr" => "attr",
        "setfacl" => "acl",
        "setcap" => "libcap2-bin",
        "mount" | "umount" => "mount",
        _ => "coreutils",
    }
}

/// Runs `tool` and returns its output, panicking with what to install if it is missing and
/// with its stderr if it fails.
pub fn run<I, S>(tool: &str, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = Command::new(tool).args(&args).output().unwrap_or_else(|e| {
        panic!("cannot run `{tool}` ({e}): install it with `apt-get install {}`", package_of(tool))
    });
    if !output.status.success() {
        panic!(
            "`{tool} {}` failed ({}): {}{}",
            args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
    }
    output
}

/// Runs debugfs on `image` with one command per line, returning each command's stdout.
pub fn debugfs_batch(image: &Path, commands: &[String], writable: bool) -> Vec<Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("commands");
    std::fs::write(&script, commands.join("\n") + "\n").unwrap();
    let mut args: Vec<&OsStr> = Vec::new();
    if writable {
        args.push(OsStr::new("-w"));
    }
    args.extend([OsStr::new("-f"), script.as_os_str(), image.as_os_str()]);
    let out = run("debugfs", args).stdout;
    // With -f, debugfs echoes each command as "debugfs: <command>" before its output.
    let mut sections: Vec<Vec<u8>> = Vec::new();
    for line in out.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b"debugfs: ") {
            sections.push(Vec::new());
        } else if let Some(last) = sections.last_mut() {
            last.extend_from_slice(line);
        }
    }
    assert_eq!(sections.len(), commands.len(), "debugfs answered {} of {} commands", sections.len(), commands.len());
    sections
}

/// A read-only loop mount of an image, unmounted on drop.
pub struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    pub fn new(image: &Path) -> Mount {
        Mount::with_options(image, "loop,ro")
    }

    pub fn with_options(image: &Path, options: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let output = Command::new("mount")
            .args([OsStr::new("-o"), OsStr::new(options), image.as_os_str(), dir.path().as_os_str()])
            .output()
            .expect("cannot run `mount`: install it with `apt-get install mount`");
        assert!(
            output.status.success(),
            "loop-mounting the test image failed; these tests compare with the kernel and need root and loop \
             devices: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Mount { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Runs e2fsck with `args`, accepting "clean" (0) and "fixed or optimised" (1).
pub fn e2fsck(args: &[&str], image: &Path) -> String {
    let output = Command::new("e2fsck")
        .args(args)
        .arg(image)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `e2fsck` ({e}): install it with `apt-get install e2fsprogs`"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    assert!(matches!(output.status.code(), Some(0 | 1)), "e2fsck {args:?} found problems:\n{text}");
    text
}
