//! Every "random" id of a build, derived from the lab's seed: the MBR disk id, the FAT volume id,
//! the ext4 UUID (also its directory hash seed), GPT GUIDs. The same seed gives the same ids;
//! a new seed gives new ones (DESIGN.md, "Reproducibility").

use sha2::{Digest, Sha256};

fn bytes(seed: &str, purpose: &str) -> [u8; 32] {
    Sha256::digest(format!("bramble id v1\0{purpose}\0{seed}").as_bytes()).into()
}

/// A 32-bit id, never 0 (an MBR disk id of 0 means "none" to some tools).
pub fn u32_id(seed: &str, purpose: &str) -> u32 {
    let b = bytes(seed, purpose);
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]).max(1)
}

/// A version-4-shaped UUID (RFC 9562 variant), as mke2fs and GPT expect them.
pub fn uuid(seed: &str, purpose: &str) -> [u8; 16] {
    let b = bytes(seed, purpose);
    let mut u = [0u8; 16];
    u.copy_from_slice(&b[..16]);
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_seed_and_the_purpose() {
        assert_eq!(u32_id("lab", "mbr"), u32_id("lab", "mbr"));
        assert_ne!(u32_id("lab", "mbr"), u32_id("lab2", "mbr"));
        assert_ne!(uuid("lab", "root"), uuid("lab", "boot"));
        let u = uuid("lab", "root");
        assert_eq!(u[6] >> 4, 4);
        assert_eq!(u[8] >> 6, 2);
    }
}
