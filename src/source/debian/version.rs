//! Debian version numbers (`[epoch:]upstream[-revision]`), parsed and ordered exactly as dpkg
//! does: the same syntax checks as dpkg's `parseversion` (lib/dpkg/parsehelp.c) and the same
//! ordering as its `verrevcmp` (lib/dpkg/version.c): `~` sorts before everything, even the end
//! of the string, letters before other symbols, digit runs numerically.
//!
//! The `debversion` crate was considered and not used: it splits `1.0-` into upstream `1.0-`
//! (dpkg refuses it), accepts `a:1` (dpkg refuses it) and orders `1.` before `1.0` (dpkg says
//! they are equal). The tests hold dpkg's own test table and `tests/debian_version.rs` compares
//! against `dpkg --compare-versions` itself.

use std::cmp::Ordering;
use std::fmt;

/// A parsed version. Equality is dpkg's: `1.0` equals `1.00` and `0:1.0-0`.
#[derive(Clone, Debug)]
pub struct Version {
    pub epoch: u32,
    pub upstream: String,
    /// Empty when the version has no `-revision`.
    pub revision: String,
}

/// Why dpkg would refuse a version string (its own wording).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version string is empty")]
    Empty,
    #[error("version string has embedded spaces")]
    EmbeddedSpaces,
    #[error("epoch in version is empty")]
    EmptyEpoch,
    #[error("epoch in version is not number")]
    EpochNotNumber,
    #[error("epoch in version is negative")]
    EpochNegative,
    #[error("epoch in version is too big")]
    EpochTooBig,
    #[error("nothing after colon in version number")]
    NothingAfterColon,
    #[error("revision number is empty")]
    EmptyRevision,
    #[error("version number is empty")]
    EmptyUpstream,
}

/// dpkg's `c_isblank`: what it trims around a version.
fn is_blank(c: char) -> bool {
    c == ' ' || c == '\t'
}

impl std::str::FromStr for Version {
    type Err = VersionError;

    /// dpkg's `parseversion`. Its warnings (an upstream part not starting with a digit, a
    /// character outside the policy alphabet) are accepted, as `dpkg --compare-versions` accepts
    /// them; its errors are errors.
    fn from_str(text: &str) -> Result<Version, VersionError> {
        let text = text.trim_start_matches(is_blank);
        if text.is_empty() {
            return Err(VersionError::Empty);
        }
        let end = text.find(is_blank).unwrap_or(text.len());
        if !text[end..].trim_start_matches(is_blank).is_empty() {
            return Err(VersionError::EmbeddedSpaces);
        }
        let text = &text[..end];
        let (epoch, rest) = match text.split_once(':') {
            None => (0, text),
            Some((epoch, rest)) => {
                // What strtol(3) reads: an optional sign, then digits, which must end at the colon.
                let (negative, unsigned) = match epoch.as_bytes().first() {
                    Some(b'-') => (true, &epoch[1..]),
                    Some(b'+') => (false, &epoch[1..]),
                    _ => (false, epoch),
                };
                let digits = unsigned.bytes().take_while(u8::is_ascii_digit).count();
                if digits == 0 {
                    return Err(VersionError::EmptyEpoch);
                }
                if digits != unsigned.len() {
                    return Err(VersionError::EpochNotNumber);
                }
                let zero = unsigned.bytes().all(|b| b == b'0');
                if negative && !zero {
                    return Err(VersionError::EpochNegative);
                }
                // dpkg keeps the epoch in an int.
                let epoch = unsigned.parse::<u32>().ok().filter(|&e| e <= i32::MAX as u32);
                let epoch = epoch.ok_or(VersionError::EpochTooBig)?;
                if rest.is_empty() {
                    return Err(VersionError::NothingAfterColon);
                }
                (epoch, rest)
            }
        };
        let (upstream, revision) = match rest.rsplit_once('-') {
            Some((_, "")) => return Err(VersionError::EmptyRevision),
            Some((up, rev)) => (up, rev),
            None => (rest, ""),
        };
        if upstream.is_empty() {
            return Err(VersionError::EmptyUpstream);
        }
        Ok(Version { epoch, upstream: upstream.to_string(), revision: revision.to_string() })
    }
}

