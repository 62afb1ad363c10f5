//! A real browser for the tests: Debian's headless Chromium (`apt-get install chromium`; `.ci/run` installs it),
//! run once per page load with `--dump-dom` and `--screenshot`, and a reader of the DOM it dumps.
//!
//! Chromium runs with `--virtual-time-budget`: the page's timers run on a virtual clock that moves on as soon as the
//! page is idle (never while a fetch is pending), so a page polling every two seconds polls several times within a
//! second of real time, and the dumped DOM is the one its script rendered after those polls.
//!
//! Every run has a fresh profile in a temporary directory, no proxy, and a resolver that resolves nothing but
//! `127.0.0.1`; it runs in a process group of its own, killed by its id when it
//! outlives the time limit, so that a wedged browser fails the test instead of hanging it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a missing browser is explained: the tests that need one fail with this, they do not skip.
pub const INSTALL_HINT: &str = "headless Chromium is needed: `apt-get update && apt-get install -y chromium \
                                fonts-dejavu-core` (Debian; `.ci/run` does this), or set CHROMIUM to a Chromium binary";

/// The Chromium binary: `$CHROMIUM`, else `chromium` on the `PATH`.
///
/// # Errors
/// [`INSTALL_HINT`] when there is none.
pub fn chromium() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("CHROMIUM={} is not a file; {INSTALL_HINT}", path.display()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("chromium"))
        .find(|path| path.is_file())
        .ok_or_else(|| format!("no `chromium` on the PATH; {INSTALL_HINT}"))
}

/// One page load.
#[derive(Debug, Clone)]
pub struct Load<'a> {
    /// The page, on `127.0.0.1` (no other host resolves).
    pub url: &'a str,
    /// Virtual time the page's timers get before the DOM is dumped.
    pub virtual_time: Duration,
    /// The viewport, in CSS pixels.
    pub window: (u32, u32),
    /// Where the PNG screenshot goes, if anywhere.
    pub screenshot: Option<&'a Path>,
    /// Real time after which the browser is killed and the load fails.
    pub limit: Duration,
}

/// What a load gave.
#[derive(Debug)]
pub struct Loaded {
    /// The DOM after the page's scripts ran, serialized.
    pub dom: String,
    /// What the browser said on stderr.
    pub stderr: String,
    /// Its exit status.
    pub status: ExitStatus,
    /// How long it took, start to exit.
    pub elapsed: Duration,
}

/// A temporary profile directory, removed on drop.
struct Profile(PathBuf);

impl Profile {
    fn new() -> std::io::Result<Self> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "e2e-chromium-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for Profile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Reads `from` to its end on a thread of its own.
fn collect(mut from: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = from.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// Kills process group `group` (the browser and its helpers) with SIGKILL.
fn kill_group(group: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{group}")])
        .stderr(Stdio::null())
        .status();
}

/// Loads `load.url` in headless `chromium` (blocking: call it from `spawn_blocking` in async tests).
///
/// # Errors
/// The browser does not start, or outlives `load.limit` (it is killed then), or keeps its output open after exiting.
pub fn load(chromium: &Path, load: &Load<'_>) -> Result<Loaded, String> {
    use std::os::unix::process::CommandExt as _;

    let profile = Profile::new().map_err(|e| format!("a temporary profile: {e}"))?;
    let mut command = Command::new(chromium);
    command
        .args([
            "--headless",
            "--disable-gpu",
            // The tests run as root in containers, where the sandbox cannot start.
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-proxy-server",
            // Loopback only: no host resolves but 127.0.0.1 (the rules apply to IP literals too).
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--hide-scrollbars",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.0.display()))
        .arg(format!("--window-size={},{}", load.window.0, load.window.1))
        .arg(format!("--virtual-time-budget={}", load.virtual_time.as_millis()));
    if let Some(path) = load.screenshot {
        command.arg(format!("--screenshot={}", path.display()));
    }
    let started = Instant::now();
    let mut child = command
        .arg(load.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so that its helpers can be killed with it.
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {}: {e}; {INSTALL_HINT}", chromium.display()))?;
    let group = child.id();
    let stdout = collect(child.stdout.take().ok_or("no stdout")?);
    let stderr = collect(child.stderr.take().ok_or("no stderr")?);
    let deadline = started + load.limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // Not reaped yet, so the group's id is still the browser's.
                kill_group(group);
                let _ = child.kill();
                let _ = child.wait();
                let said = stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                return Err(format!(
                    "chromium did not finish within {:?}; killed. stderr:\n{}",
                    load.limit,
                    tail(&said, 40)
                ));
            }
            Err(e) => return Err(format!("waiting for chromium: {e}")),
        }
    };
    let elapsed = started.elapsed();
    // Its helpers exit with it; should one keep the pipes open, fail rather than wait.
    let output_limit = Duration::from_secs(10);
    let dom = stdout
        .recv_timeout(output_limit)
        .map_err(|_| format!("chromium exited but its stdout stayed open for {output_limit:?}"))?;
    let stderr = stderr.recv_timeout(output_limit).unwrap_or_default();
    Ok(Loaded {
        dom,
        stderr,
        status,
        elapsed,
    })
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A serialized DOM, read by the `id`s and `data-*` attributes a page gives its elements for tests.
///
/// Not an HTML parser: it finds start tags by an attribute written out in full (`data-operation="getPet"`) and
/// reads their attributes, and the text right after them. That is enough for markup made to be read this way (one
/// value per element, in `data-value`), and Chromium serializes attributes as `name="value"` with `&`, `"`, `<`
/// and `>` escaped.
#[derive(Debug, Clone, Copy)]
pub struct Dom<'a>(pub &'a str);

impl<'a> Dom<'a> {
    /// Where the start tag of the first element with `attribute` is: from its `<` to after its `>`.
    fn tag_span(&self, attribute: &str) -> Option<(usize, usize)> {
        let at = self.0.find(attribute)?;
        let start = if attribute.starts_with('<') {
            at
        } else {
            self.0[..at].rfind('<')?
        };
        let end = at + self.0[at..].find('>')? + 1;
        Some((start, end))
    }

    /// The start tag (`<tr …>`) of the first element with `attribute` (e.g. `id="gateway"`, or `<body`).
    pub fn tag(&self, attribute: &str) -> Option<&'a str> {
        let (start, end) = self.tag_span(attribute)?;
        Some(&self.0[start..end])
    }

    /// The first element with `attribute` and everything after it up to its end tag, for elements that do not nest
    /// in themselves (a `<tr>`).
    pub fn element(&self, attribute: &str) -> Option<Dom<'a>> {
        let (start, tag_end) = self.tag_span(attribute)?;
        let name: String = self.0[start + 1..tag_end]
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        let close = format!("</{name}>");
        let end = tag_end + self.0[tag_end..].find(&close)? + close.len();
        Some(Dom(&self.0[start..end]))
    }

