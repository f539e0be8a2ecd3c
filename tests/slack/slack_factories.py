"""Builders for WindowReports used by the Slack tests (plain data, no I/O)."""

from __future__ import annotations

from processors.core.types import (
    Analysis,
    AnalysisOutcome,
    Contributor,
    SelectedGroup,
    TopNReport,
    Window,
    WindowReport,
)

WINDOW = Window(start=1_714_564_800, end=1_714_565_100)  # 2024-05-01 12:00-12:05 UTC


def topn(contributors=None, *, rule="5xx-by-ip", approximate=False, error_bound=0.0, total_events=10_000):
    contributors = contributors if contributors is not None else [
        Contributor(("10.0.0.1", "500"), 1200),
        Contributor(("10.0.0.2", "502"), 300),
        Contributor(("10.0.0.3", "500"), 20),
    ]
    return TopNReport(
        rule=rule,
        window=WINDOW,
        key_names=("ip", "status"),
        aggregate_on="Count",
        contributors=tuple(contributors),
        unique_contributors=len(contributors),
        max_contributor_value=max((c.value for c in contributors), default=0),
        sample_count=int(sum(c.value for c in contributors)),
        sum=sum(c.value for c in contributors),
        total_events=total_events,
        approximate=approximate,
        error_bound=error_bound,
        shards=("shardId-000000000000",),
    )


def analysed(**overrides):
    fields = dict(
        status="analysed",
        analysis=Analysis(
            likely_cause="Upstream pool exhausted on app-3",
            evidence=("1,200 of 1,520 errors come from 10.0.0.1", "all are POST /api/orders"),
            next_checks=("check app-3 connection pool metrics", "compare with the deploy at 11:58"),
            confidence="medium",
        ),
        model_id="qwen2.5-coder-0.5b-instruct-q4_k_m",
        tokens_in=812,
        tokens_out=143,
        latency_ms=2300,
        estimated_cost_usd=0.00042,
        digest_hash="9f2c1e7ab34d5e6f00112233",
    )
    fields.update(overrides)
    return AnalysisOutcome(**fields)


def report(*, outcome=None, contributors=None, selected=None, rule="5xx-by-ip", **topn_kw):
    t = topn(contributors, rule=rule, **topn_kw)
    if selected is None:
        c = t.contributors[0] if t.contributors else Contributor(("-", "-"), 0)
        selected = (
            SelectedGroup(
                rule=rule,
                window=WINDOW,
                keys={"ip": c.keys[0], "status": c.keys[1]},
                value=c.value,
                share=c.value / t.total_events if t.total_events else 0.0,
                reasons=("value 1,200 >= threshold 100", "new key (not seen in the last 12 windows)"),
                samples=('10.0.0.1 - - [01/May/2024:12:01:02 +0000] "POST /api/orders?token=SECRET" 500 12',),
                trend=(3, 5, 4),
            ),
        )
    return WindowReport(rule=rule, window=WINDOW, topn=t, selected=tuple(selected), outcome=outcome or analysed())


def at_window(r: WindowReport, n: int, *, period: int = 300) -> WindowReport:
    """`r` moved `n` windows later (the same incident, a later window)."""
    import dataclasses

    w = Window(WINDOW.start + n * period, WINDOW.end + n * period)
    return dataclasses.replace(r, window=w, topn=dataclasses.replace(r.topn, window=w),
                               selected=tuple(dataclasses.replace(g, window=w) for g in r.selected))


def incident_report(ip: str = "10.0.0.1", status: str = "500", value: float = 1200, *, n: int = 0, rule: str = "5xx-by-ip",
                    extra_groups: tuple = ()) -> WindowReport:
    """A window whose selected group (the incident) is (ip, status); `extra_groups` adds more (ip, status, value)."""
    groups = [(ip, status, value), *extra_groups]
    contributors = [Contributor((i, s), v) for i, s, v in groups]
    selected = tuple(SelectedGroup(rule=rule, window=WINDOW, keys={"ip": i, "status": s}, value=v, share=v / 10_000,
                                   reasons=(f"count {int(v)} >= min_count 20",)) for i, s, v in groups)
    return at_window(report(contributors=contributors, selected=selected, rule=rule), n)
