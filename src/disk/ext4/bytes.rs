//! Little-endian field access and the CRCs ext4 uses, over byte slices already read.
//!
//! Not for reading the source: out-of-range fields read as zero, so callers check a region's
//! length before trusting what they decode from it.

pub(crate) fn le16(bytes: &[u8], at: usize) -> u16 {
    let mut out = [0u8; 2];
    if let Some(field) = at.checked_add(2).and_then(|end| bytes.get(at..end)) {
        out.copy_from_slice(field);
    }
    u16::from_le_bytes(out)
}

pub(crate) fn le32(bytes: &[u8], at: usize) -> u32 {
    let mut out = [0u8; 4];
    if let Some(field) = at.checked_add(4).and_then(|end| bytes.get(at..end)) {
        out.copy_from_slice(field);
    }
    u32::from_le_bytes(out)
}

/// Two 32-bit halves, as ext4 splits its 48- and 64-bit block numbers.
pub(crate) fn join(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

const fn crc16_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xA001 } else { crc >> 1 };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

static CRC32C: [u32; 256] = crc32c_table();
static CRC16: [u16; 256] = crc16_table();

/// CRC32C continued from `crc` with no final inversion, which is how ext4 chains and stores it
/// (the kernel's `ext4_chksum`, e2fsprogs' `ext2fs_crc32c_le`).
pub(crate) fn crc32c(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc = CRC32C[((crc ^ u32::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The CRC16 of the older `gdt_csum` group descriptor checksums (e2fsprogs' `ext2fs_crc16`).
pub(crate) fn crc16(mut crc: u16, data: &[u8]) -> u16 {
    for &byte in data {
        crc = CRC16[((crc ^ u16::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crcs_match_published_check_values() {
        // The standard check values for "123456789": CRC-32C is 0xE3069283 with the usual
        // pre- and post-inversion; CRC-16/ARC is 0xBB3D.
        assert_eq!(!crc32c(!0, b"123456789"), 0xE306_9283);
        assert_eq!(crc16(0, b"123456789"), 0xBB3D);
        assert_eq!(le16(&[1, 2], 1), 0);
        assert_eq!(le32(&[1, 2, 3, 4, 5], 1), 0x0504_0302);
    }
}
