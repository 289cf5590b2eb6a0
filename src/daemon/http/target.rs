//! The file a request-target names: its path percent-decoded, then made safe by the rules every
//! server here shares ([`crate::daemon::names::components`]), so `%2e%2e`, `%00` and `%2f..`
//! are refused exactly like their literal forms. The query string is not part of it. Pure.

use crate::daemon::names::{self, NameError};
use hyper::StatusCode;

/// The safe path components of `path` (a request-target's path, still percent-encoded).
pub fn components(path: &str) -> Result<Vec<String>, NameError> {
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    names::components(&decoded)
}

/// The status for a refused name: an escape is forbidden, a name that cannot be a file name
/// (not UTF-8, a control character) is a bad request, and an empty one is the root folder,
/// which has no listing.
pub fn refusal_status(error: &NameError) -> StatusCode {
    match error {
        NameError::Traversal | NameError::Drive => StatusCode::FORBIDDEN,
        NameError::NotUtf8 | NameError::Control => StatusCode::BAD_REQUEST,
        NameError::Empty => StatusCode::NOT_FOUND,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_then_split() {
        assert_eq!(components("/os/pios/boot/start4.elf").unwrap(), ["os", "pios", "boot", "start4.elf"]);
        assert_eq!(components("/a%20b/%C3%A9t%C3%A9.txt").unwrap(), ["a b", "été.txt"]);
        assert_eq!(components("//a/./b/").unwrap(), ["a", "b"]);
        // `+` is a plus in a path; only query strings use it for a space.
        assert_eq!(components("/a+b").unwrap(), ["a+b"]);
        // Broken escapes are left as they are rather than guessed at.
        assert_eq!(components("/100%/%zz").unwrap(), ["100%", "%zz"]);
        assert_eq!(components("/a%2Fb").unwrap(), ["a", "b"]);
        assert_eq!(components("/..hidden/a..b").unwrap(), ["..hidden", "a..b"]);
    }

    #[test]
    fn encoded_escapes_are_refused_like_literal_ones() {
        for (path, error) in [
            ("/../etc/passwd", NameError::Traversal),
            ("/%2e%2e/etc/passwd", NameError::Traversal),
            ("/%2E%2E/etc/passwd", NameError::Traversal),
            ("/.%2e/x", NameError::Traversal),
            ("/a/%2e%2e%2f%2e%2e/x", NameError::Traversal),
            ("/a%2F..%2F..%2Fx", NameError::Traversal),
            ("/a%5c..%5c..%5cx", NameError::Traversal),
            ("/C:%5cboot.ini", NameError::Drive),
            ("/a%00b", NameError::Control),
            ("/a%0d%0aSet-Cookie:x", NameError::Control),
            ("/a%7f", NameError::Control),
            ("/%ff%fe", NameError::NotUtf8),
            ("/", NameError::Empty),
            ("/./", NameError::Empty),
        ] {
            assert_eq!(components(path), Err(error.clone()), "{path}");
        }
    }

    #[test]
    fn refusals_map_to_statuses() {
        assert_eq!(refusal_status(&NameError::Traversal), StatusCode::FORBIDDEN);
        assert_eq!(refusal_status(&NameError::Drive), StatusCode::FORBIDDEN);
        assert_eq!(refusal_status(&NameError::Control), StatusCode::BAD_REQUEST);
        assert_eq!(refusal_status(&NameError::NotUtf8), StatusCode::BAD_REQUEST);
        assert_eq!(refusal_status(&NameError::Empty), StatusCode::NOT_FOUND);
    }
}
