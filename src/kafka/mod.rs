//! The Kafka front end: `connection.rs` owns framing and ordering; `handlers/` has one file per
//! API key and the one table that lists them (ApiVersions is built from it).

pub mod acl_ops;
pub mod compacted_keys;
pub mod connection;
pub mod errors;
pub mod fetch_encoding;
pub mod fetch_session;
pub mod handlers;
