use bytes::{BufMut, Bytes, BytesMut};

use super::{get_error_code, Payload, TopicId};
use crate::native::limits::FRAME_BYTES_MAX;
use crate::native::wire::*;
use crate::native::ErrorCode;

/// Where a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPosition {
    /// The log start offset.
    Earliest,
    /// The high watermark: only batches committed after subscribing.
    Latest,
    /// This offset.
    Offset(i64),
    /// The first offset whose batch has a max timestamp at or after this one (ms since epoch),
    /// as Kafka's ListOffsets; the high watermark when there is none.
    Timestamp(i64),
    /// The group's committed offset for the partition (shared with Kafka groups).
    Committed { group_id: String },
}

/// What to do when the start offset is out of range or the group has no committed offset
/// (Kafka's auto.offset.reset).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Fallback {
    #[default]
    Earliest,
    Latest,
    /// Fail the subscription with OFFSET_OUT_OF_RANGE.
    Error,
}

impl Fallback {
    fn wire(self) -> u8 {
        match self {
            Fallback::Earliest => 0,
            Fallback::Latest => 1,
            Fallback::Error => 2,
        }
    }
}

/// SUBSCRIBE request: one partition per subscription. `credit_bytes` is both the initial credit
/// and the subscription's window (see the flow-control rules in NATIVE.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub topic_id: TopicId,
    pub partition: u32,
    pub start: StartPosition,
    pub fallback: Fallback,
    pub credit_bytes: u32,
}

impl Payload for SubscribeRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_slice(&self.topic_id);
        buf.put_u32_le(self.partition);
        let (kind, value, group) = match &self.start {
            StartPosition::Earliest => (0u8, -1i64, ""),
            StartPosition::Latest => (1, -1, ""),
            StartPosition::Offset(offset) => (2, *offset, ""),
            StartPosition::Timestamp(ts) => (3, *ts, ""),
            StartPosition::Committed { group_id } => (4, -1, group_id.as_str()),
        };
        buf.put_u8(kind);
        buf.put_i64_le(value);
        put_string(buf, group);
        buf.put_u8(self.fallback.wire());
        buf.put_u32_le(self.credit_bytes);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        let topic_id = get_uuid(buf, "topic_id")?;
        let partition = get_u32(buf, "partition")?;
        let kind = get_u8(buf, "start")?;
        let value = get_i64(buf, "start_value")?;
        let group_id = get_string(buf, "group_id")?;
        let start = match kind {
            0 => StartPosition::Earliest,
            1 => StartPosition::Latest,
            2 => StartPosition::Offset(value),
            3 => StartPosition::Timestamp(value),
            4 => StartPosition::Committed { group_id },
            kind => {
                return Err(DecodeError::InvalidValue {
                    field: "start",
                    value: u64::from(kind),
                })
            }
        };
        let fallback = match get_u8(buf, "fallback")? {
            0 => Fallback::Earliest,
            1 => Fallback::Latest,
            2 => Fallback::Error,
            value => {
                return Err(DecodeError::InvalidValue {
                    field: "fallback",
                    value: u64::from(value),
                })
            }
        };
        Ok(SubscribeRequest {
            topic_id,
            partition,
            start,
            fallback,
            credit_bytes: get_u32(buf, "credit_bytes")?,
        })
    }
}

/// SUBSCRIBE answer. Data frames for the subscription follow it, never precede it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeResponse {
    pub subscription_id: u32,
    /// The offset the subscription resolved to; data starts at the batch holding it.
    pub start_offset: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

impl Payload for SubscribeResponse {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.subscription_id);
        buf.put_i64_le(self.start_offset);
        buf.put_i64_le(self.log_start_offset);
        buf.put_i64_le(self.high_watermark);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(SubscribeResponse {
            subscription_id: get_u32(buf, "subscription_id")?,
            start_offset: get_i64(buf, "start_offset")?,
            log_start_offset: get_i64(buf, "log_start_offset")?,
            high_watermark: get_i64(buf, "high_watermark")?,
        })
    }
}

/// GRANT_CREDIT: adds bytes to a subscription's credit. Never answered on success.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantCreditRequest {
    pub subscription_id: u32,
    pub credit_bytes: u32,
}

impl Payload for GrantCreditRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.subscription_id);
        buf.put_u32_le(self.credit_bytes);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(GrantCreditRequest {
            subscription_id: get_u32(buf, "subscription_id")?,
            credit_bytes: get_u32(buf, "credit_bytes")?,
        })
    }
}

/// UNSUBSCRIBE request; answered with an empty payload once no more data frames will come.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnsubscribeRequest {
    pub subscription_id: u32,
}

impl Payload for UnsubscribeRequest {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.subscription_id);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(UnsubscribeRequest {
            subscription_id: get_u32(buf, "subscription_id")?,
        })
    }
}

/// Bytes of a SUBSCRIPTION_DATA payload before the records.
pub const SUBSCRIPTION_DATA_FIXED_BYTES: usize = 4 + 8 + 8 + 4;

/// SUBSCRIPTION_DATA (pushed, request id 0): whole committed batches of one subscription.
/// `records` counts against the credit; `next_offset` is where the next frame will start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionData {
    pub subscription_id: u32,
    pub high_watermark: i64,
    pub next_offset: i64,
    pub records: Bytes,
}

impl SubscriptionData {
    /// Writes the fields before the records, for a sender that writes the records themselves
    /// as separate buffers (a vectored write, no copy).
    pub fn encode_fixed(
        buf: &mut BytesMut,
        subscription_id: u32,
        high_watermark: i64,
        next_offset: i64,
        records_len: u32,
    ) {
        buf.put_u32_le(subscription_id);
        buf.put_i64_le(high_watermark);
        buf.put_i64_le(next_offset);
        buf.put_u32_le(records_len);
    }
}

impl Payload for SubscriptionData {
    fn encode(&self, buf: &mut BytesMut) {
        Self::encode_fixed(
            buf,
            self.subscription_id,
            self.high_watermark,
            self.next_offset,
            self.records.len() as u32,
        );
        buf.put_slice(&self.records);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(SubscriptionData {
            subscription_id: get_u32(buf, "subscription_id")?,
            high_watermark: get_i64(buf, "high_watermark")?,
            next_offset: get_i64(buf, "next_offset")?,
            records: get_blob(buf, "records", FRAME_BYTES_MAX)?,
        })
    }
}

/// SUBSCRIPTION_END (pushed, request id 0): the broker ended the subscription; no data frame
/// for it follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionEnd {
    pub subscription_id: u32,
    pub error: ErrorCode,
    pub message: String,
}

impl Payload for SubscriptionEnd {
    fn encode(&self, buf: &mut BytesMut) {
        buf.put_u32_le(self.subscription_id);
        buf.put_u16_le(self.error.0);
        put_string(buf, &self.message);
    }
    fn decode(buf: &mut Bytes) -> Result<Self> {
        Ok(SubscriptionEnd {
            subscription_id: get_u32(buf, "subscription_id")?,
            error: get_error_code(buf)?,
            message: get_string(buf, "message")?,
        })
    }
}
