//! What the inputs of a lab are: Raspberry Pi OS releases (by catalog name or URL), the pinned
//! bootloader EEPROM releases, firmware archives. Decides names, URLs and hashes; never
//! downloads (that is `fetch`).

pub mod ar;
pub mod catalog;
pub mod compression;
pub mod deb_file;
pub mod debian;
pub mod debian_root;
pub mod eeprom_release;
pub mod firmware;
pub mod inputs;
pub mod os_image;
pub mod pc_loaders;
pub mod root_arch;
