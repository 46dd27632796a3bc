//! How much memory this machine (or container) gives the broker, for defaults sized by it.
//!
//! The smaller of the physical memory (`MemTotal` in `/proc/meminfo`) and the cgroup v2 limit
//! of the broker's own cgroup (`memory.max`), so a broker in a container with a 1 GiB limit
//! does not size its caches for the host's 256 GiB.

use std::fs;

/// Bytes of memory available to this process, if the system says.
pub fn available_bytes() -> Option<u64> {
    let physical = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| mem_total(&text));
    let limit = cgroup_limit();
    match (physical, limit) {
        (Some(p), Some(l)) => Some(p.min(l)),
        (p, l) => p.or(l),
    }
}

/// `MemTotal` of a `/proc/meminfo` text, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// The `memory.max` of this process's cgroup (v2), when it sets one.
fn cgroup_limit() -> Option<u64> {
    let membership = fs::read_to_string("/proc/self/cgroup").ok()?;
    // v2: the single line "0::/path".
    let path = membership.lines().find_map(|l| l.strip_prefix("0::"))?;
    let max = fs::read_to_string(format!("/sys/fs/cgroup{path}/memory.max")).ok()?;
    parse_memory_max(&max)
}

/// A `memory.max` value: bytes, or "max" for no limit.
fn parse_memory_max(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_mem_total_and_cgroup_limits() {
        let meminfo = "MemFree:  100 kB\nMemTotal:       24576000 kB\nBuffers: 1 kB\n";
        assert_eq!(mem_total(meminfo), Some(24_576_000 * 1024));
        assert_eq!(mem_total("MemTotal: lots kB\n"), None);
        assert_eq!(mem_total(""), None);
        assert_eq!(parse_memory_max("max\n"), None);
        assert_eq!(parse_memory_max("1073741824\n"), Some(1 << 30));
    }

    #[test]
    fn this_machine_reports_some_memory() {
        assert!(available_bytes().is_some_and(|b| b > 0));
    }
}
