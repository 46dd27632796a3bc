//! The records of `__transaction_state`, in Kafka's format (`TransactionLogKey` v0 and
//! `TransactionLogValue` v0), latest record per transactional id winning on replay:
//!
//! ```text
//! key   [i16 version=0][string transactional id]
//! value [i16 version=0][i64 producer id][i16 producer epoch][i32 timeout ms][i8 state]
//!       [i32 topic count]{[string topic][i32 count]{[i32 partition]}}
//!       [i64 last update ms][i64 start ms]
//! ```
//! A null value (tombstone) forgets the id.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};

const KEY_VERSION: i16 = 0;
const VALUE_VERSION: i16 = 0;
/// Bounds for reading untrusted records.
const TOPICS_MAX: usize = 100_000;
const PARTITIONS_MAX: usize = 1_000_000;

fn put_string(out: &mut BytesMut, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    out.put_i16(bytes.len() as i16);
    out.put_slice(bytes);
}

fn need(buf: &Bytes, n: usize) -> Result<(), String> {
    if buf.remaining() < n {
        Err("truncated transaction record".into())
    } else {
        Ok(())
    }
}

fn get_string(buf: &mut Bytes) -> Result<String, String> {
    need(buf, 2)?;
    let len = buf.get_i16();
    if len < 0 {
        return Err("null string".into());
    }
    need(buf, len as usize)?;
    String::from_utf8(buf.split_to(len as usize).to_vec()).map_err(|_| "string is not UTF-8".into())
}

pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(KEY_VERSION);
    put_string(&mut out, transactional_id);
    out.freeze()
}

/// `Ok(None)` for a key version this broker does not know.
pub fn decode_key(mut buf: Bytes) -> Result<Option<String>, String> {
    need(&buf, 2)?;
    match buf.get_i16() {
        0 => get_string(&mut buf).map(Some),
        _ => Ok(None),
    }
}

pub fn encode_value(m: &TxnMetadata) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(VALUE_VERSION);
    out.put_i64(m.producer_id);
    out.put_i16(m.epoch);
    out.put_i32(m.timeout_ms);
    out.put_i8(m.state.id());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &m.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    out.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_string(&mut out, topic);
        out.put_i32(partitions.len() as i32);
        for p in partitions {
            out.put_i32(p);
        }
    }
    out.put_i64(m.updated_ms);
    out.put_i64(m.started_ms);
    out.freeze()
}

pub fn decode_value(id: String, mut buf: Bytes) -> Result<TxnMetadata, String> {
    need(&buf, 2 + 8 + 2 + 4 + 1 + 4)?;
    let version = buf.get_i16();
    if !(0..=1).contains(&version) {
        return Err(format!("transaction value version {version}"));
    }
    let producer_id = buf.get_i64();
    let epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let state = TxnState::from_id(buf.get_i8()).ok_or("unknown transaction state")?;
    let topics = buf.get_i32().max(0) as usize;
    if topics > TOPICS_MAX || topics * 6 > buf.remaining() {
        return Err(format!("transaction record claims {topics} topics"));
    }
    let mut partitions = BTreeSet::new();
    for _ in 0..topics {
        let topic = get_string(&mut buf)?;
        need(&buf, 4)?;
        let count = buf.get_i32().max(0) as usize;
        if count > PARTITIONS_MAX || count * 4 > buf.remaining() {
            return Err(format!("transaction record claims {count} partitions"));
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), buf.get_i32()));
        }
    }
    need(&buf, 16)?;
    let updated_ms = buf.get_i64();
    let started_ms = buf.get_i64();
    Ok(TxnMetadata {
        id,
        producer_id,
        epoch,
        timeout_ms,
        state,
        partitions,
        started_ms,
        updated_ms,
        busy: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        let m = TxnMetadata {
            id: "t".into(),
            producer_id: 7,
            epoch: 2,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([("a".into(), 0), ("a".into(), 3), ("b".into(), 1)]),
            started_ms: 5,
            updated_ms: 6,
            busy: false,
        };
        assert_eq!(decode_key(encode_key("t")).unwrap(), Some("t".into()));
        let value = encode_value(&m);
        assert_eq!(decode_value("t".into(), value.clone()).unwrap(), m);
        for cut in [0, 5, value.len() - 1] {
            assert!(decode_value("t".into(), value.slice(..cut)).is_err());
        }
    }
}
