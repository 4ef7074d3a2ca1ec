//! Target health state (a `DashMap` fed by publish outcomes and active probes) and the per-target circuit breaker.
//!
//! It implements `alert_core::HealthView` and `alert_core::CircuitGate`; the breaker's state machine is pure and model-checked.
