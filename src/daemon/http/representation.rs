//! What the server says about the bytes it sends: length, media type, validators (`ETag`,
//! `Last-Modified`) and caching policy, for a file on disk or for generated content. Pure: the
//! caller brings the file's metadata.

use std::time::{SystemTime, UNIX_EPOCH};

/// A file or a generated body, as the response headers describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Representation {
    pub len: u64,
    pub content_type: &'static str,
    /// A strong entity tag, quotes included; generated content has none.
    pub etag: Option<String>,
    /// An IMF-fixdate; absent when the time cannot be written as one.
    pub last_modified: Option<String>,
    pub cache_control: &'static str,
}

/// Files may change when the lab is rebuilt: caches may keep them but must ask again, and the
/// ETag makes asking cheap.
const CACHE_FILE: &str = "no-cache";
/// Generated content is per client and per moment (an iPXE script follows the lease table).
const CACHE_GENERATED: &str = "no-store";

impl Representation {
    /// A regular file named `name` (its last component), `len` bytes long, inode `ino`, last
    /// modified at `mtime`; `now` keeps `Last-Modified` from claiming a future time, which
    /// RFC 9110 §8.8.2.1 forbids.
    pub fn file(name: &str, len: u64, ino: u64, mtime: SystemTime, now: SystemTime) -> Representation {
        Representation {
            len,
            content_type: content_type(name),
            etag: Some(etag(ino, len, mtime)),
            last_modified: http_date(mtime.min(now)),
            cache_control: CACHE_FILE,
        }
    }

    pub fn generated(len: u64, content_type: &'static str) -> Representation {
        Representation { len, content_type, etag: None, last_modified: None, cache_control: CACHE_GENERATED }
    }
}

/// A strong ETag from the inode, size and modification time (to the nanosecond). Size and time
/// alone are not enough here: reproducible builds give every file the same clamped mtime, so a
/// rebuilt file of the same size would look unchanged. Our writers replace files by renaming a
/// new one into place, which always changes the inode.
pub fn etag(ino: u64, len: u64, mtime: SystemTime) -> String {
    let nanos: i128 = match mtime.duration_since(UNIX_EPOCH) {
        Ok(after) => after.as_nanos() as i128,
        Err(before) => -(before.duration().as_nanos() as i128),
    };
    format!("\"{ino:x}-{len:x}-{nanos:x}\"")
}

/// `t` as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110 §5.6.7), or `None` for a
/// time the format cannot hold (before 1970 or after 9999; httpdate would panic on those).
pub fn http_date(t: SystemTime) -> Option<String> {
    let secs = t.duration_since(UNIX_EPOCH).ok()?.as_secs();
    // 10000-01-01T00:00:00Z
    (secs < 253_402_300_800).then(|| httpdate::fmt_http_date(t))
}

/// The media type for a file name. Boot clients ignore it; people with browsers and curl read
/// the text files. Everything that is not known text is `application/octet-stream`.
pub fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "cfg" | "conf" | "ipxe" | "sig" | "sh" | "md" | "toml" | "log" => "text/plain; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(http_date(at(784_111_777, 0)).as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert_eq!(http_date(UNIX_EPOCH).as_deref(), Some("Thu, 01 Jan 1970 00:00:00 GMT"));
        assert_eq!(http_date(at(253_402_300_799, 0)).as_deref(), Some("Fri, 31 Dec 9999 23:59:59 GMT"));
        assert_eq!(http_date(at(253_402_300_800, 0)), None);
        assert_eq!(http_date(UNIX_EPOCH - Duration::from_secs(1)), None);
    }

    #[test]
    fn etags_change_with_inode_size_and_time() {
        let base = etag(0x1234, 10, at(1_700_000_000, 5));
        assert_eq!(base, "\"1234-a-17979cfe362a0005\"");
        assert_ne!(base, etag(0x1235, 10, at(1_700_000_000, 5)));
        assert_ne!(base, etag(0x1234, 11, at(1_700_000_000, 5)));
        assert_ne!(base, etag(0x1234, 10, at(1_700_000_000, 6)));
        let before = etag(1, 1, UNIX_EPOCH - Duration::from_secs(1));
        assert!(before.starts_with('"') && before.ends_with('"') && !before[1..before.len() - 1].contains('"'));
        assert_ne!(before, etag(1, 1, at(1, 0)));
    }

    #[test]
    fn files_never_claim_a_future_modification() {
        let now = at(1_000_000_000, 0);
        let r = Representation::file("Start4.ELF", 3, 7, at(2_000_000_000, 0), now);
        assert_eq!(r.last_modified, http_date(now));
        assert_eq!(r.content_type, "application/octet-stream");
        let r = Representation::file("cmdline.txt", 3, 7, UNIX_EPOCH - Duration::from_secs(9), now);
        assert_eq!((r.last_modified, r.content_type), (None, "text/plain; charset=utf-8"));
        assert!(r.etag.is_some());
    }

    #[test]
    fn media_types_by_extension() {
        assert_eq!(content_type("boot.IPXE"), "text/plain; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("os.json"), "application/json");
        for name in ["boot.img", "kernel8.img", "ipxe.efi", "bootcode.bin", "README", ".txt.img", "x."] {
            assert_eq!(content_type(name), "application/octet-stream", "{name}");
        }
    }
}
