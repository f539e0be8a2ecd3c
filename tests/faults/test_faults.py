"""The fault-injection harness, reduced (bench/bench_faults.py is the full run): the real local stack (a moto
server behind a fault proxy, two `sieve run` children SIGKILLed and restarted, the handlers, the finaliser,
the shared OpenSearch node behind a proxy that refuses connections for a while, the local bedrock-runtime
endpoint with a scripted model that answers garbage or is killed mid-answer, a local Slack receiver that
answers 429 / 500 or hangs past the timeout), a seeded workload with ground truth, then a drain and the
checks: nothing lost, nothing counted twice, no window posted twice, no FAQ entry in an index its role may
not see, no planted secret in a prompt, an audit record, a Slack payload or a log.

Costs ~90-120 s on 2 shared cores (most of it the runners' restarts and the drain)."""

from __future__ import annotations

import pytest

from bench.faults.harness import SECRETS, Scenario, problems, run, table
from tests.opensearch.conftest import opensearch_url  # noqa: F401 - fixture: the shared node is up


@pytest.fixture(scope="module")
def result(moto_endpoint, opensearch_url, tmp_path_factory):  # noqa: F811
    sc = Scenario(seed=1414, lines=1200, duration=240, faq_entries=24, fault_seconds=35, slack_faults=3,
                  kill_every=(12.0, 25.0), opensearch_outages=2, spare_posts=True, min_model_requests=2,
                  drain_timeout=240,
                  moto_endpoint=moto_endpoint, work_dir=str(tmp_path_factory.mktemp("faults")))
    r = run(sc)
    print(table(r))
    return r


def test_every_promise_holds_after_repeated_faults(result):
    assert problems(result) == []
    rec = result["records"]
    assert rec["pushed"] == rec["counted"] > 1000
    assert result["windows"]["selected"] >= 3 and result["faq"]["expected"] >= 10


def test_each_kind_of_fault_happened(result):
    f, aws = result["faults"], result["aws_faults"]
    assert f.get("runner_sigkill_logs", 0) >= 1
    assert f.get("opensearch_outage", 0) >= 1 and result["opensearch_proxy"].get("refused", 0) >= 1
    kinds = {k.split(":")[1] for k in aws}
    assert {"throttle", "error5xx", "expired_iterator"} <= kinds, aws
    assert any(k.startswith("Kinesis.PutRecords:") for k in aws) and any(k.startswith("DynamoDB.") for k in aws)
    assert f.get("slack_429", 0) + f.get("slack_500", 0) + f.get("slack_hang", 0) >= 2
    assert f.get("model_garbage", 0) + f.get("model_sigkill_mid_answer", 0) >= 1, f


def test_planted_secrets_reached_the_pipeline(result):
    """The secrets check means something only if the planted lines were counted, selected and sent on."""
    sec = result["secrets"]
    assert sec["planted"] == len(SECRETS) and sec["model_requests"] >= 1 and sec["slack_requests"] >= 1
    planted = [w for w in result["window_outcomes"] if w["window"] == 1709546340 and w["rule"] == "errors-by-path"]
    assert planted and planted[0]["selected"] == 3
