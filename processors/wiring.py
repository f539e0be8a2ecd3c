"""The one wiring place: pipelines.yaml -> adapters behind the ports -> the core's use cases.

Each handler module names its `Component` (how its use case is built, and what it touches) and gets
the use case once per container (cold start) through `PerContainer`; tests and the CLI call the same
builders with test doubles or local clients injected. Which adapter a config `kind` means is decided by
the kind's own `build()` and the IAM it needs by its `iam()` (processors/config/models.py); the SAM
generator reads each function's permissions from the same component (`needs`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

from processors.errors import ConfigError

if TYPE_CHECKING:  # annotations only: each builder imports what it builds, so a handler loads only its own
    # and importing a handler module loads neither YAML nor pydantic (cold start; tests/test_imports.py)
    from processors.config import LoadedConfig
    from processors.config.models import Config, FaqPipeline, LogsPipeline
    from processors.core.answer import Asker

T = TypeVar("T")


@dataclass(frozen=True)
class Component(Generic[T]):
    """One handler's use case: how it is built from pipelines.yaml, and what it touches beyond its own
    event sources (tables, queues, secrets, and the config kinds whose `iam()` it needs). The handler
    module names its component (`COMPONENT`); the SAM generator reads `needs` from there."""

    build: Callable[..., T]
    needs: Callable[[Config, "Needs"], None]


class PerContainer(Generic[T]):
    """A component's use case, built once per container on first use (cold start); `reset()` (tests)
    forgets it or installs a given one."""

    def __init__(self, component: Component[T]):
        self.component = component
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            from processors.config import load  # on the first invocation, not at import

            self._value = self.component.build(load(os.environ.get("SIEVE_CONFIG")))
        return self._value

    def reset(self, value: T | None = None) -> None:
        self._value = value


def logs_pipeline(cfg: Config) -> LogsPipeline:
    if cfg.pipelines.logs is None:
        raise ConfigError("pipelines.yaml", ["pipelines.logs: not configured, the log pipeline has nothing to do"])
    return cfg.pipelines.logs


def faq_pipeline(cfg: Config) -> FaqPipeline:
    if cfg.pipelines.faq is None:
        raise ConfigError("pipelines.yaml", ["pipelines.faq: not configured, the FAQ pipeline has nothing to do"])
    return cfg.pipelines.faq


# ------------------------------------------------------------------------------------ log pipeline


def ingest_config(loaded: LoadedConfig):
    from processors.core.ingest import IngestConfig
    from processors.core.parse import JsonFields

    logs = logs_pipeline(loaded.config)
    return IngestConfig(rules=tuple(loaded.rules), period=logs.window.period_seconds, capacity=logs.state.capacity,
                        json_fields=JsonFields(**logs.parse.json_fields.model_dump()),
                        samples_k=logs.ai.samples_per_group, explain=explain_config(loaded))


def explain_config(loaded: LoadedConfig):
    """pipelines.logs.explain -> the core's ExplainConfig; its `rules` must name configured rules."""
    from processors.errors import ConfigError

    cfg = logs_pipeline(loaded.config).explain.to_core()
    names = [r.name for r in loaded.rules]
    unknown = [n for n in cfg.rules if n not in names]
    if unknown:
        raise ConfigError(str(loaded.path), [f"pipelines.logs.explain.rules: no rule named {', '.join(map(repr, unknown))}; "
                                             f"rules: {', '.join(names)}"])
    return cfg


def state_store(loaded: LoadedConfig):
    from processors.adapters.state_store import StateStore

    logs = logs_pipeline(loaded.config)
    return StateStore(logs.state.table, ttl_days=logs.state.ttl_days)


def logs_ingest(loaded: LoadedConfig, *, clock: Callable[[], float] = time.time):
    """The logs processor's use case: Kinesis batch -> partials in the state table."""
    from processors.adapters import aws
    from processors.adapters.sqs import LogRejectSink, SqsRejectSink
    from processors.adapters.state_store import StateStore
    from processors.core.ingest import LogIngest

    logs = logs_pipeline(loaded.config)
    # one boto3 session for both clients: each new session reloads botocore's endpoint and service data
    # (~0.1-0.2 s of the first invocation; bench/results/coldstart.json)
    session = aws.session(loaded.config.region)
    rejects: object = LogRejectSink()
    if logs.rejects_queue:
        sqs = session.client("sqs", config=aws.CLIENT_CONFIG)
        rejects = SqsRejectSink(sqs.get_queue_url(QueueName=logs.rejects_queue)["QueueUrl"], client=sqs)
    store = StateStore(logs.state.table, ttl_days=logs.state.ttl_days, resource=session.resource("dynamodb"))
    return LogIngest(ingest_config(loaded), store, rejects, clock=clock)


