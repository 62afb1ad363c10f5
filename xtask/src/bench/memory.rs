//! Memory of a server: resident and peak resident set size, from `/proc/PID/status`, summed over a process and
//! its children (nginx's master and workers count as one server).

use serde::Serialize;

use crate::process::Server;

use super::servers::Target;

/// A target's server's memory at one moment.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    pub target: Target,
    /// `None` when /proc could not tell.
    pub memory: Option<Memory>,
}

/// Resident memory of a server, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Memory {
    /// Resident now (`VmRSS`).
    pub rss_kib: u64,
    /// The most ever resident (`VmHWM`, the high-water mark).
    pub peak_kib: u64,
    /// Processes summed.
    pub processes: usize,
}

impl Memory {
    /// The server's memory now; `None` if /proc cannot tell (the process is gone, or there is no /proc).
    pub fn of(server: &mut Server) -> Option<Self> {
        let mut total = of_process(server.pid())?;
        for child in server.children() {
            if let Some(m) = of_process(child) {
                total.rss_kib += m.rss_kib;
                total.peak_kib += m.peak_kib;
                total.processes += 1;
            }
        }
        Some(total)
    }
}

fn of_process(pid: u32) -> Option<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].trim().trim_end_matches("kB").trim().parse().ok()
    };
    Some(Memory {
        rss_kib: kib("VmRSS:")?,
        peak_kib: kib("VmHWM:")?,
        processes: 1,
    })
}

/// `12.3 MiB`.
pub fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}
