"""A short fault campaign (chaos.py) as a test: seed 1, eight faults, a two-minute nemesis.

Kills, SIGSTOP pauses, network partitions and etcd outages hit a three-broker cluster
while idempotent acks=all producers and a committing consumer group run; the checker then
requires that nothing acknowledged was lost, duplicated, reordered or moved, and that the
group's committed offsets stayed within the log and never went backwards. See docs/reliability.md.

Marked `chaos`: `make test` deselects it, `make chaos` runs the longer campaigns.
"""

import json

import pytest

from chaos import run_isolated


@pytest.mark.chaos
def test_short_fault_campaign_keeps_every_acknowledged_record(tmp_path):
    summary = run_isolated(tmp_path, seed=1, faults=8, duration_s=120)
    assert summary["ok"], json.dumps(summary, indent=1, default=str)
    assert summary["faults_injected"] >= 8, summary["faults"]
    assert summary["acked"] > 0
