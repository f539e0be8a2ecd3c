"""The window finaliser (a scheduled Lambda in AWS; `sieve run` invokes it locally).

For every (rule, window) that has partials and is closed (event time of the slowest active shard
is past window end + allowed lateness; or `{"sieve": {"flush": true}}`, end of stream):

  partials of all shards -> exact merged top-N (ties by key) -> selection (thresholds, new vs
  known, cooldown) -> the AI boundary (digest, redaction, budget, validated answer, audit) ->
  one Slack message (idempotent on rule + window + digest hash) -> the report, stored once.

A window with nothing selected is stored but not posted. Partials that arrive after their window
was finalised are counted on the stored report as late (`late_events`), never dropped silently.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities import parameters

from processors.adapters import aws
from processors.adapters.state_store import StateStore
from processors.config import LoadedConfig
from processors.core.aggregate import WindowAggregate, merge
from processors.core.boundary import BoundaryConfig, ModelPrice, analyse_window
from processors.core.budget import BudgetConfig
from processors.core.digest import DigestConfig
from processors.core.records import outcome_to_dict, report_from_dict, report_to_dict, selected_to_dict
from processors.core.redact import patterns_from_config
from processors.core.samples import Samples
from processors.core.select import LastSelected, SelectionConfig, SelectionHistory, remember, select_groups
from processors.core.types import AnalysisOutcome, Window, WindowReport
from processors.handlers.container import PerContainer

logger = Logger(service="sieve-finaliser", logger_handler=None)

#: a shard whose progress has not moved for this long (wall clock) no longer holds the watermark back
IDLE_SHARD_SECONDS = 300


@dataclass
class FinaliserRuntime:
    loaded: LoadedConfig
    store: StateStore
    selection: SelectionConfig
    boundary: BoundaryConfig
    analyser: Any
    budget: Any
    audit: Any
    notifier: Any
    clock: Callable[[], float] = time.time

    @property
    def logs(self):
        return self.loaded.config.pipelines.logs

    @classmethod
    def from_config(cls, loaded: LoadedConfig, *, notifier=None, analyser=None, clock=time.time) -> "FinaliserRuntime":
        from processors.adapters.audit import DynamoDBAuditStore
        from processors.adapters.budget_store import DynamoDBBudgetStore

        cfg = loaded.config
        logs = cfg.pipelines.logs
        if logs is None:
            raise RuntimeError("pipelines.logs is not configured")
        selection = selection_config(logs)
        enabled = logs.ai.analyser.kind != "none"
        secret = _redaction_secret(logs.ai.redaction_secret) if enabled else b"disabled-analysis-no-key"
        boundary = boundary_config(logs, secret)
        ai = logs.ai
        region = aws.region(cfg.region)
        budget = DynamoDBBudgetStore(logs.state.table, client=aws.client("dynamodb", region), clock=clock)
        audit = DynamoDBAuditStore(ai.audit_table, client=aws.client("dynamodb", region)) if ai.audit_table else _LogAudit()
        if notifier is None:
            notifier = _notifier(loaded)
        if analyser is None and enabled:
            analyser = make_analyser(ai.analyser)
        return cls(loaded, StateStore(logs.state.table, ttl_days=logs.state.ttl_days), selection, boundary,
                   analyser, budget, audit, notifier, clock)


def selection_config(logs) -> SelectionConfig:
    """pipelines.logs.selection -> the core's SelectionConfig."""
    sel = logs.selection
    return SelectionConfig(
        min_count=sel.min_count, min_share=sel.min_share, status_key=sel.status_key,
        status_classes=tuple(sel.status_classes), new_within_windows=sel.new_within_windows,
        only_new=sel.only_new, cooldown_seconds=sel.cooldown_seconds,
        cooldown_growth_factor=sel.cooldown_growth_factor, max_groups=sel.max_groups,
    )


def boundary_config(logs, redaction_secret: bytes) -> BoundaryConfig:
    """pipelines.logs.ai -> the core's BoundaryConfig (the secret is read by the caller)."""
    ai = logs.ai
    b = ai.budgets
    return BoundaryConfig(
        model_id=ai.analyser.model_id, redaction_secret=redaction_secret, language=ai.language,
        enabled=ai.analyser.kind != "none",
        digest=DigestConfig(samples_per_group=ai.samples_per_group),
        budget=BudgetConfig(tokens_per_call=b.tokens_per_call, calls_per_window=b.calls_per_window,
                            tokens_per_day=b.tokens_per_day, max_output_tokens=b.max_output_tokens),
        prices={m: ModelPrice(p.input_per_1k, p.output_per_1k) for m, p in ai.prices.items()},
        patterns=patterns_from_config(ai.redact.builtin, [p.model_dump() for p in ai.redact.extra_patterns]),
        audit_ttl_days=ai.audit_ttl_days,
    )


class _LogAudit:
    """Audit sink when no audit table is configured: the record goes to the log (already redacted)."""

    def record(self, record) -> None:
        logger.info("model call", extra={"audit_id": record.audit_id, "status": record.status,
                                         "prompt_sha256": record.prompt_sha256, "tokens_in": record.tokens_in})