def boundary_config(logs: LogsPipeline, redaction_secret: bytes):
    """pipelines.logs.ai -> the core's BoundaryConfig (the secret is read by the caller)."""
    from processors.core.boundary import BoundaryConfig, ModelPrice
    from processors.core.digest import DigestConfig
    from processors.core.redact import patterns_from_config

    ai = logs.ai
    return BoundaryConfig(
        model_id=ai.analyser.model_id, redaction_secret=redaction_secret, language=ai.language,
        enabled=ai.analyser.kind != "none",
        digest=DigestConfig(samples_per_group=ai.samples_per_group),
        budget=ai.budgets.to_core(),
        prices={m: ModelPrice(p.input_per_1k, p.output_per_1k) for m, p in ai.prices.items()},
        patterns=patterns_from_config(ai.redact.builtin, [p.model_dump() for p in ai.redact.extra_patterns]),
        audit_ttl_days=ai.audit_ttl_days,
    )


def finalise_config(loaded: LoadedConfig, redaction_secret: bytes):
    from processors.core.finalise import FinaliseConfig

    logs = logs_pipeline(loaded.config)
    return FinaliseConfig(rules=tuple(r.name for r in loaded.rules), period=logs.window.period_seconds,
                          allowed_lateness=logs.window.allowed_lateness_seconds, top_n=logs.top_n,
                          selection=logs.selection.to_core(), boundary=boundary_config(logs, redaction_secret),
                          explain=explain_config(loaded))


def slack_notifier(loaded: LoadedConfig, secrets=None):
    """The notifier kind of pipelines.logs.slack, built by the kind: `webhook` (SLACK_WEBHOOK_URL overrides
    the secret) or `bot` (threads per incident in the state table; SLACK_BOT_TOKEN / SLACK_API_URL override)."""
    from processors.adapters import aws

    slack = logs_pipeline(loaded.config).slack
    region = aws.region(loaded.config.region)
    if slack.kind == "bot":
        return slack.build(region=region, state=state_store(loaded), secrets=secrets)
    return slack.build(region=region)


def finaliser(loaded: LoadedConfig, *, notifier=None, analyser=None, clock: Callable[[], float] = time.time,
              secrets=None):
    """The finaliser's use case: closed windows -> top-N -> selection -> AI boundary -> Slack -> report."""
    from processors.adapters import aws
    from processors.adapters.audit import DynamoDBAuditStore, LogAuditSink
    from processors.adapters.budget_store import DynamoDBBudgetStore
    from processors.adapters.kinesis_shards import KinesisShardLister
    from processors.core.finalise import Finaliser

    logs = logs_pipeline(loaded.config)
    ai = logs.ai
    enabled = ai.analyser.kind != "none"
    secrets = secrets or aws.Secrets()
    if enabled:
        if not ai.redaction_secret:
            raise ConfigError("pipelines.yaml", ["pipelines.logs.ai.redaction_secret: required when an analyser is configured"])
        secret = secrets.get(ai.redaction_secret, "key", plain_ok=True).encode()
    else:
        secret = b"disabled-analysis-no-key"
    region = aws.region(loaded.config.region)
    audit = (DynamoDBAuditStore(ai.audit_table, client=aws.client("dynamodb", region)) if ai.audit_table
             else LogAuditSink())
    return Finaliser(
        finalise_config(loaded, secret), state_store(loaded),
        analyser=analyser if analyser is not None else ai.analyser.build(),
        budget=DynamoDBBudgetStore(logs.state.table, client=aws.client("dynamodb", region), clock=clock),
        audit=audit, notifier=notifier if notifier is not None else slack_notifier(loaded, secrets), clock=clock,
        # the watermark waits for a shard of the source stream that has flushed nothing yet (core/watermark.py)
        shards=KinesisShardLister(logs.source_stream, region=region))


# ------------------------------------------------------------------------------------ what each handler touches


@dataclass
class Needs:
    """What a handler reads or writes beyond its own event sources: resource names (keys of
    resources.*) in first-seen order, and the config kinds whose `iam()` it needs."""

    tables: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    kinds: list = field(default_factory=list)  # config specs with an iam() (analyser, embedder)
    opensearch: str = ""  # "read" or "write": the FAQ indexes on the domain (es:ESHttp*, opensearch-py)
    invoke_self: bool = False  # runs a part of its work asynchronously by invoking itself (lambda:InvokeFunction)

    def add(self, kind: str, name: str | None) -> None:
        items = getattr(self, kind)
        if name and name not in items:
            items.append(name)

    def statements(self) -> list[dict]:
        out: list[dict] = []
        for spec in self.kinds:
            for st in spec.iam():
                if st not in out:
                    out.append(st)
        return out


