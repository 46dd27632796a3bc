//! CPU time and memory of processes, from `/proc` and `getrusage`.

use crate::BenchResult;

/// A process's CPU time (user, system; every thread) from `/proc/<pid>/stat`, in seconds.
pub fn process_cpu_secs(pid: u32) -> BenchResult<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').ok_or("bad /proc stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11).ok_or("short /proc stat")?.parse()?;
    let stime: u64 = fields.get(12).ok_or("short /proc stat")?.parse()?;
    let ticks = clock_ticks_per_sec();
    Ok((utime as f64 / ticks, stime as f64 / ticks))
}

fn clock_ticks_per_sec() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(ticks)) if ticks > 0 => ticks as f64,
        _ => 100.0,
    }
}

/// This process's CPU time (user + system, every thread), in seconds.
pub fn own_cpu_secs() -> f64 {
    rusage_cpu_secs(nix::sys::resource::UsageWho::RUSAGE_SELF)
}

/// CPU time (user + system) of this process's children that have exited and been waited for,
/// in seconds: the delta around one child's run is that child's CPU.
pub fn children_cpu_secs() -> f64 {
    rusage_cpu_secs(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
}

fn rusage_cpu_secs(who: nix::sys::resource::UsageWho) -> f64 {
    match nix::sys::resource::getrusage(who) {
        Ok(usage) => {
            let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
            secs(usage.user_time()) + secs(usage.system_time())
        }
        Err(_) => f64::NAN,
    }
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `/proc/loadavg`, trimmed (empty when unreadable).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Proactive reclaim the kernel runs on its own (DAMON schemes that page out memory left
/// unaccessed), as `kdamond N: action ...` lines; empty when none runs. On this VM (it pages
/// out what went 30 s unaccessed) it takes back what the broker's allocator released with
/// `MADV_FREE`, and a shard that sat idle faults those pages in again on its next burst, so a
/// bench that reports CPU per MB should say so (benches/RESULTS.md, native-bench runs 12 to 18).
pub fn proactive_reclaim() -> Vec<String> {
    let root = std::path::Path::new("/sys/kernel/mm/damon/admin/kdamonds");
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_default()
    };
    let mut found = Vec::new();
    let Ok(kdamonds) = std::fs::read_dir(root) else {
        return found;
    };
    for kdamond in kdamonds.flatten() {
        let dir = kdamond.path();
        if read(&dir.join("state")) != "on" {
            continue;
        }
        let Ok(schemes) = std::fs::read_dir(dir.join("contexts/0/schemes")) else {
            continue;
        };
        for scheme in schemes.flatten() {
            let scheme = scheme.path();
            let action = read(&scheme.join("action"));
            if action.is_empty() {
                continue;
            }
            found.push(format!(
                "kdamond {}: {action} of regions unaccessed for {} aggregation intervals of {} us",
                dir.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                read(&scheme.join("access_pattern/age/min")),
                read(&dir.join("contexts/0/monitoring_attrs/intervals/aggr_us")),
            ));
        }
    }
    found
}

/// How long the disks must be idle before the next measurement starts, and the longest wait
/// for it (a disk kept busy by something else must not stall the bench).
const DISK_QUIET: std::time::Duration = std::time::Duration::from_millis(300);
const DISK_SETTLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Waits, at most [`DISK_SETTLE_LIMIT`], until every block device has been idle for
/// [`DISK_QUIET`]: no request in flight and no discard completed. Deleting gigabytes of segments on a filesystem mounted
/// with `discard` (as this VM's is) keeps the disk discarding after the unlink returns, and a
/// measurement started meanwhile pays for it: native-bench saw single cases at a third of
/// their throughput, or three times their CPU per MB (benches/RESULTS.md, runs 8 and 9).
/// Returns how long it waited; at once when `/proc/diskstats` cannot be read.
pub fn wait_for_quiet_disks() -> std::time::Duration {
    let (quiet, limit) = (DISK_QUIET, DISK_SETTLE_LIMIT);
    let started = std::time::Instant::now();
    let step = std::time::Duration::from_millis(50);
    let mut last = disk_activity();
    let mut quiet_since = std::time::Instant::now();
    while started.elapsed() < limit {
        std::thread::sleep(step);
        let now = disk_activity();
        let (Some((discards, in_flight)), Some((last_discards, _))) = (now, last) else {
            return started.elapsed();
        };
        if discards != last_discards || in_flight > 0 {
            quiet_since = std::time::Instant::now();
        } else if quiet_since.elapsed() >= quiet {
            break;
        }
        last = now;
    }
    started.elapsed()
}

/// Discards completed and requests in flight, summed over the block devices in
/// `/proc/diskstats` (fields 15 and 12; kernels since 4.18 have the discard fields).
fn disk_activity() -> Option<(u64, u64)> {
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    let mut discards = 0u64;
    let mut in_flight = 0u64;
    for line in stats.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(flight), Some(discarded)) = (fields.get(11), fields.get(14)) else {
            continue;
        };
        in_flight += flight.parse::<u64>().unwrap_or(0);
        discards += discarded.parse::<u64>().unwrap_or(0);
    }
    Some((discards, in_flight))
}

/// CPU used by one process and by this one over a span.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    pid: Option<u32>,
    peer_user: f64,
    peer_sys: f64,
    own: f64,
}

/// What a `CpuMeter` measured, in CPU seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuSpent {
    pub peer_user: f64,
    pub peer_sys: f64,
    pub own: f64,
}

impl CpuSpent {
    pub fn peer(&self) -> f64 {
        self.peer_user + self.peer_sys
    }
}

impl CpuMeter {
    /// Starts measuring `pid` (if any) and this process.
    pub fn start(pid: Option<u32>) -> BenchResult<CpuMeter> {
        let (peer_user, peer_sys) = match pid {
            Some(pid) => process_cpu_secs(pid)?,
            None => (0.0, 0.0),
        };
        Ok(CpuMeter {
            pid,
            peer_user,
            peer_sys,
            own: own_cpu_secs(),
        })
    }

    pub fn stop(&self) -> BenchResult<CpuSpent> {
        let (user, sys) = match self.pid {
            Some(pid) => process_cpu_secs(pid)?,
            None => (0.0, 0.0),
        };
        Ok(CpuSpent {
            peer_user: user - self.peer_user,
            peer_sys: sys - self.peer_sys,
            own: own_cpu_secs() - self.own,
        })
    }
}
