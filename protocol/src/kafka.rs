//! Kafka protocol glue: the message types and codecs of `kafka-protocol`, plus request framing
//! helpers shared by the broker and the fuzzers.

pub use kafka_protocol::*;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader};
use kafka_protocol::protocol::Decodable;

/// Decodes the request header at the start of `frame` (the bytes after the length prefix) and
/// leaves `frame` at the start of the body. Unknown API keys and malformed headers are errors,
/// never panics.
pub fn decode_request_header(frame: &mut Bytes) -> Result<(ApiKey, RequestHeader), String> {
    if frame.len() < 4 {
        return Err(format!(
            "request of {} bytes is shorter than a header",
            frame.len()
        ));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let key = ApiKey::try_from(api_key).map_err(|_| format!("unknown API key {api_key}"))?;
    let header_version = key.request_header_version(api_version);
    let header = RequestHeader::decode(frame, header_version)
        .map_err(|e| format!("malformed {key:?} v{api_version} request header: {e}"))?;
    Ok((key, header))
}

/// Decodes a request body of type `T` at `version`.
pub fn decode_body<T: Decodable>(key: ApiKey, mut body: Bytes, version: i16) -> Result<T, String> {
    T::decode(&mut body, version).map_err(|e| format!("malformed {key:?} v{version} request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_unknown_headers_are_errors() {
        assert!(decode_request_header(&mut Bytes::from_static(&[0, 3])).is_err());
        assert!(
            decode_request_header(&mut Bytes::from_static(&[0x7f, 0, 0, 1, 0, 0, 0, 1])).is_err()
        );
        let mut ok = Bytes::from_static(&[0, 18, 0, 0, 0, 0, 0, 7, 0, 0]);
        let (key, header) = decode_request_header(&mut ok).unwrap();
        assert_eq!((key, header.correlation_id), (ApiKey::ApiVersions, 7));
    }
}
