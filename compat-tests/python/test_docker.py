"""The shipped compose cluster (docker/docker-compose.cluster.yml) as a user runs it: etcd and
three broker containers from an image built here, a producer and a consumer on the host, one
broker container killed.

The image comes from docker/build-offline.sh (a Debian base made with mmdebstrap and
`docker import`, the release binary on top), so no image registry is needed. The test's
override file gives every container the host's network (the docker daemon runs with its
bridge disabled) and distinct 127.0.0.1 ports, so no traffic leaves loopback. `make
docker-test` installs docker, starts the daemon when none runs and runs this module.
"""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import read_partitions, wait_for
from conftest import RIVULET_BIN, free_port

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker" / "docker-compose.cluster.yml"
IMAGE = "rivulet:compose-test"
BASE_IMAGE = os.environ.get("RIVULET_BASE_IMAGE", "rivulet-base:bookworm")
NODE_IDS = (1, 2, 3)


def run(args, timeout=300, env=None, check=True, input=None):
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


class ComposeCluster:
    """The shipped cluster file plus an override for loopback-only host networking."""

    def __init__(self, tmp_path: Path):
        self.project = f"rivulet-test-{uuid.uuid4().hex[:8]}"
        self.etcd_port, self.etcd_peer_port = free_port(), free_port()
        self.external = {n: free_port() for n in NODE_IDS}
        self.internal = {n: free_port() for n in NODE_IDS}
        self.env = {**os.environ, "RIVULET_IMAGE": IMAGE, "RIVULET_BASE_IMAGE": BASE_IMAGE}
        override = tmp_path / "override.json"
        override.write_text(json.dumps(self._override(), indent=2))
        self.file = tmp_path / "compose.json"
        self.file.write_text(json.dumps(self._merged(override), indent=2))

    def _override(self) -> dict:
        etcd_url = f"http://127.0.0.1:{self.etcd_port}"
        peer_url = f"http://127.0.0.1:{self.etcd_peer_port}"
        services = {"etcd": {
            "network_mode": "host",
            "command": ["etcd", "--name", "etcd", "--data-dir", "/var/lib/etcd",
                        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
                        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                        "--initial-cluster", f"etcd={peer_url}"],
        }}
        for n in NODE_IDS:
            listeners = f"INTERNAL://127.0.0.1:{self.internal[n]},EXTERNAL://127.0.0.1:{self.external[n]}"
            settings = [f"node.id={n}", f"metadata.store=etcd://127.0.0.1:{self.etcd_port}/rivulet",
                        f"listeners={listeners}", f"advertised.listeners={listeners}",
                        # Failover within the test's patience, as the other cluster tests do.
                        "broker.session.timeout.ms=3000", "replica.lag.time.max.ms=3000"]
            services[f"broker-{n}"] = {
                "network_mode": "host",
                "restart": "no",
                "command": [arg for s in settings for arg in ("--override", s)],
            }
        return {"services": services}

    def _merged(self, override: Path) -> dict:
        """The shipped file with the override applied, as `docker-compose config` prints it,
        less the published ports: docker refuses port bindings on the host's network, and
        compose merges lists, so an override cannot drop them. Compose's YAML is read with
        the PyYAML that Debian's docker-compose itself runs on."""
        merged = run(["docker-compose", "-f", str(COMPOSE_FILE), "-f", str(override), "config"],
                     timeout=60, env=self.env).stdout
        as_json = run(["/usr/bin/python3", "-c",
                       "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"],
                      input=merged, timeout=60).stdout
        config = json.loads(as_json)
        for service in config["services"].values():
            assert service.get("network_mode") == "host", service
            service.pop("ports", None)
        return config

    def compose(self, *args, timeout=300, check=True):
        return run(["docker-compose", "-p", self.project, "-f", str(self.file), *args],
                   timeout=timeout, env=self.env, check=check)

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{self.external[n]}" for n in NODE_IDS)

    def live_bootstrap(self, down: int) -> str:
        return ",".join(f"127.0.0.1:{self.external[n]}" for n in NODE_IDS if n != down)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--tail", "40", timeout=60, check=False).stdout


def brokers_known(bootstrap: str) -> set[int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return set(admin.list_topics(timeout=5).brokers)


def describe(bootstrap: str, topic: str) -> dict[int, tuple[int, list[int]]]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    metadata = admin.list_topics(topic, timeout=5).topics[topic]
    assert metadata.error is None, metadata.error
    return {p.id: (p.leader, sorted(p.isrs)) for p in metadata.partitions.values()}


def produce(bootstrap: str, topic: str, keys: range) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5})
    failed = []
    for i in keys:
        producer.produce(topic, key=str(i).encode(), value=f"value-{i}".encode(),
                         on_delivery=lambda err, msg: failed.append(err) if err else None)
        producer.poll(0)
    assert producer.flush(60) == 0, "records left unacknowledged"
    assert not failed, failed[:3]


@pytest.fixture(scope="module")
def image():
    """Builds the images (the base only when missing) from the binary under test."""
    run(["bash", str(ROOT / "docker" / "build-offline.sh"), str(RIVULET_BIN)], timeout=900,
        env={**os.environ, "RIVULET_IMAGE": IMAGE, "RIVULET_BASE_IMAGE": BASE_IMAGE})
    return IMAGE


def test_compose_cluster_survives_a_killed_broker_container(image, tmp_path):
    cluster = ComposeCluster(tmp_path)
    try:
        cluster.compose("up", "-d", "--no-build")
        wait_for(lambda: brokers_known(cluster.bootstrap) == set(NODE_IDS), 60,
                 "three brokers registered", show=cluster.logs)

        topic = "compose-events"
        admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=3)])[topic].result(30)
        wait_for(lambda: all(len(isr) == 3 for _, isr in describe(cluster.bootstrap, topic).values()), 60,
                 "all replicas in sync", show=lambda: describe(cluster.bootstrap, topic))

        produce(cluster.bootstrap, topic, range(0, 3000))
        # The broker leading partition 0 goes down the hard way: SIGKILL to its container.
        victim = describe(cluster.bootstrap, topic)[0][0]
        cluster.compose("kill", "-s", "SIGKILL", f"broker-{victim}", timeout=60)
        survivors = cluster.live_bootstrap(victim)
        wait_for(lambda: all(leader not in (victim, -1) for leader, _ in describe(survivors, topic).values()), 60,
                 "new leaders for the victim's partitions", show=lambda: describe(survivors, topic))

        produce(survivors, topic, range(3000, 6000))
        records = read_partitions(survivors, topic, range(3))
        keys = sorted(int(m.key()) for messages in records.values() for m in messages)
        assert keys == list(range(6000)), f"{len(keys)} records read back, {len(set(keys))} distinct"
        for messages in records.values():
            offsets = [m.offset() for m in messages]
            assert offsets == sorted(offsets)

        # The container comes back on its volume and catches up into the ISR.
        cluster.compose("start", f"broker-{victim}", timeout=60)
        wait_for(lambda: all(len(isr) == 3 for _, isr in describe(cluster.bootstrap, topic).values()), 90,
                 "the restarted broker back in every ISR", show=lambda: describe(cluster.bootstrap, topic))
        assert sum(len(m) for m in read_partitions(f"127.0.0.1:{cluster.external[victim]}", topic,
                                                   range(3)).values()) == 6000
    finally:
        print(cluster.logs())
        cluster.compose("down", "-v", "--timeout", "5", timeout=120, check=False)
