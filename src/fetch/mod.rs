//! Bringing inputs in: HTTP downloads with resume and retries (`download`), the
//! content-addressed cache (`cache`), the lock file (`lock`), progress display (`progress`),
//! Debian archive indexes with their signatures checked (`debian`, `gpgv`), and the resolution
//! of a recipe's inputs into a lock and cached files (`resolve`). It moves and checks bytes;
//! what the bytes mean is `source`'s business.

pub mod cache;
pub mod debian;
pub mod download;
/// Test support: the EEPROM fixtures the tests compare against.
#[doc(hidden)]
pub mod eeprom_fixtures;
pub mod gpgv;
pub mod lock;
pub mod progress;
pub mod resolve;
pub mod server_debs;
