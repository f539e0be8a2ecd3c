"""`sieve demo`: the whole log pipeline on a private embedded stack, start to finish.

A generated incident (or --log FILE) -> Kinesis (half raw lines, half CloudWatch-Logs-wrapped,
over two shards) -> the local event source mapping runner -> the logs processor -> the finaliser
(exact top-N, selection, the AI boundary with the local model behind a Bedrock-compatible
endpoint) -> the Slack message, rendered here and saved as the exact webhook JSON by a local Slack
receiver. With SLACK_WEBHOOK_URL set, the message goes to that real Slack webhook instead.

Everything printed that comes from the log (the top-N keys, the Slack messages) passes the same
secret redaction as Slack (processors/core/surfaces.py, the config's ai.redact patterns): `--log`
may be a real access log with tokens in its query strings.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from pathlib import Path

from rich.console import Console
from rich.rule import Rule
from rich.table import Table

from processors.core.surfaces import ForPeople
from processors.errors import SieveError

DEFAULT_INCIDENTS = ("burst500", "scan404")


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole log pipeline on a private embedded stack and show the Slack message")
    p.add_argument("--config", help="pipelines.yaml (default: $SIEVE_CONFIG or ./pipelines.yaml)")
    p.add_argument("--log", help="analyse this access log instead of a generated one (plain or .gz)")
    p.add_argument("--slack-out", default=None, help="where the local Slack receiver saves the webhook JSON "
                   "(JSON lines, one message per line; default .sieve/demo/slack.jsonl)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--lines", type=int, default=6000)
    p.add_argument("--incident", action="append", help=f"incident kinds to generate (default: {', '.join(DEFAULT_INCIDENTS)})")
    p.add_argument("--no-model", action="store_true", help="skip the model: post the computed facts only")
    p.add_argument("--keep", action="store_true", help="leave the demo's moto server and model server running")
    p.set_defaults(func=run)


def run(args) -> int:
    console = Console()
    t0 = time.monotonic()
    state = Path(os.environ.get("SIEVE_DEMO_DIR") or ".sieve/demo").resolve()
    if state.exists() and not args.keep:
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    os.environ["SIEVE_STATE_DIR"] = str(state)
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    slack_out = Path(args.slack_out or state / "slack.jsonl").resolve()
    slack_out.parent.mkdir(parents=True, exist_ok=True)
    slack_out.unlink(missing_ok=True)

    with contextlib.ExitStack() as stack:
        from processors.adapters import aws
        from processors.runtime import services

        # 1. a private moto server, so the demo never mixes with a stack you are using
        console.print(Rule("[bold]Sieve demo[/]: the log pipeline on the embedded local stack"))
        port = services.free_port()
        for k in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            del os.environ[k]
        os.environ["SIEVE_MOTO_PORT"] = str(port)
        aws.use_local_credentials_if_missing()
        os.environ.setdefault("AWS_DEFAULT_REGION", os.environ.get("AWS_REGION", "us-east-1"))
        from processors.commands.up import ensure_aws_endpoint, start_models

        endpoint = ensure_aws_endpoint()
        if not args.keep:
            stack.callback(services.stop, "moto")
        console.print(f"[dim]1.[/] moto server (Kinesis, DynamoDB, SQS, Secrets Manager, Logs) at {endpoint}")

        # 2. Slack: a local receiver unless a real webhook is configured
        real_slack = bool(os.environ.get("SLACK_WEBHOOK_URL"))
        receiver = None
        if not real_slack:
            from processors.runtime.slack_receiver import SlackReceiver

            receiver = stack.enter_context(SlackReceiver(out=state / "slack-receiver.jsonl"))
            os.environ["SIEVE_LOCAL_SLACK_URL"] = receiver.url
            os.environ["SLACK_WEBHOOK_URL"] = receiver.url
            console.print(f"[dim]2.[/] local Slack receiver at {receiver.base_url} (payloads saved to {slack_out})")
        else:
            console.print("[dim]2.[/] posting to the real Slack webhook in SLACK_WEBHOOK_URL")

        # 3. the model: the local Bedrock-compatible endpoint, unless --no-model
        from processors.config import load

        if not args.no_model and not os.environ.get("SIEVE_BEDROCK_URL"):
            os.environ["SIEVE_BEDROCK_URL"] = f"http://127.0.0.1:{services.free_port()}"
        loaded = load(args.config)
        if args.no_model:
            loaded = _without_model(loaded)
        os.environ["SIEVE_CONFIG"] = str(loaded.path)
        logs_cfg = loaded.config.pipelines.logs
        if logs_cfg is None:
            raise SieveError(f"{loaded.path}: pipelines.logs is not configured; the demo runs the log pipeline")
        analyser = logs_cfg.ai.analyser
        if analyser.kind == "bedrock" and (analyser.endpoint_url or "").startswith("http://127.0.0.1"):
            t = time.monotonic()
            url = start_models(loaded.config)
            if not args.keep:
                stack.callback(services.stop, "models")
            console.print(f"[dim]3.[/] local model {analyser.model_id} behind a bedrock-runtime endpoint at {url} "
                          f"({time.monotonic() - t:.1f}s)")
        else:
            console.print(f"[dim]3.[/] analyser: {analyser.kind} {analyser.model_id if analyser.kind != 'none' else ''}")

        # 4. resources
        from processors.runtime.provision import provision

        provision(loaded.config, emulator=True)
        console.print(f"[dim]4.[/] created {len(loaded.config.resources.streams)} stream(s), "
                      f"{len(loaded.config.resources.tables)} table(s), queues and secrets from {loaded.path.name}")

        # 5. the incident
        log_path, truth = _log_file(args, state, logs_cfg.window.period_seconds)
        lines = log_path.read_text(errors="surrogateescape").splitlines() if log_path.suffix != ".gz" else None
        if lines is None:
            import gzip

            lines = gzip.open(log_path, "rt", errors="surrogateescape").read().splitlines()
        half = len(lines) // 2
        raw, cwl = state / "push-raw.log", state / "push-cwl.log"
        raw.write_text("\n".join(lines[:half]) + "\n")
        cwl.write_text("\n".join(lines[half:]) + "\n")
        if truth:
            console.print(f"[dim]5.[/] generated {len(lines)} access-log lines with incidents: " + "; ".join(
                f"{i['kind']} {i['key']} ({i['count']} lines)" for i in truth["incidents"]))
        else:
            console.print(f"[dim]5.[/] {len(lines)} lines from {log_path}")

        # 6. onto Kinesis: raw lines and CloudWatch Logs subscription payloads
        from processors.commands.push import push_file

        stream = logs_cfg.source_stream
        r1 = push_file(str(raw), stream, "lines")
        r2 = push_file(str(cwl), stream, "cwl")
        console.print(f"[dim]6.[/] pushed {r1.sent} raw records and {r2.sent} CloudWatch Logs payloads "
                      f"({r2.lines} events) onto {stream}")

        # 7. the event source mapping runner and the handlers
        from processors.commands.run import invoke_scheduled
        from processors.runtime.checkpoints import JsonCheckpointStore
        from processors.runtime.mappings import build_mappings
        from processors.runtime.runner import Runner

        t = time.monotonic()
        mappings = build_mappings(loaded)
        runner = Runner(mappings, JsonCheckpointStore(str(state / "checkpoints.json")),
                        poll_interval_seconds=0.1)
        report = runner.run_until_idle(300)
        if report.timed_out:
            raise SieveError("the runner did not catch up within 300 s")
        console.print(f"[dim]7.[/] runner: {len(report.invocations)} invocation(s) of the logs processor "
                      f"in {time.monotonic() - t:.1f}s; {len(report.discards)} batch(es) discarded")
        check_delivered(r1.sent + r2.sent, stream, mappings, report, state / "checkpoints.json")
        t = time.monotonic()
        results = invoke_scheduled(loaded, flush=True)
        finalised = [w for r in results.values() for w in (r or {}).get("finalised", [])]
        from processors import wiring

        store = wiring.state_store(loaded)  # the handler answers a summary; the reports are in the state table
        for w in finalised:
            stored = store.stored_report(w["rule"], int(w["window"].split("-")[0]))
            if stored is not None:
                w["report"] = stored.document
        posted = [w for w in finalised if w.get("delivery") in ("posted", "duplicate")]
        console.print(f"[dim]8.[/] finaliser: {len(finalised)} window(s) finalised, {len(posted)} message(s) for Slack "
                      f"({time.monotonic() - t:.1f}s{', model calls included' if analyser.kind != 'none' else ''})")

        from processors.runtime.people_view import people_view_of

        view = people_view_of(loaded.config)
        _print_topn(console, finalised, view)
        payloads: list[dict] = []
        if receiver is not None:
            payloads = list(receiver.accepted)
            # exactly the webhook bodies Slack would have received, one JSON document per line
            slack_out.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in payloads))
        if payloads:
            from processors.runtime.slack_terminal import show

            console.print(Rule("what Slack shows"))
            show(payloads, console=console, view=view)
        elif posted:
            console.print(f"{len(posted)} message(s) posted to the Slack webhook in SLACK_WEBHOOK_URL")
        else:
            console.print("[yellow]nothing was selected for Slack in this log[/]")
        if receiver is not None:
            console.print(f"webhook JSON: {slack_out}  (render again with: sieve slack show {slack_out})")
        console.print(f"done in {time.monotonic() - t0:.1f}s")
        if truth:
            return _check_against_truth(console, truth, finalised, view)
    return 0


def check_delivered(pushed: int, stream: str, mappings, report, checkpoints: Path) -> int:
    """Records were pushed onto `stream`: the runner must have handed some of them to a function
    reading it (whatever that function then made of them). Returns how many records it handed
    over; none at all is an error, never an empty "nothing was selected" that looks like success."""
    names = {m.mapping_name for m in mappings if m.event_source_arn.endswith(f":stream/{stream}")}
    delivered = {(i.mapping, i.shard_id, seq) for i in report.invocations if i.mapping in names
                 for seq in i.sequence_numbers}
    if pushed and not delivered:
        raise SieveError(
            f"pushed {pushed} record(s) onto {stream}, but the runner delivered none of them to "
            f"{', '.join(sorted(names)) or 'a function'} ({len(report.invocations)} invocation(s), "
            f"{len(report.discards)} batch(es) discarded), so there is nothing to analyse. Check the mapping's "
            f"starting_position in the config (LATEST skips what was pushed before the runner started) and the "
            f"checkpoints in {checkpoints} (delete the file to start the mappings over)")
    return len(delivered)


def _without_model(loaded):
    import dataclasses

    logs = loaded.config.pipelines.logs
    ai = logs.ai.model_copy(update={"analyser": logs.ai.analyser.model_copy(update={"kind": "none"})})
    pipes = loaded.config.pipelines.model_copy(update={"logs": logs.model_copy(update={"ai": ai})})
    return dataclasses.replace(loaded, config=loaded.config.model_copy(update={"pipelines": pipes}))


def _log_file(args, state: Path, period: int):
    if args.log:
        p = Path(args.log)
        if not p.exists():
            raise SieveError(f"--log {args.log}: no such file")
        return p, None
    from processors.core.generate import AccessLogGenerator, GeneratorConfig, parse_incident

    try:
        incidents = tuple(parse_incident(s) for s in (args.incident or DEFAULT_INCIDENTS))
    except ValueError as exc:
        raise SieveError(f"--incident: {exc}") from None
    gen = AccessLogGenerator(GeneratorConfig(seed=args.seed, lines=args.lines, duration=600, period=period,
                                             incidents=incidents))
    out = state / "access.log"
    with open(out, "w") as fh:
        for line in gen.lines():
            fh.write(line + "\n")
    truth = gen.truth()
    (state / "access.log.truth.json").write_text(json.dumps(truth, indent=1))
    return out, truth


def _print_topn(console: Console, finalised: list[dict], view: ForPeople) -> None:
    """The computed top-N of each window that has a selected group; keys as people may see them."""
    shown = [w for w in finalised if w.get("selected")]
    for w in shown:
        topn = w["report"]["topn"]
        start, end = (int(x) for x in w["window"].split("-"))
        when = f"{_utc(start)}–{_utc(end)[11:]} UTC"
        t = Table(title=f"computed: {w['rule']}, window {when} (exact top-N over {len(topn['shards'])} shards)")
        for col in ["#", *topn["key_names"], "value", "selected"]:
            t.add_column(col)
        chosen = {tuple(g["keys"].values()) for g in w["report"]["selected"]}
        before = view.redacted
        for i, c in enumerate(topn["contributors"][:10], 1):
            t.add_row(str(i), *[view(k) for k in c["keys"]], str(c["value"]), "yes" if tuple(c["keys"]) in chosen else "")
        if view.redacted > before:
            t.caption = f"{view.redacted - before} secret(s) in these keys shown as [REDACTED:kind]"
        console.print(t)


def _utc(ts: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")


def _check_against_truth(console: Console, truth: dict, finalised: list[dict], view: ForPeople) -> int:
    """The demo checks itself: every generated incident must have been found and posted."""
    by = {(w["rule"], w["window"]): w for w in finalised}
    missing = []
    for inc in truth["incidents"]:
        w = inc["windows"][0]["window"]
        got = by.get((inc["rule"], f"{w[0]}-{w[1]}"))
        keys = {tuple(g["keys"].values()) for g in (got or {}).get("report", {}).get("selected", [])}
        if tuple(inc["rule_keys"]) not in keys:
            missing.append(f"{inc['kind']} {view(inc['key'])}")
    if missing:
        console.print(f"[red]not found: {', '.join(missing)}[/]")
        return 1
    console.print(f"[green]every generated incident was found by the exact top-N and selected[/] ({len(truth['incidents'])})")
    return 0
