//! Writing results: always to a temporary file (or folder) beside the target, renamed into place
//! only when complete, so a failed or interrupted run never leaves a half-written output where a
//! good one was expected. Temporaries carry their run's pid and start time (`leftovers.rs`); each
//! write first removes those of runs that were killed.

use crate::leftovers;
use anyhow::{Context, Result, bail};
use std::fs::{File, Permissions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Disk images are written sparse: runs of zeros this long become holes.
const HOLE_BLOCK: usize = 64 * 1024;

/// Write `bytes` to `path` atomically, mode 0644.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |file| file.write_all(bytes).map_err(Into::into))
}

/// Write a disk image to `path` atomically, leaving all-zero blocks as holes.
pub fn write_sparse(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |file| {
        for block in bytes.chunks(HOLE_BLOCK) {
            if block.iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(block.len() as i64))?;
            } else {
                file.write_all(block)?;
            }
        }
        file.set_len(bytes.len() as u64)?;
        Ok(())
    })
}

/// Write `path` atomically with whatever `fill` writes (large or streamed outputs).
///
/// A target that exists and is not a regular file (`/dev/null`, `/dev/stdout`, a pipe, an SD
/// card's block device) is written in place: renaming over it would replace the device node.
pub fn write_with(path: &Path, fill: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
        && !meta.is_dir()
    {
        let mut file =
            File::options().write(true).open(path).with_context(|| format!("cannot open {}", path.display()))?;
        fill(&mut file).with_context(|| format!("writing {}", path.display()))?;
        return file.flush().with_context(|| format!("writing {}", path.display()));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().with_context(|| format!("{} is not a file path", path.display()))?;
    leftovers::clear_dead(dir, None);
    let mut temp = tempfile::Builder::new()
        .prefix(&leftovers::part_prefix(&name.to_string_lossy()))
        .suffix(".part")
        .permissions(Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    fill(temp.as_file_mut()).with_context(|| format!("writing {}", path.display()))?;
    temp.as_file().sync_all().with_context(|| format!("writing {}", path.display()))?;
    temp.persist(path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// Write the new folder `path` atomically with whatever `fill` writes into the folder it is
/// given: a temporary beside `path`, renamed to it when complete and removed on failure. `path`
/// must be absent or an empty folder; nothing is ever written into an existing one.
pub fn write_folder<T>(path: &Path, fill: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let full = std::path::absolute(path).with_context(|| format!("{} is not a folder path", path.display()))?;
    let (Some(dir), Some(name)) = (full.parent(), full.file_name().and_then(|n| n.to_str())) else {
        bail!("{} is not a folder path; name a new folder", path.display());
    };
    if path.exists() && std::fs::read_dir(path).map_or(true, |mut d| d.next().is_some()) {
        bail!("{} is not empty; write to a new folder", path.display());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    leftovers::clear_dead(dir, Some(name));
    let partial = leftovers::partial_folder(dir, name);
    let result = fill(&partial).and_then(|value| {
        // Replaces an empty folder of that name, fails on anything else.
        std::fs::rename(&partial, &full)
            .with_context(|| format!("cannot move the new folder to {}", path.display()))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sparse_image_reads_back_and_has_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let mut bytes = vec![0u8; 8 << 20];
        bytes[100] = 1;
        bytes[(8 << 20) - 1] = 2;
        write_sparse(&path, &bytes).unwrap();
        assert!(std::fs::read(&path).unwrap() == bytes);
        let meta = std::fs::metadata(&path).unwrap();
        assert!(meta.blocks() * 512 < 1 << 20, "{} blocks allocated", meta.blocks());
        assert_eq!(meta.mode() & 0o777, 0o644);
    }

    #[test]
    fn device_targets_are_written_in_place_not_replaced() {
        let null = Path::new("/dev/null");
        write_file(null, b"into the void").unwrap();
        let meta = std::fs::metadata(null).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()));
    }

    #[test]
    fn failed_write_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        write_file(&path, b"good").unwrap();
        let err = write_with(&path, |f| {
            f.write_all(b"half")?;
            anyhow::bail!("interrupted")
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn folders_appear_complete_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let err = write_folder(&path, |tmp| -> Result<()> {
            std::fs::create_dir(tmp)?;
            std::fs::write(tmp.join("half"), b"half")?;
            anyhow::bail!("interrupted")
        });
        assert!(err.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "nothing left");
        std::fs::create_dir(&path).unwrap();
        write_folder(&path, |tmp| Ok(std::fs::create_dir(tmp).and_then(|_| std::fs::write(tmp.join("f"), b"f"))?))
            .unwrap();
        assert_eq!(std::fs::read(path.join("f")).unwrap(), b"f");
        let again = write_folder(&path, |tmp| Ok(std::fs::create_dir(tmp)?));
        assert!(again.unwrap_err().to_string().contains("is not empty"));
    }
}
