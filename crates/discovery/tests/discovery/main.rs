//! The discovery crate's integration tests, in one binary: the config file, and Kubernetes
//! Secrets against a fake API server on loopback.

mod file;
#[cfg(feature = "kubernetes")]
mod kubernetes;
