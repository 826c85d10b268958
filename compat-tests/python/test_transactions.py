"""Transactions and exactly-once (KIP-98/447): the Java client, librdkafka and the
`kafka-transactions` tool against a real broker, including process kills of the
producer and of the broker in the middle of transactions."""

import random
import signal
import subprocess
import threading
import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from conftest import JAVA_LIB, Broker, compile_java, create_topic, java, run_java_program

# Timed-out transactions are looked for every 500 ms instead of Kafka's 10 s.
FAST_ABORT = ("transaction.abort.timed.out.transaction.cleanup.interval.ms=500",)


def read_values(broker, topic, isolation, want, timeout=30.0):
    consumer = Consumer({
        "bootstrap.servers": broker.bootstrap,
        "group.id": f"reader-{topic}-{isolation}-{time.time()}",
        "isolation.level": isolation,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    values = []
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = time.time() + timeout
        while len(values) < want and time.time() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value().decode())
        # One more poll: anything past `want` is a leak.
        end = time.time() + 1.0
        while time.time() < end:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                values.append(msg.value().decode())
    finally:
        consumer.close()
    return values


def fill_input(broker, input_topic, output_topic, total):
    """Creates both topics and writes r0..r{total-1} to partition 0 of the input."""
    create_topic(broker, input_topic)
    create_topic(broker, output_topic)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
    for i in range(total):
        producer.produce(input_topic, value=f"r{i}", partition=0)
        if i % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0


def test_java_commit_and_abort_alternately(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        create_topic(broker, "alt")
        classes = compile_java(tmp_path, "Transactions.java")
        out = run_java_program(classes, "Transactions", "alternate", broker.bootstrap, "alt", "100")
        assert out.returncode == 0 and "OK committed=500 all=1000" in out.stdout, \
            out.stdout + out.stderr[-3000:] + broker.log_tail()
        # kafka-transactions sees the transactional id, its producer and its state.
        listed = java("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", broker.bootstrap, "list")
        assert listed.returncode == 0 and "alternate-alt" in listed.stdout, listed.stdout + listed.stderr
        described = java("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", broker.bootstrap,
                         "describe", "--transactional-id", "alternate-alt")
        assert described.returncode == 0 and "CompleteAbort" in described.stdout, described.stdout + described.stderr
    finally:
        broker.kill()


def test_java_second_producer_fences_the_first(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        create_topic(broker, "fence")
        classes = compile_java(tmp_path, "Transactions.java")
        out = run_java_program(classes, "Transactions", "fence", broker.bootstrap, "fence")
        assert out.returncode == 0 and "OK fenced" in out.stdout, out.stdout + out.stderr[-3000:] + broker.log_tail()
    finally:
        broker.kill()


def test_java_abandoned_transaction_is_aborted_by_timeout(tmp_path):
    broker = Broker(tmp_path, extra=FAST_ABORT).start()
    try:
        create_topic(broker, "abandoned")
        classes = compile_java(tmp_path, "Transactions.java")
        out = run_java_program(classes, "Transactions", "timeout", broker.bootstrap, "abandoned")
        assert out.returncode == 0 and "OK aborted" in out.stdout, out.stdout + out.stderr[-3000:] + broker.log_tail()
        assert "aborting a timed-out transaction" in broker.log_tail(200)
    finally:
        broker.kill()


def test_transaction_timeout_above_the_maximum_is_refused(tmp_path):
    broker = Broker(tmp_path, extra=("transaction.max.timeout.ms=10000",)).start()
    try:
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "too-long",
                             "transaction.timeout.ms": 20000})
        with pytest.raises(KafkaException) as refused:
            producer.init_transactions(10)
        assert refused.value.args[0].code() == KafkaError.INVALID_TRANSACTION_TIMEOUT, refused.value
    finally:
        broker.kill()


def test_copier_killed_five_times_copies_exactly_once(tmp_path):
    total = 50_000
    broker = Broker(tmp_path).start()
    try:
        fill_input(broker, "copy-in", "copy-out", total)
        classes = compile_java(tmp_path, "Transactions.java")
        cmd = ["java", "-Xmx512m", "-cp", f"{classes}:{JAVA_LIB}/*", "Transactions", "copy", broker.bootstrap,
               "copy-in", "copy-out", "copier-group", "copier", str(total)]
        kills = 0
        rng = random.Random(7)
        for round_ in range(6):
            stderr_path = tmp_path / f"copier-{round_}.err"
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(stderr_path, "w"), text=True)
            # Bounded: a copier that stops printing is killed and the round fails below.
            watchdog = threading.Timer(180, proc.kill)
            watchdog.start()
            try:
                # Rounds 0-4 are killed a random moment after getting further than the
                # previous round, so the kill lands inside or between transactions.
                threshold = (round_ + 1) * total // 7
                last = ""
                for line in proc.stdout:
                    last = line
                    if round_ < 5 and line.startswith("progress") and int(line.split()[1]) >= threshold:
                        time.sleep(rng.uniform(0, 0.05))
                        proc.send_signal(signal.SIGKILL)
                        kills += 1
                        break
                proc.wait(timeout=180)
                if round_ == 5:
                    assert proc.returncode == 0 and "OK copied" in last, \
                        last + stderr_path.read_text()[-3000:] + broker.log_tail()
            finally:
                watchdog.cancel()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert kills == 5
        copied = read_values(broker, "copy-out", "read_committed", total, timeout=60)
        assert len(copied) == total, f"{len(copied)} records copied, {len(set(copied))} distinct"
        assert sorted(copied, key=lambda v: int(v[1:])) == [f"r{i}" for i in range(total)]
        # Everything uncommitted that the kills left behind was aborted, not lost in between.
        everything = read_values(broker, "copy-out", "read_uncommitted", total, timeout=30)
        assert len(everything) >= total
    finally:
        broker.kill()


