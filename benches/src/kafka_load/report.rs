//! The readable summary after the JSON lines: each case per target with ratios to the
//! references, then the bars, each with its verdict.

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::client::Acks;
use super::latency::Latency;
use super::plan::{ms, Case, Outcome, Record};
use super::produce::Throughput;
use super::targets::Kind;
use crate::round;

/// The target's median run of the case (by MB/s; the lower middle of an even count), so one
/// disturbed round moves no figure.
fn throughput(
    records: &[Record],
    target: Kind,
    want: impl Fn(&Case) -> bool,
) -> Option<Throughput> {
    let mut runs: Vec<Throughput> = records
        .iter()
        .filter_map(
            |r| match (&r.outcome, r.target == target && want(&r.case)) {
                (Outcome::Throughput(t), true) => Some(*t),
                _ => None,
            },
        )
        .collect();
    runs.sort_by(|a, b| a.mb_per_s().total_cmp(&b.mb_per_s()));
    runs.get(runs.len().saturating_sub(1) / 2).copied()
}

fn produce(
    records: &[Record],
    target: Kind,
    size: usize,
    partitions: i32,
    acks: Acks,
) -> Option<Throughput> {
    throughput(
        records,
        target,
        |c| matches!(c, Case::Produce(s) if s.size == size && s.partitions == partitions && s.acks == acks),
    )
}

fn consume(records: &[Record], target: Kind) -> Option<Throughput> {
    throughput(records, target, |c| matches!(c, Case::Consume(_)))
}

