"""Block Kit rendering of one `WindowReport`: the webhook JSON (`text` fallback + `blocks`).

Pure: no I/O, no clock, no vendor types. The same report always renders to the same payload.

What every message shows, in this order:

* a header: rule and window in UTC;
* **Computed** blocks (block_id ``computed-*``): the top-N table, why each group was selected, the
  Contributor Insights report metrics and an "approximate (error <= N)" marker when flagged;
* **AI inference** blocks (block_id ``ai-*``), labelled as not verified; or, when there was no
  analysis, the reason, so the computed facts are still posted;
* a context footer (block_id ``sieve-footer``): model, tokens in/out, estimated cost, digest hash,
  "computed by Sieve vN".

Everything that came from logs, config or the model is escaped (``&``, ``<``, ``>``), so an injected
``<!channel>`` arrives as text. Raw sample lines (`SelectedGroup.samples`) are never rendered: they
are unredacted. Slack's limits are respected by truncating with a visible marker, never by failing.
"""

from __future__ import annotations

import functools
from datetime import datetime, timezone
from typing import Iterable

from processors.core.answer import Answer
from processors.core.types import AnalysisOutcome, TopNReport, WindowReport

# Slack's documented limits (see /work/shared/research/reference-systems.md section 6).
SECTION_TEXT_LIMIT = 3000
HEADER_TEXT_LIMIT = 150
CONTEXT_ELEMENTS_LIMIT = 10
MAX_BLOCKS = 50
TOTAL_TEXT_LIMIT = 12_000  # cumulative text in blocks; Slack answers msg_blocks_too_long at ~13.2k
FALLBACK_TEXT_LIMIT = 1_000  # notifications show only the start; Slack's own cap is 40,000

# Character budgets per block; they sum to well under TOTAL_TEXT_LIMIT.
_BUDGET = {
    "computed-summary": 1000,
    "computed-topn": SECTION_TEXT_LIMIT,
    "computed-selected": 2500,
    "ai-cause": 1500,
    "ai-evidence": 1200,
    "ai-checks": 1200,
    "ai-none": 1000,
    "sieve-extra": 600,
}

AI_LABEL = ":robot_face: AI inference — not verified"
COMPUTED_LABEL = ":abacus: Computed by Sieve — deterministic, no AI"
KEY_COLUMN_LIMIT = 60

NO_ANALYSIS_REASONS = {
    "budget_exhausted": ":money_with_wings: The token/cost budget is exhausted, so the model was not called.",
    "invalid_output": ":x: The model's answer failed schema validation and was discarded.",
    "model_error": ":warning: The model call failed.",
    "disabled": "AI analysis is disabled for this pipeline.",
    "nothing_selected": "No group crossed a selection threshold, so no model was called.",
    "analysed": ":warning: The model reported success but returned no analysis.",
}


