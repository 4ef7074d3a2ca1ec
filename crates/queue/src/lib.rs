//! The durable job queue (redb), the notification log and the dead-letter queue.
//!
//! It implements `alert_core::JobStore`; ingest commits here, with fsync, before it answers.
