//! The access log: one JSON object per line per request, written off the hot path.
//!
//! ```text
//! worker thread (pipeline::finish) ─► record: format the line ─► try_send on a bounded channel ─┐
//!                                          full: drop it, count it (warned about at most once a second)
//! writer thread ◄───────────────────────────────────────────────────────────────────────────────┘
//!   every few milliseconds takes what is queued, writes it in one call; reopens the file when asked (SIGUSR1);
//!   it polls rather than waits on the channel, so that no request ever has to wake it
//! ```
//!
//! A request never waits for the log: formatting is a few hundred bytes into one small buffer, and sending never
//! blocks. Each worker thread holds its own sender in a thread-local ([`install`]), so the pipeline needs no
//! argument to reach it and a request that did not come through the server (unit tests) logs nothing.
//!
//! A line never carries a credential: no header value (so no key, token, cookie or `Authorization`), no query
//! string and no raw path — only the operation's path template, the key's *name* and a verified token's `sub`.

use std::cell::RefCell;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::response::Response;
use http_body::Body as _;

use crate::pipeline::{CacheStatus, RequestCtx};

/// Lines queued between the workers and the writer by default.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Bytes gathered into one write, at most (a line more may follow the last one that fits).
const BATCH: usize = 64 * 1024;

/// The writer's longest sleep, once nothing has come for a while (it also bounds how late a reopen is done).
const IDLE: Duration = Duration::from_millis(50);

/// The writer's sleep between batches while lines come.
const PACE: Duration = Duration::from_millis(2);

/// At most one warning about dropped lines per this many milliseconds.
const WARN_EVERY_MS: u64 = 1000;

/// A line's initial buffer: most lines fit without growing it.
const LINE: usize = 384;

/// Where the access log goes (`--access-log stdout|PATH|off`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AccessLogTarget {
    /// No access log.
    #[default]
    Off,
    /// Standard output, after the `listening on` line.
    Stdout,
    /// A file, appended to (created if missing) and reopened on SIGUSR1.
    File(PathBuf),
}

impl FromStr for AccessLogTarget {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "" => Err("expected `stdout`, `off` or a file path".to_owned()),
            "off" => Ok(Self::Off),
            "stdout" | "-" => Ok(Self::Stdout),
            path => Ok(Self::File(PathBuf::from(path))),
        }
    }
}

impl fmt::Display for AccessLogTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::Stdout => f.write_str("stdout"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Why the access log cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AccessLogError {
    /// The file cannot be opened for appending.
    #[error("cannot open the access log {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The writer thread cannot start.
    #[error("cannot start the access log writer: {0}")]
    Thread(std::io::Error),
}

/// What the workers, the writer and the handles share.
#[derive(Debug)]
struct Shared {
    /// Lines dropped because the channel was full (or the writer gone).
    dropped: AtomicU64,
    /// When the last warning about drops was logged, in milliseconds since `epoch` (plus one: zero is never).
    warned_at: AtomicU64,
    epoch: Instant,
    /// A reopen is pending.
    reopen: AtomicBool,
    /// Held by [`AccessLogHandle::pause`]: the writer takes nothing from the channel meanwhile.
    gate: Mutex<()>,
}

impl Shared {
    fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether [`AccessLogHandle::pause`] holds the gate.
    fn paused(&self) -> bool {
        matches!(self.gate.try_lock(), Err(std::sync::TryLockError::WouldBlock))
    }

    /// Counts a dropped line, and warns about the drops at most once every [`WARN_EVERY_MS`].
    fn dropped(&self) {
        let total = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let last = self.warned_at.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= WARN_EVERY_MS)
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped = total,
                "access log lines dropped: the writer is not keeping up"
            );
        }
    }
}

/// What a worker thread sends its lines with.
#[derive(Debug, Clone)]
pub(crate) struct Sink {
    sender: SyncSender<Vec<u8>>,
    shared: Arc<Shared>,
}

thread_local! {
    /// This worker's sink, if the access log is on.
    static SINK: RefCell<Option<Sink>> = const { RefCell::new(None) };
}

/// Makes this thread's requests log through `sink` (until [`uninstall`]).
pub(crate) fn install(sink: Option<Sink>) {
    SINK.with(|slot| *slot.borrow_mut() = sink);
}

/// Stops this thread's requests from logging, dropping its sender (the writer ends once every sender is gone).
pub(crate) fn uninstall() {
    SINK.with(|slot| slot.borrow_mut().take());
}

