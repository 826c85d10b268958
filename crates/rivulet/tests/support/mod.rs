//! Test support: start a real `rivulet` process on a free loopback port with its own data
//! directory, and talk to it with a minimal Kafka client built on `kafka-protocol`.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// A broker process; killed (SIGKILL) when dropped.
pub struct BrokerProcess {
    child: Option<Child>,
    pub port: u16,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

pub use rivulet_test_support::free_port;

impl BrokerProcess {
    /// Starts a broker with a fresh data directory on a free port.
    pub fn start(extra: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data_dir = tmp.path().to_path_buf();
        // Another process may take the port between our probe and the broker's bind:
        // try a few ports.
        for _ in 0..5 {
            if let Some(mut broker) = Self::try_start_at(free_port(), &data_dir, extra) {
                broker._tmp = Some(tmp);
                return broker;
            }
        }
        panic!("broker did not start on any of 5 ports");
    }

    /// Starts a broker on `port` with `data_dir` (for restarts).
    pub fn start_at(port: u16, data_dir: &Path, extra: &[&str]) -> Self {
        match Self::try_start_at(port, data_dir, extra) {
            Some(broker) => broker,
            None => panic!("broker did not start on port {port}:\n{}", read_log(data_dir, port)),
        }
    }

    fn try_start_at(port: u16, data_dir: &Path, extra: &[&str]) -> Option<Self> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rivulet"));
        cmd.arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{port}"))
            .arg("--override")
            .arg(format!("log.dirs={}", data_dir.display()));
        for item in extra {
            cmd.arg("--override").arg(item);
        }
        let log = std::fs::File::create(data_dir.join(format!("broker-{port}.log"))).expect("log file");
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
        let deadline = Instant::now() + Duration::from_secs(30);
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

    pub fn log(&self) -> String {
        read_log(&self.data_dir, self.port)
    }

    /// Waits up to 10 s for `needle` to appear in the broker's log.
    pub fn wait_for_log(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
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

fn read_log(data_dir: &Path, port: u16) -> String {
    std::fs::read_to_string(data_dir.join(format!("broker-{port}.log"))).unwrap_or_default()
}

/// A blocking Kafka client for tests: one request at a time.
pub struct Client {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(20))).expect("timeout");
        Client { stream, correlation_id: 0 }
    }

    /// Sends raw bytes (for malformed-input tests).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(body.into())
    }

    /// Encodes a request frame.
    pub fn frame<R: Request>(&mut self, request: &R, version: i16) -> (i32, BytesMut) {
        self.correlation_id += 1;
        let api_key = ApiKey::try_from(R::KEY).expect("known key");
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("rivulet-test")));
        let mut body = BytesMut::new();
        header.encode(&mut body, api_key.request_header_version(version)).expect("encode header");
        request.encode(&mut body, version).expect("encode request");
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        (self.correlation_id, frame)
    }

    /// Sends `request` at `version` and decodes the response; `None` if the connection closed.
    pub fn try_send<R: Request>(&mut self, request: &R, version: i16) -> Option<R::Response> {
        let (correlation_id, frame) = self.frame(request, version);
        self.stream.write_all(&frame).ok()?;
        let mut body = self.read_frame()?;
        let header = ResponseHeader::decode(&mut body, R::Response::header_version(version)).expect("response header");
        assert_eq!(header.correlation_id, correlation_id, "responses must come back in order");
        Some(R::Response::decode(&mut body, version).expect("response body"))
    }

    pub fn send<R: Request>(&mut self, request: &R, version: i16) -> R::Response {
        self.try_send(request, version).expect("broker closed the connection")
    }
}

/// Reads the size-prefixed frame `bytes` as a response header's correlation id.
pub fn correlation_of(mut frame: Bytes) -> i32 {
    frame.get_i32()
}
