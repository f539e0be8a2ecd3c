"""Does what people read in Slack explain the incident? A labelled incident suite, scored.

For every incident kind of the generator (processors/core/generate.py: each caused by ONE attribute,
recorded in the truth as `cause = {field, value}`) and every format that logs that attribute
(CLF/combined, JSON lines, ALB entries), plus windows with no incident at all:

    generated window set (a few quiet windows, the incident in one window)
      -> LogIngest over two shards -> Finaliser, in process on the memory ports
         (processors/adapters/memory.py), with the settings of pipelines.yaml (window, state, top-N,
         selection, AI budgets, redaction, and its `explain` section once it has one) and the rules of
         the format's folder (see RULES below)
      -> once with the analyser disabled (facts only), once per local model (LlamaChat in process:
         the default model, and --model-path if given)

and score, per (kind, format):

  (a) the top contrast fact of the incident's group names the cause (field and value). When the cause
      is the very attribute the rule groups by (a 404 scanner grouped by client, a path template grouped
      by template, an ALB target grouped by target), no contrast can name it: it is named by the group
      key, scored `key`. `rank` is where the cause stands among the group's contrast facts.
  (b) the model's top hypothesis names it: it cites the cause's contrast fact, or its text contains the
      cause value (as the digest shows it: redacted values, e.g. a client network's pseudonym, count).
  (c) nothing is selected, and no hypothesis posted, in a window without an incident.

Also per model call: tokens in/out and latency, and every refused answer with the validator's reason.

Rules: the Count rules of each format's folder, and one rule this benchmark adds because no shipped rule
counts 4xx other than 404 (`client-errors-by-path`, written below; the generator's truth counts it).
The Sum rule `bytes-by-client` is left out: selection is one setting for all rules (min_count 20), and a
byte sum passes it in every window (so `bytes_hog` is not scored); `alb/slow-by-path` (seconds) is in.
The model pass finalises only the incident's rule (one model call per incident window, not one per rule).

    .venv/bin/python bench/bench_explain.py            # every kind x format, the default model (~15 min on 2 cores)
    .venv/bin/python bench/bench_explain.py --quick    # 3 kinds
    .venv/bin/python bench/bench_explain.py --no-model # facts only (a and c), seconds
    .venv/bin/python bench/bench_explain.py --model-path ~/.cache/sieve/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf

Writes bench/results/explain.json and prints a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.adapters.memory import MemoryAudit, MemoryNotifier, MemoryWindowStore  # noqa: E402
from processors.adapters.sqs import LogRejectSink  # noqa: E402
from processors.config import load  # noqa: E402
from processors.config.rule_files import load_rule_file  # noqa: E402
from processors.core.budget import InMemoryBudgetLedger  # noqa: E402
from processors.core.finalise import Finaliser  # noqa: E402
from processors.core.generate import (CLIENT_ERROR_STATUSES, CLIENT_ERRORS_RULE, INCIDENT_KINDS, AccessLogGenerator,  # noqa: E402
                                      GeneratorConfig, IncidentSpec, cause_observable)
from processors.core.ingest import LogIngest, line_batches  # noqa: E402
from processors.core.parse import path_template  # noqa: E402
from processors.core.redact import Redactor, window_key  # noqa: E402
from processors.core.types import Window  # noqa: E402
from processors.wiring import finalise_config, ingest_config  # noqa: E402

FORMATS = ("combined", "json", "alb")
QUICK_KINDS = ("burst500", "network_hammer", "slow_backend")
CLOCK = 1_800_000_000
SECRET = b"bench-explain-redaction-key-32b!"
SHARDS = 2

#: the Count rules of each format's folder (+ slow-by-path for ALB: seconds, which background never sums to 20)
RULES = {
    "combined": ["rules/errors-by-path.json", "rules/errors-by-path-template.json", "rules/404-by-client.json"],
    "json": ["rules/json/errors-by-path.json", "rules/json/errors-by-path-template.json", "rules/json/404-by-client.json"],
    "alb": ["rules/alb/5xx-by-target.json", "rules/alb/errors-by-path-template.json", "rules/alb/404-by-client.json",
            "rules/alb/slow-by-path.json"],
}
_IN = [str(s) for s in CLIENT_ERROR_STATUSES]
#: 4xx other than 404 by path: what a throttled or rejected client looks like (no shipped rule counts it)
CLIENT_ERRORS = {
    "combined": {"LogFormat": "CLF", "Fields": {"6": "status"},
                 "Contribution": {"Keys": ["path"], "Filters": [{"Match": "status", "In": _IN}]}},
    "json": {"LogFormat": "JSON", "Contribution": {"Keys": ["$.path"], "Filters": [{"Match": "$.status", "In": _IN}]}},
    "alb": {"LogFormat": "JSON", "Contribution": {"Keys": ["$.path"], "Filters": [{"Match": "$.elb_status_code", "In": _IN}]}},
}
#: the dimension a rule's key is (a cause on that dimension is named by the key, never by a contrast)
KEY_DIM = {"errors-by-path": "path_template", "errors-by-path-template": "path_template", "slow-by-path": "path_template",
           CLIENT_ERRORS_RULE: "path_template", "404-by-client": "client_network", "bytes-by-client": "client_network",
           "5xx-by-target": "target"}
_FACT = re.compile(r"\[(G\d{1,2}\.C\d)\]\s([a-z_]+)=(.*?): \d+% of this group")
_REASONS = (("not JSON", "not JSON"), ("does not match the schema", "schema"), ("which the digest does not have", "unknown fact id"),
            ("which the digest does not contain", "invented number"), ("cites only sample lines", "only sample lines"),
            ("talks about the digest", "talks about the digest"), ("repeats free text", "repeats a sample"),
            ("only restates", "only restates the facts"), ("no hypothesis cites a contrast", "no contrast/onset cited"),
            ("budget", "budget"))


# ------------------------------------------------------------------------------------------ setup


def rule_set(fmt: str, tmp: Path) -> tuple:
    rules = [load_rule_file(ROOT / r) for r in RULES[fmt]]
    path = tmp / fmt / f"{CLIENT_ERRORS_RULE}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"Schema": {"Name": "CloudWatchLogRule", "Version": 1}, "LogGroupNames": ["/sieve/access*"],
           **CLIENT_ERRORS[fmt], "AggregateOn": "Count"}
    path.write_bytes(orjson.dumps(doc))
    return tuple(rules) + (load_rule_file(path),)


def applicable(kind: str, fmt: str, names: set[str]) -> str | None:
    """None if (kind, fmt) is scored, else why not."""
    if kind == "none":
        return None
    from processors.core.generate import ALB_INCIDENT_RULE, INCIDENT_RULE

    if not cause_observable(kind, fmt):
        return "this format does not log the cause's dimension"
    rule = (ALB_INCIDENT_RULE if fmt == "alb" else INCIDENT_RULE)[kind]
    if rule not in names:
        return f"its rule {rule} is a Sum the global selection cannot gate"
    return None


def batches(lines, size=250):
    return line_batches(lines, shards=SHARDS, size=size)


def run_pipeline(loaded, lines, *, rules_to_finalise=None, analyser=None, model_id=None) -> tuple[dict, MemoryAudit]:
    store = MemoryWindowStore(clock=lambda: CLOCK)
    ingest = LogIngest(ingest_config(loaded), store, LogRejectSink(), clock=lambda: CLOCK)
    for batch in batches(lines):
        if ingest.process(batch).failed_sequence is not None:
            raise RuntimeError("ingest failed a batch")
    cfg = finalise_config(loaded, SECRET)
    boundary = dataclasses.replace(cfg.boundary, enabled=analyser is not None,
                                   model_id=model_id or cfg.boundary.model_id)
    cfg = dataclasses.replace(cfg, boundary=boundary, rules=tuple(rules_to_finalise or cfg.rules))
    audit = MemoryAudit()
    fin = Finaliser(cfg, store, analyser=analyser, budget=InMemoryBudgetLedger(), audit=audit, notifier=MemoryNotifier(),
                    clock=lambda: CLOCK)
    return fin.run(flush=True), audit


# ------------------------------------------------------------------------------------------ scoring


def _facts(group: dict) -> list[tuple[str, str, float, float]]:
    out = []
    for c in group.get("contrast") or ():
        if isinstance(c, dict):
            out.append((c.get("field"), str(c.get("value")), c.get("group_share", 0.0), c.get("baseline_share", 0.0)))
        else:  # a list [field, value, group_share, baseline_share, ...]
            out.append((c[0], str(c[1]), c[2] if len(c) > 2 else 0.0, c[3] if len(c) > 3 else 0.0))
    return out


def _key_names_cause(rule: str, key: str, cause: dict) -> bool:
    if KEY_DIM.get(rule) != cause["field"]:
        return False
    if cause["field"] == "client_network":
        from processors.core.explain import client_network

        return client_network(key) == cause["value"]
    if cause["field"] == "path_template":
        return path_template(key) == cause["value"]
    return key == cause["value"]


def score_facts(result: dict, truth: dict) -> dict:
    """(a) and (c) from the facts-only pass."""
    incident_windows = {w["window"][0] for i in truth["incidents"] for w in i["windows"]}
    selected_elsewhere = []
    for d in result["finalised"]:
        start = int(d["window"].split("-")[0])
        if start not in incident_windows and d.get("selected"):
            groups = d["report"]["selected"]
            selected_elsewhere.append({"rule": d["rule"], "window": d["window"], "keys": [g["keys"] for g in groups]})
    out: dict = {"c": not selected_elsewhere, "selected_without_incident": selected_elsewhere,
                 "quiet_windows": len({int(d["window"].split("-")[0]) for d in result["finalised"]} - incident_windows)}
    if not truth["incidents"]:
        return out
    inc = truth["incidents"][0]
    w = max(inc["windows"], key=lambda x: x["incident_lines"])
    doc = next((d["report"] for d in result["finalised"] if d["rule"] == inc["rule"]
                and int(d["window"].split("-")[0]) == w["window"][0]), None)
    group = None if doc is None else next(
        (g for g in doc["selected"] if [str(v) for v in g["keys"].values()] == [str(k) for k in inc["rule_keys"]]), None)
    cause = inc["cause"]
    out.update(rule=inc["rule"], window=w["window"], key=inc["rule_keys"], cause=cause)
    if group is None:
        out.update(a="not selected", a_pass=False, rank=None, top_fact=None, facts=[],
                   selected=[g["keys"] for g in (doc or {}).get("selected", [])])
        return out
    facts = _facts(group)
    rank = next((i + 1 for i, f in enumerate(facts) if f[0] == cause["field"] and f[1] == cause["value"]), None)
    by_key = _key_names_cause(inc["rule"], inc["rule_keys"][0], cause)
    a = "contrast" if rank == 1 else "key" if by_key else "no"
    # a cause fact as far from the baseline as the top fact lost (or won) only on the tie-break (field name)
    diff = [round(abs(gs - bs), 9) for _, _, gs, bs in facts]
    tied = rank is not None and len(facts) > 1 and sum(d == diff[0] for d in diff) > 1 and diff[rank - 1] == diff[0]
    out.update(a=a, a_pass=a != "no", rank=rank, by_key=by_key, tied_at_top=tied,
               top_fact=f"{facts[0][0]}={facts[0][1]}" if facts else None,
               facts=[{"field": f, "value": v, "group_share": round(gs, 4), "baseline_share": round(bs, 4)}
                      for f, v, gs, bs in facts],
               onset=group.get("onset"), change=group.get("change"), value=group["value"])
    return out


def _reason_class(reason: str) -> str:
    for needle, name in _REASONS:
        if needle in reason:
            return name
    return "other"


def score_model(result: dict, audit: MemoryAudit, truth: dict, loaded) -> dict:
    """(b) and (c) from a model pass, with every call's tokens, latency and refusal reason."""
    calls = [{"rule": r.rule, "window_start": r.window_start, "attempt": r.attempt, "status": r.status,
              "reason": r.reason[:300], "reason_class": _reason_class(r.reason) if r.status != "analysed" else "",
              "tokens_in": r.tokens_in, "tokens_out": r.tokens_out, "latency_ms": r.latency_ms}
             for r in audit.records if r.status != "calling"]
    incident_windows = {w["window"][0] for i in truth["incidents"] for w in i["windows"]}
    posted_elsewhere = [d["window"] for d in result["finalised"]
                        if int(d["window"].split("-")[0]) not in incident_windows and d["status"] == "analysed"]
    out: dict = {"c": not posted_elsewhere, "posted_without_incident": posted_elsewhere, "calls": calls,
                 "tokens_in": sum(c["tokens_in"] for c in calls), "tokens_out": sum(c["tokens_out"] for c in calls),
                 "latency_ms": sum(c["latency_ms"] for c in calls)}
    if not truth["incidents"]:
        return out
    inc = truth["incidents"][0]
    w = max(inc["windows"], key=lambda x: x["incident_lines"])
    d = next((d for d in result["finalised"] if d["rule"] == inc["rule"]
              and int(d["window"].split("-")[0]) == w["window"][0]), None)
    if d is None:
        out.update(b=False, outcome="window not finalised")
        return out
    outcome = d["report"]["outcome"]
    out.update(outcome=outcome["status"], reason=outcome["reason"][:300])
    analysis = outcome.get("analysis")
    cause = inc["cause"]
    boundary = finalise_config(loaded, SECRET).boundary
    redactor = Redactor(window_key(SECRET, inc["rule"], Window(*w["window"])), boundary.patterns)
    names = {cause["value"], redactor.redact(cause["value"]).text}
    if _key_names_cause(inc["rule"], inc["rule_keys"][0], cause):
        names |= {inc["rule_keys"][0], redactor.redact(inc["rule_keys"][0]).text}
    answered = [r for r in audit.records if r.rule == inc["rule"] and r.window_start == w["window"][0]
                and r.status in ("analysed", "invalid_output")]
    prompt = answered[-1].prompt_user if answered else ""
    digest_facts = [(fid, field, value) for fid, field, value in _FACT.findall(prompt)]
    cause_ids = {fid for fid, field, value in digest_facts if field == cause["field"] and value in names}
    out["cause_fact_ids"] = sorted(cause_ids)

    def names_cause(h: dict) -> tuple[bool, bool]:
        return (bool(cause_ids & set(h.get("facts") or ())),
                any(n.casefold() in str(h.get("cause", "")).casefold() for n in names if n))

    if outcome["status"] != "analysed" or not analysis or not analysis.get("hypotheses"):
        # what the refused answer said (never posted): would its top hypothesis have named the cause?
        top = None
        if answered:
            try:
                top = orjson.loads(answered[-1].reply_text)["hypotheses"][0]
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                top = None
        cited, said = names_cause(top) if isinstance(top, dict) else (False, False)
        out.update(b=False, refused_top_hypothesis=top, refused_answer_named_cause=cited or said)
        return out
    top = analysis["hypotheses"][0]
    cited, said = names_cause(top)
    out.update(b=cited or said, b_cited=cited, b_text=said, top_hypothesis=top, hypotheses=len(analysis["hypotheses"]))
    return out


