//! The `sluice` command line.
//!
//! `sluice serve` runs the broker; `sluice inspect-log` reads a partition directory.

mod admin;
mod broker;
mod cluster;
mod config;
mod group;
mod inspect;
mod kafka;
mod partition;
mod producer;
mod shard;
mod topics;
mod txn;

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
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once at start-up; boxing buys nothing"
)]
enum Command {
    /// Run the broker (single node). With no flags: data in ./sluice-data, Kafka on
    /// 127.0.0.1:9092, admin HTTP on 127.0.0.1:9644.
    Serve(config::ServeArgs),
    /// Validate and list the batches of a partition log directory, like kafka-dump-log.
    /// Reads only; never repairs (opening the log in the broker does that).
    InspectLog {
        /// A partition directory holding `<base_offset>.log` segment files.
        dir: PathBuf,
        /// Print one line per batch, not just per segment.
        #[arg(long)]
        batches: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        // `RUST_LOG` filters; without it a server logs at info.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => return serve(&args),
        Command::InspectLog { dir, batches } => {
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

fn serve(args: &config::ServeArgs) -> ExitCode {
    let config = match config::BrokerConfig::load(args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let data_dir = config.data_dir.clone();
    let broker = match broker::Broker::start(config) {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // One stable line that scripts and tests parse for the bound addresses.
    println!(
        "sluice ready kafka={} admin={} data={} backend={} shards={}",
        broker.kafka_addr,
        broker.admin_addr,
        data_dir.display(),
        broker.storage_backend,
        broker.shards
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    wait_for_signal();
    tracing::info!("shutting down");
    broker.shutdown();
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot wait for signals: {e}");
            return;
        }
    };
    runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    });
}
