//! `native-bench`: issue #6's performance bars. One `sluice serve` (release build, data on a
//! real disk), and the same workloads run over the native protocol and over the Kafka protocol
//! (librdkafka), each a `sluice bench ... --json` child process, beside the references the
//! bars are relative to, all measured in the same run:
//!
//! - produce: 1 KiB and 100 B values, 1 and 8 partitions, acks=1 and acks=all, flat out for
//!   `--secs`, a fresh topic per run; MB/s, msgs/s, broker CPU-ms per MB.
//! - consume: the native produce runs' 8-partition acks=1 topics, read from the start over
//!   each protocol in turn (the same records); MB/s and broker CPU-ms per MB.
//! - e2e: 1 KiB, 1 partition, acks=all and acks=1, open loop at half the maximum rate that
//!   protocol's produce run reached, native again at the Kafka path's rate (same load), and
//!   both at a light 1,000 records/s (the floor, no bar); no linger (`--linger-ms 0`);
//!   latency from intended send time to receipt by a consumer (push on the native side).
//! - references: single-stream loopback TCP bandwidth (iperf3), the disk's 4 KiB fdatasync
//!   p99 in `--dir` (the acks=all latency bar is relative to it).
//!
//! Broker CPU is utime+stime from `/proc/<pid>/stat` over each child's lifetime (every
//! thread); the client's from getrusage of the waited-for child. Client and broker share the
//! machine's cores, as they would on one host. One JSON line per measurement on stdout; the
//! table of bars on stderr, then a summary JSON line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use sluice_benches::kafka_load::disk;
use sluice_benches::kafka_load::plan::ms;
use sluice_benches::native_bench::bars::{self, E2e, Pair, References};
use sluice_benches::native_bench::iperf;
use sluice_benches::native_bench::run::{delete_topic, sluice_bench, Measured, Protocol};
use sluice_benches::process::{loadavg, proactive_reclaim, wait_for_quiet_disks};
use sluice_benches::sluice::{admin_get, broker_binary, Broker};
use sluice_benches::{round, BenchResult};

