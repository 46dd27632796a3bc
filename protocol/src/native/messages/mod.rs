//! One file per group of operations; each struct is one payload (the bytes after the frame
//! header) with `encode` / `decode` through [`Payload`]. Layouts are the tables in NATIVE.md.

mod handshake;
mod metadata;
mod offsets;
mod produce;
mod subscribe;
mod topics;

pub use handshake::*;
pub use metadata::*;
pub use offsets::*;
pub use produce::*;
pub use subscribe::*;
pub use topics::*;

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{get_string, get_u16, get_u64, put_string, Result};
use super::ErrorCode;

/// A frame payload: encoded into and decoded from the bytes after the frame header.
/// `decode` reads exactly its fields; the frame decoder rejects bytes left over.
pub trait Payload: Sized {
    fn encode(&self, buf: &mut BytesMut);
    fn decode(buf: &mut Bytes) -> Result<Self>;
}

/// Topic ids are the topic's UUID, 16 bytes, as Kafka's metadata v10+ shows them.
pub type TopicId = [u8; 16];

/// A payload with no fields (answers that only say "done").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Empty;

impl Payload for Empty {
    fn encode(&self, _buf: &mut BytesMut) {}
    fn decode(_buf: &mut Bytes) -> Result<Self> {
        Ok(Empty)
    }
}

/// PING: the broker echoes `nonce`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ping {
    pub nonce: u64,
}

impl Payload for Ping {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u64_le(self.nonce);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(Ping {
            nonce: get_u64(buf, "nonce")?,
        })
    }
}

/// ERROR (0x7FFF): the answer to a request that failed as a whole, or (request id 0) a
/// connection-level error sent just before the broker closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorFrame {
    pub code: ErrorCode,
    pub message: String,
}

impl Payload for ErrorFrame {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.code.0);
        put_string(buf, &self.message);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(ErrorFrame {
            code: ErrorCode(get_u16(buf, "error code")?),
            message: get_string(buf, "error message")?,
        })
    }
}

pub(crate) fn get_error_code(buf: &mut Bytes) -> Result<ErrorCode> {
    Ok(ErrorCode(get_u16(buf, "error code")?))
}
