//! # rivulet-test-support
//!
//! What the test suites of several crates share, so each is written once: free loopback
//! ports, a real `etcd` server (Debian's `etcd-server`, installed by `make deps-etcd`), a
//! real `rivulet` process ([`BrokerProcess`]), a minimal Kafka client ([`Client`],
//! [`AsyncClient`]) to talk to it, and the [`requests`] tests send most.
//!
//! Only for tests: nothing here is linked into the broker. It must never depend on the
//! broker crate, so that the broker's own tests can use it without a dependency cycle (the
//! in-process broker harness lives in the broker crate's `tests/` for that reason).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod broker_process;
mod client;
pub mod error_codes;
pub mod requests;

pub use broker_process::{broker_command, BrokerProcess};
pub use client::{correlation_of, AsyncClient, Client};

/// A loopback port nobody listens on right now (another process may take it before the
/// caller binds it; callers that can retry on another port should).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("an ephemeral port")
}

/// An `etcd` process on two loopback ports with its own data directory; killed (by its
/// pid) when dropped. It can be stopped and started again on the same ports and data, and
/// it can be created without starting it (to start a broker before its etcd).
pub struct Etcd {
    child: Option<Child>,
    pub client_port: u16,
    peer_port: u16,
    dir: tempfile::TempDir,
}

/// How long [`Etcd::start`] waits for etcd to serve.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl Etcd {
    /// Starts etcd and returns once it serves requests.
    pub fn start() -> Self {
        let mut etcd = Self::unstarted();
        etcd.restart();
        etcd
    }

    /// Picks ports and a data directory without starting anything yet.
    pub fn unstarted() -> Self {
        Etcd {
            child: None,
            client_port: free_port(),
            peer_port: free_port(),
            dir: tempfile::tempdir().expect("a temp dir"),
        }
    }

    /// `etcd://127.0.0.1:<port>/<root>`, the broker's `metadata.store` for this etcd.
    pub fn url(&self, root: &str) -> String {
        format!("etcd://127.0.0.1:{}/{root}", self.client_port)
    }

    /// Starts (again, on the same ports and data) and waits until etcd serves.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        let client = format!("http://127.0.0.1:{}", self.client_port);
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let log =
            std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("the etcd log file");
        let child = Command::new("etcd")
            .args(["--name", "test", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("test={peer}")])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("`etcd` must be installed (Debian etcd-server; `make deps-etcd`)");
        self.child = Some(child);
        self.wait_ready();
    }

    /// Kills etcd (SIGKILL, by its pid); [`Etcd::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Waits until etcd answers a request, not merely until its port accepts: etcd 3.4
    /// accepts connections before it serves, and resets them meanwhile.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.healthy() {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("etcd exited with {status}:\n{}", std::fs::read_to_string(self.log_path()).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "etcd did not serve within {READY_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `GET /health` answers `"health":"true"` (etcd has a leader and serves reads).
    pub fn healthy(&self) -> bool {
        let probe = || -> std::io::Result<bool> {
            let mut stream = TcpStream::connect(("127.0.0.1", self.client_port))?;
            stream.set_read_timeout(Some(Duration::from_secs(2)))?;
            stream.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
            let mut answer = String::new();
            stream.read_to_string(&mut answer)?;
            Ok(answer.contains("\"health\":\"true\""))
        };
        probe().unwrap_or(false)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
