//! TFTP packets: parse from bytes and emit to bytes (RFC 1350; OACK and options, RFC 2347).
//! No sockets, no files; every malformed shape is a [`WireError`], never a panic.

use std::borrow::Cow;
use std::fmt;

/// Opcodes (RFC 1350 §5; OACK from RFC 2347).
pub const OP_RRQ: u16 = 1;
pub const OP_WRQ: u16 = 2;
pub const OP_DATA: u16 = 3;
pub const OP_ACK: u16 = 4;
pub const OP_ERROR: u16 = 5;
pub const OP_OACK: u16 = 6;

/// Error codes (RFC 1350 appendix; 8 from RFC 2347).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    NotDefined = 0,
    FileNotFound = 1,
    AccessViolation = 2,
    DiskFull = 3,
    IllegalOperation = 4,
    UnknownTid = 5,
    FileExists = 6,
    NoSuchUser = 7,
    OptionsRefused = 8,
}

impl ErrorCode {
    pub fn from_u16(code: u16) -> Option<Self> {
        use ErrorCode::*;
        Some(match code {
            0 => NotDefined,
            1 => FileNotFound,
            2 => AccessViolation,
            3 => DiskFull,
            4 => IllegalOperation,
            5 => UnknownTid,
            6 => FileExists,
            7 => NoSuchUser,
            8 => OptionsRefused,
            _ => return None,
        })
    }
}

/// A read or write request: file name, transfer mode and options, as sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// Raw bytes: clients may send any byte but NUL; the resolver decides what is a name.
    pub filename: &'a [u8],
    /// `octet`, `netascii` or `mail`, in any case.
    pub mode: &'a str,
    /// Option names and values in request order; names are case-insensitive (RFC 2347).
    pub options: Vec<(&'a str, &'a str)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    Rrq(Request<'a>),
    Wrq(Request<'a>),
    Data {
        block: u16,
        payload: &'a [u8],
    },
    Ack {
        block: u16,
    },
    /// `code` is kept as sent: clients use codes outside the table.
    Error {
        code: u16,
        message: Cow<'a, str>,
    },
    Oack {
        options: Vec<(&'a str, &'a str)>,
    },
}

/// Why bytes are not a TFTP packet.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("packet of {0} bytes is too short")]
    TooShort(usize),
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    #[error("{0} is not NUL-terminated")]
    Unterminated(&'static str),
    #[error("{0} is not ASCII text")]
    NotText(&'static str),
    #[error("option `{0}` has no value")]
    OptionWithoutValue(String),
    #[error("{0} bytes after the end of the packet")]
    TrailingBytes(usize),
}

fn be16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

/// Split NUL-terminated strings off the front of `rest`.
fn take_cstr<'a>(rest: &mut &'a [u8], what: &'static str) -> Result<&'a [u8], WireError> {
    let end = rest.iter().position(|&b| b == 0).ok_or(WireError::Unterminated(what))?;
    let (field, tail) = rest.split_at(end);
    *rest = &tail[1..];
    Ok(field)
}

fn take_text<'a>(rest: &mut &'a [u8], what: &'static str) -> Result<&'a str, WireError> {
    let field = take_cstr(rest, what)?;
    if !field.is_ascii() {
        return Err(WireError::NotText(what));
    }
    std::str::from_utf8(field).map_err(|_| WireError::NotText(what))
}

/// Option name/value pairs up to the end of the packet.
fn take_options(mut rest: &[u8]) -> Result<Vec<(&str, &str)>, WireError> {
    let mut options = Vec::new();
    while !rest.is_empty() {
        let name = take_text(&mut rest, "option name")?;
        if rest.is_empty() {
            return Err(WireError::OptionWithoutValue(name.to_string()));
        }
        let value = take_text(&mut rest, "option value")?;
        options.push((name, value));
    }
    Ok(options)
}

fn take_request(mut rest: &[u8]) -> Result<Request<'_>, WireError> {
    let filename = take_cstr(&mut rest, "file name")?;
    let mode = take_text(&mut rest, "mode")?;
    Ok(Request { filename, mode, options: take_options(rest)? })
}

impl<'a> Packet<'a> {
    /// Parse one datagram.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < 4 {
            return Err(WireError::TooShort(bytes.len()));
        }
        let rest = &bytes[2..];
        match be16(bytes) {
            OP_RRQ => Ok(Packet::Rrq(take_request(rest)?)),
            OP_WRQ => Ok(Packet::Wrq(take_request(rest)?)),
            OP_DATA => Ok(Packet::Data { block: be16(rest), payload: &rest[2..] }),
            OP_ACK if rest.len() == 2 => Ok(Packet::Ack { block: be16(rest) }),
            OP_ACK => Err(WireError::TrailingBytes(rest.len() - 2)),
            OP_ERROR => {
                let code = be16(rest);
                let mut tail = &rest[2..];
                // Some clients omit the final NUL; take the message as sent either way.
                let message = match take_cstr(&mut tail, "error message") {
                    Ok(m) => m,
                    Err(_) => std::mem::take(&mut tail),
                };
                Ok(Packet::Error { code, message: String::from_utf8_lossy(message) })
            }
            OP_OACK => Ok(Packet::Oack { options: take_options(rest)? }),
            op => Err(WireError::UnknownOpcode(op)),
        }
    }

    /// Append the packet's bytes to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        let put_str = |out: &mut Vec<u8>, s: &[u8]| {
            out.extend_from_slice(s);
            out.push(0);
        };
        let put_options = |out: &mut Vec<u8>, options: &[(&str, &str)]| {
            for (name, value) in options {
                put_str(out, name.as_bytes());
                put_str(out, value.as_bytes());
            }
        };
        match self {
            Packet::Rrq(r) | Packet::Wrq(r) => {
                let op = if matches!(self, Packet::Rrq(_)) { OP_RRQ } else { OP_WRQ };
                out.extend_from_slice(&op.to_be_bytes());
                put_str(out, r.filename);
                put_str(out, r.mode.as_bytes());
                put_options(out, &r.options);
            }
            Packet::Data { block, payload } => {
                out.extend_from_slice(&OP_DATA.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
                out.extend_from_slice(payload);
            }
            Packet::Ack { block } => {
                out.extend_from_slice(&OP_ACK.to_be_bytes());
                out.extend_from_slice(&block.to_be_bytes());
            }
            Packet::Error { code, message } => {
                out.extend_from_slice(&OP_ERROR.to_be_bytes());
                out.extend_from_slice(&code.to_be_bytes());
                put_str(out, message.as_bytes());
            }
            Packet::Oack { options } => {
                out.extend_from_slice(&OP_OACK.to_be_bytes());
                put_options(out, options);
            }
        }
    }

    /// The packet as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }

    /// An ERROR packet.
    pub fn error(code: ErrorCode, message: &'a str) -> Self {
        Packet::Error { code: code as u16, message: Cow::Borrowed(message) }
    }
}

