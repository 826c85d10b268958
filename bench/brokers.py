"""What the Python benchmarks share: starting Rivulet and Apache Kafka 4.3.1 (KRaft, one
combined node) on loopback with extra listeners and settings, waiting for them, and reading
a broker process's CPU time and peak memory from /proc."""

import base64
import os
import socket
import subprocess
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

CACHE = Path(os.environ.get("RIVULET_CACHE", Path.home() / ".cache" / "rivulet"))
BIN = Path(os.environ.get("RIVULET_BIN", Path(os.environ.get("CARGO_TARGET_DIR", CACHE / "target")) / "release" / "rivulet"))
TOOLS = CACHE / "java-lib"
KAFKA_LIB = CACHE / "kafka-lib"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, client_config: dict | None = None, timeout: float = 90):
    """Waits until the broker answers a metadata request on `port` (with `client_config`
    added to the client's settings, e.g. for a TLS listener)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"{what} exited"
        try:
            admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{port}", **(client_config or {})})
            admin.list_topics(timeout=2)
            return
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not start")


def _settings(extra) -> dict[str, str]:
    """`extra` as a dict: a dict, or an iterable of "key=value" strings."""
    if extra is None:
        return {}
    if isinstance(extra, dict):
        return {k: str(v) for k, v in extra.items()}
    return dict(item.split("=", 1) for item in extra)


def _endpoints(port: int, extra_listeners: dict[str, int] | None) -> str:
    listeners = {"PLAINTEXT": port, **(extra_listeners or {})}
    return ",".join(f"{name}://127.0.0.1:{p}" for name, p in listeners.items())


def start_rivulet(work: Path, port: int, extra_overrides=None,
                  extra_listeners: dict[str, int] | None = None) -> subprocess.Popen:
    """Rivulet with a PLAINTEXT listener on `port`, data in `work`/rivulet-data, its log in
    `work`/rivulet.log. `extra_listeners` ({"SSL": port, ...}, named after their security
    protocol) are added to `listeners` and `advertised.listeners`; `extra_overrides` (a dict
    or "key=value" strings) are passed as `--override`s and win over the above."""
    endpoints = _endpoints(port, extra_listeners)
    settings = {"listeners": endpoints, "log.dirs": str(work / "rivulet-data")}
    if extra_listeners:
        settings["advertised.listeners"] = endpoints
    settings.update(_settings(extra_overrides))
    args = [str(BIN)]
    for key, value in settings.items():
        args += ["--override", f"{key}={value}"]
    log = open(work / "rivulet.log", "wb")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=log)


def start_kafka(work: Path, port: int, extra_properties=None,
                extra_listeners: dict[str, int] | None = None) -> subprocess.Popen:
    """Apache Kafka 4.3.1, one node as broker and controller (its controller listener on a
    free port), a PLAINTEXT listener on `port`, data in `work`/kafka-data, its log in
    `work`/kafka.log. `extra_listeners` ({"SSL": port, ...}, named after their security
    protocol) are added to the listeners, the advertised listeners and the protocol map;
    `extra_properties` (a dict or "key=value" strings) are added to server.properties and
    win over the above."""
    controller = free_port()
    endpoints = _endpoints(port, extra_listeners)
    protocols = ["PLAINTEXT", *(extra_listeners or {})]
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller}",
        "listeners": f"{endpoints},CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": endpoints,
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": ",".join(f"{p}:{p}" for p in protocols) + ",CONTROLLER:PLAINTEXT",
        "log.dirs": str(work / "kafka-data"),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
    }
    props.update(_settings(extra_properties))
    path = work / "kafka.properties"
    path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    subprocess.run(["java", "-cp", f"{KAFKA_LIB}/*", "kafka.tools.StorageTool", "format", "-t", cluster_id,
                    "-c", str(path), "--standalone"], check=True, capture_output=True, timeout=120)
    log = open(work / "kafka.log", "wb")
    # The JVM settings of Kafka's own start script (kafka-server-start.sh).
    return subprocess.Popen(["java", "-Xmx1G", "-Xms1G", "-cp", f"{KAFKA_LIB}/*", "kafka.Kafka", str(path)],
                            stdout=log, stderr=log)


def stop(proc: subprocess.Popen | None):
    """Kills a broker started above (SIGKILL) and reaps it."""
    if proc is not None and proc.poll() is None:
        proc.kill()
    if proc is not None:
        proc.wait()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` so far, all its threads."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size of process `pid` (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")
