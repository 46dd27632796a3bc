//! The Sluice native protocol, version 1: the codec (no I/O). The specification is
//! `protocol/NATIVE.md`; this module follows it table for table.
//!
//! Layout:
//! - [`limits`]: every fixed bound.
//! - [`wire`]: primitive fields and [`DecodeError`].
//! - [`frame`]: the frame header, splitting frames off a buffer, writing frames.
//! - [`messages`]: one struct per payload.
//! - [`split_batches`]: the batches of a `records` field.
//! - this file: the opcode table ([`OPS`]), and [`Request`] / [`ServerFrame`], the two
//!   directions' decoders built from it.

mod batches;
mod error_code;
pub mod frame;
pub mod limits;
pub mod messages;
pub mod wire;

pub use batches::split_batches;
pub use error_code::{ErrorCode, ALL_CODES};
pub use frame::{decode_payload, encode_frame, encode_header, split_frame, FrameHeader};
pub use messages::*;
pub use wire::DecodeError;

use bytes::{Bytes, BytesMut};

/// The protocol versions this codec speaks.
pub const VERSION_MIN: u16 = 1;
pub const VERSION_MAX: u16 = 1;

/// A response's opcode is its request's with this bit set.
pub const RESPONSE_BIT: u16 = 0x8000;
/// ERROR frame opcode (an answer to any request, or request id 0 for the connection).
pub const OP_ERROR: u16 = 0x7FFF;
/// Pushed frames (request id 0).
pub const OP_SUBSCRIPTION_DATA: u16 = 0x4001;
pub const OP_SUBSCRIPTION_END: u16 = 0x4002;

/// One row of the opcode table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpInfo {
    pub opcode: Opcode,
    pub name: &'static str,
    /// Whether a success gets an answer frame (GRANT_CREDIT never does; PRODUCE with acks none
    /// does not either, decided per request).
    pub answered: bool,
    /// Whether the op is allowed before the handshake.
    pub before_handshake: bool,
}

macro_rules! ops {
    ($($code:literal => $name:ident, $wire_name:literal, $req:ty, $resp:ty, answered: $answered:literal, before_handshake: $pre:literal;)*) => {
        /// Request opcodes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum Opcode { $($name = $code,)* }

        impl Opcode {
            pub fn from_wire(code: u16) -> Option<Opcode> {
                match code { $($code => Some(Opcode::$name),)* _ => None }
            }
            pub fn info(self) -> &'static OpInfo {
                match self { $(Opcode::$name => &OPS[Opcode::$name.index()],)* }
            }
            fn index(self) -> usize {
                let mut i = 0;
                while i < OPS.len() {
                    if OPS[i].opcode as u16 == self as u16 { return i; }
                    i += 1;
                }
                0
            }
        }

        /// Every request op of version 1: the table the spec's "Operations" section lists.
        pub const OPS: &[OpInfo] = &[
            $(OpInfo { opcode: Opcode::$name, name: $wire_name, answered: $answered, before_handshake: $pre },)*
        ];

        /// A decoded request.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Request { $($name($req),)* }

        /// A decoded answer (opcode = request opcode | RESPONSE_BIT).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Response { $($name($resp),)* }

        impl Request {
            pub fn opcode(&self) -> Opcode {
                match self { $(Request::$name(_) => Opcode::$name,)* }
            }
            /// Decodes a request payload for `opcode`.
            pub fn decode(opcode: u16, payload: Bytes) -> Result<Request, DecodeError> {
                match Opcode::from_wire(opcode) {
                    $(Some(Opcode::$name) => Ok(Request::$name(decode_payload(payload)?)),)*
                    None => Err(DecodeError::UnknownOpcode(opcode)),
                }
            }
            /// Appends the whole frame.
            pub fn encode_frame(&self, request_id: u32, buf: &mut BytesMut) {
                match self { $(Request::$name(p) => encode_frame(buf, $code, request_id, p),)* }
            }
        }

        impl Response {
            pub fn opcode(&self) -> Opcode {
                match self { $(Response::$name(_) => Opcode::$name,)* }
            }
            /// Decodes an answer payload for the request opcode `opcode`.
            pub fn decode(opcode: Opcode, payload: Bytes) -> Result<Response, DecodeError> {
                match opcode { $(Opcode::$name => Ok(Response::$name(decode_payload(payload)?)),)* }
            }
            /// Appends the whole frame.
            pub fn encode_frame(&self, request_id: u32, buf: &mut BytesMut) {
                match self { $(Response::$name(p) => encode_frame(buf, $code | RESPONSE_BIT, request_id, p),)* }
            }
        }
    };
}