    /// The value of attribute `name` on the first element with `attribute` (`None` when either is missing).
    pub fn attr(&self, attribute: &str, name: &str) -> Option<String> {
        attr_of(self.tag(attribute)?, name)
    }

    /// The text right after the start tag of the first element with `attribute`, up to the next tag.
    pub fn text(&self, attribute: &str) -> Option<String> {
        let (_, end) = self.tag_span(attribute)?;
        let after = &self.0[end..];
        Some(unescape(&after[..after.find('<').unwrap_or(after.len())]))
    }

    /// `data-value` of the first element with `data-field="{field}"`, as a number (`None` when missing, empty or
    /// not a number).
    pub fn number(&self, field: &str) -> Option<f64> {
        self.attr(&format!("data-field=\"{field}\""), "data-value")?
            .parse()
            .ok()
    }

    /// How often `attribute` occurs.
    pub fn count(&self, attribute: &str) -> usize {
        self.0.matches(attribute).count()
    }

    /// The serialized text.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

/// Attribute `name` of start tag `tag`.
fn attr_of(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let len = tag[start..].find('"')?;
    Some(unescape(&tag[start..start + len]))
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

/// The directory cargo builds into: `$CARGO_TARGET_DIR` (relative to the workspace), else the one holding the
/// running test executable (`…/target/debug/deps/`), else the workspace's `target/`.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap_or(Path::new("."));
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return workspace.join(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .filter(|dir| dir.join("CACHEDIR.TAG").exists())
        .unwrap_or_else(|| workspace.join("target"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"<body data-polls="3"><table><tr data-operation="getPet" class=""><th>getPet</th><td data-field="rps" data-value="1.5" title="a &quot;b&quot; &amp; c"><span class="v">1.50</span></td><td data-field="p50" data-value="">—</td></tr><tr data-operation="(none)"><td data-field="rps" data-value="7">7</td></tr></table><h1 id="gateway">pet &amp; store</h1></body>"#;

    #[test]
    fn reads_rows_fields_and_text() {
        let dom = Dom(PAGE);
        assert_eq!(dom.attr("<body", "data-polls").as_deref(), Some("3"));
        let row = dom.element("data-operation=\"getPet\"").expect("the row");
        assert!(row.as_str().starts_with("<tr ") && row.as_str().ends_with("</tr>"));
        assert_eq!(row.number("rps"), Some(1.5));
        assert_eq!(row.number("p50"), None, "empty");
        assert_eq!(row.number("cache"), None, "missing");
        assert_eq!(row.attr("data-field=\"rps\"", "title").as_deref(), Some("a \"b\" & c"));
        let unmatched = dom.element("data-operation=\"(none)\"").expect("the row");
        assert_eq!(unmatched.number("rps"), Some(7.0));
        assert_eq!(dom.text("id=\"gateway\"").as_deref(), Some("pet & store"));
        assert_eq!(dom.count("data-operation="), 2);
    }

    #[test]
    fn a_browser_that_outlives_the_limit_is_killed_with_its_children() {
        use std::os::unix::fs::PermissionsExt as _;
        let profile = Profile::new().expect("a temporary directory");
        let fake = profile.0.join("chromium");
        // A "browser" whose child holds its stdout open for a minute.
        std::fs::write(&fake, "#!/bin/sh\nsleep 60\n").expect("the script");
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("executable");
        let started = Instant::now();
        let result = load(
            &fake,
            &Load {
                url: "http://127.0.0.1:9/",
                virtual_time: Duration::from_secs(1),
                window: (800, 600),
                screenshot: None,
                limit: Duration::from_millis(500),
            },
        );
        let err = result.expect_err("killed");
        assert!(err.contains("did not finish within"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }
}
