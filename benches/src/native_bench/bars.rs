//! Issue #6's performance bars, each a ratio of two figures measured in the same run, with a
//! verdict.

use serde_json::{json, Value};

use super::run::Measured;
use crate::round;

/// A produce or consume workload measured over both protocols.
#[derive(Debug, Clone)]
pub struct Pair {
    /// e.g. `produce 1024B x8 acks=1`.
    pub label: String,
    pub size: usize,
    pub native: Measured,
    pub kafka: Measured,
}

/// The e2e runs at one acks setting: each protocol at half its own maximum rate, and native
/// again at the Kafka path's rate (the same load, for a like-for-like latency comparison).
#[derive(Debug, Clone)]
pub struct E2e {
    pub acks: &'static str,
    pub native: Measured,
    pub kafka: Measured,
    pub native_at_kafka_rate: Option<Measured>,
    /// Both protocols at a light 1,000 records/s (no bar: the latency floor, for the record).
    pub light_load: Vec<Measured>,
}

/// The references measured in the same run.
#[derive(Debug, Clone, Copy)]
pub struct References {
    pub loopback_mb_per_s: f64,
    pub fdatasync_p99_ms: f64,
}

/// Which way a ratio must go.
#[derive(Debug, Clone, Copy)]
enum Need {
    AtLeast(f64),
    AtMost(f64),
    Below(f64),
}

impl Need {
    fn met(self, ratio: f64) -> bool {
        match self {
            Need::AtLeast(bar) => ratio >= bar,
            Need::AtMost(bar) => ratio <= bar,
            Need::Below(bar) => ratio < bar,
        }
    }

    fn text(self) -> String {
        match self {
            Need::AtLeast(bar) => format!(">= {bar}"),
            Need::AtMost(bar) => format!("<= {bar}"),
            Need::Below(bar) => format!("< {bar}"),
        }
    }
}

/// One bar on one case.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub bar: &'static str,
    pub case: String,
    pub native: f64,
    pub reference: f64,
    pub unit: &'static str,
    pub ratio: f64,
    need: Need,
}

impl Verdict {
    fn new(
        bar: &'static str,
        case: &str,
        native: f64,
        reference: f64,
        unit: &'static str,
        need: Need,
    ) -> Verdict {
        Verdict {
            bar,
            case: case.to_owned(),
            native,
            reference,
            unit,
            ratio: native / reference,
            need,
        }
    }

    pub fn pass(&self) -> bool {
        self.need.met(self.ratio)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "bar": self.bar,
            "case": self.case,
            "native": round(self.native),
            "reference": round(self.reference),
            "unit": self.unit,
            "ratio": round(self.ratio),
            "need": self.need.text(),
            "pass": self.pass(),
        })
    }
}

/// Every bar the measurements allow, in the order.
pub fn verdicts(produce: &[Pair], consume: &[Pair], e2e: &[E2e], refs: References) -> Vec<Verdict> {
    let mut out = Vec::new();
    for p in produce.iter().filter(|p| p.size == 1024) {
        out.push(Verdict::new(
            "1KiB produce MB/s vs Kafka path",
            &p.label,
            p.native.mb_per_s(),
            p.kafka.mb_per_s(),
            "MB/s",
            Need::AtLeast(1.5),
        ));
        out.push(Verdict::new(
            "1KiB produce broker CPU/MB vs Kafka path",
            &p.label,
            p.native.broker_cpu_ms_per_mb(),
            p.kafka.broker_cpu_ms_per_mb(),
            "CPU-ms/MB",
            Need::AtMost(1.0),
        ));
        out.push(Verdict::new(
            "1KiB produce MB/s vs loopback TCP",
            &p.label,
            p.native.mb_per_s(),
            refs.loopback_mb_per_s,
            "MB/s",
            Need::AtLeast(0.45),
        ));
    }
    for p in produce.iter().filter(|p| p.size == 100) {
        out.push(Verdict::new(
            "100B produce msgs/s vs Kafka path",
            &p.label,
            p.native.msgs_per_s(),
            p.kafka.msgs_per_s(),
            "msgs/s",
            Need::AtLeast(2.0),
        ));
    }
    for p in consume {
        out.push(Verdict::new(
            "consume MB/s vs Kafka path",
            &p.label,
            p.native.mb_per_s(),
            p.kafka.mb_per_s(),
            "MB/s",
            Need::AtLeast(1.0),
        ));
        out.push(Verdict::new(
            "consume broker CPU/MB vs Kafka path",
            &p.label,
            p.native.broker_cpu_ms_per_mb(),
            p.kafka.broker_cpu_ms_per_mb(),
            "CPU-ms/MB",
            Need::Below(1.0),
        ));
    }
    for e in e2e {
        let rate = |m: &Measured| m.summary["target_rate"].as_f64().unwrap_or(f64::NAN);
        out.push(Verdict::new(
            "e2e p99 at half max rate vs Kafka path",
            &format!(
                "acks={} native@{:.0}/s kafka@{:.0}/s",
                e.acks,
                rate(&e.native),
                rate(&e.kafka)
            ),
            e.native.p99_ms(),
            e.kafka.p99_ms(),
            "ms",
            Need::Below(1.0),
        ));
        if let Some(same) = &e.native_at_kafka_rate {
            out.push(Verdict::new(
                "e2e p99 at the same rate vs Kafka path",
                &format!("acks={} both@{:.0}/s", e.acks, rate(&e.kafka)),
                same.p99_ms(),
                e.kafka.p99_ms(),
                "ms",
                Need::Below(1.0),
            ));
        }
        if e.acks == "all" {
            out.push(Verdict::new(
                "e2e p99 acks=all vs disk fdatasync p99",
                &format!("acks=all native@{:.0}/s", rate(&e.native)),
                e.native.p99_ms(),
                refs.fdatasync_p99_ms,
                "ms",
                Need::AtMost(1.5),
            ));
        }
    }
    out
}

/// The table of verdicts, as Markdown (stderr keeps stdout to JSON lines).
pub fn print_table(verdicts: &[Verdict]) {
    eprintln!("| bar | case | native | reference | unit | ratio | need | verdict |");
    eprintln!("|---|---|---:|---:|---|---:|---|---|");
    for v in verdicts {
        eprintln!(
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} |",
            v.bar,
            v.case,
            figure(v.native),
            figure(v.reference),
            v.unit,
            v.ratio,
            v.need.text(),
            if v.pass() { "PASS" } else { "MISS" }
        );
    }
}

/// Figures to a sensible precision for their size.
fn figure(value: f64) -> String {
    if value >= 1000.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.3}")
    }
}