def escape(text: object) -> str:
    """Slack's three control characters as entities; nothing else is touched."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def delivery_key(report: WindowReport) -> str:
    """The idempotency key for posting this report: content, never AI text."""
    return f"{report.rule}#{report.window.key}#{report.outcome.digest_hash or 'no-digest'}"


@functools.cache
def sieve_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("sieve-streams")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "dev"


def render(report: WindowReport, *, max_rows: int = 10, version: str | None = None) -> dict:
    """The incoming-webhook JSON for one window report."""
    topn = report.topn
    blocks: list[dict] = [
        {
            "type": "header",
            "block_id": "sieve-header",
            "text": {
                "type": "plain_text",
                "text": _cut(escape(f"{report.rule} · {format_window(report.window.start, report.window.end)}"), HEADER_TEXT_LIMIT),
                "emoji": True,
            },
        },
        _section("computed-summary", _summary_text(report)),
        _section("computed-topn", _topn_text(topn, max_rows)),
    ]
    if report.selected:
        blocks.append(_section("computed-selected", _selected_text(report)))
    blocks.append({"type": "divider"})
    blocks.extend(_ai_blocks(report.outcome))
    if report.extra:
        extra = " · ".join(f"{escape(k)}: {escape(v)}" for k, v in sorted(report.extra.items()))
        blocks.append(_context("sieve-extra", [_cut(extra, _BUDGET["sieve-extra"])]))
    blocks.append(_context("sieve-footer", _footer_elements(report.outcome, version or sieve_version())))
    return {"text": _fallback_text(report), "blocks": _enforce_limits(blocks)}


# --- computed -------------------------------------------------------------------------------


def _summary_text(report: WindowReport) -> str:
    t = report.topn
    keys = ", ".join(t.key_names) or "(no keys)"
    metrics = [
        f"*{escape(t.aggregate_on)} by* `{_code(keys)}`",
        f"*UniqueContributors* {fmt_number(t.unique_contributors)}",
        f"*SampleCount* {fmt_number(t.sample_count)}",
        f"*MaxContributorValue* {fmt_number(t.max_contributor_value)}",
    ]
    if t.aggregate_on == "Sum":
        metrics.append(f"*Sum* {fmt_number(t.sum)}")
    if t.total_events:
        metrics.append(f"*events in window* {fmt_number(t.total_events)}")
    if t.shards:
        metrics.append(f"*shards* {len(t.shards)}")
    lines = [f"*{COMPUTED_LABEL}*", " · ".join(metrics)]
    if t.approximate:
        lines.append(
            f":warning: *approximate (error <= {fmt_number(t.error_bound)})*: a shard overflowed its exact "
            "capacity, so counts may be over-stated by at most that much."
        )
    return _fit_lines(lines, _BUDGET["computed-summary"])


def _topn_text(t: TopNReport, max_rows: int) -> str:
    if not t.contributors:
        return f"*Top contributors*\nNo log event matched rule `{_code(t.rule)}` in this window."
    shown = list(t.contributors[: max(max_rows, 0)])
    hidden = len(t.contributors) - len(shown)
    key_header = ", ".join(t.key_names) or "keys"
    rows = [("#", key_header, "value", "share")]
    for rank, c in enumerate(shown, 1):
        rows.append((str(rank), _ellipsize(", ".join(c.keys), KEY_COLUMN_LIMIT), fmt_number(c.value), fmt_share(_share(t, c.value))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        f"{r[0]:>{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:>{widths[3]}}".rstrip() for r in rows
    ]
    title = f"*Top {len(shown)} of {fmt_number(t.unique_contributors)} contributors*"
    body = _fit_lines([escape(_code(line)) for line in lines], SECTION_TEXT_LIMIT - len(title) - 60, prefix="```\n", suffix="\n```", hidden=hidden, unit="rows", cut_lines=False)
    return f"{title}\n{body}"


def _selected_text(report: WindowReport) -> str:
    lines = ["*Why these groups were selected* (deterministic rules)"]
    for g in report.selected:
        keys = ", ".join(f"{k}={v}" for k, v in g.keys.items()) or "(all)"
        line = f"• `{escape(_code(_ellipsize(keys, KEY_COLUMN_LIMIT)))}` {fmt_number(g.value)} ({fmt_share(g.share)})"
        if g.reasons:
            line += " — " + "; ".join(escape(r) for r in g.reasons)
        if g.trend:
            line += " · trend " + " → ".join(fmt_number(v) for v in g.trend[-6:]) + f" → *{fmt_number(g.value)}*"
        lines.append(line)
        lines.extend(_explain_lines(g, report.topn.aggregate_on == "Count"))
        if g.withheld_lines:
            lines.append(f"  :rotating_light: *{g.withheld_lines} of {g.screened_lines} sample lines of this group carry "
                         f"text addressed to an AI model* ({escape(', '.join(g.withheld_reasons))}); withheld from "
                         "the model. Someone is trying to steer automated analysis through your logs.")
    return _fit_lines(lines, _BUDGET["computed-selected"])


_SPARK = "▁▂▃▄▅▆▇█"


def sparkline(counts: tuple[float, ...], mark: int | None = None, *, top: float | None = None) -> str:
    """Counts as block characters scaled to the largest (or `top`); `mark` puts a `|` before that bucket (the onset)."""
    top = max(counts, default=0) if top is None else top
    chars = [_SPARK[min(len(_SPARK) - 1, round(c / top * (len(_SPARK) - 1)))] if top else _SPARK[0] for c in counts]
    if mark is not None and 0 <= mark < len(chars):
        chars.insert(mark, "|")
    return "".join(chars)


def rate_series(g, counted: bool) -> tuple[tuple[float, ...], tuple[int, ...], int | None]:
    """The group's rate as one series: each earlier window as its mean per sub-window (only for a Count
    rule, whose window values are event counts like the buckets), then this window's sub-windows; and
    the onset's bucket index in this window (None without one)."""
    n = len(g.buckets)
    earlier = tuple(v / n for v in g.trend[-6:]) if counted and n else ()
    mark = None
    if g.onset is not None and g.bucket_seconds:
        mark = (g.onset.at - g.window.start) // g.bucket_seconds
    return earlier, tuple(g.buckets), mark


