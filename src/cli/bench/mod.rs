//! `sluice bench produce|consume|e2e`: the same workloads over the native protocol or Kafka's
//! (librdkafka), with a progress bar on a terminal, an HDR histogram of latencies and a final
//! summary (text, or `--json`).
//!
//! - produce: latency is from `send` to the broker's acknowledgement.
//! - consume: reads records already in the topic; throughput only.
//! - e2e: open loop at a fixed rate; latency is from the *intended* send time (the schedule,
//!   not the moment the producer got round to it) to receipt by a consumer, so a stalled
//!   producer shows up as latency instead of hiding it (no coordinated omission).

mod kafka;
mod native;
mod pacer;
mod report;

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use protocol::client::{Acks, Compression};

use super::produce::parse_acks;
use super::BrokerArgs;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Produce COUNT records (or for DURATION), measuring acknowledgement latency.
    Produce(ProduceBench),
    /// Consume the records in a topic from the start.
    Consume(ConsumeBench),
    /// Produce at a fixed rate while consuming; latency from intended send to receipt.
    E2e(E2eBench),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// Sluice's native protocol (protocol::client).
    Native,
    /// The Kafka protocol, through librdkafka.
    Kafka,
}

/// What every workload takes.
#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// The topic (created with --partitions when missing).
    #[arg(long, default_value = "sluice-bench")]
    pub topic: String,
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    pub protocol: Protocol,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The broker's Kafka listener (for --protocol kafka).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub kafka_broker: String,
    /// Print the summary as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// What the producing workloads take.
#[derive(Args, Debug, Clone)]
pub struct ProducerArgs {
    /// Bytes per record value.
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Partitions of the topic when the bench creates it.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// none, leader or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// How long a batch waits for more records (both protocols' linger.ms).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// A batch is sent once it holds this many bytes (both protocols' batch.size).
    #[arg(long, default_value_t = 512 * 1024)]
    pub batch_bytes: usize,
}

#[derive(Args, Debug, Clone)]
pub struct ProduceBench {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Records to send (default 1,000,000 unless --duration is given).
    #[arg(long)]
    pub count: Option<u64>,
    /// Send for this many seconds instead of a count.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Limit to this many records per second.
    #[arg(long)]
    pub rate: Option<f64>,
}

#[derive(Args, Debug, Clone)]
pub struct ConsumeBench {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Records to read (default: all the topic holds when the bench starts).
    #[arg(long)]
    pub count: Option<u64>,
}

#[derive(Args, Debug, Clone)]
pub struct E2eBench {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Records per second (the schedule).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

/// When a producing workload stops.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub count: Option<u64>,
    pub duration: Option<Duration>,
}

impl Limit {
    fn from(count: Option<u64>, duration: Option<f64>) -> Result<Limit, String> {
        let duration = duration
            .map(|s| {
                Duration::try_from_secs_f64(s).map_err(|_| {
                    format!("--duration must be a positive number of seconds, not {s}")
                })
            })
            .transpose()?;
        let count = match (count, duration) {
            (None, None) => Some(1_000_000),
            (count, _) => count,
        };
        Ok(Limit { count, duration })
    }
}

/// When each record of a producing workload is due: at once, or on an open-loop schedule of
/// `rate` per second that a late sender does not move (so queueing shows in the latencies).
#[derive(Debug)]
pub struct Schedule {
    limit: Limit,
    /// None: flat out.
    pace: Option<Pace>,
    start: std::time::Instant,
    start_ns: u64,
}

/// An open-loop rate and what waits for it.
#[derive(Debug)]
struct Pace {
    per_second: f64,
    /// Waits for a due time to the microsecond (tokio's timer would add 0-1 ms to each).
    pacer: pacer::Pacer,
}

impl Schedule {
    pub fn start(limit: Limit, rate: Option<f64>) -> Schedule {
        Schedule {
            limit,
            pace: rate.map(|per_second| Pace {
                per_second,
                pacer: pacer::Pacer::new(),
            }),
            start: std::time::Instant::now(),
            start_ns: epoch_ns(),
        }
    }

