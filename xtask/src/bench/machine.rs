//! The machine a benchmark runs on: the tools it needs, how processes share its cores, and a description of it
//! for the report (a figure without its machine means little).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::process::output_within;

/// How to install every tool the benchmark uses (on Debian and Ubuntu).
const INSTALL: &str = "apt-get install -y wrk nginx haproxy redis-server";

/// Directories searched after `PATH`: nginx and haproxy live in sbin, which a user's `PATH` may lack.
const SBIN: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

/// The external tools, found.
#[derive(Debug, Default)]
pub struct Tools {
    found: Vec<(String, PathBuf)>,
}

impl Tools {
    /// Finds every tool in `names`; fails with how to install them if any is missing.
    pub fn require(names: &[&str]) -> anyhow::Result<Self> {
        let mut tools = Self::default();
        let mut missing = Vec::new();
        for name in names {
            if tools.found.iter().any(|(n, _)| n == name) {
                continue;
            }
            match find_program(name) {
                Some(path) => tools.found.push(((*name).to_owned(), path)),
                None => missing.push(*name),
            }
        }
        if !missing.is_empty() {
            bail!(
                "the benchmark needs {} but cannot find it; install with:\n\n    {INSTALL}\n\n\
                 (taskset, for --pin, is in util-linux)",
                missing.join(", ")
            );
        }
        Ok(tools)
    }

    /// The path of a tool found by [`require`](Self::require).
    pub fn path(&self, name: &str) -> anyhow::Result<&Path> {
        self.found
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.as_path())
            .with_context(|| format!("{name} was not looked for"))
    }
}

/// `name` in a directory of `PATH` or of [`SBIN`].
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Where processes run: all cores shared, or (`--pin`) the proxy under test on cores of its own, the upper half
/// (CPU 1 of two), and the load generator, the origin and any Redis on the others.
#[derive(Debug, Serialize)]
pub struct Placement {
    /// Whether `--pin` was given.
    pub pinned: bool,
    /// Workers of the gateway, nginx worker processes, haproxy threads.
    pub server_threads: usize,
    /// Threads of the origin.
    pub origin_threads: usize,
    /// The cores of the machine.
    pub cores: usize,
    /// The open-files limit set for every child, when the inherited one is too low.
    pub fd_limit: Option<u64>,
    #[serde(skip)]
    taskset: Option<PathBuf>,
}

impl Placement {
    /// Checks the machine can hold `connections` open (each proxied one costs a proxy two descriptors).
    pub fn new(pin: bool, connections: u32) -> anyhow::Result<Self> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        if pin && cores < 2 {
            bail!("--pin needs two cores; this machine has {cores}");
        }
        let needed = 3 * u64::from(connections) + 1024;
        let (soft, hard) = open_files_limit()?;
        let fd_limit = if soft >= needed {
            None
        } else if hard >= needed {
            Some(needed)
        } else {
            bail!(
                "{connections} connections need {needed} open files; the hard limit is {hard} \
                 (raise it, e.g. in /etc/security/limits.conf)"
            )
        };
        // Pinned, the proxy gets the upper half of the cores (one of two) to itself.
        let load_cores = cores / 2;
        Ok(Self {
            pinned: pin,
            server_threads: if pin { cores - load_cores } else { cores },
            origin_threads: if pin { load_cores } else { cores },
            cores,
            fd_limit,
            taskset: if pin { find_program("taskset") } else { None },
        })
    }

    /// The cores of the proxy under test when pinned (`1` of two; `4-7` of eight).
    fn proxy_cpus(&self) -> String {
        cpu_range(self.cores / 2, self.cores - 1)
    }

    /// The cores of the load generator, the origin and Redis when pinned.
    fn load_cpus(&self) -> String {
        cpu_range(0, (self.cores / 2).saturating_sub(1))
    }

    /// A command running `program` as the proxy under test.
    pub fn server(&self, program: &Path) -> Command {
        self.command(&self.proxy_cpus(), program)
    }

    /// A command running `program` beside the load: the origin, Redis.
    pub fn backend(&self, program: &Path) -> Command {
        self.command(&self.load_cpus(), program)
    }

    /// A command running `program` as the load generator.
    pub fn client(&self, program: &Path) -> Command {
        self.command(&self.load_cpus(), program)
    }

    /// `program`, under `taskset` when pinned and under `sh -c 'ulimit -n N; exec …'` when the open-files limit
    /// must be raised; both `exec`, so the PID is the program's.
    fn command(&self, cpu: &str, program: &Path) -> Command {
        let mut argv: Vec<String> = Vec::new();
        if let Some(taskset) = self.taskset.as_ref().filter(|_| self.pinned) {
            argv.extend([taskset.display().to_string(), "-c".into(), cpu.into()]);
        }
        if let Some(limit) = self.fd_limit {
            argv.extend([
                "sh".into(),
                "-c".into(),
                format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
            ]);
        }
        argv.push(program.display().to_string());
        let mut command = Command::new(&argv[0]);
        command.args(&argv[1..]);
        command
    }

    /// One line on how the cores are shared, for the report.
    pub fn summary(&self) -> String {
        let limit = self
            .fd_limit
            .map_or(String::new(), |n| format!("; open-files limit raised to {n}"));
        if self.pinned {
            format!(
                "cores: pinned — the proxy under test alone on CPU {} (gateway --workers {n}, nginx worker_processes \
                 {n}, haproxy nbthread {n}); wrk, the origin ({} thread{}) and Redis on CPU {}{limit}",
                self.proxy_cpus(),
                self.origin_threads,
                if self.origin_threads == 1 { "" } else { "s" },
                self.load_cpus(),
                n = self.server_threads
            )
        } else {
            format!(
                "cores: unpinned — wrk (2 threads), the proxy under test and the origin share all {} cores \
                 (gateway --workers {n}, nginx worker_processes {n}, haproxy nbthread {n}, origin {n} threads){limit}",
                self.cores,
                n = self.server_threads
            )
        }
    }
}

