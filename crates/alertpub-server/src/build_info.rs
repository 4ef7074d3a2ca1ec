//! What build this is, stamped by `build.rs`.

/// The package's version.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The git revision built (12 hex digits), or `unknown`.
pub(crate) const REVISION: &str = env!("ALERTPUB_REVISION");
/// The git branch built, or `unknown`.
pub(crate) const BRANCH: &str = env!("ALERTPUB_BRANCH");
/// The commit's date (ISO 8601), or `unknown`.
pub(crate) const BUILD_DATE: &str = env!("ALERTPUB_BUILD_DATE");
/// The compiler's version, e.g. `1.89.0`.
pub(crate) const RUST_VERSION: &str = env!("ALERTPUB_RUST_VERSION");
