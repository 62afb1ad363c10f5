//! Running cargo, the project's servers and other tools from tasks. Every server started here listens on 127.0.0.1
//! and is stopped by its PID when the task ends, also on error and panic paths (the guards stop them as they drop);
//! every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// `cargo`, the same one that runs xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo")))
}

/// Runs a command to completion, failing with its description if it fails.
pub fn run_step(mut command: Command, what: &str) -> anyhow::Result<()> {
    println!("\n==> {what}");
    let status = command.status().with_context(|| format!("starting: {what}"))?;
    if !status.success() {
        bail!("{what}: failed ({status})");
    }
    Ok(())
}

/// How long a server may take to become ready.
const START_LIMIT: Duration = Duration::from_secs(30);

/// How long a server may take to exit on SIGTERM before it is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// How a server shows that it is ready.
#[derive(Debug, Clone, Copy)]
pub enum Ready {
    /// It prints `listening on http://ADDR` on stdout (the project's servers); a gateway with its admin listener on
    /// prints `admin on http://ADDR …` just before it.
    PrintsAddress,
    /// It accepts TCP connections on this address (servers that print nothing, such as nginx and haproxy).
    Accepts(SocketAddr),
}

/// Regenerates the gateways, then builds the example gateways, the lab gateway (function targets, for the
/// `functions` benchmark), the fleet gateway (upstreams of several servers, for the `upstreams` benchmark) and the
/// example upstream in release mode: what the demo serves and the benchmarks measure.
pub fn build_examples_release() -> anyhow::Result<()> {
    crate::generate::run(&crate::generate::Args::default())?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "petstore-gateway",
        "-p",
        "store-gateway",
        "-p",
        "lab-gateway",
        "-p",
        "fleet-gateway",
        "-p",
        "gateway-tests",
    ]);
    build.args([
        "--bin",
        "petstore-gateway",
        "--bin",
        "store-gateway",
        "--bin",
        "lab-gateway",
        "--bin",
        "fleet-gateway",
        "--bin",
        "test-upstream",
    ]);
    run_step(build, "build the example gateways and the example upstream (release)")
}

/// An address a starting server printed on stdout.
enum Announced {
    /// `admin on http://ADDR (metrics: …)`.
    Admin(String),
    /// `listening on http://ADDR`.
    Listening(String),
}

/// A server process; stopped by its PID (and its children by theirs) when dropped.
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where its admin listener is, if it printed `admin on http://ADDR …` before its `listening on` line.
    pub admin: Option<SocketAddr>,
    name: String,
    /// Its children seen so far, remembered so that they can be stopped even after it died and they were orphaned.
    children: Vec<ProcessId>,
}

impl Server {
    /// Starts `program` with `args` and waits (bounded) for its `listening on` line.
    pub fn start(program: &Path, args: &[String], name: &str) -> anyhow::Result<Self> {
        Self::start_with_env(program, args, &[], name)
    }

    /// [`Server::start`] with extra environment variables.
    pub fn start_with_env(program: &Path, args: &[String], env: &[(&str, &str)], name: &str) -> anyhow::Result<Self> {
        let mut command = Command::new(program);
        command.args(args).envs(env.iter().copied());
        Self::spawn(command, name, Ready::PrintsAddress)
    }

    /// Starts `command` and waits (bounded) until it is `ready`. Its stdin is closed; with
    /// [`Ready::PrintsAddress`] its stdout is read here, otherwise stdout and stderr are as `command` says.
    pub fn spawn(mut command: Command, name: &str, ready: Ready) -> anyhow::Result<Self> {
        command.stdin(Stdio::null());
        if matches!(ready, Ready::PrintsAddress) {
            command.stdout(Stdio::piped());
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        // From here on the guard owns the process: any failure below stops it as the guard drops.
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin: None,
            name: name.to_owned(),
            children: Vec::new(),
        };
        server.addr = match ready {
            Ready::PrintsAddress => server.read_address()?,
            Ready::Accepts(addr) => {
                server.wait_accepting(addr)?;
                addr
            }
        };
        server.note_children();
        Ok(server)
    }

