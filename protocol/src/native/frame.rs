//! Framing: `u32 length | u16 opcode | u32 request id | payload`, little-endian. `length`
//! counts the bytes after itself (6 + payload). A reader checks the length against its limit
//! before reading or allocating the rest.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::limits::{FRAME_BYTES_MAX, FRAME_HEADER_BYTES, FRAME_LENGTH_MIN};
use super::messages::Payload;
use super::wire::{DecodeError, Result};

/// The header of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes after the length field: opcode, request id and payload.
    pub length: u32,
    pub opcode: u16,
    pub request_id: u32,
}

impl FrameHeader {
    pub fn payload_len(&self) -> usize {
        (self.length - FRAME_LENGTH_MIN) as usize
    }

    /// Decodes a header from its 10 bytes, checking the length against `frame_bytes_max`.
    pub fn decode(bytes: &[u8; FRAME_HEADER_BYTES], frame_bytes_max: u32) -> Result<FrameHeader> {
        let length = check_length(bytes[..4].try_into().unwrap_or([0; 4]), frame_bytes_max)?;
        Ok(FrameHeader {
            length,
            opcode: u16::from_le_bytes([bytes[4], bytes[5]]),
            request_id: u32::from_le_bytes([bytes[6], bytes[7], bytes[8], bytes[9]]),
        })
    }

    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.length);
        buf.put_u16_le(self.opcode);
        buf.put_u32_le(self.request_id);
    }
}

/// Checks a frame's length prefix: at least 6, at most `frame_bytes_max` (itself capped by the
/// protocol's `FRAME_BYTES_MAX`). This is the check a reader makes before allocating.
pub fn check_length(prefix: [u8; 4], frame_bytes_max: u32) -> Result<u32> {
    let length = u32::from_le_bytes(prefix);
    let max = frame_bytes_max.min(FRAME_BYTES_MAX);
    if length > max {
        return Err(DecodeError::TooLarge {
            field: "frame length",
            len: u64::from(length),
            max: u64::from(max),
        });
    }
    if length < FRAME_LENGTH_MIN {
        return Err(DecodeError::InvalidValue {
            field: "frame length",
            value: u64::from(length),
        });
    }
    Ok(length)
}

/// Splits one whole frame off the front of `buf`, or returns None when more bytes are needed
/// ("incomplete" is not an error). A bad length is an error: the stream cannot be resynchronised.
pub fn split_frame(
    buf: &mut BytesMut,
    frame_bytes_max: u32,
) -> Result<Option<(FrameHeader, Bytes)>> {
    if buf.len() < FRAME_HEADER_BYTES {
        if buf.len() >= 4 {
            check_length([buf[0], buf[1], buf[2], buf[3]], frame_bytes_max)?;
        }
        return Ok(None);
    }
    let mut head = [0u8; FRAME_HEADER_BYTES];
    head.copy_from_slice(&buf[..FRAME_HEADER_BYTES]);
    let header = FrameHeader::decode(&head, frame_bytes_max)?;
    let total = 4 + header.length as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    frame.advance(FRAME_HEADER_BYTES);
    Ok(Some((header, frame.freeze())))
}

/// Appends one frame: header, then the payload, with the length patched in afterwards.
pub fn encode_frame(buf: &mut BytesMut, opcode: u16, request_id: u32, payload: &impl Payload) {
    let start = buf.len();
    FrameHeader {
        length: 0,
        opcode,
        request_id,
    }
    .encode(buf);
    payload.encode(buf);
    let length = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&length.to_le_bytes());
}

/// Writes the header of a frame whose payload is `payload_len` bytes (for senders that write
/// the payload as separate buffers).
pub fn encode_header(buf: &mut BytesMut, opcode: u16, request_id: u32, payload_len: usize) {
    let length = FRAME_LENGTH_MIN as usize + payload_len;
    FrameHeader {
        length: length as u32,
        opcode,
        request_id,
    }
    .encode(buf);
}

/// Decodes a whole payload with `T`, rejecting bytes left over.
pub fn decode_payload<T: Payload>(mut payload: Bytes) -> Result<T> {
    let value = T::decode(&mut payload)?;
    if payload.has_remaining() {
        return Err(DecodeError::TrailingBytes(payload.remaining()));
    }
    Ok(value)
}
