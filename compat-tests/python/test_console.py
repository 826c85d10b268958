"""The web console (`rivulet.console.listener`): a real broker with the console on, topics,
a consumer group and an open transaction made with real clients (confluent-kafka), then
the JSON API and the page checked over real HTTP; no console socket unless configured; a
bad address or an authorizer without `rivulet.console.allow.unauthenticated` stops the
start. The headless-Chromium test (slow: needs Debian's `chromium`, which `make compat`
installs) renders the topics, groups and brokers views to screenshots and watches a plot
move while a producer runs."""

import json
import os
import re
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from conftest import CACHE, Broker, create_topic, free_port

TOPIC, TXN_TOPIC, GROUP, TXN_ID = "console-orders", "console-payments", "console-readers", "console-tx"
# Never through an http_proxy the environment may name: the console is on loopback.
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SCREENSHOTS = CACHE / "console-screenshots"


def console_broker(tmp_path: Path, *extra: str) -> tuple[Broker, str]:
    port = free_port()
    broker = Broker(tmp_path, extra=[f"rivulet.console.listener=127.0.0.1:{port}", *extra]).start()
    return broker, f"http://127.0.0.1:{port}"


def get(url: str, timeout: float = 5) -> tuple[int, str, str]:
    try:
        with DIRECT.open(url, timeout=timeout) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read().decode()


def api(base: str, path: str) -> dict:
    status, content_type, body = get(base + path)
    assert status == 200, (path, status, body)
    assert content_type == "application/json", content_type
    return json.loads(body)


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def make_state(broker: Broker):
    """30 records over 3 partitions, a group that committed 4 of each partition's 10, and an
    open (not yet committed) transaction. Returns the transactional producer, which must stay
    alive for the transaction to stay open."""
    create_topic(broker, TOPIC, partitions=3, config={"retention.ms": "86400000"})
    create_topic(broker, TXN_TOPIC)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(30):
        producer.produce(TOPIC, value=f"order-{i}".encode() * 10, partition=i % 3)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": GROUP,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.commit(offsets=[TopicPartition(TOPIC, p, 4) for p in range(3)], asynchronous=False)
    finally:
        consumer.close()
    txn = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": TXN_ID,
                    "transaction.timeout.ms": 120000})
    txn.init_transactions(30)
    txn.begin_transaction()
    txn.produce(TXN_TOPIC, value=b"pending", partition=0)
    assert txn.flush(30) == 0
    return txn


