"""Found by the fault harness, then fixed: a vendor-prefixed secret key standing alone in a URL path (no
`api_key=` name before it) reached the model's digest, the audit record and the Slack message (now the
built-in `vendor-key` redaction kind); and a scheduled function that failed ended `sieve run`, and with it
the event source mappings (now reported and counted, and the next schedule runs); and the watermark did not
wait for a shard that had flushed nothing yet (now it does, for at most the idle time)."""

from __future__ import annotations

from processors.core.redact import DEFAULT_PATTERNS, Redactor
from processors.core.surfaces import ForPeople
from tests.pipeline.conftest import make_stack  # noqa: F401 - fixture

KEY = "sk_live_51H8xYzAbCdEfGhIjKlMn"


def test_a_vendor_key_in_a_path_is_redacted_for_the_model_and_for_people():
    line = f'198.18.0.9 - - [04/Mar/2024:09:59:00 +0000] "GET /api/keys/{KEY}?v=1 HTTP/1.1" 500 512 "-" "ua"'
    assert KEY not in Redactor(b"k" * 32, DEFAULT_PATTERNS).redact(line).text
    assert KEY not in ForPeople()(f"/api/keys/{KEY}")


def test_the_same_key_behind_a_name_is_redacted():
    """What the README promises (API keys in query strings and headers) holds."""
    assert KEY not in Redactor(b"k" * 32, DEFAULT_PATTERNS).redact(f"GET /api/keys?api_key={KEY} HTTP/1.1").text
    assert KEY not in ForPeople()(f"/api/keys?api_key={KEY}")


def test_sieve_run_survives_a_failed_scheduled_invocation(make_stack, tmp_path):  # noqa: F811
    """Found by the harness (a runner 'exited on its own, rc 3' under DynamoDB 503s): when the scheduled
    finaliser fails (the state table answers 503 after botocore's retries), `sieve run` exits, and with it
    the event source mapping. On Lambda a failed scheduled invocation is just that; the next schedule runs
    and the Kinesis mapping is not affected."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from processors.runtime.faults import AwsFaultProxy, FaultRule

    def fast_schedule(doc):
        doc["functions"]["logs-finaliser"]["schedule_seconds"] = 1

    make_stack(fast_schedule)
    with AwsFaultProxy(os.environ["AWS_ENDPOINT_URL"], rules=[FaultRule("DynamoDB.Query", "error5xx", 1.0)]) as proxy:
        proxy.enabled = True
        env = {**os.environ, "AWS_ENDPOINT_URL": proxy.url, "SIEVE_STATE_DIR": str(tmp_path / "state")}
        proc = subprocess.Popen([sys.executable, "-m", "processors.cli", "run"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and proc.poll() is None and not proxy.counts:
                time.sleep(0.2)
            assert proxy.counts, "the finaliser never ran"
            time.sleep(5)
            assert proc.poll() is None, "sieve run ended when its scheduled finaliser failed"
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=30)


def test_a_shard_that_has_not_flushed_yet_holds_the_watermark():
    """Found by the harness under load: a shard whose runner was throttled or restarting had flushed nothing,
    the watermark went by the other shard alone, and the window closed before its first partial (merged as
    late, its unmatched events untallied). The finaliser now registers every listed shard without progress as
    "nothing flushed yet" (ShardProgress(None, first seen)); it holds every window until it flushes or idles."""
    from processors.core.types import ShardProgress, Window
    from processors.core.watermark import IDLE_SHARD_SECONDS, Watermark

    now = 1_000_000.0
    # shard A has flushed up to 10:05; shard B (throttled, or its runner restarting) has flushed nothing yet
    progress = {"shardId-000000000000": ShardProgress(max_event_ms=1_709_546_700_000, updated_at=now),
                "shardId-000000000001": ShardProgress(max_event_ms=None, updated_at=now - 60)}
    w = Watermark.of(progress, now)
    assert not w.closes(Window(1_709_546_340, 1_709_546_400), allowed_lateness=30)
    assert w.waiting_for == ("shardId-000000000001",)
    # once it has been known for idle_seconds without a flush it no longer holds (like an idle shard)
    later = Watermark.of(progress, now + IDLE_SHARD_SECONDS)  # B first seen 360 s ago, A moved 300 s ago
    assert later.closes(Window(1_709_546_340, 1_709_546_400), allowed_lateness=30)
