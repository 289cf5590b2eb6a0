//! The `Range` request header (RFC 9110 §14.1–14.2): parse a `bytes=` range set, and resolve a
//! single range against a representation's length. Pure. Deciding what to answer (200, 206,
//! 416) with the other request headers in view is `plan.rs`'s job.

/// One byte-range-spec as the client wrote it (RFC 9110 §14.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeSpec {
    /// `first-last`, both inclusive.
    FromTo { first: u64, last: u64 },
    /// `first-`: to the end.
    From { first: u64 },
    /// `-len`: the last `len` bytes.
    Last { len: u64 },
}

/// What a well-formed `Range: bytes=…` header asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Requested {
    One(RangeSpec),
    /// More than one range. We answer these with the whole representation (200), which RFC 9110
    /// §14.2 allows ("a server MAY ignore the Range header field"): no boot client asks for
    /// several, and a multipart/byteranges body is what the Pi's and EDK2's small HTTP clients
    /// would understand least.
    Several,
}

/// Inclusive byte positions inside a representation; never empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub first: u64,
    pub last: u64,
}

// Never empty by construction, so an `is_empty` would only ever say `false`.
#[allow(clippy::len_without_is_empty)]
impl ByteRange {
    /// The whole of a representation of `len` > 0 bytes.
    pub fn whole(len: u64) -> Option<ByteRange> {
        len.checked_sub(1).map(|last| ByteRange { first: 0, last })
    }

    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// Parse a `Range` header value. `None` means the header is to be ignored, as RFC 9110 §14.2
/// says for a unit other than `bytes` and allows for an invalid range set: syntax errors,
/// `last < first`, numbers that overflow u64.
pub fn parse(value: &[u8]) -> Option<Requested> {
    let value = std::str::from_utf8(value).ok()?;
    let (unit, set) = value.split_once('=')?;
    if !unit.trim_matches(is_ows).eq_ignore_ascii_case("bytes") {
        return None;
    }
    // `1#range-spec`: a comma-separated list in which empty elements are allowed and do not
    // count (RFC 9110 §5.6.1).
    let mut specs = set.split(',').map(|s| s.trim_matches(is_ows)).filter(|s| !s.is_empty());
    let first = parse_spec(specs.next()?)?;
    let mut several = false;
    for spec in specs {
        parse_spec(spec)?;
        several = true;
    }
    Some(if several { Requested::Several } else { Requested::One(first) })
}

/// Optional whitespace (RFC 9110 §5.6.3).
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn parse_spec(spec: &str) -> Option<RangeSpec> {
    let (first, last) = spec.split_once('-')?;
    match (first.is_empty(), last.is_empty()) {
        (true, true) => None,
        (true, false) => Some(RangeSpec::Last { len: digits(last)? }),
        (false, true) => Some(RangeSpec::From { first: digits(first)? }),
        (false, false) => {
            let (first, last) = (digits(first)?, digits(last)?);
            (first <= last).then_some(RangeSpec::FromTo { first, last })
        }
    }
}

/// `1*DIGIT`; `u64::from_str` alone would also take a leading `+`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The bytes `spec` selects from a representation of `len` bytes, or `None` if it selects
/// none (the range is unsatisfiable: 416). A last position past the end is clamped to it, and
/// a suffix longer than the representation selects all of it (RFC 9110 §14.1.2).
pub fn resolve(spec: RangeSpec, len: u64) -> Option<ByteRange> {
    let end = len.checked_sub(1)?;
    match spec {
        RangeSpec::FromTo { first, last } if first <= end => Some(ByteRange { first, last: last.min(end) }),
        RangeSpec::From { first } if first <= end => Some(ByteRange { first, last: end }),
        RangeSpec::Last { len: n } if n > 0 => Some(ByteRange { first: len - n.min(len), last: end }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeSpec::*;

    fn one(value: &str) -> RangeSpec {
        match parse(value.as_bytes()) {
            Some(Requested::One(spec)) => spec,
            other => panic!("{value:?} parsed as {other:?}"),
        }
    }

    #[test]
    fn single_ranges_parse() {
        assert_eq!(one("bytes=0-0"), FromTo { first: 0, last: 0 });
        assert_eq!(one("bytes=0-499"), FromTo { first: 0, last: 499 });
        assert_eq!(one("bytes=500-"), From { first: 500 });
        assert_eq!(one("bytes=-500"), Last { len: 500 });
        assert_eq!(one("BYTES=1-2"), FromTo { first: 1, last: 2 });
        assert_eq!(one("bytes= 7-9 "), FromTo { first: 7, last: 9 });
        assert_eq!(one("bytes=,\t5-,"), From { first: 5 });
        assert_eq!(one("bytes=18446744073709551615-"), From { first: u64::MAX });
    }

    #[test]
    fn several_ranges_are_recognised() {
        for value in ["bytes=0-1,5-6", "bytes=0-0, -1", "bytes=1-,2-"] {
            assert_eq!(parse(value.as_bytes()), Some(Requested::Several), "{value}");
        }
    }

    #[test]
    fn malformed_headers_are_ignored() {
        for value in [
            &b""[..],
            b"bytes",
            b"bytes=",
            b"bytes=,",
            b"bytes=-",
            b"bytes=5",
            b"bytes=5-3",
            b"bytes=a-b",
            b"bytes=+1-2",
            b"bytes=1-+2",
            b"bytes=-+2",
            b"bytes=1 -2",
            b"bytes=0x10-",
            b"bytes=1--2",
            b"bytes=18446744073709551616-",
            b"bytes=0-1,x",
            b"items=0-1",
            b"bytes0-1",
            b"bytes=\xff-1",
        ] {
            assert_eq!(parse(value), None, "{:?}", String::from_utf8_lossy(value));
        }
    }

    #[test]
    fn ranges_resolve_against_the_length() {
        let r = |first, last| Some(ByteRange { first, last });
        assert_eq!(resolve(FromTo { first: 0, last: 0 }, 10), r(0, 0));
        assert_eq!(resolve(FromTo { first: 2, last: 5 }, 10), r(2, 5));
        assert_eq!(resolve(FromTo { first: 2, last: 500 }, 10), r(2, 9));
        assert_eq!(resolve(FromTo { first: 9, last: 9 }, 10), r(9, 9));
        assert_eq!(resolve(FromTo { first: 10, last: 20 }, 10), None);
        assert_eq!(resolve(From { first: 3 }, 10), r(3, 9));
        assert_eq!(resolve(From { first: 10 }, 10), None);
        assert_eq!(resolve(From { first: u64::MAX }, 10), None);
        assert_eq!(resolve(Last { len: 1 }, 10), r(9, 9));
        assert_eq!(resolve(Last { len: 10 }, 10), r(0, 9));
        assert_eq!(resolve(Last { len: u64::MAX }, 10), r(0, 9));
        assert_eq!(resolve(Last { len: 0 }, 10), None);
        // An empty representation has no bytes to select.
        assert_eq!(resolve(From { first: 0 }, 0), None);
        assert_eq!(resolve(Last { len: 5 }, 0), None);
        assert_eq!(resolve(From { first: 0 }, u64::MAX), r(0, u64::MAX - 1));
    }

    #[test]
    fn byte_range_lengths() {
        assert_eq!(ByteRange::whole(0), None);
        assert_eq!(ByteRange::whole(1).map(|r| r.len()), Some(1));
        assert_eq!(ByteRange { first: 5, last: 9 }.len(), 5);
    }
}
