//! `sluice consume TOPIC`: prints records from earliest, latest, an offset, a timestamp or a
//! group's committed offsets, as values, key/value lines or JSON.

use std::collections::HashMap;
use std::io::Write;
use std::time::Duration;

use clap::{Args, ValueEnum};
use futures::StreamExt;
use protocol::client::{ConsumerConfig, ConsumerRecord, Fallback, Start};

use super::{explain, BrokerArgs};

#[derive(Args, Debug)]
pub struct ConsumeArgs {
    pub topic: String,
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// Where to start: earliest, latest, offset:N, timestamp:MS (ms since the epoch), or
    /// group (the --group's committed offsets, earliest when it has none). Default: group
    /// with --group, else earliest.
    #[arg(long, value_parser = parse_start)]
    pub from: Option<StartArg>,
    /// Consumer group: commits positions (automatically every second, and on exit).
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Only these partitions (repeatable; default: all).
    #[arg(long, short = 'p')]
    pub partition: Vec<u32>,
    /// Stop after this many records.
    #[arg(long, short = 'n')]
    pub count: Option<u64>,
    /// Stop at the end: once every partition reached the high watermark it had at start.
    #[arg(long, short = 'e')]
    pub exit_at_end: bool,
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Value)]
    pub format: Format,
    /// Separator between key and value with --format kv.
    #[arg(long, default_value = "\t")]
    pub key_separator: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartArg {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
    Group,
}

fn parse_start(s: &str) -> Result<StartArg, String> {
    let number = |v: &str| {
        v.parse::<i64>()
            .map_err(|_| format!("{v:?} is not a number"))
    };
    match s.split_once(':') {
        None if s == "earliest" => Ok(StartArg::Earliest),
        None if s == "latest" => Ok(StartArg::Latest),
        None if s == "group" => Ok(StartArg::Group),
        Some(("offset", n)) => Ok(StartArg::Offset(number(n)?)),
        Some(("timestamp", n)) => Ok(StartArg::Timestamp(number(n)?)),
        _ => Err(format!(
            "--from must be earliest, latest, offset:N, timestamp:MS or group, not {s:?}"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// The value alone (lossy UTF-8).
    Value,
    /// Key, separator, value.
    Kv,
    /// One JSON object per line: topic, partition, offset, timestamp, key, value, and headers
    /// as [name, value] pairs.
    Json,
}

pub async fn run(args: ConsumeArgs) -> Result<(), String> {
    let client = args.broker.connect().await?;
    let explain = |e| explain(&e, &args.broker.broker);
    let from = args.from.clone().unwrap_or(if args.group.is_some() {
        StartArg::Group
    } else {
        StartArg::Earliest
    });
    let start = match from {
        StartArg::Earliest => Start::Earliest,
        StartArg::Latest => Start::Latest,
        StartArg::Offset(n) => Start::Offset(n),
        StartArg::Timestamp(ms) => Start::Timestamp(ms),
        StartArg::Group if args.group.is_none() => {
            return Err("--from group needs --group".into());
        }
        StartArg::Group => Start::Committed,
    };
    let mut config = ConsumerConfig {
        group_id: args.group.clone(),
        start,
        fallback: Fallback::Earliest,
        ..ConsumerConfig::default()
    };
    if args.group.is_some() {
        config.auto_commit_interval = Some(Duration::from_secs(1));
    }
    let topic = client.refresh_topic(&args.topic).await.map_err(explain)?;
    let partitions: Vec<u32> = if args.partition.is_empty() {
        (0..topic.partitions).collect()
    } else {
        args.partition.clone()
    };
    // With --exit-at-end, the high watermarks to reach, taken before subscribing.
    let mut remaining: HashMap<u32, i64> = HashMap::new();
    if args.exit_at_end {
        let described = client.describe_topic(&args.topic).await.map_err(explain)?;
        for p in described.partitions {
            if partitions.contains(&p.partition) {
                remaining.insert(p.partition, p.high_watermark);
            }
        }
    }
    let mut consumer = client.consumer(config);
    consumer
        .assign(&args.topic, &partitions)
        .await
        .map_err(explain)?;
    if args.exit_at_end {
        // Partitions already at (or past) their end: nothing to wait for.
        for (_, partition, next_offset) in consumer.positions() {
            if remaining
                .get(&partition)
                .is_some_and(|&hw| next_offset >= hw)
            {
                remaining.remove(&partition);
            }
        }
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut seen = 0u64;
    let done = |seen: u64, remaining: &HashMap<u32, i64>| {
        args.count.is_some_and(|n| seen >= n) || (args.exit_at_end && remaining.is_empty())
    };
    while !done(seen, &remaining) {
        let Some(record) = consumer.next().await else {
            break;
        };
        let record = record.map_err(explain)?;
        write_record(&mut out, &record, args.format, &args.key_separator)
            .map_err(|e| format!("writing output: {e}"))?;
        seen += 1;
        if remaining
            .get(&record.partition)
            .is_some_and(|&hw| record.offset + 1 >= hw)
        {
            remaining.remove(&record.partition);
        }
        // Flush per record on a terminal or pipe so `consume | head` sees lines at once,
        // unless more records are already buffered.
        out.flush().map_err(|e| format!("writing output: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing output: {e}"))?;
    if args.group.is_some() {
        consumer.commit().await.map_err(explain)?;
    }
    Ok(())
}

fn text(bytes: &Option<bytes::Bytes>) -> Option<String> {
    bytes
        .as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
}

fn write_record(
    out: &mut impl Write,
    record: &ConsumerRecord,
    format: Format,
    separator: &str,
) -> std::io::Result<()> {
    match format {
        Format::Value => writeln!(out, "{}", text(&record.value).unwrap_or_default()),
        Format::Kv => writeln!(
            out,
            "{}{separator}{}",
            text(&record.key).unwrap_or_default(),
            text(&record.value).unwrap_or_default()
        ),
        Format::Json => {
            // Pairs, not an object: Kafka headers may repeat a name.
            let headers: Vec<serde_json::Value> = record
                .headers
                .iter()
                .map(|(name, value)| serde_json::json!([name, text(value)]))
                .collect();
            let json = serde_json::json!({
                "topic": &*record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "timestamp": record.timestamp,
                "key": text(&record.key),
                "value": text(&record.value),
                "headers": headers,
            });
            writeln!(out, "{json}")
        }
    }
}
