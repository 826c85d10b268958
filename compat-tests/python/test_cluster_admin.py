"""Admin APIs about the cluster itself, driven by Apache Kafka 4.3.1's own tools and
AdminClient against one broker:

- `kafka-metadata-quorum describe --status / --replication` (DescribeQuorum): the broker
  is the controller, the one voter, and the tool prints it (the cluster test shows a
  controller failover in it).
- `Admin.listConfigResources` (ListConfigResources v1, KIP-1142) lists every topic,
  internal ones included, and the broker; a type of which nothing exists lists nothing;
  `listClientMetricsResources` (KIP-714) finds no subscriptions.
- `Admin.alterReplicaLogDirs` (AlterReplicaLogDirs): a replica "moved" to the log
  directory it is in succeeds, another directory is LOG_DIR_NOT_FOUND, a partition that
  does not exist UNKNOWN_TOPIC_OR_PARTITION — what Kafka answers with one log directory.
"""

import re

import pytest

from conftest import Broker, compile_java, create_topic, java, run_java_program


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("cluster-admin")).start()
    yield b
    b.kill()


@pytest.fixture(scope="module")
def admin_classes(tmp_path_factory):
    return compile_java(tmp_path_factory.mktemp("cluster-admin-java"), "ClusterAdmin.java")


def cluster_admin(classes, broker, *commands) -> dict[str, list[str]]:
    """Runs each command (one string, see ClusterAdmin.java) in one JVM: its output lines."""
    out = run_java_program(classes, "ClusterAdmin", broker.bootstrap, *commands, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    outputs: dict[str, list[str]] = {}
    for line in out.stdout.splitlines():
        if line.startswith("== "):
            current = outputs.setdefault(line[3:], [])
        else:
            current.append(line)
    assert list(outputs) == list(commands), out.stdout
    return outputs


def quorum(broker, *args):
    out = java("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-server", broker.bootstrap,
               "describe", *args)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_metadata_quorum_tool_shows_the_broker_as_controller(broker):
    status = quorum(broker, "--status")
    fields = dict(re.findall(r"^(\w+):\s+(.*)$", status, re.M))
    assert fields["LeaderId"] == "1", status
    assert fields["MaxFollowerLag"] == "0", status
    assert re.search(r'"id": 1\b', fields["CurrentVoters"]), status
    assert f"127.0.0.1:{broker.port}" in fields["CurrentVoters"], status
    assert fields["CurrentObservers"] == "[]", status

    replication = quorum(broker, "--replication")
    rows = [line.split() for line in replication.splitlines()[1:] if line.strip()]
    assert [(row[0], row[-1]) for row in rows] == [("1", "Leader")], replication


def test_config_resources_are_listed_by_the_java_admin_client(broker, admin_classes):
    create_topic(broker, "listed-a")
    create_topic(broker, "listed-b")
    out = cluster_admin(admin_classes, broker, "list", "list TOPIC", "list BROKER", "list GROUP", "client-metrics")
    everything = out["list"]
    assert "BROKER 1" in everything
    assert {"TOPIC listed-a", "TOPIC listed-b", "TOPIC __consumer_offsets"} <= set(everything), everything
    # Kafka's order: brokers before topics.
    assert everything.index("BROKER 1") < everything.index("TOPIC listed-a")

    topics = out["list TOPIC"]
    assert topics and all(line.startswith("TOPIC ") for line in topics), topics
    assert out["list BROKER"] == ["BROKER 1"]
    # No group configs exist: nothing to list, and no error.
    assert out["list GROUP"] == []
    assert out["client-metrics"] == ["COUNT 0"]


def log_dir(broker) -> str:
    out = java("org.apache.kafka.tools.LogDirsCommand", "--bootstrap-server", broker.bootstrap, "--describe",
               "--broker-list", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    dirs = re.findall(r'"logDir":"([^"]+)"', out.stdout)
    assert len(dirs) == 1, out.stdout
    return dirs[0]


def test_a_replica_stays_in_the_one_log_dir(broker, admin_classes):
    create_topic(broker, "placed")
    directory = log_dir(broker)
    commands = {
        f"move placed 0 1 {directory}": ["OK"],
        "move placed 0 1 /no/such/dir": ["LogDirNotFoundException"],
        f"move not-a-topic 0 1 {directory}": ["UnknownTopicOrPartitionException"],
        f"move placed 7 1 {directory}": ["UnknownTopicOrPartitionException"],
    }
    assert cluster_admin(admin_classes, broker, *commands) == commands
