//! Which runs a `kafka-load` invocation makes, and running them: each run on a fresh target
//! process, its JSON line printed as soon as it is done.

use std::time::Duration;

use serde_json::{json, Value};

use super::client::{create_topic, Acks};
use super::consume::{self, ConsumeSpec};
use super::latency::{self, Latency, LatencySpec};
use super::produce::{self, ProduceSpec, Throughput};
use super::targets::{Binaries, Kind, Running};
use crate::process::loadavg;
use crate::{round, BenchResult};

pub const TOPIC: &str = "kafka-load";

#[derive(Debug, Clone, Copy)]
pub enum Case {
    Produce(ProduceSpec),
    Consume(ConsumeSpec),
    Latency(LatencySpec),
}

#[derive(Debug, Clone)]
pub enum Outcome {
    Throughput(Throughput),
    Latency(Latency),
}

/// One run: a target, a case, what it measured.
#[derive(Debug, Clone)]
pub struct Record {
    pub target: Kind,
    pub case: Case,
    pub outcome: Outcome,
}

impl Case {
    pub fn partitions(&self) -> i32 {
        match self {
            Case::Produce(s) => s.partitions,
            Case::Consume(s) => s.partitions,
            Case::Latency(s) => s.partitions,
        }
    }

    /// A short name, e.g. `produce-1024x8-acks1`, `consume-1024x8`, `latency-1024x1-acksall`.
    pub fn label(&self) -> String {
        match self {
            Case::Produce(s) => {
                format!("produce-{}x{}-acks{}", s.size, s.partitions, s.acks.name())
            }
            Case::Consume(s) => format!("consume-{}x{}", s.size, s.partitions),
            Case::Latency(s) => {
                format!("latency-{}x{}-acks{}", s.size, s.partitions, s.acks.name())
            }
        }
    }

    /// Whether `target` can serve this case. The sink keeps nothing to consume, but its
    /// acknowledgement latency is the client's and the machine's own floor (acks mean
    /// nothing to it, so once).
    pub fn applies_to(&self, target: Kind) -> bool {
        match self {
            Case::Produce(_) => true,
            Case::Consume(_) => target.stores(),
            Case::Latency(s) => target.stores() || s.acks == Acks::One,
        }
    }
}

/// Runs `case` on a fresh `target` process; the process is stopped (and its data removed)
/// before returning.
pub fn run_one(target: Kind, case: Case, bins: &Binaries, run_id: usize) -> BenchResult<Record> {
    let running = Running::start(target, bins, run_id, case.partitions())?;
    let outcome = run_on(&running, case);
    let stopped = running.stop();
    let outcome = outcome?;
    stopped?;
    Ok(Record {
        target,
        case,
        outcome,
    })
}

fn run_on(running: &Running, case: Case) -> BenchResult<Outcome> {
    if running.kind != Kind::Sink {
        create_topic(&running.bootstrap, TOPIC, case.partitions())?;
    }
    Ok(match case {
        Case::Produce(spec) => {
            Outcome::Throughput(produce::run(&running.bootstrap, TOPIC, spec, running.pid)?)
        }
        Case::Consume(spec) => {
            Outcome::Throughput(consume::run(&running.bootstrap, TOPIC, spec, running.pid)?)
        }
        Case::Latency(spec) => Outcome::Latency(latency::run(
            &running.bootstrap,
            TOPIC,
            spec,
            running.pid,
            running.kind.stores(),
        )?),
    })
}

