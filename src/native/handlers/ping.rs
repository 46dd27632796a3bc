//! PING: echoes the nonce (allowed before the handshake; keeps a quiet connection open).

use protocol::native::Ping;

pub fn handle(request: Ping) -> Ping {
    request
}
