//! A `[firmware]` archive: a tag of raspberrypi/firmware as GitHub serves it (`.tar.gz`, one
//! top folder such as `firmware-1.20250430/`), or the same as `.tar.xz` or `.tar`. What the
//! lab takes from it is the GPU firmware in its `boot/` folder: `start*.elf`, `fixup*.dat`
//! and `bootcode.bin`, the files the boot stages load before the kernel. Kernels, device trees
//! and overlays stay the OS's: they must match the OS's kernel modules.

use super::compression::Compression;
use anyhow::{Context, Result, bail};
use std::io::Read;
use std::path::Path;

/// One firmware file, as the archive holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirmwareFile {
    /// Its name in the boot folder (`start4.elf`).
    pub name: String,
    pub bytes: Vec<u8>,
    /// Unix seconds, from the archive entry.
    pub mtime: i64,
}

/// Whether `name`, a file of a boot folder, is GPU firmware that `[firmware]` replaces.
pub fn is_gpu_firmware(name: &str) -> bool {
    (name.starts_with("start") && name.ends_with(".elf"))
        || (name.starts_with("fixup") && name.ends_with(".dat"))
        || name == "bootcode.bin"
}

/// More than any firmware file (start*.elf are about 3 MiB): a bound on what is read into memory.
const MAX_FILE: u64 = 64 << 20;

/// The GPU firmware in the `boot/` folder of the archive `bytes` is read from (its first
/// bytes tell the compression), sorted by name. `what` names the archive in messages.
pub fn gpu_firmware(mut archive: impl Read, what: &str) -> Result<Vec<FirmwareFile>> {
    let mut head = [0u8; 6];
    let n = read_up_to(&mut archive, &mut head).with_context(|| format!("reading {what}"))?;
    let compression = match &head[..n] {
        [0x1f, 0x8b, ..] => Compression::Gzip,
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Compression::Xz,
        [b'P', b'K', 3, 4, ..] => bail!(
            "{what} is a zip file; give the .tar.gz of the firmware release instead (GitHub serves every tag as both)"
        ),
        _ => Compression::None,
    };
    let stream = compression.decoder(std::io::Cursor::new(head[..n].to_vec()).chain(archive))?;
    let mut tar = tar::Archive::new(stream);
    let mut out: Vec<FirmwareFile> = Vec::new();
    let entries = tar.entries().with_context(|| format!("{what} is not a tar archive"))?;
    for entry in entries {
        let mut entry = entry.with_context(|| format!("{what} is not a readable tar archive"))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().with_context(|| format!("a name in {what} is not a path"))?.into_owned();
        let Some(name) = boot_file(&path) else { continue };
        if !is_gpu_firmware(&name) {
            continue;
        }
        let size = entry.size();
        if size > MAX_FILE {
            bail!("{} in {what} is {size} bytes: that is no firmware file", path.display());
        }
        let mut bytes = Vec::with_capacity(size as usize);
        entry.read_to_end(&mut bytes).with_context(|| format!("reading {} from {what}", path.display()))?;
        let mtime = entry.header().mtime().unwrap_or(0) as i64;
        out.retain(|f| f.name != name);
        out.push(FirmwareFile { name, bytes, mtime });
    }
    if out.is_empty() {
        bail!(
            "{what} holds no boot/start*.elf, boot/fixup*.dat or boot/bootcode.bin: is it a raspberrypi/firmware release?"
        );
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The file name of `path` if it sits directly in a `boot/` folder at the archive's top or
/// one folder down (`boot/start4.elf`, `firmware-1.20250430/boot/start4.elf`).
fn boot_file(path: &Path) -> Option<String> {
    let parts: Vec<&str> = path.iter().map(|p| p.to_str()).collect::<Option<_>>()?;
    let parts: Vec<&str> = parts.into_iter().filter(|p| *p != ".").collect();
    match parts[..] {
        ["boot", name] | [_, "boot", name] => Some(name.to_string()),
        _ => None,
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, bytes) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(bytes.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append_data(&mut h, name, *bytes).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn only_the_gpu_firmware_of_boot_is_taken() {
        let tar = tar_of(&[
            ("firmware-1.2026/boot/start4.elf", b"s4"),
            ("firmware-1.2026/boot/fixup4.dat", b"f4"),
            ("firmware-1.2026/boot/bootcode.bin", b"bc"),
            ("firmware-1.2026/boot/kernel8.img", b"k"),
            ("firmware-1.2026/boot/bcm2711-rpi-4-b.dtb", b"d"),
            ("firmware-1.2026/boot/overlays/start.elf", b"no"),
            ("firmware-1.2026/extra/start.elf", b"no"),
        ]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        for bytes in [&tar, &gz] {
            let files = gpu_firmware(bytes.as_slice(), "fw").unwrap();
            let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names, ["bootcode.bin", "fixup4.dat", "start4.elf"]);
            assert_eq!(files[2].bytes, b"s4");
            assert_eq!(files[2].mtime, 1_700_000_000);
        }
    }

    #[test]
    fn other_archives_are_named_with_the_fix() {
        let none = tar_of(&[("boot/kernel8.img", b"k")]);
        assert!(gpu_firmware(none.as_slice(), "fw.tar").unwrap_err().to_string().contains("holds no boot/start*.elf"));
        let zip = b"PK\x03\x04rest".to_vec();
        assert!(gpu_firmware(zip.as_slice(), "fw.zip").unwrap_err().to_string().contains("give the .tar.gz"));
        let junk = vec![7u8; 2000];
        assert!(gpu_firmware(junk.as_slice(), "fw").is_err());
        assert!(is_gpu_firmware("start4cd.elf") && is_gpu_firmware("fixup_x.dat") && !is_gpu_firmware("kernel8.img"));
    }
}
