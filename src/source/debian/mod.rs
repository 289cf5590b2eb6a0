//! Debian archives and packages, pure: the deb822 syntax (`deb822`), the cleartext signature
//! wrapper of InRelease (`clearsign`), Release files (`release`), Packages indexes and the
//! choice of a version (`packages`), dpkg version ordering (`version`), relationship fields
//! (`relation`), dpkg's status file (`status`) and the dependency closure of a set of packages
//! over an index (`closure`).
//!
//! Nothing here downloads or checks signatures (that is `fetch::debian` and `fetch::gpgv`) or
//! opens `.deb` files (that is `source::deb_file`).

pub mod clearsign;
pub mod closure;
pub mod deb822;
pub mod packages;
pub mod relation;
pub mod release;
pub mod status;
pub mod version;

pub use closure::{Added, ClosureError, closure};
pub use packages::{BinaryPackage, Index, IndexEntry, MultiArch};
pub use release::Release;
pub use status::StatusEntry;
pub use version::Version;