def _redaction_secret(name: str | None) -> bytes:
    if not name:
        raise RuntimeError("pipelines.logs.ai.redaction_secret is required when an analyser is configured")
    value = parameters.get_secret(name, max_age=300)
    if isinstance(value, bytes):
        return value
    try:
        doc = json.loads(value)
        if isinstance(doc, dict):
            value = doc.get("key") or ""
    except ValueError:
        pass
    return str(value).encode()


def make_analyser(spec):
    if spec.kind == "bedrock":
        from processors.adapters.bedrock import BedrockConverseAnalyser
        from botocore.config import Config as BotoConfig

        kw = {"endpoint_url": spec.endpoint_url} if spec.endpoint_url else {}
        client = aws.client("bedrock-runtime", config=BotoConfig(read_timeout=spec.timeout_seconds, connect_timeout=5,
                                                                 retries={"mode": "standard", "max_attempts": 2}), **kw)
        return BedrockConverseAnalyser(spec.model_id, client=client, timeout_s=spec.timeout_seconds,
                                       schema_mode=spec.schema_mode)
    if spec.kind == "llama_lambda":
        from processors.adapters.llama import LambdaInvokeAnalyser

        inprocess = spec.function_name == "inprocess"
        return LambdaInvokeAnalyser(spec.function_name if not inprocess else "sieve-llama",
                                    mode="inprocess" if inprocess else "aws", timeout_s=spec.timeout_seconds)
    if spec.kind == "opensearch":
        from processors.adapters.mlcommons import MLCommons, MLCommonsAnalyser
        from processors.adapters.opensearch import make_client

        client = make_client({"hosts": [spec.opensearch_url], "timeout": spec.timeout_seconds})
        return MLCommonsAnalyser(MLCommons(client, task_timeout=spec.timeout_seconds), spec.model_id,
                                 model_name=spec.model_id)
    raise ValueError(f"unknown analyser kind {spec.kind!r}")


def _notifier(loaded: LoadedConfig):
    from processors.adapters.slack import SlackWebhookNotifier

    slack = loaded.config.pipelines.logs.slack
    region = aws.region(loaded.config.region)
    queue_url = None
    if slack.failure_queue:
        queue_url = aws.client("sqs", region).get_queue_url(QueueName=slack.failure_queue)["QueueUrl"]
    url = os.environ.get("SLACK_WEBHOOK_URL")
    return SlackWebhookNotifier(
        webhook_url=url or None, secret_id=None if url else slack.webhook_secret, secret_key=slack.webhook_key,
        idempotency_table=slack.idempotency_table, failure_queue_url=queue_url,
        dynamodb_client=aws.client("dynamodb", region), sqs_client=aws.client("sqs", region),
    )


_runtime: PerContainer[FinaliserRuntime] = PerContainer(FinaliserRuntime.from_config)


def runtime() -> FinaliserRuntime:
    return _runtime.get()


def reset_runtime(rt: FinaliserRuntime | None = None) -> None:
    _runtime.reset(rt)


def handler(event: dict, context: Any) -> dict:
    rt = runtime()
    if context is not None and hasattr(rt.notifier, "register_lambda_context"):
        rt.notifier.register_lambda_context(context)
    flush = bool(((event or {}).get("sieve") or {}).get("flush"))
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return finalise(rt, flush=flush, time_left_ms=remaining)


def watermark_ms(progress: dict[str, dict], now: float) -> int | None:
    """Event time all active shards have flushed up to: the slowest shard that moved recently."""
    active = [p["max_event_ms"] for p in progress.values() if now - p["updated_at"] <= IDLE_SHARD_SECONDS]
    if not active:
        active = [p["max_event_ms"] for p in progress.values()]
    return min(active) if active else None


#: stop taking new windows when less than this is left of the invocation (a model call can take a while);
#: the rest stay open and the next scheduled run takes them
RESERVE_MS = 90_000


def finalise(rt: FinaliserRuntime, *, flush: bool = False, time_left_ms: Callable[[], int] | None = None) -> dict:
    logs = rt.logs
    now = rt.clock()
    wm = watermark_ms(rt.store.progress_detail(), now)
    done: list[dict] = []
    deferred = 0
    closed_windows = []
    for rule in rt.loaded.rules:
        for start in sorted(rt.store.open_windows(rule.name)):
            w = Window(start, start + logs.window.period_seconds)
            if flush or (wm is not None and wm / 1000 >= w.end + logs.window.allowed_lateness_seconds):
                closed_windows.append((w.start, rule.name, w))
    for _, rule_name, w in sorted(closed_windows):  # oldest first, across rules
        if time_left_ms is not None and time_left_ms() < RESERVE_MS:
            deferred += 1
            continue
        done.append(finalise_window(rt, rule_name, w))
    if deferred:
        logger.warning("windows left for the next run: not enough time left in this invocation",
                       extra={"deferred": deferred})
    return {"finalised": done, "watermark_ms": wm, "deferred": deferred}


