//! The four Kafka record-batch codecs, for the records section of a RecordBatch v2 (the bytes
//! after the 61-byte header). Formats are the ones Kafka clients put on the wire:
//!
//! - gzip: a gzip member (RFC 1952).
//! - snappy: written as a raw snappy block, as librdkafka writes it; read either raw or in the
//!   xerial `SnappyOutputStream` framing the Java client writes (`\x82SNAPPY\0` header, then
//!   big-endian length-prefixed raw blocks).
//! - lz4: an LZ4 frame (Kafka's `KafkaLZ4BlockOutputStream` for magic 1+): 64 KiB independent
//!   blocks, no content size, no checksums besides the header's.
//! - zstd: a zstd frame with its content size (librdkafka sizes its output from it).
//!
//! Decompression is bounded: a batch may not inflate past the caller's limit, so a small
//! hostile batch cannot exhaust memory.

use std::io::{Read, Write};

/// A batch's compression, attribute bits 0-2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, in attribute order.
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    /// The codec of a batch's attributes, or None for the undefined values 5-7.
    pub fn from_attributes(attributes: i16) -> Option<Compression> {
        match attributes & 0x07 {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The attribute bits for this codec.
    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    /// Kafka's name (`compression.type`).
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Compression::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown compression {s:?}: none, gzip, snappy, lz4 or zstd"))
    }
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why compressing or decompressing failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressionError(pub String);

impl std::fmt::Display for CompressionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CompressionError {}

fn fail<E: std::fmt::Display>(
    codec: Compression,
    what: &str,
) -> impl FnOnce(E) -> CompressionError + '_ {
    move |e| CompressionError(format!("{codec} {what}: {e}"))
}

/// Compresses `data` with `codec` (None returns a copy).
pub fn compress(codec: Compression, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Compression::None => Ok(data.to_vec()),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len() / 2 + 64),
                flate2::Compression::default(),
            );
            encoder
                .write_all(data)
                .map_err(fail(codec, "compression"))?;
            encoder.finish().map_err(fail(codec, "compression"))
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(data)
            .map_err(fail(codec, "compression")),
        Compression::Lz4 => {
            let info = lz4_flex::frame::FrameInfo::new()
                .block_size(lz4_flex::frame::BlockSize::Max64KB)
                .block_mode(lz4_flex::frame::BlockMode::Independent);
            let mut encoder = lz4_flex::frame::FrameEncoder::with_frame_info(
                info,
                Vec::with_capacity(data.len() / 2 + 64),
            );
            encoder
                .write_all(data)
                .map_err(fail(codec, "compression"))?;
            encoder.finish().map_err(fail(codec, "compression"))
        }
        Compression::Zstd => {
            // The bulk API writes the content size into the frame header.
            zstd::bulk::compress(data, zstd::DEFAULT_COMPRESSION_LEVEL)
                .map_err(fail(codec, "compression"))
        }
    }
}

/// Decompresses `data`, failing when the output would exceed `max_bytes`.
pub fn decompress(
    codec: Compression,
    data: &[u8],
    max_bytes: usize,
) -> Result<Vec<u8>, CompressionError> {
    let too_large = || {
        CompressionError(format!(
            "{codec} batch inflates past the limit of {max_bytes} bytes"
        ))
    };
    match codec {
        Compression::None => {
            if data.len() > max_bytes {
                return Err(too_large());
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => {
            read_bounded(flate2::read::MultiGzDecoder::new(data), codec, max_bytes)
        }
        Compression::Lz4 => {
            read_bounded(lz4_flex::frame::FrameDecoder::new(data), codec, max_bytes)
        }
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(data).map_err(fail(codec, "decompression"))?;
            read_bounded(decoder, codec, max_bytes)
        }
        Compression::Snappy => snappy_decompress(data, max_bytes),
    }
}

/// Reads a decoder to its end, at most `max_bytes` (one more byte proves it is too large).
fn read_bounded(
    reader: impl Read,
    codec: Compression,
    max_bytes: usize,
) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    reader
        .take(max_bytes as u64 + 1)
        .read_to_end(&mut out)
        .map_err(fail(codec, "decompression"))?;
    if out.len() > max_bytes {
        return Err(CompressionError(format!(
            "{codec} batch inflates past the limit of {max_bytes} bytes"
        )));
    }
    Ok(out)
}