def rate_sparkline(g, counted: bool) -> str:
    """`▁▁▁ ▁▁▂|▆█▇`: earlier windows (one character each), a space, this window's sub-windows, one
    scale for all; `|` marks the onset."""
    earlier, buckets, mark = rate_series(g, counted)
    top = max((*earlier, *buckets), default=0)
    now = sparkline(buckets, mark, top=top)
    return f"{sparkline(earlier, top=top)} {now}" if earlier else now


def _explain_lines(g, counted: bool = True) -> list[str]:
    """What distinguishes the group and when it began: computed, so in the computed section."""
    out = []
    if g.contrast:
        facts = "; ".join(f"`{escape(_code(_ellipsize(f'{c.field}={c.value}', KEY_COLUMN_LIMIT)))}` "
                          f"{c.group_share * 100:.0f}% of this group vs {c.baseline_share * 100:.0f}% of other traffic"
                          + (f" (±{c.error * 100:.0f} pts)" if c.error else "") for c in g.contrast)
        out.append(f"  *What sets it apart:* {facts}")
    o = g.onset
    if g.buckets:
        earlier = " (earlier windows, then this one)" if rate_series(g, counted)[0] else ""
        line = f"  *Rate per {g.bucket_seconds} s*{earlier}: `{rate_sparkline(g, counted)}`"
        if o is not None:
            began = datetime.fromtimestamp(o.at, tz=timezone.utc).strftime("%H:%M:%S")
            line += f" · *began* {began} UTC ({fmt_number(o.before_rate)} → {fmt_number(o.after_rate)} per {o.bucket_seconds} s)"
        out.append(line)
    elif o is not None:
        first = (o.at - g.window.start) // o.bucket_seconds if o.bucket_seconds else None
        began = datetime.fromtimestamp(o.at, tz=timezone.utc).strftime("%H:%M:%S")
        out.append(f"  *Began* {began} UTC · per {o.bucket_seconds} s "
                   f"`{sparkline(o.counts, first)}` ({fmt_number(o.before_rate)} → {fmt_number(o.after_rate)})")
    if g.change:
        out.append(f"  *Against earlier windows:* {escape(g.change)}")
    return out


def _share(t: TopNReport, value: float) -> float:
    if t.aggregate_on == "Count" and t.total_events > 0:
        return value / t.total_events
    return value / t.sum if t.sum > 0 else 0.0


# --- AI inference ---------------------------------------------------------------------------


def _ai_blocks(outcome: AnalysisOutcome) -> list[dict]:
    a = outcome.analysis
    if outcome.status == "analysed" and a is not None and a.hypotheses:
        ranked = [f"*{AI_LABEL}* — ranked hypotheses over the computed facts"]
        for i, h in enumerate(a.hypotheses, start=1):
            ranked.append(f"{i}. {escape(h.cause)} (_{escape(h.confidence)}_; rests on "
                          f"{', '.join(f'`{escape(f)}`' for f in h.facts)})")
        blocks = [_section("ai-cause", _fit_lines(ranked, _BUDGET["ai-cause"]))]
        facts = [f"• {escape(x)}" for x in a.evidence] or ["• (none)"]
        blocks.append(_section("ai-evidence", _fit_lines(["*What the first one rests on* (computed by Sieve)", *facts],
                                                          _BUDGET["ai-evidence"])))
        checks = [f"• {escape(x)}" for x in a.next_checks] or ["• (none given)"]
        blocks.append(_section("ai-checks", _fit_lines(["*Next checks* (suggested by the model)", *checks],
                                                        _BUDGET["ai-checks"])))
        return blocks
    if outcome.status == "invalid_output":
        # The model said nothing usable: no AI section at all, one quiet line saying why.
        return [_context("facts-only", [_cut(
            ":abacus: The computed facts speak for themselves: the model's answer was not grounded in them and is "
            f"not shown ({escape(outcome.reason)})", _BUDGET["ai-none"])])]
    if outcome.status == "analysed" and a is not None:
        cause = [f"*{AI_LABEL}*", f"*Confidence:* {escape(a.confidence)}", f"*Likely cause:* {escape(a.likely_cause)}"]
        blocks = [_section("ai-cause", _fit_lines(cause, _BUDGET["ai-cause"]))]
        for block_id, title, items in (
            ("ai-evidence", "*Evidence* (as cited by the model)", a.evidence),
            ("ai-checks", "*Next checks* (suggested by the model)", a.next_checks),
        ):
            lines = [f"• {escape(x)}" for x in items] or ["• (none given)"]
            blocks.append(_section(block_id, _fit_lines([title, *lines], _BUDGET[block_id])))
        return blocks
    lines = [f"*:robot_face: AI inference — none for this window* (`{escape(outcome.status)}`)", NO_ANALYSIS_REASONS.get(outcome.status, f"Status: {escape(outcome.status)}")]
    if outcome.reason:
        lines.append(f"Reason: {escape(outcome.reason)}")
    lines.append("The computed facts above are posted without analysis.")
    return [_section("ai-none", _fit_lines(lines, _BUDGET["ai-none"]))]


