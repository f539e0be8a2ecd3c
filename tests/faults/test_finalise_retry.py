"""Regression (found by the fault harness): a Slack post that must be retried later (another worker is
posting the same message: a runner killed mid-post left its idempotency record in progress) raised out of
`Finaliser.run`, so no other window of any rule was finalised in that run, and `sieve run` itself stopped
(the scheduled finaliser's exception ended its loop, and with it the event source mapping). Now that
window stays open, the rule's later windows wait for it, and the other rules go on."""

from __future__ import annotations

import boto3

from processors import wiring
from processors.adapters.slack import SlackDeliveryInProgress
from processors.adapters.state_store import StateStore
from processors.runtime.slack_receiver import SlackReceiver
from tests.pipeline.conftest import local_notifier, make_stack  # noqa: F401 - fixture
from tests.pipeline.test_logs_e2e import run_all


class StuckFor:
    """The production notifier, except that posts for `rule` meet a post in progress elsewhere (what the
    notifier raises when Powertools finds the idempotency record INPROGRESS)."""

    def __init__(self, inner, rule: str):
        self.inner, self.rule, self.stuck = inner, rule, True

    def post_report(self, report, *, max_rows: int = 10):
        if self.stuck and report.rule == self.rule:
            raise SlackDeliveryInProgress(f"slack notifier: {report.rule!r} is being posted by another worker",
                                          idempotency_key=report.rule, retryable=True)
        return self.inner.post_report(report, max_rows=max_rows)

    def bind_invocation(self, context) -> None:
        self.inner.bind_invocation(context)


def test_a_post_in_progress_holds_only_its_rule_and_the_run_goes_on(make_stack):  # noqa: F811
    stack = make_stack()
    # two windows (10:00, 10:01) in which both rules select something new (other keys: no cooldown)
    line = '192.0.2.{m} - - [04/Mar/2024:10:0{m}:{s:02d} +0000] "GET /broken{m} HTTP/1.1" {st} 1 "-" "ua"'
    records = [{"Data": line.format(m=m, s=s, st=st).encode(), "PartitionKey": f"{m}{s}{st}"}
               for m in (0, 1) for s in range(25) for st in (500, 404)]
    for i in range(0, len(records), 500):
        boto3.client("kinesis").put_records(StreamName="sieve-access-logs", Records=records[i:i + 500])
    run_all(stack)
    with SlackReceiver() as receiver:
        notifier = StuckFor(local_notifier(receiver.url), "errors-by-path")
        rt = wiring.finaliser(stack.loaded(), notifier=notifier)
        first = rt.run(flush=True)  # before the fix: SlackDeliveryInProgress out of run()
        assert [(w["rule"], w["delivery"]) for w in first["finalised"]] == [
            ("404-by-client", "posted"), ("404-by-client", "posted")]
        assert [r["rule"] for r in first["retry_later"]] == ["errors-by-path"]
        assert first["deferred"] == 1  # 10:01 of errors-by-path waits for 10:00
        store = StateStore("sieve-state")
        assert store.open_windows("errors-by-path") == [1709546400, 1709546460]
        assert store.open_windows("404-by-client") == []
        assert len(receiver.accepted) == 2

        notifier.stuck = False  # the other worker's record expired: the next run posts them, once each
        second = rt.run(flush=True)
        assert [(w["rule"], w["delivery"]) for w in second["finalised"]] == [
            ("errors-by-path", "posted"), ("errors-by-path", "posted")]
        assert second["retry_later"] == [] and store.open_windows("errors-by-path") == []
        assert len(receiver.accepted) == 4