/// Logs the request `ctx` answered with `response`, if this thread has an access log. Never blocks.
pub(crate) fn record(ctx: &RequestCtx, response: &Response) {
    SINK.with(|slot| {
        let slot = slot.borrow();
        let Some(sink) = slot.as_ref() else {
            return;
        };
        let line = format_line(ctx, response, jiff::Timestamp::now());
        match sink.sender.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => sink.shared.dropped(),
        }
    });
}

/// The access log of a running server: its writer thread and what the handles reach.
#[derive(Debug)]
pub(crate) struct AccessLog {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl AccessLog {
    /// Opens `target` and starts the writer with a channel of `capacity` lines. `None` when the target is off.
    /// The sink is for the workers: the writer stops once every clone of it is dropped.
    pub(crate) fn start(target: &AccessLogTarget, capacity: usize) -> Result<Option<(Self, Sink)>, AccessLogError> {
        let output = match target {
            AccessLogTarget::Off => return Ok(None),
            AccessLogTarget::Stdout => Output::Stdout,
            AccessLogTarget::File(path) => Output::File {
                file: open(path).map_err(|source| AccessLogError::Open {
                    path: path.clone(),
                    source,
                })?,
                path: path.clone(),
            },
        };
        let shared = Arc::new(Shared {
            dropped: AtomicU64::new(0),
            warned_at: AtomicU64::new(0),
            epoch: Instant::now(),
            reopen: AtomicBool::new(false),
            gate: Mutex::new(()),
        });
        let (sender, receiver) = std::sync::mpsc::sync_channel(capacity);
        let writer = Writer {
            receiver,
            output,
            shared: Arc::clone(&shared),
            failing: false,
        };
        let thread = std::thread::Builder::new()
            .name("gateway-access-log".to_owned())
            .spawn(move || writer.run())
            .map_err(AccessLogError::Thread)?;
        let sink = Sink {
            sender,
            shared: Arc::clone(&shared),
        };
        Ok(Some((
            Self {
                shared,
                writer: Some(thread),
            },
            sink,
        )))
    }

    /// A handle for reopening and counting drops.
    pub(crate) fn handle(&self) -> AccessLogHandle {
        AccessLogHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Waits for the writer to write everything queued (once every sink is dropped, i.e. the workers stopped).
    pub(crate) fn join(&mut self) {
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the access log writer panicked");
        }
    }
}

/// Reopens the file and counts dropped lines of a running access log (cheap to clone).
#[derive(Debug, Clone)]
pub struct AccessLogHandle {
    shared: Arc<Shared>,
}

impl AccessLogHandle {
    /// Asks the writer to reopen the file (after logrotate moved it) before its next write. A failed reopen keeps
    /// the old file and is logged. Nothing to do for stdout.
    pub fn reopen(&self) {
        self.shared.reopen.store(true, Ordering::Release);
    }

    /// Lines dropped so far because the writer was not keeping up.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Stops the writer from taking lines off the channel until the guard is dropped, so that it fills (for tests
    /// of the drop path). At most the batch being taken when this is called still gets through.
    pub fn pause(&self) -> PauseGuard<'_> {
        PauseGuard {
            _guard: self.shared.gate(),
        }
    }
}

/// See [`AccessLogHandle::pause`].
#[derive(Debug)]
pub struct PauseGuard<'a> {
    _guard: MutexGuard<'a, ()>,
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Where the writer writes.
enum Output {
    Stdout,
    File { path: PathBuf, file: File },
}

impl Output {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Output::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(bytes)?;
                out.flush()
            }
            // Unbuffered: the batch is one write, and nothing waits in a buffer.
            Output::File { file, .. } => file.write_all(bytes),
        }
    }

    fn reopen(&mut self) {
        if let Output::File { path, file } = self {
            match open(path) {
                Ok(reopened) => {
                    *file = reopened;
                    tracing::info!(path = %path.display(), "access log reopened");
                }
                Err(err) => tracing::error!(
                    path = %path.display(),
                    error = %err,
                    "cannot reopen the access log; still writing to the previous file"
                ),
            }
        }
    }
}

/// The writer thread: owns the output.
struct Writer {
    receiver: Receiver<Vec<u8>>,
    output: Output,
    shared: Arc<Shared>,
    /// The last write failed (logged once until a write succeeds).
    failing: bool,
}

