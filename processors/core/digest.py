"""The digest: the only thing about a window that a model ever sees. Facts only, small, redacted.

    build_digest(report, selected, redactor, config) -> Digest

For each selected group: its key values, value and share, its trend over earlier windows, the
deterministic reasons it was selected, and at most `samples_per_group` sample *templates*:

1. every raw sample line is cut to `MAX_RAW_CHARS` (at a space, so no secret is left half-cut),
   then redacted with the window's `Redactor` (IPs become stable pseudonyms, secrets markers);
2. variable tokens are masked (UUIDs, timestamps, long hex, numbers of 4+ digits or with a
   decimal point, numeric path segments) so similar lines collapse into one template;
3. templates are ranked by how many lines share them (descending), ties by the sha256 of the
   template, and the first N are kept, each with its count. Input order never matters.

The rendered text gets a stable line id per sample (`[G1.S2]`) that the model must cite. The
whole text is redacted once more (belt and braces) and capped at `max_bytes` (UTF-8): samples of the
last groups go first, then whole groups; what was left out is stated in the text. `digest_hash`
is the sha256 of exactly that text, which is exactly what the prompt quotes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from processors.core.redact import Redactor
from processors.core.screen import MARKER_RE, screen
from processors.core.types import SelectedGroup, TopNReport, Window
from processors.errors import ConfigError

MAX_RAW_CHARS = 4096


@dataclass(frozen=True, slots=True)
class DigestConfig:
    samples_per_group: int = 3
    max_line_chars: int = 240
    max_key_chars: int = 160
    max_reasons: int = 4
    max_trend: int = 6
    max_bytes: int = 4000  # the whole rendered digest, UTF-8; about 1,300 tokens at 3 bytes/token

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.samples_per_group <= 10:
            problems.append(f"samples_per_group: {self.samples_per_group} is outside 0..10")
        if self.max_line_chars < 40 or self.max_key_chars < 20:
            problems.append("max_line_chars must be >= 40 and max_key_chars >= 20")
        if self.max_bytes < 500:
            problems.append(f"max_bytes: {self.max_bytes} is too small for even one group (min 500)")
        if problems:
            raise ConfigError("digest", problems)


@dataclass(frozen=True, slots=True)
class SampleTemplate:
    id: str  # "G1.S2"
    template: str
    count: int  # sample lines of the group that collapse into this template
    clients: int = 0  # distinct IP pseudonyms among those lines


@dataclass(frozen=True, slots=True)
class DigestGroup:
    id: str  # "G1"
    keys: tuple[tuple[str, str], ...]  # redacted
    value: float
    share: float
    trend: tuple[float, ...]
    reasons: tuple[str, ...]
    samples: tuple[SampleTemplate, ...]
    sample_lines: int  # raw lines the templates were built from
    facts: tuple[tuple[str, str], ...] = ()  # (id, text): contrast [G1.C1..], onset [G1.O], change [G1.H]


@dataclass(frozen=True, slots=True)
class Digest:
    rule: str
    window: Window
    groups: tuple[DigestGroup, ...]
    text: str
    digest_hash: str
    redaction_counts: dict[str, int]
    omitted: tuple[str, ...] = ()  # what the size cap left out, e.g. "G3.S2", "G4"

    def line_ids(self) -> frozenset[str]:
        """Every id the model may cite: groups and the samples that made it into the text."""
        ids = {g.id for g in self.groups} | {s.id for g in self.groups for s in g.samples}
        ids |= {f for g in self.groups for f, _ in g.facts}
        return frozenset(i for i in ids if i not in self.omitted and f"[{i}]" in self.text)


# --- templating ----------------------------------------------------------------------------------

_PROTECTED = re.compile(r"ip-[0-9a-f]{6}|\[REDACTED:[a-z0-9-]+\]|<[A-Z]+>|" + MARKER_RE.pattern)
_MASKS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"), "<UUID>"),
    (re.compile(r"\[\d{2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]"), "[<TS>]"),
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<TS>"),
    (re.compile(r"\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b"), "<TIME>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<HEX>"),
    (re.compile(r"(?<=/)\d+(?=[/?;#\s\"']|$)"), "<NUM>"),
    (re.compile(r"(?<![\w./])\d+\.\d+(?![\w.])|\b\d{4,}\b"), "<NUM>"),
)


def template_of(line: str) -> str:
    """Mask variable tokens, leaving redaction markers and IP pseudonyms intact."""
    out, last = [], 0
    for m in _PROTECTED.finditer(line):
        out.append(_mask(line[last : m.start()]))
        out.append(m.group(0))
        last = m.end()
    out.append(_mask(line[last:]))
    return "".join(out)


def _mask(part: str) -> str:
    for rx, repl in _MASKS:
        part = rx.sub(repl, part)
    return part


def _cut(s: str, n: int) -> str:
    s = " ".join(s.split())  # one physical line; no embedded newlines can forge structure
    return s if len(s) <= n else s[: n - 1] + "…"


def _precut(line: str) -> str:
    if len(line) <= MAX_RAW_CHARS:
        return line
    head = line[:MAX_RAW_CHARS]
    space = head.rfind(" ")
    return head[: space if space > 0 else 0] + " …"


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


_IP = re.compile(r"ip-[0-9a-f]{6}")


_VARIABLE = re.compile(r"<(?:NUM|HEX)>|\d+")


def _coarse(token: str) -> str:
    """A token's shape: digits and masked numbers alike, any IP pseudonym alike."""
    return _VARIABLE.sub("<NUM>", _IP.sub("ip-*", token))


