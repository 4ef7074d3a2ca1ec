//! The queue's one model, shared by every store: the live jobs and their indexes, the
//! notification log, the alert bodies they refer to ([`state`]), and the planners that turn
//! each operation into the changes it makes ([`plan`]).
//!
//! A store is then "plan, persist, apply": it plans an operation against the state and its own
//! tables ([`plan::Tables`]), persists what the plan wrote to them, and applies the plan's
//! effects to the state. The redb store persists with a group commit; the in-memory store has
//! nothing to persist.

pub(crate) mod history;
pub(crate) mod lanes;
pub(crate) mod log_map;
pub(crate) mod ops;
pub(crate) mod plan;
pub(crate) mod repeats;
pub(crate) mod state;
pub(crate) mod sweep;

pub(crate) use state::{Job, State};
