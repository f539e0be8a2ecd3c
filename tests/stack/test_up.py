"""`sieve up` / `sieve down` against real moto servers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def sieve(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "processors.cli", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def test_up_creates_everything_and_is_idempotent(aws, tmp_path):
    env = {**os.environ, "SIEVE_STATE_DIR": str(tmp_path), "COLUMNS": "200"}
    first = sieve("up", "--no-models", env=env)
    assert first.returncode == 0, first.stderr
    assert "created" in first.stdout
    kinesis = boto3.client("kinesis")
    summary = kinesis.describe_stream_summary(StreamName="sieve-access-logs")["StreamDescriptionSummary"]
    assert summary["OpenShardCount"] == 2
    ddb = boto3.client("dynamodb")
    faq = ddb.describe_table(TableName="sieve-faq")["Table"]
    assert faq["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert ddb.describe_time_to_live(TableName="sieve-state")["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId="sieve/slack")["SecretString"])
    assert secret["webhook_url"].startswith("http://127.0.0.1")
    subs = boto3.client("logs").describe_subscription_filters(logGroupName="/sieve/access/nginx")["subscriptionFilters"]
    assert [s["destinationArn"] for s in subs] == [summary["StreamARN"]]
    assert boto3.client("sqs").get_queue_url(QueueName="sieve-logs-failures")["QueueUrl"]

    boto3.client("secretsmanager").put_secret_value(SecretId="sieve/slack", SecretString='{"webhook_url": "kept"}')
    second = sieve("up", "--no-models", env=env)
    assert second.returncode == 0, second.stderr
    assert "created" not in second.stdout and "updated" not in second.stdout
    assert second.stdout.count("exists") >= 10
    # a user's own secret value is never overwritten
    assert "kept" in boto3.client("secretsmanager").get_secret_value(SecretId="sieve/slack")["SecretString"]
    # nothing was started: the endpoint came from AWS_ENDPOINT_URL
    assert not list((tmp_path / "pids").glob("*.json"))


def test_up_starts_embedded_moto_and_down_stops_only_it(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"SIEVE_STATE_DIR": str(tmp_path), "SIEVE_MOTO_PORT": str(port), "COLUMNS": "200"})
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        up = sieve("up", "--no-models", env=env)
        assert up.returncode == 0, up.stderr
        info = json.loads((tmp_path / "pids" / "moto.json").read_text())
        assert Path(f"/proc/{info['pid']}").exists()
        client = boto3.client("kinesis", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")
        assert "sieve-access-logs" in client.list_streams()["StreamNames"]
        assert f"AWS_ENDPOINT_URL=http://127.0.0.1:{port}" in (tmp_path / "env").read_text()
        down = sieve("down", env=env)
        assert down.returncode == 0
        for _ in range(50):
            if not Path(f"/proc/{info['pid']}").exists():
                break
            time.sleep(0.1)
        assert not Path(f"/proc/{info['pid']}").exists()
        assert bystander.poll() is None  # down touched nothing it did not start
    finally:
        bystander.kill()
        sieve("down", env=env)


def test_malformed_config_starts_nothing(tmp_path):
    bad = tmp_path / "pipelines.yaml"
    bad.write_text("version: 1\nresources:\n  streams:\n    s: {shards: 0}\n")
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")},
           "SIEVE_STATE_DIR": str(tmp_path), "SIEVE_MOTO_PORT": str(port)}
    proc = sieve("up", "--config", str(bad), env=env)
    assert proc.returncode == 2
    assert "resources.streams.s.shards:" in proc.stderr
    assert not list((tmp_path / "pids").glob("*.json"))


def _models_argv(monkeypatch, model_id, env=()):
    """The `sieve models serve` command line `sieve up` would start for an analyser with `model_id`."""
    from types import SimpleNamespace

    from processors.commands import up

    for k in ("SIEVE_MODEL", "SIEVE_MODEL_PATH"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env:
        monkeypatch.setenv(k, v)
    seen = []
    monkeypatch.setattr(up.services, "start", lambda name, argv, **kw: seen.append(argv) or SimpleNamespace(
        url="http://127.0.0.1:4567", pid=1, started_here=True))
    analyser = SimpleNamespace(kind="bedrock", endpoint_url="http://127.0.0.1:4567", model_id=model_id)
    up.start_models(SimpleNamespace(pipelines=SimpleNamespace(logs=SimpleNamespace(ai=SimpleNamespace(analyser=analyser)))))
    [argv] = seen
    return argv[argv.index("serve") + 1:]


def test_up_serves_the_local_model_the_analyser_names(monkeypatch):
    from processors.adapters.model_files import QWEN_05B, QWEN_15B

    # a known local model's id selects that model; the shipped pipelines.yaml names the default 1.5B
    assert "--model" in (a := _models_argv(monkeypatch, QWEN_05B.model_id)) and a[a.index("--model") + 1] == QWEN_05B.name
    assert a[a.index("--model") + 1] != QWEN_15B.name
    # any other id (a Bedrock id while testing locally) is answered by the default model under that name
    a = _models_argv(monkeypatch, "anthropic.claude-3-haiku-20240307-v1:0")
    assert "--model" not in a and a[a.index("--alias") + 1] == "anthropic.claude-3-haiku-20240307-v1:0"
    # SIEVE_MODEL chooses the model; the configured id stays answerable as an alias
    a = _models_argv(monkeypatch, QWEN_15B.model_id, env=[("SIEVE_MODEL", QWEN_05B.name)])
    assert "--model" not in a and a[a.index("--alias") + 1] == QWEN_15B.model_id


def test_the_shipped_pipelines_yaml_uses_the_default_local_model():
    import yaml

    from processors.adapters.model_files import DEFAULT_MODEL, get_model

    cfg = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    assert cfg["pipelines"]["logs"]["ai"]["analyser"]["model_id"] == get_model(DEFAULT_MODEL).model_id
