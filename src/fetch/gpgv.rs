//! Checking the OpenPGP signature of an archive's Release file with `gpgv`, the verifier apt
//! itself has long used, against one keyring and nothing else (a fresh, empty GNUPGHOME, so no
//! key of the user's own keyring counts). The verdict comes from gpgv's machine-readable status
//! lines (`--status-fd`), as apt reads them: at least one good signature (`GOODSIG` with its
//! `VALIDSIG`) made with a strong digest, and no bad one; a signature by a key the keyring
//! lacks is ignored when another good one is there, as Debian signs with several keys.
//!
//! Blocking (it runs a process): async callers use `spawn_blocking`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Who signed, as gpgv reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signer {
    /// The signing (sub)key's fingerprint.
    pub fingerprint: String,
    /// The primary key's fingerprint, when gpgv gives it.
    pub primary: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("gpgv is not installed, and Bramble needs it to check the archive's signature: apt-get install gpgv")]
    NoGpgv,
    #[error("the keyring {} does not exist: {hint}", path.display())]
    NoKeyring { path: PathBuf, hint: String },
    #[error("the keyring {} is ASCII-armored, and gpgv reads binary keyrings: convert it with `gpg --dearmor`", .0.display())]
    ArmoredKeyring(PathBuf),
    #[error("{url}: its signature does not check out against {}: {detail}", keyring.display())]
    Bad { url: String, keyring: PathBuf, detail: String },
    #[error("cannot run gpgv: {0}")]
    Io(String),
}

/// OpenPGP hash algorithm numbers (RFC 4880 §9.4) apt refuses for Release signatures.
const WEAK_DIGESTS: [(&str, &str); 3] = [("1", "MD5"), ("2", "SHA1"), ("3", "RIPEMD160")];
/// The `ERRSIG` return code for a key missing from the keyring.
const ERRSIG_NO_PUBKEY: &str = "9";

/// The verdict on gpgv's status lines: the first good signer, or why there is none.
pub fn judge(status: &str) -> Result<Signer, String> {
    let mut good_keys = Vec::new();
    let mut valid = Vec::new();
    let mut fatal = Vec::new();
    let mut other = Vec::new();
    for line in status.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else { continue };
        let fields: Vec<&str> = rest.split(' ').collect();
        let arg = |i: usize| fields.get(i).copied().unwrap_or("?");
        match fields[0] {
            "GOODSIG" => good_keys.push(arg(1).to_string()),
            "VALIDSIG" => valid.push(fields[1..].iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            "BADSIG" => fatal.push(format!("a BAD signature by key {} (the file was changed after signing)", arg(1))),
            "EXPKEYSIG" => other.push(format!("signed by key {}, which has expired", arg(1))),
            "REVKEYSIG" => other.push(format!("signed by key {}, which was revoked", arg(1))),
            "EXPSIG" => other.push(format!("a signature by key {} that has expired", arg(1))),
            "ERRSIG" if arg(6) == ERRSIG_NO_PUBKEY => {
                other.push(format!("signed by key {}, which is not in the keyring", arg(1)))
            }
            "ERRSIG" => other.push(format!("cannot check the signature by key {} (gpgv error {})", arg(1), arg(6))),
            "NODATA" => other.push("there is no signature in it".to_string()),
            _ => {}
        }
    }
    if !fatal.is_empty() {
        return Err(fatal.join("; "));
    }
    for v in &valid {
        let fingerprint = v.first().cloned().unwrap_or_default();
        // A GOODSIG names the long key id: the fingerprint's last 16 hex digits.
        let good = good_keys.iter().any(|k| k.len() >= 16 && fingerprint.ends_with(k.as_str()));
        let hash = v.get(7).map(String::as_str).unwrap_or("?");
        if let Some((_, name)) = WEAK_DIGESTS.iter().find(|(n, _)| *n == hash) {
            other.push(format!("the signature by {fingerprint} uses the weak digest {name}"));
        } else if good {
            return Ok(Signer { fingerprint, primary: v.get(9).cloned() });
        }
    }
    if other.is_empty() {
        other.push("gpgv reported no good signature".into());
    }
    Err(other.join("; "))
}