impl Writer {
    /// Takes what is queued, writes it, then sleeps: the writer is never woken by a request. (Blocking on the
    /// channel instead had every line wake the writer: a futex call in the request's path and a context switch
    /// per request, a fifth of the gateway's throughput at full load.) The sleep starts at [`PACE`] and doubles
    /// while nothing comes, up to [`IDLE`]; a line waits at most that long, and the queue holds
    /// [`DEFAULT_CAPACITY`] lines meanwhile.
    fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut pause = PACE;
        loop {
            drop(self.shared.gate());
            let mut open = true;
            // Paused: what was taken is written, and nothing more is taken.
            while batch.len() < BATCH && !self.shared.paused() {
                match self.receiver.try_recv() {
                    Ok(line) => batch.extend_from_slice(&line),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            if self.shared.reopen.swap(false, Ordering::Acquire) {
                self.output.reopen();
            }
            let full = batch.len() >= BATCH;
            if batch.is_empty() {
                pause = (pause * 2).min(IDLE);
            } else {
                self.write(&batch);
                batch.clear();
                pause = PACE;
            }
            if !open {
                break;
            }
            // A full batch means more is queued: take it at once.
            if !full {
                std::thread::sleep(pause);
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        match self.output.write(bytes) {
            Ok(()) => self.failing = false,
            Err(err) => {
                if !self.failing {
                    tracing::error!(error = %err, "cannot write the access log; lines are lost until it works again");
                }
                self.failing = true;
            }
        }
    }
}

/// The line for `ctx` answered with `response` at `now`, with its newline.
fn format_line(ctx: &RequestCtx, response: &Response, now: jiff::Timestamp) -> Vec<u8> {
    let mut line = Vec::with_capacity(LINE);
    // Writing into a `Vec` cannot fail.
    let _ = write!(line, "{{\"time\":\"{now:.3}\"");
    line.extend_from_slice(b",\"request_id\":");
    string(&mut line, ctx.request_id.to_str().ok());
    line.extend_from_slice(b",\"api\":");
    string(&mut line, ctx.api);
    line.extend_from_slice(b",\"operation\":");
    string(&mut line, ctx.operation.map(|op| op.id));
    line.extend_from_slice(b",\"method\":");
    string(&mut line, Some(ctx.method.as_str()));
    line.extend_from_slice(b",\"template\":");
    string(&mut line, ctx.operation.map(|op| op.template));
    line.extend_from_slice(b",\"status\":");
    number(&mut line, Some(u64::from(response.status().as_u16())));
    line.extend_from_slice(b",\"error\":");
    string(&mut line, ctx.error.map(|kind| kind.name()));
    line.extend_from_slice(b",\"latency_ms\":");
    millis(&mut line, Some(ctx.started.elapsed()));
    line.extend_from_slice(b",\"upstream\":");
    string(&mut line, ctx.upstream.map(|u| u.name));
    line.extend_from_slice(b",\"upstream_server\":");
    string(&mut line, ctx.upstream.and_then(|u| u.server));
    line.extend_from_slice(b",\"upstream_attempts\":");
    number(&mut line, ctx.upstream.map(|u| u64::from(u.attempts)));
    line.extend_from_slice(b",\"upstream_ms\":");
    millis(&mut line, ctx.upstream.map(|u| u.elapsed));
    line.extend_from_slice(b",\"cache\":");
    string(
        &mut line,
        ctx.cache.map(|c| match c {
            CacheStatus::Hit => "hit",
            CacheStatus::Miss => "miss",
            CacheStatus::Bypass => "bypass",
        }),
    );
    line.extend_from_slice(b",\"bytes_in\":");
    number(&mut line, ctx.bytes_in);
    line.extend_from_slice(b",\"bytes_out\":");
    number(&mut line, response.body().size_hint().exact());
    line.extend_from_slice(b",\"client\":");
    match ctx.client {
        Some(peer) => {
            let _ = write!(line, "\"{}\"", peer.ip());
        }
        None => line.extend_from_slice(b"null"),
    }
    let caller = ctx.caller.as_ref();
    line.extend_from_slice(b",\"api_key\":");
    string(&mut line, caller.and_then(|c| c.key_name()).map(|name| &**name));
    line.extend_from_slice(b",\"sub\":");
    let sub = caller
        .and_then(|c| c.token.as_deref())
        .and_then(|token| token.claim("sub"))
        .and_then(serde_json::Value::as_str);
    string(&mut line, sub);
    line.extend_from_slice(b",\"client_cert\":");
    string(&mut line, ctx.client_cert.as_ref().map(|cert| cert.subject.as_str()));
    line.extend_from_slice(b",\"stage\":");
    string(&mut line, ctx.stage.map(|stage| stage.name()));
    // The W3C trace id forwarded upstream (proxied requests), to find the request in the upstream's traces.
    line.extend_from_slice(b",\"trace_id\":");
    string(&mut line, ctx.trace.map(|t| t.trace_id_hex()).as_deref());
    line.extend_from_slice(b"}\n");
    line
}

/// `value` as a JSON string, or `null`.
fn string(line: &mut Vec<u8>, value: Option<&str>) {
    let Some(value) = value else {
        line.extend_from_slice(b"null");
        return;
    };
    line.push(b'"');
    let bytes = value.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..0x20 | 0x7f => b"",
            _ => continue,
        };
        line.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            let _ = write!(line, "\\u{b:04x}");
        } else {
            line.extend_from_slice(escape);
        }
        start = i + 1;
    }
    line.extend_from_slice(&bytes[start..]);
    line.push(b'"');
}

