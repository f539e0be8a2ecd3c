"""The AI boundary: the one place where a window's data meets a model.

    analyse_window(report, selected, config, analyser, budget, audit, clock) -> AnalysisOutcome

    nothing selected             -> nothing_selected (no digest, no call, no audit)
    config.enabled is False      -> disabled
    digest (redacted twice, size-capped) -> prompt (fixed system text, quoted data)
    per-call token limit, then an atomic budget reservation (calls per window, tokens per day)
        refused / budget store down   -> budget_exhausted, with the reason; no call
    audit record written *before* the call (status "calling"); if that fails, no call
    analyser.complete(system, user, max_tokens, json_schema)
        raises (timeout, HTTP, ...)   -> model_error, with the reason
    parse JSON, validate against the analysis schema (schemas/analysis.schema.json), check cited ids exist
        invalid -> one retry with the validation error appended (same analysis: tokens are
                   reserved again, the window's call count is not) -> invalid_output if still bad
    -> analysed, with tokens, latency, cost and the digest hash

Every model call leaves one audit record (updated after the call with tokens, latency, status
and the reply). Everything in it was redacted first: the prompt text is what was sent.
"""

from __future__ import annotations

import functools
import hashlib
import re
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources

import orjson

from processors.core.budget import (
    BudgetConfig,
    BudgetExhausted,
    estimate_tokens,
    per_call_refusal,
    utc_day,
)
from processors.core.digest import Digest, DigestConfig, build_digest
from processors.core.prompts import Prompt, build_prompt, retry_prompt
from processors.core.redact import DEFAULT_PATTERNS, Pattern, Redactor, window_key
from processors.core.replies import InvalidAnswer, strip_fence
from processors.core.types import (Analysis, AnalysisOutcome, AuditRecord, Hypothesis, ModelReply, Reservation,
                                   SelectedGroup, TopNReport)
from processors.errors import ConfigError
from processors.ports import Analyser, AuditSink, BudgetLedger

MAX_REPLY_CHARS = 4000


@functools.lru_cache(maxsize=1)
def _analysis_schema_text() -> str:
    """The answer schema ships inside the package (processors/data; schemas/ links to it)."""
    import jsonschema  # here, not at import: a finaliser run that asks no model never needs it

    text = resources.files("processors.data").joinpath("analysis.schema.json").read_text(encoding="utf-8")
    jsonschema.Draft202012Validator.check_schema(json.loads(text))
    return text


def load_analysis_schema() -> dict:
    """The analysis answer schema, a fresh copy each call (callers may change theirs)."""
    return json.loads(_analysis_schema_text())


@dataclass(frozen=True, slots=True)
class ModelPrice:
    input_per_1k: float = 0.0
    output_per_1k: float = 0.0

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return tokens_in / 1000 * self.input_per_1k + tokens_out / 1000 * self.output_per_1k


@dataclass(frozen=True, slots=True)
class BoundaryConfig:
    model_id: str
    redaction_secret: bytes  # >= 16 random bytes, from Secrets Manager; pseudonyms are HMACs under it
    language: str = "en"
    enabled: bool = True
    digest: DigestConfig = DigestConfig()
    budget: BudgetConfig = BudgetConfig()
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    patterns: tuple[Pattern, ...] = DEFAULT_PATTERNS
    schema: Mapping | None = None  # None: the packaged analysis schema
    tokenizer: Callable[[str], int] | None = None
    max_attempts: int = 2  # the first call plus one retry after an invalid answer
    audit_ttl_days: int = 90


# --- answer validation -------------------------------------------------------------------------


#: numbers as they are written in the digest (counts, shares, codes); ids like G1.S2 are not numbers
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?%?(?![\w.])")


