"""A confluent-kafka group member run as its own process, so tests can `kill -9` it.

Prints one JSON line per event on stdout: {"assigned": [...]}, {"revoked": [...]},
{"record": [partition, offset, value]}, {"committed": n}. Exits after --seconds.
"""

import argparse
import json
import sys
import time

from confluent_kafka import Consumer


def emit(event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--instance-id")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    args = parser.parse_args()
    config = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": 500,
    }
    if args.instance_id:
        config["group.instance.id"] = args.instance_id
    consumer = Consumer(config)
    consumer.subscribe(
        [args.topic],
        on_assign=lambda c, ps: emit({"assigned": sorted(p.partition for p in ps)}),
        on_revoke=lambda c, ps: emit({"revoked": sorted(p.partition for p in ps)}),
    )
    deadline = time.time() + args.seconds
    while time.time() < deadline:
        msgs = consumer.consume(num_messages=200, timeout=0.2)
        for m in msgs:
            if m.error() is None:
                emit({"record": [m.partition(), m.offset(), m.value().decode()]})
        if msgs:
            consumer.commit(asynchronous=False)
            emit({"committed": len(msgs)})
    consumer.close()


if __name__ == "__main__":
    main()