def _logs_needs(cfg: Config, needs: Needs) -> None:
    logs = cfg.pipelines.logs
    if logs is None:
        return
    needs.add("tables", logs.state.table)            # partials, shard cursors, progress
    needs.add("queues", logs.rejects_queue)          # undecodable records, with the reason


@dataclass(frozen=True)
class StreamShards:
    """The finaliser lists the source stream's shards (adapters/kinesis_shards.py): kinesis:ListShards on it."""

    stream: str

    def iam(self) -> list[dict]:
        arn = "arn:${AWS::Partition}:kinesis:${AWS::Region}:${AWS::AccountId}:stream/" + self.stream
        return [{"Sid": "ListStreamShards", "Effect": "Allow", "Action": "kinesis:ListShards",
                 "Resource": {"Fn::Sub": arn}}]


def _finaliser_needs(cfg: Config, needs: Needs) -> None:
    logs = cfg.pipelines.logs
    if logs is None:
        return
    ai, slack = logs.ai, logs.slack
    needs.add("tables", logs.state.table)            # partials, reports, cooldowns, budgets
    needs.kinds.append(StreamShards(logs.source_stream))  # ListShards: the watermark waits for unflushed shards
    needs.add("tables", ai.audit_table)
    needs.add("tables", slack.idempotency_table)
    needs.add("queues", slack.failure_queue)
    if ai.analyser.kind != "none":
        needs.add("secrets", ai.redaction_secret)
        needs.kinds.append(ai.analyser)
    needs.add("secrets", slack.webhook_secret)
    if slack.kind == "bot":
        needs.add("secrets", slack.token_secret)     # the bot token (threads live in the state table)


def _faq_needs(cfg: Config, needs: Needs) -> None:
    faq = cfg.pipelines.faq
    if faq is None:
        return
    needs.kinds.append(faq.embedder)
    needs.opensearch = "write"                       # the index itself is reached over HTTPS (SigV4 on AWS)


def _ask_needs(cfg: Config, needs: Needs) -> None:
    faq = cfg.pipelines.faq
    if faq is None:
        return
    needs.add("secrets", faq.slack_secret)           # the Slack signing secret and the bot token
    needs.kinds.append(faq.embedder)
    needs.opensearch = "read"                        # role-filtered retrieval
    needs.invoke_self = True                         # the answer is written by an asynchronous run of itself
    needs.add("tables", faq.slack_events_table)      # each Slack event id / signature claimed once
    if faq.analyser is not None:
        needs.kinds.append(faq.analyser)
        needs.add("tables", faq.budget_table)        # token and call budgets, reserved before each call
        needs.add("tables", faq.audit_table)         # one record per model call


def needs(cfg: Config, handler: str) -> Needs:
    """What the function with this handler touches: its module's COMPONENT says. A handler without one
    (the llama.cpp analyser: the model is in the image; a user's own handler) gets only the permissions
    of its event sources."""
    import importlib

    n = Needs()
    module_name = handler.rpartition(".")[0]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return n
    component = vars(module).get("COMPONENT")
    if isinstance(component, Component):
        component.needs(cfg, n)
    return n


# ------------------------------------------------------------------------------------ FAQ pipeline


def opensearch_client(loaded: LoadedConfig):
    from processors.adapters import aws
    from processors.adapters.opensearch import OpenSearchConfig, make_client

    spec = faq_pipeline(loaded.config).opensearch
    # SIEVE_OPENSEARCH_URL (set by the SAM template to the domain's endpoint) overrides the config's url
    url = os.environ.get("SIEVE_OPENSEARCH_URL") or spec.url
    auth = spec.auth
    if auth == "none" and _aws_domain(url):  # an OpenSearch Service domain endpoint: requests are SigV4-signed
        auth = "sigv4-es"
    if auth == "none":
        return make_client(OpenSearchConfig(hosts=(url,)))
    return make_client(OpenSearchConfig(hosts=(url,), aws_region=aws.region(loaded.config.region),
                                        aws_service="aoss" if auth == "sigv4-aoss" else "es"))


def _aws_domain(url: str) -> bool:
    """An Amazon OpenSearch Service endpoint (search-*/vpc-* .<region>.es.amazonaws.com); a local node or
    a self-managed cluster keeps the config's `auth` (a custom domain endpoint: set auth: sigv4-es)."""
    from urllib.parse import urlsplit

    host = (urlsplit(url if "://" in url else "https://" + url).hostname or "").lower()
    return host.endswith(".es.amazonaws.com") or host.endswith(".es.amazonaws.com.cn")