def finalise_window(rt: FinaliserRuntime, rule: str, w: Window) -> dict:
    logs = rt.logs
    partials = rt.store.partials(rule, w.start)
    aggs = [WindowAggregate.from_bytes(p.blob) for p in partials]
    report = merge(aggs, top=logs.top_n)
    existing = rt.store.report(rule, w.start)
    if existing is not None:
        # Partials that arrived after this window was finalised: count them, never drop them.
        late = report.sample_count - int(existing["topn"]["sample_count"])
        rt.store.update_report(rule, w.start, late_events=max(late, 0), late_partials=len(partials))
        rt.store.close_window(rule, w.start)
        logger.warning("late partials for a finalised window", extra={"rule": rule, "window": w.key, "late_events": late})
        return {"rule": rule, "window": w.key, "status": "late", "late_events": late}

    samples = Samples(rt.boundary.digest.samples_per_group)
    for p in partials:
        samples.merge(Samples.from_json(p.samples, samples.k))
    previous = tuple(report_from_dict(r["topn"]) for r in rt.store.reports(rule, before=w.start,
                                                                           limit=max(1, rt.selection.new_within_windows)))
    last = {tuple(json.loads(k)): LastSelected(int(v["at"]), float(v["value"]))
            for k, v in rt.store.last_selected(rule).items()}
    selection = select_groups(report, rt.selection, SelectionHistory(previous, last),
                              samples={k: samples.lines(k) for k in samples.by_key})
    outcome = analyse_window(report, selection.selected, rt.boundary, rt.analyser, rt.budget, rt.audit, rt.clock)

    delivery = "skipped: nothing selected"
    payload = None
    if selection.selected:
        from processors.core.slack_blocks import render

        wr = slack_safe(WindowReport(rule=rule, window=w, topn=report, selected=selection.selected, outcome=outcome),
                        rt.boundary)
        payload = render(wr, max_rows=logs.top_n)
        try:
            d = rt.notifier.post_report(wr, max_rows=logs.top_n)
            delivery = d.status
        except Exception as exc:  # the notifier dead-letters what it could not post
            retryable = getattr(exc, "retryable", True)
            if getattr(exc, "dead_lettered", False) or not retryable:
                delivery = f"failed: {type(exc).__name__} (sent to the failure queue)" if getattr(exc, "dead_lettered", False) \
                    else f"failed: {type(exc).__name__}"
            else:
                raise  # leave the window open; the next run retries it
        updated = remember(selection, {k: v for k, v in last.items()}, w.end)
        rt.store.mark_selected(rule, [(json.dumps(list(k)), v.value, v.at) for k, v in updated.items()
                                      if k in set(selection.selected_keys())])
    body = {
        "topn": report_to_dict(report),
        "selected": [selected_to_dict(g) for g in selection.selected],
        "not_selected": [{"keys": n.keys, "value": n.value, "reasons": list(n.reasons)} for n in selection.not_selected[:50]],
        "outcome": outcome_to_dict(outcome),
        "delivery": delivery,
        "finalised_at": int(time.time()),
    }
    rt.store.put_report(rule, w.start, _ddb_safe(body))
    rt.store.close_window(rule, w.start)
    logger.info("window finalised", extra={"rule": rule, "window": w.key, "selected": len(selection.selected),
                                           "analysis": outcome.status, "delivery": delivery})
    return {"rule": rule, "window": w.key, "status": outcome.status, "selected": len(selection.selected),
            "delivery": delivery, "payload": payload, "report": body}


def slack_safe(wr: WindowReport, boundary: BoundaryConfig) -> WindowReport:
    """Computed keys come from log text (paths with tokens in them, say): apply the secret patterns
    before they reach Slack. Client addresses stay as they are: which client did it is a computed
    fact the on-call engineer needs, and Slack is inside the trust boundary; the model is not."""
    import dataclasses

    from processors.core.redact import Redactor
    from processors.core.types import Contributor

    patterns = tuple(p for p in boundary.patterns if p.name not in ("ipv4", "ipv6"))
    red = Redactor(b"slack-view-no-pseudonyms-needed", patterns)

    def clean(v: str) -> str:
        return red.redact(str(v)).text

    topn = dataclasses.replace(wr.topn, contributors=tuple(
        Contributor(tuple(clean(k) for k in c.keys), c.value) for c in wr.topn.contributors))
    selected = tuple(dataclasses.replace(g, keys={k: clean(v) for k, v in g.keys.items()}, samples=())
                     for g in wr.selected)
    return dataclasses.replace(wr, topn=topn, selected=selected)


def _ddb_safe(obj):
    """DynamoDB wants Decimals, not floats."""
    from decimal import Decimal

    if isinstance(obj, float):
        return Decimal(repr(obj))
    if isinstance(obj, dict):
        return {k: _ddb_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_ddb_safe(v) for v in obj]
    return obj


def outcome_summary(o: AnalysisOutcome) -> str:
    return f"{o.status} ({o.reason})" if o.reason else o.status
