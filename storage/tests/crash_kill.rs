//! Crash test with a real process: a child appends and flushes (two flushes outstanding, so
//! one often waits behind the other), printing every durable offset;
//! the parent kills it with SIGKILL at a random moment, reopens the log and checks that every
//! offset reported durable is there, byte for byte.
//!
//! The parent re-runs this test binary (`std::env::current_exe()`) with `--exact crash_child
//! --ignored` and `SLUICE_CRASH_CHILD_DIR` set; without that variable the `#[ignore]`d child test
//! returns at once, so `cargo test -- --include-ignored` stays harmless.
//!
//! Every batch is a pure function of `(seed, base offset)`: records count, size (some over
//! 64 KiB), payload and timestamp. A child therefore needs no memory of earlier runs: it opens
//! the log, reads the log end, and keeps appending the batches that belong there, so one
//! directory accumulates the work of several children, each recovering what the last one left.
//! Each child appends with its own leader epoch (its generation number within the directory);
//! the parent learns each generation's starting offset from the `START` line the child prints
//! before its first append, which tells it the epoch every batch must carry.
//!
//! Timing only decides where a kill lands (in process start-up, in recovery, mid-append,
//! mid-flush, between a flush and its `DURABLE` line); every outcome must verify. Replay a run
//! with `SLUICE_CRASH_SEED=<seed>`; `SLUICE_CRASH_KILLS=<n>` sets the kills per backend.

// Helpers here are test code too: a failed unwrap is a failed test (see clippy.toml).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use storage::batch::BatchHeader;
use storage::{Backend, LogConfig};

const ENV_DIR: &str = "SLUICE_CRASH_CHILD_DIR";
const ENV_SEED: &str = "SLUICE_CRASH_CHILD_SEED";
const ENV_BACKEND: &str = "SLUICE_CRASH_CHILD_BACKEND";
const ENV_EPOCH: &str = "SLUICE_CRASH_CHILD_EPOCH";
const ENV_FLUSH_SEED: &str = "SLUICE_CRASH_CHILD_FLUSH_SEED";

/// Name of the child test, as libtest's `--exact` wants it.
const CHILD_TEST: &str = "crash_child";
/// Kills on one directory before the parent starts a fresh one (bounds disk use and the cost of
/// verifying the whole log after every kill).
const KILLS_PER_DIR: u32 = 10;
/// A child that runs this long was forgotten by its parent: it exits rather than run forever.
const CHILD_LIFETIME_MAX: Duration = Duration::from_secs(60);
/// How long the parent waits for a child's `START` line before declaring it stuck.
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024,
        segment_ms: None,
        retention_ms: None,
        preallocate_bytes: 64 * 1024,
        cache_bytes: 256 * 1024,
        read_ahead_bytes: 64 * 1024,
        ..LogConfig::default()
    }
}

/// splitmix64: the whole test's source of randomness, deterministic from a seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(mix(seed))
    }

    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }

    /// Uniform-ish in `[lo, hi)`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

/// The batch that belongs at `base_offset` in a log written with `seed` (base offset 0 and
/// epoch -1 in the header; the log assigns both). One in eight is between 64 KiB and 200 KiB.
fn expected_batch(seed: u64, base_offset: u64) -> BytesMut {
    let mut rng = Rng::new(seed ^ base_offset.wrapping_mul(0xA24B_AED4_963E_E407));
    let records = rng.range(1, 17) as i32;
    let payload_len = if rng.range(0, 8) == 0 {
        rng.range(64 * 1024 + 1, 200 * 1024) as usize
    } else {
        rng.range(0, 6000) as usize
    };
    let payload_seed = rng.next();
    let ts = 1_700_000_000_000 + base_offset as i64;
    BytesMut::from(&storage::batch::testing::seeded(payload_seed, records, payload_len, ts)[..])
}

fn backend_named(name: &str) -> Backend {
    match name {
        "posix" => Backend::Posix,
        "io_uring" => Backend::Uring,
        other => panic!("unknown backend {other}"),
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|e| panic!("{name}={value}: {e}")),
    )
}

/// Marks the child's report lines among libtest's own output (which may share a line with the
/// first report: libtest prints `test crash_child ... ` without a newline).
const MARK: &str = "@sluice-crash ";

/// Writes one whole line to stdout and flushes it before returning (a single short write to a
/// pipe, so a kill cannot split it; the parent ignores any line without its newline anyway).
fn report(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(format!("{MARK}{line}\n").as_bytes()).unwrap();
    out.flush().unwrap();
}

