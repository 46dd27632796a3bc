//! Produce throughput: one producer sending as fast as librdkafka's queue takes messages,
//! round-robin over the partitions, for a time or a byte budget, then a flush. The figure is
//! acknowledged payload bytes over the time from the first send to the last acknowledgement.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};

use super::client::{producer, Acks, Deliveries};
use crate::process::{CpuMeter, CpuSpent};
use crate::BenchResult;

#[derive(Debug, Clone, Copy)]
pub struct ProduceSpec {
    pub size: usize,
    pub partitions: i32,
    pub acks: Acks,
    /// Sending stops at this time or byte budget, whichever comes first.
    pub duration: Duration,
    pub max_bytes: u64,
}

/// What a produce run measured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Throughput {
    pub messages: u64,
    pub bytes: u64,
    pub secs: f64,
    pub cpu: CpuSpent,
}

impl Throughput {
    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }

    pub fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.secs
    }

    /// Payload GB per broker CPU second.
    pub fn gb_per_broker_core_s(&self) -> f64 {
        self.bytes as f64 / 1e9 / self.cpu.peer()
    }

    pub fn broker_cores(&self) -> f64 {
        self.cpu.peer() / self.secs
    }

    pub fn client_cores(&self) -> f64 {
        self.cpu.own / self.secs
    }
}

/// Produces to `topic` on `bootstrap`; `broker_pid` is measured for CPU.
pub fn run(
    bootstrap: &str,
    topic: &str,
    spec: ProduceSpec,
    broker_pid: u32,
) -> BenchResult<Throughput> {
    let producer = producer(bootstrap, spec.acks, 5, Deliveries::new(None)?)?;
    // Warm-up, untimed: metadata, connections, one acknowledged message per partition.
    let payload = vec![b'k'; spec.size];
    for partition in 0..spec.partitions {
        send(&producer, topic, partition, &payload)?;
    }
    producer.flush(Duration::from_secs(30))?;
    check_failures(producer.context())?;
    let warm = producer.context().ok.load(Ordering::Relaxed);
    let warm_bytes = producer.context().ok_bytes.load(Ordering::Relaxed);

    let meter = CpuMeter::start(Some(broker_pid))?;
    let started = Instant::now();
    let deadline = started + spec.duration;
    let max_messages = (spec.max_bytes / spec.size.max(1) as u64).max(1);
    let mut sent = 0u64;
    while sent < max_messages {
        // The clock is read once per 256 messages: at a million messages/s, per-message reads
        // would be a measurable share of the client's time.
        if sent.is_multiple_of(256) && Instant::now() >= deadline {
            break;
        }
        send(
            &producer,
            topic,
            (sent % spec.partitions as u64) as i32,
            &payload,
        )?;
        sent += 1;
    }
    producer.flush(Duration::from_secs(120))?;
    let secs = started.elapsed().as_secs_f64();
    let cpu = meter.stop()?;
    check_failures(producer.context())?;
    let deliveries = producer.context();
    let messages = deliveries.ok.load(Ordering::Relaxed) - warm;
    if messages != sent {
        return Err(format!("{sent} sent, {messages} acknowledged").into());
    }
    Ok(Throughput {
        messages,
        bytes: deliveries.ok_bytes.load(Ordering::Relaxed) - warm_bytes,
        secs,
        cpu,
    })
}

/// Sends one message, waiting while librdkafka's queue is full.
pub fn send(
    producer: &rdkafka::producer::ThreadedProducer<Deliveries>,
    topic: &str,
    partition: i32,
    payload: &[u8],
) -> BenchResult<()> {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .payload(payload)
        .partition(partition);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

pub fn check_failures(deliveries: &Deliveries) -> BenchResult<()> {
    let failed = deliveries.failed.load(Ordering::Relaxed);
    if failed == 0 {
        return Ok(());
    }
    let first = deliveries
        .first_error
        .lock()
        .ok()
        .and_then(|e| e.clone())
        .unwrap_or_default();
    Err(format!("{failed} messages failed, first: {first}").into())
}