/// `value` as a JSON number, or `null`.
fn number(line: &mut Vec<u8>, value: Option<u64>) {
    match value {
        Some(n) => line.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        None => line.extend_from_slice(b"null"),
    }
}

/// `elapsed` in milliseconds with three decimals (microseconds), or `null`.
fn millis(line: &mut Vec<u8>, elapsed: Option<Duration>) {
    match elapsed {
        Some(elapsed) => {
            let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
            line.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
            let _ = write!(line, ".{:03}", micros % 1000);
        }
        None => line.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::{Request, StatusCode};

    fn ctx_for(request: Request<()>) -> RequestCtx {
        let (parts, ()) = request.into_parts();
        RequestCtx::new(&parts, None)
    }

    #[test]
    fn a_line_is_one_json_object_with_every_field() {
        let mut ctx = ctx_for(
            Request::get("/pets/42?api_key=secret")
                .header("x-request-id", "id-\"quoted\"\\")
                .header("content-length", "17")
                .header("authorization", "Bearer secret")
                .body(())
                .expect("request"),
        );
        ctx.error = Some(crate::error::ErrorKind::NotFound);
        let mut response = Response::new(Body::from("hello"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        let now: jiff::Timestamp = "2024-05-06T07:08:09.123456Z".parse().expect("timestamp");
        let line = format_line(&ctx, &response, now);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let text = String::from_utf8(line).expect("UTF-8");
        assert!(!text.contains("secret"), "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["time"], "2024-05-06T07:08:09.123Z");
        assert_eq!(value["request_id"], "id-\"quoted\"\\");
        assert_eq!(value["operation"], serde_json::Value::Null);
        assert_eq!(value["template"], serde_json::Value::Null);
        assert_eq!(value["method"], "GET");
        assert_eq!(value["status"], 404);
        assert_eq!(value["error"], "NOT_FOUND");
        assert!(value["latency_ms"].is_f64() || value["latency_ms"].is_u64(), "{value}");
        assert_eq!(value["bytes_in"], 17);
        assert_eq!(value["bytes_out"], 5);
        for null in [
            "upstream",
            "upstream_server",
            "upstream_attempts",
            "upstream_ms",
            "cache",
            "client",
            "api_key",
            "sub",
            "client_cert",
            "stage",
            "trace_id",
            "api",
        ] {
            assert_eq!(value[null], serde_json::Value::Null, "{null}");
        }
        let keys: Vec<&str> = value.as_object().expect("object").keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "time",
                "request_id",
                "api",
                "operation",
                "method",
                "template",
                "status",
                "error",
                "latency_ms",
                "upstream",
                "upstream_server",
                "upstream_attempts",
                "upstream_ms",
                "cache",
                "bytes_in",
                "bytes_out",
                "client",
                "api_key",
                "sub",
                "client_cert",
                "stage",
                "trace_id"
            ]
        );
    }

    #[test]
    fn strings_are_escaped() {
        let mut line = Vec::new();
        string(&mut line, Some("a\"b\\c\nd\u{1}é"));
        let text = String::from_utf8(line).expect("UTF-8");
        let back: String = serde_json::from_str(&text).expect("JSON string");
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    #[test]
    fn milliseconds_have_three_decimals() {
        let mut line = Vec::new();
        millis(&mut line, Some(Duration::from_micros(12_345)));
        assert_eq!(line, b"12.345");
    }

    #[test]
    fn targets_parse() {
        assert_eq!("off".parse::<AccessLogTarget>(), Ok(AccessLogTarget::Off));
        assert_eq!("stdout".parse::<AccessLogTarget>(), Ok(AccessLogTarget::Stdout));
        assert_eq!(
            "/var/log/gw.log".parse::<AccessLogTarget>(),
            Ok(AccessLogTarget::File(PathBuf::from("/var/log/gw.log")))
        );
        assert!("".parse::<AccessLogTarget>().is_err());
    }
}
