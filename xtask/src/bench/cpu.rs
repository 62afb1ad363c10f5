//! CPU time of a server: the user and system time of a process (every thread of it) and its children, from
//! `/proc/PID/stat`, in seconds. Read just before and just after a run, the difference divided by the requests
//! served is the CPU time a request costs the server (its share of the kernel's work for its sockets included).

use std::process::Command;
use std::sync::LazyLock;

use crate::process::Server;

/// Clock ticks per second (`getconf CLK_TCK`; 100 where it cannot tell, as on every Linux architecture but a few).
static TICKS_PER_SECOND: LazyLock<f64> = LazyLock::new(|| {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok()?.trim().parse::<f64>().ok())
        .filter(|&ticks| ticks > 0.0)
        .unwrap_or(100.0)
});

/// The server's CPU time so far, user + system, summed over it and its children, in seconds; `None` if /proc
/// cannot tell (the process is gone, or there is no /proc). One clock tick (10 ms) is the resolution.
pub fn seconds(server: &mut Server) -> Option<f64> {
    let mut ticks = ticks_of(server.pid())?;
    for child in server.children() {
        ticks += ticks_of(child).unwrap_or(0);
    }
    Some(ticks as f64 / *TICKS_PER_SECOND)
}

/// The CPU µs per request between two readings of [`seconds`] around a run that served `requests`.
pub fn per_request(before: Option<f64>, after: Option<f64>, requests: f64) -> Option<f64> {
    let spent = after? - before?;
    (requests > 0.0 && spent >= 0.0).then(|| spent * 1e6 / requests)
}

/// `utime + stime` of one process, in clock ticks.
fn ticks_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    ticks_in(&stat)
}

/// `utime` (field 14) + `stime` (field 15) of a `/proc/PID/stat` line.
fn ticks_in(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0], so field N is fields[N - 3].
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_user_and_system_time() {
        let stat = "4242 (petstore gateway) S 1 4242 4242 0 -1 4194560 512 0 0 0 150 37 0 0 20 0 3 0 99 0 0";
        assert_eq!(ticks_in(stat), Some(187));
        assert_eq!(ticks_in("4242 (x) S 1"), None);
    }
}
