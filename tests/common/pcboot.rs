//! What the PC boot tests boot: Debian's own amd64 kernel (taken from its package with apt,
//! kept in target/test-cache) and a busybox initramfs whose /init prints a marker on the serial
//! console and powers off, as ../shared/e2e/01-pxe-bios.sh does.

use std::path::{Path, PathBuf};
use std::process::Command;

fn cache_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The package `linux-image-amd64` points at (`linux-image-6.1.0-NN-amd64`).
fn kernel_package(arch: &str) -> String {
    let text = run(Command::new("apt-cache").args(["depends", &format!("linux-image-{arch}")]));
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-") && d.as_bytes().get(12).is_some_and(u8::is_ascii_digit))
        .unwrap_or_else(|| panic!("apt-cache knows no linux-image-{arch} (apt-get update?)"))
        .trim_end_matches(&format!(":{arch}")[..])
        .to_string()
}

/// Debian's amd64 kernel image.
pub fn x86_kernel() -> PathBuf {
    // Tests of one binary ask at once: one fetches, the others wait for it.
    static FETCHING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FETCHING.lock().unwrap_or_else(|e| e.into_inner());
    let out = cache_dir().join("vmlinuz-amd64");
    if out.exists() {
        return out;
    }
    // A folder of this process's own, so another test binary's fetch cannot remove what this one reads.
    let dir = cache_dir().join(format!("kernel-fetch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let package = kernel_package("amd64");
    run(Command::new("apt-get").args(["download", &package]).current_dir(&dir));
    let deb = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{package}_")))
        .expect("the downloaded kernel package");
    let x = dir.join("kx");
    std::fs::create_dir_all(&x).unwrap();
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&x));
    let boot = x.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("vmlinuz-"))
        .expect("vmlinuz in the package");
    // Renamed into place whole: a reader never sees half a kernel.
    let part = dir.join("vmlinuz.part");
    std::fs::copy(&vmlinuz, &part).unwrap();
    std::fs::rename(&part, &out).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// An initramfs whose /init writes `marker` to the serial console and powers off.
pub fn marker_initramfs(dir: &Path, marker: &str) -> PathBuf {
    let root = dir.join("initramfs");
    for d in ["bin", "dev", "proc", "sys"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("busybox (apt-get install busybox-static)");
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null\n\
         echo \"{marker}\" > /dev/ttyS0\n/bin/busybox poweroff -f\n"
    );
    std::fs::write(root.join("init"), init).unwrap();
    run(Command::new("chmod").arg("755").arg(root.join("init")));
    let out = dir.join("initrd.img");
    let script = format!("cd '{}' && find . | cpio -o -H newc --quiet | gzip -1 > '{}'", root.display(), out.display());
    run(Command::new("sh").args(["-c", &script]));
    out
}
