//! The `sluice` command line.
//!
//! `sluice serve` runs the broker; `sluice config check` prints the configuration `serve` would
//! run with; `sluice health` asks a running broker's `/ready` (a container health check);
//! `sluice inspect-log` reads a partition directory.

mod admin;
mod broker;
mod cli;
mod cluster;
mod config;
mod group;
mod inspect;
mod kafka;
mod memory;
mod metrics;
mod native;
mod partition;
mod producer;
mod shard;
mod topics;
mod txn;

/// jemalloc rather than glibc's allocator: the broker frees and allocates megabyte-sized
/// buffers per request (batches copied out of request frames, staging chunks, read windows);
/// glibc returns such memory to the kernel, so every request paid for fresh pages again
/// (page faults dominated the produce path's system time, benches/RESULTS.md). Its options
/// are compiled in from `.cargo/config.toml` (`JEMALLOC_SYS_WITH_MALLOC_CONF`): without them
/// frames over 8 MiB were unmapped on every free, decayed pages unmapped, not MADV_FREE'd, and
/// freed batches that had merged into large free extents not reused at all.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "sluice",
    version,
    about = "A Kafka-wire-compatible streaming broker"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Load flags, SLUICE_* environment and the --config file exactly as `serve` does,
    /// validate, and print the effective configuration (as TOML that loads back to it).
    /// Exit status 2, with the key and file named, when something is invalid.
    Check(config::ServeArgs),
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start-up; boxing buys nothing"
)]
enum Command {
    /// Run the broker (single node). With no flags: data in ./sluice-data, Kafka on
    /// 127.0.0.1:9092, admin HTTP on 127.0.0.1:9644.
    Serve(config::ServeArgs),
    /// Configuration tools.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Exit 0 if the broker's admin listener answers `GET /ready` with 200, else 1 (for
    /// container health checks: the runtime image has no curl).
    Health {
        /// The admin listener, HOST:PORT. A wildcard address (0.0.0.0, [::]) means this host.
        #[arg(long, env = "SLUICE_ADMIN_LISTEN", default_value = "127.0.0.1:9644")]
        admin: std::net::SocketAddr,
    },
    /// Validate and list the batches of a partition log directory, like kafka-dump-log.
    /// Reads only; never repairs (opening the log in the broker does that).
    InspectLog {
        /// A partition directory holding `<base_offset>.log` segment files.
        dir: PathBuf,
        /// Print one line per batch, not just per segment.
        #[arg(long)]
        batches: bool,
    },
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => return serve(&args),
        Command::Config {
            command: ConfigCommand::Check(args),
        } => return config_check(&args),
        Command::Health { admin } => return health(admin),
        Command::Client(command) => return cli::run(command),
        Command::InspectLog { dir, batches } => {
            init_logging(config::LogFormat::Text);
            inspect::run(&dir, batches, &mut std::io::stdout().lock())
        }
    };
    match result {
        Ok(inspect::Verdict::Clean) => ExitCode::SUCCESS,
        Ok(inspect::Verdict::Damaged) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, as text or JSON lines; `RUST_LOG` filters (without it, info and up).
fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: not in files, journald or `docker logs`.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => builder.init(),
        config::LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

fn serve(args: &config::ServeArgs) -> ExitCode {
    let config = match config::BrokerConfig::load(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_format);
    if let Err(e) = metrics::install() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let data_dir = config.data_dir.clone();
    let broker = match broker::Broker::start(config) {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Signals are caught from here on: a SIGTERM sent as soon as the ready line appears must
    // stop the broker cleanly, not kill it with the default action.
    let signals = ShutdownSignals::install();
    // One stable line that scripts and tests parse for the bound addresses.
    println!(
        "sluice ready kafka={} native={} admin={} data={} backend={} shards={}",
        broker.kafka_addr,
        broker.native_addr,
        broker.admin_addr,
        data_dir.display(),
        broker.storage_backend,
        broker.shards
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    ShutdownSignals::wait(signals);
    tracing::info!("shutting down");
    broker.shutdown();
    ExitCode::SUCCESS
}

/// `sluice config check`: the configuration `serve` would run with, or what is wrong with it.
fn config_check(args: &config::ServeArgs) -> ExitCode {
    init_logging(config::LogFormat::Text);
    match config::BrokerConfig::load(args) {
        Ok(config) => {
            let source = match &args.config {
                Some(path) => format!("flags, SLUICE_* environment and {}", path.display()),
                None => "flags, SLUICE_* environment and defaults (no --config file)".to_owned(),
            };
            print!(
                "# Effective Sluice configuration ({source}): valid.\n{}",
                config.to_toml()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `sluice health`: `GET /ready` on the admin listener; 0 when it answers 200.
fn health(mut admin: std::net::SocketAddr) -> ExitCode {
    use std::io::{Read, Write};
    const TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
    if admin.ip().is_unspecified() {
        let local: std::net::IpAddr = if admin.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        admin.set_ip(local);
    }
    let answer = (|| -> std::io::Result<String> {
        let mut stream = std::net::TcpStream::connect_timeout(&admin, TIMEOUT)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        write!(
            stream,
            "GET /ready HTTP/1.1\r\nhost: {admin}\r\nconnection: close\r\n\r\n"
        )?;
        let mut head = Vec::new();
        stream.take(4096).read_to_end(&mut head)?;
        Ok(String::from_utf8_lossy(&head).into_owned())
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") => {
            println!("ready");
            ExitCode::SUCCESS
        }
        Ok(text) => {
            let status = text.lines().next().unwrap_or_default();
            let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b.trim());
            println!("not ready: {status} {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("not ready: cannot ask {admin}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGINT and SIGTERM handlers, installed before the broker says it is ready.
struct ShutdownSignals {
    runtime: tokio::runtime::Runtime,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignals {
    /// None (with a message) if the handlers cannot be installed; the broker then runs until
    /// it is killed.
    fn install() -> Option<ShutdownSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("error: cannot wait for signals: {e}");
                return None;
            }
        };
        let _guard = runtime.enter();
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(ShutdownSignals { runtime, term, int }),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("error: cannot install signal handlers: {e}");
                None
            }
        }
    }

    /// Blocks until SIGINT or SIGTERM (forever without handlers).
    fn wait(signals: Option<ShutdownSignals>) {
        let Some(mut signals) = signals else {
            loop {
                std::thread::park();
            }
        };
        signals.runtime.block_on(async {
            tokio::select! {
                _ = signals.term.recv() => {}
                _ = signals.int.recv() => {}
            }
        });
    }
}

#[cfg(test)]
mod allocator_tests {
    /// Minor page faults of the calling thread so far (`/proc/thread-self/stat`, field 10), so
    /// that tests running on other threads do not count.
    fn thread_minor_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        // The command name (field 2) is in parentheses and may hold spaces: count after it.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        after_name.split(' ').nth(7).unwrap().parse().unwrap()
    }

    /// Buffers written through (never zeros: `vec![0; n]` may take untouched zeroed pages).
    fn touched_buffers(count: usize, len: usize) -> Vec<Vec<u8>> {
        (0..count).map(|i| vec![1 + (i % 255) as u8; len]).collect()
    }

    /// The compiled-in jemalloc options (`.cargo/config.toml`) must let freed batch-sized
    /// buffers be reused without faulting their pages in again, however large the free extent
    /// they merged into (`lg_extent_max_active_fit`): the tail cache frees batches by the
    /// thousand, and the next batches must not each cost fresh pages.
    #[test]
    fn freed_batch_buffers_are_reused_without_new_page_faults() {
        const BUFFERS: usize = 512;
        const LEN: usize = 512 * 1024;
        drop(touched_buffers(BUFFERS, LEN));
        let before = thread_minor_faults();
        let again = touched_buffers(BUFFERS, LEN);
        let faults = thread_minor_faults() - before;
        drop(again);
        let fresh = (BUFFERS * LEN / 4096) as u64;
        // Measured: 50 with the option; 10,000 (1 in 6 pages) without it, and more the more
        // memory was freed (2 in 3 pages for 512 MiB).
        assert!(
            faults < fresh / 20,
            "{faults} page faults reallocating what was just freed ({fresh} if all were fresh): \
             is JEMALLOC_SYS_WITH_MALLOC_CONF from .cargo/config.toml compiled in?"
        );
    }
}
