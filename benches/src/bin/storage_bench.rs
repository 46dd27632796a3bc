//! `storage-bench`: the partition log's throughput and CPU cost, each figure printed beside a
//! physical reference measured in the same run, on the same disk, with the same bytes.
//!
//! | case | what the log does | reference | bar |
//! |---|---|---|---|
//! | `append_16k_flush_always` | 1 appender, 16 KiB batches, default policy (flush each) | raw O_DIRECT 16 KiB writes, fdatasync each | ratio >= 0.9, CPU <= 0.3 ms/MB |
//! | `append_1m_flush_always` | same with 1 MiB batches | raw 1 MiB writes, fdatasync each | same |
//! | `append_16k_group8` | 8 concurrent appenders sharing flushes (group commit) | raw writes replaying the log's own sync cadence | same |
//! | `append_1m_group8` | same with 1 MiB batches | same | same |
//! | `hot_read` | sequential `read(.., 1 MiB, ..)` served by the tail cache (zero-copy `Bytes`) | memcpy of the same bytes | ratio >= 0.5 |
//! | `hot_read_copy_out` | the same reads, each returned batch copied into a buffer | memcpy of the same bytes | ratio >= 0.5 |
//! | `cold_read` | the same reads after a reopen (empty cache: O_DIRECT + read-ahead) | raw O_DIRECT reads of the segment file, read-ahead-sized blocks | ratio >= 0.8 |
//!
//! Batches hold 1 KiB records and are sized to exactly 16 KiB or 1 MiB, so the log's writes
//! and the reference's writes have the same sizes and alignment; "MB" is 10^6 bytes.
//!
//! Method notes (also printed in the JSON):
//! - Rounds: each case's bytes are split over interleaved rounds (8 by default) in which the log
//!   and its reference take turns, alternating who goes first; figures aggregate all rounds
//!   (total bytes over total time) and `round_ratios` shows the spread. Append cases keep one log
//!   and one raw file open for the whole case, so rounds are time slices of two long-lived append
//!   streams and per-log start-up is paid once, untimed, as a broker pays it once per segment.
//! - CPU is `getrusage(RUSAGE_SELF)` user + sys over the timed section. It covers every thread
//!   of the process: tokio's blocking pool (POSIX backend) and io_uring's io-wq workers, which
//!   are threads of this process, so kernel work punted to them is counted too. The total is
//!   exact; the kernel splits it into user and sys by tick sampling. Context switches
//!   and minor page faults per MB come from the same call and show where the time goes when
//!   `perf` is not at hand.
//! - Sync counting: `PartitionLog` does not expose how many fdatasyncs it did. Every flush that
//!   does work advances the durable offset to a new value, and the task that ran it observes that
//!   value before any other await; flushes that find their data already durable observe a value
//!   some earlier flush produced. So the number of distinct durable offsets observed after the
//!   appenders' waits is exactly the number of data fdatasyncs. The reference replays that
//!   sequence of bytes-per-sync (in rounds where it runs first, the previous round's).
//! - The reference file is preallocated with `fallocate` in the same steps as the log
//!   (`LogConfig::preallocate_bytes`), so both pay for converting unwritten extents.
//! - Batches are built before the timer starts (a broker receives them from the network).

use std::error::Error;
use std::fs::{File, OpenOptions};
use std::hint::black_box;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use storage::batch::testing::seeded;
use storage::batch::ValidatedBatch;
use storage::limits::align_up;
use storage::{AlignedBuf, Backend, BackendChoice, LogConfig, PartitionLog};

type BenchResult<T> = Result<T, Box<dyn Error>>;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
/// Throughput and CPU are per 10^6 bytes, as `dd` and most disk tools report.
const MB: f64 = 1e6;
const APPEND_RATIO_BAR: f64 = 0.9;
const APPEND_CPU_MS_PER_MB_BAR: f64 = 0.3;
const HOT_READ_RATIO_BAR: f64 = 0.5;
const COLD_READ_RATIO_BAR: f64 = 0.8;
const GROUP_APPENDERS: usize = 8;
const READ_CASES: [&str; 3] = ["hot_read", "hot_read_copy_out", "cold_read"];
/// Reads ask for this much per call, like a consumer's fetch.max.bytes.
const READ_MAX_BYTES: usize = MIB;

#[derive(Parser, Debug)]
#[command(
    name = "storage-bench",
    about = "Partition log throughput and CPU beside raw O_DIRECT and memcpy references"
)]
struct Args {
    /// Parent directory for the bench files; must be on a disk-backed file system (O_DIRECT).
    /// A subdirectory is created and removed at the end.
    #[arg(long, default_value = "/var/tmp")]
    dir: PathBuf,
    /// Bytes per case (suffixes K, M, G are binary: 256M = 256 MiB).
    #[arg(long, value_parser = parse_size)]
    bytes: Option<u64>,
    /// Storage backend: auto, io_uring or posix.
    #[arg(long, default_value = "auto")]
    backend: BackendChoice,
    /// Small smoke run (16 MiB per case, two rounds, a few seconds) that proves the binary works.
    #[arg(long)]
    quick: bool,
    /// Interleaved rounds per case: the case's bytes are split over them, the log and its
    /// reference alternate, and figures aggregate all rounds (so a burst of outside disk or CPU
    /// load hits both sides, not one).
    #[arg(long)]
    rounds: Option<usize>,
    /// Keep the bench directory instead of removing it.
    #[arg(long)]
    keep: bool,
    /// Run only the cases whose name contains this text (e.g. `group8`, `read`); for profiling.
    #[arg(long)]
    only: Option<String>,
}

fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => text.split_at(at),
        None => (text, ""),
    };
    let scale = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        other => return Err(format!("unknown size unit '{other}' (use K, M or G)")),
    };
    let value: u64 = digits
        .parse()
        .map_err(|e| format!("bad size '{text}': {e}"))?;
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("size '{text}' overflows"))
}

/// What a run measures, resolved from the flags.
#[derive(Debug)]
struct Settings {
    root: PathBuf,
    bytes_per_case: u64,
    rounds: usize,
    /// Read cases repeat whole passes until this much time has passed in each round, so timer
    /// and rusage granularity stay negligible.
    min_pass_time: Duration,
    only: Option<String>,
}

impl Settings {
    fn from_args(args: &Args) -> Self {
        let (bytes, rounds, min_pass_time) = if args.quick {
            (16 * MIB as u64, 2, Duration::from_millis(50))
        } else {
            (256 * MIB as u64, 8, Duration::from_millis(250))
        };
        Settings {
            root: args
                .dir
                .join(format!("sluice-storage-bench-{}", std::process::id())),
            bytes_per_case: args.bytes.unwrap_or(bytes).max(MIB as u64),
            rounds: args.rounds.unwrap_or(rounds).max(1),
            min_pass_time,
            only: args.only.clone(),
        }
    }

    fn wants(&self, case: &str) -> bool {
        self.only.as_deref().is_none_or(|only| case.contains(only))
    }

    /// A fresh, empty directory for one measurement.
    fn case_dir(&self, name: &str) -> io::Result<PathBuf> {
        let dir = self.root.join(name);
        remove_dir_if_present(&dir)?;
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }
}

fn remove_dir_if_present(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn main() -> BenchResult<()> {
    let args = Args::parse();
    let settings = Settings::from_args(&args);
    let backend = storage::runtime::select_backend(args.backend)?;
    std::fs::create_dir_all(&settings.root)?;
    let outcome = run(backend, &settings);
    if !args.keep {
        remove_dir_if_present(&settings.root)?;
    }
    let all_met = outcome?;
    // Missed bars are findings, not failures: the run itself succeeded.
    eprintln!("all bars met: {all_met}");
    Ok(())
}

fn run(backend: Backend, settings: &Settings) -> BenchResult<bool> {
    check_direct_io(&settings.root)?;
    println!("{}", run_info_line(&backend, settings));
    let comparisons = storage::runtime::block_on(backend, |backend| async move {
        let mut out = Vec::new();
        for appenders in [1, GROUP_APPENDERS] {
            for shape in [Shape::K16, Shape::M1] {
                if settings.wants(shape.case_name(appenders)) {
                    out.push(append_case(&backend, settings, shape, appenders).await?);
                }
            }
        }
        if READ_CASES.iter().any(|case| settings.wants(case)) {
            out.extend(read_cases(&backend, settings).await?);
        }
        out.retain(|c| settings.wants(c.case));
        Ok::<_, Box<dyn Error>>(out)
    })??;
    print_table(&comparisons);
    let all_met = comparisons.iter().all(Comparison::meets_bar);
    for c in &comparisons {
        println!("{}", c.json_line());
    }
    let summary = JsonLine::new("summary")
        .int("figures", comparisons.len() as u64)
        .int(
            "bars_met",
            comparisons.iter().filter(|c| c.meets_bar()).count() as u64,
        )
        .boolean("all_bars_met", all_met)
        .string("loadavg_end", read_trimmed("/proc/loadavg").as_str());
    println!("{}", summary.finish());
    Ok(all_met)
}

/// O_DIRECT is the point of the physical reference, and the log silently falls back to
/// buffered I/O where it is refused (tmpfs), so refuse to measure there.
fn check_direct_io(dir: &Path) -> BenchResult<()> {
    let probe = dir.join("odirect-probe");
    let opened = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(&probe);
    let _ = std::fs::remove_file(&probe);
    match opened {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Err(format!(
            "{} refuses O_DIRECT (tmpfs?); pass --dir on a disk-backed file system",
            dir.display()
        )
        .into()),
        Err(e) => Err(e.into()),
    }
}

/// A small /proc file's text, or nothing: it only annotates the output.
fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn run_info_line(backend: &Backend, settings: &Settings) -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    JsonLine::new("run")
        .string("backend", backend.name())
        .int("bytes_per_case", settings.bytes_per_case)
        .int("rounds", settings.rounds as u64)
        .string("dir", &settings.root.display().to_string())
        .int("nproc", nproc as u64)
        .string("kernel", &read_trimmed("/proc/sys/kernel/osrelease"))
        .string("loadavg", &read_trimmed("/proc/loadavg"))
        .string("mb", "10^6 bytes")
        .string(
            "cpu",
            "getrusage(RUSAGE_SELF) user+sys over the timed section, all threads",
        )
        .string(
            "figures",
            "aggregates over interleaved rounds (total bytes / total time); \
             ratio = log MB/s / reference MB/s; round_ratios and median_round_ratio show \
             the spread (a stall outside the bench shows as one wild round)",
        )
        .finish()
}

