//! Consume throughput: a fixed amount is produced (untimed), then one consumer assigned every
//! partition reads all of it from the beginning. The figure is payload bytes over the time from
//! the first message received to the last (the consumer's connection and metadata set-up are
//! left out).

use std::time::{Duration, Instant};

use super::client::{consumer, producer, Acks, Deliveries};
use super::produce::{check_failures, send, Throughput};
use crate::process::CpuMeter;
use crate::BenchResult;
use rdkafka::producer::Producer;

#[derive(Debug, Clone, Copy)]
pub struct ConsumeSpec {
    pub size: usize,
    pub partitions: i32,
    pub bytes: u64,
}

pub fn run(
    bootstrap: &str,
    topic: &str,
    spec: ConsumeSpec,
    broker_pid: u32,
) -> BenchResult<Throughput> {
    let messages = (spec.bytes / spec.size.max(1) as u64).max(1);
    {
        let producer = producer(bootstrap, Acks::One, 5, Deliveries::new(None)?)?;
        let payload = vec![b'c'; spec.size];
        for i in 0..messages {
            send(
                &producer,
                topic,
                (i % spec.partitions as u64) as i32,
                &payload,
            )?;
        }
        producer.flush(Duration::from_secs(120))?;
        check_failures(producer.context())?;
    }

    let consumer = consumer(bootstrap, topic, spec.partitions, 100)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut received, mut bytes) = (0u64, 0u64);
    let mut meter = CpuMeter::start(Some(broker_pid))?;
    let mut started = Instant::now();
    while received < messages {
        if Instant::now() > deadline {
            return Err(format!("consumed {received} of {messages} messages in 120 s").into());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if received == 0 {
                    meter = CpuMeter::start(Some(broker_pid))?;
                    started = Instant::now();
                }
                received += 1;
                bytes += message.payload_len() as u64;
            }
            Some(Err(e)) => return Err(format!("consume: {e}").into()),
            None => {}
        }
    }
    let secs = started.elapsed().as_secs_f64();
    // The first message only started the clock.
    Ok(Throughput {
        messages: received - 1,
        bytes: bytes.saturating_sub(spec.size as u64),
        secs,
        cpu: meter.stop()?,
    })
}
