//! Helpers shared by the benchmark binaries: starting a real broker process and reading CPU
//! time from `/proc`, plus the pieces of `kafka-load`.

pub mod kafka_load;
pub mod native_bench;
pub mod process;
pub mod sluice;

/// The error type every bench returns: any error, with its message.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;
pub type BenchResult<T> = Result<T, BenchError>;

/// Four significant decimals are far below run-to-run noise.
pub fn round(value: f64) -> Option<f64> {
    value
        .is_finite()
        .then(|| (value * 10_000.0).round() / 10_000.0)
}
