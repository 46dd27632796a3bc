//! Idempotent producers (DESIGN.md §6): producer ids handed out by InitProducerId
//! ([`ids`], durable in the metadata log so an id is never handed out twice) and the
//! per-partition state that turns retried batches into no-ops ([`state`]).

pub mod ids;
pub mod marker;
pub mod state;
