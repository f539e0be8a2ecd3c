"""The finalise use case: closed windows -> merged top-N -> selection -> AI boundary -> Slack -> report.

For every (rule, window) that has partials and is closed (the watermark of the active shards is past
window end + allowed lateness; or `flush`, the end of a stream). The watermark also waits for every open
shard of the stream that has flushed nothing yet (ShardLister; core/watermark.py), for at most
`idle_shard_seconds` after the finaliser first saw it:

    partials of all shards -> exact merged top-N (ties by key) -> selection (thresholds, new vs
    known, cooldown) -> explanation of each selected group (core/explain.py: contrast facts from the
    partials' dimension counters, the onset from their sub-window buckets, the change against the
    earlier windows' stored top-N) -> the AI boundary (digest, redaction, budget, validated answer,
    audit) -> one Slack message (idempotent on rule + window + digest hash) -> the report, stored once.

A window with nothing selected is stored but not posted. Partials that arrive after their window was
finalised are counted on the stored report (`late_events`) and the window is not posted again.
A notification that failed but may succeed later leaves the window open (the next run retries it);
one that cannot succeed, or went to the failure destination, is recorded in the report.

Everything outside this module is reached through ports: WindowStore, Analyser, BudgetLedger,
AuditSink, Notifier; the clock is injected.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from processors.core.aggregate import WindowAggregate, merge
from processors.core.boundary import BoundaryConfig, analyse_window
from processors.core.explain import ExplainConfig, explain_selected
from processors.core.incidents import apply_mutes
from processors.core.records import outcome_to_dict, report_to_dict, selected_to_dict
from processors.core.samples import Samples
from processors.core.screen import screen_group
from processors.core.surfaces import ForPeople
from processors.core.select import SelectionConfig, SelectionHistory, remember, select_groups
from processors.core.slack_blocks import render
from processors.core.types import Contributor, ShardProgress, Window, WindowReport
from processors.core.watermark import IDLE_SHARD_SECONDS, Watermark, unregistered
from processors.ports import (Analyser, AuditSink, BudgetLedger, NotificationFailed, Notifier, ShardLister,
                              TransientFailure, WindowStore)

log = logging.getLogger("sieve.finalise")

#: stop taking new windows when less than this is left of the invocation (a model call can take a while);
#: the rest stay open and the next scheduled run takes them
RESERVE_MS = 90_000


@dataclass(frozen=True, slots=True)
class FinaliseConfig:
    rules: tuple[str, ...]  # rule names, in pipelines.yaml order
    period: int
    allowed_lateness: int
    top_n: int
    selection: SelectionConfig
    boundary: BoundaryConfig
    explain: ExplainConfig = ExplainConfig()
    idle_shard_seconds: int = IDLE_SHARD_SECONDS  # a shard that has not moved (or flushed nothing) for this long stops holding


def slack_safe(wr: WindowReport, boundary: BoundaryConfig) -> WindowReport:
    """What people read passes the secret patterns first (core/surfaces.py, the same function the terminal
    uses): computed keys come from log text (paths with tokens in them), and the model's text may quote
    it. Client addresses stay as they are: which client did it is a computed fact the on-call engineer
    needs, and Slack is inside the trust boundary; the model is not. Sample lines are never shown."""
    view = ForPeople(boundary.patterns)
    topn = dataclasses.replace(wr.topn, contributors=tuple(
        Contributor(tuple(view(k) for k in c.keys), c.value) for c in wr.topn.contributors))
    selected = tuple(dataclasses.replace(g, keys={k: view(v) for k, v in g.keys.items()}, samples=(),
                                         contrast=tuple(dataclasses.replace(c, value=view(c.value)) for c in g.contrast))
                     for g in wr.selected)
    o = wr.outcome
    analysis = o.analysis and dataclasses.replace(
        o.analysis, likely_cause=view(o.analysis.likely_cause), evidence=tuple(view(e) for e in o.analysis.evidence),
        next_checks=tuple(view(c) for c in o.analysis.next_checks))
    outcome = dataclasses.replace(o, analysis=analysis, reason=view(o.reason))
    return dataclasses.replace(wr, topn=topn, selected=selected, outcome=outcome)


class Finaliser:
    def __init__(self, config: FinaliseConfig, store: WindowStore, *, analyser: Analyser | None, budget: BudgetLedger,
                 audit: AuditSink, notifier: Notifier, clock: Callable[[], float], shards: ShardLister | None = None):
        self.config = config
        self.shards = shards  # None: the watermark goes by the shards that have flushed (no stream to list)
        self.store = store
        self.analyser = analyser
        self.budget = budget
        self.audit = audit
        self.notifier = notifier
        self.clock = clock

    def run(self, *, flush: bool = False, time_left_ms: Callable[[], int] | None = None) -> dict:
        """Finalise every closed window, oldest first across rules, while time is left."""
        cfg = self.config
        wm = self.watermark(listed=not flush)
        closed = []
        for rule in cfg.rules:
            for start in sorted(self.store.open_windows(rule)):
                w = Window(start, start + cfg.period)
                if flush or wm.closes(w, cfg.allowed_lateness):
                    closed.append((w.start, rule, w))
        done: list[dict] = []
        retry_later: list[dict] = []
        blocked: set[str] = set()  # rules with a window whose post is to be retried
        deferred = 0
        for _, rule, w in sorted(closed):
            if rule in blocked or (time_left_ms is not None and time_left_ms() < RESERVE_MS):
                deferred += 1
                continue
            try:
                done.append(self.finalise_window(rule, w))
            except NotificationFailed as exc:
                # Only a post that may succeed later gets here; its window stays open for the next run. The
                # rule's later windows wait for it (selection history and cooldowns go in window order); the
                # other rules' windows go on, so one stuck post never holds up every rule.
                blocked.add(rule)
                retry_later.append({"rule": rule, "window": w.key, "error": str(exc)[:300]})
                log.warning("window left open: its Slack post is to be retried",
                            extra={"rule": rule, "window": w.key, "error": str(exc)[:300]})
        if deferred:
            log.warning("windows left for the next run: not enough time left in this invocation, or an earlier "
                        "window of the same rule is to be posted first", extra={"deferred": deferred})
        return {"finalised": done, "watermark_ms": wm.event_ms, "waiting_for": list(wm.waiting_for), "deferred": deferred,
                "retry_later": retry_later}

    def watermark(self, *, listed: bool = True) -> Watermark:
        """The stream's watermark now. With `listed` (and a ShardLister), every open shard of the stream the state
        table knows nothing about is first registered as "nothing flushed yet, first seen now", so that it holds
        the windows open until its first flush, or for idle_shard_seconds, across invocations. A stream that
        cannot be listed (or a table that will not take the records) leaves the watermark to the shards that
        have flushed, as it was before, with a warning: that never fails the run."""
        now = self.clock()
        progress = self.store.shard_progress()
        if listed and self.shards is not None:
            try:
                shards = self.shards.shards()
            except Exception as exc:  # noqa: BLE001 - listing is a safeguard; without it the run goes on as before
                shards = None
                log.warning("the stream's shards could not be listed: the watermark waits only for shards that "
                            "have flushed", extra={"error": f"{type(exc).__name__}: {str(exc)[:300]}"})
            missing = unregistered(shards or (), progress)
            if missing:
                try:
                    self.store.register_shards(missing, int(now))
                    progress = {**progress, **{s: ShardProgress(None, int(now)) for s in missing}}
                except TransientFailure as exc:
                    log.warning("shards that have flushed nothing yet could not be registered: the watermark does "
                                "not wait for them in this run", extra={"shards": missing, "error": str(exc)[:300]})
        wm = Watermark.of(progress, now, idle_seconds=self.config.idle_shard_seconds)
        if wm.waiting_for:
            log.info("windows held open: shards that have flushed nothing yet",
                     extra={"shards": list(wm.waiting_for), "idle_seconds": self.config.idle_shard_seconds})
        return wm

    def finalise_window(self, rule: str, w: Window) -> dict:
        cfg, store = self.config, self.store
        partials = store.partials(rule, w.start)
        aggs = [WindowAggregate.from_bytes(p.blob) for p in partials]
        report = merge(aggs, top=cfg.top_n)
        existing = store.stored_report(rule, w.start)
        if existing is not None:
            # Partials that arrived after this window was finalised: count them, never drop them.
            late = report.sample_count - existing.topn.sample_count
            store.mark_late(rule, w.start, late_events=max(late, 0), late_partials=len(partials))
            store.close_window(rule, w.start)
            log.warning("late partials for a finalised window", extra={"rule": rule, "window": w.key, "late_events": late})
            return {"rule": rule, "window": w.key, "status": "late", "late_events": late}

        samples = Samples(cfg.boundary.digest.samples_per_group)
        for p in partials:
            samples.merge(Samples.from_json(p.samples, samples.k))
        history = max(1, cfg.selection.new_within_windows, cfg.explain.change_windows if cfg.explain.enabled else 0)
        previous = tuple(store.previous_reports(rule, before=w.start, limit=history))
        last = store.last_selected(rule)
        selection = select_groups(report, cfg.selection, SelectionHistory(previous, last),
                                  samples={k: samples.lines(k) for k in samples.by_key})
        selection = apply_mutes(selection, store.mutes(rule), self.clock())  # a muted incident is not posted
        explained = explain_selected(selection.selected, [a.explain for a in aggs], previous, cfg.explain)
        selected = tuple(screen_group(g) for g in explained)  # log text addressed to a model stops here
        outcome = analyse_window(report, selected, cfg.boundary, self.analyser, self.budget, self.audit, self.clock)

        delivery = "skipped: nothing selected"
        payload = None
        if selection.selected:
            wr = slack_safe(WindowReport(rule=rule, window=w, topn=report, selected=selected, outcome=outcome),
                            cfg.boundary)
            payload = render(wr, max_rows=cfg.top_n)
            try:
                delivery = self.notifier.post_report(wr, max_rows=cfg.top_n).status
            except NotificationFailed as exc:
                if exc.dead_lettered:
                    delivery = f"failed: {type(exc).__name__} (sent to the failure queue)"
                elif not exc.retryable:
                    delivery = f"failed: {type(exc).__name__}"
                else:
                    raise  # leave the window open; the next run retries it
            chosen = set(selection.selected_keys())
            updated = remember(selection, last, w.end)
            store.mark_selected(rule, {k: v for k, v in updated.items() if k in chosen})
        document = {
            "topn": report_to_dict(report),
            "selected": [selected_to_dict(g) for g in selected],
            "not_selected": [{"keys": n.keys, "value": n.value, "reasons": list(n.reasons)}
                             for n in selection.not_selected[:50]],
            "outcome": outcome_to_dict(outcome),
            "delivery": delivery,
            "finalised_at": int(self.clock()),
        }
        store.put_report(rule, w.start, document)
        store.close_window(rule, w.start)
        log.info("window finalised", extra={"rule": rule, "window": w.key, "selected": len(selection.selected),
                                            "analysis": outcome.status, "delivery": delivery})
        return {"rule": rule, "window": w.key, "status": outcome.status, "selected": len(selection.selected),
                "delivery": delivery, "payload": payload, "report": document}

