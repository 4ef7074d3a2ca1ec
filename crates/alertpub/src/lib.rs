//! alertpub publishes every alert, in parallel, to many notification targets.
//!
//! This crate is the facade other teams depend on. It re-exports the stable pieces:
//! - [`core`]: alerts, targets, errors and the traits ([`core::Publisher`], [`core::HealthView`],
//!   [`core::CircuitGate`], [`core::TargetSource`], [`core::PublishObserver`]);
//! - [`fanout`]: target selection, [`fanout::TargetCall`] and the parallel engine.
//!
//! Publishers, health, discovery and the durable queue join the facade as they land.
//!
//! ```
//! use alertpub::fanout::{FanoutEngine, PublishOptions};
//! let options = PublishOptions::default();
//! assert!(options.validate().is_ok());
//! # let _ = FanoutEngine::builder;
//! ```

pub use alert_core as core;
pub use fanout;