/// The report in one line of the child's stdout, if it holds one.
fn parse_report(line: &str) -> Option<&str> {
    line.find(MARK).map(|at| &line[at + MARK.len()..])
}

/// The child: appends and flushes until it is killed. Does nothing unless the parent set
/// `SLUICE_CRASH_CHILD_DIR`.
#[test]
#[ignore = "child process of crash_kill_*; runs only when spawned by it"]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let seed = env_u64(ENV_SEED).unwrap();
    let epoch = env_u64(ENV_EPOCH).unwrap() as i32;
    let flush_seed = env_u64(ENV_FLUSH_SEED).unwrap();
    let backend = backend_named(&std::env::var(ENV_BACKEND).unwrap());
    let started = Instant::now();
    storage::runtime::block_on(backend.clone(), |backend| async move {
        let log = std::rc::Rc::new(open(Path::new(&dir), config(), &backend).await);
        let mut next = log.log_end_offset();
        assert_eq!(
            log.durable_offset(),
            next,
            "a freshly opened log is durable to its end"
        );
        report(&format!("START {next}"));
        let mut rng = Rng::new(flush_seed);
        // Two flushes outstanding, as a broker's producers keep them: the second often queues
        // behind the first (group commit), and a kill lands among both.
        let mut flushes = std::collections::VecDeque::new();
        while started.elapsed() < CHILD_LIFETIME_MAX {
            for _ in 0..rng.range(1, 9) {
                let info = log.append(expected_batch(seed, next), epoch).unwrap();
                assert_eq!(info.base_offset, next);
                next = info.last_offset + 1;
            }
            let (log, target) = (log.clone(), next);
            flushes.push_back(tokio::task::spawn_local(async move {
                let durable = log.flush().await.unwrap();
                assert!(
                    durable >= target,
                    "flush returns an offset at or past its target"
                );
                report(&format!("DURABLE {durable}"));
            }));
            if flushes.len() >= 2 {
                flushes.pop_front().unwrap().await.unwrap();
            }
        }
        for flush in flushes {
            flush.await.unwrap();
        }
        report("TIMEOUT");
    })
    .unwrap();
}

/// Kills and reaps the child if the parent panics, so no appender outlives the test.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one child reported before it died.
#[derive(Debug, Default)]
struct ChildReport {
    start: Option<u64>,
    durable: Vec<u64>,
}

/// One generation of writers in a directory: the epoch it appended with and the log end it
/// found at open, so every batch from `start` on (until a later generation's start) is its.
#[derive(Debug, Clone, Copy)]
struct Generation {
    epoch: i32,
    start: u64,
}

/// One directory's history as the parent saw it.
#[derive(Debug)]
struct DirHistory {
    path: PathBuf,
    seed: u64,
    generations: Vec<Generation>,
    /// Largest offset any child reported durable.
    max_durable: u64,
}

impl DirHistory {
    /// The epoch of the batch at `base_offset`: the latest generation that started at or below
    /// it (a later generation overwrites everything from its start on).
    fn epoch_at(&self, base_offset: u64) -> Option<i32> {
        self.generations
            .iter()
            .rev()
            .find(|g| g.start <= base_offset)
            .map(|g| g.epoch)
    }
}

#[derive(Debug, Default)]
struct Totals {
    kills: u32,
    kills_before_start: u32,
    durable_reports: u64,
    bytes_verified: u64,
    max_log_end: u64,
}

