//! The `sluice` command line.
//!
//! Today it carries the operator tools of the storage engine; `sluice serve` (the broker) is
//! added by the Kafka front end on top of the same engine.

mod inspect;

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
enum Command {
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
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
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
