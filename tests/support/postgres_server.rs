//! Starts a real PostgreSQL server for one test: `initdb` into a temporary
//! directory, `postgres` on a free loopback port with its socket in that
//! directory, stopped (immediate shutdown) and removed on drop. When the
//! tests run as root, the server runs as the `postgres` user, as PostgreSQL
//! refuses root. There is no fallback: without PostgreSQL the test fails
//! and says how to install it.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "the PostgreSQL tests need a real server: install it with \
     `bash scripts/install-test-deps.sh` (or `apt-get install -y postgresql`)";

pub struct PostgresServer {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl PostgresServer {
    /// Runs `initdb` (trust authentication, user `postgres`) and starts the
    /// server, waiting until it accepts connections.
    ///
    /// # Panics
    ///
    /// When PostgreSQL is not installed, or does not start within 30 s.
    pub fn start() -> Self {
        let bin = bin_dir();
        let dir = tempfile::Builder::new()
            .prefix("webhook-guard-pg")
            .tempdir()
            .expect("temporary directory");
        let data = dir.path().join("data");
        as_server_user(dir.path());
        let status = server_command(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb ({e}); {INSTALL_HINT}"));
        assert!(
            status.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let port = free_port();
        let child = spawn_server(&bin, dir.path(), port);
        let mut server = Self { child, port, dir };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let bin = bin_dir();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postgres on port {} exited with {status}", self.port);
            }
            let ready = TcpStream::connect(("127.0.0.1", self.port)).is_ok()
                && Command::new(bin.join("pg_isready"))
                    .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "postgres on port {} was not ready within 30 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id of the server (the postmaster).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The port the server listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A URL for database `postgres` as user `postgres`, over TCP.
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// A URL for database `db` as user `postgres`, over TCP.
    pub fn url_for(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `db` (so tests sharing one server stay apart) and
    /// returns its URL.
    pub fn create_database(&self, db: &str) -> String {
        let out = Command::new(bin_dir().join("psql"))
            .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", "postgres", "-c"])
            .arg(format!("CREATE DATABASE \"{db}\""))
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql ({e}); {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "CREATE DATABASE {db} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url_for(db)
    }

    /// Runs one SQL statement with `psql` on database `db` and returns its
    /// unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(bin_dir().join("psql"))
            .args([
                "-X",
                "-A",
                "-t",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
            ])
            .args(["-U", "postgres", "-d", db, "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql ({e}); {INSTALL_HINT}"));
        assert!(
            out.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Stops the server at once, as a crash would (SIGQUIT: immediate
    /// shutdown), to test a PostgreSQL that goes down.
    pub fn kill(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args(["-QUIT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl PostgresServer {
    /// Starts the server again on the same data directory and port after
    /// [`kill`](Self::kill) (crash recovery runs first), and waits until it
    /// accepts connections. The server commits asynchronously: what was
    /// committed in the last half second before a kill may be lost, unless
    /// a `CHECKPOINT` ran after it.
    pub fn restart(&mut self) {
        self.kill();
        self.child = spawn_server(&bin_dir(), self.dir.path(), self.port);
        self.wait_ready();
    }
}

/// Starts `postgres` on the data directory `dir/data`, listening on
/// 127.0.0.1:`port` with its socket in `dir`.
fn spawn_server(bin: &Path, dir: &Path, port: u16) -> Child {
    server_command(&bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-p", &port.to_string(), "-k"])
        .arg(dir)
        .args([
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "max_connections=200",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start postgres ({e}); {INSTALL_HINT}"))
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory with `initdb` and `postgres`: the one on `PATH`, else the
/// newest under Debian's `/usr/lib/postgresql/<version>/bin`.
fn bin_dir() -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .args(["-c", "command -v initdb"])
        .output()
    {
        let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if out.status.success() && !path.is_empty() {
            if let Some(dir) = Path::new(&path).parent() {
                if dir.join("postgres").exists() && dir.join("pg_isready").exists() {
                    return dir.to_path_buf();
                }
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .unwrap_or_else(|| panic!("PostgreSQL's `initdb` is not installed; {INSTALL_HINT}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A command that runs `program` as the `postgres` user when the tests run
/// as root (without a login session, so the child is the server itself).
fn server_command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Gives `dir` to the `postgres` user when running as root.
fn as_server_user(dir: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir)
            .status()
            .expect("chown");
        assert!(
            status.success(),
            "cannot give {} to the `postgres` user (does it exist? {INSTALL_HINT})",
            dir.display()
        );
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}
