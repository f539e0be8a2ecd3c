"""The LocalStack ready.d hook is generated from pipelines.yaml and creates what `sieve up` creates.
It is run here with the real `awslocal` (awscli-local) against a moto server standing in for
LocalStack, so the exact commands LocalStack would run are exercised."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "localstack" / "init" / "ready.d" / "10-sieve-resources.sh"


def test_committed_hook_is_up_to_date():
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "localstack", "hooks", "--check"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_hook_creates_the_declared_resources_twice_without_error(aws):
    awslocal = shutil.which("awslocal") or str(Path(sys.executable).parent / "awslocal")
    if not Path(awslocal).exists():
        pytest.fail("awslocal is not installed: `pip install awscli awscli-local` (./dev setup does)")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "AWS_DEFAULT_REGION": "us-east-1", "SIEVE_LOCAL_SLACK_URL": "http://127.0.0.1:1/hook"}
    for attempt in (1, 2):
        proc = subprocess.run(["bash", str(HOOK)], env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "sieve: resources ready" in proc.stdout
        if attempt == 2:
            assert "created:" not in proc.stdout  # idempotent, like `sieve up`
    assert boto3.client("kinesis").describe_stream_summary(StreamName="sieve-access-logs")["StreamDescriptionSummary"]["OpenShardCount"] == 2
    faq = boto3.client("dynamodb").describe_table(TableName="sieve-faq")["Table"]
    assert faq["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    secret = json.loads(boto3.client("secretsmanager").get_secret_value(SecretId="sieve/slack")["SecretString"])
    assert secret["webhook_url"] == "http://127.0.0.1:1/hook"  # ${VAR:-default} expanded by the shell
    subs = boto3.client("logs").describe_subscription_filters(logGroupName="/sieve/access/nginx")["subscriptionFilters"]
    assert subs and subs[0]["destinationArn"].endswith(":stream/sieve-access-logs")
    assert boto3.client("sqs").get_queue_url(QueueName="sieve-logs-rejects")["QueueUrl"]