    /// Reads stdout up to the `listening on` line (bounded), noting the admin address printed before it, if any.
    /// Stdout is read to its end on a thread afterwards, so that a server writing its access log there never blocks.
    fn read_address(&mut self) -> anyhow::Result<SocketAddr> {
        let stdout = self.child.stdout.take().context("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line
                    .strip_prefix("listening on http://")
                    .or_else(|| line.strip_prefix("listening on https://"))
                {
                    let _ = tx.send(Announced::Listening(addr.trim().to_owned()));
                } else if let Some(rest) = line.strip_prefix("admin on http://") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(Announced::Admin(addr.to_owned()));
                }
            }
        });
        let deadline = Instant::now() + START_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(Announced::Admin(addr)) => {
                    let admin = addr
                        .parse()
                        .with_context(|| format!("{} printed a bad admin address {addr:?}", self.name))?;
                    self.admin = Some(admin);
                }
                Ok(Announced::Listening(addr)) => {
                    return addr
                        .parse()
                        .with_context(|| format!("{} printed a bad address {addr:?}", self.name));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    bail!("{} closed its stdout without printing its address", self.name)
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bail!("{} did not start within {START_LIMIT:?}", self.name),
            }
        }
    }

    fn wait_accepting(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.exit_status() {
                bail!("{} exited ({status}) before accepting connections on {addr}", self.name);
            }
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!(
            "{} did not accept connections on {addr} within {START_LIMIT:?}",
            self.name
        )
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The name it was started with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it exited, if it has.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Its direct children now (nginx's workers, say), by PID.
    pub fn children(&mut self) -> Vec<u32> {
        self.note_children();
        children_of(self.pid()).into_iter().map(|p| p.pid).collect()
    }

    fn note_children(&mut self) {
        for child in children_of(self.pid()) {
            if !self.children.contains(&child) {
                self.children.push(child);
            }
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process: SIGTERM, then SIGKILL if it has not exited within 10 s. Children it leaves behind (a
    /// killed nginx master leaves its workers running) are killed by their PIDs.
    pub fn stop(&mut self) {
        if self.exit_status().is_none() {
            self.note_children();
            self.terminate();
        }
        for child in std::mem::take(&mut self.children) {
            // The start time tells the same process from a later one that reuses its PID.
            if proc_stat(child.pid).is_some_and(|(_, start)| start == child.start) {
                signal(child.pid, "KILL");
            }
        }
    }

    /// SIGTERM, then SIGKILL after [`STOP_LIMIT`].
    fn terminate(&mut self) {
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + STOP_LIMIT;
        let mut exited = false;
        while Instant::now() < deadline {
            if self.exit_status().is_some() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if !exited {
            eprintln!("{} (pid {}) did not stop on SIGTERM; killing it", self.name, self.pid());
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `signal` (a name such as `TERM`) to one process.
fn signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stderr(Stdio::null())
        .status();
}

/// A process named so that a later process with the same PID is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessId {
    pid: u32,
    start: u64,
}

/// The processes whose parent is `parent`, from /proc (empty where there is no /proc).
fn children_of(parent: u32) -> Vec<ProcessId> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let (ppid, start) = proc_stat(pid)?;
            (ppid == parent).then_some(ProcessId { pid, start })
        })
        .collect()
}

/// A process's parent PID and start time (in clock ticks since boot), from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields after its closing one.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 3 (state) is fields[0], so field N is fields[N - 3]: ppid is field 4, starttime field 22.
    Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
}

/// Runs `command` to completion with its stdout and stderr captured, killing it if it takes longer than `limit`.
pub fn output_within(mut command: Command, limit: Duration) -> anyhow::Result<Output> {
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = KillOnDrop(
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {program}"))?,
    );
    let stdout = read_in_background(child.0.stdout.take());
    let stderr = read_in_background(child.0.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        if Instant::now() >= deadline {
            bail!("{program} did not finish within {limit:?}; killed it");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let collect = |reader: std::thread::JoinHandle<Vec<u8>>| reader.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout: collect(stdout),
        stderr: collect(stderr),
    })
}

/// A child that is killed (by its PID) and reaped if still running when this drops.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Reads a pipe to its end on a thread, so that a chatty child never blocks on a full pipe.
fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// `name` found in a directory of `PATH`, if it is there.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A minimal HTTP/1.1 GET with `Connection: close`, for smoke checks without an HTTP client dependency.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_get_with(addr, path, &[])
}

/// [`http_get`] with extra request headers.
pub fn http_get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
    http_request(addr, "GET", path, headers, None)
}