# ------------------------------------------------------------------------------------------ main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_KINDS)} (and windows with no incident)")
    ap.add_argument("--kinds", help="comma-separated incident kinds (default: all)")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--windows", type=int, default=5, help="windows per set; the incident is in the 4th (default 5)")
    ap.add_argument("--lines-per-window", type=int, default=600)
    ap.add_argument("--count", type=int, default=60, help="incident lines (default 60, one window)")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--no-model", action="store_true", help="facts only: score (a) and (c)")
    ap.add_argument("--model-path", help="a second GGUF model to score beside the default one")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "explain.json"))
    args = ap.parse_args(argv)

    kinds = tuple(args.kinds.split(",")) if args.kinds else QUICK_KINDS if args.quick else INCIDENT_KINDS
    kinds = kinds + ("none",)
    formats = tuple(args.formats.split(","))
    base = load(str(ROOT / "pipelines.yaml"))
    period = base.config.pipelines.logs.window.period_seconds
    at_window = min(3, args.windows - 1)
    started = time.perf_counter()

    tmp = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    loaded = {fmt: dataclasses.replace(base, rules=rule_set(fmt, tmp)) for fmt in formats}
    runs, skipped, cache = [], [], {}
    for kind in kinds:
        for fmt in formats:
            why = applicable(kind, fmt, {r.name for r in loaded[fmt].rules})
            if why:
                skipped.append({"kind": kind, "format": fmt, "why": why})
                continue
            incidents = () if kind == "none" else (IncidentSpec(kind, at=at_window * period, count=args.count),)
            gen = AccessLogGenerator(GeneratorConfig(seed=args.seed, lines=args.windows * args.lines_per_window,
                                                     duration=args.windows * period, period=period, format=fmt,
                                                     incidents=incidents))
            lines = list(gen.lines())
            truth = gen.truth()
            cache[(kind, fmt)] = (lines, truth)
            t0 = time.perf_counter()
            result, _ = run_pipeline(loaded[fmt], lines)
            facts = score_facts(result, truth)
            facts["seconds"] = round(time.perf_counter() - t0, 2)
            runs.append({"kind": kind, "format": fmt, "facts": facts, "models": {}})
            print(f"facts {kind:16} {fmt:8} a={facts.get('a', '-'):12} top={facts.get('top_fact')} c={facts['c']}",
                  file=sys.stderr, flush=True)
    facts_seconds = time.perf_counter() - started
    explain_landed = any(r["facts"].get("facts") for r in runs) or any("contrast" in str(r["facts"]) for r in runs)

    models = []
    if not args.no_model:
        from processors.adapters.llama import LlamaChat

        paths = [None] + ([args.model_path] if args.model_path else [])
        for path in paths:
            chat = LlamaChat(path)
            info = {"model_id": chat.model_id, "path": str(chat.model_path), "load_seconds": round(chat.load_seconds, 2),
                    "threads": chat.n_threads}
            t_model = time.perf_counter()
            for run in runs:
                lines, truth = cache[(run["kind"], run["format"])]
                only = [truth["incidents"][0]["rule"]] if truth["incidents"] else None
                result, audit = run_pipeline(loaded[run["format"]], lines, rules_to_finalise=only, analyser=chat,
                                             model_id=chat.model_id)
                m = score_model(result, audit, truth, loaded[run["format"]])
                run["models"][chat.model_id] = m
                print(f"model {chat.model_id[:28]:28} {run['kind']:16} {run['format']:8} b={m.get('b', '-')} "
                      f"c={m['c']} {m.get('outcome', '')} tok={m['tokens_in']}/{m['tokens_out']} "
                      f"{m['latency_ms'] / 1000:.1f}s", file=sys.stderr, flush=True)
            info["seconds"] = round(time.perf_counter() - t_model, 1)
            models.append(info)
            chat.close()

    summary = summarise(runs, models)
    doc = {
        "benchmark": "bench/bench_explain.py",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": _git(),
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg(), "python": platform.python_version()},
        "contrast_computed": explain_landed,
        "settings": {"windows": args.windows, "incident_window": at_window, "lines_per_window": args.lines_per_window,
                     "incident_lines": args.count, "seed": args.seed, "period": period,
                     "rules": {f: [r.name for r in loaded[f].rules] for f in formats},
                     "selection": dataclasses.asdict(finalise_config(base, SECRET).selection),
                     "client_errors_rule": CLIENT_ERRORS},
        "models": models,
        "seconds": {"facts": round(facts_seconds, 1), "total": round(time.perf_counter() - started, 1)},
        "summary": summary,
        "skipped": skipped,
        "runs": runs,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str) + b"\n")
    print_table(runs, models, summary, explain_landed)
    print(f"\nwrote {out} ({doc['seconds']['total']} s)")
    return 0