impl Version {
    /// Parse, as [`str::parse`] does.
    pub fn parse(text: &str) -> Result<Version, VersionError> {
        text.parse()
    }
}

/// dpkg's `order`: where one non-digit character sorts.
fn order(c: u8) -> i32 {
    match c {
        b'0'..=b'9' => 0,
        b'A'..=b'Z' | b'a'..=b'z' => i32::from(c),
        b'~' => -1,
        0 => 0,
        c => i32::from(c) + 256,
    }
}

/// dpkg's `verrevcmp`, on bytes, with the end of the string reading as NUL.
fn verrevcmp(a: &[u8], b: &[u8]) -> Ordering {
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let mut first_diff = 0i32;
        while (i < a.len() && !a[i].is_ascii_digit()) || (j < b.len() && !b[j].is_ascii_digit()) {
            let (ac, bc) = (order(at(a, i)), order(at(b, j)));
            if ac != bc {
                return ac.cmp(&bc);
            }
            i += 1;
            j += 1;
        }
        while at(a, i) == b'0' {
            i += 1;
        }
        while at(b, j) == b'0' {
            j += 1;
        }
        while at(a, i).is_ascii_digit() && at(b, j).is_ascii_digit() {
            if first_diff == 0 {
                first_diff = i32::from(a[i]) - i32::from(b[j]);
            }
            i += 1;
            j += 1;
        }
        if at(a, i).is_ascii_digit() {
            return Ordering::Greater;
        }
        if at(b, j).is_ascii_digit() {
            return Ordering::Less;
        }
        if first_diff != 0 {
            return first_diff.cmp(&0);
        }
    }
    Ordering::Equal
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        self.epoch
            .cmp(&other.epoch)
            .then_with(|| verrevcmp(self.upstream.as_bytes(), other.upstream.as_bytes()))
            .then_with(|| verrevcmp(self.revision.as_bytes(), other.revision.as_bytes()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.epoch > 0 {
            write!(f, "{}:", self.epoch)?;
        }
        f.write_str(&self.upstream)?;
        if !self.revision.is_empty() {
            write!(f, "-{}", self.revision)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// dpkg's scripts/t/Dpkg_Version.t table: `a b expected`. Two rows of it name versions
    /// with a trailing hyphen (`0foo-`), which dpkg 1.21 refuses; they are in
    /// `dpkg_refuses` below instead.
    const DPKG_TABLE: &str = "\
1.0-1 2.0-2 -1
2.2~rc-4 2.2-1 -1
2.2-1 2.2~rc-4 1
1.0000-1 1.0-1 0
1 0:1 0
0 0:0-0 0
2:2.5 1:7.5 1
1:0foo 0foo 1
0:0foo 0foo 0
0foo 0foo 0
0foo 0fo 1
0foo~1 0foo -1
0foo~foo+Bar 0foo~foo+bar -1
0foo~~ 0foo~ -1
1~ 1 -1
12345+that-really-is-some-ver-0 12345+that-really-is-some-ver-10 -1
0foo-0 0foo-01 -1
0foo.bar 0foobar 1
0foo.bar 0foo1bar 1
0foo.bar 0foo0bar 1
0foo1bar-1 0foobar-1 -1
0foo2.0 0foo2 1
0foo2.0.0 0foo2.10.0 -1
0foo2.0 0foo2.0.0 -1
0foo2.0 0foo2.10 -1
0foo2.1 0foo2.10 -1
1.09 1.9 0
1.0.8+nmu1 1.0.8 1
3.11 3.10+nmu1 1
0.9j-20080306-4 0.9i-20070324-2 1
1.2.0~b7-1 1.2.0~b6-1 1
1.011-1 1.06-2 1
0.0.9+dfsg1-1 0.0.8+dfsg1-3 1
4.6.99+svn6582-1 4.6.99+svn6496-1 1
53 52 1
0.9.9~pre122-1 0.9.9~pre111-1 1
2:2.3.2-2+lenny2 2:2.3.2-2 1
1:3.8.1-1 3.8.GA-1 1
1.0.1+gpl-1 1.0.1-2 1
1a 1000a -1
";

    #[test]
    fn dpkg_comparison_table() {
        for line in DPKG_TABLE.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (a, b) = (v(f[0]), v(f[1]));
            let want = match f[2] {
                "-1" => Ordering::Less,
                "0" => Ordering::Equal,
                _ => Ordering::Greater,
            };
            assert_eq!(a.cmp(&b), want, "{line}");
            assert_eq!(b.cmp(&a), want.reverse(), "{line} reversed");
        }
    }

    #[test]
    fn dpkg_parse_cases() {
        // lib/dpkg/t/t-version.c: what parses and what it parses to.
        let same = |a: &str, epoch: u32, up: &str, rev: &str| {
            let x = v(a);
            assert_eq!((x.epoch, x.upstream.as_str(), x.revision.as_str()), (epoch, up, rev), "{a}");
        };
        same("0", 0, "0", "");
        same("0:0", 0, "0", "");
        same("0:0-0", 0, "0", "0");
        same("0:0.0-0.0", 0, "0.0", "0.0");
        same("1:0", 1, "0", "");
        same("5:1", 5, "1", "");
        same("0:0-0-0", 0, "0-0", "0");
        same("0:0-0-0-0", 0, "0-0-0", "0");
        same("0:0:0-0", 0, "0:0", "0");
        same("0:0:0:0-0", 0, "0:0:0", "0");
        same("0:0:0-0-0", 0, "0:0-0", "0");
        same("0:0-0:0-0", 0, "0-0:0", "0");
        same("0:09azAZ.-+~:-0", 0, "09azAZ.-+~:", "0");
        same("0:0-azAZ09.+~", 0, "0", "azAZ09.+~");
        same("  \t0:0-1", 0, "0", "1");
        same("0:0-1\t  ", 0, "0", "1");
        same("\t  0:0-1  \t", 0, "0", "1");
        assert_eq!(v("0:0"), v("0"));
        assert_eq!(v("0:0-00"), v("00-0"));
        // Upstream and revision characters outside policy are warnings in dpkg, and compare.
        assert!("0:abc3-0".parse::<Version>().is_ok());
        assert!("1_0".parse::<Version>().is_ok());
    }

    #[test]
    fn dpkg_refuses() {
        use VersionError::*;
        for (text, why) in [
            ("", Empty),
            ("  ", Empty),
            ("0:", NothingAfterColon),
            ("0:0 0-1", EmbeddedSpaces),
            ("-1:0-1", EpochNegative),
            ("999999999999999999999999:0-1", EpochTooBig),
            ("2147483648:1", EpochTooBig),
            ("a:0-0", EmptyEpoch),
            ("A:0-0", EmptyEpoch),
            (":1.0", EmptyEpoch),
            ("10a:5.2", EpochNotNumber),
            ("-0", EmptyUpstream),
            ("0:-0", EmptyUpstream),
            ("0foo-", EmptyRevision),
            ("1.0-", EmptyRevision),
        ] {
            assert_eq!(text.parse::<Version>().err(), Some(why), "{text:?}");
        }
        assert_eq!(v("2147483647:1").epoch, 2147483647);
    }

    #[test]
    fn empty_numeric_parts_are_zero() {
        assert_eq!(v("1."), v("1.0"));
        assert_eq!(v("1.0"), v("1.00"));
        assert!(v("1.0~") < v("1.0"));
        assert!(v("1.0") < v("1.0."));
        assert!(v("1.0+") < v("1.0."));
        assert!(v("1:0") > v("999"));
        assert_eq!(v("1:2.0-3").to_string(), "1:2.0-3");
        assert_eq!(v("0:2.0").to_string(), "2.0");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_text_parses_or_errs(text in any::<String>()) {
                let _ = text.parse::<Version>();
            }

            #[test]
            fn ordering_is_total_and_consistent(a in "[0-9][0-9a-z.+~-]{0,8}", b in "[0-9][0-9a-z.+~-]{0,8}", c in "[0-9][0-9a-z.+~]{0,8}") {
                let parse = |s: &str| s.parse::<Version>().ok();
                if let (Some(a), Some(b), Some(c)) = (parse(&a), parse(&b), parse(&c)) {
                    prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
                    if a <= b && b <= c {
                        prop_assert!(a <= c);
                    }
                    prop_assert_eq!(a.to_string().parse::<Version>().unwrap(), a);
                }
            }
        }
    }
}