// ---------------------------------------------------------------------------------------------
// Measuring
// ---------------------------------------------------------------------------------------------

/// What `getrusage` says the process has used, summed over all its threads.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    user: Duration,
    sys: Duration,
    /// Voluntary and involuntary: each wait for a completion or a worker thread shows here.
    ctx_switches: u64,
    minor_faults: u64,
}

impl Usage {
    fn since(&self, earlier: &Usage) -> Usage {
        Usage {
            user: self.user.saturating_sub(earlier.user),
            sys: self.sys.saturating_sub(earlier.sys),
            ctx_switches: self.ctx_switches.saturating_sub(earlier.ctx_switches),
            minor_faults: self.minor_faults.saturating_sub(earlier.minor_faults),
        }
    }

    fn plus(&self, other: &Usage) -> Usage {
        Usage {
            user: self.user + other.user,
            sys: self.sys + other.sys,
            ctx_switches: self.ctx_switches + other.ctx_switches,
            minor_faults: self.minor_faults + other.minor_faults,
        }
    }
}

/// The two system calls std does not wrap, through nix's safe wrappers (only the storage crate
/// may use `unsafe`).
mod sys {
    use std::fs::File;
    use std::io;
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use nix::fcntl::FallocateFlags;
    use nix::sys::resource::{getrusage, UsageWho};
    use nix::sys::time::TimeValLike;

    use super::Usage;

    /// Usage of every thread of the process so far (terminated threads included).
    pub fn usage() -> io::Result<Usage> {
        let usage = getrusage(UsageWho::RUSAGE_SELF).map_err(io::Error::from)?;
        let micros = |tv: nix::sys::time::TimeVal| {
            Duration::from_micros(tv.num_microseconds().max(0) as u64)
        };
        Ok(Usage {
            user: micros(usage.user_time()),
            sys: micros(usage.system_time()),
            ctx_switches: (usage.voluntary_context_switches()
                + usage.involuntary_context_switches()) as u64,
            minor_faults: usage.minor_page_faults() as u64,
        })
    }

    /// `fallocate` mode 0: reserve blocks and extend the file size, as the log does.
    pub fn fallocate(file: &File, pos: u64, len: u64) -> io::Result<()> {
        let (Ok(pos), Ok(len)) = (i64::try_from(pos), i64::try_from(len)) else {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        };
        nix::fcntl::fallocate(file.as_raw_fd(), FallocateFlags::empty(), pos, len)
            .map_err(io::Error::from)
    }
}

/// One timed section: bytes moved, wall time, resources used.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    bytes: u64,
    wall: Duration,
    usage: Usage,
}

impl Sample {
    /// All rounds of one side as one sample: total bytes over total time, and so on.
    fn total(samples: &[Sample]) -> Sample {
        samples.iter().fold(Sample::default(), |acc, s| Sample {
            bytes: acc.bytes + s.bytes,
            wall: acc.wall + s.wall,
            usage: acc.usage.plus(&s.usage),
        })
    }

    fn mb(&self) -> f64 {
        self.bytes as f64 / MB
    }

    fn mb_per_s(&self) -> f64 {
        self.mb() / self.wall.as_secs_f64()
    }

    fn cpu_ms_per_mb(&self) -> f64 {
        (self.usage.user + self.usage.sys).as_secs_f64() * 1e3 / self.mb()
    }

    fn user_ms_per_mb(&self) -> f64 {
        self.usage.user.as_secs_f64() * 1e3 / self.mb()
    }

    fn sys_ms_per_mb(&self) -> f64 {
        self.usage.sys.as_secs_f64() * 1e3 / self.mb()
    }

    fn ctx_switches_per_mb(&self) -> f64 {
        self.usage.ctx_switches as f64 / self.mb()
    }

    fn minor_faults_per_mb(&self) -> f64 {
        self.usage.minor_faults as f64 / self.mb()
    }
}

#[derive(Debug)]
struct Stopwatch {
    wall: Instant,
    usage: Usage,
}

impl Stopwatch {
    fn start() -> io::Result<Self> {
        Ok(Stopwatch {
            usage: sys::usage()?,
            wall: Instant::now(),
        })
    }

    fn elapsed(&self) -> Duration {
        self.wall.elapsed()
    }

    fn stop(self, bytes: u64) -> io::Result<Sample> {
        let wall = self.wall.elapsed();
        let usage = sys::usage()?.since(&self.usage);
        Ok(Sample { bytes, wall, usage })
    }
}

/// The middle value (mean of the two middle ones for an even count); NaN when empty.
fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// One printed figure: the log's samples beside its reference's.
#[derive(Debug)]
struct Comparison {
    case: &'static str,
    reference: String,
    log: Vec<Sample>,
    reference_samples: Vec<Sample>,
    ratio_bar: f64,
    cpu_bar: Option<f64>,
    /// Case-specific facts (sync counts, write sizes, method notes).
    extra: JsonLine,
}

impl Comparison {
    fn ratio(&self) -> f64 {
        Sample::total(&self.log).mb_per_s() / Sample::total(&self.reference_samples).mb_per_s()
    }

    fn meets_ratio(&self) -> bool {
        self.ratio() >= self.ratio_bar
    }

    fn meets_cpu(&self) -> bool {
        self.cpu_bar
            .is_none_or(|bar| Sample::total(&self.log).cpu_ms_per_mb() <= bar)
    }

