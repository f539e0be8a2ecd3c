"""`sieve faq load FILE.jsonl` / `sieve faq crawl URL --role ROLE` / `sieve faq ask "question" --role public`.

load   puts FAQ entries (one JSON object a line: id, question, answer, role, source_url, lang, updated_at)
       into the FAQ table (`pipelines.faq.table`): this is the crawler's output path. Each line is checked
       with the same rules the FAQ processor applies (processors.core.faq); invalid lines are reported with
       their line number and reason and not written (exit 1). The role is not checked here: an unknown
       role is written and then indexed nowhere by the processor (fail closed), as it would be on AWS.
crawl  crawls a site (or, without a URL, every source of `pipelines.faq.sources`) into the FAQ table like the
       scheduled faq-crawler function: sitemaps and same-site links inside the scope, robots.txt obeyed,
       Q/As from JSON-LD / microdata / <details> / <dl> / question headings, only changed entries written,
       vanished ones deleted (processors.core.crawl). A progress bar while it runs, then the summary.
ask    answers from the role's index exactly like the Slack bot (retrieval, relevance gate, the AI boundary:
       redaction, budgets, audit record; model, citation check) and prints the answer, its citations and
       whether a model wrote it; `--json` prints one JSON object (see `answer_document`).
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
    cp = fsub.add_parser("crawl", help="crawl a site's FAQ pages into the FAQ table (only changes are written)")
    cp.add_argument("url", nargs="?", help="start URL; default: every source in pipelines.faq.sources")
    cp.add_argument("--role", help="record role of the entries (default: the configured source's role for this URL)")
    cp.add_argument("--config")
    cp.add_argument("--table", help="table name (default pipelines.faq.table)")
    cp.add_argument("--scope", help="URL prefix to stay inside (default: the start URL's directory)")
    cp.add_argument("--include", action="append", default=None, metavar="REGEX", help="crawl only URLs matching one (repeatable)")
    cp.add_argument("--exclude", action="append", default=None, metavar="REGEX", help="never crawl URLs matching any (repeatable)")
    cp.add_argument("--max-pages", type=int)
    cp.add_argument("--delay", type=float, help="seconds between requests (robots.txt Crawl-delay wins when longer)")
    cp.add_argument("--timeout", type=float, help="seconds per request")
    cp.add_argument("--no-sitemaps", action="store_true", help="discover pages by links only")
    cp.add_argument("--no-progress", action="store_true")
    cp.add_argument("--json", action="store_true", help="print the summary as JSON")
    cp.set_defaults(func=run_crawl)
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


#: the CLI's status names (`--json`); the core says not_found
CLI_STATUS = {"not_found": "not_in_knowledge_base"}


def answer_document(result, role: str) -> dict:
    """The one JSON object `sieve faq ask --json` prints (the CLI contract; keep these names):
    status (answered | not_in_knowledge_base | fallback | no_model | budget_exhausted), answer (the text),
    citations (each with its url; model answers only), entries (what was retrieved and relevant), and
    what wrote it (model, tokens, audit_id)."""
    return {
        "status": CLI_STATUS.get(result.status, result.status), "answer": result.text, "language": result.language,
        "role": role, "citations": [_cite(c) for c in result.citations], "entries": [_cite(c) for c in result.entries],
        "reason": result.reason, "model": result.model_id, "model_called": result.model_called,
        "tokens_in": result.tokens_in, "tokens_out": result.tokens_out, "audit_id": result.audit_id,
        "question_sha256": result.question_sha256,
    }


def run_ask(args) -> int:
    from processors import wiring

    loaded = load(args.config)
    faq = loaded.config.pipelines.faq
    if faq is None:
        raise SieveError("pipelines.faq is not configured")
    role = args.role or faq.default_role
    if role not in faq.roles:
        raise SieveError(f"--role {role}: not an index role ({', '.join(sorted(faq.roles))})")
    aws.use_local_credentials_if_missing()
    rt = wiring.asker(loaded, no_model=args.no_model)
    result = rt.ask(args.question, role)
    if args.json:
        print(json.dumps(answer_document(result, role), ensure_ascii=False))
        return 0
    print(result.text)
    for c in result.citations if result.status == "answered" else ():
        print(f"  [{c.ref}] {c.question} <{c.source_url}>")
    who = (f"written by {result.model_id} ({result.tokens_in} in / {result.tokens_out} out tokens)" if result.status == "answered"
           else f"no model text: {result.reason}" if result.reason else "no model text")
    audit = f"; audit {result.audit_id}" if result.audit_id else ""
    print(f"-- {CLI_STATUS.get(result.status, result.status)}; role {role}; {who}{audit}")
    return 0


def _cite(c) -> dict:
    return {"ref": c.ref, "id": c.id, "question": c.question, "url": c.source_url, "passages": list(c.passages)}


# ------------------------------------------------------------------------------------ crawl


def crawl_sources(args, loaded) -> list:
    """The sources this `sieve faq crawl` means: the configured ones, or the URL with its options (a URL
    that is a configured source keeps that source's settings unless an option overrides them)."""
    from processors.config.models import CrawlSourceSpec

    faq = loaded.config.pipelines.faq
    configured = list(faq.sources) if faq is not None else []
    overrides = {k: v for k, v in {
        "role": args.role, "scope": args.scope, "include": args.include, "exclude": args.exclude,
        "max_pages": args.max_pages, "delay_seconds": args.delay, "timeout_seconds": args.timeout,
        "sitemaps": False if args.no_sitemaps else None}.items() if v is not None}
    if not args.url:
        if not configured:
            raise SieveError("no URL given and pipelines.faq.sources is empty: `sieve faq crawl URL --role ROLE`")
        return [CrawlSourceSpec(**{**s.model_dump(), **overrides}).to_core() for s in configured]
    base: dict = {}
    for s in configured:
        core = s.to_core()
        if args.url in (s.url, core.start):
            base = s.model_dump()
    if "role" not in overrides and "role" not in base:
        raise SieveError(f"--role: required ({args.url} is not a configured source)")
    try:
        spec = CrawlSourceSpec(**{**base, "url": args.url, **overrides})
    except ValueError as exc:
        raise SieveError(f"sieve faq crawl: {exc}") from None
    visible = {r for allowed in (faq.roles.values() if faq else ()) for r in allowed}
    if faq is not None and spec.role not in visible:
        raise SieveError(f"--role {spec.role}: no index role may see it (pipelines.faq.roles lists {', '.join(sorted(visible))})")
    return [spec.to_core()]


def run_crawl(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from processors import wiring

    loaded = load(args.config)
    if loaded.config.pipelines.faq is None:
        raise SieveError("pipelines.faq is not configured (the crawler writes to its table, with its roles)")
    sources = crawl_sources(args, loaded)
    aws.use_local_credentials_if_missing()
    app = wiring.faq_crawler(loaded, sources=sources, **({"store": _store(args.table, loaded)} if args.table else {}))
    try:
        app.store.client.describe_table(TableName=app.store.table)  # it must exist before anything is fetched
    except Exception as exc:  # noqa: BLE001 - say where we looked
        raise SieveError(f"FAQ table {app.store.table!r} not usable ({str(exc)[:200]}); run `sieve up`?") from None
    console = Console(stderr=True)
    reports = []
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, disable=args.no_progress or not console.is_terminal,
                  transient=False) as progress:
        for source in sources:
            task = progress.add_task(source.label[:50], total=None)

            def step(done: int, known: int, url: str, task=task, label=source.label) -> None:
                progress.update(task, completed=done, total=max(known, done),
                                description=f"{label[:40]} {url.rsplit('/', 1)[-1][:30] or '/'}")

            reports.append(app.crawler.crawl(source, progress=step))
            progress.update(task, description=source.label[:50])
    if args.json:
        print(json.dumps([r.as_dict() for r in reports], ensure_ascii=False, indent=2))
    else:
        for r in reports:
            print("\n".join(r.lines()))
    return 1 if any(r.error for r in reports) else 0


def _store(table: str, loaded):
    from processors.adapters.faq_table import DynamoFaqTable

    spec = loaded.config.resources.tables.get(table)
    return DynamoFaqTable(table, client=aws.client("dynamodb", aws.region(loaded.config.region)),
                          id_attribute=spec.partition_key if spec else "id")