def _merge(lines: list[str]) -> str:
    """Lines with the same shape (token count, tokens equal up to digits and IP pseudonyms):
    keep the tokens they all share, mask the positions where they differ."""
    columns = zip(*(line.split(" ") for line in lines))
    out = []
    for col in columns:
        first = col[0]
        if all(t == first for t in col):
            out.append(first)
        else:
            out.append(_coarse(first))
    return " ".join(out)


def choose_samples(lines: Sequence[str], redactor: Redactor, n: int, max_chars: int, gid: str) -> tuple[SampleTemplate, ...]:
    """Redact, mask, collapse lines of the same shape, rank by count then sha256, keep n."""
    if n <= 0 or not lines:
        return ()
    shapes: dict[tuple[str, ...], list[str]] = {}
    for line in lines:
        t = template_of(redactor.redact(_precut(line)).text)
        t = " ".join(t.split())
        shapes.setdefault(tuple(_coarse(tok) for tok in t.split(" ")), []).append(t)
    merged: list[tuple[str, int, int]] = []
    for members in shapes.values():
        template = _cut(_merge(sorted(members)), max_chars)
        clients = len({ip for m in members for ip in _IP.findall(m)})
        merged.append((template, len(members), clients))
    ranked = sorted(merged, key=lambda m: (-m[1], _sha(m[0])))
    return tuple(
        SampleTemplate(f"{gid}.S{i}", t, c, clients) for i, (t, c, clients) in enumerate(ranked[:n], start=1)
    )


# --- rendering -------------------------------------------------------------------------------------


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4g}"


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header(report: TopNReport, redactor: Redactor, cfg: DigestConfig) -> list[str]:
    w = report.window
    lines = [
        f"rule: {_cut(redactor.redact(report.rule).text, cfg.max_key_chars)}",
        f"window: {_iso(w.start)} to {_iso(w.end)} ({w.end - w.start}s)",
        f"events in window: {report.total_events}; matched by rule: {report.sample_count}; "
        f"distinct contributors: {report.unique_contributors}; aggregate: {report.aggregate_on}",
    ]
    if report.approximate:
        lines.append(f"counts are approximate (each may be over by up to {_num(report.error_bound)})")
    return lines


def _group_lines(g: DigestGroup, with_samples: int) -> list[str]:
    keys = ", ".join(f"{k}={v}" for k, v in g.keys)
    out = [f"[{g.id}] {keys} | value {_num(g.value)} | share {g.share * 100:.1f}%"]
    if g.trend:
        out.append(f"  earlier windows, oldest first: {', '.join(_num(v) for v in g.trend)}")
    out.append(f"  selected because: {'; '.join(g.reasons)}")
    for fid, text in g.facts:
        out.append(f"  [{fid}] {text}")
    if g.samples:
        out.append(f"  sample templates ({g.sample_lines} lines sampled):")
        for s in g.samples[:with_samples]:
            who = f" from {s.clients} clients" if s.clients > 1 else ""
            out.append(f"  [{s.id}] x{s.count}{who}: {s.template}")
    return out


