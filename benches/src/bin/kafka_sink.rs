//! `kafka-sink`: a Kafka endpoint that acknowledges every produce at once and stores nothing;
//! `kafka-load` measures its own ceiling against it. Prints `kafka-sink ready kafka=HOST:PORT`.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser, Debug)]
#[command(
    name = "kafka-sink",
    about = "Acknowledges Kafka produce requests, stores nothing"
)]
struct Args {
    /// Listen address (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Partitions reported for every topic.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.partitions < 1 {
        eprintln!("kafka-sink: --partitions must be positive");
        return ExitCode::FAILURE;
    }
    let listener = match TcpListener::bind(&args.listen) {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("kafka-sink: cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("kafka-sink ready kafka={addr}"),
        Err(e) => {
            eprintln!("kafka-sink: {e}");
            return ExitCode::FAILURE;
        }
    }
    match sluice_benches::kafka_load::sink::serve(listener, args.partitions) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kafka-sink: {e}");
            ExitCode::FAILURE
        }
    }
}
