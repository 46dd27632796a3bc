//! Authorized operations reported when a client asks for them (KIP-430). There is no
//! authorizer yet, so every client may do everything a resource supports, and the answer is
//! the set Kafka gives without one. Bits are Kafka's `AclOperation` codes.

/// "Not requested": the value Kafka sends when the client did not ask.
pub const NOT_REQUESTED: i32 = i32::MIN;

const READ: i32 = 1 << 3;
const WRITE: i32 = 1 << 4;
const CREATE: i32 = 1 << 5;
const DELETE: i32 = 1 << 6;
const ALTER: i32 = 1 << 7;
const DESCRIBE: i32 = 1 << 8;
const CLUSTER_ACTION: i32 = 1 << 9;
const DESCRIBE_CONFIGS: i32 = 1 << 10;
const ALTER_CONFIGS: i32 = 1 << 11;
const IDEMPOTENT_WRITE: i32 = 1 << 12;

pub const CLUSTER: i32 = CREATE
    | ALTER
    | DESCRIBE
    | CLUSTER_ACTION
    | DESCRIBE_CONFIGS
    | ALTER_CONFIGS
    | IDEMPOTENT_WRITE;
pub const TOPIC: i32 =
    READ | WRITE | CREATE | DELETE | ALTER | DESCRIBE | DESCRIBE_CONFIGS | ALTER_CONFIGS;
pub const GROUP: i32 = READ | DELETE | DESCRIBE;

/// `ops` when the client asked for them, else [`NOT_REQUESTED`].
pub fn if_requested(requested: bool, ops: i32) -> i32 {
    if requested {
        ops
    } else {
        NOT_REQUESTED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_match_kafka_without_an_authorizer() {
        assert_eq!(CLUSTER, 8096);
        assert_eq!(TOPIC, 3576);
        assert_eq!(GROUP, 328);
    }
}
