//! The answerer's CPU time, resident memory and threads, read from /proc.

use std::time::Duration;

/// One reading of a process.
#[derive(Clone, Copy)]
pub struct Usage {
    /// CPU time so far, user + system.
    pub cpu: Duration,
    /// Resident set size in bytes.
    pub rss: u64,
    /// Threads.
    pub threads: u64,
}

/// Reads process `pid`.
pub fn usage(pid: u32) -> Usage {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("answerer gone");
    // The command name may hold spaces; the fields we want follow its closing parenthesis.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    // SAFETY: sysconf with a valid name has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    Usage {
        cpu: Duration::from_millis(ticks * 1000 / hz),
        rss: field("VmRSS:") * 1024,
        threads: field("Threads:"),
    }
}