def summarise(runs: list[dict], models: list[dict]) -> dict:
    scored = [r for r in runs if r["kind"] != "none"]
    s: dict = {"incident_runs": len(scored), "quiet_runs": len(runs) - len(scored),
               "a": sum(r["facts"].get("a_pass", False) for r in scored),
               "a_by_contrast": sum(r["facts"].get("a") == "contrast" for r in scored),
               "a_by_key": sum(r["facts"].get("a") == "key" for r in scored),
               "cause_tied_with_top_fact": sum(bool(r["facts"].get("tied_at_top")) for r in scored),
               "not_selected": sum(r["facts"].get("a") == "not selected" for r in scored),
               "c": sum(r["facts"]["c"] for r in runs),
               "top_fact_fields_when_wrong": dict(Counter((r["facts"].get("top_fact") or "none").split("=")[0]
                                                          for r in scored if r["facts"].get("a") == "no")),
               "models": {}}
    for m in models:
        mid = m["model_id"]
        per = [r["models"][mid] for r in runs if mid in r["models"]]
        calls = [c for p in per for c in p["calls"]]
        refused = [p for p in per if p.get("outcome") == "invalid_output"]
        s["models"][mid] = {
            "b": sum(p.get("b", False) for p, r in zip(per, runs) if r["kind"] != "none"),
            "b_cited": sum(p.get("b_cited", False) for p in per), "b_text": sum(p.get("b_text", False) for p in per),
            "c": sum(p["c"] for p in per), "calls": len(calls),
            "answers_refused": len(refused),
            "refused_answers_that_named_the_cause": sum(bool(p.get("refused_answer_named_cause")) for p in refused),
            "refusal_reasons": dict(Counter(c["reason_class"] for c in calls if c["status"] == "invalid_output")),
            "other_outcomes": dict(Counter(p.get("outcome") for p in per if p.get("outcome") not in (None, "analysed", "invalid_output"))),
            "tokens_in_per_call": round(sum(c["tokens_in"] for c in calls) / max(1, len(calls))),
            "tokens_out_per_call": round(sum(c["tokens_out"] for c in calls) / max(1, len(calls))),
            "latency_s_per_call": round(sum(c["latency_ms"] for c in calls) / max(1, len(calls)) / 1000, 2),
            "latency_s_max": round(max((c["latency_ms"] for c in calls), default=0) / 1000, 2),
        }
    return s


