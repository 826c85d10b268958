"""Fixtures for the client compatibility suite.

Every test gets a real `rivulet` broker process on a free 127.0.0.1 port with a fresh data
directory, and drives it with real clients: kcat, the Apache Kafka Java clients and console
tools, confluent-kafka and kafka-python.
"""

import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("RIVULET_CACHE", Path.home() / ".cache" / "rivulet"))
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target"))
RIVULET_BIN = Path(os.environ.get("RIVULET_BIN", TARGET / "release" / "rivulet"))
JAVA_LIB = CACHE / "java-lib"
KAFKA_LIB = CACHE / "kafka-lib"
JAVA_SRC = Path(__file__).resolve().parent.parent / "java" / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A rivulet process. `kill()` is SIGKILL; `start()` (re)starts on the same port and data."""

    def __init__(self, data_dir: Path, extra=(), config_file: Path | None = None):
        self.data_dir = data_dir
        self.config_file = config_file
        self.port = free_port()
        self.extra = list(extra)
        self.proc = None
        self.log_path = data_dir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        assert RIVULET_BIN.exists(), f"{RIVULET_BIN} not built (run `make build`)"
        args = [
            str(RIVULET_BIN),
            *([str(self.config_file)] if self.config_file else []),
            "--override", "node.id=1",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "--override", f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
            "--override", f"log.dirs={self.data_dir / 'data'}",
        ]
        for item in self.extra:
            args += ["--override", item]
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log_tail()}")
            with open(self.log_path, "rb") as f:
                f.seek(log_start)
                started = b"rivulet started" in f.read()
            if started:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                        return self
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"broker did not start:\n{self.log_tail()}")

    def kill(self):
        """kill -9: no shutdown path runs."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Etcd:
    """An `etcd` server (Debian's etcd-server) on free loopback ports; `stop()` kills it and
    `start()` brings it back on the same ports and data. `Etcd(path, start=False)` only
    picks the ports, so a broker can be started before its etcd.

    With `tls` (a directory holding `ca.pem`, `etcd.pem`, `etcd.key`, `client.pem` and
    `client.key`) it serves clients over TLS only and requires their certificates
    (`--client-cert-auth`); peers stay on plain loopback."""

    def __init__(self, data_dir: Path, start: bool = True, tls: Path | None = None):
        self.client_port, peer_port = free_port(), free_port()
        self.tls = tls
        scheme = "https" if tls else "http"
        client, peer = f"{scheme}://127.0.0.1:{self.client_port}", f"http://127.0.0.1:{peer_port}"
        self.log_path = data_dir / "etcd.log"
        self.args = ["etcd", "--name", "test", "--data-dir", str(data_dir / "etcd-data"),
                     "--listen-client-urls", client, "--advertise-client-urls", client,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", f"test={peer}"]
        if tls:
            self.args += ["--cert-file", str(tls / "etcd.pem"), "--key-file", str(tls / "etcd.key"),
                          "--trusted-ca-file", str(tls / "ca.pem"), "--client-cert-auth"]
        self.proc = None
        if start:
            self.start()

    def start(self):
        """Starts etcd and returns once it serves requests: etcd 3.4 accepts connections
        before it serves and resets them meanwhile, so an open port is not enough."""
        assert self.proc is None or self.proc.poll() is not None, "etcd is still running"
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 30
        while not self.healthy():
            assert self.proc.poll() is None, f"etcd exited with {self.proc.returncode}"
            assert time.time() < deadline, "etcd did not serve within 30 s"
            time.sleep(0.05)
        return self

    def healthy(self) -> bool:
        """Whether `GET /health` says etcd has a leader and serves reads."""
        handlers = [urllib.request.ProxyHandler({})]  # never via an http_proxy
        scheme = "http"
        if self.tls:
            import ssl
            context = ssl.create_default_context(cafile=str(self.tls / "ca.pem"))
            context.check_hostname = False  # a probe only: tests may give etcd a certificate for another host
            context.load_cert_chain(str(self.tls / "client.pem"), str(self.tls / "client.key"))
            handlers.append(urllib.request.HTTPSHandler(context=context))
            scheme = "https"
        direct = urllib.request.build_opener(*handlers)
        try:
            with direct.open(f"{scheme}://127.0.0.1:{self.client_port}/health", timeout=1) as response:
                return b'"health":"true"' in response.read()
        except OSError:
            return False

    def url(self, root: str) -> str:
        return f"etcd://127.0.0.1:{self.client_port}/{root}"

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.kill()


def java(main_class: str, *args: str, input: str | None = None, timeout: float = 120, lib: Path = JAVA_LIB) -> subprocess.CompletedProcess:
    """Runs a class from the Kafka client/tool jars (or, with `lib=KAFKA_LIB`, the broker's)."""
    cmd = ["java", "-Xmx512m", "-cp", f"{lib}/*", main_class, *args]
    return subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)


def kafka_topics(broker: Broker, *args: str) -> subprocess.CompletedProcess:
    return java("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.bootstrap, *args)


def create_topic(broker: Broker, name: str, partitions: int = 1, config: dict | None = None, timeout: float = 30):
    """Creates a topic with confluent-kafka's AdminClient."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})])
    futures[name].result(timeout=timeout)


def compile_java(tmp_path: Path, source: str) -> Path:
    """Compiles compat-tests/java/src/SOURCE against the client jars; returns the class dir."""
    classes = tmp_path / "classes"
    # C1 only: javac runs for a second or two, too short for C2 to pay off.
    out = subprocess.run(["javac", "-J-XX:TieredStopAtLevel=1", "-cp", f"{JAVA_LIB}/*", "-d", str(classes),
                          str(JAVA_SRC / source)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return classes


def run_java_program(classes: Path, main_class: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["java", "-Xmx512m", "-cp", f"{classes}:{JAVA_LIB}/*", main_class, *args],
                          capture_output=True, text=True, timeout=timeout)