fn keyring_hint(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.starts_with("debian-archive") {
        "install it with `apt-get install debian-archive-keyring`".into()
    } else if name.starts_with("raspberrypi-archive") {
        "install it with `apt-get install raspberrypi-archive-keyring` (Raspberry Pi's archive), or copy it from a Raspberry Pi OS system".into()
    } else if name.starts_with("ubuntu-archive") {
        "install it with `apt-get install ubuntu-keyring`".into()
    } else {
        "set [debian] keyring to the archive's public keyring (a binary .gpg file)".into()
    }
}

/// The keyring must exist and be binary; say how to fix it otherwise.
fn check_keyring(keyring: &Path) -> Result<(), SignatureError> {
    let head = match std::fs::File::open(keyring) {
        Ok(f) => {
            let mut buf = Vec::with_capacity(40);
            f.take(40).read_to_end(&mut buf).map(|_| buf).unwrap_or_default()
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SignatureError::NoKeyring { path: keyring.into(), hint: keyring_hint(keyring) });
        }
        Err(e) => return Err(SignatureError::Io(format!("cannot read the keyring {}: {e}", keyring.display()))),
    };
    if head.starts_with(b"-----BEGIN PGP") {
        return Err(SignatureError::ArmoredKeyring(keyring.into()));
    }
    Ok(())
}

/// Run gpgv on `files` (written into a private temporary folder), optionally with `--output`.
fn run(files: &[(&str, &[u8])], keyring: &Path, url: &str, output: bool) -> Result<Vec<u8>, SignatureError> {
    check_keyring(keyring)?;
    let io = |what: &str, e: std::io::Error| SignatureError::Io(format!("{what}: {e}"));
    let dir = tempfile::Builder::new().prefix("bramble-gpgv").tempdir().map_err(|e| io("temporary folder", e))?;
    let home = dir.path().join("home");
    std::fs::create_dir(&home).map_err(|e| io("temporary GNUPGHOME", e))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).map_err(|e| io("GNUPGHOME", e))?;
    }
    let mut args: Vec<std::ffi::OsString> = vec!["--status-fd".into(), "1".into(), "--keyring".into(), keyring.into()];
    let out = dir.path().join("signed-text");
    if output {
        args.extend(["--output".into(), out.clone().into_os_string()]);
    }
    for (name, bytes) in files {
        let path = dir.path().join(name);
        std::fs::File::create(&path).and_then(|mut f| f.write_all(bytes)).map_err(|e| io("temporary file", e))?;
        args.push(path.into_os_string());
    }
    let result = Command::new("gpgv").args(&args).env("GNUPGHOME", &home).env("LC_ALL", "C").output();
    let result = match result {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(SignatureError::NoGpgv),
        Err(e) => return Err(io("gpgv", e)),
    };
    let status = String::from_utf8_lossy(&result.stdout);
    let bad = |detail: String| SignatureError::Bad { url: url.into(), keyring: keyring.into(), detail };
    // gpgv exits 1 for a bad signature; 2 also when one of several signatures has no key.
    if result.status.code() == Some(1) && !status.contains("BADSIG") {
        return Err(bad(format!("gpgv failed: {}", String::from_utf8_lossy(&result.stderr).trim())));
    }
    let signer = judge(&status).map_err(bad)?;
    tracing::debug!("{url}: signed by {}", signer.fingerprint);
    if !output {
        return Ok(Vec::new());
    }
    std::fs::read(&out).map_err(|e| bad(format!("gpgv wrote no signed text ({e})")))
}

/// Check an `InRelease` file; returns the signed text exactly as gpgv saw it.
pub fn verify_clearsigned(signed: &[u8], keyring: &Path, url: &str) -> Result<Vec<u8>, SignatureError> {
    run(&[("InRelease", signed)], keyring, url, true)
}

