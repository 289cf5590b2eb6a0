//! The OpenPGP cleartext signature framework (RFC 4880 §7) that wraps an archive's `InRelease`:
//! take it apart into the signed text and the armored signature, refusing anything that is
//! not exactly one signed message (text before it, after it, or a second message), as apt does,
//! so that what Bramble reads is what was signed. Checking the signature is `fetch::gpgv`'s.

/// The parts of a cleartext-signed message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearSigned {
    /// The signed text, dash-escaping removed, each line ending in `\n` (what `gpgv --output`
    /// writes).
    pub text: String,
    /// The `Hash:` armor headers, as written.
    pub hashes: Vec<String>,
    /// The armored signature block, from its BEGIN line to its END line.
    pub signature: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClearSignError {
    #[error("it is not a cleartext-signed message (no `{BEGIN_MESSAGE}` line)")]
    NotSigned,
    #[error("line {0}: text before the signed message, which the signature does not cover")]
    TextBefore(usize),
    #[error("line {0}: `{1}` is not an armor header of a signed message")]
    BadHeader(usize, String),
    #[error("line {0}: a line starting with `-` that is neither dash-escaped nor the signature")]
    BadDashLine(usize),
    #[error("the signed message has no signature block")]
    NoSignature,
    #[error("the signature block has no end line")]
    UnterminatedSignature,
    #[error("line {0}: text after the signature, which the signature does not cover")]
    TextAfter(usize),
}

pub const BEGIN_MESSAGE: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const BEGIN_SIGNATURE: &str = "-----BEGIN PGP SIGNATURE-----";
const END_SIGNATURE: &str = "-----END PGP SIGNATURE-----";

/// Whether `text` starts (after blank lines) like a cleartext-signed message.
pub fn is_clearsigned(text: &str) -> bool {
    text.trim_start().starts_with(BEGIN_MESSAGE)
}

/// Take a cleartext-signed message apart.
pub fn split(text: &str) -> Result<ClearSigned, ClearSignError> {
    // RFC 4880 §7.1: trailing whitespace on a line is not part of the signature's view of it,
    // so framing lines are compared without it.
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate().map(|(i, l)| (i + 1, l));
    loop {
        match lines.next() {
            None => return Err(ClearSignError::NotSigned),
            Some((_, l)) if l.trim_end() == BEGIN_MESSAGE => break,
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((n, _)) => {
                return Err(if text.contains(BEGIN_MESSAGE) {
                    ClearSignError::TextBefore(n)
                } else {
                    ClearSignError::NotSigned
                });
            }
        }
    }
    let mut hashes = Vec::new();
    for (n, l) in lines.by_ref() {
        if l.trim_end().is_empty() {
            break;
        }
        match l.split_once(": ") {
            Some(("Hash", value)) => hashes.push(value.trim().to_string()),
            // RFC 4880 allows other armor headers; apt and gpg know none in signed messages.
            _ => return Err(ClearSignError::BadHeader(n, super::deb822::shorten(l))),
        }
    }
    let mut body = String::new();
    let mut signature = String::new();
    for (n, l) in lines.by_ref() {
        if l.trim_end() == BEGIN_SIGNATURE {
            signature.push_str(BEGIN_SIGNATURE);
            signature.push('\n');
            break;
        }
        let line = match l.strip_prefix("- ") {
            Some(rest) => rest,
            None if l.starts_with('-') => return Err(ClearSignError::BadDashLine(n)),
            None => l,
        };
        body.push_str(line);
        body.push('\n');
    }
    if signature.is_empty() {
        return Err(ClearSignError::NoSignature);
    }
    let mut ended = false;
    for (_, l) in lines.by_ref() {
        signature.push_str(l);
        signature.push('\n');
        if l.trim_end() == END_SIGNATURE {
            ended = true;
            break;
        }
    }
    if !ended {
        return Err(ClearSignError::UnterminatedSignature);
    }
    if let Some((n, _)) = lines.find(|(_, l)| !l.trim().is_empty()) {
        return Err(ClearSignError::TextAfter(n));
    }
    Ok(ClearSigned { text: body, hashes, signature })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED: &str = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nOrigin: x\nSuite: s\n- -dash line\n\n-----BEGIN PGP SIGNATURE-----\n\niHUEARYIAB0WIQT7\n=mhhz\n-----END PGP SIGNATURE-----\n";

    #[test]
    fn splits_a_signed_message() {
        let s = split(SIGNED).unwrap();
        assert_eq!(s.text, "Origin: x\nSuite: s\n-dash line\n\n");
        assert_eq!(s.hashes, ["SHA256"]);
        assert!(s.signature.starts_with(BEGIN_SIGNATURE) && s.signature.ends_with(&format!("{END_SIGNATURE}\n")));
        assert!(is_clearsigned(SIGNED));
        assert!(!is_clearsigned("Origin: x\n"));
        // CRLF line ends and blank lines around the message are fine.
        assert_eq!(split(&format!("\n{}\n\n", SIGNED.replace('\n', "\r\n"))).unwrap().text, s.text);
    }

    #[test]
    fn anything_unsigned_is_refused() {
        assert_eq!(split("Origin: x\n"), Err(ClearSignError::NotSigned));
        assert_eq!(split(&format!("Origin: evil\n{SIGNED}")), Err(ClearSignError::TextBefore(1)));
        assert_eq!(split(&format!("{SIGNED}Origin: evil\n")), Err(ClearSignError::TextAfter(13)));
        assert_eq!(split(&format!("{SIGNED}{SIGNED}")), Err(ClearSignError::TextAfter(13)));
        assert!(matches!(split(&SIGNED.replace("- -dash", "-dash")), Err(ClearSignError::BadDashLine(6))));
        assert!(matches!(split(&SIGNED.replace("Hash: SHA256", "Comment: hi")), Err(ClearSignError::BadHeader(2, _))));
        assert_eq!(
            split(&SIGNED.replace("-----END PGP SIGNATURE-----\n", "")),
            Err(ClearSignError::UnterminatedSignature)
        );
        let cut = &SIGNED[..SIGNED.find(BEGIN_SIGNATURE).unwrap()];
        assert_eq!(split(cut), Err(ClearSignError::NoSignature));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_text_splits_or_errs(text in "(-----BEGIN PGP SIGNED MESSAGE-----\n|-----BEGIN PGP SIGNATURE-----\n|-----END PGP SIGNATURE-----\n|Hash: SHA256\n|- |-|\n|[a-z: ]{0,8})*") {
                let _ = split(&text);
            }
        }
    }
}