    fn meets_bar(&self) -> bool {
        self.meets_ratio() && self.meets_cpu()
    }

    fn json_line(&self) -> String {
        let log = Sample::total(&self.log);
        let reference = Sample::total(&self.reference_samples);
        let ratios: Vec<f64> = self
            .log
            .iter()
            .zip(&self.reference_samples)
            .map(|(l, r)| l.mb_per_s() / r.mb_per_s())
            .collect();
        let mut line = JsonLine::new(self.case)
            .num("mb_per_s", log.mb_per_s())
            .num("cpu_ms_per_mb", log.cpu_ms_per_mb())
            .string("reference", &self.reference)
            .num("reference_mb_per_s", reference.mb_per_s())
            .num("reference_cpu_ms_per_mb", reference.cpu_ms_per_mb())
            .num("ratio", self.ratio())
            .num("bar", self.ratio_bar);
        if let Some(bar) = self.cpu_bar {
            line = line
                .num("cpu_bar_ms_per_mb", bar)
                .boolean("meets_cpu_bar", self.meets_cpu());
        }
        line.boolean("meets_ratio_bar", self.meets_ratio())
            .boolean("meets_bar", self.meets_bar())
            .nums("round_ratios", &ratios)
            .num("median_round_ratio", median(&ratios))
            .int("bytes", log.bytes)
            .num("secs", log.wall.as_secs_f64())
            .num("reference_secs", reference.wall.as_secs_f64())
            .num("cpu_user_ms_per_mb", log.user_ms_per_mb())
            .num("cpu_sys_ms_per_mb", log.sys_ms_per_mb())
            .num("reference_cpu_user_ms_per_mb", reference.user_ms_per_mb())
            .num("reference_cpu_sys_ms_per_mb", reference.sys_ms_per_mb())
            .num("ctx_switches_per_mb", log.ctx_switches_per_mb())
            .num(
                "reference_ctx_switches_per_mb",
                reference.ctx_switches_per_mb(),
            )
            .num("minor_faults_per_mb", log.minor_faults_per_mb())
            .num(
                "reference_minor_faults_per_mb",
                reference.minor_faults_per_mb(),
            )
            .int("rounds", self.log.len() as u64)
            .merge(&self.extra)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Appends
// ---------------------------------------------------------------------------------------------

/// A batch shape: records of ~1 KiB, the batch sized to exactly a power-of-two block so the
/// log's O_DIRECT writes and the reference's have the same sizes and alignment.
#[derive(Debug, Clone, Copy)]
enum Shape {
    K16,
    M1,
}

impl Shape {
    fn label(self) -> &'static str {
        match self {
            Shape::K16 => "16k",
            Shape::M1 => "1m",
        }
    }

    fn batch_bytes(self) -> usize {
        match self {
            Shape::K16 => 16 * KIB,
            Shape::M1 => MIB,
        }
    }

    /// One record per KiB of batch; the 61-byte header comes out of the records' share.
    fn records(self) -> i32 {
        (self.batch_bytes() / KIB) as i32
    }

    fn template(self) -> Vec<u8> {
        const HEADER: usize = storage::limits::BATCH_HEADER_BYTES;
        seeded(7, self.records(), self.batch_bytes() - HEADER, now_ms())
    }

    fn case_name(self, appenders: usize) -> &'static str {
        match (self, appenders) {
            (Shape::K16, 1) => "append_16k_flush_always",
            (Shape::M1, 1) => "append_1m_flush_always",
            (Shape::K16, _) => "append_16k_group8",
            (Shape::M1, _) => "append_1m_group8",
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn append_case(
    backend: &Backend,
    settings: &Settings,
    shape: Shape,
    appenders: usize,
) -> BenchResult<Comparison> {
    let case = shape.case_name(appenders);
    let template = shape.template();
    let per_round = settings.bytes_per_case as usize / settings.rounds / shape.batch_bytes();
    // Every appender gets the same number of batches.
    let batches = per_round.max(appenders) / appenders * appenders;
    let dir = settings.case_dir(case)?;
    // One log and one raw file for the whole case: rounds are interleaved time slices of two
    // long-lived append streams, so per-log start-up (file creation, an empty chunk pool) is
    // paid once, as in a broker, and outside load hits both sides alike.
    let appender = LogAppender::open(backend, &dir.join("log"), &template).await?;
    let mut raw = RawWriter::create(&dir.join("raw.bin"), &template)?;
    let (mut log, mut reference, mut syncs) = (Vec::new(), Vec::new(), Vec::new());
    let mut cadence: Vec<u64> = Vec::new();
    for round in 0..settings.rounds {
        // Alternate which side goes first so neither always inherits the other's aftermath
        // (device write-back, journal commits). Going first, the reference replays the
        // previous round's log cadence; going second, this round's.
        let early = if round % 2 == 1 {
            Some(raw.replay(&cadence)?)
        } else {
            None
        };
        let run = appender.round(batches, appenders).await?;
        cadence = run.sync_groups;
        reference.push(match early {
            Some(sample) => sample,
            None => raw.replay(&cadence)?,
        });
        log.push(run.sample);
        syncs.push(cadence.len() as f64);
    }
    appender.log.close().await?;
    drop(raw);
    remove_dir_if_present(&dir)?;
    Ok(append_comparison(shape, appenders, log, reference, &syncs))
}

fn append_comparison(
    shape: Shape,
    appenders: usize,
    log: Vec<Sample>,
    reference: Vec<Sample>,
    syncs: &[f64],
) -> Comparison {
    let bytes: u64 = log.iter().map(|s| s.bytes).sum();
    let cadence_name = if appenders == 1 {
        "fdatasync_each"
    } else {
        "fdatasync_per_log_group"
    };
    let extra = JsonLine::fields()
        .int("batch_bytes", shape.batch_bytes() as u64)
        .int("records_per_batch", shape.records() as u64)
        .int("appenders", appenders as u64)
        .string(
            "flush_policy",
            "default (Always); each appender awaits wait_durable",
        )
        .nums("syncs_per_round", syncs)
        .num("bytes_per_sync", bytes as f64 / syncs.iter().sum::<f64>())
        .string(
            "reference_writes",
            "one O_DIRECT pwrite per fdatasync group (the log writes its staged chunks with one \
             vectored write per flush)",
        )
        .string(
            "syncs_method",
            "distinct durable offsets observed after each wait_durable (= data fdatasyncs); \
             the reference replays that sequence of bytes per fdatasync (in rounds where it \
             runs first: the previous round's sequence)",
        )
        .string(
            "setup",
            "one log and one raw file per case, rounds interleaved; untimed warm-up batch on \
             both; raw file fallocate'd in the log's preallocate_bytes steps",
        );
    Comparison {
        case: shape.case_name(appenders),
        reference: format!("raw_odirect_write_{}_{cadence_name}", shape.label()),
        log,
        reference_samples: reference,
        ratio_bar: APPEND_RATIO_BAR,
        cpu_bar: Some(APPEND_CPU_MS_PER_MB_BAR),
        extra,
    }
}

/// What one round of log appends produced.
#[derive(Debug)]
struct AppendRun {
    sample: Sample,
    /// Bytes made durable by each fdatasync, in order (see the module docs for the method).
    sync_groups: Vec<u64>,
}

/// A partition log fed copies of one batch.
#[derive(Debug)]
struct LogAppender {
    log: Rc<PartitionLog>,
    template: Vec<u8>,
    records_per_batch: u64,
}

impl LogAppender {
    /// Opens a log with the default configuration and writes one untimed warm-up batch: the
    /// first flush creates the segment file, syncs the directory and preallocates, which a
    /// broker pays once per segment (1 GiB).
    async fn open(backend: &Backend, dir: &Path, template: &[u8]) -> BenchResult<Self> {
        let log = Rc::new(PartitionLog::open(dir, LogConfig::default(), backend.clone()).await?);
        let info = log.append(BytesMut::from(template), 0)?;
        log.flush().await?;
        Ok(LogAppender {
            log,
            template: template.to_vec(),
            records_per_batch: info.last_offset + 1 - info.base_offset,
        })
    }

    /// Appends `count` batches from `appenders` concurrent tasks, each waiting for its batch to
    /// be durable before appending the next (default policy: flush at once). The batches are
    /// built and validated (CRC32C) before the timer starts, as the broker's Kafka front end
    /// does when it decodes a produce request, on the shard that received it; the log's own
    /// path (`append_validated`: offsets, staging copy, cache, flush) is what is timed.
    async fn round(&self, count: usize, appenders: usize) -> BenchResult<AppendRun> {
        let start = self.log.durable_offset();
        let mut per_task: Vec<Vec<ValidatedBatch>> = (0..appenders)
            .map(|_| Vec::with_capacity(count / appenders))
            .collect();
        for i in 0..count {
            per_task[i % appenders].push(ValidatedBatch::new(BytesMut::from(&self.template[..]))?);
        }
        let watch = Stopwatch::start()?;
        let tasks: Vec<_> = per_task
            .into_iter()
            .map(|batches| tokio::task::spawn_local(append_task(self.log.clone(), batches)))
            .collect();
        let mut durable_offsets = Vec::new();
        for task in tasks {
            durable_offsets.extend(task.await??);
        }
        let sample = watch.stop((count * self.template.len()) as u64)?;
        let cadence = Cadence {
            start,
            records_per_batch: self.records_per_batch,
            batch_bytes: self.template.len() as u64,
            batches: count as u64,
        };
        Ok(AppendRun {
            sample,
            sync_groups: cadence.sync_groups(durable_offsets)?,
        })
    }
}

async fn append_task(
    log: Rc<PartitionLog>,
    batches: Vec<ValidatedBatch>,
) -> storage::Result<Vec<u64>> {
    let mut seen = Vec::with_capacity(batches.len());
    for batch in batches {
        let info = log.append_validated(batch, 0)?;
        log.wait_durable(info.last_offset + 1).await?;
        // No await since the flush (if this task ran it) set the durable offset.
        seen.push(log.durable_offset());
    }
    Ok(seen)
}

/// Translates durable offsets into bytes, for `batches` batches of one size appended after
/// `start`.
#[derive(Debug)]
struct Cadence {
    start: u64,
    records_per_batch: u64,
    batch_bytes: u64,
    batches: u64,
}

impl Cadence {
    /// Bytes made durable by each fdatasync, in order, from the durable offsets observed.
    fn sync_groups(&self, mut offsets: Vec<u64>) -> BenchResult<Vec<u64>> {
        offsets.sort_unstable();
        offsets.dedup();
        let records = self.records_per_batch;
        let end = self.start + self.batches * records;
        let mut previous = self.start;
        let mut groups = Vec::with_capacity(offsets.len());
        for offset in offsets {
            if offset <= previous || !(offset - previous).is_multiple_of(records) || offset > end {
                return Err(format!("durable offset {offset} is not a batch boundary").into());
            }
            groups.push((offset - previous) / records * self.batch_bytes);
            previous = offset;
        }
        if previous != end {
            return Err(format!("log ended durable at {previous}, expected {end}").into());
        }
        Ok(groups)
    }
}

/// Opens `path` for O_DIRECT reading and writing.
fn open_direct(path: &Path, create: bool) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .custom_flags(libc::O_DIRECT)
        .open(path)
}

/// An aligned buffer of `len` bytes filled with repeats of `pattern`.
fn aligned_filled(len: usize, pattern: &[u8]) -> AlignedBuf {
    let mut buf = AlignedBuf::with_capacity(len);
    while buf.len() < len && !pattern.is_empty() {
        let want = (len - buf.len()).min(pattern.len());
        buf.extend_from_slice(&pattern[..want]);
    }
    buf
}

/// The physical reference: one file appended with one O_DIRECT pwrite per group and an
/// fdatasync after it, the file preallocated as the log preallocates its segments. One write
/// per group mirrors the log, whose flush hands all its staged chunks to a single (vectored)
/// write.
#[derive(Debug)]
struct RawWriter {
    file: File,
    /// Holds the largest group; every write is a prefix of it.
    buf: AlignedBuf,
    pattern: Vec<u8>,
    pos: u64,
    allocated: u64,
}

impl RawWriter {
    /// Creates the file and writes one untimed warm-up batch, as the log does.
    fn create(path: &Path, pattern: &[u8]) -> io::Result<Self> {
        let file = open_direct(path, true)?;
        let buf = aligned_filled(pattern.len(), pattern);
        let mut writer = RawWriter {
            file,
            buf,
            pattern: pattern.to_vec(),
            pos: 0,
            allocated: 0,
        };
        writer.write_group(pattern.len() as u64)?;
        Ok(writer)
    }

    /// Writes and syncs one group after another, timed (the buffer is sized before).
    fn replay(&mut self, groups: &[u64]) -> io::Result<Sample> {
        let largest = align_up(groups.iter().copied().max().unwrap_or(0)) as usize;
        if largest > self.buf.capacity() {
            self.buf = aligned_filled(largest, &self.pattern);
        }
        let watch = Stopwatch::start()?;
        let start = self.pos;
        for &group in groups {
            self.write_group(group)?;
        }
        watch.stop(self.pos - start)
    }

    /// Writes `len` more bytes in one pwrite, then fdatasyncs.
    fn write_group(&mut self, len: u64) -> io::Result<()> {
        let end = self.pos + len;
        // The log's rule: when a flush needs room, allocate what it needs plus one step.
        if align_up(end) > self.allocated {
            let wanted = align_up(end) + LogConfig::default().preallocate_bytes;
            sys::fallocate(&self.file, self.allocated, wanted - self.allocated)?;
            self.allocated = wanted;
        }
        let Some(data) = self.buf.as_slice().get(..align_up(len) as usize) else {
            return Err(io::Error::other("raw write buffer smaller than its group"));
        };
        self.file.write_all_at(data, self.pos)?;
        self.pos = end;
        self.file.sync_data()
    }
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

/// What to do with the batches a read returns.
enum Sink<'a> {
    /// Keep the refcounted `Bytes` only (what a fetch does before its vectored socket write).
    Discard,
    /// Copy every byte into a buffer, so the log's figure moves the bytes as memcpy does.
    CopyInto(&'a mut [u8]),
}

async fn read_cases(backend: &Backend, settings: &Settings) -> BenchResult<Vec<Comparison>> {
    let shape = Shape::K16;
    let template = shape.template();
    let dir = settings.case_dir("reads")?;
    let batches = settings.bytes_per_case as usize / shape.batch_bytes();
    // Large enough that the whole log stays in the tail cache.
    let hot_config = LogConfig {
        cache_bytes: settings.bytes_per_case as usize + 16 * MIB,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.join("log"), hot_config, backend.clone()).await?;
    fill_log(&log, &template, batches).await?;
    verify_reads(&log, &template).await?;
    let hot = hot_reads(&log, settings, &template).await?;
    log.close().await?;
    // Reopened: the cache is empty, every read goes to the disk.
    let log = PartitionLog::open(dir.join("log"), LogConfig::default(), backend.clone()).await?;
    verify_reads(&log, &template).await?;
    let cold = cold_reads(&log, settings).await?;
    log.close().await?;
    remove_dir_if_present(&dir)?;
    let mut out = hot;
    out.push(cold);
    Ok(out)
}

/// Appends `count` batches, flushing every 64 (1 MiB of 16 KiB batches); not timed.
async fn fill_log(log: &PartitionLog, template: &[u8], count: usize) -> BenchResult<()> {
    for i in 0..count {
        log.append(BytesMut::from(template), 0)?;
        if i % 64 == 63 {
            log.flush().await?;
        }
    }
    log.flush().await?;
    Ok(())
}

/// One untimed pass checking that every batch comes back whole, in order, at its offset, with
/// the appended bytes: a fast read path that returned wrong data must not look like a win.
async fn verify_reads(log: &PartitionLog, template: &[u8]) -> BenchResult<()> {
    // The log rewrites the base offset (bytes 0..8) and the leader epoch (12..16).
    const EPOCH_END: usize = 16;
    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
    while offset < end {
        let read = log.read(offset, READ_MAX_BYTES, u64::MAX).await?;
        if read.batches.is_empty() {
            return Err(format!("read at offset {offset} returned nothing before {end}").into());
        }
        for batch in &read.batches {
            let header = storage::batch::BatchHeader::decode(batch).map_err(|e| e.to_string())?;
            let intact = batch.len() == template.len()
                && batch[8..12] == template[8..12]
                && batch[EPOCH_END..] == template[EPOCH_END..];
            if header.base_offset as u64 != offset || !intact {
                return Err(
                    format!("batch read at offset {offset} differs from the one appended").into(),
                );
            }
            offset += header.offset_count();
        }
        if offset != read.next_offset {
            return Err(format!(
                "read ended at {offset}, next_offset says {}",
                read.next_offset
            )
            .into());
        }
    }
    Ok(())
}

async fn hot_reads(
    log: &PartitionLog,
    settings: &Settings,
    pattern: &[u8],
) -> BenchResult<Vec<Comparison>> {
    let bytes = log.stats().size_bytes as usize;
    let src = repeated(bytes, pattern);
    let mut dst = vec![0u8; bytes];
    // Fault the destination in before any timed pass.
    dst.copy_from_slice(&src);
    let (mut zero_copy, mut copy_out, mut memcpy) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..settings.rounds {
        memcpy.push(memcpy_passes(&src, &mut dst, settings.min_pass_time)?);
        zero_copy.push(read_passes(log, settings.min_pass_time, Sink::Discard).await?);
        copy_out.push(read_passes(log, settings.min_pass_time, Sink::CopyInto(&mut dst)).await?);
    }
    let reference = "memcpy_same_bytes_1m_pieces".to_owned();
    let note = |text: &str| {
        JsonLine::fields()
            .int("batch_bytes", Shape::K16.batch_bytes() as u64)
            .int("read_max_bytes", READ_MAX_BYTES as u64)
            .string("note", text)
    };
    Ok(vec![
        Comparison {
            case: "hot_read",
            reference: reference.clone(),
            log: zero_copy,
            reference_samples: memcpy.clone(),
            ratio_bar: HOT_READ_RATIO_BAR,
            cpu_bar: None,
            extra: note(
                "served from the tail cache as refcounted Bytes (zero-copy): no byte is touched",
            ),
        },
        Comparison {
            case: "hot_read_copy_out",
            reference,
            log: copy_out,
            reference_samples: memcpy,
            ratio_bar: HOT_READ_RATIO_BAR,
            cpu_bar: None,
            extra: note(
                "same reads, each returned Bytes copied into a buffer: moves the bytes like memcpy",
            ),
        },
    ])
}

/// `len` bytes of repeats of `pattern`.
fn repeated(len: usize, pattern: &[u8]) -> Vec<u8> {
    pattern.iter().copied().cycle().take(len).collect()
}

/// Copies `src` into `dst` in read-sized pieces, whole passes, until `min` has passed.
fn memcpy_passes(src: &[u8], dst: &mut [u8], min: Duration) -> io::Result<Sample> {
    let watch = Stopwatch::start()?;
    let mut moved = 0u64;
    while moved == 0 || watch.elapsed() < min {
        for (from, to) in src
            .chunks(READ_MAX_BYTES)
            .zip(dst.chunks_mut(READ_MAX_BYTES))
        {
            to.copy_from_slice(black_box(from));
        }
        black_box(&mut *dst);
        moved += src.len() as u64;
    }
    watch.stop(moved)
}

/// Reads the whole log sequentially, whole passes, until `min` has passed.
async fn read_passes(log: &PartitionLog, min: Duration, mut sink: Sink<'_>) -> BenchResult<Sample> {
    let watch = Stopwatch::start()?;
    let mut moved = 0u64;
    while moved == 0 || watch.elapsed() < min {
        moved += read_through(log, &mut sink).await?;
    }
    Ok(watch.stop(moved)?)
}

/// One sequential pass over the log with `READ_MAX_BYTES` reads; returns the bytes read.
async fn read_through(log: &PartitionLog, sink: &mut Sink<'_>) -> BenchResult<u64> {
    let (mut offset, end) = (log.log_start_offset(), log.log_end_offset());
    let mut pos = 0usize;
    while offset < end {
        let read = log.read(offset, READ_MAX_BYTES, u64::MAX).await?;
        if read.batches.is_empty() {
            return Err(format!("read at offset {offset} returned nothing before {end}").into());
        }
        pos += consume(&read.batches, sink, pos)?;
        offset = read.next_offset;
    }
    Ok(pos as u64)
}

fn consume(batches: &[Bytes], sink: &mut Sink<'_>, mut pos: usize) -> BenchResult<usize> {
    let start = pos;
    for batch in batches {
        if let Sink::CopyInto(dst) = sink {
            let Some(to) = dst.get_mut(pos..pos + batch.len()) else {
                return Err("the log returned more bytes than it holds".into());
            };
            to.copy_from_slice(batch);
        }
        pos += batch.len();
    }
    black_box(batches);
    Ok(pos - start)
}

async fn cold_reads(log: &PartitionLog, settings: &Settings) -> BenchResult<Comparison> {
    let size = log.stats().size_bytes;
    let block = log.config().read_ahead_bytes;
    let segment = log
        .dir()
        .join(format!("{:020}.log", log.log_start_offset()));
    let (mut cold, mut raw) = (Vec::new(), Vec::new());
    for round in 0..settings.rounds {
        // Alternate which side reads first, as the append cases do.
        if round % 2 == 1 {
            cold.push(read_passes(log, settings.min_pass_time, Sink::Discard).await?);
        }
        raw.push(raw_read_passes(
            &segment,
            size,
            block,
            settings.min_pass_time,
        )?);
        if round % 2 == 0 {
            cold.push(read_passes(log, settings.min_pass_time, Sink::Discard).await?);
        }
    }
    let extra = JsonLine::fields()
        .int("batch_bytes", Shape::K16.batch_bytes() as u64)
        .int("read_max_bytes", READ_MAX_BYTES as u64)
        .int("read_ahead_bytes", block as u64)
        .string(
            "note",
            "log reopened (empty cache); O_DIRECT read-ahead windows, every batch CRC-checked; \
             reference reads the same segment file, queue depth 1 like the log",
        );
    Ok(Comparison {
        case: "cold_read",
        reference: format!("raw_odirect_read_{}k_blocks", block / KIB),
        log: cold,
        reference_samples: raw,
        ratio_bar: COLD_READ_RATIO_BAR,
        cpu_bar: None,
        extra,
    })
}

/// Sequential O_DIRECT preads of the first `size` bytes of `path` in `block`-sized reads, whole
/// passes, until `min` has passed.
fn raw_read_passes(path: &Path, size: u64, block: usize, min: Duration) -> io::Result<Sample> {
    let file = open_direct(path, false)?;
    let mut buf = AlignedBuf::with_capacity(block);
    buf.zero_extend_to(buf.capacity());
    let watch = Stopwatch::start()?;
    let mut moved = 0u64;
    while moved == 0 || watch.elapsed() < min {
        let mut pos = 0u64;
        while pos < size {
            let want = (align_up(size - pos) as usize).min(buf.len());
            let n = file.read_at(&mut buf.as_mut_slice()[..want], pos)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "segment shorter than its log",
                ));
            }
            pos += n as u64;
        }
        black_box(buf.as_slice());
        moved += size;
    }
    watch.stop(moved)
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

/// A JSON object built field by field (numbers and plain strings are all we print).
#[derive(Debug, Clone, Default)]
struct JsonLine {
    fields: Vec<String>,
}

impl JsonLine {
    fn new(case: &str) -> Self {
        JsonLine::fields()
            .string("bench", "storage")
            .string("case", case)
    }