    /// Whether the workload has sent enough (`sent` records so far).
    pub fn done(&self, sent: u64) -> bool {
        self.done_at(sent, std::time::Instant::now())
    }

    /// `done` with a clock reading the caller already took.
    pub fn done_at(&self, sent: u64, now: std::time::Instant) -> bool {
        self.limit.count.is_some_and(|n| sent >= n)
            || self
                .limit
                .duration
                .is_some_and(|d| now.saturating_duration_since(self.start) >= d)
    }

    /// Waits until record `sent` is due; its intended send time in ns since the epoch.
    pub async fn next(&self, sent: u64) -> u64 {
        match self.pace {
            Some(_) => self.next_at(sent, std::time::Instant::now()).await,
            None => epoch_ns(),
        }
    }

    /// `next` with a clock reading the caller already took: flat out, the intended send time
    /// is that reading (on the epoch clock the schedule started on), with no clock read of
    /// its own.
    pub async fn next_at(&self, sent: u64, now: std::time::Instant) -> u64 {
        match &self.pace {
            Some(pace) => {
                let offset = Duration::from_secs_f64(sent as f64 / pace.per_second);
                let due = self.start + offset;
                if due > now + pacer::RESOLUTION {
                    pace.pacer.sleep_until(due).await;
                    return self.start_ns + offset.as_nanos() as u64;
                }
                // A sender behind its schedule (at high rates, most records) skips the timer:
                // arming one per record would cost more than the send itself. It still spends
                // the task's budget, so the loop yields to the producer's own tasks on this
                // thread.
                tokio::task::consume_budget().await;
                if due > now {
                    // Due within the pacer's resolution: sent a little early, so stamped with
                    // the caller's clock reading before the send, not the later intended time
                    // (latency is never measured from after the send).
                    return self.start_ns
                        + now.saturating_duration_since(self.start).as_nanos() as u64;
                }
                self.start_ns + offset.as_nanos() as u64
            }
            None => self.start_ns + now.saturating_duration_since(self.start).as_nanos() as u64,
        }
    }
}

/// The record value: `size` bytes, the first 8 the intended send time in ns since the epoch
/// (read back by the e2e consumer), the rest filler.
pub fn payload(size: usize, intended_ns: u64) -> Vec<u8> {
    let mut value = vec![b'x'; size.max(8)];
    value[..8].copy_from_slice(&intended_ns.to_le_bytes());
    value
}

/// Now, in ns since the epoch (the clock e2e latencies are measured on).
pub fn epoch_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub async fn run(command: BenchCommand) -> Result<(), String> {
    let (summary, json) = match command {
        BenchCommand::Produce(args) => {
            let limit = Limit::from(args.count, args.duration)?;
            if args.rate.is_some_and(|r| r <= 0.0) {
                return Err("--rate must be above 0".into());
            }
            let summary = match args.common.protocol {
                Protocol::Native => native::produce(&args, limit).await?,
                Protocol::Kafka => kafka::produce(&args, limit).await?,
            };
            (summary, args.common.json)
        }
        BenchCommand::Consume(args) => {
            let summary = match args.common.protocol {
                Protocol::Native => native::consume(&args).await?,
                Protocol::Kafka => kafka::consume(&args).await?,
            };
            (summary, args.common.json)
        }
        BenchCommand::E2e(args) => {
            if args.rate <= 0.0 || args.duration <= 0.0 {
                return Err("--rate and --duration must be above 0".into());
            }
            let summary = match args.common.protocol {
                Protocol::Native => native::e2e(&args).await?,
                Protocol::Kafka => kafka::e2e(&args).await?,
            };
            (summary, args.common.json)
        }
    };
    if json {
        println!("{}", summary.to_json());
    } else {
        print!("{}", summary.to_text());
    }
    Ok(())
}
