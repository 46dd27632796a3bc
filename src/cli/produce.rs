//! `sluice produce TOPIC`: one record per input line, from stdin or `--file`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use protocol::client::{Acks, Compression, DeliveryFuture, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{explain, parse_key_value, BrokerArgs};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    pub topic: String,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Read lines from this file instead of stdin.
    #[arg(long, short = 'f')]
    pub file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value (lines without it get no key).
    #[arg(long, short = 'K')]
    pub key_separator: Option<String>,
    /// A header for every record, NAME=VALUE (repeatable).
    #[arg(long, short = 'H', value_parser = parse_key_value)]
    pub header: Vec<(String, String)>,
    /// Write every record to this partition (default: by key, murmur2 as Kafka clients).
    #[arg(long, short = 'p')]
    pub partition: Option<u32>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// none, leader or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub acks: Acks,
    /// How long a batch waits for more records.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
}

pub fn parse_acks(s: &str) -> Result<Acks, String> {
    match s {
        "none" | "0" => Ok(Acks::None),
        "leader" | "1" => Ok(Acks::Leader),
        "all" | "-1" => Ok(Acks::All),
        _ => Err(format!("acks must be none, leader or all, not {s:?}")),
    }
}

pub async fn run(args: ProduceArgs) -> Result<(), String> {
    let client = args.broker.connect().await?;
    let explain = |e| explain(&e, &args.broker.broker);
    // Fail before reading input when the topic does not exist.
    client.topic(&args.topic).await.map_err(explain)?;
    let producer = client.producer(ProducerConfig {
        compression: args.compression,
        acks: args.acks,
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    });
    let input: Box<dyn tokio::io::AsyncRead + Unpin> = match &args.file {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let mut lines = BufReader::new(input).lines();
    let mut pending: Vec<DeliveryFuture> = Vec::new();
    let mut produced = 0u64;
    let mut failed = 0u64;
    let mut first_error = None;
    loop {
        let line = lines
            .next_line()
            .await
            .map_err(|e| format!("reading input: {e}"))?;
        let Some(line) = line else { break };
        let mut record = ProducerRecord::new(&args.topic);
        match args
            .key_separator
            .as_deref()
            .and_then(|sep| line.split_once(sep))
        {
            Some((key, value)) => {
                record = record.key(key.to_owned()).value(value.to_owned());
            }
            None => record = record.value(line),
        }
        for (name, value) in &args.header {
            record = record.header(name.clone(), value.clone());
        }
        record.partition = args.partition;
        pending.push(producer.send(record).await.map_err(explain)?);
        // Collect answers as they come, so memory stays bounded on long inputs.
        if pending.len() >= 10_000 {
            settle(&mut pending, &mut produced, &mut failed, &mut first_error).await;
        }
    }
    producer.flush().await.map_err(explain)?;
    settle(&mut pending, &mut produced, &mut failed, &mut first_error).await;
    eprintln!("produced {produced} records to {}", args.topic);
    match first_error {
        Some(e) => Err(format!(
            "{failed} records failed; the first: {}",
            explain(e)
        )),
        None => Ok(()),
    }
}

async fn settle(
    pending: &mut Vec<DeliveryFuture>,
    produced: &mut u64,
    failed: &mut u64,
    first_error: &mut Option<protocol::client::ClientError>,
) {
    for delivery in pending.drain(..) {
        match delivery.await {
            Ok(_) => *produced += 1,
            Err(e) => {
                *failed += 1;
                first_error.get_or_insert(e);
            }
        }
    }
}
