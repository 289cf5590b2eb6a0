//! The section chain of a `pieeprom.bin` image: parse it, find the embedded files, and rewrite
//! `bootconf.txt` and the update timestamp exactly as Raspberry Pi's `rpi-eeprom-config` does.
//!
//! Format facts: research/pi-netboot.md §3 (rpi-eeprom @ 86759b0). Pure: bytes in, bytes out.

use std::fmt;

/// Image sizes `rpi-eeprom-config` accepts: BCM2711 images are 512 KiB, BCM2712 images 2 MiB.
pub const SIZE_2711: usize = 512 * 1024;
pub const SIZE_2712: usize = 2 * 1024 * 1024;

/// Every section magic satisfies `magic & MAGIC_MASK == MAGIC_BASE` (§3.1).
const MAGIC_MASK: u32 = 0xFFFF_F00F;
const MAGIC_BASE: u32 = 0x55AA_F00F;
/// The `bootcode.bin` stage at offset 0.
const MAGIC_BOOTCODE: u32 = 0x55AA_F00F;
/// A named, modifiable file (§3.2).
const MAGIC_FILE: u32 = 0x55AA_F11F;
/// Padding: 0xFF bytes up to the next section.
const MAGIC_PAD: u32 = 0x55AA_FEEF;

const SECTION_HEADER_LEN: usize = 8;
/// A file section: 8-byte section header, 12-byte NUL-padded name, 4 reserved bytes, content.
const FILE_NAME_LEN: usize = 12;
const FILE_HEADER_LEN: usize = SECTION_HEADER_LEN + FILE_NAME_LEN + 4;

/// The first 64 KiB are read-only; partition A (the writable stage) follows, 988 KiB long (§3.3, §3.6).
const READ_ONLY_SIZE: usize = 64 * 1024;
const PARTITION_SIZE: usize = 988 * 1024;
const WRITABLE_END: usize = READ_ONLY_SIZE + PARTITION_SIZE;
/// The bootloader owns the last 4 KiB of the image as scratch space (§3.1).
const SCRATCH_SIZE: usize = 4096;
/// `bootconf.txt` may hold at most 4096 − 20 bytes (§3.4).
pub const MAX_BOOTCONF_LEN: usize = 4076;

const BOOTCONF: &str = "bootconf.txt";
const UPDATETIME: &str = "updatetime";
const BOOTSYS: &str = "bootsys";

/// The SoC an image is built for. The size tells them apart: every BCM2711 image is 512 KiB
/// and every BCM2712 image 2 MiB (§3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Chip {
    Bcm2711,
    Bcm2712,
}

impl Chip {
    /// The number `rpi-eeprom-digest -c` and `target-soc:` use.
    pub fn number(self) -> u32 {
        match self {
            Chip::Bcm2711 => 2711,
            Chip::Bcm2712 => 2712,
        }
    }

    /// The boards that carry this SoC's bootloader EEPROM.
    pub fn boards(self) -> &'static str {
        match self {
            Chip::Bcm2711 => "Raspberry Pi 4, 400, CM4",
            Chip::Bcm2712 => "Raspberry Pi 5, 500, CM5",
        }
    }

    fn from_size(len: usize) -> Option<Chip> {
        match len {
            SIZE_2711 => Some(Chip::Bcm2711),
            SIZE_2712 => Some(Chip::Bcm2712),
            _ => None,
        }
    }
}

impl fmt::Display for Chip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BCM{}", self.number())
    }
}

/// What a section holds, from its magic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SectionKind {
    Bootcode,
    File(String),
    Padding,
    /// Code or data the bootloader owns (magics 0x55AAF33F, 0x55AAF44F, …); kept as is.
    Opaque,
}

/// One section of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub offset: usize,
    pub magic: u32,
    /// The header's length field: bytes after the 8-byte header.
    pub length: usize,
    pub kind: SectionKind,
}

impl Section {
    /// Where this section's bytes end (before alignment).
    pub fn end(&self) -> usize {
        self.offset + SECTION_HEADER_LEN + self.length
    }

