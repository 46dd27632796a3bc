//! HANDSHAKE: picks the highest version both sides speak and announces this connection's
//! limits. Authentication is reserved: only the empty mechanism is accepted in version 1.

use protocol::native::{ErrorCode, HandshakeRequest, HandshakeResponse, VERSION_MAX, VERSION_MIN};

use super::{Ctx, NativeError};

pub fn handle(ctx: &Ctx<'_>, request: HandshakeRequest) -> Result<HandshakeResponse, NativeError> {
    if ctx.conn.is_handshaken() {
        return Err(NativeError::new(
            ErrorCode::INVALID_REQUEST,
            "the connection has already completed its handshake",
        ));
    }
    let low = request.version_min.max(VERSION_MIN);
    let high = request.version_max.min(VERSION_MAX);
    if request.version_min > request.version_max || low > high {
        return Err(NativeError::new(
            ErrorCode::UNSUPPORTED_VERSION,
            format!(
                "client speaks versions {}..={}, this broker {VERSION_MIN}..={VERSION_MAX}",
                request.version_min, request.version_max
            ),
        ));
    }
    if !request.auth_mechanism.is_empty() {
        return Err(NativeError::new(
            ErrorCode::UNSUPPORTED_SASL_MECHANISM,
            format!(
                "authentication mechanism '{}' is not supported (version 1 has none)",
                request.auth_mechanism
            ),
        ));
    }
    ctx.conn.set_handshaken();
    tracing::debug!(peer = %ctx.conn.peer, client = %request.client_id, version = high, "native handshake");
    Ok(HandshakeResponse {
        version: high,
        node_id: ctx.shard.ctx.config.node_id,
        frame_bytes_max: ctx.conn.frame_bytes_max,
        subscriptions_max: ctx.conn.subscriptions_max,
        server: format!("sluice {}", env!("CARGO_PKG_VERSION")),
        auth_data: bytes::Bytes::new(),
    })
}
