//! A generated gateway running as a real process, stopped by its PID.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

/// How long a gateway may take to report that it listens.
const START_LIMIT: Duration = Duration::from_secs(30);

/// The path of a binary built in this workspace's target directory (next to the test executable's `deps/`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(PathBuf::from)
        .unwrap_or_default();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (`cargo xtask test` does)",
        path.display()
    );
    path
}

/// A running gateway process.
pub struct Gateway {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its admin listener listens (started on an ephemeral port unless the arguments say otherwise).
    pub admin: Option<SocketAddr>,
    /// Where its HTTP-to-HTTPS redirect listens, when `--redirect-http` started one.
    pub redirect: Option<SocketAddr>,
    /// What it printed on stderr, collected here when it exits.
    stderr: Option<std::thread::JoinHandle<String>>,
    /// What it printed on stderr so far, while it runs.
    stderr_so_far: Arc<Mutex<String>>,
    /// The lines it printed on stdout after `listening on` (the access log, by default), as they come.
    stdout: Arc<Mutex<Vec<String>>>,
    /// Its working directory, of its own: what it writes at relative paths (a store's default file) lands there, not
    /// in the source tree, and goes with it.
    workdir: std::path::PathBuf,
}

/// A fresh working directory for one gateway process.
fn workdir() -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "gateway-cwd-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

impl Gateway {
    /// Starts `bin` on an ephemeral port of 127.0.0.1 (its admin listener on another, unless `args` say where) with
    /// extra `args`, and waits for `listening on http://ADDR`.
    pub fn start(bin: &str, args: &[String]) -> Result<Self, String> {
        Self::start_with_env(bin, args, &[])
    }

    /// [`Gateway::start`] with extra environment variables (`GATEWAY_LOG` is `info` unless given).
    pub fn start_with_env(bin: &str, args: &[String], env: &[(&str, &str)]) -> Result<Self, String> {
        Self::start_with_files(bin, args, env, &[])
    }

    /// [`Gateway::start_with_env`], with `files` copied into its working directory first: `(relative path, source)`,
    /// for paths the spec names relative to where the gateway runs.
    pub fn start_with_files(
        bin: &str,
        args: &[String],
        env: &[(&str, &str)],
        files: &[(&str, &std::path::Path)],
    ) -> Result<Self, String> {
        let workdir = workdir().map_err(|e| format!("a working directory for {bin}: {e}"))?;
        for (relative, source) in files {
            let target = workdir.join(relative);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::copy(source, &target)
                .map_err(|e| format!("copying {} to {}: {e}", source.display(), target.display()))?;
        }
        let mut command = Command::new(binary(bin));
        command.current_dir(&workdir);
        command.arg("--listen").arg("127.0.0.1:0");
        if !args.iter().any(|a| a.starts_with("--admin-listen")) {
            command.arg("--admin-listen").arg("127.0.0.1:0");
        }
        let mut child = command
            .args(args)
            .env("GATEWAY_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {bin}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let stderr_so_far = Arc::new(Mutex::new(String::new()));
        let stderr = std::thread::spawn({
            let so_far = Arc::clone(&stderr_so_far);
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut text = so_far.lock().unwrap_or_else(PoisonError::into_inner);
                    text.push_str(&line);
                    text.push('\n');
                }
                so_far.lock().unwrap_or_else(PoisonError::into_inner).clone()
            }
        });
        let (tx, rx) = mpsc::channel();
        let after = Arc::new(Mutex::new(Vec::new()));
        let lines = Arc::clone(&after);
        std::thread::spawn(move || {
            let mut listening = false;
            let mut admin = None;
            let mut redirect = None;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if listening {
                    lines.lock().unwrap_or_else(PoisonError::into_inner).push(line);
                } else if let Some(rest) = line.strip_prefix("admin on http://") {
                    admin = rest.split_whitespace().next().map(str::to_owned);
                } else if let Some(rest) = line.strip_prefix("redirecting http://") {
                    redirect = rest.split_whitespace().next().map(str::to_owned);
                } else if let Some(addr) = line
                    .strip_prefix("listening on http://")
                    .or_else(|| line.strip_prefix("listening on https://"))
                {
                    listening = true;
                    let _ = tx.send((addr.trim().to_owned(), admin.take(), redirect.take()));
                }
            }
        });
        let mut gateway = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            redirect: None,
            stderr: Some(stderr),
            stderr_so_far,
            stdout: after,
            workdir,
        };
        match rx.recv_timeout(START_LIMIT) {
            Ok((addr, admin, redirect)) => {
                gateway.redirect = redirect
                    .map(|a| a.parse().map_err(|e| format!("bad redirect address {a:?}: {e}")))
                    .transpose()?;
                gateway.addr = addr.parse().map_err(|e| format!("bad address {addr:?}: {e}"))?;
                gateway.admin = admin
                    .map(|a| a.parse().map_err(|e| format!("bad admin address {a:?}: {e}")))
                    .transpose()?;
                Ok(gateway)
            }
            Err(_) => {
                let _ = gateway.child.kill();
                let _ = gateway.child.wait();
                Err(format!("{bin} did not start: {}", gateway.take_stderr()))
            }
        }
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADMIN_ADDR{path}`, on the admin listener.
    ///
    /// # Panics
    /// If the gateway was started with `--admin-listen off`.
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.expect("the gateway's admin listener is on");
        format!("http://{admin}{path}")
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits up to `limit` for the process to exit.
    pub fn terminate(&mut self, limit: Duration) -> Option<ExitStatus> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The lines the process wrote to stdout after its `listening on` line, so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Whether the process has written `text` on stderr so far.
    pub fn stderr_contains(&self, text: &str) -> bool {
        self.stderr_so_far
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(text)
    }

    /// Everything the process wrote to stderr (waits for it to have exited).
    pub fn take_stderr(&mut self) -> String {
        self.stderr.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
    }
}
