//! Every fixed bound of the native protocol (NATIVE.md, "Limits"). The decoder checks each one
//! before allocating anything sized by the peer.

/// Bytes of the frame header: length u32, opcode u16, request id u32.
pub const FRAME_HEADER_BYTES: usize = 10;
/// Bytes the length field counts at least (opcode and request id).
pub const FRAME_LENGTH_MIN: u32 = 6;
/// The largest frame the protocol allows; a broker enforces its own, smaller limit
/// (`native.max-frame-bytes`, announced in the handshake answer).
pub const FRAME_BYTES_MAX: u32 = 1 << 30;
/// Elements in any one array.
pub const ARRAY_LEN_MAX: u32 = 100_000;
/// Bytes of a string (u16 length; 0xFFFF is reserved for null).
pub const STRING_BYTES_MAX: usize = 0xFFFE;
/// Bytes of authentication data in a handshake.
pub const AUTH_BYTES_MAX: u32 = 64 * 1024;

const _: () = assert!(FRAME_LENGTH_MIN as usize + 4 == FRAME_HEADER_BYTES);
const _: () = assert!(FRAME_BYTES_MAX > AUTH_BYTES_MAX);