#[derive(Parser, Debug)]
#[command(
    name = "native-bench",
    about = "The same workloads over sluice's native protocol and the Kafka path, on one broker"
)]
struct Args {
    /// Smoke run (under 30 s): tiny runs, every code path once.
    #[arg(long)]
    smoke: bool,
    /// The `sluice` binary, broker and bench client (default: target/release/sluice).
    #[arg(long)]
    broker: Option<PathBuf>,
    /// Parent directory for the broker's data and the fdatasync reference: a real disk.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Seconds per produce run (default 5, smoke 0.3).
    #[arg(long)]
    secs: Option<f64>,
    /// Seconds per e2e run (default 10, smoke 0.5).
    #[arg(long)]
    e2e_secs: Option<f64>,
    /// Run only the produce cases whose label contains this (repeatable), e.g.
    /// `--only "1024B x1 acks=1"`; skips consume, e2e and the bars.
    #[arg(long)]
    only: Vec<String>,
    /// Extra `sluice serve` flag (repeatable), e.g. `--sluice-arg=--shards=1`.
    #[arg(long = "sluice-arg", allow_hyphen_values = true)]
    sluice_args: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("native-bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

const SIZES: [usize; 2] = [1024, 100];
const PARTITIONS: [u32; 2] = [1, 8];
/// (`sluice bench --acks`, the label Kafka users know).
const ACKS: [(&str, &str); 2] = [("leader", "1"), ("all", "all")];
const PROTOCOLS: [Protocol; 2] = [Protocol::Native, Protocol::Kafka];
/// Records per second of the light-load e2e runs.
const LIGHT_LOAD_RATE: f64 = 1000.0;

fn run(args: &Args) -> BenchResult<()> {
    let secs = args.secs.unwrap_or(if args.smoke { 0.3 } else { 5.0 });
    let e2e_secs = args.e2e_secs.unwrap_or(if args.smoke { 0.5 } else { 10.0 });
    if secs <= 0.0 || e2e_secs <= 0.0 {
        return Err("--secs and --e2e-secs must be positive".into());
    }
    let binary = broker_binary(args.broker.as_deref())?;
    let data = args
        .dir
        .join(format!("native-bench-{}", std::process::id()));
    let outcome = with_broker(args, &binary, &data, secs, e2e_secs);
    let _ = std::fs::remove_dir_all(&data);
    outcome
}

/// Fills the broker's tail cache from every shard before anything is measured. A broker that
/// has just started pays page faults as its cache first grows (memory never touched; on this
/// VM, memory the guest never touched since boot costs far more), and the allocator keeps
/// freed memory per shard thread: a shard only reuses what it allocated itself. So each shard
/// must once have held the whole budget, or the first case whose partition lands on a shard
/// that never did pays for it (run 10: 226 MB/s at 4.3 broker CPU-ms/MB, 72 % of it in
/// `clear_page`). One-partition topics, each deleted after its run, until every shard's
/// cache has reached the largest any shard reached (`sluice_storage_cache_bytes`).
fn warm_up(
    binary: &std::path::Path,
    broker: &Broker,
    secs_per_topic: f64,
    max_topics: usize,
) -> BenchResult<()> {
    let mut peak_per_shard: std::collections::BTreeMap<String, f64> = Default::default();
    let mut megabytes = 0.0;
    let mut topics = 0;
    while topics < max_topics {
        let topic = format!("nb-warm-up-{topics}");
        topics += 1;
        let measured = sluice_bench(
            binary,
            broker,
            "produce",
            Protocol::Native,
            &produce_args(&topic, 1024, 1, "leader", secs_per_topic),
        )?;
        megabytes += measured.mb_per_s() * secs_per_topic;
        for (shard, bytes) in cache_bytes_per_shard(&broker.admin)? {
            let peak = peak_per_shard.entry(shard).or_default();
            *peak = peak.max(bytes);
        }
        delete_topic(binary, broker, &topic)?;
        let largest = peak_per_shard.values().copied().fold(0.0, f64::max);
        if largest > 0.0 && peak_per_shard.values().all(|&b| b >= 0.9 * largest) {
            break;
        }
    }
    eprintln!(
        "native-bench: warm-up {megabytes:.0} MB through {topics} one-partition topic(s); peak cache bytes per shard {peak_per_shard:?} (not measured)"
    );
    Ok(())
}

/// `sluice bench produce`'s flags for one flat-out run.
fn produce_args(topic: &str, size: usize, partitions: u32, acks: &str, secs: f64) -> Vec<String> {
    [
        "--topic",
        topic,
        "--size",
        &size.to_string(),
        "--partitions",
        &partitions.to_string(),
        "--acks",
        acks,
        "--duration",
        &secs.to_string(),
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `sluice_storage_cache_bytes` per shard, from the broker's `/metrics`.
fn cache_bytes_per_shard(admin: &str) -> BenchResult<Vec<(String, f64)>> {
    let (status, text) = admin_get(admin, "/metrics")?;
    if status != 200 {
        return Err(format!("{admin}/metrics answered {status}").into());
    }
    let mut out = Vec::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("sluice_storage_cache_bytes{shard=\"") else {
            continue;
        };
        let Some((shard, value)) = rest.split_once("\"} ") else {
            continue;
        };
        if let Ok(bytes) = value.trim().parse::<f64>() {
            out.push((shard.to_string(), bytes));
        }
    }
    if out.is_empty() {
        return Err(format!("no sluice_storage_cache_bytes in {admin}/metrics").into());
    }
    Ok(out)
}

fn with_broker(
    args: &Args,
    binary: &std::path::Path,
    data: &std::path::Path,
    secs: f64,
    e2e_secs: f64,
) -> BenchResult<()> {
    let _ = std::fs::remove_dir_all(data);
    let mut broker = Broker::start_with(binary, data, None, &args.sluice_args)?;
    eprintln!(
        "native-bench: broker {} pid {} native={} kafka={} backend={} shards={}; load average {}",
        binary.display(),
        broker.pid()?,
        broker.native,
        broker.kafka,
        broker.backend,
        broker.shard_count,
        loadavg()
    );
    for reclaim in proactive_reclaim() {
        eprintln!("native-bench: the kernel reclaims proactively ({reclaim}): it takes back memory the broker's allocator released after 10 s unused, and a case on a shard that sat idle pays page faults to get it again (benches/RESULTS.md, runs 12 to 18)");
    }
    // The data directory of an earlier run was just deleted: let its discards finish.
    wait_for_quiet_disks();
    let refs = references(args)?;
    // Up to 16 topics: the loop ends once every shard is warm, and a topic's shard is a hash of
    // its id, so 8 could all land on one shard (run 17: shard 1 was never warmed).
    let (warm_secs, warm_topics) = if args.smoke { (0.3, 2) } else { (1.5, 16) };
    warm_up(binary, &broker, warm_secs, warm_topics)?;
    let mut topics = 0usize;
    let mut fresh_topic = |what: &str| {
        topics += 1;
        format!("nb-{topics}-{what}")
    };

    let mut produce = Vec::new();
    let mut consume_sources = Vec::new();
    for size in SIZES {
        for partitions in PARTITIONS {
            for (acks, acks_label) in ACKS {
                let label = format!("produce {size}B x{partitions} acks={acks_label}");
                if !args.only.is_empty() && !args.only.iter().any(|o| label.contains(o.as_str())) {
                    continue;
                }
                let mut runs = Vec::new();
                for protocol in PROTOCOLS {
                    let topic = fresh_topic(&format!(
                        "{}-{size}x{partitions}-acks{acks_label}",
                        protocol.name()
                    ));
                    let measured = sluice_bench(
                        binary,
                        &broker,
                        "produce",
                        protocol,
                        &produce_args(&topic, size, partitions, acks, secs),
                    )?;
                    emit(
                        &measured,
                        json!({"workload": "produce", "protocol": protocol.name(),
                        "size": size, "partitions": partitions, "acks": acks_label, "topic": topic}),
                    )?;
                    // The native runs' 8-partition acks=1 topics are the consume runs' data.
                    if protocol == Protocol::Native && partitions == 8 && acks == "leader" {
                        consume_sources.push((size, topic));
                    } else {
                        delete_topic(binary, &broker, &topic)?;
                    }
                    runs.push(measured);
                }
                let kafka = runs.pop().ok_or("no kafka run")?;
                let native = runs.pop().ok_or("no native run")?;
                produce.push(Pair {
                    label,
                    size,
                    native,
                    kafka,
                });
            }
        }
    }

    if !args.only.is_empty() {
        broker.stop()?;
        print_measurements(&produce, &[], &[]);
        return Ok(());
    }

    let mut consume = Vec::new();
    for (size, topic) in consume_sources {
        let mut runs = Vec::new();
        for protocol in PROTOCOLS {
            let measured = sluice_bench(
                binary,
                &broker,
                "consume",
                protocol,
                &["--topic".into(), topic.clone()],
            )?;
            emit(
                &measured,
                json!({"workload": "consume", "protocol": protocol.name(),
                "size": size, "partitions": 8, "topic": topic}),
            )?;
            runs.push(measured);
        }
        delete_topic(binary, &broker, &topic)?;
        let kafka = runs.pop().ok_or("no kafka run")?;
        let native = runs.pop().ok_or("no native run")?;
        consume.push(Pair {
            label: format!("consume {size}B x8"),
            size,
            native,
            kafka,
        });
    }

    let mut e2e = Vec::new();
    for (acks, acks_label) in ACKS.iter().rev() {
        let max_rate = |native: bool| {
            produce
                .iter()
                .find(|p| p.label == format!("produce 1024B x1 acks={acks_label}"))
                .map(|p| if native { &p.native } else { &p.kafka })
                .map_or(f64::NAN, Measured::msgs_per_s)
        };
        let native_rate = (max_rate(true) / 2.0).floor().max(1.0);
        let kafka_rate = (max_rate(false) / 2.0).floor().max(1.0);
        let mut e2e_run = |protocol: Protocol, rate: f64| -> BenchResult<Measured> {
            let topic = fresh_topic(&format!("e2e-{}-acks{acks_label}", protocol.name()));
            let measured = sluice_bench(
                binary,
                &broker,
                "e2e",
                protocol,
                &[
                    "--topic".into(),
                    topic.clone(),
                    "--size".into(),
                    "1024".into(),
                    "--partitions".into(),
                    "1".into(),
                    "--acks".into(),
                    (*acks).into(),
                    "--rate".into(),
                    rate.to_string(),
                    "--duration".into(),
                    e2e_secs.to_string(),
                    // No linger: the producer sends whenever a request slot is free (records
                    // pile up while requests are in flight), so nothing but the request and
                    // the durable write stands between producer and consumer.
                    "--linger-ms".into(),
                    "0".into(),
                ],
            )?;
            emit(
                &measured,
                json!({"workload": "e2e", "protocol": protocol.name(), "size": 1024,
                "partitions": 1, "acks": acks_label, "rate": rate, "topic": topic}),
            )?;
            delete_topic(binary, &broker, &topic)?;
            Ok(measured)
        };
        let native = e2e_run(Protocol::Native, native_rate)?;
        let kafka = e2e_run(Protocol::Kafka, kafka_rate)?;
        let native_at_kafka_rate = if (native_rate - kafka_rate).abs() > 0.05 * kafka_rate {
            Some(e2e_run(Protocol::Native, kafka_rate)?)
        } else {
            None
        };
        // The floor under light load: what the path costs when nothing queues.
        let light_load = if args.smoke {
            Vec::new()
        } else {
            vec![
                e2e_run(Protocol::Native, LIGHT_LOAD_RATE)?,
                e2e_run(Protocol::Kafka, LIGHT_LOAD_RATE)?,
            ]
        };
        e2e.push(E2e {
            acks: acks_label,
            native,
            kafka,
            native_at_kafka_rate,
            light_load,
        });
    }
    broker.stop()?;

    print_measurements(&produce, &consume, &e2e);
    let verdicts = bars::verdicts(&produce, &consume, &e2e, refs);
    bars::print_table(&verdicts);
    println!(
        "{}",
        json!({
            "bench": "native-bench",
            "summary": "bars",
            "smoke": args.smoke,
            "loopback_mb_per_s": round(refs.loopback_mb_per_s),
            "fdatasync_p99_ms": round(refs.fdatasync_p99_ms),
            "bars": verdicts.iter().map(bars::Verdict::to_json).collect::<Vec<_>>(),
            "loadavg": loadavg(),
        })
    );
    Ok(())
}

/// Loopback bandwidth and the disk's fdatasync p99, each printed as a JSON line.
fn references(args: &Args) -> BenchResult<References> {
    let iperf_secs = if args.smoke { 1 } else { 5 };
    let loopback_mb_per_s = iperf::loopback_mb_per_s(iperf_secs)?;
    println!(
        "{}",
        json!({"bench": "native-bench", "reference": "loopback_tcp_single_stream",
            "mb_per_s": round(loopback_mb_per_s),
            "command": format!("iperf3 -s -1 -B 127.0.0.1 -p PORT & iperf3 -c 127.0.0.1 -p PORT -t {iperf_secs} -J"),
            "loadavg": loadavg()})
    );
    let fsync_secs = Duration::from_secs_f64(if args.smoke { 0.5 } else { 5.0 });
    let fdatasync_p99_ms = print_sync_latency(
        args,
        "fdatasync_4k",
        &disk::fdatasync_latency(&args.dir, fsync_secs, 20_000)?,
    );
    // What the log's own syncs pay: appends go into `fallocate`d space, whose extents the
    // sync also converts (printed for the record; the bar uses the plain figure above).
    print_sync_latency(
        args,
        "fdatasync_4k_append_preallocated",
        &disk::append_fdatasync_latency(&args.dir, fsync_secs, 20_000)?,
    );
    std::io::stdout().flush()?;
    Ok(References {
        loopback_mb_per_s,
        fdatasync_p99_ms,
    })
}

/// One disk sync reference as a JSON line; returns its p99 in ms.
fn print_sync_latency(args: &Args, reference: &str, h: &hdrhistogram::Histogram<u64>) -> f64 {
    let p99_ms = ms(h.value_at_quantile(0.99));
    println!(
        "{}",
        json!({"bench": "native-bench", "reference": reference,
            "dir": args.dir.display().to_string(), "syncs": h.len(),
            "p50_ms": ms(h.value_at_quantile(0.50)), "p99_ms": p99_ms,
            "p999_ms": ms(h.value_at_quantile(0.999)), "loadavg": loadavg()})
    );
    p99_ms
}

fn emit(measured: &Measured, case: serde_json::Value) -> BenchResult<()> {
    println!("{}", measured.json_line(case));
    std::io::stdout().flush()?;
    Ok(())
}

/// Every measurement side by side (stderr), before the bars.
fn print_measurements(produce: &[Pair], consume: &[Pair], e2e: &[E2e]) {
    eprintln!("| run | protocol | MB/s | msgs/s | p99 ms | broker CPU-ms/MB | broker cores | client cores |");
    eprintln!("|---|---|---:|---:|---:|---:|---:|---:|");
    let row = |label: &str, m: &Measured| {
        let protocol = m.summary["protocol"].as_str().unwrap_or("?");
        eprintln!(
            "| {label} | {protocol} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            m.mb_per_s(),
            m.msgs_per_s(),
            m.p99_ms(),
            m.broker_cpu_ms_per_mb(),
            m.broker_cpu_s / m.wall_s,
            m.client_cpu_s / m.wall_s,
        );
    };
    for p in produce.iter().chain(consume) {
        row(&p.label, &p.native);
        row(&p.label, &p.kafka);
    }
    for e in e2e {
        let label = |m: &Measured| {
            format!(
                "e2e 1024B x1 acks={} @{:.0}/s",
                e.acks,
                m.summary["target_rate"].as_f64().unwrap_or(f64::NAN)
            )
        };
        row(&label(&e.native), &e.native);
        row(&label(&e.kafka), &e.kafka);
        for m in e.native_at_kafka_rate.iter().chain(&e.light_load) {
            row(&label(m), m);
        }
    }
}
