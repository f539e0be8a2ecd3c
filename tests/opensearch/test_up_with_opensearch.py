"""`sieve up --with opensearch` against an already running node: it is used, and `sieve down`
leaves it alone (down stops only what up started)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

pytestmark = pytest.mark.opensearch
ROOT = Path(__file__).resolve().parents[2]


def test_up_with_opensearch_uses_the_running_node_and_down_leaves_it(os_client, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"SIEVE_STATE_DIR": str(tmp_path), "SIEVE_MOTO_PORT": str(free_port()), "COLUMNS": "200"})
    up = subprocess.run([sys.executable, "-m", "processors.cli", "up", "--with", "opensearch", "--no-models"],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-2000:]
        assert not (tmp_path / "opensearch.started").exists()
    finally:
        down = subprocess.run([sys.executable, "-m", "processors.cli", "down"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert down.returncode == 0
    assert "moto: stopped" in down.stdout
    assert os_client.cluster.health()["status"] in ("green", "yellow")  # still serving
