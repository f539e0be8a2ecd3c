"""LocalStack as a target: with SIEVE_TARGET=localstack (or LocalStack's own variables) every boto3 session
comes from localstack-client, which points each client at LocalStack's edge endpoint. No Docker here, so a
moto server plays LocalStack's edge port (LOCALSTACK_HOST), with AWS_ENDPOINT_URL unset: the requests can
only reach it through localstack-client. `sieve deploy --local` then finds the endpoint the same way."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from processors.adapters import aws

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def localstack_env(moto_endpoint, monkeypatch):
    urllib.request.urlopen(urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST"), timeout=5).close()
    for v in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "LOCALSTACK_HOSTNAME", "EDGE_PORT", "SIEVE_TARGET"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("LOCALSTACK_HOST", urlsplit(moto_endpoint).netloc)
    return moto_endpoint


def test_target_follows_sieve_target_and_localstacks_variables(monkeypatch):
    for v in ("SIEVE_TARGET", *aws.LOCALSTACK_VARIABLES):
        monkeypatch.delenv(v, raising=False)
    assert aws.target() == "aws"
    monkeypatch.setenv("LOCALSTACK_HOSTNAME", "localhost.localstack.cloud")  # inside LocalStack's Lambda
    monkeypatch.setenv("EDGE_PORT", "4566")
    assert aws.target() == "localstack" and aws.is_emulator()
    assert aws._localstack_host() == "localhost.localstack.cloud:4566"
    monkeypatch.setenv("SIEVE_TARGET", "aws")  # an explicit choice wins
    assert aws.target() == "aws"


def test_sessions_reach_localstack_through_localstack_client(localstack_env):
    from localstack_client.session import Session as LocalStackSession

    from processors.config import load
    from processors.runtime.provision import provision

    assert aws.target() == "localstack"
    session = aws.session()
    assert isinstance(session, LocalStackSession)
    client = aws.client("dynamodb")
    assert client.meta.endpoint_url == localstack_env
    # the same provisioning `sieve up` does, through those sessions
    provision(load(ROOT / "pipelines.yaml").config, emulator=True)
    assert "sieve-state" in client.list_tables()["TableNames"]
    assert aws.client("kinesis").describe_stream_summary(StreamName="sieve-access-logs")
    assert aws.Secrets().get("sieve/redaction")  # the emulator-only local value was written


def test_sieve_deploy_local_finds_localstacks_endpoint(localstack_env, built):
    proc = subprocess.run([sys.executable, "-m", "processors.cli", "deploy", "--local", "--stack-name", "ls",
                           "--package-dir", str(built["out"]),
                           "--parameter", "OpenSearchEndpoint=https://search-x.us-east-1.es.amazonaws.com"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "SIEVE_TARGET": "localstack"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CREATE_COMPLETE" in proc.stdout.splitlines()[0]
    assert "AWS::SecretsManager::Secret" in proc.stderr  # named, not hidden