/// The xerial snappy-java stream header: magic, then version and compatible version (i32 BE).
const XERIAL_MAGIC: &[u8; 8] = b"\x82SNAPPY\0";
const XERIAL_HEADER_BYTES: usize = 16;

fn snappy_decompress(data: &[u8], max_bytes: usize) -> Result<Vec<u8>, CompressionError> {
    if data.len() >= XERIAL_HEADER_BYTES && &data[..8] == XERIAL_MAGIC {
        let mut out = Vec::new();
        let mut rest = &data[XERIAL_HEADER_BYTES..];
        while !rest.is_empty() {
            if rest.len() < 4 {
                return Err(CompressionError(
                    "snappy: truncated xerial block length".into(),
                ));
            }
            let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            rest = &rest[4..];
            if len > rest.len() {
                return Err(CompressionError("snappy: truncated xerial block".into()));
            }
            snappy_block(&rest[..len], max_bytes - out.len(), &mut out)?;
            rest = &rest[len..];
        }
        return Ok(out);
    }
    let mut out = Vec::new();
    snappy_block(data, max_bytes, &mut out)?;
    Ok(out)
}

/// Appends one raw snappy block to `out`, checking its declared length against `room` first.
fn snappy_block(block: &[u8], room: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let len = snap::raw::decompress_len(block)
        .map_err(|e| CompressionError(format!("snappy decompression: {e}")))?;
    if len > room {
        return Err(CompressionError(format!(
            "snappy batch inflates past the limit ({len} bytes in one block, {room} left)"
        )));
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| CompressionError(format!("snappy decompression: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_codec_round_trips() {
        let data = sample();
        for codec in Compression::ALL {
            let packed = compress(codec, &data).unwrap();
            if codec != Compression::None {
                assert!(packed.len() < data.len(), "{codec} compresses");
            }
            assert_eq!(
                decompress(codec, &packed, data.len()).unwrap(),
                data,
                "{codec}"
            );
            assert_eq!(
                Compression::from_attributes(codec.attribute_bits()),
                Some(codec)
            );
            assert_eq!(codec.name().parse::<Compression>().unwrap(), codec);
        }
        assert_eq!(Compression::from_attributes(5), None);
    }

    #[test]
    fn output_is_bounded() {
        let data = vec![0u8; 1 << 20];
        for codec in Compression::ALL {
            let packed = compress(codec, &data).unwrap();
            let err = decompress(codec, &packed, 1000).unwrap_err();
            assert!(err.0.contains("limit"), "{codec}: {err}");
        }
    }

    #[test]
    fn garbage_and_truncation_are_errors_not_panics() {
        let data = sample();
        for codec in Compression::ALL {
            let packed = compress(codec, &data).unwrap();
            for cut in [0, 1, 7, 16, packed.len() / 2, packed.len() - 1] {
                let _ = decompress(codec, &packed[..cut], data.len());
            }
            let mut flipped = packed.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0xff;
            let _ = decompress(codec, &flipped, data.len());
        }
        assert!(decompress(
            Compression::Snappy,
            b"\x82SNAPPY\0\0\0\0\x01\0\0\0\x01\0\0\0\x09",
            100
        )
        .is_err());
    }

    /// snappy-java (the Java client) frames blocks; Kafka consumers must read both framings.
    #[test]
    fn reads_xerial_framed_snappy() {
        let data = sample();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1i32.to_be_bytes());
        framed.extend_from_slice(&1i32.to_be_bytes());
        for chunk in data.chunks(32 * 1024) {
            let block = snap::raw::Encoder::new().compress_vec(chunk).unwrap();
            framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
            framed.extend_from_slice(&block);
        }
        assert_eq!(
            decompress(Compression::Snappy, &framed, data.len()).unwrap(),
            data
        );
        assert!(decompress(Compression::Snappy, &framed, data.len() - 1).is_err());
    }
}
