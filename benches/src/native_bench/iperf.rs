//! The loopback reference: one TCP stream's bandwidth over 127.0.0.1, measured with iperf3
//! (Debian's `iperf3` package), the ceiling a single producer connection could reach.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::BenchResult;

/// Single-stream loopback bandwidth in MB/s (10^6 bytes), received side, over `secs` seconds.
pub fn loopback_mb_per_s(secs: u32) -> BenchResult<f64> {
    let port = free_port()?;
    let port_arg = port.to_string();
    // `-1`: the server exits after one test, so nothing is left running.
    let mut server = Command::new("iperf3")
        .args(["-s", "-1", "-B", "127.0.0.1", "-p", &port_arg])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run iperf3 (apt-get install -y iperf3): {e}"))?;
    let outcome = run_client(&port_arg, secs);
    if outcome.is_err() {
        let _ = server.kill();
    }
    let _ = server.wait();
    outcome
}

fn run_client(port: &str, secs: u32) -> BenchResult<f64> {
    // The server may not be listening yet: retry the connection for a few seconds.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let output = Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", port, "-t", &secs.to_string(), "-J"])
            .stderr(Stdio::null())
            .output()?;
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        if let Some(bps) = report["end"]["sum_received"]["bits_per_second"].as_f64() {
            return Ok(bps / 8.0 / 1e6);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "iperf3 client gave no result: {}",
                report["error"].as_str().unwrap_or("no JSON")
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A port nothing listens on now (bound to 0, then released for iperf3 to take).
fn free_port() -> BenchResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
