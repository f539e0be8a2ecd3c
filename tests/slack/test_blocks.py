"""Block Kit rendering: escaping, computed vs inferred, the no-analysis variants, Slack's limits."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import slack_blocks
from processors.core.slack_blocks import delivery_key, render
from processors.core.types import Analysis, Contributor, SelectedGroup
from processors.runtime.slack_receiver import PayloadRejected, validate_payload
from tests.slack.slack_factories import WINDOW, analysed, report

INJECTED = "<!channel> <@U123> <!here> <https://evil.example|click> & Co"
BROKEN_ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def all_text(payload: dict) -> str:
    return json.dumps(payload, ensure_ascii=False)


def block(payload: dict, block_id: str) -> dict:
    found = [b for b in payload["blocks"] if b.get("block_id") == block_id]
    assert found, f"no block {block_id!r} in {[b.get('block_id') for b in payload['blocks']]}"
    return found[0]


def text_of(payload: dict, block_id: str) -> str:
    b = block(payload, block_id)
    return b["text"]["text"] if "text" in b else " ".join(e["text"] for e in b["elements"])


def injected_report():
    """Injection attempts from every source: log-derived keys and reasons, the model, config."""
    return report(
        rule=f"rule {INJECTED}",
        contributors=[Contributor((INJECTED, "500"), 50), Contributor(("10.0.0.2", "<@U999>"), 10)],
        selected=[
            SelectedGroup(
                rule="r",
                window=WINDOW,
                keys={"path": INJECTED},
                value=50,
                share=0.5,
                reasons=(f"new key {INJECTED}",),
            )
        ],
        outcome=analysed(
            analysis=Analysis(
                likely_cause=f"cause {INJECTED}",
                evidence=(f"evidence {INJECTED}",),
                next_checks=(f"check {INJECTED}",),
                confidence="high",
            ),
            model_id="model<@U1>",
        ),
    )


def test_injected_mentions_arrive_as_text():
    payload = render(injected_report())
    text = all_text(payload)
    assert "<" not in text and ">" not in text, "a raw angle bracket would let Slack parse a mention or link"
    assert BROKEN_ENTITY.search(text) is None, "every & must be escaped"
    for block_id in ("computed-topn", "computed-selected", "ai-cause", "ai-evidence", "ai-checks"):
        assert "&lt;!channel&gt;" in text_of(payload, block_id), block_id
        assert "&lt;@U123&gt;" in text_of(payload, block_id), block_id
    assert "&amp; Co" in text_of(payload, "ai-cause")
    assert "&lt;!channel&gt;" in payload["blocks"][0]["text"]["text"]
    assert "&lt;!channel&gt;" in payload["text"]


def test_no_analysis_reason_is_escaped_too():
    payload = render(report(outcome=analysed(status="model_error", analysis=None, reason=f"HTTP 500 {INJECTED}")))
    assert "&lt;!channel&gt;" in text_of(payload, "ai-none")
    assert "<" not in all_text(payload)


def test_mrkdwn_text_is_verbatim_so_slack_does_not_autolink_data():
    payload = render(report())
    for b in payload["blocks"]:
        for obj in [b.get("text")] + list(b.get("elements") or []):
            if isinstance(obj, dict) and obj.get("type") == "mrkdwn":
                assert obj["verbatim"] is True


def test_sample_lines_are_never_posted():
    r = report()
    assert any("token=SECRET" in s for g in r.selected for s in g.samples)
    assert "SECRET" not in all_text(render(r))


@pytest.mark.parametrize(
    "outcome",
    [
        analysed(),
        analysed(status="budget_exhausted", analysis=None, reason="daily budget of 20000 tokens used"),
        analysed(status="invalid_output", analysis=None, reason="missing property likely_cause"),
        analysed(status="model_error", analysis=None, reason="connection refused", tokens_out=0),
        analysed(status="disabled", analysis=None, model_id="", tokens_in=0, tokens_out=0, digest_hash=""),
        analysed(status="nothing_selected", analysis=None, model_id="", tokens_in=0, tokens_out=0),
    ],
    ids=lambda o: o.status,
)
def test_every_message_shows_computed_and_inferred_with_model_and_tokens(outcome):
    r = report(outcome=outcome)
    payload = render(r, version="9.9.9")
    ids = [b.get("block_id") for b in payload["blocks"]]
    assert ids[0] == "sieve-header"
    after_facts = [i for i, b in enumerate(ids) if b and (b.startswith("ai-") or b == "facts-only")]
    assert ids.index("computed-summary") < ids.index("computed-topn") < min(after_facts)
    assert "Computed by Sieve" in text_of(payload, "computed-summary")
    # an answer that was refused shows no AI section (the facts speak for themselves); the others say what happened
    assert (":robot_face: AI inference" in all_text(payload)) == (outcome.status != "invalid_output")
    footer = text_of(payload, "sieve-footer")
    assert ids[-1] == "sieve-footer"
    assert f"tokens {outcome.tokens_in:,} in / {outcome.tokens_out:,} out" in footer
    assert (f"model `{outcome.model_id}`" if outcome.model_id else "model: none") in footer
    assert (f"digest `{outcome.digest_hash[:12]}`" if outcome.digest_hash else "digest: none") in footer
    assert "computed by Sieve v9.9.9" in footer
    assert "est. cost $" in footer


def test_analysed_message_labels_the_inference_as_not_verified():
    payload = render(report())
    cause = text_of(payload, "ai-cause")
    assert cause.startswith("*:robot_face: AI inference — not verified*")
    assert "*Confidence:* medium\n*Likely cause:* Upstream pool exhausted on app-3" in cause
    assert "compare with the deploy at 11:58" in text_of(payload, "ai-checks")
    assert "all are POST /api/orders" in text_of(payload, "ai-evidence")


@pytest.mark.parametrize(
    ("status", "phrase"),
    [
        ("budget_exhausted", "budget is exhausted"),
        ("model_error", "model call failed"),
        ("disabled", "disabled"),
        ("nothing_selected", "No group crossed"),
    ],
)
def test_no_analysis_variants_post_the_facts_with_the_reason(status, phrase):
    payload = render(report(outcome=analysed(status=status, analysis=None, reason=f"why: {status} detail")))
    ai = [b for b in payload["blocks"] if str(b.get("block_id", "")).startswith("ai-")]
    assert [b["block_id"] for b in ai] == ["ai-none"]
    text = ai[0]["text"]["text"]
    assert phrase in text and f"why: {status} detail" in text and f"`{status}`" in text
    assert "posted without analysis" in text
    assert "Likely cause" not in all_text(payload)
    assert "10.0.0.1, 500" in text_of(payload, "computed-topn")  # the facts are still there


def test_an_ungrounded_answer_leaves_no_ai_section_only_a_line_saying_the_facts_speak_for_themselves():
    payload = render(report(outcome=analysed(status="invalid_output", analysis=None, reason="no hypothesis cites a contrast")))
    assert not [b for b in payload["blocks"] if str(b.get("block_id", "")).startswith("ai-")]
    assert "AI inference" not in all_text(payload)
    facts_only = next(b for b in payload["blocks"] if b.get("block_id") == "facts-only")
    assert "speak for themselves" in json.dumps(facts_only) and "no hypothesis cites a contrast" in json.dumps(facts_only)
    assert "10.0.0.1, 500" in text_of(payload, "computed-topn")


def test_topn_table_ranks_values_and_shares():
    payload = render(report())
    table = text_of(payload, "computed-topn")
    rows = [line.split() for line in table.split("```")[1].strip().splitlines()]
    assert rows[0] == ["#", "ip,", "status", "value", "share"]
    assert rows[1] == ["1", "10.0.0.1,", "500", "1,200", "12.0%"]  # 1200 / total_events 10000
    assert rows[3] == ["3", "10.0.0.3,", "500", "20", "0.2%"]
    summary = text_of(payload, "computed-summary")
    assert "*UniqueContributors* 3" in summary and "*SampleCount* 1,520" in summary
    assert "approximate" not in summary


def test_approximate_counts_are_flagged_with_the_error_bound():
    summary = text_of(render(report(approximate=True, error_bound=37)), "computed-summary")
    assert "approximate (error <= 37)" in summary


def test_selected_groups_say_why():
    text = text_of(render(report()), "computed-selected")
    assert "`ip=10.0.0.1, status=500`" in text
    assert "value 1,200 &gt;= threshold 100" in text and "new key" in text
    assert "trend 3 → 5 → 4 → *1,200*" in text


def test_max_rows_limits_the_table_and_says_how_many_are_hidden():
    contributors = [Contributor((f"10.0.{i // 256}.{i % 256}", "500"), 1000 - i) for i in range(25)]
    table = text_of(render(report(contributors=contributors), max_rows=7), "computed-topn")
    assert len(table.split("```")[1].strip().splitlines()) == 1 + 7
    assert f"… (truncated, {25 - 7} rows)" in table


def huge_report():
    long = "x" * 400 + " & <!channel>"
    contributors = [Contributor((f"{long}{i}", str(i)), 10_000 - i) for i in range(5000)]
    selected = [
        SelectedGroup(rule="r", window=WINDOW, keys={"path": f"{long}{i}"}, value=10_000 - i, share=0.01,
                      reasons=(f"reason {long}",) * 3, trend=(1.0,) * 20)
        for i in range(500)
    ]
    outcome = analysed(
        analysis=Analysis(
            likely_cause="cause " + "&" * 50_000,
            evidence=tuple(f"evidence {i} {long}" for i in range(1000)),
            next_checks=tuple(f"check {i} {long}" for i in range(1000)),
            confidence="low",
        )
    )
    return report(rule="r" * 500, contributors=contributors, selected=selected, outcome=outcome)


def test_huge_report_is_truncated_with_markers_within_slack_limits():
    payload = render(huge_report(), max_rows=50)
    blocks = payload["blocks"]
    assert len(blocks) <= slack_blocks.MAX_BLOCKS
    assert len(blocks[0]["text"]["text"]) <= slack_blocks.HEADER_TEXT_LIMIT
    assert "… (truncated," in blocks[0]["text"]["text"]
    for b in blocks:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= slack_blocks.SECTION_TEXT_LIMIT
    assert sum(slack_blocks.block_text_length(b) for b in blocks) <= slack_blocks.TOTAL_TEXT_LIMIT
    for block_id in ("computed-topn", "computed-selected", "ai-cause", "ai-evidence", "ai-checks"):
        assert "… (truncated," in text_of(payload, block_id), block_id
    table = text_of(payload, "computed-topn")
    assert table.count("```") == 2, "the code fence must survive truncation"
    assert BROKEN_ENTITY.search(all_text(payload)) is None, "truncation must never cut an entity in half"
    assert "<" not in all_text(payload)
    validate_payload(json.dumps(payload).encode())  # Slack's checks, as the receiver does them


def test_selected_marker_counts_the_groups_left_out():
    text = text_of(render(huge_report()), "computed-selected")
    shown = sum(1 for line in text.splitlines() if line.startswith("• "))
    assert f"… (truncated, {500 - shown:,} more)" in text


def test_rendering_is_deterministic_and_key_is_content_based():
    r = report()
    assert render(r) == render(r)
    assert delivery_key(r) == f"5xx-by-ip#{WINDOW.key}#{r.outcome.digest_hash}"
    assert delivery_key(report(outcome=analysed(analysis=Analysis("other text", (), (), "low")))) == delivery_key(r), (
        "the key must not depend on AI text"
    )


def test_window_is_shown_in_utc():
    assert "2024-05-01 12:00–12:05 UTC" in render(report())["blocks"][0]["text"]["text"]
    assert slack_blocks.format_window(86_399, 86_401) == "1970-01-01 23:59:59 – 1970-01-02 00:00:01 UTC"


text_strategy = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=4000)


@settings(max_examples=60, deadline=None)
@given(cause=text_strategy, key=text_strategy, evidence=st.lists(text_strategy, max_size=30), reason=text_strategy)
def test_any_text_renders_to_a_payload_slack_accepts(cause, key, evidence, reason):
    r = report(
        contributors=[Contributor((key, reason), 5), Contributor(("b", "c"), 1)],
        selected=[SelectedGroup(rule="r", window=WINDOW, keys={"k": key}, value=5, share=0.5, reasons=(reason,))],
        outcome=analysed(analysis=Analysis(cause, tuple(evidence), (reason,), "low")),
    )
    payload = render(r)
    try:
        validate_payload(json.dumps(payload).encode())
    except PayloadRejected as exc:  # pragma: no cover - the message is the useful part
        pytest.fail(f"Slack would reject it: {exc}")
    text = all_text(payload)
    assert "<" not in text and ">" not in text
    assert BROKEN_ENTITY.search(text) is None


def test_what_sets_a_group_apart_and_when_it_began_are_computed_facts():
    from processors.core.types import ContrastFact, Onset

    r = report()
    g = dataclasses.replace(r.selected[0], contrast=(ContrastFact("user_agent", "OrdersWorker/3.4.1", 0.95, 0.0, 57, 0),),
                            onset=Onset(r.window.start + 20, 10, (0, 1, 9, 12, 11, 10), 0.5, 10.5), change="new pattern")
    payload = render(dataclasses.replace(r, selected=(g,)))
    computed = text_of(payload, "computed-selected")
    assert "`user_agent=OrdersWorker/3.4.1` 95% of this group vs 0% of other traffic" in computed
    assert "*Began* " in computed and "▁▂|▆█▇▇" in computed and "(0.50 → 10.50)" in computed
    assert "new pattern" in computed
    assert "OrdersWorker" not in json.dumps([b for b in payload["blocks"] if str(b.get("block_id", "")).startswith("ai-")])


def test_the_rate_sparkline_puts_earlier_windows_and_this_one_on_one_scale():
    from processors.core.types import Onset

    r = report()
    assert r.topn.aggregate_on == "Count"
    # 6 sub-windows of 10 s; earlier windows held 6, 12 and 0 events (mean 1, 2, 0 per sub-window)
    g = dataclasses.replace(r.selected[0], trend=(6.0, 12.0, 0.0), buckets=(0, 1, 14, 12, 11, 10), bucket_seconds=10,
                            onset=Onset(r.window.start + 20, 10, (0, 1, 14, 12, 11, 10), 0.5, 11.75))
    computed = text_of(render(dataclasses.replace(r, selected=(g,))), "computed-selected")
    # one scale, top 14, eight levels: level = round(value / 14 * 7): earlier 1 -> 0 (round(0.5)), 2 -> 1, 0 -> 0;
    # this window 0, 1 -> 0; 14 -> 7; 12 -> 6; 11 -> 6 (round(5.5)); 10 -> 5; `|` before the onset's sub-window
    assert "*Rate per 10 s* (earlier windows, then this one): `▁▂▁ ▁▁|█▇▇▆`" in computed
    assert "*began* " in computed and "(0.50 → 11.75 per 10 s)" in computed
    # a Sum rule's window values are not event counts: only this window's sub-windows are drawn
    total = dataclasses.replace(r.topn, aggregate_on="Sum")
    computed = text_of(render(dataclasses.replace(r, topn=total, selected=(g,))), "computed-selected")
    assert "*Rate per 10 s*: `▁▁|█▇▇▆`" in computed
    # without exact sub-window counts, nothing is drawn (and no onset was computed either)
    bare = dataclasses.replace(g, buckets=(), bucket_seconds=0, onset=None)
    assert "Rate per" not in text_of(render(dataclasses.replace(r, selected=(bare,))), "computed-selected")
