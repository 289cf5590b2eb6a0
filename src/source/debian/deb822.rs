//! The deb822 control-file syntax (deb822(5)) that Release files, Packages indexes, dpkg's
//! status file and a package's `control` file share: paragraphs of `Field: value` lines,
//! separated by blank lines, with continuation lines starting with a space or tab, and `#`
//! comment lines. Pure: text in, paragraphs out; what the fields mean is for the callers.
//!
//! Not for the cleartext-signature wrapper of InRelease (see `clearsign`).

use std::fmt;

/// One field: its name as written and its value. A multi-line value keeps one `\n` between
/// lines, each line trimmed; a single-line value is trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub value: String,
    /// The line its name is on (1-based).
    pub line: usize,
}

/// A paragraph (stanza) and the line it starts on (1-based), for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paragraph {
    pub line: usize,
    pub fields: Vec<Field>,
}

impl Paragraph {
    /// The value of `name`, matched without regard to case as deb822 requires.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.field(name).map(|f| f.value.as_str())
    }

    /// The field `name`, with its line.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Deb822Error {
    pub line: usize,
    pub message: String,
}

impl Deb822Error {
    fn at(line: usize, message: impl fmt::Display) -> Deb822Error {
        Deb822Error { line, message: message.to_string() }
    }
}

/// A field name deb822 allows: printable US-ASCII but space and colon, not starting with `#` or
/// `-`.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with(['#', '-']) && name.bytes().all(|b| (b'!'..=b'~').contains(&b) && b != b':')
}

/// Parse every paragraph of `bytes`. Bytes that are not UTF-8 (old Latin-1 descriptions) are
/// replaced, not refused: no field Bramble reads is affected.
pub fn parse(bytes: &[u8]) -> Result<Vec<Paragraph>, Deb822Error> {
    let text = String::from_utf8_lossy(bytes);
    let mut out = Vec::new();
    let mut current: Option<Paragraph> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let line_no = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim_matches([' ', '\t']).is_empty() {
            out.extend(current.take());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            let Some(field) = current.as_mut().and_then(|p| p.fields.last_mut()) else {
                return Err(Deb822Error::at(line_no, "a continuation line (starting with a space) outside a field"));
            };
            field.value.push('\n');
            field.value.push_str(line.trim());
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Deb822Error::at(line_no, format!("`{}` is not a `Field: value` line", shorten(line))));
        };
        if !valid_name(name) {
            return Err(Deb822Error::at(line_no, format!("`{}` is not a field name", shorten(name))));
        }
        let paragraph = current.get_or_insert_with(|| Paragraph { line: line_no, fields: Vec::new() });
        if paragraph.get(name).is_some() {
            return Err(Deb822Error::at(line_no, format!("field `{name}` appears twice in one paragraph")));
        }
        paragraph.fields.push(Field { name: name.to_string(), value: value.trim().to_string(), line: line_no });
    }
    out.extend(current);
    Ok(out)
}

/// At most 60 characters of `s`, for messages about damaged input.
pub(crate) fn shorten(s: &str) -> String {
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_fields_continuations_and_comments() {
        let text = b"# a comment\nPackage: a\nDepends: b,\n c (>= 1)\n\t| d\nDescription: short\n long\n .\n more\n\n \t \nPackage: b\r\nversion:  2 \r\n";
        let ps = parse(text).unwrap();
        assert_eq!(ps.len(), 2);
        assert_eq!(ps[0].line, 2);
        assert_eq!(ps[0].get("package"), Some("a"));
        assert_eq!(ps[0].get("Depends"), Some("b,\nc (>= 1)\n| d"));
        assert_eq!(ps[0].get("Description"), Some("short\nlong\n.\nmore"));
        assert_eq!(ps[1].line, 12);
        assert_eq!(ps[1].get("Version"), Some("2"));
        assert_eq!(ps[1].get("Missing"), None);
        assert!(parse(b"").unwrap().is_empty());
        assert!(parse(b"\n\n# only comments\n").unwrap().is_empty());
    }

    #[test]
    fn damage_is_reported_with_its_line() {
        assert_eq!(parse(b" starts with a space\n").unwrap_err().line, 1);
        let e = parse(b"Package: a\nno colon here\n").unwrap_err();
        assert_eq!(e.to_string(), "line 2: `no colon here` is not a `Field: value` line");
        let e = parse(b"Package: a\npackage: b\n").unwrap_err();
        assert!(e.message.contains("appears twice"), "{e}");
        assert!(parse(b"-x: 1\n").is_err());
        assert!(parse(b"a b: 1\n").is_err());
        assert!(parse(b": 1\n").is_err());
        // Non-UTF-8 bytes are replaced, not refused.
        assert_eq!(parse(b"Description: caf\xe9\n").unwrap()[0].get("description"), Some("caf\u{fffd}"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_bytes_parse_or_err(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
                let _ = parse(&bytes);
            }

            #[test]
            fn written_fields_read_back(fields in proptest::collection::btree_map("[A-Za-z][A-Za-z0-9-]{0,10}", "[!-~]([ -~]{0,20}[!-~])?", 1..6)) {
                let mut text = String::new();
                let mut seen = std::collections::BTreeSet::new();
                for (k, v) in &fields {
                    if seen.insert(k.to_ascii_lowercase()) {
                        text += &format!("{k}: {v}\n");
                    }
                }
                let ps = parse(text.as_bytes()).unwrap();
                prop_assert_eq!(ps.len(), 1);
                for f in &ps[0].fields {
                    prop_assert_eq!(Some(f.value.as_str()), fields.get(&f.name).map(|s| s.as_str()));
                }
            }
        }
    }
}
