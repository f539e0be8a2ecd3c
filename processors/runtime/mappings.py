"""pipelines.yaml `functions` -> the runner's EventSourceMappings (the ARNs looked up on the endpoint)."""

from __future__ import annotations

from botocore.exceptions import ClientError

from processors.adapters import aws
from processors.config import LoadedConfig
from processors.errors import SieveError
from processors.runtime.runner import EventSourceMapping


def build_mappings(loaded: LoadedConfig, only: set[str] | None = None) -> list[EventSourceMapping]:
    cfg = loaded.config
    region = aws.region(cfg.region)
    kinesis = aws.client("kinesis", region)
    ddb = aws.client("dynamodb", region)
    sqs = aws.client("sqs", region)
    out = []
    for fname, fn in cfg.functions.items():
        if only and fname not in only:
            continue
        for i, ev in enumerate(fn.events):
            try:
                if ev.kinesis:
                    arn = kinesis.describe_stream_summary(StreamName=ev.kinesis.stream)["StreamDescriptionSummary"]["StreamARN"]
                else:
                    arn = ddb.describe_table(TableName=ev.dynamodb.table)["Table"]["LatestStreamArn"]
                dest = None
                if ev.on_failure:
                    url = sqs.get_queue_url(QueueName=ev.on_failure)["QueueUrl"]
                    dest = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            except (ClientError, KeyError) as exc:
                if aws.endpoint_error(exc) is not None:
                    raise  # unreachable or refused: the CLI says which endpoint and what to do
                raise SieveError(f"functions.{fname}.events[{i}]: the source or destination does not exist at "
                                 f"{kinesis.meta.endpoint_url} ({exc}); run `sieve up` first") from None
            out.append(EventSourceMapping(
                name=fname if len(fn.events) == 1 else f"{fname}-{i}",
                function=fn.handler, event_source_arn=arn, starting_position=ev.starting_position,
                batch_size=ev.batch_size, maximum_batching_window_seconds=ev.maximum_batching_window_seconds,
                function_response_types=tuple(ev.function_response_types),
                bisect_batch_on_function_error=ev.bisect_batch_on_function_error,
                maximum_retry_attempts=ev.maximum_retry_attempts,
                maximum_record_age_seconds=ev.maximum_record_age_seconds,
                tumbling_window_seconds=ev.tumbling_window_seconds, on_failure_destination=dest,
                function_timeout_seconds=fn.timeout_seconds, memory_size_mb=fn.memory_mb,
            ))
    return out


def scheduled_event(function_name: str, region: str, account: str, flush: bool = False) -> dict:
    """The EventBridge scheduled event Lambda receives; `sieve.flush` marks an end-of-stream run."""
    import datetime
    import uuid

    ev = {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": account, "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region, "resources": [f"arn:aws:events:{region}:{account}:rule/{function_name}-schedule"], "detail": {},
    }
    if flush:
        ev["sieve"] = {"flush": True}
    return ev