ops! {
    0x0001 => Handshake, "HANDSHAKE", HandshakeRequest, HandshakeResponse, answered: true, before_handshake: true;
    0x0002 => Ping, "PING", Ping, Ping, answered: true, before_handshake: true;
    0x0003 => Metadata, "METADATA", MetadataRequest, MetadataResponse, answered: true, before_handshake: false;
    0x0004 => CreateTopic, "CREATE_TOPIC", CreateTopicRequest, CreateTopicResponse, answered: true, before_handshake: false;
    0x0005 => DeleteTopic, "DELETE_TOPIC", DeleteTopicRequest, DeleteTopicResponse, answered: true, before_handshake: false;
    0x0006 => DescribeTopic, "DESCRIBE_TOPIC", DescribeTopicRequest, DescribeTopicResponse, answered: true, before_handshake: false;
    0x0010 => Produce, "PRODUCE", ProduceRequest, ProduceResponse, answered: true, before_handshake: false;
    0x0020 => Subscribe, "SUBSCRIBE", SubscribeRequest, SubscribeResponse, answered: true, before_handshake: false;
    0x0021 => GrantCredit, "GRANT_CREDIT", GrantCreditRequest, Empty, answered: false, before_handshake: false;
    0x0022 => Unsubscribe, "UNSUBSCRIBE", UnsubscribeRequest, Empty, answered: true, before_handshake: false;
    0x0030 => CommitOffsets, "COMMIT_OFFSETS", CommitOffsetsRequest, CommitOffsetsResponse, answered: true, before_handshake: false;
    0x0031 => FetchOffsets, "FETCH_OFFSETS", FetchOffsetsRequest, FetchOffsetsResponse, answered: true, before_handshake: false;
}

/// A frame from the broker, as a client decodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerFrame {
    Response { request_id: u32, response: Response },
    Error { request_id: u32, error: ErrorFrame },
    Data(SubscriptionData),
    End(SubscriptionEnd),
}

impl ServerFrame {
    /// Decodes a frame the broker sent (header already split off by [`split_frame`]).
    pub fn decode(header: FrameHeader, payload: Bytes) -> Result<ServerFrame, DecodeError> {
        match header.opcode {
            OP_ERROR => Ok(ServerFrame::Error {
                request_id: header.request_id,
                error: decode_payload(payload)?,
            }),
            OP_SUBSCRIPTION_DATA => Ok(ServerFrame::Data(decode_payload(payload)?)),
            OP_SUBSCRIPTION_END => Ok(ServerFrame::End(decode_payload(payload)?)),
            code if code & RESPONSE_BIT != 0 => {
                let opcode = Opcode::from_wire(code & !RESPONSE_BIT)
                    .ok_or(DecodeError::UnknownOpcode(code))?;
                Ok(ServerFrame::Response {
                    request_id: header.request_id,
                    response: Response::decode(opcode, payload)?,
                })
            }
            code => Err(DecodeError::UnknownOpcode(code)),
        }
    }

    /// Appends the whole frame.
    pub fn encode_frame(&self, buf: &mut BytesMut) {
        match self {
            ServerFrame::Response {
                request_id,
                response,
            } => response.encode_frame(*request_id, buf),
            ServerFrame::Error { request_id, error } => {
                encode_frame(buf, OP_ERROR, *request_id, error)
            }
            ServerFrame::Data(data) => encode_frame(buf, OP_SUBSCRIPTION_DATA, 0, data),
            ServerFrame::End(end) => encode_frame(buf, OP_SUBSCRIPTION_END, 0, end),
        }
    }
}

#[cfg(test)]
mod tests;
