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