def fact_lines(sg: SelectedGroup, gid: str, redactor: Redactor, max_chars: int) -> tuple[tuple[str, str], ...]:
    """The computed explanation of a group, one citable line each: what distinguishes it from the rest of
    the window's traffic ([G1.C1]...), when it began ([G1.O]) and how it compares with earlier windows
    ([G1.H]). Attribute values are log text: screened and redacted like keys."""
    out = []
    for i, c in enumerate(sg.contrast, start=1):
        value = _cut(redactor.redact(screen(c.value).text).text, max_chars)
        bound = f" (each share may be off by up to {c.error * 100:.1f} points)" if c.error else ""
        out.append((f"{gid}.C{i}", f"{c.field}={value}: {c.group_share * 100:.0f}% of this group, "
                                   f"{c.baseline_share * 100:.0f}% of other traffic{bound}"))
    o = sg.onset
    if o is not None:
        out.append((f"{gid}.O", f"rate rose at {_iso(o.at)[11:19]} UTC: {_num(o.before_rate)} -> {_num(o.after_rate)} "
                                f"events per {o.bucket_seconds} s (per bucket: {' '.join(str(n) for n in o.counts)})"))
    if sg.change:
        out.append((f"{gid}.H", f"against earlier windows: {sg.change}"))
    return tuple(out)


def build_digest(
    report: TopNReport, selected: Sequence[SelectedGroup], redactor: Redactor, config: DigestConfig = DigestConfig()
) -> Digest:
    groups: list[DigestGroup] = []
    for i, sg in enumerate(selected, start=1):
        gid = f"G{i}"
        keys = tuple(  # key values are log text too: screened before anything else
            (_cut(redactor.redact(k).text, 40), _cut(redactor.redact(screen(v).text).text, config.max_key_chars))
            for k, v in sg.keys.items()
        )
        reasons = tuple(_cut(redactor.redact(r).text, 120) for r in sg.reasons[: config.max_reasons])
        groups.append(
            DigestGroup(
                id=gid,
                keys=keys,
                value=sg.value,
                share=sg.share,
                trend=tuple(sg.trend[-config.max_trend :]),
                reasons=reasons,
                samples=choose_samples(sg.samples, redactor, config.samples_per_group, config.max_line_chars, gid),
                sample_lines=len(sg.samples),
                facts=fact_lines(sg, gid, redactor, config.max_key_chars),
            )
        )

    header = _header(report, redactor, config)
    # Fit the cap: drop samples from the last group backwards, then whole groups from the end.
    budget = [len(g.samples) for g in groups]
    kept = len(groups)
    omitted: list[str] = []

    def render() -> str:
        body = list(header)
        for g, n in zip(groups[:kept], budget):
            body += _group_lines(g, n)
        if omitted:
            body.append(f"omitted to fit the size cap: {', '.join(omitted)}")
        return "\n".join(body) + "\n"

    text = render()
    while _size(text) > config.max_bytes:
        # order of sacrifice: samples of later groups, later groups, then the first group's samples
        later = next((j for j in range(kept - 1, 0, -1) if budget[j] > 0), None)
        if later is not None:
            budget[later] -= 1
            omitted.append(groups[later].samples[budget[later]].id)
        elif kept > 1:
            kept -= 1
            omitted = [o for o in omitted if not o.startswith(groups[kept].id + ".")]
            omitted.append(groups[kept].id)
        elif budget and budget[0] > 0:
            budget[0] -= 1
            omitted.append(groups[0].samples[budget[0]].id)
        else:
            break
        omitted.sort(key=_id_order)
        text = render()
    if _size(text) > config.max_bytes:  # one group without samples still too long: cut the text
        text = text.encode()[: config.max_bytes - 4].decode("utf-8", "ignore") + "…\n"

    text = redactor.redact(text).text  # second pass over the exact text that will be quoted
    if _size(text) > config.max_bytes:  # a marker can be longer than what it replaced
        text = text.encode()[: config.max_bytes - 4].decode("utf-8", "ignore") + "…\n"
    return Digest(
        rule=report.rule,
        window=report.window,
        groups=tuple(groups[:kept]),
        text=text,
        digest_hash=_sha(text),
        redaction_counts=dict(sorted(redactor.totals.items())),
        omitted=tuple(omitted),
    )


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def _id_order(i: str) -> tuple[int, int]:
    g, _, s = i.partition(".S")
    return int(g[1:]), int(s or 0)
