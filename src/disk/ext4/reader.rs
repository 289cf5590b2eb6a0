//! Streaming a file's content: `Read` and `Seek` over its extents, zeros for holes and
//! uninitialized extents.
//!
//! Not for locating content; the extents come from `Ext4::extents`.

use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

use super::data::Extent;
use crate::read_at::ReadAt;

/// Yields exactly `size` bytes of one file.
pub struct FileReader {
    source: Arc<dyn ReadAt>,
    extents: Vec<Extent>,
    size: u64,
    pos: u64,
    /// The first extent that ends after `pos`, so sequential reads never search.
    next: usize,
}

impl FileReader {
    pub(crate) fn new(source: Arc<dyn ReadAt>, extents: Vec<Extent>, size: u64) -> FileReader {
        FileReader { source, extents, size, pos: 0, next: 0 }
    }

    /// The file size: the number of bytes a read from the start yields.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("size", &self.size)
            .field("pos", &self.pos)
            .field("extents", &self.extents)
            .finish()
    }
}

impl Read for FileReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        while self.extents.get(self.next).is_some_and(|e| e.end() <= self.pos) {
            self.next += 1;
        }
        let want = (buf.len() as u64).min(self.size - self.pos);
        let n = match self.extents.get(self.next) {
            Some(extent) if extent.logical <= self.pos => {
                let n = want.min(extent.end() - self.pos) as usize;
                if extent.uninit {
                    buf[..n].fill(0);
                } else {
                    self.source.read_exact_at(&mut buf[..n], extent.physical + (self.pos - extent.logical))?;
                }
                n
            }
            Some(extent) => {
                let n = want.min(extent.logical - self.pos) as usize;
                buf[..n].fill(0);
                n
            }
            None => {
                let n = want as usize;
                buf[..n].fill(0);
                n
            }
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for FileReader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.next = self.extents.partition_point(|e| e.end() <= self.pos);
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_and_uninit_extents_read_as_zeros() {
        let source: Arc<dyn ReadAt> = Arc::new((1u8..=100).collect::<Vec<u8>>());
        let extents = vec![
            Extent { logical: 2, physical: 10, len: 3, uninit: false },
            Extent { logical: 5, physical: 20, len: 2, uninit: true },
            Extent { logical: 8, physical: 30, len: 1, uninit: false },
        ];
        let mut reader = FileReader::new(source, extents, 11);
        let mut all = Vec::new();
        reader.read_to_end(&mut all).unwrap();
        assert_eq!(all, [0, 0, 11, 12, 13, 0, 0, 0, 31, 0, 0]);
        reader.seek(SeekFrom::Start(3)).unwrap();
        let mut two = [9u8; 2];
        reader.read_exact(&mut two).unwrap();
        assert_eq!(two, [12, 13]);
        assert_eq!(reader.seek(SeekFrom::End(-3)).unwrap(), 8);
        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, [31, 0, 0]);
    }
}
