//! Primitive field codecs: little-endian fixed-width integers, strings (u16 length + UTF-8),
//! byte blobs (u32 length) and array counts (u32). Every reader checks the remaining bytes and
//! the limits before it allocates; blobs are `Bytes` slices of the frame, never copies.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::limits::{ARRAY_LEN_MAX, STRING_BYTES_MAX};

/// Why a frame or payload could not be decoded. The broker answers each with an error frame
/// (`ErrorCode::for_decode_error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The payload ended inside `field`.
    Truncated {
        field: &'static str,
        needed: usize,
        remaining: usize,
    },
    /// A length or count above its limit.
    TooLarge {
        field: &'static str,
        len: u64,
        max: u64,
    },
    /// A string that is not UTF-8.
    InvalidUtf8 { field: &'static str },
    /// A field holding a value the protocol does not define.
    InvalidValue { field: &'static str, value: u64 },
    /// An opcode no table entry has (or one that is not valid in this direction).
    UnknownOpcode(u16),
    /// Bytes left over after the last field.
    TrailingBytes(usize),
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Truncated {
                field,
                needed,
                remaining,
            } => {
                write!(
                    f,
                    "truncated at {field}: needs {needed} bytes, {remaining} left"
                )
            }
            DecodeError::TooLarge { field, len, max } => {
                write!(f, "{field} of {len} exceeds the limit of {max}")
            }
            DecodeError::InvalidUtf8 { field } => write!(f, "{field} is not valid UTF-8"),
            DecodeError::InvalidValue { field, value } => write!(f, "invalid {field}: {value}"),
            DecodeError::UnknownOpcode(op) => write!(f, "unknown opcode 0x{op:04x}"),
            DecodeError::TrailingBytes(n) => write!(f, "{n} unexpected bytes after the payload"),
        }
    }
}

impl std::error::Error for DecodeError {}

pub type Result<T> = std::result::Result<T, DecodeError>;

fn need(buf: &Bytes, field: &'static str, needed: usize) -> Result<()> {
    if buf.remaining() < needed {
        return Err(DecodeError::Truncated {
            field,
            needed,
            remaining: buf.remaining(),
        });
    }
    Ok(())
}

pub fn get_u8(buf: &mut Bytes, field: &'static str) -> Result<u8> {
    need(buf, field, 1)?;
    Ok(buf.get_u8())
}

pub fn get_u16(buf: &mut Bytes, field: &'static str) -> Result<u16> {
    need(buf, field, 2)?;
    Ok(buf.get_u16_le())
}

pub fn get_u32(buf: &mut Bytes, field: &'static str) -> Result<u32> {
    need(buf, field, 4)?;
    Ok(buf.get_u32_le())
}

pub fn get_i32(buf: &mut Bytes, field: &'static str) -> Result<i32> {
    need(buf, field, 4)?;
    Ok(buf.get_i32_le())
}

pub fn get_u64(buf: &mut Bytes, field: &'static str) -> Result<u64> {
    need(buf, field, 8)?;
    Ok(buf.get_u64_le())
}

pub fn get_i64(buf: &mut Bytes, field: &'static str) -> Result<i64> {
    need(buf, field, 8)?;
    Ok(buf.get_i64_le())
}

pub fn get_uuid(buf: &mut Bytes, field: &'static str) -> Result<[u8; 16]> {
    need(buf, field, 16)?;
    let mut id = [0u8; 16];
    buf.copy_to_slice(&mut id);
    Ok(id)
}

/// A boolean: 0 or 1, anything else is invalid.
pub fn get_bool(buf: &mut Bytes, field: &'static str) -> Result<bool> {
    match get_u8(buf, field)? {
        0 => Ok(false),
        1 => Ok(true),
        value => Err(DecodeError::InvalidValue {
            field,
            value: u64::from(value),
        }),
    }
}

/// The 0xFFFF length that marks a null string.
pub const NULL_STRING: u16 = 0xFFFF;

/// A string (never null).
pub fn get_string(buf: &mut Bytes, field: &'static str) -> Result<String> {
    match get_nullable_string(buf, field)? {
        Some(s) => Ok(s),
        None => Err(DecodeError::InvalidValue {
            field,
            value: u64::from(NULL_STRING),
        }),
    }
}

/// A string or null (length 0xFFFF).
pub fn get_nullable_string(buf: &mut Bytes, field: &'static str) -> Result<Option<String>> {
    let len = get_u16(buf, field)?;
    if len == NULL_STRING {
        return Ok(None);
    }
    let len = usize::from(len);
    need(buf, field, len)?;
    let raw = buf.split_to(len);
    match std::str::from_utf8(&raw) {
        Ok(s) => Ok(Some(s.to_owned())),
        Err(_) => Err(DecodeError::InvalidUtf8 { field }),
    }
}

