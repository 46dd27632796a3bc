//! The client's errors, as an enum a caller can match on.

use std::time::Duration;

use crate::native::ErrorCode;

/// Everything a client call can fail with. Cloneable: one connection failure is reported to
/// every request and subscription that was using the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientError {
    /// The TCP connection could not be made (`kind` is `ConnectionRefused` when nothing
    /// listens at `addr`).
    Connect {
        addr: String,
        kind: std::io::ErrorKind,
        message: String,
    },
    /// The connection broke while the request or subscription was using it. A request may or
    /// may not have taken effect (a produce whose answer was lost may have been appended).
    ConnectionLost(String),
    /// No answer within the configured time.
    Timeout { what: &'static str, after: Duration },
    /// The broker answered with an error code (for a whole request, a partition, or a
    /// subscription the broker ended).
    Broker { code: ErrorCode, message: String },
    /// The broker sent something the protocol does not allow (undecodable frame, wrong
    /// answer type, corrupt batch).
    Protocol(String),
    /// No topic with this name exists.
    UnknownTopic(String),
    /// The caller passed something unusable (a partition out of range, an empty group id).
    InvalidArgument(String),
    /// A batch could not be compressed or decompressed.
    Compression(String),
    /// The producer or consumer was closed.
    Closed,
}

impl ClientError {
    /// Whether trying again (after a backoff, and a metadata refresh for topic errors) can
    /// succeed: connection failures, timeouts and the broker codes NATIVE.md marks retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            ClientError::Connect { .. }
            | ClientError::ConnectionLost(_)
            | ClientError::Timeout { .. } => true,
            ClientError::Broker { code, .. } => code_is_retriable(*code),
            _ => false,
        }
    }

    /// The broker's error code, when the broker reported the error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Broker { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the error is "nothing listens at the address".
    pub fn is_connection_refused(&self) -> bool {
        matches!(self, ClientError::Connect { kind, .. } if *kind == std::io::ErrorKind::ConnectionRefused)
    }

    pub(crate) fn broker(code: ErrorCode, message: impl Into<String>) -> ClientError {
        ClientError::Broker {
            code,
            message: message.into(),
        }
    }
}

/// The retriable column of NATIVE.md's error table.
pub fn code_is_retriable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            | ErrorCode::LEADER_NOT_AVAILABLE
            | ErrorCode::NOT_LEADER_OR_FOLLOWER
            | ErrorCode::REQUEST_TIMED_OUT
            | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            | ErrorCode::COORDINATOR_NOT_AVAILABLE
            | ErrorCode::NOT_COORDINATOR
            | ErrorCode::NOT_ENOUGH_REPLICAS
            | ErrorCode::REBALANCE_IN_PROGRESS
            | ErrorCode::KAFKA_STORAGE_ERROR
            | ErrorCode::UNKNOWN_TOPIC_ID
    )
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect {
                addr,
                kind: std::io::ErrorKind::ConnectionRefused,
                ..
            } => write!(f, "nothing listens on {addr}"),
            ClientError::Connect { addr, message, .. } => {
                write!(f, "cannot connect to {addr}: {message}")
            }
            ClientError::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            ClientError::Timeout { what, after } => {
                write!(f, "{what} timed out after {} ms", after.as_millis())
            }
            ClientError::Broker { code, message } if message.is_empty() => {
                write!(f, "broker error {code}: {}", code.description())
            }
            ClientError::Broker { code, message } => write!(f, "broker error {code}: {message}"),
            ClientError::Protocol(why) => write!(f, "protocol violation: {why}"),
            ClientError::UnknownTopic(name) => write!(f, "unknown topic {name:?}"),
            ClientError::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            ClientError::Compression(why) => write!(f, "compression: {why}"),
            ClientError::Closed => write!(f, "closed"),
        }
    }
}

impl std::error::Error for ClientError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retriable_follows_the_spec_table() {
        assert!(ClientError::broker(ErrorCode::NOT_LEADER_OR_FOLLOWER, "").is_retriable());
        assert!(!ClientError::broker(ErrorCode::TOPIC_ALREADY_EXISTS, "").is_retriable());
        assert!(!ClientError::broker(ErrorCode(0x7FEE), "").is_retriable());
        assert!(ClientError::ConnectionLost("eof".into()).is_retriable());
        let refused = ClientError::Connect {
            addr: "127.0.0.1:1".into(),
            kind: std::io::ErrorKind::ConnectionRefused,
            message: String::new(),
        };
        assert!(refused.is_connection_refused());
        assert_eq!(refused.to_string(), "nothing listens on 127.0.0.1:1");
    }
}