def parse_analysis(text: str, schema: Mapping, digest: Digest, language: str = "en") -> Analysis:
    """Parse, validate against the schema, then check in code what a schema cannot: every cited id is a
    line of this digest; a hypothesis rests on a contrast or onset fact when the digest has any; no cause
    states a number the digest lacks, repeats a sample's free text, talks about the digest, or merely
    restates the facts (see `grounding_problem`). Those refuse the answer.

    Then, per item: a hypothesis that claims something about an attribute no computed fact is about (a
    response time where the log has none) is dropped, as is a hypothesis or next check written in a
    script the configured language does not use; text the schema's length limit cut off mid-word ends
    with an ellipsis. When no hypothesis is left, the answer is refused."""
    try:
        data = orjson.loads(strip_fence(text))
    except orjson.JSONDecodeError as exc:
        raise InvalidAnswer(f"not JSON: {exc}") from None
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "; ".join(f"{e.json_path}: {e.message[:120]}" for e in errors[:3])
        more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
        raise InvalidAnswer(f"does not match the schema: {shown}{more}")
    known = digest.line_ids()
    lines = digest_lines(digest)
    digest_numbers = set(_NUMBER.findall(digest.text))
    hypotheses = []
    for i, h in enumerate(data["hypotheses"]):
        unknown = [f for f in h["facts"] if f not in known]
        if unknown:
            raise InvalidAnswer(f"hypotheses[{i}] cites {', '.join(unknown)}, which the digest does not have; "
                                f"valid ids: {', '.join(sorted(known))}")
        invented = [n for n in _NUMBER.findall(h["cause"]) if n not in digest_numbers]
        if invented:
            raise InvalidAnswer(f"hypotheses[{i}] states {', '.join(invented[:3])}, which the digest does not contain; "
                                "quote only numbers that appear in the digest")
        problem = grounding_problem(h["cause"], h["facts"], digest)
        if problem:
            raise InvalidAnswer(f"hypotheses[{i}]: {problem}")
        hypotheses.append(Hypothesis(h["cause"], tuple(dict.fromkeys(h["facts"])), h["confidence"]))
    cause_max = _max_length(schema, "hypotheses", "cause")
    check_max = _max_length(schema, "next_checks")
    facts_text = "\n".join(line for line in digest.text.splitlines() if not _SAMPLE_LINE.match(line))
    kept, dropped = [], []
    for i, h in enumerate(hypotheses):
        problem = unsupported_claim(h.cause, facts_text) or foreign_script(h.cause, language)
        if problem:
            dropped.append(f"hypotheses[{i}]: {problem}")
            continue
        kept.append(replace(h, cause=tidy_cut(h.cause, cause_max)))
    if not kept:
        raise InvalidAnswer("; ".join(dropped))
    hypotheses = kept
    checks = []
    for i, c in enumerate(data["next_checks"]):
        problem = foreign_script(c, language)
        if problem:
            dropped.append(f"next_checks[{i}]: {problem}")
            continue
        checks.append(tidy_cut(c, check_max))
    explained = [fid for fid in known if _EXPLAINING.search(fid)]
    if explained and not any(_EXPLAINING.search(f) for h in hypotheses for f in h.facts):
        raise InvalidAnswer("no hypothesis cites a contrast or onset fact ("
                            + ", ".join(sorted(explained)[:6]) + "); say what distinguishes the group or when it began")
    top = hypotheses[0]
    return Analysis(
        likely_cause=top.cause,
        evidence=tuple(f"[{f}] {lines.get(f, '')}".rstrip() for f in top.facts),
        next_checks=tuple(checks),
        confidence=top.confidence,
        hypotheses=tuple(hypotheses),
        dropped=tuple(dropped),
    )


def _max_length(schema: Mapping, *path: str) -> int | None:
    """maxLength of a string inside the schema (`hypotheses` -> items -> `cause`), None if unbounded."""
    node: Mapping | None = schema
    for key in path:
        node = ((node or {}).get("properties") or {}).get(key)
        if node is not None and node.get("type") == "array":
            node = node.get("items")
    return (node or {}).get("maxLength") if isinstance(node, Mapping) else None


#: English words a sentence does not end on: text near the limit that ends on one was cut short
_DANGLING = frozenset("a an and as at by for from in into of on or than that the to with which who whose is are "
                      "was were be its their his her our your possibly due because".split())
_NEAR_LIMIT = 12  # characters: a model writing under a grammar's length bound stops this close to it, mid-phrase


def tidy_cut(text: str, limit: int | None) -> str:
    """Text the model wrote up to the schema's length limit was cut there by the grammar, mid-word or
    mid-sentence: end it at the last whole word with an ellipsis, so people see that it was cut. Text
    that stops just short of the limit on a word no sentence ends on ("... and functioning as") was cut
    short by the model itself, closing the string before the bound: the dangling words go, and the
    ellipsis says so."""
    if limit is None:
        return text.strip()
    if len(text) < limit:
        words = text.strip().split(" ")
        if len(text) < limit - _NEAR_LIMIT or len(words) < 4 or words[-1].lower() not in _DANGLING:
            return text.strip()
        while len(words) > 2 and words[-1].lower().rstrip(",;:") in _DANGLING:
            words.pop()
        return " ".join(words).rstrip(" ,;:-(") + "…"
    head = text[: limit - 1].rstrip()
    space = head.rfind(" ")
    if space >= limit // 2:
        head = head[:space]
    return head.rstrip(" ,;:-(") + "…"