/// The JSON line of one run.
pub fn json_line(record: &Record) -> Value {
    let mut line = json!({
        "bench": "kafka-load",
        "target": record.target.name(),
        "loadavg": loadavg(),
    });
    let extra = match (&record.case, &record.outcome) {
        (Case::Produce(s), Outcome::Throughput(t)) => {
            let mut v = throughput_json(t);
            v["workload"] = json!("produce");
            v["size"] = json!(s.size);
            v["partitions"] = json!(s.partitions);
            v["acks"] = json!(s.acks.name());
            v
        }
        (Case::Consume(s), Outcome::Throughput(t)) => {
            let mut v = throughput_json(t);
            v["workload"] = json!("consume");
            v["size"] = json!(s.size);
            v["partitions"] = json!(s.partitions);
            v
        }
        (Case::Latency(s), Outcome::Latency(l)) => {
            let e2e = l.end_to_end.as_ref();
            let q = |h: Option<&hdrhistogram::Histogram<u64>>, p: f64| {
                h.map(|h| ms(h.value_at_quantile(p)))
            };
            json!({
                "workload": "latency",
                "size": s.size,
                "partitions": s.partitions,
                "acks": s.acks.name(),
                "target_rate": s.rate,
                "achieved_rate": round(l.achieved_rate()),
                "sent": l.sent,
                "received": l.received,
                "e2e_p50_ms": q(e2e, 0.50),
                "e2e_p99_ms": q(e2e, 0.99),
                "e2e_p999_ms": q(e2e, 0.999),
                "e2e_max_ms": e2e.map(|h| ms(h.max())),
                "ack_p50_ms": ms(l.ack.value_at_quantile(0.50)),
                "ack_p99_ms": ms(l.ack.value_at_quantile(0.99)),
                "ack_p999_ms": ms(l.ack.value_at_quantile(0.999)),
                "broker_cores": round(l.cpu.peer() / l.secs),
                "client_cores": round(l.cpu.own / l.secs),
            })
        }
        _ => json!({}),
    };
    if let (Value::Object(line), Value::Object(extra)) = (&mut line, extra) {
        line.extend(extra);
    }
    line
}

fn throughput_json(t: &Throughput) -> Value {
    json!({
        "messages": t.messages,
        "bytes": t.bytes,
        "secs": round(t.secs),
        "mb_per_s": round(t.mb_per_s()),
        "msgs_per_s": round(t.msgs_per_s()),
        "broker_cpu_secs": round(t.cpu.peer()),
        "broker_sys_secs": round(t.cpu.peer_sys),
        "broker_cores": round(t.broker_cores()),
        "gb_per_broker_core_s": round(t.gb_per_broker_core_s()),
        "client_cores": round(t.client_cores()),
    })
}

/// µs to ms, 3 decimals.
pub fn ms(us: u64) -> f64 {
    (us as f64 / 1000.0 * 1000.0).round() / 1000.0
}

/// The cases of a full run or a smoke run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub smoke: bool,
    pub produce_duration: Duration,
    pub produce_max_bytes: u64,
    pub consume_bytes: u64,
    pub latency_duration: Duration,
    pub latency_rate: f64,
    pub latency_partitions: i32,
}

pub fn cases(settings: &Settings) -> Vec<Case> {
    let produce = |size, partitions, acks| {
        Case::Produce(ProduceSpec {
            size,
            partitions,
            acks,
            duration: settings.produce_duration,
            max_bytes: settings.produce_max_bytes,
        })
    };
    let mut cases = Vec::new();
    if settings.smoke {
        cases.push(produce(1024, 8, Acks::One));
        cases.push(produce(1024, 8, Acks::All));
        cases.push(produce(100, 8, Acks::One));
    } else {
        for size in [1024, 100] {
            for partitions in [8, 1] {
                for acks in [Acks::One, Acks::All] {
                    cases.push(produce(size, partitions, acks));
                }
            }
        }
    }
    cases.push(Case::Consume(ConsumeSpec {
        size: 1024,
        partitions: 8,
        bytes: settings.consume_bytes,
    }));
    for acks in [Acks::One, Acks::All] {
        cases.push(Case::Latency(LatencySpec {
            size: 1024,
            partitions: settings.latency_partitions,
            acks,
            rate: settings.latency_rate,
            duration: settings.latency_duration,
        }));
    }
    cases
}