def _footer_elements(o: AnalysisOutcome, version: str) -> list[str]:
    model = f"model `{escape(_code(o.model_id))}`" if o.model_id else "model: none"
    usage = f"{model} · tokens {fmt_number(o.tokens_in)} in / {fmt_number(o.tokens_out)} out · est. cost ${o.estimated_cost_usd:.4f}"
    if o.latency_ms:
        usage += f" · {o.latency_ms / 1000:.1f} s"
    digest = f"digest `{escape(_code(o.digest_hash[:12]))}`" if o.digest_hash else "digest: none"
    return [_cut(usage, 1000), f"{digest} · computed by Sieve v{escape(version)}"]


def _fallback_text(report: WindowReport) -> str:
    parts = [f"Sieve: {report.rule} {format_window(report.window.start, report.window.end)}"]
    if report.topn.contributors:
        top = report.topn.contributors[0]
        parts.append(f"top {', '.join(top.keys)} = {fmt_number(top.value)}")
    a = report.outcome.analysis
    if report.outcome.status == "analysed" and a is not None:
        parts.append(f"AI (not verified): {a.likely_cause}")
    else:
        parts.append(f"no AI analysis ({report.outcome.status})")
    return _cut(escape(" — ".join(parts)), FALLBACK_TEXT_LIMIT)


# --- formatting helpers ---------------------------------------------------------------------


def format_window(start: int, end: int) -> str:
    s = datetime.fromtimestamp(start, tz=timezone.utc)
    e = datetime.fromtimestamp(end, tz=timezone.utc)
    pattern = "%H:%M:%S" if (s.second or e.second) else "%H:%M"
    if s.date() == e.date():
        return f"{s:%Y-%m-%d} {s.strftime(pattern)}–{e.strftime(pattern)} UTC"
    return f"{s:%Y-%m-%d} {s.strftime(pattern)} – {e:%Y-%m-%d} {e.strftime(pattern)} UTC"


def fmt_number(value: float) -> str:
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def fmt_share(share: float) -> str:
    return f"{share * 100:.1f}%"


def _code(text: str) -> str:
    """Text that goes between backticks: a backtick would end the code span, so swap it."""
    return text.replace("`", "ˋ")