#: a claim about one attribute, and the words that show a computed fact is about that attribute
_CLAIMS: tuple[tuple[str, re.Pattern, re.Pattern], ...] = tuple(
    (name, re.compile(claim, re.IGNORECASE), re.compile(backed, re.IGNORECASE)) for name, claim, backed in (
        ("response time", r"\bresponse[- ]times?\b|\blatenc(?:y|ies)\b|\bslow(?:er|ness|ly)?\b",
         r"response_time|latency|processing_time|request_time|duration"),
        ("the upstream target", r"\bupstream\b|\bbackend (?:target|instance|node|host)\b|\btarget\b",
         r"\btarget\b|upstream"),
        ("the user agent or client release", r"\buser[- ]agents?\b|\bclient (?:release|version|build)\b",
         r"user_agent|\bagent\b"),
        ("the referer", r"\breferr?ers?\b", r"\breferr?er\b"),
        ("response sizes", r"\b(?:payload|response|body) sizes?\b|\bempty (?:responses?|repl(?:y|ies)|bod(?:y|ies))\b",
         r"\bbytes\b|\bsize\b"),
        ("the protocol", r"\bprotocol\b|\bHTTP/\d", r"\bprotocol\b|\bHTTP/\d"),
        ("the client network", r"\bsubnet\b|\bnetwork\b|\bIP range\b", r"client_network|\bnetwork\b|\b\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}\b"),
    ))


def unsupported_claim(cause: str, facts_text: str) -> str | None:
    """A hypothesis about an attribute no computed fact of the digest is about (a response time, where
    the logs carry none) is not grounded, however plausible it sounds: why, or None."""
    for name, claim, backed in _CLAIMS:
        m = claim.search(cause)
        if m and not backed.search(facts_text):
            return (f"it speaks of {name} ({m.group(0)!r}), which no computed fact is about; "
                    "a hypothesis may only use attributes the facts show")
    return None


_SCRIPTS = {"en": re.compile(r"[\u0400-\u04ff\u0590-\u06ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")}


def foreign_script(text: str, language: str) -> str | None:
    """Text in a script the configured language does not use (a small model's stray Chinese in an
    English answer): why, or None. Languages without a rule here are not checked."""
    pattern = _SCRIPTS.get(language.split("-")[0].lower())
    m = pattern.search(text) if pattern else None
    return f"it is written partly in another script than {language!r} ({m.group(0)!r})" if m else None


_LINE_ID = re.compile(r"^\s*\[(G\d{1,2}(?:\.(?:C\d|O|H|S\d{1,2}))?)\]\s?(.*)$")
#: fact ids that explain a group: contrast (what distinguishes it) and onset (when it began)
_EXPLAINING = re.compile(r"\.(?:C\d|O)$")


def digest_lines(digest: Digest) -> dict[str, str]:
    """id -> the computed text of that digest line (what a hypothesis cites)."""
    out = {}
    for line in digest.text.splitlines():
        m = _LINE_ID.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


_SAMPLE_LINE = re.compile(r"^\s*\[G\d{1,2}\.S\d{1,2}\]")
#: a cause that describes the input instead of the incident ("the digest shows that the rule ... has not been applied")
_META = re.compile(r"\b(?:the\s+)?(?:digest|prompt|user message|system message|quoted data|data block|line ids?|log data)\b"
                   r"|\bnot (?:present |found |shown )?in the (?:data|logs?|facts)\b"
                   r"|sieve-data|\brule\s+'?[\w-]+'?\s+(?:has|was|is)\s+(?:not\s+)?(?:been\s+)?appl"
                   r"|ダイジェスト|プロンプト", re.IGNORECASE)
#: a cause sharing a run of this many words with a sample line, and not with the computed facts, repeats free text
SHINGLE = 4


def _shingles(text: str) -> set[tuple[str, ...]]:
    """Runs of SHINGLE plain words (letters only: paths, versions, numbers and ids are structure, not prose)."""
    words = [w.casefold() for w in (t.strip("\"'.,;:!?()[]{}<>") for t in text.split()) if w.isalpha()]
    return {tuple(words[i : i + SHINGLE]) for i in range(len(words) - SHINGLE + 1)}