def test_console_api_and_page_show_the_brokers_state(tmp_path):
    broker, base = console_broker(tmp_path)
    try:
        txn = make_state(broker)

        cluster = api(base, "/api/cluster")
        assert cluster["answered_by"]["node_id"] == 1
        assert cluster["controller"] == 1
        assert [(b["node_id"], b["port"], b["is_this_broker"]) for b in cluster["brokers"]] == [(1, broker.port, True)]

        topics = {t["name"]: t for t in api(base, "/api/topics")["topics"]}
        # A single node leads and holds every partition, internal ones included.
        partitions = sum(len(t["partitions"]) for t in topics.values())
        assert (cluster["brokers"][0]["leader_partitions"], cluster["brokers"][0]["replica_partitions"]) == \
            (partitions, partitions)
        orders = topics[TOPIC]
        assert orders["retention_ms"] == 86400000 and orders["configs"]["retention.ms"] == "86400000"
        assert orders["cleanup_policy"] == "delete" and not orders["internal"]
        assert [p["partition"] for p in orders["partitions"]] == [0, 1, 2]
        for p in orders["partitions"]:
            assert (p["leader"], p["isr"], p["replicas"][:1] or [1]) == (1, [1], [1]), p
            assert (p["log_end_offset"], p["high_watermark"]) == (10, 10), p
            assert p["size_bytes"] > 10 * 80, p
        assert orders["local_size_bytes"] == sum(p["size_bytes"] for p in orders["partitions"])
        assert topics["__consumer_offsets"]["internal"]

        groups = {g["group_id"]: g for g in api(base, "/api/groups")["groups"]}
        group = groups[GROUP]
        assert group["state"] == "Empty" and group["members"] == []
        assert [(o["topic"], o["partition"], o["committed_offset"], o["end_offset"], o["lag"])
                for o in group["offsets"]] == [(TOPIC, p, 4, 10, 6) for p in range(3)]
        assert group["total_lag"] == 18

        transactions = {t["transactional_id"]: t for t in api(base, "/api/transactions")["transactions"]}
        open_txn = transactions[TXN_ID]
        assert open_txn["state"] == "Ongoing" and open_txn["partitions"] == [f"{TXN_TOPIC}-0"]
        assert open_txn["producer_id"] >= 0 and open_txn["txn_start_ms"] > 0
        txn.commit_transaction(30)
        wait_for(lambda: {t["transactional_id"]: t["state"] for t in api(base, "/api/transactions")["transactions"]}
                 .get(TXN_ID) == "CompleteCommit", 10, "the committed transaction")

        # The plots' samples: one a second, the produce above among them.
        def produced():
            samples = api(base, "/api/metrics")["samples"]
            return len(samples) >= 2 and any(s["produce_bytes_per_s"] > 0 for s in samples) and samples
        samples = wait_for(produced, 10, "samples with produce traffic")
        assert all(b["time_ms"] > a["time_ms"] for a, b in zip(samples, samples[1:]))
        assert any(s["produce_latency_ms"] is not None for s in samples)

        status, content_type, page = get(base + "/")
        assert status == 200 and content_type.startswith("text/html")
        assert '<script src="/console.js"></script>' in page
        for view in ("brokers", "topics", "groups", "transactions"):
            assert f'href="#{view}"' in page and f'id="view-{view}"' in page
        status, content_type, script = get(base + "/console.js")
        assert status == 200 and content_type.startswith("text/javascript")
        for path in ("/api/cluster", "/api/topics", "/api/groups", "/api/transactions", "/api/metrics"):
            assert path in script
        # Client-chosen names reach the page as text only.
        assert "innerHTML" not in script
        assert get(base + "/console.css")[0] == 200

        # Read-only: nothing but GET and HEAD; unknown paths are 404s.
        assert get(base + "/api/nothing")[0] == 404
        request = urllib.request.Request(base + "/api/topics", data=b"{}", method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            DIRECT.open(request, timeout=5)
        assert refused.value.code == 405
    finally:
        broker.kill()


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on: its socket descriptors matched with the
    kernel's LISTEN (state 0A) entries."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_no_console_unless_configured(tmp_path):
    (tmp_path / "plain").mkdir()
    plain = Broker(tmp_path / "plain").start()
    try:
        assert listening_ports(plain.proc.pid) == {plain.port}
        assert "web console" not in plain.log_path.read_text()
    finally:
        plain.kill()
    # With the key, exactly one more socket: the console's.
    (tmp_path / "console").mkdir()
    with_console, base = console_broker(tmp_path / "console")
    try:
        console_port = int(base.rsplit(":", 1)[1])
        assert listening_ports(with_console.proc.pid) == {with_console.port, console_port}
        assert "serving the web console" in with_console.log_path.read_text()
    finally:
        with_console.kill()


@pytest.mark.parametrize("extra, expected", [
    (["rivulet.console.listener=8080"], "invalid value '8080' for rivulet.console.listener"),
    (["rivulet.console.listener=127.0.0.1:http"], "rivulet.console.listener"),
    (["rivulet.console.listener=127.0.0.1:8080",
      "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"],
     "rivulet.console.allow.unauthenticated=true"),
], ids=["no-port", "named-port", "authorizer-without-consent"])
def test_a_bad_console_setting_stops_the_start(tmp_path, extra, expected):
    broker = Broker(tmp_path, extra=extra)
    with pytest.raises(RuntimeError, match="broker exited"):
        broker.start()
    assert expected in broker.log_tail()


def test_a_console_address_in_use_stops_the_start(tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = Broker(tmp_path, extra=[f"rivulet.console.listener=127.0.0.1:{port}"])
        with pytest.raises(RuntimeError, match="broker exited"):
            broker.start()
        assert f"binding the web console (rivulet.console.listener) on 127.0.0.1:{port}" in broker.log_tail()


# --- headless Chromium -------------------------------------------------------------------

def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.fail("chromium is not installed: run `bash compat-tests/install-deps.sh --browser` (make compat does)")
    return found


def browse(tmp_path: Path, url: str, *, screenshot: Path | None = None, budget_ms: int = 3000) -> str:
    """Loads `url` in headless Chromium, lets its scripts run `budget_ms` of virtual time,
    and returns the DOM (or writes a screenshot)."""
    profile = tmp_path / f"chromium-profile-{time.monotonic_ns()}"
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--metrics-recording-only",
            "--no-proxy-server", f"--user-data-dir={profile}", "--window-size=1280,1000",
            f"--virtual-time-budget={budget_ms}"]
    args += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    out = subprocess.run([*args, url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    shutil.rmtree(profile, ignore_errors=True)
    return out.stdout


def plot_state(dom: str, series: str) -> dict:
    match = re.search(rf'<div class="plot" id="plot-{series}"[^>]*>', dom)
    assert match, f"no plot {series} in the page"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', match.group(0)))


@pytest.mark.slow
def test_console_in_headless_chromium(tmp_path):
    broker, base = console_broker(tmp_path)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    try:
        txn = make_state(broker)

        # Every view renders the live state: the DOM after the scripts ran holds it.
        topics_dom = browse(tmp_path, base + "/#topics")
        assert 'data-loaded="topics"' in topics_dom
        assert f'data-topic="{TOPIC}"' in topics_dom and "3 partitions" in topics_dom
        assert "retention 1 d" in topics_dom
        groups_dom = browse(tmp_path, base + "/#groups")
        assert 'data-loaded="groups"' in groups_dom and f'data-group="{GROUP}"' in groups_dom
        assert "lag 18" in groups_dom
        tx_dom = browse(tmp_path, base + "/#transactions")
        assert 'data-loaded="transactions"' in tx_dom and TXN_ID in tx_dom and "Ongoing" in tx_dom
        brokers_dom = browse(tmp_path, base + "/#brokers")
        assert 'data-loaded="brokers"' in brokers_dom and "this broker" in brokers_dom
        assert "127.0.0.1" in brokers_dom and "Controller: broker 1" in brokers_dom

        for view in ("topics", "groups", "brokers", "transactions"):
            path = SCREENSHOTS / f"{view}.png"
            path.unlink(missing_ok=True)
            browse(tmp_path, f"{base}/#{view}", screenshot=path)
            data = path.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, (view, len(data))
        txn.commit_transaction(30)

        # A plot moves while a producer runs: the produce throughput plot seen twice, a few
        # seconds apart, has newer samples and traffic in them.
        def produce():
            p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
            while not stop.is_set():
                for _ in range(200):
                    p.produce(TOPIC, value=b"x" * 200)
                p.poll(0)
                time.sleep(0.02)
            p.flush(10)
        load = threading.Thread(target=produce, daemon=True)
        load.start()
        time.sleep(3)
        first = plot_state(browse(tmp_path, base + "/#brokers"), "produce_bytes_per_s")
        time.sleep(3)
        second_dom = browse(tmp_path, base + "/#brokers")
        second = plot_state(second_dom, "produce_bytes_per_s")
        assert float(first["last"]) > 0 and float(second["last"]) > 0, (first, second)
        assert int(second["last-time"]) >= int(first["last-time"]) + 2000, (first, second)
        points = re.findall(r'<div class="plot" id="plot-produce_bytes_per_s".*?points="([^"]*)"', second_dom, re.S)
        assert points and len(set(points[0].split())) > 1, "the sparkline is flat"
        path = SCREENSHOTS / "brokers-under-load.png"
        browse(tmp_path, base + "/#brokers", screenshot=path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        stop.set()
        broker.kill()
