//! The client side of the `sluice` binary, on the native protocol client
//! (`protocol::client`): `topic`, `produce`, `consume` and `bench`. One file per command
//! group; this file has what they share (the broker address, the runtime, error reporting).

pub mod bench;
pub mod consume;
pub mod produce;
pub mod topic;

use std::process::ExitCode;

use clap::{Args, Subcommand};
use protocol::client::{Client, ClientConfig, ClientError};

/// The client commands, flattened into the top-level `sluice` command.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Create, list, describe and delete topics (native protocol).
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
        #[command(flatten)]
        broker: BrokerArgs,
    },
    /// Produce lines from stdin or a file, one record per line.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// Measure produce, consume and end-to-end throughput and latency.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// Where the broker's native listener is.
#[derive(Args, Debug, Clone)]
pub struct BrokerArgs {
    /// The broker's native listener, HOST:PORT.
    #[arg(long, global = true, env = "SLUICE_BROKER", default_value = protocol::client::DEFAULT_ADDR)]
    pub broker: String,
}

impl BrokerArgs {
    /// Connects once; "nothing listens" gets a hint instead of a bare errno.
    pub async fn connect(&self) -> Result<Client, String> {
        Client::connect(ClientConfig::new(&self.broker))
            .await
            .map_err(|e| explain(&e, &self.broker))
    }
}

/// An error message for a person: what failed and, where there is one, what to do.
pub fn explain(error: &ClientError, broker: &str) -> String {
    if error.is_connection_refused() {
        return format!(
            "nothing listens on {broker}: start a broker with `sluice serve` or pass --broker HOST:PORT"
        );
    }
    error.to_string()
}

/// Runs a client command on a single-threaded runtime; errors go to stderr, exit status 1.
pub fn run(command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match command {
            ClientCommand::Topic { command, broker } => topic::run(command, &broker).await,
            ClientCommand::Produce(args) => produce::run(args).await,
            ClientCommand::Consume(args) => consume::run(args).await,
            ClientCommand::Bench { command } => bench::run(command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `NAME=VALUE` (topic configs, headers).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {s:?}")),
    }
}