def grounding_problem(likely_cause: str, cited: Sequence[str], digest: Digest) -> str | None:
    """Why an answer's cause is not grounded in computed facts, or None.

    Log text is attacker-controlled: a sample line can carry a ready-made "root cause". So the cause must
    rest on a group line (its keys, counts, share, trend, why it was selected: computed by Sieve), which
    the evidence must cite, and it must not repeat a run of words that only a sample line contains."""
    if not any(".S" not in c for c in cited):
        return ("it cites only sample lines; cite the computed facts ([G1], [G1.C1], [G1.O] ...) the cause rests on")
    meta = _META.search(likely_cause)
    if meta:
        return (f"the cause talks about the digest or the prompt ({meta.group(0)!r}), not about the incident; "
                "name what fails, for whom, since when, using the computed facts")
    lines = digest.text.splitlines()
    sample_runs = set().union(*(_shingles(line) for line in lines if _SAMPLE_LINE.match(line)))
    fact_runs = set().union(*(_shingles(line) for line in lines if not _SAMPLE_LINE.match(line)))
    copied = sorted((_shingles(likely_cause) & sample_runs) - fact_runs)
    if copied:
        return (f"the cause repeats free text of a sample line ({' '.join(copied[0])!r}); state it in "
                "terms of the computed facts, not of what a log line says")
    fact_words = {w for line in lines if not _SAMPLE_LINE.match(line) for w in _words(line)}
    added = [w for w in _words(likely_cause) if w not in fact_words and w not in _STOP and len(w) > 3]
    if not added and not _CJK.search(likely_cause):
        return "the cause only restates the computed facts; say what they mean (a release, a target, a partner, a change)"
    return None


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_STOP = frozenset("this that these those with from have been were their there which while into than then only also "
                  "very more most many much some such rate rise rose rising group groups window windows traffic other "
                  "share events event requests request errors error status path client clients".split())


def _words(text: str) -> list[str]:
    return [w for w in (t.strip("\"'.,;:!?()[]{}<>=/") .casefold() for t in re.split(r"[\s/=:,]+", text)) if w.isalpha()]


# --- orchestration -----------------------------------------------------------------------------


def fit_digest_to_budget(config: BoundaryConfig) -> DigestConfig:
    """Lower the digest's byte cap so a full digest still fits tokens_per_call: the budget minus the
    output tokens, in bytes at bytes_per_token, minus the fixed prompt text, minus 10% for the
    `| ` quoting of every line."""
    b = config.budget
    empty = build_prompt("", config.language)
    overhead = len(f"{empty.system}\n{empty.user}".encode())
    room = int(((b.tokens_per_call - b.max_output_tokens) * b.bytes_per_token - overhead) * 0.9)
    if room >= config.digest.max_bytes:
        return config.digest
    return replace(config.digest, max_bytes=max(500, room))


