//! What the machine allows, checked before anything connects: open files for every client,
//! and output files that can be written.

use std::fs::OpenOptions;
use std::path::Path;

/// Descriptors the loadgen needs beside its clients: per thread a poll and a timer, plus
/// stdio, /proc reads, output files, the signal pipe.
const SPARE_DESCRIPTORS: u64 = 64;

/// Raises the open-files soft limit to the hard limit, and refuses a run whose clients cannot
/// fit under it. Returns the limit now in force.
pub(crate) fn raise_open_files(clients: u32, threads: usize) -> Result<u64, String> {
    let needed = u64::from(clients) + SPARE_DESCRIPTORS + 2 * threads as u64;
    let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE)
        .map_err(|error| format!("cannot read the open-files limit: {error}"))?;
    let limit = if soft < hard {
        rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard)
            .map_err(|error| format!("cannot raise the open-files limit to {hard}: {error}"))?;
        hard
    } else {
        soft
    };
    if needed > limit {
        return Err(format!(
            "--clients {clients} needs about {needed} open files, and this process may open only {limit} (the hard limit); raise it (ulimit -Hn, /etc/security/limits.conf) or lower --clients"
        ));
    }
    Ok(limit)
}

/// Checks that `path` can be written, before the run rather than after it. An existing file
/// is left as it is until the report replaces it.
pub(crate) fn check_output(option: &str, path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{option} {}: is a directory", path.display()));
    }
    let existed = path.exists();
    OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|error| format!("{option} {}: cannot be written: {error}", path.display()))?;
    if !existed {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_output_in_a_missing_directory_is_refused_before_the_run() {
        let error = check_output("--json", Path::new("/nonexistent-dir/out.json")).unwrap_err();
        assert!(
            error.contains("--json /nonexistent-dir/out.json"),
            "{error}"
        );
        let error = check_output("--json", Path::new("/tmp")).unwrap_err();
        assert!(error.contains("is a directory"), "{error}");
    }

    #[test]
    fn a_writable_output_passes_and_leaves_no_file_behind() {
        let path = std::env::temp_dir().join(format!("loadgen-limits-{}", std::process::id()));
        check_output("--json", &path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_limit() {
        let limit = raise_open_files(10, 2).unwrap();
        let (soft, hard) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap();
        assert_eq!((soft, limit), (hard, hard));
        assert!(raise_open_files(u32::MAX, 2).is_err());
    }
}