/// Check a `Release` file against its detached `Release.gpg`.
pub fn verify_detached(data: &[u8], signature: &[u8], keyring: &Path, url: &str) -> Result<(), SignatureError> {
    run(&[("Release.gpg", signature), ("Release", data)], keyring, url, false).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPR: &str = "FB1A813D54A953CC5E6A5B6378D436D8045E175B";

    fn good(hash: &str) -> String {
        format!(
            "[GNUPG:] NEWSIG\n[GNUPG:] KEY_CONSIDERED {FPR} 0\n[GNUPG:] GOODSIG 78D436D8045E175B Test <t@example.org>\n\
             [GNUPG:] VALIDSIG {FPR} 2026-12-02 1796172521 0 4 0 22 {hash} 01 {FPR}\n"
        )
    }

    const MISSING: &str = "[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG 25599BF951CBA5B0 22 8 01 1796173503 9 F840162EB7825C3ECEA9C1C925599BF951CBA5B0\n[GNUPG:] NO_PUBKEY 25599BF951CBA5B0\n";

    #[test]
    fn a_good_strong_signature_passes() {
        let s = judge(&good("8")).unwrap();
        assert_eq!(s.fingerprint, FPR);
        assert_eq!(s.primary.as_deref(), Some(FPR));
        // Debian signs with several keys; one the keyring lacks does not matter.
        assert_eq!(judge(&format!("{MISSING}{}", good("10"))).unwrap().fingerprint, FPR);
    }

    #[test]
    fn everything_else_fails_with_the_reason() {
        assert_eq!(judge(MISSING).unwrap_err(), "signed by key 25599BF951CBA5B0, which is not in the keyring");
        assert_eq!(judge(&good("2")).unwrap_err(), format!("the signature by {FPR} uses the weak digest SHA1"));
        let bad = format!("{}[GNUPG:] NEWSIG\n[GNUPG:] BADSIG 25599BF951CBA5B0 Other\n", good("8"));
        assert!(judge(&bad).unwrap_err().contains("a BAD signature by key 25599BF951CBA5B0"));
        assert_eq!(
            judge("[GNUPG:] NODATA 1\n[GNUPG:] NODATA 2\n").unwrap_err(),
            "there is no signature in it; there is no signature in it"
        );
        assert_eq!(judge("").unwrap_err(), "gpgv reported no good signature");
        assert!(judge("[GNUPG:] EXPKEYSIG 78D436D8045E175B T\n").unwrap_err().contains("has expired"));
        assert!(judge("[GNUPG:] REVKEYSIG 78D436D8045E175B T\n").unwrap_err().contains("revoked"));
        assert!(judge("[GNUPG:] ERRSIG 78D436D8045E175B 22 8 01 1 4 x\n").unwrap_err().contains("gpgv error 4"));
        // A VALIDSIG without its GOODSIG (another key's) is not enough.
        let mismatched = format!("[GNUPG:] GOODSIG 25599BF951CBA5B0 x\n[GNUPG:] VALIDSIG {FPR} d 1 0 4 0 22 8 01\n");
        assert!(judge(&mismatched).is_err());
        // Lines gpgv might add in a later version, and garbage, are ignored.
        assert!(judge(&format!("[GNUPG:] NEWTHING a b\nnoise\n[GNUPG:] \n{}", good("8"))).is_ok());
        assert!(judge("[GNUPG:] VALIDSIG\n[GNUPG:] GOODSIG\n").is_err());
    }

    #[test]
    fn missing_or_armored_keyrings_say_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("debian-archive-keyring.gpg");
        let err = verify_detached(b"x", b"y", &path, "http://x/Release").unwrap_err().to_string();
        assert!(err.contains("apt-get install debian-archive-keyring"), "{err}");
        let rpi = dir.path().join("raspberrypi-archive-keyring.gpg");
        assert!(
            verify_detached(b"x", b"y", &rpi, "u").unwrap_err().to_string().contains("raspberrypi-archive-keyring")
        );
        let asc = dir.path().join("key.asc");
        std::fs::write(&asc, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
        assert!(verify_detached(b"x", b"y", &asc, "u").unwrap_err().to_string().contains("gpg --dearmor"));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_status_text_is_judged_without_panic(text in "(\\[GNUPG:\\] (GOODSIG|VALIDSIG|BADSIG|ERRSIG|NODATA)?( [0-9A-F]{0,4})*\n)*") {
                let _ = judge(&text);
            }
        }
    }
}
