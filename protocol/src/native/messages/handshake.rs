use bytes::{BufMut, Bytes, BytesMut};

use super::Payload;
use crate::native::limits::AUTH_BYTES_MAX;
use crate::native::wire::*;

/// HANDSHAKE request: the version range the client speaks and (reserved for security) an
/// authentication mechanism and its data. Version 1 accepts only the empty mechanism.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeRequest {
    pub version_min: u16,
    pub version_max: u16,
    pub client_id: String,
    pub auth_mechanism: String,
    pub auth_data: Bytes,
}

impl Payload for HandshakeRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.version_min);
        buf.put_u16_le(self.version_max);
        put_string(buf, &self.client_id);
        put_string(buf, &self.auth_mechanism);
        put_blob(buf, &self.auth_data);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(HandshakeRequest {
            version_min: get_u16(buf, "version_min")?,
            version_max: get_u16(buf, "version_max")?,
            client_id: get_string(buf, "client_id")?,
            auth_mechanism: get_string(buf, "auth_mechanism")?,
            auth_data: get_blob(buf, "auth_data", AUTH_BYTES_MAX)?,
        })
    }
}

/// HANDSHAKE answer: the chosen version and the broker's limits for this connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HandshakeResponse {
    pub version: u16,
    pub node_id: i32,
    pub frame_bytes_max: u32,
    pub subscriptions_max: u32,
    pub server: String,
    pub auth_data: Bytes,
}

impl Payload for HandshakeResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16_le(self.version);
        buf.put_i32_le(self.node_id);
        buf.put_u32_le(self.frame_bytes_max);
        buf.put_u32_le(self.subscriptions_max);
        put_string(buf, &self.server);
        put_blob(buf, &self.auth_data);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(HandshakeResponse {
            version: get_u16(buf, "version")?,
            node_id: get_i32(buf, "node_id")?,
            frame_bytes_max: get_u32(buf, "frame_bytes_max")?,
            subscriptions_max: get_u32(buf, "subscriptions_max")?,
            server: get_string(buf, "server")?,
            auth_data: get_blob(buf, "auth_data", AUTH_BYTES_MAX)?,
        })
    }
}