/// Runs one child on `history`'s directory and kills it `delay` after spawning it (or after its
/// `START` line, if `after_start`). Returns what it reported.
fn run_and_kill(
    history: &DirHistory,
    backend: &Backend,
    epoch: i32,
    flush_seed: u64,
    delay: Duration,
    after_start: bool,
    stderr_path: &Path,
) -> ChildReport {
    let exe = std::env::current_exe().unwrap();
    let stderr = std::fs::File::create(stderr_path).unwrap();
    let child = Command::new(exe)
        .args([
            "--exact",
            CHILD_TEST,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, &history.path)
        .env(ENV_SEED, history.seed.to_string())
        .env(ENV_BACKEND, backend.name())
        .env(ENV_EPOCH, epoch.to_string())
        .env(ENV_FLUSH_SEED, flush_seed.to_string())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .unwrap();
    let spawned = Instant::now();
    let mut guard = ChildGuard(Some(child));
    let Some(stdout) = guard.0.as_mut().and_then(|c| c.stdout.take()) else {
        unreachable!("piped")
    };

    // A thread reads the child's lines until EOF (the child's death) and forwards them.
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut stdout = BufReader::new(stdout);
        loop {
            let mut line = String::new();
            match stdout.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                // A line cut short by the kill has no newline and proves nothing.
                Ok(_) if line.ends_with('\n') => {
                    if tx.send(line.trim_end().to_owned()).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
            }
        }
    });

    let mut report = ChildReport::default();
    let mut lines = Vec::new();
    let kill_at = if after_start {
        // Wait (by blocking on the pipe, not by sleeping) until the child has recovered the log.
        loop {
            match rx.recv_timeout(START_TIMEOUT) {
                Ok(line) => {
                    let is_start = parse_report(&line).is_some_and(|r| r.starts_with("START "));
                    lines.push(line);
                    if is_start {
                        break;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("child sent no START line in {START_TIMEOUT:?}")
                }
                // The child died early; the exit status check below says why.
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Instant::now() + delay
    } else {
        spawned + delay
    };
    // The one deliberate sleep: it only decides where the kill lands.
    std::thread::sleep(kill_at.saturating_duration_since(Instant::now()));
    let mut child = guard.0.take().unwrap_or_else(|| unreachable!());
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());

    let stderr_text = std::fs::read_to_string(stderr_path).unwrap_or_default();
    let killed = status.signal() == Some(libc::SIGKILL);
    assert!(
        killed,
        "child was not killed by SIGKILL but ended with {status}; \
         stdout:\n{}\nstderr:\n{stderr_text}",
        lines.join("\n")
    );
    for line in lines.iter().filter_map(|l| parse_report(l)) {
        if let Some(n) = line.strip_prefix("START ") {
            report.start = Some(n.parse().unwrap());
        } else if let Some(n) = line.strip_prefix("DURABLE ") {
            report.durable.push(n.parse().unwrap());
        } else if line == "TIMEOUT" {
            panic!("child ran for {CHILD_LIFETIME_MAX:?} without being killed");
        }
    }
    report
}

/// Opens the log in `dir` and checks it against `history`: every reported-durable offset is
/// present, and every batch present is exactly the one that belongs at its offset, with the
/// epoch of the generation that wrote it. Returns (log end, bytes verified).
async fn verify(dir: &Path, history: &DirHistory, backend: &Backend, context: &str) -> (u64, u64) {
    let log = open(dir, config(), backend).await;
    let end = log.log_end_offset();
    assert_eq!(log.log_start_offset(), 0, "{context}: log start moved");
    assert_eq!(
        log.durable_offset(),
        end,
        "{context}: a recovered log is durable to its end"
    );
    assert!(
        end >= history.max_durable,
        "{context}: log ends at {end} but offset {} was reported durable",
        history.max_durable
    );
    let mut offset = 0u64;
    let mut bytes = 0u64;
    for stored in read_all(&log, 0).await {
        let header = BatchHeader::parse(&stored)
            .unwrap_or_else(|e| panic!("{context}: batch at {offset} does not parse: {e}"));
        assert_eq!(
            header.base_offset as u64, offset,
            "{context}: batches are not contiguous"
        );
        let epoch = history.epoch_at(offset).unwrap_or_else(|| {
            panic!("{context}: batch at {offset} but no generation started at or below it")
        });
        let expected: Bytes = as_stored(expected_batch(history.seed, offset), offset, epoch);
        if stored != expected {
            let first_diff = stored.iter().zip(expected.iter()).position(|(a, b)| a != b);
            panic!(
                "{context}: batch at offset {offset} differs from the one appended there: \
                 {} bytes stored, {} expected, first difference at byte {first_diff:?}; \
                 stored epoch {}, expected {epoch}",
                stored.len(),
                expected.len(),
                header.partition_leader_epoch
            );
        }
        bytes += stored.len() as u64;
        offset = header.last_offset() as u64 + 1;
    }
    assert_eq!(
        offset, end,
        "{context}: batches read end at {offset}, log end is {end}"
    );
    // The reopened log must stay writable for the next child: dropping it writes nothing.
    drop(log);
    (end, bytes)
}

/// Copies the segment files and state of `from` into a fresh `to`, so the parent can verify a
/// crashed directory without recovering it in place (the next child then recovers the raw
/// crash state itself).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn crash_seed() -> u64 {
    env_u64("SLUICE_CRASH_SEED").unwrap_or(0x5EED_C0DE_2024)
}

