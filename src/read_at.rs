//! Random-access byte sources: a file, a slice of one (a partition), bytes in memory, or a
//! decompressing reader. Filesystem readers read through this, and file contents in a tree
//! refer to ranges of one, so nothing has to be copied out of an image to be read.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// Bytes that can be read at any offset, from any thread.
pub trait ReadAt: Send + Sync {
    /// Total length in bytes.
    fn len(&self) -> u64;

    /// Fill `buf` from `offset`; reading past the end is an `UnexpectedEof` error.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn past_end(offset: u64, wanted: usize, len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {wanted} bytes at {offset} past the end ({len} bytes)"),
    )
}

/// A file and its length, taken once.
pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    pub fn new(file: File) -> io::Result<FileSource> {
        let len = file.metadata()?.len();
        Ok(FileSource { file, len })
    }
}

impl ReadAt for FileSource {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(past_end(offset, buf.len(), self.len));
        }
        self.file.read_exact_at(buf, offset)
    }
}

impl ReadAt for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_slice(self, buf, offset)
    }
}

impl ReadAt for Arc<[u8]> {
    fn len(&self) -> u64 {
        self.as_ref().len() as u64
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        read_slice(self, buf, offset)
    }
}

fn read_slice(bytes: &[u8], buf: &mut [u8], offset: u64) -> io::Result<()> {
    let start = usize::try_from(offset).map_err(|_| past_end(offset, buf.len(), bytes.len() as u64))?;
    let end = start.checked_add(buf.len()).filter(|&e| e <= bytes.len());
    let end = end.ok_or_else(|| past_end(offset, buf.len(), bytes.len() as u64))?;
    buf.copy_from_slice(&bytes[start..end]);
    Ok(())
}

/// A window of another source: `len` bytes from `start` (a partition of a disk image).
pub struct Slice {
    inner: Arc<dyn ReadAt>,
    start: u64,
    len: u64,
}

impl Slice {
    /// The window, or an error if it does not lie inside `inner`.
    pub fn new(inner: Arc<dyn ReadAt>, start: u64, len: u64) -> io::Result<Slice> {
        if start.checked_add(len).is_none_or(|end| end > inner.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("range {start}+{len} lies outside the {} bytes available", inner.len()),
            ));
        }
        Ok(Slice { inner, start, len })
    }
}

impl ReadAt for Slice {
    fn len(&self) -> u64 {
        self.len
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > self.len) {
            return Err(past_end(offset, buf.len(), self.len));
        }
        self.inner.read_exact_at(buf, self.start + offset)
    }
}

/// `std::io::Read + Seek` over a source, for libraries that want a stream (fatfs, gpt).
pub struct Cursor {
    inner: Arc<dyn ReadAt>,
    pos: u64,
}

impl Cursor {
    pub fn new(inner: Arc<dyn ReadAt>) -> Cursor {
        Cursor { inner, pos: 0 }
    }
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cursor({} of {} bytes)", self.pos, self.inner.len())
    }
}

impl io::Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.inner.len().saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        self.inner.read_exact_at(&mut buf[..n], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for Cursor {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        let target = match to {
            io::SeekFrom::Start(n) => Some(n),
            io::SeekFrom::End(d) => self.inner.len().checked_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

/// Read-only sources refuse writes (fatfs insists on a writable stream even to read).
impl io::Write for Cursor {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "read-only image"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[test]
    fn slices_and_cursors_stay_in_bounds() {
        let bytes: Arc<dyn ReadAt> = Arc::new((0u8..100).collect::<Vec<u8>>());
        let slice: Arc<dyn ReadAt> = Arc::new(Slice::new(bytes.clone(), 10, 20).unwrap());
        let mut buf = [0u8; 5];
        slice.read_exact_at(&mut buf, 15).unwrap();
        assert_eq!(buf, [25, 26, 27, 28, 29]);
        assert!(slice.read_exact_at(&mut buf, 16).is_err());
        assert!(Slice::new(bytes.clone(), 90, 11).is_err());
        assert!(Slice::new(bytes, u64::MAX, 2).is_err());
        let mut cursor = Cursor::new(slice);
        cursor.seek(SeekFrom::End(-3)).unwrap();
        let mut rest = Vec::new();
        cursor.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, [27, 28, 29]);
        assert!(cursor.seek(SeekFrom::Current(-100)).is_err());
    }

    #[test]
    fn files_read_at_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let src = FileSource::new(File::open(&path).unwrap()).unwrap();
        let mut buf = [0u8; 3];
        src.read_exact_at(&mut buf, 7).unwrap();
        assert_eq!(&buf, b"789");
        assert!(src.read_exact_at(&mut buf, 8).is_err());
        assert_eq!(src.len(), 10);
    }
}
