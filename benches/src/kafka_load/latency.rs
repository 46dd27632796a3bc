//! End-to-end latency at a fixed rate, open loop: message k is due at `start + k / rate`, is
//! sent then (or at once if the sender is late), and carries that intended time; the consumer
//! records receipt minus intended time, so queueing anywhere (client, broker, fetch wait) is
//! counted, never hidden by a sender that slows down. Acknowledgement latency (intended time to
//! delivery report) is recorded as well; against the sink it is the only figure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::message::Message;
use rdkafka::producer::Producer;

use super::client::{
    consumer, latency_histogram, producer, read_stamp, write_stamp, Acks, Deliveries, Stamp,
    STAMP_LEN,
};
use super::produce::{check_failures, send};
use crate::process::{CpuMeter, CpuSpent};
use crate::BenchResult;

#[derive(Debug, Clone, Copy)]
pub struct LatencySpec {
    pub size: usize,
    pub partitions: i32,
    pub acks: Acks,
    pub rate: f64,
    pub duration: Duration,
}

#[derive(Debug, Clone)]
pub struct Latency {
    pub sent: u64,
    /// Messages the consumer received (0 when there is no consumer).
    pub received: u64,
    pub secs: f64,
    /// Intended send time to consumer receipt, µs.
    pub end_to_end: Option<Histogram<u64>>,
    /// Intended send time to acknowledgement, µs.
    pub ack: Histogram<u64>,
    pub cpu: CpuSpent,
}

impl Latency {
    pub fn achieved_rate(&self) -> f64 {
        self.sent as f64 / self.secs
    }
}

/// Warm-up messages before the schedule starts (not recorded).
const WARM_UP: u64 = 50;

pub fn run(
    bootstrap: &str,
    topic: &str,
    spec: LatencySpec,
    broker_pid: u32,
    with_consumer: bool,
) -> BenchResult<Latency> {
    let base = Instant::now();
    let size = spec.size.max(STAMP_LEN);
    let total = (spec.rate * spec.duration.as_secs_f64()).ceil().max(1.0) as u64;
    let producer = producer(bootstrap, spec.acks, 0, Deliveries::new(Some(base))?)?;

    let stop = Arc::new(AtomicBool::new(false));
    // Ends the consumer thread if this run fails before joining it.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let receiver = with_consumer.then(|| {
        let (bootstrap, topic, stop) = (bootstrap.to_owned(), topic.to_owned(), stop.clone());
        std::thread::spawn(move || receive(&bootstrap, &topic, spec.partitions, base, total, &stop))
    });

    let mut payload = vec![b'l'; size];
    // Warm-up: connections and metadata, and (with a consumer) its first fetches.
    for seq in 0..WARM_UP {
        write_stamp(
            &mut payload,
            Stamp {
                seq: u64::MAX - seq,
                intended_us: 0,
            },
        );
        send(
            &producer,
            topic,
            (seq % spec.partitions as u64) as i32,
            &payload,
        )?;
    }
    producer.flush(Duration::from_secs(30))?;
    std::thread::sleep(Duration::from_millis(500));
    if let Some((_, histogram)) = &producer.context().ack_latency {
        if let Ok(mut h) = histogram.lock() {
            h.reset();
        }
    }

    let meter = CpuMeter::start(Some(broker_pid))?;
    let start = base.elapsed();
    let period = Duration::from_secs_f64(1.0 / spec.rate);
    for seq in 0..total {
        let intended = start + period.mul_f64(seq as f64);
        let now = base.elapsed();
        if intended > now {
            std::thread::sleep(intended - now);
        }
        write_stamp(
            &mut payload,
            Stamp {
                seq,
                intended_us: intended.as_micros() as u64,
            },
        );
        send(
            &producer,
            topic,
            (seq % spec.partitions as u64) as i32,
            &payload,
        )?;
    }
    let secs = (base.elapsed() - start).as_secs_f64();
    producer.flush(Duration::from_secs(60))?;
    check_failures(producer.context())?;

    let (received, end_to_end) = match receiver {
        Some(handle) => {
            let outcome = handle
                .join()
                .map_err(|_| "the consumer thread panicked")??;
            (outcome.0, Some(outcome.1))
        }
        None => (0, None),
    };
    let cpu = meter.stop()?;
    let ack = match &producer.context().ack_latency {
        Some((_, histogram)) => histogram.lock().map_err(|_| "poisoned")?.clone(),
        None => latency_histogram()?,
    };
    if with_consumer && received != total {
        return Err(format!("{total} sent, {received} received").into());
    }
    Ok(Latency {
        sent: total,
        received,
        secs,
        end_to_end,
        ack,
        cpu,
    })
}

/// Receives until every scheduled message (sequence < `total`) has arrived, or 60 s pass
/// without progress.
fn receive(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    base: Instant,
    total: u64,
    stop: &AtomicBool,
) -> BenchResult<(u64, Histogram<u64>)> {
    let consumer = consumer(bootstrap, topic, partitions, 100)?;
    let mut histogram = latency_histogram()?;
    let mut received = 0u64;
    let mut last_progress = Instant::now();
    while received < total && !stop.load(Ordering::Relaxed) {
        if last_progress.elapsed() > Duration::from_secs(60) {
            return Err(format!("received {received} of {total}, then nothing for 60 s").into());
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                let now = base.elapsed().as_micros() as u64;
                let Some(stamp) = message.payload().and_then(read_stamp) else {
                    continue;
                };
                if stamp.seq < total {
                    received += 1;
                    last_progress = Instant::now();
                    histogram.saturating_record(now.saturating_sub(stamp.intended_us).max(1));
                }
            }
            Some(Err(e)) => return Err(format!("consume: {e}").into()),
            None => {}
        }
    }
    Ok((received, histogram))
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
