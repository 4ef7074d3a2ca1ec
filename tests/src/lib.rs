//! End-to-end tests for alertpub: they start the real `alertpub` binary, real mock targets on
//! 127.0.0.1 and, where the programs are installed, real Prometheus and Alertmanager.
//!
//! The suites arrive with the server; this package exists now so that the workspace's shape is
//! visible from the start.
