//! A real `sluice serve` process on ephemeral ports, as the benches start it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchResult;

/// A running broker; killed on drop if not stopped.
#[derive(Debug)]
pub struct Broker {
    binary: PathBuf,
    data: PathBuf,
    shards: Option<usize>,
    extra_args: Vec<String>,
    child: Option<Child>,
    pub kafka: String,
    /// The native protocol's listener (`sluice bench --broker`).
    pub native: String,
    pub admin: String,
    pub backend: String,
    pub shard_count: String,
}

impl Broker {
    /// Starts `binary serve` on 127.0.0.1:0 with `data` as its data directory.
    pub fn start(binary: &Path, data: &Path, shards: Option<usize>) -> BenchResult<Broker> {
        Broker::start_with(binary, data, shards, &[])
    }

    /// As `start`, with further `serve` flags.
    pub fn start_with(
        binary: &Path,
        data: &Path,
        shards: Option<usize>,
        extra_args: &[String],
    ) -> BenchResult<Broker> {
        let mut broker = Broker {
            binary: binary.to_owned(),
            data: data.to_owned(),
            shards,
            extra_args: extra_args.to_vec(),
            child: None,
            kafka: String::new(),
            native: String::new(),
            admin: String::new(),
            backend: String::new(),
            shard_count: String::new(),
        };
        broker.launch()?;
        Ok(broker)
    }

    /// (Re)starts the process; waits for its `sluice ready` line.
    pub fn launch(&mut self) -> BenchResult<()> {
        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .args([
                "--kafka-listen",
                "127.0.0.1:0",
                "--admin-listen",
                "127.0.0.1:0",
                // Never the default 9192: with SO_REUSEPORT, brokers would share it silently.
                "--native-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&self.data)
            .args(&self.extra_args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(shards) = self.shards {
            command.args(["--shards", &shards.to_string()]);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout from the broker")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        self.child = Some(child);
        if !line.starts_with("sluice ready ") {
            return Err(format!("the broker did not start: first line {line:?}").into());
        }
        let field = |name: &str| -> BenchResult<String> {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
                .ok_or_else(|| format!("no {name}= in {line:?}").into())
        };
        self.kafka = field("kafka")?;
        self.native = field("native")?;
        self.admin = field("admin")?;
        self.backend = field("backend")?;
        self.shard_count = field("shards")?;
        Ok(())
    }

    pub fn pid(&self) -> BenchResult<u32> {
        Ok(self.child.as_ref().ok_or("broker not running")?.id())
    }

    /// SIGTERM, and a clean exit within 30 s.
    pub fn stop(&mut self) -> BenchResult<()> {
        let Some(child) = self.child.take() else {
            return Ok(());
        };
        stop_child(child, "the broker")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// SIGTERM, then waits up to 30 s for a clean exit (killed after that).
pub fn stop_child(mut child: Child, what: &str) -> BenchResult<()> {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait()? {
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{what} exited with {status}").into())
            };
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{what} did not stop within 30 s of SIGTERM").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `sluice` binary: `explicit`, else target/release/sluice of this workspace (or of
/// `CARGO_TARGET_DIR`).
pub fn broker_binary(explicit: Option<&Path>) -> BenchResult<PathBuf> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => sibling_binary("sluice"),
    };
    if !path.is_file() {
        return Err(format!(
            "no broker binary at {}: build it first with `cargo build --release --bin sluice` \
             (or pass --broker PATH)",
            path.display()
        )
        .into());
    }
    Ok(path)
}

/// A binary of the same build as the running one (same directory), falling back to the
/// workspace's target/release.
pub fn sibling_binary(name: &str) -> PathBuf {
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_owned))
    {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/release")
        .join(name)
}

/// `GET path` from a broker's admin listener (HTTP/1.1, the connection closed after the
/// answer): the status and the body.
pub fn admin_get(admin: &str, path: &str) -> BenchResult<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(admin)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let raw = String::from_utf8(raw)?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("no end of HTTP head")?;
    let status = head.get(9..12).ok_or("short status line")?.parse::<u16>()?;
    Ok((status, body.to_owned()))
}