fn latency(records: &[Record], target: Kind, acks: Acks) -> Option<&Latency> {
    records.iter().find_map(|r| match (&r.case, &r.outcome) {
        (Case::Latency(s), Outcome::Latency(l)) if r.target == target && s.acks == acks => Some(l),
        _ => None,
    })
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

fn cell(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// Prints the tables to stderr.
pub fn print_tables(records: &[Record], fsync: Option<&Histogram<u64>>) {
    eprintln!();
    eprintln!(
        "{:<22} | {:>9} {:>10} | {:>9} {:>10} {:>6} {:>6} {:>6} | {:>9} {:>10} | {:>7}",
        "produce",
        "sink MB/s",
        "msgs/s",
        "sluice",
        "msgs/s",
        "/sink",
        "cores",
        "GB/cs",
        "tansu",
        "msgs/s",
        "/tansu"
    );
    for size in [1024usize, 100] {
        for partitions in [8, 1] {
            for acks in [Acks::One, Acks::All] {
                let sink = produce(records, Kind::Sink, size, partitions, acks);
                let ours = produce(records, Kind::Sluice, size, partitions, acks);
                let tansu = produce(records, Kind::Tansu, size, partitions, acks);
                if sink.is_none() && ours.is_none() && tansu.is_none() {
                    continue;
                }
                let mb = |t: Option<Throughput>| t.map(|t| t.mb_per_s());
                let msgs = |t: Option<Throughput>| t.map(|t| t.msgs_per_s());
                eprintln!(
                    "{:<22} | {:>9} {:>10} | {:>9} {:>10} {:>6} {:>6} {:>6} | {:>9} {:>10} | {:>7}",
                    format!("{size} B x{partitions} acks={}", acks.name()),
                    cell(mb(sink), 0),
                    cell(msgs(sink), 0),
                    cell(mb(ours), 0),
                    cell(msgs(ours), 0),
                    cell(ratio(mb(ours), mb(sink)), 2),
                    cell(ours.map(|t| t.broker_cores()), 2),
                    cell(ours.map(|t| t.gb_per_broker_core_s()), 2),
                    cell(mb(tansu), 0),
                    cell(msgs(tansu), 0),
                    cell(ratio(mb(ours), mb(tansu)), 2),
                );
            }
        }
    }
    let ours = consume(records, Kind::Sluice);
    let tansu = consume(records, Kind::Tansu);
    if ours.is_some() || tansu.is_some() {
        eprintln!(
            "consume 1024 B x8: sluice {} MB/s ({} broker cores), tansu {} MB/s, ratio {}",
            cell(ours.map(|t| t.mb_per_s()), 0),
            cell(ours.map(|t| t.broker_cores()), 2),
            cell(tansu.map(|t| t.mb_per_s()), 0),
            cell(
                ratio(ours.map(|t| t.mb_per_s()), tansu.map(|t| t.mb_per_s())),
                2
            ),
        );
    }
    for target in [Kind::Sink, Kind::Sluice, Kind::Tansu] {
        for acks in [Acks::One, Acks::All] {
            if let Some(l) = latency(records, target, acks) {
                let q = |p| l.end_to_end.as_ref().map(|h| ms(h.value_at_quantile(p)));
                eprintln!(
                    "latency {:<6} acks={:<3} at {:.0}/s: e2e p50 {} p99 {} p999 {} ms; ack p50 {} p99 {} p999 {} ms",
                    target.name(),
                    acks.name(),
                    l.achieved_rate(),
                    cell(q(0.50), 2),
                    cell(q(0.99), 2),
                    cell(q(0.999), 2),
                    cell(Some(ms(l.ack.value_at_quantile(0.50))), 2),
                    cell(Some(ms(l.ack.value_at_quantile(0.99))), 2),
                    cell(Some(ms(l.ack.value_at_quantile(0.999))), 2),
                );
            }
        }
    }
    if let Some(h) = fsync {
        eprintln!(
            "disk fdatasync of 4 KiB: p50 {:.2} p99 {:.2} p999 {:.2} ms ({} syncs)",
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            h.len()
        );
    }
}

/// One bar: what it asks, what was measured, the verdict (`None`: a reference is missing).
fn bar(name: &str, measured: Option<f64>, needed: Option<f64>, at_least: bool) -> Value {
    let pass = match (measured, needed) {
        (Some(m), Some(n)) => Some(if at_least { m >= n } else { m <= n }),
        _ => None,
    };
    json!({
        "bar": name,
        "measured": measured.and_then(round),
        "needed": needed.and_then(round),
        "rule": if at_least { ">=" } else { "<=" },
        "pass": pass,
    })
}

/// The bars, evaluated on this run's figures.
pub fn bars(records: &[Record], fsync: Option<&Histogram<u64>>) -> Vec<Value> {
    let mb = |t: Option<Throughput>| t.map(|t| t.mb_per_s());
    let msgs = |t: Option<Throughput>| t.map(|t| t.msgs_per_s());
    let ours_1k = produce(records, Kind::Sluice, 1024, 8, Acks::One);
    let ours_1k_all = produce(records, Kind::Sluice, 1024, 8, Acks::All);
    let e2e = |acks, p: f64| {
        latency(records, Kind::Sluice, acks)
            .and_then(|l| l.end_to_end.as_ref())
            .map(|h| ms(h.value_at_quantile(p)))
    };
    let fsync_p99 = fsync.map(|h| ms(h.value_at_quantile(0.99)));
    vec![
        bar(
            "produce 1 KiB x8 acks=1: sluice / sink MB/s",
            ratio(
                mb(ours_1k),
                mb(produce(records, Kind::Sink, 1024, 8, Acks::One)),
            ),
            Some(0.5),
            true,
        ),
        bar(
            "produce 1 KiB x8 acks=1: sluice / tansu MB/s",
            ratio(
                mb(ours_1k),
                mb(produce(records, Kind::Tansu, 1024, 8, Acks::One)),
            ),
            Some(2.5),
            true,
        ),
        bar(
            "produce 100 B x8 acks=1: sluice / sink msgs/s",
            ratio(
                msgs(produce(records, Kind::Sluice, 100, 8, Acks::One)),
                msgs(produce(records, Kind::Sink, 100, 8, Acks::One)),
            ),
            Some(0.85),
            true,
        ),
        bar(
            "produce 1 KiB x8: sluice acks=all / acks=1 MB/s",
            ratio(mb(ours_1k_all), mb(ours_1k)),
            Some(0.7),
            true,
        ),
        bar(
            "produce 1 KiB x8 acks=1: GB/s per broker core",
            ours_1k.map(|t| t.gb_per_broker_core_s()),
            Some(1.0),
            true,
        ),
        bar(
            "consume 1 KiB x8: sluice / tansu MB/s",
            ratio(
                mb(consume(records, Kind::Sluice)),
                mb(consume(records, Kind::Tansu)),
            ),
            Some(2.0),
            true,
        ),
        bar("e2e acks=1 p99 ms", e2e(Acks::One, 0.99), Some(5.0), false),
        bar(
            "e2e acks=1 p999 ms",
            e2e(Acks::One, 0.999),
            Some(10.0),
            false,
        ),
        bar(
            "e2e acks=all p99 ms (<= 2 x fdatasync p99 + 3)",
            e2e(Acks::All, 0.99),
            fsync_p99.map(|p| 2.0 * p + 3.0),
            false,
        ),
    ]
}

pub fn print_bars(bars: &[Value]) {
    eprintln!();
    for bar in bars {
        let verdict = match bar["pass"].as_bool() {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "n/a",
        };
        eprintln!(
            "{verdict:<4}  {:<48} measured {:>8} {} {}",
            bar["bar"].as_str().unwrap_or_default(),
            cell(bar["measured"].as_f64(), 3),
            bar["rule"].as_str().unwrap_or_default(),
            cell(bar["needed"].as_f64(), 3),
        );
    }
}
