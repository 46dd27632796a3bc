//! Error codes (NATIVE.md, "Error codes"). A code is a u16 on the wire. Where Kafka has the
//! error, the native code is Kafka's code reinterpreted as u16 (so UNKNOWN_SERVER_ERROR, Kafka's
//! -1, is 0xFFFF) and a broker maps between them with `from_kafka` / `to_kafka`. Errors only the
//! native protocol has live at 0x7F00 and above, far from Kafka's range.

/// A native error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

macro_rules! codes {
    ($($name:ident = $value:expr, $text:literal;)*) => {
        impl ErrorCode {
            $(pub const $name: ErrorCode = ErrorCode($value as u16);)*

            /// The code's name as the spec writes it, or None for a code this version does not
            /// list (a newer broker's; clients treat those as non-retriable).
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(ErrorCode::$name => Some(stringify!($name)),)*
                    _ => None,
                }
            }

            /// One line saying what the code means.
            pub fn description(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $text,)*
                    _ => "unknown error code",
                }
            }
        }

        /// Every code this version defines, in table order (the spec's table is this list).
        pub const ALL_CODES: &[ErrorCode] = &[$(ErrorCode::$name),*];
    };
}

codes! {
    NONE = 0, "no error";
    UNKNOWN_SERVER_ERROR = -1i16, "unexpected broker error (logged on the broker)";
    OFFSET_OUT_OF_RANGE = 1, "offset below the log start or above the high watermark";
    CORRUPT_MESSAGE = 2, "a record batch failed its CRC or header checks";
    UNKNOWN_TOPIC_OR_PARTITION = 3, "no such topic or partition";
    LEADER_NOT_AVAILABLE = 5, "the partition has no leader right now (retriable)";
    NOT_LEADER_OR_FOLLOWER = 6, "this broker does not lead the partition; refresh metadata";
    REQUEST_TIMED_OUT = 7, "the request's timeout passed before it completed";
    MESSAGE_TOO_LARGE = 10, "a batch exceeds the topic's max.message.bytes";
    OFFSET_METADATA_TOO_LARGE = 12, "commit metadata above offset.metadata.max.bytes";
    COORDINATOR_LOAD_IN_PROGRESS = 14, "the group coordinator is loading (retriable)";
    COORDINATOR_NOT_AVAILABLE = 15, "the group coordinator is not available (retriable)";
    NOT_COORDINATOR = 16, "this broker is not the group's coordinator";
    INVALID_TOPIC_EXCEPTION = 17, "invalid topic name, or a write to an internal topic";
    RECORD_LIST_TOO_LARGE = 18, "the records of one partition exceed the limit";
    NOT_ENOUGH_REPLICAS = 19, "fewer in-sync replicas than min.insync.replicas";
    INVALID_REQUIRED_ACKS = 21, "acks is not 0, 1 or 2";
    ILLEGAL_GENERATION = 22, "the group generation does not match";
    INVALID_GROUP_ID = 24, "the group id is empty or invalid";
    UNKNOWN_MEMBER_ID = 25, "the member id is not in the group";
    REBALANCE_IN_PROGRESS = 27, "the group is rebalancing";
    INVALID_COMMIT_OFFSET_SIZE = 28, "the commit metadata is too large";
    INVALID_TIMESTAMP = 32, "a timestamp is out of the accepted range";
    UNSUPPORTED_SASL_MECHANISM = 33, "the authentication mechanism is not supported";
    UNSUPPORTED_VERSION = 35, "no protocol version in common";
    TOPIC_ALREADY_EXISTS = 36, "a topic with that name exists";
    INVALID_PARTITIONS = 37, "invalid partition count";
    INVALID_REPLICATION_FACTOR = 38, "invalid replication factor";
    INVALID_CONFIG = 40, "invalid topic config";
    INVALID_REQUEST = 42, "the request is malformed (the message says where)";
    UNSUPPORTED_FOR_MESSAGE_FORMAT = 43, "only RecordBatch v2 (magic 2) is accepted";
    POLICY_VIOLATION = 44, "the broker's policy rejects the request";
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45, "idempotent producer sequence gap";
    DUPLICATE_SEQUENCE_NUMBER = 46, "idempotent producer duplicate sequence";
    INVALID_PRODUCER_EPOCH = 47, "the producer was fenced";
    KAFKA_STORAGE_ERROR = 56, "the broker's storage failed for this partition";
    GROUP_ID_NOT_FOUND = 69, "no such group";
    UNSUPPORTED_COMPRESSION_TYPE = 76, "unknown compression codec in a batch";
    INVALID_RECORD = 87, "a record in a batch is invalid";
    UNKNOWN_TOPIC_ID = 100, "no topic has that id (deleted, or never existed)";
    HANDSHAKE_REQUIRED = 0x7F01, "the first request on a connection must be HANDSHAKE";
    UNKNOWN_OPCODE = 0x7F02, "the opcode is not defined in the negotiated version";
    UNKNOWN_SUBSCRIPTION = 0x7F03, "no subscription with that id on this connection";
    FRAME_TOO_LARGE = 0x7F04, "the frame length exceeds the broker's max frame size";
    TOO_MANY_SUBSCRIPTIONS = 0x7F05, "the connection holds the maximum number of subscriptions";
}

impl ErrorCode {
    /// The native code for a Kafka error code (every Kafka code maps, listed or not).
    pub fn from_kafka(code: i16) -> ErrorCode {
        ErrorCode(code as u16)
    }

    /// The Kafka code for this code, or None for native-only codes.
    pub fn to_kafka(self) -> Option<i16> {
        if self.0 >= 0x7F00 && self.0 != 0xFFFF {
            return None;
        }
        Some(self.0 as i16)
    }

    pub fn is_ok(self) -> bool {
        self == ErrorCode::NONE
    }

    /// The code a broker answers a decode failure with.
    pub fn for_decode_error(error: &super::DecodeError) -> ErrorCode {
        match error {
            super::DecodeError::UnknownOpcode(_) => ErrorCode::UNKNOWN_OPCODE,
            _ => ErrorCode::INVALID_REQUEST,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "error {}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_codes_map_both_ways() {
        assert_eq!(ErrorCode::from_kafka(-1), ErrorCode::UNKNOWN_SERVER_ERROR);
        assert_eq!(ErrorCode::UNKNOWN_SERVER_ERROR.to_kafka(), Some(-1));
        assert_eq!(ErrorCode::from_kafka(6), ErrorCode::NOT_LEADER_OR_FOLLOWER);
        assert_eq!(ErrorCode::HANDSHAKE_REQUIRED.to_kafka(), None);
        let mut seen = std::collections::HashSet::new();
        assert!(
            ALL_CODES.iter().all(|c| seen.insert(c.0)),
            "codes are unique"
        );
    }
}
