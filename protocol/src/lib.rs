//! Sluice's wire protocols.
//!
//! - [`kafka`]: glue over the `kafka-protocol` crate (request/response structs and codecs),
//!   which Sluice pins and patches (see `vendor/kafka-protocol/SLUICE-PATCH.md`).
//! - [`records`]: building and reading Kafka record batches the broker writes itself.
//! - [`native`]: the native protocol codec (spec: `NATIVE.md`).

pub mod kafka;
pub mod native;
pub mod records;