def faq_indexer(loaded: LoadedConfig, *, embedder=None, client=None):
    """The FAQ processor's use case: DynamoDB Streams records -> role indexes."""
    from processors.adapters.opensearch import OpenSearchFaqIndex
    from processors.core.faq_index import FaqIndexer, FaqRouting

    faq = faq_pipeline(loaded.config)
    if faq.opensearch.auth == "sigv4-aoss":
        raise ConfigError("pipelines.yaml", ["pipelines.faq.opensearch.auth: OpenSearch Serverless accepts no external "
                                             "versions; the FAQ processor needs them so that an older change never "
                                             "overwrites a newer one"])
    table = loaded.config.resources.tables.get(faq.table)
    try:
        index = OpenSearchFaqIndex(client or opensearch_client(loaded), faq.opensearch.index_prefix, list(faq.roles),
                                   faq.embedder.dimension)
    except ValueError as exc:
        raise ConfigError("pipelines.yaml", [f"pipelines.faq.roles: {exc}"]) from None
    routing = FaqRouting({k: list(v) for k, v in faq.roles.items()}, faq.role_attribute,
                         table.partition_key if table is not None else "id")
    return FaqIndexer(routing, embedder or faq.embedder.build(), index)


def faq_boundary(loaded: LoadedConfig, *, model_id: str = "", clock: Callable[[], float] = time.time):
    """pipelines.faq's AI boundary: budgets (DynamoDB when budget_table is set), audit records (DynamoDB
    when audit_table is set, else the log) and the question's redaction patterns (IP addresses kept)."""
    from processors.adapters import aws
    from processors.adapters.audit import DynamoDBAuditStore, LogAuditSink
    from processors.adapters.budget_store import DynamoDBBudgetStore
    from processors.core.answer import FaqBoundary
    from processors.core.budget import InMemoryBudgetLedger
    from processors.core.redact import patterns_from_config

    faq = faq_pipeline(loaded.config)
    region = aws.region(loaded.config.region)
    budget = (DynamoDBBudgetStore(faq.budget_table, client=aws.client("dynamodb", region), clock=clock)
              if faq.budget_table else InMemoryBudgetLedger())
    audit = DynamoDBAuditStore(faq.audit_table, client=aws.client("dynamodb", region)) if faq.audit_table else LogAuditSink()
    patterns = patterns_from_config(faq.redact.builtin, [p.model_dump() for p in faq.redact.extra_patterns])
    return FaqBoundary(budget, audit, clock, faq.budgets.to_core(), faq.budget_window_seconds, model_id,
                       tuple(p for p in patterns if p.name not in ("ipv4", "ipv6")), faq.audit_ttl_days)


def asker(loaded: LoadedConfig, *, embedder=None, client=None, analyser=None, no_model: bool = False,
          clock: Callable[[], float] = time.time):
    """The ask use case: role-filtered retrieval, then an answer with citations (or none), behind the
    FAQ's AI boundary (redaction, budgets, audit)."""
    from processors.adapters.opensearch import OpenSearchRetriever
    from processors.core.answer import Asker, RoleMap

    faq = faq_pipeline(loaded.config)
    if analyser is None and faq.analyser is not None and faq.analyser.kind != "none" and not no_model:
        analyser = faq.analyser.build()
    retriever = OpenSearchRetriever(client or opensearch_client(loaded), embedder or faq.embedder.build(),
                                    faq.opensearch.index_prefix, faq.roles)
    analyser = None if no_model else analyser
    boundary = None
    if analyser is not None:
        model_id = faq.analyser.model_id if faq.analyser is not None else getattr(analyser, "model_id", "")
        boundary = faq_boundary(loaded, model_id=model_id, clock=clock)
    roles = RoleMap(faq.default_role, dict(faq.slack_user_roles), tuple(faq.slack_usergroup_roles.items()),
                    dict(faq.slack_channel_roles))
    return Asker(retriever, analyser, faq.top_k, faq.min_score, dict(faq.slack_user_roles), faq.default_role,
                 boundary, roles)


