//! The `ar` archive format as `.deb` files use it (deb(5)): the `!<arch>\n` magic, then members,
//! each a 60-byte header (name, mtime, owner, group, mode, size, `` `\n ``) and its bytes padded
//! to an even length. Lists members as windows of the source, so nothing is copied. Only the
//! common (System V / GNU) short names dpkg writes are read; the symbol table and long-name
//! table of other ar variants are not needed for packages and are refused as member names.
//!
//! The `ar` crate was not used: it allocates a GNU long-name table as big as a damaged header
//! claims, which a hostile file can make gigabytes.

use crate::read_at::ReadAt;

pub const MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER_LEN: u64 = 60;

/// One member: its name and where its bytes are in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArError {
    #[error("it is not an ar archive (a .deb starts with `!<arch>`)")]
    NotAr,
    #[error("member header at byte {0} is damaged: {1}")]
    Header(u64, String),
    #[error("member `{name}` at byte {offset} claims {size} bytes, past the end of the file")]
    Truncated { name: String, offset: u64, size: u64 },
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
}

fn field(header: &[u8], range: std::ops::Range<usize>) -> &str {
    std::str::from_utf8(&header[range]).unwrap_or("\u{fffd}").trim_end_matches(' ')
}

/// Every member of the archive in `source`, in order.
pub fn members(source: &dyn ReadAt) -> Result<Vec<Member>, ArError> {
    let mut magic = [0u8; 8];
    if source.len() < 8 {
        return Err(ArError::NotAr);
    }
    source.read_exact_at(&mut magic, 0)?;
    if &magic != MAGIC {
        return Err(ArError::NotAr);
    }
    let mut out = Vec::new();
    let mut at = 8u64;
    // Each member takes at least 60 bytes of a file of known length: this ends.
    while at < source.len() {
        if source.len() - at < HEADER_LEN {
            return Err(ArError::Header(at, "the file ends inside it".into()));
        }
        let mut header = [0u8; HEADER_LEN as usize];
        source.read_exact_at(&mut header, at)?;
        if &header[58..60] != b"`\n" {
            return Err(ArError::Header(at, "its end marker is missing".into()));
        }
        let raw_name = field(&header, 0..16);
        // GNU ar ends names with `/`; dpkg pads them with spaces.
        let name = raw_name.strip_suffix('/').unwrap_or(raw_name);
        if name.is_empty() || name.contains('/') || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ArError::Header(at, format!("`{raw_name}` is not a member name")));
        }
        let size_text = field(&header, 48..58);
        let size: u64 =
            size_text.parse().map_err(|_| ArError::Header(at, format!("its size `{size_text}` is not a number")))?;
        let offset = at + HEADER_LEN;
        if size > source.len() - offset {
            return Err(ArError::Truncated { name: name.into(), offset, size });
        }
        out.push(Member { name: name.into(), offset, size });
        at = offset + size + (size & 1);
    }
    Ok(out)
}

/// An ar archive of `members` (name, bytes), as dpkg-deb writes one: for tests.
#[cfg(test)]
pub fn build(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (name, bytes) in members {
        out.extend_from_slice(
            format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n", 0, 0, 0, "100644", bytes.len()).as_bytes(),
        );
        out.extend_from_slice(bytes);
        if bytes.len() % 2 == 1 {
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_members_with_padding() {
        let ar = build(&[("debian-binary", b"2.0\n"), ("control.tar.xz", b"odd"), ("data.tar", b"even")]);
        let m = members(&ar).unwrap();
        assert_eq!(
            m.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["debian-binary", "control.tar.xz", "data.tar"]
        );
        assert_eq!((m[0].offset, m[0].size), (68, 4));
        assert_eq!(&ar[m[1].offset as usize..][..3], b"odd");
        assert_eq!(&ar[m[2].offset as usize..][..4], b"even");
        let gnu = String::from_utf8(ar.clone()).unwrap().replace("debian-binary   ", "debian-binary/  ");
        assert_eq!(members(&gnu.into_bytes()).unwrap()[0].name, "debian-binary");
        assert!(members(&MAGIC.to_vec()).unwrap().is_empty());
    }

    #[test]
    fn damaged_archives_are_errors() {
        assert!(matches!(members(&b"hello".to_vec()), Err(ArError::NotAr)));
        assert!(matches!(members(&b"!<arch>\r".to_vec()), Err(ArError::NotAr)));
        let ar = build(&[("debian-binary", b"2.0\n")]);
        assert!(matches!(members(&ar[..ar.len() - 1].to_vec()), Err(ArError::Truncated { .. })));
        assert!(matches!(members(&ar[..30].to_vec()), Err(ArError::Header(8, _))));
        let mut bad = ar.clone();
        bad[8 + 58] = b'x';
        assert!(matches!(members(&bad), Err(ArError::Header(8, _))));
        let huge = String::from_utf8(ar.clone()).unwrap().replace("4         `", "9999999999`");
        assert!(matches!(members(&huge.into_bytes()), Err(ArError::Truncated { .. })));
        let named = String::from_utf8(ar).unwrap().replace("debian-binary   ", "//              ");
        assert!(matches!(members(&named.into_bytes()), Err(ArError::Header(8, _))));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_after_the_magic_list_or_err(tail in proptest::collection::vec(any::<u8>(), 0..300)) {
                let mut bytes = MAGIC.to_vec();
                bytes.extend(tail);
                let _ = members(&bytes);
            }
        }
    }
}