/// `a` or `a-b`, as taskset takes them.
fn cpu_range(first: usize, last: usize) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// The soft and hard limits on open files of this process (inherited by its children).
fn open_files_limit() -> anyhow::Result<(u64, u64)> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no `Max open files` in /proc/self/limits")?;
    let mut numbers = line["Max open files".len()..].split_whitespace().map(|n| {
        if n == "unlimited" {
            Ok(u64::MAX)
        } else {
            n.parse::<u64>()
        }
    });
    match (numbers.next(), numbers.next()) {
        (Some(Ok(soft)), Some(Ok(hard))) => Ok((soft, hard)),
        _ => bail!("cannot read the open-files limit from {line:?}"),
    }
}

/// The machine and the software, for the report.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// `date -u`, the day of the run.
    pub date: String,
    /// Cores available to the process (`nproc`).
    pub nproc: usize,
    /// `lscpu`'s model name.
    pub cpu: String,
    /// `uname -r`.
    pub kernel: String,
    /// Memory, from /proc/meminfo.
    pub memory: String,
    /// `git describe --always --dirty` of the workspace.
    pub commit: String,
    /// Versions of wrk, nginx, haproxy and redis-server (those looked for).
    pub tools: BTreeMap<String, String>,
}

impl Machine {
    /// Describes this machine; what cannot be found reads `unknown`.
    pub fn describe(tools: &Tools) -> Self {
        let cpu = stdout_of(&["lscpu"])
            .and_then(|out| {
                out.lines()
                    .find_map(|l| l.strip_prefix("Model name:").map(|m| m.trim().to_owned()))
            })
            .unwrap_or_else(unknown);
        let memory = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| memory_total(&m))
            .unwrap_or_else(unknown);
        let versions = [
            ("wrk", "-v"),
            ("nginx", "-v"),
            ("haproxy", "-v"),
            ("redis-server", "--version"),
        ]
        .into_iter()
        .filter_map(|(name, flag)| {
            let path = tools.path(name).ok()?;
            Some((name.to_owned(), version_of(path, flag).unwrap_or_else(unknown)))
        })
        .collect();
        Self {
            date: first_line(&["date", "-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(unknown),
            nproc: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            cpu,
            kernel: first_line(&["uname", "-r"]).unwrap_or_else(unknown),
            memory,
            commit: first_line(&["git", "describe", "--always", "--dirty"]).unwrap_or_else(unknown),
            tools: versions,
        }
    }

    /// A few lines for the top of the report.
    pub fn summary(&self) -> String {
        let mut tools: Vec<String> = self.tools.iter().map(|(n, v)| format!("{n} {v}")).collect();
        if tools.is_empty() {
            tools.push(String::from("no external tools needed"));
        }
        format!(
            "machine: {} cores (nproc), {}, {} memory, Linux {}\nsoftware: {}; workspace at {}\ndate: {}",
            self.nproc,
            self.cpu,
            self.memory,
            self.kernel,
            tools.join(", "),
            self.commit,
            self.date
        )
    }
}

/// `MemTotal` of /proc/meminfo in GiB.
fn memory_total(meminfo: &str) -> Option<String> {
    let line = meminfo.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: f64 = line.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(format!("{:.1} GiB", kib / (1024.0 * 1024.0)))
}

fn unknown() -> String {
    String::from("unknown")
}

/// A command's stdout, if it ran and succeeded within a few seconds.
fn stdout_of(argv: &[&str]) -> Option<String> {
    let (program, args) = argv.split_first()?;
    let mut command = Command::new(program);
    command.args(args).current_dir(crate::workspace_root());
    let output = output_within(command, Duration::from_secs(10)).ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn first_line(argv: &[&str]) -> Option<String> {
    stdout_of(argv)?.lines().next().map(|l| l.trim().to_owned())
}

/// The version a tool prints for `flag` (wrk exits non-zero and nginx writes to stderr, so read both).
pub fn version_of(program: &Path, flag: &str) -> Option<String> {
    let mut command = Command::new(program);
    command.arg(flag);
    let output = output_within(command, Duration::from_secs(10)).ok()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // `wrk debian/4.1.0-3+b2 [epoll] …`, `nginx version: nginx/1.22.1`, `HAProxy version 2.6.12-1+deb12u4 …`,
    // `Redis server v=7.0.15 sha=…`: the first word with a dotted number, after its last `/` or `=`.
    let line = text.lines().find(|l| !l.trim().is_empty())?;
    line.split_whitespace()
        .map(|w| w.rsplit(['/', '=']).next().unwrap_or(w))
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(str::to_owned)
}
