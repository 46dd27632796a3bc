//! What every bench workload reports: counts, a latency histogram, and a progress bar.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Latencies in microseconds, 1 µs to 1 hour, 3 significant digits.
pub fn new_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).map_err(|e| format!("histogram: {e}"))
}

/// Records one latency (saturating at the histogram's top).
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, histogram.high());
    let _ = histogram.record(micros);
}

/// What an e2e consumer has received: each value's latency from the intended send time
/// stamped in its first 8 bytes (`super::payload`), and the records and bytes counted.
pub struct Receipts {
    pub histogram: Histogram<u64>,
    pub records: u64,
    pub bytes: u64,
}

impl Receipts {
    pub fn new() -> Result<Receipts, String> {
        Ok(Receipts {
            histogram: new_histogram()?,
            records: 0,
            bytes: 0,
        })
    }

    /// Counts one received value, timed now. A value too short to carry a stamp is not one
    /// the bench sent, and is skipped.
    pub fn note(&mut self, value: &[u8], progress: &Progress) {
        let Some(stamp) = value.first_chunk::<8>() else {
            return;
        };
        let intended = u64::from_le_bytes(*stamp);
        record(
            &mut self.histogram,
            Duration::from_nanos(super::epoch_ns().saturating_sub(intended)),
        );
        self.records += 1;
        self.bytes += value.len() as u64;
        progress.inc(1);
    }
}

/// The final numbers of a run.
#[derive(Debug)]
pub struct Summary {
    pub workload: &'static str,
    pub protocol: &'static str,
    pub messages: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub errors: u64,
    /// None for workloads that measure no latency (consume).
    pub latency: Option<Histogram<u64>>,
    /// e2e: the schedule's rate.
    pub target_rate: Option<f64>,
}

impl Summary {
    fn seconds(&self) -> f64 {
        self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds()
    }

    pub fn msgs_per_s(&self) -> f64 {
        self.messages as f64 / self.seconds()
    }

    fn percentiles_ms(&self) -> Option<[(&'static str, f64); 5]> {
        let h = self.latency.as_ref().filter(|h| !h.is_empty())?;
        let ms = |us: u64| us as f64 / 1000.0;
        Some([
            ("p50", ms(h.value_at_quantile(0.50))),
            ("p99", ms(h.value_at_quantile(0.99))),
            ("p999", ms(h.value_at_quantile(0.999))),
            ("max", ms(h.max())),
            ("mean", h.mean() / 1000.0),
        ])
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "bench {} ({}): {} messages, {:.1} MB in {:.2} s{}\n  throughput: {:.2} MB/s, {:.0} msgs/s{}\n",
            self.workload,
            self.protocol,
            self.messages,
            self.bytes as f64 / 1e6,
            self.seconds(),
            if self.errors > 0 {
                format!(", {} errors", self.errors)
            } else {
                String::new()
            },
            self.mb_per_s(),
            self.msgs_per_s(),
            self.target_rate
                .map(|r| format!(" (target {r:.0} msgs/s)"))
                .unwrap_or_default(),
        );
        if let Some(p) = self.percentiles_ms() {
            out.push_str(&format!(
                "  latency ms: p50 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  mean {:.3}\n",
                p[0].1, p[1].1, p[2].1, p[3].1, p[4].1
            ));
        }
        out
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut json = serde_json::json!({
            "workload": self.workload,
            "protocol": self.protocol,
            "messages": self.messages,
            "bytes": self.bytes,
            "errors": self.errors,
            "seconds": self.seconds(),
            "mb_per_s": self.mb_per_s(),
            "msgs_per_s": self.msgs_per_s(),
        });
        if let Some(rate) = self.target_rate {
            json["target_rate"] = serde_json::json!(rate);
        }
        if let Some(p) = self.percentiles_ms() {
            json["latency_ms"] = p
                .iter()
                .map(|(name, v)| (name.to_string(), serde_json::json!(v)))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        json
    }
}

/// A progress bar on stderr when it is a terminal; nothing otherwise (logs, pipes, CI).
/// Clones share the bar (e2e counts receipts on the consumer's thread).
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    start: Instant,
}

impl Progress {
    /// `total`: records expected, or None for a run bounded by time.
    pub fn new(total: Option<u64>) -> Progress {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        if std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            let template = match total {
                Some(_) => "{bar:40} {pos}/{len} {per_sec} eta {eta}",
                None => "{spinner} {pos} records {per_sec} {elapsed}",
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
        } else {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        Progress {
            bar,
            start: Instant::now(),
        }
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    pub fn finish(&self) -> Duration {
        self.bar.finish_and_clear();
        self.start.elapsed()
    }
}
