//! Sluice's wire protocols.
//!
//! - [`kafka`]: glue over the `kafka-protocol` crate (request/response structs and codecs),
//!   which Sluice pins and patches (see `vendor/kafka-protocol/SLUICE-PATCH.md`).
//! - [`records`]: building and reading Kafka record batches the broker writes itself.
//! - [`native`]: the native protocol codec (spec: `NATIVE.md`).
//! - [`murmur2`]: Kafka's default key partitioner.
//! - [`compression`] (feature `compression`): the four Kafka batch codecs.
//! - [`client`] (feature `client`): the async native-protocol client (tokio).
//! - [`vectored`] (feature `client`): vectored writes of `Bytes` segments, for both ends.

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "compression")]
pub mod compression;
pub mod kafka;
pub mod murmur2;
pub mod native;
pub mod records;
#[cfg(feature = "client")]
pub mod vectored;