def _cut(s: str, n: int) -> str:
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def analyse_window(
    report: TopNReport,
    selected: Sequence[SelectedGroup],
    config: BoundaryConfig,
    analyser: Analyser,
    budget: BudgetLedger,
    audit: AuditSink,
    clock: Callable[[], float],
) -> AnalysisOutcome:
    if not selected:
        return AnalysisOutcome(status="nothing_selected", reason="no contributor passed the selection rules")
    if not config.enabled:
        return AnalysisOutcome(status="disabled", reason="ai analysis is disabled for this pipeline")

    redactor = Redactor(window_key(config.redaction_secret, report.rule, report.window), config.patterns)
    digest = build_digest(report, selected, redactor, fit_digest_to_budget(config))
    schema = dict(config.schema) if config.schema is not None else load_analysis_schema()
    prompt = build_prompt(digest.text, config.language)
    window_id = f"{report.rule}#{report.window.key}"
    selected_keys = tuple(", ".join(f"{k}={v}" for k, v in g.keys) for g in digest.groups)
    price = config.prices.get(config.model_id, ModelPrice())

    totals = {"tokens_in": 0, "tokens_out": 0, "latency_ms": 0, "cost": 0.0}
    model_id = config.model_id

    def outcome(status: str, reason: str, analysis: Analysis | None = None) -> AnalysisOutcome:
        return AnalysisOutcome(
            status=status,  # type: ignore[arg-type]
            analysis=analysis,
            reason=reason,
            model_id=model_id,
            tokens_in=totals["tokens_in"],
            tokens_out=totals["tokens_out"],
            latency_ms=totals["latency_ms"],
            estimated_cost_usd=round(totals["cost"], 6),
            digest_hash=digest.digest_hash,
        )

    def base_record(attempt: int, p: Prompt, status: str, reason: str, estimate: int) -> AuditRecord:
        now = clock()
        ident = hashlib.sha256(f"{window_id}|{p.sha256}|{attempt}|{now!r}".encode()).hexdigest()
        return AuditRecord(
            audit_id=f"{int(now * 1000):013d}-{ident[:8]}",
            created_at=now,
            rule=report.rule,
            window_start=report.window.start,
            window_end=report.window.end,
            attempt=attempt,
            status=status,
            reason=reason,
            model_id=config.model_id,
            prompt_system=p.system,
            prompt_user=p.user,
            prompt_sha256=p.sha256,
            digest_hash=digest.digest_hash,
            selected_keys=selected_keys,
            redaction_counts=dict(digest.redaction_counts),
            estimated_tokens=estimate,
            expires_at=int(now) + config.audit_ttl_days * 86400,
        )

    current = prompt
    last_error = ""
    for attempt in range(1, config.max_attempts + 1):
        estimate = estimate_tokens(
            current.system + "\n" + current.user, tokenizer=config.tokenizer, bytes_per_token=config.budget.bytes_per_token
        )
        refusal = per_call_refusal(estimate, config.budget)
        reservation: Reservation | None = None
        if refusal is None:
            try:
                reservation = budget.reserve(
                    day=utc_day(clock()),
                    window_id=window_id,
                    tokens=estimate + config.budget.max_output_tokens,
                    config=config.budget,
                    new_call=attempt == 1,
                )
            except BudgetExhausted as exc:
                refusal = exc.reason
            except Exception as exc:  # noqa: BLE001 - a ledger we cannot reach means no call (fail closed)
                refusal = f"budget store unavailable: {type(exc).__name__}: {_cut(exc, 200)}"
        if refusal is not None:
            _safe_record(audit, base_record(attempt, current, "budget_exhausted", refusal, estimate))
            if attempt == 1:
                return outcome("budget_exhausted", refusal)
            return outcome("invalid_output", f"{last_error}; retry not made: {refusal}")

        record = base_record(attempt, current, "calling", "", estimate)
        try:
            audit.record(record)
        except Exception as exc:  # noqa: BLE001 - no audit record, no call
            budget.settle(reservation, 0)
            return outcome("model_error", f"not called: audit store failed: {type(exc).__name__}: {_cut(exc, 200)}")

        started = clock()
        try:
            reply: ModelReply = analyser.complete(
                current.system, current.user, max_tokens=config.budget.max_output_tokens, json_schema=schema
            )
        except Exception as exc:  # noqa: BLE001 - timeouts, HTTP errors, a dead model server: all model_error
            elapsed = int((clock() - started) * 1000)
            totals["latency_ms"] += elapsed
            budget.settle(reservation, estimate)  # the prompt was probably consumed; be conservative
            reason = f"{type(exc).__name__}: {_cut(redactor.redact(str(exc)).text, 200)}"
            note = _safe_record(audit, replace(record, status="model_error", reason=reason, latency_ms=elapsed))
            return outcome("model_error", reason + note)

        model_id = reply.model_id or config.model_id
        budget.settle(reservation, reply.tokens_in + reply.tokens_out)
        cost = config.prices.get(model_id, price).cost(reply.tokens_in, reply.tokens_out)
        totals["tokens_in"] += reply.tokens_in
        totals["tokens_out"] += reply.tokens_out
        totals["latency_ms"] += reply.latency_ms
        totals["cost"] += cost
        done = replace(
            record,
            model_id=model_id,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            latency_ms=reply.latency_ms,
            estimated_cost_usd=round(cost, 6),
            reply_text=reply.text[:MAX_REPLY_CHARS],
        )
        try:
            analysis = parse_analysis(reply.text, schema, digest, config.language)
        except InvalidAnswer as exc:
            last_error = f"attempt {attempt}: {exc}"
            note = _safe_record(audit, replace(done, status="invalid_output", reason=_cut(str(exc), 500)))
            if attempt == config.max_attempts:
                return outcome("invalid_output", _cut(last_error, 500) + note)
            current = retry_prompt(prompt, str(exc))
            continue
        kept = f"; dropped {'; '.join(analysis.dropped)}" if analysis.dropped else ""
        note = _safe_record(audit, replace(done, status="analysed", reason=_cut(kept[2:], 500)))
        return outcome("analysed", _cut(f"attempt {attempt}{kept}", 700) + note, analysis)
    return outcome("invalid_output", last_error)  # max_attempts < 1


def _safe_record(audit: AuditSink, record: AuditRecord) -> str:
    """Write an audit update; a failure is reported in the outcome's reason, never swallowed."""
    try:
        audit.record(record)
    except Exception as exc:  # noqa: BLE001
        return f"; audit update failed: {type(exc).__name__}: {_cut(exc, 120)}"
    return ""
