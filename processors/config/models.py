"""pipelines.yaml as frozen, strict models. Unknown keys are errors: a typo must never silently
switch a filter off. schemas/pipelines.schema.json is generated from these models (`sieve schema`),
never written by hand.

The file has four parts:
  resources   what `sieve up` creates (streams, tables, queues, secrets, log groups) on the emulator
  functions   Lambda functions and their event sources (the local runner plays the event source mapping)
  pipelines   the log-analysis and FAQ pipelines: rules, selection and the AI boundary
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME = r"^[A-Za-z0-9_.\-/]{1,255}$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


# --------------------------------------------------------------------------- resources


class StreamSpec(Strict):
    """A Kinesis data stream."""

    shards: Annotated[int, Field(ge=1, le=500, description="Number of shards (provisioned mode).")] = 1
    retention_hours: Annotated[int, Field(ge=24, le=8760)] = 24


class TableSpec(Strict):
    """A DynamoDB table (on-demand)."""

    partition_key: str = Field(description="Name of the partition (hash) key attribute, type S.")
    sort_key: str | None = Field(default=None, description="Name of the sort (range) key attribute, type S.")
    stream: Literal["NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY"] | None = Field(
        default=None, description="Enable DynamoDB Streams with this view type."
    )
    ttl_attribute: str | None = Field(default=None, description="Attribute holding the expiry epoch seconds.")


class QueueSpec(Strict):
    """An SQS queue (failure destinations, rejects)."""

    fifo: bool = False
    retention_seconds: Annotated[int, Field(ge=60, le=1209600)] = 1209600


class SecretSpec(Strict):
    """A Secrets Manager secret. `local_value` is only written on an emulator (never on AWS), and only
    when the secret does not exist yet; environment variables in ${VAR} form are expanded."""

    description: str = ""
    local_value: dict[str, str] | str | None = None


class SubscriptionSpec(Strict):
    stream: str = Field(description="Destination Kinesis stream (a key of resources.streams).")
    filter_name: str = "sieve"
    filter_pattern: str = ""


class LogGroupSpec(Strict):
    retention_days: int | None = None
    subscription: SubscriptionSpec | None = None


class Resources(Strict):
    streams: dict[str, StreamSpec] = {}
    tables: dict[str, TableSpec] = {}
    queues: dict[str, QueueSpec] = {}
    secrets: dict[str, SecretSpec] = {}
    log_groups: dict[str, LogGroupSpec] = {}


# --------------------------------------------------------------------------- functions


class KinesisSource(Strict):
    stream: str


class DynamoDBSource(Strict):
    table: str


class EventSource(Strict):
    """One event source mapping, with Lambda's own setting names in snake_case."""

    kinesis: KinesisSource | None = None
    dynamodb: DynamoDBSource | None = None
    batch_size: Annotated[int, Field(ge=1, le=10000)] = 100
    maximum_batching_window_seconds: Annotated[int, Field(ge=0, le=300)] = 0
    starting_position: Literal["TRIM_HORIZON", "LATEST"] = "TRIM_HORIZON"
    function_response_types: list[Literal["ReportBatchItemFailures"]] = ["ReportBatchItemFailures"]
    bisect_batch_on_function_error: bool = False
    maximum_retry_attempts: Annotated[int, Field(ge=-1, le=10000)] = -1
    maximum_record_age_seconds: Annotated[int, Field(ge=-1, le=604800)] = -1
    tumbling_window_seconds: Annotated[int, Field(ge=0, le=900)] = 0
    on_failure: str | None = Field(default=None, description="SQS queue (a key of resources.queues) for batches that run out of retries.")

    @model_validator(mode="after")
    def _one_source(self) -> "EventSource":
        if (self.kinesis is None) == (self.dynamodb is None):
            raise ValueError("give exactly one of kinesis or dynamodb")
        if self.maximum_record_age_seconds not in (-1,) and self.maximum_record_age_seconds < 60:
            raise ValueError("maximum_record_age_seconds must be -1 or between 60 and 604800 (as in Lambda)")
        return self