impl fmt::Display for Packet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packet::Rrq(r) => write!(f, "RRQ {} {}", String::from_utf8_lossy(r.filename), r.mode),
            Packet::Wrq(r) => write!(f, "WRQ {} {}", String::from_utf8_lossy(r.filename), r.mode),
            Packet::Data { block, payload } => write!(f, "DATA {block} ({} bytes)", payload.len()),
            Packet::Ack { block } => write!(f, "ACK {block}"),
            Packet::Error { code, message } => write!(f, "ERROR {code} {message:?}"),
            Packet::Oack { options } => write!(f, "OACK {options:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrq() -> Vec<u8> {
        b"\x00\x01d9780558/start4.elf\x00octet\x00tsize\x000\x00blksize\x001024\x00".to_vec()
    }

    #[test]
    fn pi4_request_parses() {
        let bytes = rrq();
        let Packet::Rrq(r) = Packet::parse(&bytes).unwrap() else { panic!() };
        assert_eq!(r.filename, b"d9780558/start4.elf");
        assert_eq!(r.mode, "octet");
        assert_eq!(r.options, vec![("tsize", "0"), ("blksize", "1024")]);
    }

    #[test]
    fn every_packet_round_trips() {
        let packets = [
            Packet::Rrq(Request { filename: b"a", mode: "netascii", options: vec![] }),
            Packet::Wrq(Request { filename: b"x/y", mode: "octet", options: vec![("windowsize", "16")] }),
            Packet::Data { block: 65535, payload: &[1, 2, 3] },
            Packet::Data { block: 0, payload: &[] },
            Packet::Ack { block: 7 },
            Packet::error(ErrorCode::FileNotFound, "no such file"),
            Packet::Oack { options: vec![("tsize", "123"), ("blksize", "1468")] },
        ];
        for p in packets {
            let bytes = p.to_bytes();
            assert_eq!(Packet::parse(&bytes).unwrap(), p, "{p}");
        }
    }

    #[test]
    fn byte_exact_encodings() {
        assert_eq!(Packet::Ack { block: 0x0102 }.to_bytes(), [0, 4, 1, 2]);
        assert_eq!(Packet::Data { block: 1, payload: b"hi" }.to_bytes(), [0, 3, 0, 1, b'h', b'i']);
        assert_eq!(Packet::error(ErrorCode::AccessViolation, "no").to_bytes(), [0, 5, 0, 2, b'n', b'o', 0]);
        assert_eq!(Packet::Oack { options: vec![("tsize", "5")] }.to_bytes(), b"\x00\x06tsize\x005\x00");
    }

    #[test]
    fn pi_early_terminate_and_unterminated_messages() {
        let p = Packet::parse(b"\x00\x05\x00\x00Early terminate\x00").unwrap();
        assert_eq!(p, Packet::Error { code: 0, message: "Early terminate".into() });
        let p = Packet::parse(b"\x00\x05\x00\x08User aborted").unwrap();
        assert_eq!(p, Packet::Error { code: 8, message: "User aborted".into() });
        assert_eq!(Packet::parse(b"\x00\x05\x00\x01").unwrap(), Packet::Error { code: 1, message: "".into() });
    }

    #[test]
    fn every_truncation_of_a_request_is_an_error_not_a_panic() {
        let bytes = rrq();
        for cut in 0..bytes.len() {
            let result = Packet::parse(&bytes[..cut]);
            // Cutting exactly after a complete option value leaves a valid, shorter request.
            if let Ok(Packet::Rrq(r)) = &result {
                assert!(bytes[..cut].ends_with(b"\0") && r.options.len() < 2, "cut {cut}");
            } else {
                assert!(result.is_err(), "cut {cut}: {result:?}");
            }
        }
    }

    #[test]
    fn malformed_shapes_have_reasons() {
        assert_eq!(Packet::parse(b""), Err(WireError::TooShort(0)));
        assert_eq!(Packet::parse(b"\x00\x04\x00"), Err(WireError::TooShort(3)));
        assert_eq!(Packet::parse(b"\x00\x09\x00\x00"), Err(WireError::UnknownOpcode(9)));
        assert_eq!(Packet::parse(b"\x00\x00\x00\x00"), Err(WireError::UnknownOpcode(0)));
        assert_eq!(Packet::parse(b"\x00\x01file"), Err(WireError::Unterminated("file name")));
        assert_eq!(Packet::parse(b"\x00\x01file\x00octet"), Err(WireError::Unterminated("mode")));
        assert_eq!(Packet::parse(b"\x00\x01f\x00oct\xffet\x00"), Err(WireError::NotText("mode")));
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00octet\x00blksize\x00"),
            Err(WireError::OptionWithoutValue("blksize".into()))
        );
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00octet\x00blksize\x001024"),
            Err(WireError::Unterminated("option value"))
        );
        assert_eq!(Packet::parse(b"\x00\x04\x00\x01\x00"), Err(WireError::TrailingBytes(1)));
        assert_eq!(Packet::parse(b"\x00\x06tsize"), Err(WireError::Unterminated("option name")));
    }

    #[test]
    fn odd_but_legal_requests() {
        // Empty file name and empty options are syntactically fine; the resolver judges names.
        let Packet::Rrq(r) = Packet::parse(b"\x00\x01\x00octet\x00").unwrap() else { panic!() };
        assert_eq!(r.filename, b"");
        let Packet::Rrq(r) = Packet::parse(b"\x00\x01a\xffb\x00OCTET\x00\x00\x00").unwrap() else { panic!() };
        assert_eq!(r.filename, b"a\xffb");
        assert_eq!(r.options, vec![("", "")]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn any_bytes_parse_or_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
                if let Ok(p) = Packet::parse(&bytes) {
                    // Whatever parses re-emits to something that parses to the same packet.
                    let again = p.to_bytes();
                    prop_assert_eq!(Packet::parse(&again).unwrap(), p);
                }
            }

            #[test]
            fn requests_round_trip(
                name in proptest::collection::vec(1u8..=255, 0..40),
                mode in "[a-zA-Z]{0,10}",
                options in proptest::collection::vec(("[a-z]{1,10}", "[0-9]{0,6}"), 0..5),
            ) {
                let options: Vec<(&str, &str)> = options.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                let p = Packet::Rrq(Request { filename: &name, mode: &mode, options });
                let bytes = p.to_bytes();
                prop_assert_eq!(Packet::parse(&bytes).unwrap(), p);
            }
        }
    }
}
