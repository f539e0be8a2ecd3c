"""Create the resources pipelines.yaml declares, idempotently. A second run changes nothing and says so.

Used by `sieve up` against the embedded moto server, LocalStack or any endpoint in AWS_ENDPOINT_URL.
(On AWS itself, deploy infra/template.yaml with SAM instead; `up` refuses to write local secret
values anywhere but an emulator.)
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

from botocore.exceptions import ClientError

from processors.adapters import aws
from processors.config.models import Config
from processors.errors import SieveError


@dataclass(frozen=True)
class Change:
    kind: str
    name: str
    action: str  # created | exists | drift | updated
    detail: str = ""


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def provision(cfg: Config, *, emulator: bool) -> list[Change]:
    out: list[Change] = []
    r = cfg.resources
    region = aws.region(cfg.region)
    kinesis = aws.client("kinesis", region)
    for name, spec in r.streams.items():
        out.append(_stream(kinesis, name, spec.shards, spec.retention_hours))
    ddb = aws.client("dynamodb", region)
    for name, spec in r.tables.items():
        out.append(_table(ddb, name, spec))
    sqs = aws.client("sqs", region)
    for name, spec in r.queues.items():
        out.append(_queue(sqs, name, spec))
    sm = aws.client("secretsmanager", region)
    for name, spec in r.secrets.items():
        out.append(_secret(sm, name, spec, emulator=emulator))
    logs = aws.client("logs", region)
    for name, spec in r.log_groups.items():
        out.extend(_log_group(logs, kinesis, name, spec, region))
    return out


def _stream(kinesis, name: str, shards: int, retention: int) -> Change:
    try:
        desc = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        kinesis.create_stream(StreamName=name, ShardCount=shards)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        if retention != 24:
            kinesis.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=retention)
        return Change("stream", name, "created", f"{shards} shards")
    have = desc.get("OpenShardCount")
    if have != shards:
        return Change("stream", name, "drift", f"has {have} open shards, pipelines.yaml says {shards}; not resharded")
    return Change("stream", name, "exists", f"{have} shards")


def _table(ddb, name: str, spec) -> Change:
    try:
        desc = ddb.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
        keys = [{"AttributeName": spec.partition_key, "KeyType": "HASH"}]
        attrs = [{"AttributeName": spec.partition_key, "AttributeType": "S"}]
        if spec.sort_key:
            keys.append({"AttributeName": spec.sort_key, "KeyType": "RANGE"})
            attrs.append({"AttributeName": spec.sort_key, "AttributeType": "S"})
        kw = {}
        if spec.stream:
            kw["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": spec.stream}
        ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attrs, BillingMode="PAY_PER_REQUEST", **kw)
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        if spec.ttl_attribute:
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": spec.ttl_attribute})
        return Change("table", name, "created", f"stream {spec.stream}" if spec.stream else "")
    drift = []
    key_names = {k["KeyType"]: k["AttributeName"] for k in desc["KeySchema"]}
    if key_names.get("HASH") != spec.partition_key or key_names.get("RANGE") != spec.sort_key:
        drift.append(f"keys are {key_names}")
    view = desc.get("StreamSpecification", {}).get("StreamViewType") if desc.get("StreamSpecification", {}).get("StreamEnabled") else None
    if view != spec.stream:
        drift.append(f"stream is {view}, pipelines.yaml says {spec.stream}")
    if drift:
        return Change("table", name, "drift", "; ".join(drift) + "; not changed")
    return Change("table", name, "exists")


def _queue(sqs, name: str, spec) -> Change:
    qname = name + (".fifo" if spec.fifo and not name.endswith(".fifo") else "")
    try:
        sqs.get_queue_url(QueueName=qname)
        return Change("queue", qname, "exists")
    except ClientError as exc:
        if _code(exc) not in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
            raise
    attrs = {"MessageRetentionPeriod": str(spec.retention_seconds)}
    if spec.fifo:
        attrs["FifoQueue"] = "true"
    sqs.create_queue(QueueName=qname, Attributes=attrs)
    return Change("queue", qname, "created")


def _secret(sm, name: str, spec, *, emulator: bool) -> Change:
    try:
        sm.describe_secret(SecretId=name)
        return Change("secret", name, "exists", "value left as it is")
    except ClientError as exc:
        if _code(exc) != "ResourceNotFoundException":
            raise
    if spec.local_value is None:
        return Change("secret", name, "drift", "missing; no local_value to create it with")
    if not emulator:
        raise SieveError(
            f"resources.secrets.{name}: refusing to write local_value to a non-emulator endpoint; "
            "create the secret yourself (aws secretsmanager create-secret) or set AWS_ENDPOINT_URL to an emulator"
        )
    value = spec.local_value if isinstance(spec.local_value, str) else json.dumps(spec.local_value)
    sm.create_secret(Name=name, Description=spec.description, SecretString=value)
    return Change("secret", name, "created", "from local_value")


def _log_group(logs, kinesis, name: str, spec, region: str) -> list[Change]:
    out = []
    found = logs.describe_log_groups(logGroupNamePrefix=name).get("logGroups", [])
    if any(g["logGroupName"] == name for g in found):
        out.append(Change("log group", name, "exists"))
    else:
        logs.create_log_group(logGroupName=name)
        if spec.retention_days:
            logs.put_retention_policy(logGroupName=name, retentionInDays=spec.retention_days)
        out.append(Change("log group", name, "created"))
    sub = spec.subscription
    if sub:
        arn = kinesis.describe_stream_summary(StreamName=sub.stream)["StreamDescriptionSummary"]["StreamARN"]
        current = logs.describe_subscription_filters(logGroupName=name).get("subscriptionFilters", [])
        same = [f for f in current if f["filterName"] == sub.filter_name]
        if same and same[0].get("destinationArn") == arn and same[0].get("filterPattern", "") == sub.filter_pattern:
            out.append(Change("subscription", f"{name} -> {sub.stream}", "exists"))
        else:
            account = arn.split(":")[4]
            logs.put_subscription_filter(
                logGroupName=name, filterName=sub.filter_name, filterPattern=sub.filter_pattern, destinationArn=arn,
                roleArn=f"arn:aws:iam::{account}:role/sieve-cwl-to-kinesis",
            )
            out.append(Change("subscription", f"{name} -> {sub.stream}", "updated" if same else "created"))
    return out


def wait_until(pred, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise SieveError(f"timed out waiting for {what}")


def emulator_env_hint(url: str) -> str:
    return f"export AWS_ENDPOINT_URL={url} AWS_ACCESS_KEY_ID={os.environ.get('AWS_ACCESS_KEY_ID', 'test')} AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1"
