//! The lock the breakers use, switched to loom's under our own cfg `alertpub_loom`, so that
//! `cargo xtask loom` explores every interleaving of concurrent `acquire` and `record` calls.
//!
//! The cfg is ours rather than loom's usual `loom` because a global `--cfg loom` also reaches
//! tokio, which then hides `tokio::net` and breaks the HTTP stack (see docs/ARCHITECTURE.md).

#[cfg(alertpub_loom)]
pub(crate) use loom::sync::Mutex;
#[cfg(not(alertpub_loom))]
pub(crate) use std::sync::Mutex;
