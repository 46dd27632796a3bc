//! One `sluice bench ... --json` child process against the running broker, with the broker's
//! CPU (utime+stime from `/proc/<pid>/stat`, every thread) over the child's lifetime and the
//! child's own CPU (getrusage of waited-for children).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{json, Value};

use crate::process::{children_cpu_secs, loadavg, CpuMeter};
use crate::sluice::Broker;
use crate::{round, BenchResult};

/// Which protocol a `sluice bench` run speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Native,
    Kafka,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Native => "native",
            Protocol::Kafka => "kafka",
        }
    }
}

/// What one run measured: the bench's own JSON summary plus CPU.
#[derive(Debug, Clone)]
pub struct Measured {
    /// `sluice bench --json`'s summary (mb_per_s, msgs_per_s, bytes, latency_ms, ...).
    pub summary: Value,
    /// Broker CPU seconds over the child's lifetime.
    pub broker_cpu_s: f64,
    /// The bench client's CPU seconds.
    pub client_cpu_s: f64,
    pub wall_s: f64,
    /// The command line, as a person would type it.
    pub command: String,
}

impl Measured {
    pub fn mb_per_s(&self) -> f64 {
        self.summary["mb_per_s"].as_f64().unwrap_or(f64::NAN)
    }

    pub fn msgs_per_s(&self) -> f64 {
        self.summary["msgs_per_s"].as_f64().unwrap_or(f64::NAN)
    }

    pub fn p99_ms(&self) -> f64 {
        self.summary["latency_ms"]["p99"]
            .as_f64()
            .unwrap_or(f64::NAN)
    }

    /// Broker CPU milliseconds per MB of payload moved.
    pub fn broker_cpu_ms_per_mb(&self) -> f64 {
        let mb = self.summary["bytes"].as_f64().unwrap_or(0.0) / 1e6;
        self.broker_cpu_s * 1000.0 / mb
    }

    /// The JSON line printed for this run; `case` holds the workload's parameters.
    pub fn json_line(&self, case: Value) -> Value {
        json!({
            "bench": "native-bench",
            "case": case,
            "result": self.summary,
            "broker_cpu_ms_per_mb": round(self.broker_cpu_ms_per_mb()),
            "broker_cores": round(self.broker_cpu_s / self.wall_s),
            "client_cores": round(self.client_cpu_s / self.wall_s),
            "wall_s": round(self.wall_s),
            "command": self.command,
            "loadavg": loadavg(),
        })
    }
}

/// Runs `sluice bench <workload> --protocol P --json <args>` against `broker`, to completion.
pub fn sluice_bench(
    binary: &Path,
    broker: &Broker,
    workload: &str,
    protocol: Protocol,
    args: &[String],
) -> BenchResult<Measured> {
    let mut argv: Vec<String> = vec![
        "bench".into(),
        workload.into(),
        "--protocol".into(),
        protocol.name().into(),
        "--broker".into(),
        broker.native.clone(),
        "--kafka-broker".into(),
        broker.kafka.clone(),
        "--json".into(),
    ];
    argv.extend_from_slice(args);
    let command = format!("{} {}", binary.display(), argv.join(" "));
    let meter = CpuMeter::start(Some(broker.pid()?))?;
    let client_before = children_cpu_secs();
    let started = Instant::now();
    let output = Command::new(binary)
        .args(&argv)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {command}: {e}"))?;
    let wall_s = started.elapsed().as_secs_f64();
    let spent = meter.stop()?;
    let client_cpu_s = children_cpu_secs() - client_before;
    if !output.status.success() {
        return Err(format!("`{command}` exited with {}", output.status).into());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let summary: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .ok_or_else(|| format!("`{command}` printed no JSON summary: {stdout:?}"))?;
    if summary["errors"].as_u64().unwrap_or(0) > 0 {
        return Err(format!("`{command}` reported errors: {summary}").into());
    }
    Ok(Measured {
        summary,
        broker_cpu_s: spent.peer(),
        client_cpu_s,
        wall_s,
        command,
    })
}

/// `sluice topic delete NAME`: frees the disk a finished run's topic holds.
pub fn delete_topic(binary: &Path, broker: &Broker, topic: &str) -> BenchResult<()> {
    let status = Command::new(binary)
        .args(["topic", "delete", topic, "--broker", &broker.native])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()?;
    if !status.success() {
        return Err(format!("deleting topic {topic} failed: {status}").into());
    }
    // The next measurement starts once the disk has finished discarding the topic's files.
    crate::process::wait_for_quiet_disks();
    Ok(())
}
