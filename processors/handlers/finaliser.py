"""The window finaliser Lambda (scheduled; `sieve run` invokes it locally): event -> `Finaliser.run`.

The use case is processors/core/finalise.py: closed windows -> merged top-N -> selection -> AI boundary
-> one Slack message -> the stored report. `{"sieve": {"flush": true}}` finalises every open window
(end of a stream); the invocation's remaining time decides how many windows this run takes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from processors import wiring

if TYPE_CHECKING:  # built on the first invocation (wiring), so importing this module stays cheap
    from processors.core.finalise import Finaliser

COMPONENT = wiring.FINALISER
_finaliser: wiring.PerContainer[Finaliser] = wiring.PerContainer(COMPONENT)
reset_runtime = _finaliser.reset


def handler(event: dict, context: Any) -> dict:
    fin = _finaliser.get()
    if context is not None:
        fin.notifier.bind_invocation(context)
    flush = bool(((event or {}).get("sieve") or {}).get("flush"))
    result = fin.run(flush=flush, time_left_ms=context.get_remaining_time_in_millis if context is not None else None)
    # the invocation's response can reach a destination or a log: what was done, never the keys themselves
    summary = ("rule", "window", "status", "selected", "delivery", "late_events")
    return {**result, "finalised": [{k: w[k] for k in summary if k in w} for w in result["finalised"]]}
