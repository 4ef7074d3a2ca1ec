//! Publishes alerts as generic JSON to any HTTP endpoint, with optional auth and an HMAC-SHA256 signature.
//!
//! Retries of one job reuse its `Idempotency-Key`.
