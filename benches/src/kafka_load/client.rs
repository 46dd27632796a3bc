//! librdkafka clients as every workload configures them, so each target sees the same client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::BenchResult;

/// Acknowledgement level of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    One,
    All,
}

impl Acks {
    pub fn name(self) -> &'static str {
        match self {
            Acks::One => "1",
            Acks::All => "all",
        }
    }
}

/// Creates `topic` with `partitions` partitions (replication 1).
pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> BenchResult<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
    ))?;
    for result in results {
        result.map_err(|(name, code)| format!("CreateTopics {name}: {code:?}"))?;
    }
    Ok(())
}

/// Counts deliveries; with `latency`, also the time from the intended send time in the
/// payload (see `stamp`) to the acknowledgement.
#[derive(Debug)]
pub struct Deliveries {
    pub ok: AtomicU64,
    pub ok_bytes: AtomicU64,
    pub failed: AtomicU64,
    pub first_error: Mutex<Option<String>>,
    /// Acknowledgement latency, µs, when the payloads carry a stamp.
    pub ack_latency: Option<(Instant, Mutex<Histogram<u64>>)>,
}

impl Deliveries {
    pub fn new(stamped_since: Option<Instant>) -> BenchResult<Deliveries> {
        Ok(Deliveries {
            ok: AtomicU64::new(0),
            ok_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            ack_latency: match stamped_since {
                Some(base) => Some((base, Mutex::new(latency_histogram()?))),
                None => None,
            },
        })
    }

    pub fn delivered(&self) -> u64 {
        self.ok.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed)
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(message) => {
                let payload = message.payload().unwrap_or_default();
                self.ok.fetch_add(1, Ordering::Relaxed);
                self.ok_bytes
                    .fetch_add(payload.len() as u64, Ordering::Relaxed);
                if let Some((base, histogram)) = &self.ack_latency {
                    if let Some(stamp) = read_stamp(payload) {
                        let us = base.elapsed().as_micros() as u64;
                        if let Ok(mut h) = histogram.lock() {
                            h.saturating_record(us.saturating_sub(stamp.intended_us).max(1));
                        }
                    }
                }
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

/// A producer for `acks`: no idempotence (it would force acks=all), no compression, batches
/// of up to 1 MB lingering `linger_ms`.
pub fn producer(
    bootstrap: &str,
    acks: Acks,
    linger_ms: u32,
    deliveries: Deliveries,
) -> BenchResult<ThreadedProducer<Deliveries>> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", acks.name())
        .set("enable.idempotence", "false")
        .set("compression.type", "none")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("batch.num.messages", "100000")
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .create_with_context(deliveries)?)
}

/// A consumer assigned every partition of `topic` from the beginning (no group membership,
/// no commits). Prefetching may queue 256 MB, and a full queue delays the next fetch by 10 ms,
/// not librdkafka's default second (`fetch.queue.backoff.ms`), which would otherwise make the
/// consume figure a measure of that pause.
pub fn consumer(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    fetch_wait_ms: u32,
) -> BenchResult<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kafka-load")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", fetch_wait_ms.to_string())
        .set("fetch.min.bytes", "1")
        .set("max.partition.fetch.bytes", "4194304")
        .set("queued.max.messages.kbytes", "262144")
        .set("fetch.queue.backoff.ms", "10")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// A latency histogram in µs, 1 µs to 10 min, 3 significant digits.
pub fn latency_histogram() -> BenchResult<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, 600_000_000, 3)?)
}

/// What a latency payload starts with: a magic, the message's sequence number and its intended
/// send time in µs since the run's base instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub seq: u64,
    pub intended_us: u64,
}

const STAMP_MAGIC: u32 = 0x4b4c_4154; // "KLAT"
pub const STAMP_LEN: usize = 20;

pub fn write_stamp(payload: &mut [u8], stamp: Stamp) {
    if payload.len() >= STAMP_LEN {
        payload[..4].copy_from_slice(&STAMP_MAGIC.to_be_bytes());
        payload[4..12].copy_from_slice(&stamp.seq.to_be_bytes());
        payload[12..20].copy_from_slice(&stamp.intended_us.to_be_bytes());
    }
}

pub fn read_stamp(payload: &[u8]) -> Option<Stamp> {
    let magic = u32::from_be_bytes(payload.get(..4)?.try_into().ok()?);
    if magic != STAMP_MAGIC {
        return None;
    }
    Some(Stamp {
        seq: u64::from_be_bytes(payload.get(4..12)?.try_into().ok()?),
        intended_us: u64::from_be_bytes(payload.get(12..20)?.try_into().ok()?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_and_foreign_payloads_have_none() {
        let mut payload = vec![0u8; 100];
        let stamp = Stamp {
            seq: 7,
            intended_us: 123_456,
        };
        write_stamp(&mut payload, stamp);
        assert_eq!(read_stamp(&payload), Some(stamp));
        assert_eq!(read_stamp(&[0u8; 100]), None);
        assert_eq!(read_stamp(&payload[..10]), None);
    }
}