def _mark(v) -> str:
    return "-" if v is None else ("yes" if v else "NO")


def print_table(runs: list[dict], models: list[dict], summary: dict, explain_landed: bool) -> None:
    if not explain_landed:
        print("NOTE: no selected group carries contrast facts: the explain computation is not wired into finalise "
              "yet, so (a) is a dry run")
    head = f"{'kind':16} {'format':8} {'cause':44} {'a':13} {'rank':>4} {'top contrast':34} {'c':3}"
    for m in models:
        head += f" | {'b':3} {'tok in/out':>10} {'lat s':>6} {'outcome':14}"
    print(head)
    print("-" * len(head))
    for r in runs:
        f = r["facts"]
        cause = f"{f['cause']['field']}={f['cause']['value']}" if f.get("cause") else "(no incident)"
        a = f.get("a", "-") + (" (tie)" if f.get("tied_at_top") else "")
        line = (f"{r['kind']:16} {r['format']:8} {cause[:44]:44} {a:13} {str(f.get('rank') or '-'):>4} "
                f"{str(f.get('top_fact') or '-')[:34]:34} {_mark(f['c']):3}")
        for m in models:
            p = r["models"].get(m["model_id"], {})
            b = _mark(p.get("b")) if r["kind"] != "none" else "-"
            tok = f"{p.get('tokens_in', 0)}/{p.get('tokens_out', 0)}"
            line += (f" | {b:3} {tok:>10} {p.get('latency_ms', 0) / 1000:6.1f} "
                     f"{(p.get('outcome') or ('c ok' if p.get('c') else 'POSTED'))[:14]:14}")
        print(line)
    n = summary["incident_runs"]
    print(f"\n(a) {summary['a']}/{n} (contrast {summary['a_by_contrast']}, key {summary['a_by_key']}, "
          f"not selected {summary['not_selected']}; the cause tied with the top fact in "
          f"{summary['cause_tied_with_top_fact']}); (c) {summary['c']}/{len(runs)} sets without a selection outside "
          f"the incident; top fact when (a) failed: {summary['top_fact_fields_when_wrong']}")
    for mid, s in summary["models"].items():
        print(f"{mid}: (b) {s['b']}/{n} (cited {s['b_cited']}, in text {s['b_text']}); (c) {s['c']}/{len(runs)}; "
              f"{s['calls']} calls, {s['tokens_in_per_call']}/{s['tokens_out_per_call']} tokens and "
              f"{s['latency_s_per_call']} s per call (max {s['latency_s_max']} s); answers refused {s['answers_refused']} "
              f"(of which {s['refused_answers_that_named_the_cause']} named the cause) "
              f"{s['refusal_reasons']} {s['other_outcomes'] or ''}")


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


if __name__ == "__main__":
    raise SystemExit(main())