/// A blob: u32 length then the bytes, as a slice of the frame (no copy).
pub fn get_blob(buf: &mut Bytes, field: &'static str, max: u32) -> Result<Bytes> {
    let len = get_u32(buf, field)?;
    if len > max {
        return Err(DecodeError::TooLarge {
            field,
            len: u64::from(len),
            max: u64::from(max),
        });
    }
    let len = len as usize;
    need(buf, field, len)?;
    Ok(buf.split_to(len))
}

/// An array count: at most `ARRAY_LEN_MAX`, and no more elements than the remaining bytes can
/// hold at `element_bytes_min` each, so a `Vec::with_capacity(count)` is bounded by the frame.
pub fn get_count(buf: &mut Bytes, field: &'static str, element_bytes_min: usize) -> Result<usize> {
    let count = get_u32(buf, field)?;
    if count > ARRAY_LEN_MAX {
        return Err(DecodeError::TooLarge {
            field,
            len: u64::from(count),
            max: u64::from(ARRAY_LEN_MAX),
        });
    }
    let count = count as usize;
    let needed = count.saturating_mul(element_bytes_min.max(1));
    need(buf, field, needed)?;
    Ok(count)
}

/// Decodes `count` elements with `decode_one` (after `get_count`).
pub fn get_array<T>(
    buf: &mut Bytes,
    field: &'static str,
    element_bytes_min: usize,
    mut decode_one: impl FnMut(&mut Bytes) -> Result<T>,
) -> Result<Vec<T>> {
    let count = get_count(buf, field, element_bytes_min)?;
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        items.push(decode_one(buf)?);
    }
    Ok(items)
}

pub fn put_string(buf: &mut BytesMut, s: &str) {
    put_nullable_string(buf, Some(s));
}

/// Strings longer than `STRING_BYTES_MAX` are cut at the last char boundary below it (the
/// encoders never produce an invalid frame; callers validate names before encoding).
pub fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    let Some(s) = s else {
        buf.put_u16_le(NULL_STRING);
        return;
    };
    let mut end = s.len().min(STRING_BYTES_MAX);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    buf.put_u16_le(end as u16);
    buf.put_slice(&s.as_bytes()[..end]);
}

pub fn put_blob(buf: &mut BytesMut, blob: &[u8]) {
    buf.put_u32_le(blob.len() as u32);
    buf.put_slice(blob);
}

pub fn put_bool(buf: &mut BytesMut, value: bool) {
    buf.put_u8(u8::from(value));
}

pub fn put_count(buf: &mut BytesMut, count: usize) {
    buf.put_u32_le(count as u32);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_round_trip_and_reject_bad_input() {
        let mut buf = BytesMut::new();
        put_string(&mut buf, "héllo");
        put_nullable_string(&mut buf, None);
        let mut bytes = buf.freeze();
        assert_eq!(get_string(&mut bytes, "a").unwrap(), "héllo");
        assert_eq!(get_nullable_string(&mut bytes, "b").unwrap(), None);

        let mut bad = Bytes::from_static(&[2, 0, 0xff, 0xfe]);
        assert_eq!(
            get_string(&mut bad, "s"),
            Err(DecodeError::InvalidUtf8 { field: "s" })
        );
        let mut short = Bytes::from_static(&[5, 0, b'a']);
        assert!(matches!(
            get_string(&mut short, "s"),
            Err(DecodeError::Truncated { .. })
        ));
        let mut null = Bytes::from_static(&[0xff, 0xff]);
        assert!(matches!(
            get_string(&mut null, "s"),
            Err(DecodeError::InvalidValue { .. })
        ));
    }

    #[test]
    fn counts_are_bounded_by_limit_and_remaining_bytes() {
        let mut huge = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            get_count(&mut huge, "n", 1),
            Err(DecodeError::TooLarge { .. })
        ));
        // 1000 elements of at least 8 bytes claimed, 4 bytes present.
        let mut lying = Bytes::from_static(&[0xe8, 0x03, 0, 0, 1, 2, 3, 4]);
        assert!(matches!(
            get_count(&mut lying, "n", 8),
            Err(DecodeError::Truncated { .. })
        ));
        let mut blob = Bytes::from_static(&[9, 0, 0, 0, 1]);
        assert!(matches!(
            get_blob(&mut blob, "b", 100),
            Err(DecodeError::Truncated { .. })
        ));
        let mut big = Bytes::from_static(&[0, 0, 0, 1]);
        assert!(matches!(
            get_blob(&mut big, "b", 100),
            Err(DecodeError::TooLarge { .. })
        ));
    }
}