fn kills_per_backend(backend_count: usize) -> u32 {
    env_u64("SLUICE_CRASH_KILLS")
        .map(|n| n as u32)
        .unwrap_or(if backend_count > 1 { 30 } else { 60 })
}

/// Runs `kills` crash rounds on `backend`.
fn crash_rounds(backend: &Backend, seed: u64, kills: u32) -> Totals {
    let root = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(seed);
    let mut totals = Totals::default();
    let mut history: Option<DirHistory> = None;
    for round in 0..kills {
        if round % KILLS_PER_DIR == 0 {
            if let Some(old) = history.take() {
                std::fs::remove_dir_all(&old.path).unwrap();
            }
            let path = root.path().join(format!("log-{round}"));
            history = Some(DirHistory {
                path,
                seed: rng.next(),
                generations: Vec::new(),
                max_durable: 0,
            });
        }
        let Some(h) = history.as_mut() else {
            unreachable!()
        };
        let epoch = (round % KILLS_PER_DIR) as i32 + 1;
        let flush_seed = rng.next();
        // One kill in five lands early: during process start-up or recovery. The rest land
        // 0..150 ms after the child has recovered and started appending.
        let after_start = rng.range(0, 5) != 0;
        let delay = if after_start {
            Duration::from_millis(rng.range(0, 150))
        } else {
            Duration::from_millis(rng.range(5, 40))
        };
        let verify_copy = rng.range(0, 2) == 0;
        let context = format!(
            "{} round {round} (SLUICE_CRASH_SEED={seed}, dir seed {}, epoch {epoch}, \
             killed {delay:?} after {}, verified {})",
            backend.name(),
            h.seed,
            if after_start { "START" } else { "spawn" },
            if verify_copy { "on a copy" } else { "in place" },
        );
        let stderr_path = root.path().join("child.stderr");
        let report = run_and_kill(
            h,
            backend,
            epoch,
            flush_seed,
            delay,
            after_start,
            &stderr_path,
        );
        totals.kills += 1;
        match report.start {
            Some(start) => {
                assert!(
                    start >= h.max_durable,
                    "{context}: child reopened the log at {start}, below durable offset {}",
                    h.max_durable
                );
                h.generations.push(Generation { epoch, start });
            }
            None => totals.kills_before_start += 1,
        }
        totals.durable_reports += report.durable.len() as u64;
        if let Some(&max) = report.durable.iter().max() {
            h.max_durable = h.max_durable.max(max);
        }

        let report_context = context.clone();
        let (end, bytes) = if verify_copy {
            let copy = root.path().join("verify");
            copy_dir(&h.path, &copy);
            let result = storage::runtime::block_on(backend.clone(), |b| async move {
                verify(&copy, h, &b, &context).await
            })
            .unwrap();
            std::fs::remove_dir_all(root.path().join("verify")).unwrap();
            result
        } else {
            let path = h.path.clone();
            storage::runtime::block_on(backend.clone(), |b| async move {
                verify(&path, h, &b, &context).await
            })
            .unwrap()
        };
        // Captured by libtest and shown if the test fails: the history that led there.
        eprintln!(
            "{report_context}: START {:?}, {} DURABLE lines (max {:?}), recovered log end {end}",
            report.start,
            report.durable.len(),
            report.durable.iter().max()
        );
        totals.bytes_verified += bytes;
        totals.max_log_end = totals.max_log_end.max(end);
    }
    totals
}

#[test]
fn crash_kill_every_durable_offset_survives_sigkill() {
    let seed = crash_seed();
    let backends = backends();
    let kills = kills_per_backend(backends.len());
    for backend in &backends {
        let started = Instant::now();
        let totals = crash_rounds(backend, seed, kills);
        eprintln!(
            "crash_kill {}: {} kills ({} before the child recovered), {} durable reports, \
             {} MiB verified, largest log end {}, {:.1?} (SLUICE_CRASH_SEED={seed})",
            backend.name(),
            totals.kills,
            totals.kills_before_start,
            totals.durable_reports,
            totals.bytes_verified >> 20,
            totals.max_log_end,
            started.elapsed()
        );
        assert_eq!(totals.kills, kills);
    }
}