    /// The file content of a file section.
    fn content_range(&self) -> std::ops::Range<usize> {
        self.offset + FILE_HEADER_LEN..self.end()
    }

    fn is_file(&self, name: &str) -> bool {
        matches!(&self.kind, SectionKind::File(n) if n == name)
    }
}

/// Why bytes are not a usable EEPROM image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error(
        "is {0} bytes, but a bootloader EEPROM image is {SIZE_2711} bytes (Pi 4) or {SIZE_2712} bytes (Pi 5); \
         the file is truncated or is not a pieeprom.bin"
    )]
    Size(usize),
    #[error("does not start with a bootcode section (magic 0x55aaf00f); it is not a pieeprom.bin")]
    NoBootcode,
    #[error("has a corrupt section header at offset {offset:#x} (magic {magic:#010x})")]
    BadMagic { offset: usize, magic: u32 },
    #[error("has a section at offset {offset:#x} whose length {length} runs past the end of the image")]
    Overrun { offset: usize, length: usize },
    #[error("has a file section at offset {offset:#x} too short to hold its name")]
    ShortFile { offset: usize },
    #[error("has no bootconf.txt section")]
    NoBootconf,
    #[error("has no bootconf.txt section inside the writable partition (0x10000..0x107000)")]
    NoWritableBootconf,
    #[error("cannot take a bootconf.txt of {len} bytes: the bootloader allows at most {max} bytes; shorten the config")]
    ConfigTooLarge { len: usize, max: usize },
    #[error(
        "cannot take a bootconf.txt of {len} bytes: this image has room for {room} bytes there; shorten the config"
    )]
    ConfigDoesNotFit { len: usize, room: usize },
    #[error("is damaged: with the new bootconf.txt in place, the image {0}; start from an unmodified image")]
    Damaged(Box<ImageError>),
    #[error("has an updatetime section at offset {offset:#x} that is not 8 bytes long")]
    BadUpdatetime { offset: usize },
}

/// A parsed, read-only view of an image.
#[derive(Debug)]
pub struct EepromImage<'a> {
    bytes: &'a [u8],
    chip: Chip,
    sections: Vec<Section>,
}

/// Strings the build embeds: `VERSION:<git hash>`, `DATE: <yyyy/mm/dd>`, `BUILD_TIMESTAMP=<unix>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: Option<String>,
    pub date: Option<String>,
    pub timestamp: Option<u64>,
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

