"""JSON-safe forms of the stage contracts (stored in DynamoDB, printed by `sieve topn --json`,
shown by `sieve demo`). Floats that are whole numbers stay ints so counts read as counts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from processors.core.types import (Analysis, AnalysisOutcome, Contributor, Hypothesis, SelectedGroup, TopNReport,
                                   Window)


def _n(v: Any) -> Any:
    if isinstance(v, Decimal):
        return int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def report_to_dict(r: TopNReport) -> dict:
    return {
        "rule": r.rule, "window": {"start": r.window.start, "end": r.window.end}, "key_names": list(r.key_names),
        "aggregate_on": r.aggregate_on,
        "contributors": [{"keys": list(c.keys), "value": _n(c.value)} for c in r.contributors],
        "unique_contributors": r.unique_contributors, "max_contributor_value": _n(r.max_contributor_value),
        "sample_count": r.sample_count, "sum": _n(r.sum), "total_events": r.total_events,
        "approximate": r.approximate, "error_bound": _n(r.error_bound), "shards": list(r.shards),
    }


def report_from_dict(d: dict) -> TopNReport:
    return TopNReport(
        rule=d["rule"], window=Window(int(d["window"]["start"]), int(d["window"]["end"])),
        key_names=tuple(d["key_names"]), aggregate_on=d["aggregate_on"],
        contributors=tuple(Contributor(tuple(c["keys"]), _n(c["value"])) for c in d["contributors"]),
        unique_contributors=int(d["unique_contributors"]), max_contributor_value=_n(d["max_contributor_value"]),
        sample_count=int(d["sample_count"]), sum=_n(d["sum"]), total_events=int(d.get("total_events", 0)),
        approximate=bool(d.get("approximate")), error_bound=_n(d.get("error_bound", 0)),
        shards=tuple(d.get("shards", ())),
    )


def selected_to_dict(g: SelectedGroup) -> dict:
    out = {"keys": dict(g.keys), "value": _n(g.value), "share": g.share, "reasons": list(g.reasons),
           "trend": [_n(t) for t in g.trend]}
    out["contrast"] = [{"field": c.field, "value": c.value, "group_share": c.group_share,
                        "baseline_share": c.baseline_share, "group_count": c.group_count,
                        "baseline_count": c.baseline_count, "error": c.error} for c in g.contrast]
    out["onset"] = onset_to_dict(g.onset)
    out["change"] = g.change
    if g.buckets:
        out["buckets"] = list(g.buckets)
        out["bucket_seconds"] = g.bucket_seconds
    if g.withheld_lines:
        out["withheld_lines"] = g.withheld_lines
        out["screened_lines"] = g.screened_lines
        out["withheld_reasons"] = list(g.withheld_reasons)
    return out


def onset_to_dict(o: Onset | None) -> dict | None:
    if o is None:
        return None
    return {"at": o.at, "bucket_seconds": o.bucket_seconds, "counts": list(o.counts), "before_rate": o.before_rate,
            "after_rate": o.after_rate}


def outcome_to_dict(o: AnalysisOutcome) -> dict:
    a = o.analysis
    return {
        "status": o.status, "reason": o.reason, "model_id": o.model_id, "tokens_in": o.tokens_in,
        "tokens_out": o.tokens_out, "latency_ms": o.latency_ms, "estimated_cost_usd": o.estimated_cost_usd,
        "digest_hash": o.digest_hash,
        "analysis": None if a is None else {
            "likely_cause": a.likely_cause, "evidence": list(a.evidence), "next_checks": list(a.next_checks),
            "confidence": a.confidence,
            "hypotheses": [{"cause": h.cause, "facts": list(h.facts), "confidence": h.confidence} for h in a.hypotheses]},
    }


def outcome_from_dict(d: dict) -> AnalysisOutcome:
    a = d.get("analysis")
    return AnalysisOutcome(
        status=d["status"], reason=d.get("reason", ""), model_id=d.get("model_id", ""),
        tokens_in=int(d.get("tokens_in", 0)), tokens_out=int(d.get("tokens_out", 0)),
        latency_ms=int(d.get("latency_ms", 0)), estimated_cost_usd=float(d.get("estimated_cost_usd", 0)),
        digest_hash=d.get("digest_hash", ""),
        analysis=None if not a else Analysis(
            a["likely_cause"], tuple(a["evidence"]), tuple(a["next_checks"]), a["confidence"],
            tuple(Hypothesis(h["cause"], tuple(h["facts"]), h["confidence"]) for h in a.get("hypotheses", ()))),
    )