def ask_app(loaded: LoadedConfig, *, secrets=None, lambda_client=None, **kwargs):
    """The Slack side of the ask use case: a slack-bolt app (processors/adapters/slack_app.py) for the
    slash command and @mentions. Signing secret and bot token from Secrets Manager (SLACK_BOT_TOKEN and
    SLACK_API_URL override the token and the Web API locally); event claims in slack_events_table."""
    from processors.adapters import aws
    from processors.adapters.slack_app import DynamoClaims, FaqSlackApp, MemoryClaims

    faq = faq_pipeline(loaded.config)
    secrets = secrets or aws.Secrets()
    claims = (DynamoClaims(faq.slack_events_table, client=aws.client("dynamodb", aws.region(loaded.config.region)))
              if faq.slack_events_table else MemoryClaims())
    return FaqSlackApp(
        asker(loaded, **kwargs), signing_secret=secrets.get(faq.slack_secret, faq.slack_signing_key),
        bot_token=lambda: os.environ.get("SLACK_BOT_TOKEN") or secrets.get(faq.slack_secret, faq.slack_bot_token_key),
        api_url=os.environ.get("SLACK_API_URL") or faq.slack_api_url, command=faq.slack_command, claims=claims,
        group_cache_seconds=faq.slack_usergroup_cache_seconds, lambda_client=lambda_client)


# ------------------------------------------------------------------------------------ FAQ crawler


@dataclass
class FaqCrawlerApp:
    """What the scheduled FAQ crawler holds per container: the use case and the sources it crawls."""

    crawler: object  # core.crawl.Crawler
    sources: list  # core.crawl.CrawlSource, in pipelines.yaml order
    store: object  # adapters.faq_table.DynamoFaqTable


def faq_crawler(loaded: LoadedConfig, *, fetcher=None, store=None, clock: Callable[[], float] = time.monotonic,
                sources=None) -> FaqCrawlerApp:
    """The FAQ crawler's use case: pipelines.faq.sources -> pages -> conditional writes to the FAQ table."""
    from datetime import datetime, timezone

    from processors.adapters import aws
    from processors.adapters.faq_table import DynamoFaqTable
    from processors.adapters.web import HttpFetcher
    from processors.core.crawl import Crawler

    faq = faq_pipeline(loaded.config)
    table = loaded.config.resources.tables.get(faq.table)
    id_attribute = table.partition_key if table is not None else "id"
    store = store or DynamoFaqTable(faq.table, client=aws.client("dynamodb", aws.region(loaded.config.region)),
                                    id_attribute=id_attribute)
    crawler = Crawler(fetcher or HttpFetcher(clock=clock), store, clock=clock, id_attribute=id_attribute,
                      now_iso=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return FaqCrawlerApp(crawler, list(sources) if sources is not None else [s.to_core() for s in faq.sources], store)


def _faq_crawler_needs(cfg: Config, needs: Needs) -> None:
    faq = cfg.pipelines.faq
    if faq is None:
        return
    needs.add("tables", faq.table)                   # reads what a source holds, writes and deletes entries


# ------------------------------------------------------------------------------------ Slack interactivity


@dataclass
class SlackActionsApp:
    """What the Slack interactivity handler holds per container: where acks and mutes go, the signing
    secret, how the clicked message is answered (a response_url post) and how long an ack is kept."""

    store: object  # adapters.state_store.StateStore: put_ack, put_mute
    signing_secret: Callable[[], str]
    respond: Callable[[str, dict], int]
    ack_ttl_seconds: int = 86400


def slack_actions_app(loaded: LoadedConfig, *, secrets=None, store=None, respond=None) -> SlackActionsApp:
    """Acknowledge / Mute clicks on incident threads (notifier kind `bot`) -> the state table."""
    from processors.adapters import aws
    from processors.adapters.slack import post_to_response_url

    slack = logs_pipeline(loaded.config).slack
    if slack.kind != "bot":
        raise ConfigError("pipelines.yaml", ["pipelines.logs.slack.kind: the Slack interactivity endpoint needs "
                                             "kind: bot (an incoming webhook has no buttons)"])
    secrets = secrets or aws.Secrets()
    return SlackActionsApp(store or state_store(loaded), lambda: secrets.get(slack.signing, slack.signing_key),
                           respond or post_to_response_url, slack.incident_gap_seconds + 86400)


def _slack_actions_needs(cfg: Config, needs: Needs) -> None:
    logs = cfg.pipelines.logs
    if logs is None or logs.slack.kind != "bot":
        return
    needs.add("tables", logs.state.table)            # acks and mutes
    needs.add("secrets", logs.slack.signing)         # the Slack signing secret


LOGS: Component = Component(logs_ingest, _logs_needs)
FINALISER: Component = Component(finaliser, _finaliser_needs)
FAQ: Component = Component(faq_indexer, _faq_needs)
ASK: Component = Component(ask_app, _ask_needs)
FAQ_CRAWLER: Component = Component(faq_crawler, _faq_crawler_needs)
SLACK_ACTIONS: Component = Component(slack_actions_app, _slack_actions_needs)
