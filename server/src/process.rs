//! The process's own figures and limits, read from Linux's `/proc` (the shell's business; the
//! core reads no system): CPU time, resident memory, open descriptors, and the open-files
//! limit raised to what the system allows.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::ProcessStats;

/// `/proc/self/stat` counts CPU time in clock ticks of 1/100 s: Linux fixes `USER_HZ` at 100
/// for every architecture's user-space ABI.
const USER_HZ: f64 = 100.0;

static STARTED: OnceLock<f64> = OnceLock::new();

/// Remembers when the process started (call first thing in `main`).
pub fn mark_start() {
    STARTED.get_or_init(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64())
    });
}

/// The process's figures now. Whatever cannot be read (say, out of descriptors to open
/// `/proc` with) is 0.
pub fn stats() -> ProcessStats {
    let cpu_seconds = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| {
            // The command name (field 2) may hold spaces; fields after it are counted from ')'.
            let after_name = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / USER_HZ)
        })
        .unwrap_or(0.0);
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|entries| entries.count().saturating_sub(1) as u64) // minus the directory's own
        .unwrap_or(0);
    let max_fds = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft);
    ProcessStats {
        cpu_seconds,
        resident_bytes,
        open_fds,
        max_fds,
        start_time_seconds: STARTED.get().copied().unwrap_or(0.0),
    }
}

/// Raises the open-files soft limit to the hard limit. Returns the limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)?;
    if soft < hard {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)?;
        return Ok(hard);
    }
    Ok(soft)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_process_figures_are_read() {
        super::mark_start();
        let stats = super::stats();
        assert!(stats.resident_bytes > 0);
        assert!(stats.open_fds >= 3);
        assert!(stats.max_fds >= stats.open_fds);
        assert!(stats.start_time_seconds > 1.7e9);
    }
}