def test_librdkafka_transactional_producer(tmp_path):
    broker = Broker(tmp_path).start()
    try:
        create_topic(broker, "rdk")
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "rdk-txn"})
        producer.init_transactions(30)
        producer.begin_transaction()
        for i in range(10):
            producer.produce("rdk", value=f"keep-{i}", partition=0)
        producer.commit_transaction(30)
        producer.begin_transaction()
        for i in range(10):
            producer.produce("rdk", value=f"drop-{i}", partition=0)
        # Delivered before the abort (an abort purges what is still queued), so they are in
        # the log and only read_uncommitted may see them.
        assert producer.flush(30) == 0
        producer.abort_transaction(30)
        producer.begin_transaction()
        producer.produce("rdk", value="keep-last", partition=0)
        producer.commit_transaction(30)
        committed = read_values(broker, "rdk", "read_committed", 11)
        assert committed == [f"keep-{i}" for i in range(10)] + ["keep-last"]
        everything = read_values(broker, "rdk", "read_uncommitted", 21)
        assert len(everything) == 21
    finally:
        broker.kill()


def test_broker_killed_mid_transaction(tmp_path):
    broker = Broker(tmp_path, extra=FAST_ABORT).start()
    try:
        create_topic(broker, "crash")
        producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "crash-txn",
                             "transaction.timeout.ms": 4000})
        producer.init_transactions(30)
        producer.begin_transaction()
        for i in range(10):
            producer.produce("crash", value=f"committed-{i}", partition=0)
        producer.commit_transaction(30)
        producer.begin_transaction()
        for i in range(10):
            producer.produce("crash", value=f"open-{i}", partition=0)
        assert producer.flush(30) == 0
        broker.kill()
        broker.start()
        # The open transaction's producer is gone; another producer commits behind it.
        other = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "after-crash"})
        other.init_transactions(30)
        other.begin_transaction()
        for i in range(10):
            other.produce("crash", value=f"after-{i}", partition=0)
        other.commit_transaction(30)
        started = time.time()
        seen = read_values(broker, "crash", "read_committed", 20, timeout=30)
        expected = [f"committed-{i}" for i in range(10)] + [f"after-{i}" for i in range(10)]
        assert seen == expected, (seen, broker.log_tail())
        assert time.time() - started < 20
        # Killed again right after the abort: nothing changes on restart.
        broker.kill()
        broker.start()
        assert read_values(broker, "crash", "read_committed", 20, timeout=15) == expected
    finally:
        broker.kill()


def test_kafka_streams_exactly_once_v2_survives_a_kill(tmp_path):
    total = 5_000
    broker = Broker(tmp_path).start()
    try:
        fill_input(broker, "streams-in", "streams-out", total)
        classes = compile_java(tmp_path, "StreamsCopy.java")
        cmd = ["java", "-Xmx512m", "-cp", f"{classes}:{JAVA_LIB}/*", "StreamsCopy", broker.bootstrap,
               "streams-in", "streams-out", "eos-copy", str(tmp_path / "streams-state")]
        # First run: killed with SIGKILL once it has processed part of the input.
        first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(tmp_path / "streams-0.err", "w"), text=True)
        watchdog = threading.Timer(120, first.kill)
        watchdog.start()
        try:
            for line in first.stdout:
                if line.startswith("processed") and int(line.split()[1]) >= 1_500:
                    break
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            watchdog.cancel()
        assert first.returncode == -signal.SIGKILL, (tmp_path / "streams-0.err").read_text()[-3000:]
        # Second run finishes the input; the output is read while it runs.
        second = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "streams-1.err", "w"))
        try:
            copied = read_values(broker, "streams-out", "read_committed", total, timeout=120)
        finally:
            second.kill()
            second.wait()
        assert len(copied) == total, (len(copied), len(set(copied)), (tmp_path / "streams-1.err").read_text()[-3000:],
                                      broker.log_tail())
        assert copied == [f"R{i}" for i in range(total)]
    finally:
        broker.kill()
