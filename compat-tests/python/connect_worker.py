"""Kafka Connect 4.3.1 workers and MirrorMaker 2 processes for the Connect tests.

The jars (connect-runtime, connect-file, connect-json, connect-mirror and their dependencies,
slf4j-simple for a log) come from compat-tests/connect/pom.xml, resolved by install-deps.sh
into $RIVULET_CACHE/connect-lib. Every process is a real JVM; its REST listener (if any) is
on a free 127.0.0.1 port and its log is a file beside the test's data.
"""

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import CACHE, free_port

CONNECT_LIB = CACHE / "connect-lib"
# Never through an http_proxy: every REST call is to a worker on loopback.
_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def write_properties(path: Path, props: dict) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    return path


class JvmProcess:
    """A Java main class from the Connect jars, logging to `log_path`; `kill()` is SIGKILL."""

    def __init__(self, main_class: str, args: list[str], log_path: Path, heap: str = "384m"):
        assert CONNECT_LIB.is_dir(), f"{CONNECT_LIB} missing (run compat-tests/install-deps.sh)"
        self.log_path = log_path
        log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            ["java", f"-Xmx{heap}", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC",
             "-Dorg.slf4j.simpleLogger.showDateTime=true",
             "-Dorg.slf4j.simpleLogger.dateTimeFormat=HH:mm:ss.SSS",
             "-cp", f"{CONNECT_LIB}/*", main_class, *args],
            stdout=log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self):
        """kill -9: the JVM gets no chance to leave its group or flush anything."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class ConnectWorker(JvmProcess):
    """A distributed worker (`ConnectDistributed`) with its REST API on a free loopback port."""

    def __init__(self, work: Path, name: str, bootstrap: str, group: str = "connect-cluster", extra: dict | None = None):
        self.name = name
        self.port = free_port()
        props = {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
            "config.storage.topic": f"{group}-configs",
            "offset.storage.topic": f"{group}-offsets",
            "status.storage.topic": f"{group}-status",
            # One broker: the internal topics cannot have Kafka's default replication factor 3.
            "config.storage.replication.factor": "1",
            "offset.storage.replication.factor": "1",
            "status.storage.replication.factor": "1",
            "offset.storage.partitions": "5",
            "status.storage.partitions": "2",
            "listeners": f"http://127.0.0.1:{self.port}",
            "rest.advertised.host.name": "127.0.0.1",
            "rest.advertised.port": str(self.port),
            "offset.flush.interval.ms": "1000",
            # Lost tasks are given to the remaining workers after this delay (KIP-415; default 5 min).
            "scheduled.rebalance.max.delay.ms": "5000",
            "session.timeout.ms": "10000",
            "heartbeat.interval.ms": "1000",
            "plugin.discovery": "service_load",
        }
        # `extra` wins; a None value drops the setting (Connect's default applies).
        props.update(extra or {})
        props = {k: v for k, v in props.items() if v is not None}
        config = write_properties(work / f"{name}.properties", props)
        super().__init__("org.apache.kafka.connect.cli.ConnectDistributed", [str(config)], work / f"{name}.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        """(status, parsed JSON or None) of a REST call."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with _HTTP.open(req, timeout=timeout) as response:
                raw = response.read()
                return response.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                return e.code, json.loads(raw)
            except ValueError:
                return e.code, raw.decode(errors="replace")

    def wait_ready(self, timeout: float = 120):
        """Until the worker has joined its group and read its config topic: GET /connectors
        answers 200 (it answers 500/503 while the herder is still starting)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.alive(), f"worker {self.name} exited:\n{self.log_tail()}"
            try:
                status, _ = self.request("GET", "/connectors", timeout=5)
                if status == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"worker {self.name} not ready in {timeout} s:\n{self.log_tail()}")

    def create_connector(self, name: str, config: dict, timeout: float = 60):
        deadline = time.time() + timeout
        while True:
            status, body = self.request("POST", "/connectors", {"name": name, "config": config})
            if status == 201:
                return body
            # 409: a rebalance is in progress; the REST API asks to retry.
            assert status == 409 and time.time() < deadline, f"create {name}: {status} {body}\n{self.log_tail()}"
            time.sleep(1)

    def status(self, connector: str) -> dict | None:
        status, body = self.request("GET", f"/connectors/{connector}/status")
        return body if status == 200 else None

    def wait_running(self, connector: str, tasks: int = 1, timeout: float = 120) -> dict:
        """Until the connector and `tasks` tasks are RUNNING; returns the status."""
        deadline = time.time() + timeout
        body = None
        while time.time() < deadline:
            body = self.status(connector)
            if body and body["connector"]["state"] == "RUNNING" and len(body["tasks"]) == tasks \
                    and all(t["state"] == "RUNNING" for t in body["tasks"]):
                return body
            assert not body or all(t["state"] != "FAILED" for t in body["tasks"]), json.dumps(body, indent=1)
            time.sleep(0.5)
        raise AssertionError(f"{connector} not running: {json.dumps(body, indent=1)}\n{self.log_tail()}")


def stop_all(processes):
    for p in processes:
        if p is not None:
            p.kill()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")

