//! A real PostgreSQL server for the store tests: `initdb` into a temporary directory, `postgres` on a free port of
//! 127.0.0.1 (its socket in that directory), stopped by its PID. Never a system service.
//!
//! PostgreSQL refuses to run as root, and the tests run as root here and in CI: then `initdb` and `postgres` run as
//! the `postgres` user (through `setpriv`, which execs, so the PID is the server's), in a directory given to it.
//! Over TCP the server asks for a password (SCRAM), so that the tests also see a URL with one; over its socket it
//! trusts the local user, which is how the databases are created.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after it starts.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a fast shutdown may take before the server is killed.
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A running (or stopped, between [`PostgresServer::stop`] and [`PostgresServer::restart`]) PostgreSQL server.
pub struct PostgresServer {
    child: Option<Child>,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The password of the `postgres` role over TCP.
    pub password: String,
    /// The temporary directory: the cluster in `data/`, the socket and the log beside it.
    dir: PathBuf,
    bin: PathBuf,
    /// `Some(uid, gid)` of the `postgres` user when the tests run as root.
    run_as: Option<(u32, u32)>,
}

/// The directory of PostgreSQL's server binaries: `initdb`'s, on PATH or under `/usr/lib/postgresql/*/bin` (the
/// newest), with symbolic links resolved (Debian puts only wrappers on PATH).
fn bin_dir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("initdb"))
        .find(|path| path.exists());
    let debian = || {
        let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin/initdb"))
            .filter(|path| path.exists())
            .collect();
        // By major version, as a number: 9 < 15 < 16.
        found.sort_by_key(|path| {
            path.components()
                .nth(4)
                .and_then(|c| c.as_os_str().to_str()?.split('.').next()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        found.pop()
    };
    let initdb = on_path.or_else(debian).unwrap_or_else(|| {
        panic!(
            "PostgreSQL is not installed (no `initdb` on PATH or under /usr/lib/postgresql/*/bin): \
             `apt-get install postgresql` (.ci/run installs it when missing)"
        )
    });
    let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
    let dir = initdb.parent().map(Path::to_path_buf).unwrap_or_default();
    for tool in ["postgres", "createdb", "pg_isready", "psql"] {
        assert!(
            dir.join(tool).exists(),
            "{} has no `{tool}`: install the whole `postgresql` package",
            dir.display()
        );
    }
    dir
}

/// `id ARGS`, as a number.
fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout).ok()?.trim().parse().ok()
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PostgresServer {
    /// Creates a cluster in a fresh temporary directory and starts a server on a free port.
    ///
    /// # Panics
    /// When PostgreSQL is not installed (saying to install it), or the server does not start.
    pub fn start() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let bin = bin_dir();
        let run_as = (id(&["-u"]) == Some(0)).then(|| {
            let user = id(&["-u", "postgres"]).zip(id(&["-g", "postgres"]));
            user.unwrap_or_else(|| {
                panic!(
                    "the tests run as root, which PostgreSQL refuses, and there is no `postgres` user to run it as \
                     (Debian's `postgresql` package creates one)"
                )
            })
        });
        let dir = std::env::temp_dir().join(format!(
            "pg-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("the temp dir given to `postgres`");
        }
        let password = format!("pw-{}-{}", std::process::id(), free_port());
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).expect("password file");
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).expect("the password file given to `postgres`");
        }
        let mut server = Self {
            child: None,
            port: free_port(),
            password,
            dir,
            bin,
            run_as,
        };
        let initdb = server
            .command("initdb")
            .arg("-D")
            .arg(server.dir.join("data"))
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        server.spawn();
        server
    }

    /// A command for one of the server's binaries, as the `postgres` user when the tests run as root.
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        let mut command = match self.run_as {
            Some((uid, gid)) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}"))
                    .arg(format!("--regid={gid}"))
                    .arg("--clear-groups")
                    .arg("--")
                    .arg(path);
                c
            }
            None => Command::new(path),
        };
        // Somewhere the `postgres` user may be (not the test's working directory, which it may not enter).
        command.current_dir(&self.dir).stdin(Stdio::null());
        command
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.join("server.log")).expect("log file");
        let child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(&self.dir)
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            // The tests kill gateways, never the database: its own flushes only slow them down.
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let deadline = Instant::now() + START_LIMIT;
        while !self.ready() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections on port {}: {}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it accepts connections (`pg_isready` on its socket).
    fn ready(&self) -> bool {
        Command::new(self.bin.join("pg_isready"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Creates database `name` and returns its URL ([`PostgresServer::url`]).
    pub fn create_database(&self, name: &str) -> String {
        let out = Command::new(self.bin.join("createdb"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", name])
            .current_dir(&self.dir)
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(name)
    }

    /// Runs `sql` in `database` with `psql` (over the socket, as `postgres`) and returns what it printed (unaligned,
    /// tuples only).
    pub fn psql(&self, database: &str, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-X",
                "-q",
                "-t",
                "-A",
                "-d",
                database,
                "-c",
                sql,
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Starts `psql` running `sql` in `database` (over the socket, as `postgres`), without waiting for it: to hold a
    /// lock while a test calls the store. Kill it to end its session.
    pub fn psql_in_background(&self, database: &str, sql: &str) -> Child {
        Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-X",
                "-q",
                "-d",
                database,
                "-c",
                sql,
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql starts")
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The process id of the server (its postmaster).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops it: a fast shutdown (SIGINT: sessions are ended, what was committed stays), then SIGKILL if it takes
    /// more than a few seconds.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = Command::new("kill").arg("-INT").arg(child.id().to_string()).status();
        let deadline = Instant::now() + STOP_LIMIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again, on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
