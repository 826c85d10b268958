"""Clients beyond Java and librdkafka: aiokafka (Python asyncio), franz-go and IBM/sarama
(Go), kafkajs (Node). The Go and Node programs live in compat-tests/go and
compat-tests/node and are installed by compat-tests/install-deps.sh."""

import asyncio
import subprocess
from pathlib import Path

import pytest

from conftest import CACHE, create_topic

HERE = Path(__file__).resolve().parent
GO_COMPAT = CACHE / "go-compat"
NODE_DIR = HERE.parent / "node"


def test_aiokafka_producer_and_group_consumer(broker):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    create_topic(broker, "aio", partitions=2)

    async def scenario():
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for i in range(500):
                await producer.send("aio", key=f"k{i}".encode(), value=f"v{i}".encode())
            await producer.flush()
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer("aio", bootstrap_servers=broker.bootstrap, group_id="aio-g",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        seen = set()
        try:
            async with asyncio.timeout(60):
                while len(seen) < 500:
                    batch = await consumer.getmany(timeout_ms=1000)
                    for records in batch.values():
                        seen.update(r.value.decode() for r in records)
                    await consumer.commit()
        finally:
            await consumer.stop()
        return seen

    assert asyncio.run(scenario()) == {f"v{i}" for i in range(500)}


@pytest.mark.parametrize("scenario", ["franz-group", "franz-admin", "sarama-sync", "sarama-group"])
def test_go_clients(broker, scenario):
    out = subprocess.run([str(GO_COMPAT), broker.bootstrap, scenario], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and f"PASS {scenario}" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("scenario", ["producer-group", "admin"])
def test_kafkajs(broker, scenario):
    out = subprocess.run(["node", str(NODE_DIR / "compat.js"), broker.bootstrap, scenario], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and f"PASS {scenario}" in out.stdout, out.stdout + out.stderr
