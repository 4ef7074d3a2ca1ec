//! The contract every [`JobStore`](super::JobStore) backend must pass.
//!
//! Each function takes a fresh store and panics with a readable message when the store breaks the
//! contract. A backend's tests call [`run_all`] (or the functions one by one) from its own
//! integration test binary.
