"""`sieve faq load FILE.jsonl` / `sieve faq ask "question" --role public`.

load   puts FAQ entries (one JSON object a line: id, question, answer, role, source_url, lang, updated_at)
       into the FAQ table (`pipelines.faq.table`): this is the crawler's output path. Each line is checked
       with the same rules the FAQ processor applies (processors.core.faq); invalid lines are reported with
       their line number and reason and not written (exit 1). The role is not checked here: an unknown
       role is written and then indexed nowhere by the processor (fail closed), as it would be on AWS.
ask    answers from the role's index exactly like the Slack handler (retrieval, relevance gate, model,
       citation check) and prints the answer, its citations and whether a model wrote it.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path

from processors.adapters import aws
from processors.config import load
from processors.core.faq import Rejection, parse_item
from processors.errors import SieveError


def register(sub) -> None:
    p = sub.add_parser("faq", help="FAQ knowledge base: load entries into the table, ask a question")
    fsub = p.add_subparsers(dest="faq_command", metavar="ACTION")
    fsub.required = True
    lp = fsub.add_parser("load", help="put FAQ entries from a JSONL file into the FAQ table")
    lp.add_argument("file", help="JSONL file, or - for stdin")
    lp.add_argument("--config")
    lp.add_argument("--table", help="table name (default pipelines.faq.table)")
    lp.set_defaults(func=run_load)
    ap = fsub.add_parser("ask", help="answer a question from the FAQ indexes, with citations")
    ap.add_argument("question")
    ap.add_argument("--role", help="index role to answer for (default pipelines.faq.default_role)")
    ap.add_argument("--config")
    ap.add_argument("--no-model", action="store_true", help="list the relevant entries, call no model")
    ap.add_argument("--json", action="store_true", help="print the answer as JSON")
    ap.set_defaults(func=run_ask)


def read_items(lines, role_attribute: str, id_attribute: str) -> tuple[list[dict], list[tuple[int, str]]]:
    """(valid items, [(line number, reason)])."""
    items, bad = [], []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line, parse_float=Decimal)
        except ValueError as exc:
            bad.append((n, f"not JSON: {exc}"))
            continue
        if not isinstance(obj, dict):
            bad.append((n, "not a JSON object"))
            continue
        checked = parse_item(obj, role_attribute=role_attribute, id_attribute=id_attribute)
        if isinstance(checked, Rejection):
            bad.append((n, checked.reason))
            continue
        items.append(obj)
    return items, bad


def load_file(path: str, *, config: str | None = None, table: str | None = None) -> tuple[int, list[tuple[int, str]]]:
    loaded = load(config)
    faq = loaded.config.pipelines.faq
    if faq is None and table is None:
        raise SieveError("pipelines.faq is not configured; give --table")
    name = table or faq.table
    spec = loaded.config.resources.tables.get(name)
    id_attribute = spec.partition_key if spec else "id"
    role_attribute = faq.role_attribute if faq else "role"
    if path == "-":
        items, bad = read_items(sys.stdin, role_attribute, id_attribute)
    else:
        p = Path(path)
        if not p.is_file():
            raise SieveError(f"{path}: no such file")
        with open(p, encoding="utf-8") as fh:
            items, bad = read_items(fh, role_attribute, id_attribute)
    aws.use_local_credentials_if_missing()
    ddb = aws.session(loaded.config.region).resource("dynamodb")
    tbl = ddb.Table(name)
    try:
        tbl.load()
    except Exception as exc:  # noqa: BLE001 - say where we looked
        raise SieveError(f"table {name!r} not found at {ddb.meta.client.meta.endpoint_url} ({exc}); run `sieve up`?") from None
    with tbl.batch_writer(overwrite_by_pkeys=[id_attribute]) as w:
        for item in items:
            w.put_item(Item=item)
    return len(items), bad


def run_load(args) -> int:
    n, bad = load_file(args.file, config=args.config, table=args.table)
    for line, reason in bad:
        print(f"{args.file}:{line}: {reason}", file=sys.stderr)
    print(f"{n} loaded, {len(bad)} invalid")
    return 1 if bad else 0


def run_ask(args) -> int:
    from processors import wiring

    loaded = load(args.config)
    rt = wiring.asker(loaded, no_model=args.no_model)
    role = args.role or rt.default_role
    if role not in loaded.config.pipelines.faq.roles:
        raise SieveError(f"--role {role}: not an index role ({', '.join(sorted(loaded.config.pipelines.faq.roles))})")
    result = rt.ask(args.question, role)
    if args.json:
        print(json.dumps({
            "status": result.status, "language": result.language, "text": result.text, "reason": result.reason,
            "model": result.model_id, "citations": [_cite(c) for c in result.citations],
            "entries": [_cite(c) for c in result.entries],
        }, ensure_ascii=False, indent=2))
        return 0
    print(result.text)
    for c in result.citations if result.status == "answered" else ():
        print(f"  [{c.ref}] {c.question} <{c.source_url}>")
    who = (f"written by {result.model_id} ({result.tokens_in} in / {result.tokens_out} out tokens)" if result.status == "answered"
           else f"no model text: {result.reason}" if result.reason else "no model text")
    print(f"-- {result.status}; role {role}; {who}")
    return 0


def _cite(c) -> dict:
    return {"ref": c.ref, "id": c.id, "question": c.question, "source_url": c.source_url}