    fn fields() -> Self {
        JsonLine::default()
    }

    fn push(mut self, key: &str, value: String) -> Self {
        self.fields.push(format!("{}:{value}", json_string(key)));
        self
    }

    fn string(self, key: &str, value: &str) -> Self {
        self.push(key, json_string(value))
    }

    fn num(self, key: &str, value: f64) -> Self {
        self.push(key, json_number(value))
    }

    fn nums(self, key: &str, values: &[f64]) -> Self {
        let items: Vec<String> = values.iter().map(|&v| json_number(v)).collect();
        self.push(key, format!("[{}]", items.join(",")))
    }

    fn int(self, key: &str, value: u64) -> Self {
        self.push(key, value.to_string())
    }

    fn boolean(self, key: &str, value: bool) -> Self {
        self.push(key, value.to_string())
    }

    fn merge(mut self, other: &JsonLine) -> Self {
        self.fields.extend(other.fields.iter().cloned());
        self
    }

    fn finish(self) -> String {
        format!("{{{}}}", self.fields.join(","))
    }
}

fn json_number(value: f64) -> String {
    if value.is_finite() {
        // Four significant decimals are far below run-to-run noise.
        format!("{:.4}", value)
    } else {
        "null".to_owned()
    }
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn print_table(comparisons: &[Comparison]) {
    let head = [
        "case",
        "MB/s",
        "cpu ms/MB",
        "reference",
        "MB/s",
        "cpu ms/MB",
        "ratio",
        "bar",
    ];
    eprintln!(
        "{:<24} {:>9} {:>9} | {:<46} {:>9} {:>9} | {:>6} {:<22} ok",
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]
    );
    for c in comparisons {
        let (log, reference) = (Sample::total(&c.log), Sample::total(&c.reference_samples));
        let bar = match c.cpu_bar {
            Some(cpu) => format!(">={} and <={cpu} ms/MB", c.ratio_bar),
            None => format!(">={}", c.ratio_bar),
        };
        eprintln!(
            "{:<24} {:>9.1} {:>9.3} | {:<46} {:>9.1} {:>9.3} | {:>6.3} {:<22} {}",
            c.case,
            log.mb_per_s(),
            log.cpu_ms_per_mb(),
            c.reference,
            reference.mb_per_s(),
            reference.cpu_ms_per_mb(),
            c.ratio(),
            bar,
            if c.meets_bar() { "yes" } else { "NO" }
        );
    }
}
