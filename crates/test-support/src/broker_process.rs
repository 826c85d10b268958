//! A real `rivulet` process on a free loopback port with its own data directory.
//!
//! The binary is a parameter: only the `rivulet` crate's tests know its path
//! (`env!("CARGO_BIN_EXE_rivulet")`), and other crates' tests may be handed one.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::client::Client;
use crate::free_port;

/// How long a broker may take to start, and a log line to appear.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TIMEOUT: Duration = Duration::from_secs(10);

/// A `rivulet` command listening on `port` with `data_dir` as `log.dirs`. Arguments added
/// later win over these, as later `--override`s do.
pub fn broker_command(bin: impl AsRef<Path>, port: u16, data_dir: &Path) -> Command {
    let mut cmd = Command::new(bin.as_ref());
    cmd.arg("--override")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
        .arg("--override")
        .arg(format!("log.dirs={}", data_dir.display()));
    cmd
}

/// A broker process; killed (SIGKILL, by its pid) when dropped.
pub struct BrokerProcess {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl BrokerProcess {
    /// Starts a broker with a fresh data directory on a free port; `extra` are
    /// `key=value` overrides.
    pub fn start(bin: impl AsRef<Path>, extra: &[&str]) -> Self {
        Self::start_fresh(bin.as_ref(), None, extra)
    }

    /// As [`BrokerProcess::start`], reading `server.properties` first (the overrides win).
    pub fn start_with_properties(bin: impl AsRef<Path>, properties: &Path, extra: &[&str]) -> Self {
        Self::start_fresh(bin.as_ref(), Some(properties), extra)
    }

    fn start_fresh(bin: &Path, properties: Option<&Path>, extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().to_path_buf();
        // Another process may take the port between our probe and the broker's bind:
        // try a few ports.
        for _ in 0..5 {
            if let Some(mut broker) = Self::try_start_at(bin, free_port(), &data_dir, properties, extra) {
                broker._tmp = Some(tmp);
                return broker;
            }
        }
        panic!("broker did not start on any of 5 ports");
    }

    /// Starts a broker on `port` with `data_dir` (for restarts).
    pub fn start_at(bin: impl AsRef<Path>, port: u16, data_dir: &Path, extra: &[&str]) -> Self {
        match Self::try_start_at(bin.as_ref(), port, data_dir, None, extra) {
            Some(broker) => broker,
            None => panic!("broker did not start on port {port}:\n{}", read_log(data_dir, port)),
        }
    }

    fn try_start_at(bin: &Path, port: u16, data_dir: &Path, properties: Option<&Path>, extra: &[&str]) -> Option<Self> {
        let mut cmd = broker_command(bin, port, data_dir);
        cmd.args(properties);
        for item in extra {
            cmd.arg("--override").arg(item);
        }
        let log = std::fs::File::create(log_path(data_dir, port)).expect("log file");
        cmd.stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().expect("spawn rivulet");
        let mut broker = BrokerProcess { child: Some(child), port, data_dir: data_dir.to_path_buf(), _tmp: None };
        broker.wait_ready().then_some(broker)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Waits until this broker (not some other process) logs that it started.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if !self.is_running() {
                return false;
            }
            if self.log().contains("rivulet started") && TcpStream::connect(self.addr()).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Everything the broker logged so far.
    pub fn log(&self) -> String {
        read_log(&self.data_dir, self.port)
    }

    /// Waits up to 10 s for `needle` to appear in the broker's log.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + LOG_TIMEOUT;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// `kill -9`, then wait for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn client(&self) -> Client {
        Client::connect(self.addr())
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn log_path(data_dir: &Path, port: u16) -> PathBuf {
    data_dir.join(format!("broker-{port}.log"))
}

fn read_log(data_dir: &Path, port: u16) -> String {
    std::fs::read_to_string(log_path(data_dir, port)).unwrap_or_default()
}