class FunctionSpec(Strict):
    handler: str = Field(description="Dotted path of the Lambda handler, e.g. processors.handlers.logs.handler.")
    timeout_seconds: Annotated[int, Field(ge=1, le=900)] = 60
    memory_mb: Annotated[int, Field(ge=128, le=10240)] = 512
    environment: dict[str, str] = {}
    events: list[EventSource] = []
    schedule_seconds: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="Invoke on a schedule (EventBridge rate) with an empty scheduled event."
    )

    @field_validator("handler")
    @classmethod
    def _dotted(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", v):
            raise ValueError("must be a dotted path such as processors.handlers.logs.handler")
        return v


# --------------------------------------------------------------------------- log pipeline


def _json_fields_model() -> type[Strict]:
    """The config model for JSON field names, derived from the parser's own `JsonFields`, so names
    and defaults are never copied by hand."""
    import dataclasses

    from pydantic import create_model

    from processors.core.parse import JsonFields as CoreJsonFields

    fields = {f.name: (str, f.default) for f in dataclasses.fields(CoreJsonFields)}
    model = create_model("JsonFields", __base__=Strict, **fields)
    model.__doc__ = ("Where a JSON log line keeps each well-known field (dotted paths allowed). Only `time` "
                     'changes the output (the event time); the others are validated when present ("" disables).')
    return model


JsonFields = _json_fields_model()


class ParseSpec(Strict):
    formats: list[Literal["combined", "common", "json"]] = ["combined", "common", "json"]
    json_fields: JsonFields = JsonFields()


class WindowSpec(Strict):
    period_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    allowed_lateness_seconds: Annotated[int, Field(ge=0, le=3600)] = 30


class StateSpec(Strict):
    table: str = Field(description="DynamoDB table (resources.tables) for partials, reports and rejects.")
    capacity: Annotated[int, Field(ge=10, le=100000)] = 5000
    ttl_days: Annotated[int, Field(ge=1, le=365)] = 14


class SelectionSpec(Strict):
    min_count: Annotated[float, Field(ge=0)] = 10
    min_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    status_key: str | None = Field(default=None, description="Rule key alias holding the HTTP status, for status_classes.")
    status_classes: list[Literal["1xx", "2xx", "3xx", "4xx", "5xx"]] = []
    new_within_windows: Annotated[int, Field(ge=0, le=100)] = 0
    only_new: bool = False
    cooldown_seconds: Annotated[int, Field(ge=0)] = 0
    cooldown_growth_factor: Annotated[float, Field(ge=1)] = 2.0
    max_groups: Annotated[int, Field(ge=1, le=20)] = 3


class AnalyserSpec(Strict):
    kind: Literal["bedrock", "llama_lambda", "opensearch", "none"] = "bedrock"
    model_id: str = "local.qwen2.5-coder-0.5b-instruct"
    endpoint_url: str | None = Field(default=None, description="bedrock-runtime endpoint (the local model server when set).")
    function_name: str | None = Field(default=None, description="llama_lambda: the Lambda to invoke; 'inprocess' runs it locally.")
    schema_mode: Literal["output_config", "additional_fields", "prompt"] = Field(
        default="output_config",
        description="bedrock: how the answer's JSON Schema reaches the model. output_config = Converse structured "
        "output (the local endpoint; Bedrock models that support it); prompt = in the system prompt (any model).",
    )
    opensearch_url: str | None = Field(default=None, description="opensearch: the cluster whose ml-commons model `model_id` answers.")
    timeout_seconds: Annotated[int, Field(ge=1, le=900)] = 120


class BudgetSpec(Strict):
    tokens_per_call: Annotated[int, Field(ge=64)] = 2000
    calls_per_window: Annotated[int, Field(ge=0)] = 1
    tokens_per_day: Annotated[int, Field(ge=0)] = 200000
    max_output_tokens: Annotated[int, Field(ge=16, le=4096)] = 300


class PriceSpec(Strict):
    input_per_1k: Annotated[float, Field(ge=0)] = 0.0
    output_per_1k: Annotated[float, Field(ge=0)] = 0.0


class RedactPattern(Strict):
    name: str
    regex: str
    replacement: str = "<redacted>"

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v


class RedactSpec(Strict):
    builtin: list[str] | Literal["all"] = "all"
    extra_patterns: list[RedactPattern] = []


class AISpec(Strict):
    """The AI boundary: what a model may see, how much, and who it is."""

    analyser: AnalyserSpec = AnalyserSpec()
    language: Literal["en", "ja"] = "en"
    samples_per_group: Annotated[int, Field(ge=0, le=10)] = 3
    budgets: BudgetSpec = BudgetSpec()
    prices: dict[str, PriceSpec] = {}
    redact: RedactSpec = RedactSpec()
    redaction_secret: str | None = Field(
        default=None,
        description="Secrets Manager secret (plain string, or JSON with key `key`) holding >= 16 random bytes; "
        "client IPs are pseudonymised with an HMAC under it. Without it, AI analysis is refused.",
    )
    audit_table: str | None = None
    audit_ttl_days: Annotated[int, Field(ge=1, le=3650)] = 90


class SlackSpec(Strict):
    webhook_secret: str | None = Field(default=None, description="Secrets Manager secret holding the webhook URL (JSON key `webhook_key`).")
    webhook_key: str = "webhook_url"
    idempotency_table: str | None = None
    failure_queue: str | None = None


class LogsPipeline(Strict):
    source_stream: str
    parse: ParseSpec = ParseSpec()
    window: WindowSpec = WindowSpec()
    state: StateSpec
    top_n: Annotated[int, Field(ge=1, le=100)] = 10
    rules: list[dict[str, Any] | str] = Field(description="Contributor Insights rules: inline rule JSON, or a path to a rule file (relative to pipelines.yaml).")
    selection: SelectionSpec = SelectionSpec()
    ai: AISpec = AISpec()
    slack: SlackSpec = SlackSpec()
    rejects_queue: str | None = None


# --------------------------------------------------------------------------- FAQ pipeline


class EmbedderSpec(Strict):
    kind: Literal["bedrock", "local"] = "local"
    model_id: str = "amazon.titan-embed-text-v2:0"
    dimension: Annotated[int, Field(ge=8, le=4096)] = 512
    endpoint_url: str | None = None


class OpenSearchSpec(Strict):
    url: str = "http://127.0.0.1:9200"
    auth: Literal["none", "sigv4-es", "sigv4-aoss"] = "none"
    index_prefix: str = "faq-"


class FaqPipeline(Strict):
    table: str
    role_attribute: str = "role"
    roles: dict[str, list[str]] = Field(description="Index role -> the record roles it may see, e.g. staff: [public, staff].")
    embedder: EmbedderSpec = EmbedderSpec()
    opensearch: OpenSearchSpec = OpenSearchSpec()
    top_k: Annotated[int, Field(ge=1, le=50)] = 5
    min_score: Annotated[float, Field(ge=0)] = Field(
        default=0.3, description="Least cosine similarity (query vs entry embedding) for a retrieved entry to count as relevant.")
    analyser: AnalyserSpec | None = Field(default=None, description="The model that writes answers from the retrieved entries; none: list the entries.")
    slack_secret: str = Field(default="sieve/slack", description="Secrets Manager secret (JSON) holding the Slack signing secret.")
    slack_signing_key: str = "signing_secret"
    slack_user_roles: dict[str, str] = Field(default={}, description="Slack user id -> index role; anyone else gets default_role.")
    default_role: str = "public"

    @model_validator(mode="after")
    def _known_roles(self) -> "FaqPipeline":
        bad = [f"{where}: role {r!r} is not a key of roles" for where, r in
               [("default_role", self.default_role)] + [(f"slack_user_roles.{u}", r) for u, r in self.slack_user_roles.items()]
               if r not in self.roles]
        if bad:
            raise ValueError("; ".join(bad))
        return self


class Pipelines(Strict):
    logs: LogsPipeline | None = None
    faq: FaqPipeline | None = None


class Config(Strict):
    version: Literal[1] = 1
    region: str = "us-east-1"
    resources: Resources = Resources()
    functions: dict[str, FunctionSpec] = {}
    pipelines: Pipelines = Pipelines()