/// One request with `method`, `headers` and an optional `body`; the status and the whole response as text.
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<(u16, String)> {
    let mut stream = connect(addr)?;
    stream.write_all(request_text(addr, method, path, headers, body).as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok((status_of(&response)?, response))
}

/// A TCP connection to `addr` with the smoke checks' time limits.
fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    stream.set_write_timeout(Some(Duration::from_secs(15)))?;
    Ok(stream)
}

/// The text of one HTTP/1.1 request with `Connection: close`.
fn request_text(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: Option<&str>) -> String {
    let mut extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    if let Some(body) = body {
        extra.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n{}",
        body.unwrap_or("")
    )
}

/// The status code of a response's text.
fn status_of(response: &str) -> anyhow::Result<u16> {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP response: {response:?}"))
}

/// Where a task's smoke requests go: a server speaking plain HTTP, or HTTPS with a certificate checked against a
/// CA of the task's own (`cargo xtask cert`). Either way one request per connection, `Connection: close`.
#[derive(Clone)]
pub struct Endpoint {
    /// The server's address.
    pub addr: SocketAddr,
    /// With HTTPS: the client's configuration (trusting only the CA) and the name the certificate must hold.
    tls: Option<(Arc<rustls::ClientConfig>, rustls::pki_types::ServerName<'static>)>,
}

impl Endpoint {
    /// A server speaking plain HTTP: requests as [`http_request`] sends them.
    pub fn plain(addr: SocketAddr) -> Self {
        Self { addr, tls: None }
    }

    /// A server speaking HTTPS whose certificate, for `name` (a DNS name or an IP address), is signed by the CA in
    /// the PEM file `ca`. HTTP/1.1 is asked for by ALPN.
    pub fn https(addr: SocketAddr, ca: &Path, name: &str) -> anyhow::Result<Self> {
        use rustls::pki_types::pem::PemObject as _;
        let ca_der = rustls::pki_types::CertificateDer::from_pem_file(ca)
            .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca_der).context("the CA certificate")?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = rustls::pki_types::ServerName::try_from(name.to_owned())
            .with_context(|| format!("`{name}` is not a server name"))?;
        Ok(Self {
            addr,
            tls: Some((Arc::new(config), name)),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// [`http_get`] to this endpoint.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.request("GET", path, &[], None)
    }

    /// [`http_request`] to this endpoint: the status and the whole response as text.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        let Some((config, name)) = &self.tls else {
            return http_request(self.addr, method, path, headers, body);
        };
        let connection =
            rustls::ClientConnection::new(Arc::clone(config), name.clone()).context("starting a TLS connection")?;
        let mut stream = rustls::StreamOwned::new(connection, connect(self.addr)?);
        stream
            .write_all(request_text(self.addr, method, path, headers, body).as_bytes())
            .with_context(|| format!("TLS handshake or request to {}", self.addr))?;
        stream.flush()?;
        let mut bytes = Vec::new();
        let mut chunk = [0_u8; 16 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => bytes.extend_from_slice(&chunk[..n]),
                // A server that closes without close_notify after a complete `Connection: close` answer.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !bytes.is_empty() => break,
                Err(e) => return Err(e).with_context(|| format!("reading the answer of {}", self.addr)),
            }
        }
        let response = String::from_utf8_lossy(&bytes).into_owned();
        Ok((status_of(&response)?, response))
    }
}
