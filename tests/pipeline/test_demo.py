"""The README's main command, for real: `sieve demo` with the local model behind the local
Bedrock-compatible endpoint, a private moto server and the local Slack receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.model
def test_sieve_demo_end_to_end_with_the_local_model(tmp_path):
    out = tmp_path / "slack.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SLACK_", "SIEVE_"))}
    env.update({"SIEVE_DEMO_DIR": str(tmp_path / "demo"), "COLUMNS": "120"})
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "demo", "--slack-out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "every generated incident was found" in proc.stdout
    payloads = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(payloads) == 2  # one per incident window; quiet windows are not posted
    for p in payloads:
        text = json.dumps(p)
        assert "Computed" in text
        # the model really ran: its tokens are in the footer, and its answer passed validation (ranked
        # hypotheses, labelled as inference) or was refused (no AI section: the facts speak for themselves)
        footer = p["blocks"][-1]["elements"][0]["text"]
        assert " in / " in footer and "tokens 0 in" not in footer
        assert ("AI inference" in text and "ranked hypotheses" in text) or ("speak for themselves" in text)
        assert "198.51.100.77" not in json.dumps([b for b in p["blocks"] if b.get("block_id", "").startswith("ai-")])
    # the services the demo started are gone
    for name in ("moto", "models"):
        assert not (tmp_path / "demo" / "pids" / f"{name}.json").exists()
