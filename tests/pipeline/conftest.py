"""The log pipeline end to end on the real local stack: moto (Kinesis, DynamoDB, SQS, Secrets
Manager), the local event-source-mapping runner, the real handlers, a local Slack receiver."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from processors.config import load
from processors.handlers import finaliser as finaliser_mod
from processors.handlers import logs as logs_mod
from processors.runtime.provision import provision

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass
class Stack:
    dir: Path
    config_path: Path

    def loaded(self):
        return load(self.config_path)


def write_config(tmp_path: Path, mutate=None) -> Path:
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    doc["pipelines"]["logs"]["rules"] = [str(ROOT / "rules" / "errors-by-path.json"), str(ROOT / "rules" / "404-by-client.json")]
    doc["pipelines"]["logs"]["ai"]["analyser"] = {"kind": "none"}
    if mutate:
        mutate(doc)
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture()
def make_stack(aws, tmp_path, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    def make(mutate=None) -> Stack:
        path = write_config(tmp_path, mutate)
        monkeypatch.setenv("SIEVE_CONFIG", str(path))
        logs_mod.reset_runtime()
        finaliser_mod.reset_runtime()
        provision(load(path).config, emulator=True)
        return Stack(tmp_path, path)

    yield make
    logs_mod.reset_runtime()
    finaliser_mod.reset_runtime()


def truth_of(path: Path) -> dict:
    return json.loads(Path(str(path) + ".truth.json").read_text())


def local_notifier(url: str):
    """The production notifier against a local receiver, registered with a Lambda-like context as the
    finaliser handler does (Powertools idempotency uses the remaining time for in-progress expiry)."""
    import boto3

    from processors.adapters.slack import SlackWebhookNotifier
    from processors.runtime.lambda_context import LambdaContext

    notifier = SlackWebhookNotifier(webhook_url=url, idempotency_table="sieve-idempotency",
                                    dynamodb_client=boto3.client("dynamodb"))
    notifier.bind_invocation(LambdaContext(
        function_name="logs-finaliser", invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:logs-finaliser",
        timeout_seconds=300))
    return notifier