def _ellipsize(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def truncation_marker(n: int, unit: str = "more") -> str:
    return f"… (truncated, {n:,} {unit})"


def _cut(text: str, limit: int) -> str:
    """Cut already-escaped text to `limit` chars with a visible marker, never inside an entity."""
    if len(text) <= limit:
        return text
    keep = limit
    while keep > 0:
        need = len(truncation_marker(len(text) - keep, "more chars"))
        if keep + need <= limit:
            break
        keep = min(keep - 1, limit - need)
    amp = text.rfind("&", max(keep - 5, 0), keep)
    if amp != -1 and ";" not in text[amp:keep]:
        keep = amp
    marker = truncation_marker(len(text) - keep, "more chars")
    if keep <= 0 or keep + len(marker) > limit:  # limit smaller than the marker itself
        return text[:limit]
    return text[:keep] + marker


def _fit_lines(
    lines: Iterable[str],
    limit: int,
    *,
    prefix: str = "",
    suffix: str = "",
    hidden: int = 0,
    unit: str = "more",
    cut_lines: bool = True,
) -> str:
    """Join lines into at most `limit` chars; lines that do not fit are counted in a visible marker.
    `hidden` counts lines the caller already left out (they are added to the marker's number)."""
    lines = list(lines)

    def assemble(kept: list[str], left: int) -> str:
        text = prefix + "\n".join(kept) + suffix
        return f"{text}\n{truncation_marker(left, unit)}" if left else text

    kept: list[str] = []
    for i, line in enumerate(lines):
        if len(assemble([*kept, line], len(lines) - i - 1 + hidden)) <= limit:
            kept.append(line)
            continue
        if cut_lines:  # a long line: keep what fits of it rather than dropping it whole
            left = len(lines) - i - 1 + hidden
            room = limit - len(assemble([*kept, ""], left))
            if room > 40:
                return assemble([*kept, _cut(line, room)], left)
        return assemble(kept, len(lines) - i + hidden)
    return assemble(kept, hidden)


def _section(block_id: str, text: str) -> dict:
    # verbatim: Slack must not auto-link URLs, channel names or bare @mentions in data.
    return {"type": "section", "block_id": block_id, "text": {"type": "mrkdwn", "text": _cut(text, SECTION_TEXT_LIMIT), "verbatim": True}}


def _context(block_id: str, texts: list[str]) -> dict:
    elements = [{"type": "mrkdwn", "text": _cut(t, 2000), "verbatim": True} for t in texts[:CONTEXT_ELEMENTS_LIMIT]]
    return {"type": "context", "block_id": block_id, "elements": elements}


def block_text_length(block: dict) -> int:
    """Characters of text a block carries (what counts toward Slack's cumulative cap)."""
    n = 0
    text = block.get("text")
    if isinstance(text, dict):
        n += len(str(text.get("text", "")))
    elif isinstance(text, str):
        n += len(text)
    for f in block.get("fields") or ():
        if isinstance(f, dict):
            n += len(str(f.get("text", "")))
    for e in block.get("elements") or ():
        if isinstance(e, dict) and "text" in e:
            n += len(str(e["text"]) if not isinstance(e["text"], dict) else str(e["text"].get("text", "")))
    return n


def _enforce_limits(blocks: list[dict]) -> list[dict]:
    """Last line of defence: the per-block budgets keep us inside the limits already."""
    if len(blocks) > MAX_BLOCKS:
        dropped = len(blocks) - (MAX_BLOCKS - 1)
        footer = blocks[-1]
        blocks = blocks[: MAX_BLOCKS - 2] + [_context("sieve-truncated", [truncation_marker(dropped, "blocks")]), footer]
    total = sum(block_text_length(b) for b in blocks)
    while total > TOTAL_TEXT_LIMIT:
        sections = [b for b in blocks if b.get("type") == "section"]
        biggest = max(sections, key=block_text_length)
        size = block_text_length(biggest)
        biggest["text"]["text"] = _cut(biggest["text"]["text"], max(size - (total - TOTAL_TEXT_LIMIT), 100))
        new_total = sum(block_text_length(b) for b in blocks)
        if new_total >= total:  # cannot shrink further; never loop forever
            break
        total = new_total
    return blocks


# --- FAQ answers ---------------------------------------------------------------------------------


def answer_blocks(result: Answer, role: str) -> dict:
    """The ephemeral Slack response: answer (escaped), cited entries as links, and what wrote it."""
    refs = result.citations if result.status == "answered" else result.entries
    if result.status == "answered":
        main = escape(result.text)
        who = f"Answer written by model {escape(result.model_id)} from {len(result.entries)} retrieved entries " \
              f"(tokens {result.tokens_in} in / {result.tokens_out} out); citations checked by Sieve."
    elif result.status == "not_found":
        main = escape(result.text)
        who = f"No model was called: no entry visible to role {escape(role)} is relevant enough."
    else:
        main = escape(result.text.split("\n", 1)[0])
        who = "Listed by Sieve without model text" + (f" ({escape(result.reason)})" if result.reason else "") + "."
    if len(main) > SECTION_TEXT_LIMIT:
        main = main[: SECTION_TEXT_LIMIT - 1] + "…"
    blocks: list[dict] = [{"type": "section", "block_id": "answer", "text": {"type": "mrkdwn", "text": main}}]
    if refs:
        links = "\n".join(f"<{r.source_url}|[{r.ref}] {escape(r.question)}>" for r in refs)
        if len(links) > SECTION_TEXT_LIMIT:
            links = links[: SECTION_TEXT_LIMIT - 1] + "…"
        blocks.append({"type": "section", "block_id": "sources", "text": {"type": "mrkdwn", "text": links}})
    blocks.append({"type": "context", "block_id": "provenance", "elements": [{"type": "mrkdwn", "text": who}]})
    return {"response_type": "ephemeral", "text": escape(result.text)[:SECTION_TEXT_LIMIT], "blocks": blocks}