impl<'a> EepromImage<'a> {
    /// Walk the section chain from offset 0 until erased flash (magic 0 or 0xFFFFFFFF) or the end.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ImageError> {
        let chip = Chip::from_size(bytes.len()).ok_or(ImageError::Size(bytes.len()))?;
        let mut sections = Vec::new();
        let mut offset = 0;
        while offset + SECTION_HEADER_LEN <= bytes.len() {
            let magic = be32(bytes, offset);
            if magic == 0 || magic == 0xFFFF_FFFF {
                break;
            }
            if magic & MAGIC_MASK != MAGIC_BASE {
                if offset == 0 {
                    return Err(ImageError::NoBootcode);
                }
                return Err(ImageError::BadMagic { offset, magic });
            }
            let length = be32(bytes, offset + 4) as usize;
            if length > bytes.len() - offset - SECTION_HEADER_LEN {
                return Err(ImageError::Overrun { offset, length });
            }
            let kind = match magic {
                MAGIC_BOOTCODE => SectionKind::Bootcode,
                MAGIC_PAD => SectionKind::Padding,
                MAGIC_FILE => {
                    if length < FILE_HEADER_LEN - SECTION_HEADER_LEN {
                        return Err(ImageError::ShortFile { offset });
                    }
                    let raw = &bytes[offset + SECTION_HEADER_LEN..][..FILE_NAME_LEN];
                    let name = raw.split(|&b| b == 0).next().unwrap_or_default();
                    SectionKind::File(String::from_utf8_lossy(name).into_owned())
                }
                _ => SectionKind::Opaque,
            };
            let section = Section { offset, magic, length, kind };
            offset = align8(section.end());
            sections.push(section);
        }
        if sections.first().map(|s| &s.kind) != Some(&SectionKind::Bootcode) {
            return Err(ImageError::NoBootcode);
        }
        Ok(EepromImage { bytes, chip, sections })
    }

    pub fn chip(&self) -> Chip {
        self.chip
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// The first file section with this name.
    pub fn file_section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.is_file(name))
    }

    /// The content of the first file section with this name.
    pub fn file(&self, name: &str) -> Option<&'a [u8]> {
        let section = self.file_section(name)?;
        Some(&self.bytes[section.content_range()])
    }

    /// The embedded bootloader configuration, byte for byte.
    pub fn bootconf(&self) -> Result<&'a [u8], ImageError> {
        self.file(BOOTCONF).ok_or(ImageError::NoBootconf)
    }

    /// A/B-capable images (Pi 5) carry a `bootsys` file section at the start of partition A (§3.6).
    pub fn is_ab_capable(&self) -> bool {
        self.sections.iter().any(|s| s.offset == READ_ONLY_SIZE && s.is_file(BOOTSYS))
    }

    /// The embedded version strings, found the way `rpi-eeprom-update` finds them: anywhere in the image.
    pub fn build_info(&self) -> BuildInfo {
        let field = |tag: &[u8], ok: fn(u8) -> bool| -> Option<String> {
            let at = memchr::memmem::find(self.bytes, tag)? + tag.len();
            let value: Vec<u8> = self.bytes[at..].iter().copied().take_while(|&b| ok(b)).collect();
            (!value.is_empty()).then(|| String::from_utf8_lossy(&value).into_owned())
        };
        BuildInfo {
            version: field(b"VERSION:", |b| b.is_ascii_hexdigit()),
            date: field(b"DATE: ", |b| b.is_ascii_digit() || b == b'/'),
            timestamp: field(b"BUILD_TIMESTAMP=", |b| b.is_ascii_digit()).and_then(|s| s.parse().ok()),
        }
    }

    /// The update timestamp written by `--timestamp` (§3.5), if one is set.
    pub fn update_timestamp(&self) -> Option<u32> {
        let at = match self.updatetime_offsets().ok()?.first() {
            Some(&at) => at,
            None => self.bytes.len() - 8,
        };
        let (inverted, ts) = (le32(self.bytes, at), le32(self.bytes, at + 4));
        // Unset reads 00000000 ffffffff (the updatetime section) or all 0xFF (erased scratch space).
        (inverted == !ts && ts != u32::MAX && ts != 0).then_some(ts)
    }

    /// Content offsets of the `updatetime` sections to write, if the image has them in its
    /// read-only stage (Pi 5); empty for images that keep the timestamp in scratch space (Pi 4).
    fn updatetime_offsets(&self) -> Result<Vec<usize>, ImageError> {
        let found: Vec<&Section> =
            self.sections.iter().filter(|s| s.is_file(UPDATETIME) && s.offset < WRITABLE_END).collect();
        if !found.iter().any(|s| s.offset < READ_ONLY_SIZE) {
            return Ok(Vec::new());
        }
        found
            .iter()
            .map(|s| {
                let range = s.content_range();
                if range.len() == 8 { Ok(range.start) } else { Err(ImageError::BadUpdatetime { offset: s.offset }) }
            })
            .collect()
    }

    /// Where `bootconf.txt` can be rewritten: its section, and the offset the new section plus
    /// padding may run up to (§3.3).
    fn writable_bootconf(&self) -> Result<(usize, usize, bool), ImageError> {
        let index = self
            .sections
            .iter()
            .position(|s| s.is_file(BOOTCONF) && (READ_ONLY_SIZE..WRITABLE_END).contains(&s.offset))
            .ok_or(ImageError::NoWritableBootconf)?;
        let after = &self.sections[index + 1..];
        let limit = after
            .iter()
            .find(|s| s.kind != SectionKind::Padding)
            .map_or(self.bytes.len() - SCRATCH_SIZE, |s| s.offset)
            .min(WRITABLE_END);
        Ok((self.sections[index].offset, limit, after.is_empty()))
    }

    /// How many bytes of configuration this image can hold.
    pub fn bootconf_capacity(&self) -> Result<usize, ImageError> {
        let (offset, limit, _) = self.writable_bootconf()?;
        Ok((limit - offset - FILE_HEADER_LEN).min(MAX_BOOTCONF_LEN))
    }

    /// A copy of the image with `config` as its `bootconf.txt` (§3.4). Writing back the config an
    /// image already holds gives the image back unchanged.
    pub fn with_bootconf(&self, config: &[u8]) -> Result<Vec<u8>, ImageError> {
        if config.len() > MAX_BOOTCONF_LEN {
            return Err(ImageError::ConfigTooLarge { len: config.len(), max: MAX_BOOTCONF_LEN });
        }
        let (offset, limit, is_last) = self.writable_bootconf()?;
        let content = offset + FILE_HEADER_LEN;
        let end = content + config.len();
        if end > limit {
            return Err(ImageError::ConfigDoesNotFit { len: config.len(), room: limit - content });
        }
        let mut out = self.bytes.to_vec();
        let length = (config.len() + FILE_NAME_LEN + 4) as u32;
        out[offset + 4..offset + 8].copy_from_slice(&length.to_be_bytes());
        out[content..end].copy_from_slice(config);
        // Erase the rest up to the limit; a following padding section is re-laid over the gap.
        let aligned = align8(end).min(limit);
        out[end..limit].fill(0xFF);
        let gap = limit - aligned;
        if !is_last && gap >= SECTION_HEADER_LEN {
            out[aligned..aligned + 4].copy_from_slice(&MAGIC_PAD.to_be_bytes());
            let pad_len = (gap - SECTION_HEADER_LEN) as u32;
            out[aligned + 4..aligned + 8].copy_from_slice(&pad_len.to_be_bytes());
        }
        // A damaged image can hide junk past where its chain ends; the new padding may now lead
        // the walk into it. Never hand out an image the bootloader could not walk.
        if let Err(e) = EepromImage::parse(&out) {
            return Err(ImageError::Damaged(Box::new(e)));
        }
        Ok(out)
    }

    /// A copy of the image with the update timestamp set to `ts` (§3.5): `!ts` then `ts`, both
    /// little-endian, in every `updatetime` section, or in the last 8 bytes if there is none.
    pub fn with_update_timestamp(&self, ts: u32) -> Result<Vec<u8>, ImageError> {
        let mut out = self.bytes.to_vec();
        let mut offsets = self.updatetime_offsets()?;
        if offsets.is_empty() {
            offsets.push(out.len() - 8);
        }
        for at in offsets {
            out[at..at + 4].copy_from_slice(&(!ts).to_le_bytes());
            out[at + 4..at + 8].copy_from_slice(&ts.to_le_bytes());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eeprom::test_fixtures::{FIXTURES, Fixture};

    #[test]
    fn fixtures_parse_with_expected_layout() {
        for fx in FIXTURES {
            let bytes = fx.image();
            let image = EepromImage::parse(&bytes).unwrap();
            assert_eq!(image.chip(), fx.chip);
            assert_eq!(image.bootconf().unwrap(), fx.bootconf().as_slice(), "{}", fx.name);
            let conf = image.sections().iter().find(|s| s.is_file(BOOTCONF)).unwrap();
            assert_eq!(conf.offset, fx.bootconf_offset, "{}", fx.name);
            assert_eq!(image.build_info().timestamp, Some(fx.build_timestamp));
            assert_eq!(image.is_ab_capable(), fx.chip == Chip::Bcm2712);
            assert_eq!(image.update_timestamp(), None);
            // The chain covers the image without gaps.
            for pair in image.sections().windows(2) {
                assert_eq!(align8(pair[0].end()), pair[1].offset);
            }
        }
    }

    #[test]
    fn fixture_config_replacement_matches_rpi_eeprom_config() {
        for fx in FIXTURES {
            let bytes = fx.image();
            let image = EepromImage::parse(&bytes).unwrap();
            let out = image.with_bootconf(&fx.f21_bootconf()).unwrap();
            assert!(out == fx.f21_image(), "{}: differs from rpi-eeprom-config's output", fx.name);
        }
    }

    #[test]
    fn writing_the_same_config_back_is_identity() {
        for fx in FIXTURES {
            let bytes = fx.image();
            let image = EepromImage::parse(&bytes).unwrap();
            assert!(image.with_bootconf(image.bootconf().unwrap()).unwrap() == bytes, "{}", fx.name);
        }
    }

    #[test]
    fn shrinking_then_restoring_gives_the_original() {
        for fx in FIXTURES {
            let bytes = fx.image();
            let original = EepromImage::parse(&bytes).unwrap().bootconf().unwrap().to_vec();
            for shorter in [&b""[..], b"[all]\n", b"BOOT_ORDER=0xf21\n"] {
                let small = EepromImage::parse(&bytes).unwrap().with_bootconf(shorter).unwrap();
                let small_image = EepromImage::parse(&small).unwrap();
                assert_eq!(small_image.bootconf().unwrap(), shorter);
                assert!(small_image.with_bootconf(&original).unwrap() == bytes, "{}", fx.name);
            }
        }
    }

    #[test]
    fn largest_config_fits_and_one_more_byte_is_refused() {
        for fx in FIXTURES {
            let bytes = fx.image();
            let image = EepromImage::parse(&bytes).unwrap();
            let max = vec![b'#'; MAX_BOOTCONF_LEN];
            let out = image.with_bootconf(&max).unwrap();
            let reparsed = EepromImage::parse(&out).unwrap();
            assert_eq!(reparsed.bootconf().unwrap(), max.as_slice());
            // Sections after the config are still where they were.
            let tail = |i: &EepromImage| -> Vec<Section> {
                i.sections().iter().filter(|s| s.offset > fx.bootconf_offset + 8192).cloned().collect()
            };
            assert_eq!(tail(&reparsed), tail(&image));
            let err = image.with_bootconf(&vec![b'#'; MAX_BOOTCONF_LEN + 1]).unwrap_err();
            assert_eq!(err, ImageError::ConfigTooLarge { len: 4077, max: 4076 });
        }
    }

    #[test]
    fn timestamp_lands_where_rpi_eeprom_config_puts_it() {
        let ts: u32 = 0x6a5b_4c3d;
        let mut expect = Vec::new();
        expect.extend_from_slice(&(!ts).to_le_bytes());
        expect.extend_from_slice(&ts.to_le_bytes());
        for fx in FIXTURES {
            let bytes = fx.image();
            let out = EepromImage::parse(&bytes).unwrap().with_update_timestamp(ts).unwrap();
            let changed: Vec<usize> = (0..bytes.len()).filter(|&i| bytes[i] != out[i]).collect();
            for &at in fx.updatetime_at {
                assert_eq!(&out[at..at + 8], expect.as_slice(), "{} at {at}", fx.name);
            }
            assert!(changed.iter().all(|&i| fx.updatetime_at.iter().any(|&at| (at..at + 8).contains(&i))));
            assert_eq!(EepromImage::parse(&out).unwrap().update_timestamp(), Some(ts));
        }
    }

    #[test]
    fn bad_images_are_refused_with_a_reason() {
        let fx: &Fixture = &FIXTURES[0];
        let bytes = fx.image();
        assert_eq!(EepromImage::parse(&bytes[..1000]).unwrap_err(), ImageError::Size(1000));
        assert_eq!(EepromImage::parse(&vec![0u8; SIZE_2711]).unwrap_err(), ImageError::NoBootcode);
        assert_eq!(EepromImage::parse(&vec![0x41u8; SIZE_2711]).unwrap_err(), ImageError::NoBootcode);
        let mut broken = bytes.clone();
        let second = align8(EepromImage::parse(&bytes).unwrap().sections()[0].end());
        broken[second..second + 4].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        assert_eq!(
            EepromImage::parse(&broken).unwrap_err(),
            ImageError::BadMagic { offset: second, magic: 0x1234_5678 }
        );
        let mut overrun = bytes.clone();
        overrun[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(EepromImage::parse(&overrun).unwrap_err(), ImageError::Overrun { offset: 0, .. }));
    }

    #[test]
    fn junk_hidden_past_the_chain_end_is_refused_not_written() {
        // Found by the property test: partition B's header broken, and the padding after
        // bootconf.txt shortened so that the walk stops before reaching it.
        let mut bytes = FIXTURES[1].image();
        bytes[0x107000] = 0;
        bytes[0xa305e] = 0;
        let image = EepromImage::parse(&bytes).unwrap();
        let err = image.with_bootconf(b"BOOT_ORDER=0xf21\n").unwrap_err();
        assert_eq!(err, ImageError::Damaged(Box::new(ImageError::BadMagic { offset: 0x107000, magic: 0x00aa_feef })));
        assert!(err.to_string().starts_with("is damaged: with the new bootconf.txt in place, the image has a corrupt"));
    }

    mod properties {
        use super::*;
        use proptest::collection::vec;
        use proptest::prelude::*;
        use std::sync::OnceLock;

        fn images() -> &'static [Vec<u8>] {
            static IMAGES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
            IMAGES.get_or_init(|| FIXTURES.iter().map(Fixture::image).collect())
        }

        /// Everything a caller may do with a parsed image; none of it may panic.
        fn exercise(bytes: &[u8]) {
            if let Ok(image) = EepromImage::parse(bytes) {
                let _ = image.bootconf();
                let _ = image.build_info();
                let _ = image.update_timestamp();
                let _ = image.bootconf_capacity();
                let _ = image.is_ab_capable();
                match image.with_bootconf(b"[all]\nBOOT_ORDER=0xf21\n") {
                    Ok(out) => assert!(EepromImage::parse(&out).is_ok()),
                    Err(
                        ImageError::Damaged(_) | ImageError::NoWritableBootconf | ImageError::ConfigDoesNotFit { .. },
                    ) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
                let _ = image.with_update_timestamp(1_800_000_000);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn mutated_images_never_panic(
                which in 0..2usize,
                edits in vec((any::<prop::sample::Index>(), 0..8usize, any::<u8>(), any::<bool>()), 1..16),
                cut in proptest::option::weighted(0.1, any::<prop::sample::Index>()),
            ) {
                let mut bytes = images()[which].clone();
                let sections = EepromImage::parse(&bytes).unwrap().sections().to_vec();
                for (index, within, value, on_header) in edits {
                    // Half the edits hit section headers, where the walker makes its decisions.
                    let at = if on_header { index.get(&sections).offset + within } else { index.index(bytes.len()) };
                    bytes[at] = value;
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len()));
                }
                exercise(&bytes);
            }

            #[test]
            fn random_section_chains_never_panic(
                big in any::<bool>(),
                chain in vec((0u32..16, 0u32..16, 0u32..0x30000, vec(any::<u8>(), 0..16)), 0..40),
            ) {
                let mut bytes = vec![0xFFu8; if big { SIZE_2712 } else { SIZE_2711 }];
                let mut at = 0;
                for (i, (kind, middle, length, name)) in chain.into_iter().enumerate() {
                    let magic = if i == 0 { MAGIC_BOOTCODE } else { 0x55AA_F00F | (kind << 4) | (middle << 8) };
                    if at + 24 + name.len() > bytes.len() { break; }
                    bytes[at..at + 4].copy_from_slice(&magic.to_be_bytes());
                    bytes[at + 4..at + 8].copy_from_slice(&length.to_be_bytes());
                    bytes[at + 8..at + 8 + name.len()].copy_from_slice(&name);
                    at = align8(at + 8 + length as usize);
                }
                exercise(&bytes);
            }

            #[test]
            fn any_config_round_trips_and_restores(which in 0..2usize, config in vec(any::<u8>(), 0..=MAX_BOOTCONF_LEN)) {
                let original = &images()[which];
                let image = EepromImage::parse(original).unwrap();
                let written = image.with_bootconf(&config).unwrap();
                let reparsed = EepromImage::parse(&written).unwrap();
                prop_assert_eq!(reparsed.bootconf().unwrap(), config.as_slice());
                prop_assert_eq!(reparsed.chip(), image.chip());
                let restored = reparsed.with_bootconf(image.bootconf().unwrap()).unwrap();
                prop_assert!(&restored == original);
            }
        }
    }
}
