"""The fault-injection run: the real local stack, a generated workload with ground truth, repeated faults,
then a drain and a check of every promise against the truth.

Pieces (all real, each in its own process where it would be in production):
  moto server  <- AwsFaultProxy (processors/runtime/faults.py) <- `sieve run` (the event source mapping
  runner + scheduled finaliser, a child process SIGKILLed and restarted at seeded random points) and the
  pusher / FAQ writer in this process; the Slack receiver behind a TcpFaultProxy (hangs) and scripted
  429/500 answers; the local bedrock-runtime endpoint with a scripted model (garbage, killed mid-answer);
  the OpenSearch node behind a TcpFaultProxy (refuses connections for a while), or really stopped and
  started (`stop_opensearch`, the full benchmark only: the node is shared).

`run(Scenario(...))` returns the figures (see `table()`); `bench/bench_faults.py` prints and stores them,
`tests/faults/test_faults.py` runs a reduced scenario and asserts zero loss, duplicates, leaks, secrets.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from processors.runtime.faults import AwsFaultProxy, TcpFaultProxy, default_rules, model_requests, peak_rss_kb
from processors.runtime.services import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
RULES = ("errors-by-path", "404-by-client", "bytes-by-client")
MODEL_ID = "local.qwen2.5-coder-1.5b-instruct-q4"

# planted secrets (the same kinds tests/pipeline/test_secrets_e2e.py plants), in paths, queries, referers, agents
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJlLXNlY3JldC0xMjM0NTY3OA"
AKID = "AKIAIOSFODNN7EXAMPLE"
CARD = "4111111111111111"
EMAIL = "alice.smith@example.org"
PASSWORD = "hunter2-Sup3rSecret"
APIKEY = "sk_live_51H8xYzAbCdEfGhIjKlMn"
ACCESS_TOKEN = "at-7Hq2Lx9Vb3Nm4Kp8Rt"
SESSION = "s3ss10n-9f8e7d6c5b4a"
BEARER = "tok_4f3e2d1c0b9aZZyyXX"
SECRETS = (JWT, AKID, CARD, EMAIL, PASSWORD, APIKEY, ACCESS_TOKEN, SESSION, BEARER)
PLANTED_GROUPS = (
    # (client, path, query, referer, agent)
    ("203.0.113.199", f"/account/{EMAIL}/reset", f"token={JWT}",
     f"https://partner.example.com/cb?access_token={ACCESS_TOKEN}", f"curl/8 {AKID}"),
    ("203.0.113.77", f"/pay/card/{CARD}", f"sid={SESSION}&password={PASSWORD}", "-", "Mozilla/5.0 (X11; Linux)"),
    ("198.18.0.9", "/api/keys", f"api_key={APIKEY}&v=1", "-", f"Mozilla/5.0 (Bearer {BEARER})"),
)
#: the same key alone in a path (no `api_key=` before it): outside the built-in redaction kinds today
#: (tests/faults/test_found_open.py); `Scenario(vendor_key_in_path=True)` plants it to show the leak
VENDOR_KEY_GROUP = ("198.18.0.9", f"/api/keys/{APIKEY}", "v=1", "-", f"Mozilla/5.0 (Bearer {BEARER})")


@dataclass
class Scenario:
    seed: int = 7
    lines: int = 3000
    duration: int = 300  # event seconds the generated traffic spans (from 2024-03-04 10:00 UTC)
    incidents: tuple[str, ...] = ("burst500", "scan404")
    planted_per_group: int = 25  # lines per planted-secret group, in the window 09:59 (selected: >= min_count)
    vendor_key_in_path: bool = False  # also plant a bare vendor key in a path (a known open finding)
    faq_entries: int = 24
    fault_seconds: float = 40.0  # faults are injected for this long; the workload is pushed meanwhile
    push_chunks: int = 12
    kill_every: tuple[float, float] = (10.0, 20.0)  # seconds between SIGKILLs of the logs runner (FAQ runner: x2)
    spare_posts: bool = False  # never kill the logs runner while a Slack post hangs (else that window waits for
    #                            its idempotency record's in-progress expiry, the finaliser's 300 s timeout)
    aws_fault_scale: float = 2.0
    opensearch_outages: int = 2
    outage_seconds: tuple[float, float] = (3.0, 6.0)
    stop_opensearch: bool = False  # really stop/start the node (bench only; it is shared)
    slack_faults: int = 6  # Slack troubles: a 429 with Retry-After, a 500 or a hang past the client's timeout
    slack_hang_seconds: float = 12.0  # the notifier's timeout is 10 s
    model_faults: bool = True
    min_model_requests: int = 4  # keep the faults on (up to 2 x fault_seconds) until the model had this many calls
    drain_timeout: float = 300.0
    schedule_seconds: int = 2  # the finaliser's schedule in `sieve run`
    work_dir: str = ""
    moto_endpoint: str = ""  # reuse this moto server (state is reset); else start one
    verbose: bool = False


@dataclass
class Child:
    """A child process we started (killed only by its pid)."""

    argv: list[str]
    env: dict
    log: Path
    proc: subprocess.Popen | None = None
    starts: int = 0
    kills: int = 0
    peak_rss_kb: int = 0

    def start(self) -> None:
        fh = open(self.log, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        fh.close()
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def sample(self) -> None:
        if self.alive():
            r = peak_rss_kb(self.proc.pid)
            if r:
                self.peak_rss_kb = max(self.peak_rss_kb, r[1])

    def kill(self) -> None:
        if self.alive():
            self.sample()
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.kills += 1

    def stop(self, timeout: float = 60.0) -> None:
        if self.alive():
            self.sample()
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(10)


# -- the workload ------------------------------------------------------------------------------

PLANTED_START = 1709546340  # 2024-03-04 09:59:00 UTC, the minute before the generated traffic


def planted_groups(vendor_key_in_path: bool = False) -> tuple:
    return PLANTED_GROUPS[:2] + (VENDOR_KEY_GROUP,) if vendor_key_in_path else PLANTED_GROUPS


def planted_lines(per_group: int, vendor_key_in_path: bool = False) -> list[str]:
    out = []
    for i in range(per_group):
        for client, path, query, referer, agent in planted_groups(vendor_key_in_path):
            out.append(f'{client} - - [04/Mar/2024:09:59:{(i * 2) % 60:02d} +0000] "GET {path}?{query} HTTP/1.1" '
                       f'500 512 "{referer}" "{agent}"')
    return out


def planted_truth(per_group: int, vendor_key_in_path: bool = False) -> dict[str, dict]:
    groups = planted_groups(vendor_key_in_path)
    n = per_group * len(groups)
    by_path = sorted(((p, per_group) for _, p, _, _, _ in groups), key=lambda kv: (-kv[1], kv[0]))
    by_client = sorted(((c, 512 * per_group) for c, *_ in groups), key=lambda kv: (-kv[1], kv[0]))
    return {
        "errors-by-path": {"top": [{"keys": [p], "value": v} for p, v in by_path], "sample_count": n, "sum": n,
                           "total_events": n},
        "404-by-client": {"top": [], "sample_count": 0, "sum": 0, "total_events": n},
        "bytes-by-client": {"top": [{"keys": [c], "value": v} for c, v in by_client], "sample_count": n,
                            "sum": 512 * n, "total_events": n},
    }


def workload(sc: Scenario) -> tuple[list[str], dict]:
    from processors.core.generate import AccessLogGenerator, GeneratorConfig, parse_incident

    gen = AccessLogGenerator(GeneratorConfig(seed=sc.seed, lines=sc.lines, duration=sc.duration, period=60,
                                             incidents=tuple(parse_incident(s) for s in sc.incidents)))
    lines = list(gen.lines())
    truth = gen.truth()
    expected: dict[tuple[str, int], dict] = {}
    for rule in RULES:
        for w in truth["rules"][rule]:
            expected[(rule, w["window"][0])] = {"top": w["top"], "sample_count": w["sample_count"], "sum": w["sum"],
                                                "total_events": w["total_events"]}
        expected[(rule, PLANTED_START)] = planted_truth(sc.planted_per_group, sc.vendor_key_in_path)[rule]
    return lines, {"windows": expected, "incidents": truth["incidents"], "lines": len(lines)}


def faq_items(n: int) -> list[dict]:
    roles = ("public", "staff", "contractor", "public", "staff", None)  # contractor/none: no index may see them
    items = []
    for i in range(n):
        role = roles[i % len(roles)]
        item = {"id": f"fault-faq-{i:03d}", "lang": "en", "question": f"How do I use feature {i} of the product?",
                "answer": f"Open the settings page and switch feature {i} on. It takes effect at once.",
                "source_url": f"https://help.example.com/en/feature-{i}", "updated_at": "2024-05-01T09:00:00Z"}
        if role is not None:
            item["role"] = role
        items.append(item)
    return items


# -- configuration ----------------------------------------------------------------------------

def write_config(sc: Scenario, path: Path, *, model_url: str, opensearch_url: str, index_prefix: str) -> Path:
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    logs = doc["pipelines"]["logs"]
    logs["rules"] = [str(ROOT / "rules" / f"{r}.json") for r in RULES]
    logs["ai"]["analyser"] = {"kind": "bedrock", "model_id": MODEL_ID, "endpoint_url": model_url}
    doc["functions"]["logs-finaliser"]["schedule_seconds"] = sc.schedule_seconds
    doc["pipelines"]["faq"]["opensearch"] = {"url": opensearch_url, "index_prefix": index_prefix}
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


# -- the run ----------------------------------------------------------------------------------

class Run:
    def __init__(self, sc: Scenario):
        self.sc = sc
        self.rng = random.Random(sc.seed)
        self.dir = Path(sc.work_dir or f"/tmp/sieve-faults-{uuid.uuid4().hex[:8]}")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.events: list[tuple[float, str]] = []
        self.faults: Counter[str] = Counter()
        self.stop_faults = threading.Event()
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        self.errors: list[str] = []

    def note(self, what: str) -> None:
        self.events.append((round(time.monotonic() - self.t0, 2), what))
        if self.sc.verbose:
            print(f"[{time.monotonic() - self.t0:7.1f}s] {what}", flush=True)

    # -- services -------------------------------------------------------------------------

    def start_moto(self, stack: contextlib.ExitStack) -> str:
        if self.sc.moto_endpoint:
            req = urllib.request.Request(self.sc.moto_endpoint + "/moto-api/reset", method="POST")
            urllib.request.urlopen(req, timeout=10).close()  # noqa: S310 - loopback
            return self.sc.moto_endpoint
        port = free_port()
        self.moto = Child([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], dict(os.environ),
                          self.dir / "moto.log")
        self.moto.start()
        stack.callback(self._stop_moto)
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/moto-api/", 30, "moto")
        return url

    def _stop_moto(self) -> None:
        self.moto.sample()
        if self.moto.alive():
            self.moto.proc.terminate()
            try:
                self.moto.proc.wait(30)
            except subprocess.TimeoutExpired:  # slow to exit under load: the run's result must not be lost for it
                self.moto.proc.kill()
                self.moto.proc.wait(30)

    def start_model(self, healthy: bool = False) -> None:
        argv = [sys.executable, "-m", "processors.runtime.faults", "model-server", str(self.model_port),
                str(self.model_log), str(self.sc.seed), MODEL_ID, "0" if healthy else "30"]
        if healthy:
            argv.append("healthy")
        self.model.argv = argv
        self.model.start()
        wait_http(f"http://127.0.0.1:{self.model_port}/", 30, "model server")

    # -- fault drivers --------------------------------------------------------------------

    def killer(self) -> None:
        """SIGKILL each runner at seeded random points of its life (mid-batch, mid-flush, mid-finalise, or
        while starting), then start it again; restart a runner that exited on its own (counted)."""
        next_kill = {name: time.monotonic() + self.rng.uniform(*self._kill_range(name)) for name in self.runners}
        while not self.stop_faults.wait(0.1):
            for name, child in sorted(self.runners.items()):
                if not child.alive():
                    self.faults[f"runner_exited_{name}"] += 1
                    self.note(f"runner ({name}) exited on its own (rc {child.proc.returncode}); starting it again")
                    child.start()
                    next_kill[name] = time.monotonic() + self.rng.uniform(*self._kill_range(name))
                    continue
                if time.monotonic() < next_kill[name]:
                    continue
                if name == "logs" and self.sc.spare_posts and self.slack_proxy.holding():
                    continue  # (reduced run) not while a post hangs: its idempotency record would hold the window
                child.kill()
                self.faults["runner_sigkill"] += 1
                self.faults[f"runner_sigkill_{name}"] += 1
                self.note(f"runner ({name}) SIGKILL")
                time.sleep(self.rng.uniform(0.2, 1.0))
                child.start()
                next_kill[name] = time.monotonic() + self.rng.uniform(*self._kill_range(name))

    def _kill_range(self, name: str) -> tuple[float, float]:
        lo, hi = self.sc.kill_every
        return (lo, hi) if name == "logs" else (lo * 2.5, hi * 2.5)  # the FAQ runner's cold start loads an embedder

    def opensearch_faults(self) -> None:
        if not self.sc.opensearch_outages:
            return
        gap = self.sc.fault_seconds / (self.sc.opensearch_outages + 1)
        for _ in range(self.sc.opensearch_outages):
            if self.stop_faults.wait(self.rng.uniform(0.5, 1.0) * gap):
                return
            secs = self.rng.uniform(*self.sc.outage_seconds)
            if self.sc.stop_opensearch:
                self.note("opensearch: stop (localstack/opensearch.sh)")
                subprocess.run(["bash", "localstack/opensearch.sh", "stop"], cwd=ROOT, capture_output=True, timeout=120)
                time.sleep(secs)
                subprocess.run(["bash", "localstack/opensearch.sh", "start"], cwd=ROOT, capture_output=True, timeout=300)
                self.note("opensearch: started again")
            else:
                self.note(f"opensearch: refusing connections for {secs:.1f}s")
                self.os_proxy.refuse()
                time.sleep(secs)
                self.os_proxy.allow()
            self.faults["opensearch_outage"] += 1

    def slack_faults(self) -> None:
        """Rounds of a 429 with Retry-After, a 500 and a hang past the client's timeout, each round once the
        previous one was used up by posts (so that one message meets one kind of trouble at a time)."""
        kinds = ("429", "500", "hang")
        rounds = 0
        while rounds < self.sc.slack_faults and not self.stop_faults.is_set():
            kind = kinds[rounds % len(kinds)] if self.sc.slack_faults < 3 * 2 else self.rng.choice(kinds)
            before = len(self.receiver.requests)
            if kind == "429":
                self.receiver.fail_next(1, 429, retry_after=1)
            elif kind == "500":
                self.receiver.fail_next(1, 500)
            else:
                self.slack_proxy.hang_next(1, self.sc.slack_hang_seconds)
            self.faults[f"slack_{kind}"] += 1
            self.note(f"slack: the next post meets {kind}")
            rounds += 1
            while not self.stop_faults.wait(0.5):  # until a post met it
                if kind == "hang" and self.slack_proxy.counts.get("hung", 0) >= self.faults["slack_hang"]:
                    break
                if kind != "hang" and len(self.receiver.requests) > before:
                    break
            self.stop_faults.wait(self.rng.uniform(1.0, 4.0))

    def model_faults(self) -> None:
        seen = 0
        while not self.stop_faults.wait(0.2):
            reqs = model_requests(self.model_log)
            for r in reqs[seen:]:
                self.faults[f"model_{r['mode']}"] += 1
                if r["mode"] == "slow":
                    time.sleep(self.rng.uniform(0.2, 1.5))
                    self.model.kill()
                    self.faults["model_sigkill_mid_answer"] += 1
                    self.note("model server SIGKILL mid-answer")
                    time.sleep(self.rng.uniform(0.5, 2.0))
                    self.start_model()
            seen = len(reqs)

    # -- workload drivers -----------------------------------------------------------------

    def pusher(self, lines: list[str]) -> None:
        import boto3

        from processors.adapters.aws import CLIENT_CONFIG
        from processors.runtime.push import PushResult, entries, put_all

        kinesis = boto3.client("kinesis", endpoint_url=self.proxy.url, config=CLIENT_CONFIG)
        chunks = [planted_lines(self.sc.planted_per_group, self.sc.vendor_key_in_path)]
        step = max(1, len(lines) // self.sc.push_chunks)
        chunks += [lines[i:i + step] for i in range(0, len(lines), step)]
        pause = self.sc.fault_seconds * 0.3 / max(1, len(chunks))
        res = PushResult()
        for i, chunk in enumerate(chunks):
            fmt = "lines" if i % 2 == 0 else "cwl"
            for attempt in range(20):
                part = PushResult()
                try:
                    put_all(kinesis, "sieve-access-logs", entries(chunk, fmt, part, log_group="/sieve/access/nginx"),
                            part, max_attempts=10)
                    break
                except Exception as exc:  # noqa: BLE001 - retried below; reset_before never reached Kinesis
                    self.note(f"push chunk {i}: {type(exc).__name__}; again")
                    if part.sent:
                        raise RuntimeError("a push failed part-way after records were sent; cannot resend safely") from exc
                    time.sleep(0.5)
            else:
                raise RuntimeError(f"push chunk {i} failed 20 times")
            for k in ("lines", "records", "sent", "retried", "failed", "invalid"):
                setattr(res, k, getattr(res, k) + getattr(part, k))
            time.sleep(pause)
        self.push_result = res
        self.note(f"pushed {res.lines} lines in {res.sent} records ({res.retried} retried, {res.failed} failed)")

    def faq_writer(self) -> None:
        import boto3

        from processors.adapters.aws import CLIENT_CONFIG

        ddb = boto3.client("dynamodb", endpoint_url=self.proxy.url, config=CLIENT_CONFIG)
        from boto3.dynamodb.types import TypeSerializer

        ser = TypeSerializer()

        def call(fn, **kw):
            for _ in range(30):
                try:
                    return fn(**kw)
                except Exception as exc:  # noqa: BLE001 - puts and deletes are idempotent: again
                    self.note(f"faq write: {type(exc).__name__}; again")
                    time.sleep(0.3)
            raise RuntimeError("faq write failed 30 times")

        items = faq_items(self.sc.faq_entries)
        pause = self.sc.fault_seconds * 0.5 / max(1, len(items))
        for item in items:
            call(ddb.put_item, TableName="sieve-faq", Item={k: ser.serialize(v) for k, v in item.items()})
            time.sleep(pause)
        # revoke and grant roles, delete a few: the changes that can leak an entry into the wrong index
        for i, item in enumerate(items):
            if i % 6 == 0:  # public -> staff: must leave the public index
                call(ddb.update_item, TableName="sieve-faq", Key={"id": {"S": item["id"]}},
                     UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "role"},
                     ExpressionAttributeValues={":r": {"S": "staff"}})
            elif i % 6 == 1:  # staff -> contractor: must leave every index
                call(ddb.update_item, TableName="sieve-faq", Key={"id": {"S": item["id"]}},
                     UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "role"},
                     ExpressionAttributeValues={":r": {"S": "contractor"}})
            elif i % 6 == 2:  # contractor -> public
                call(ddb.update_item, TableName="sieve-faq", Key={"id": {"S": item["id"]}},
                     UpdateExpression="SET #r = :r", ExpressionAttributeNames={"#r": "role"},
                     ExpressionAttributeValues={":r": {"S": "public"}})
            elif i % 6 == 3:
                call(ddb.delete_item, TableName="sieve-faq", Key={"id": {"S": item["id"]}})
            time.sleep(pause / 2)
        self.note("faq writes done")

    # -- the whole run ----------------------------------------------------------------------

    def run(self) -> dict:
        sc = self.sc
        saved_env = dict(os.environ)
        try:
            with contextlib.ExitStack() as stack:
                return self._run(stack)
        finally:
            os.environ.clear()
            os.environ.update(saved_env)

    def _run(self, stack: contextlib.ExitStack) -> dict:
        from processors.config import load
        from processors.runtime.provision import provision
        from processors.runtime.slack_receiver import SlackReceiver

        sc = self.sc
        for k in [k for k in os.environ if k.startswith("AWS_ENDPOINT_URL")]:
            del os.environ[k]
        os.environ.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                           "AWS_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true"})
        os.environ.pop("AWS_PROFILE", None)
        moto = self.start_moto(stack)
        os.environ["AWS_ENDPOINT_URL"] = moto  # this process reads and checks without faults
        self.proxy = stack.enter_context(AwsFaultProxy(moto, rules=default_rules(sc.aws_fault_scale), seed=sc.seed))
        self.receiver = stack.enter_context(SlackReceiver())
        self.slack_proxy = stack.enter_context(TcpFaultProxy((self.receiver.host, self.receiver.port)))
        self.os_proxy = stack.enter_context(TcpFaultProxy(("127.0.0.1", 9200)))
        slack_url = f"{self.slack_proxy.url}/services/T0LOCAL00/B0LOCAL00/{self.receiver.token}"
        os.environ["SIEVE_LOCAL_SLACK_URL"] = slack_url

        self.model_port = free_port()
        self.model_log = self.dir / "model-requests.jsonl"
        self.model_log.unlink(missing_ok=True)
        self.model = Child([], dict(os.environ), self.dir / "model.log")
        stack.callback(self.model.kill)
        self.start_model(healthy=not sc.model_faults)

        prefix = f"faults-{uuid.uuid4().hex[:8]}-"
        os_url = self.os_proxy.url if not sc.stop_opensearch else "http://127.0.0.1:9200"
        cfg_path = write_config(sc, self.dir / "pipelines.yaml", model_url=f"http://127.0.0.1:{self.model_port}",
                                opensearch_url=os_url, index_prefix=prefix)
        stack.callback(self._delete_indexes, prefix)
        os.environ["SIEVE_CONFIG"] = str(cfg_path)
        loaded = load(cfg_path)
        provision(loaded.config, emulator=True)

        lines, truth = workload(sc)
        child_env = {**os.environ, "AWS_ENDPOINT_URL": self.proxy.url, "SLACK_WEBHOOK_URL": slack_url,
                     "SIEVE_STATE_DIR": str(self.dir / "state"), "PYTHONUNBUFFERED": "1"}
        # one `sieve run` per Lambda function group, as Lambda runs each function in its own sandboxes:
        # the log pipeline (processor + scheduled finaliser) and the FAQ processor (its embedder's cold start
        # would otherwise hold up the logs mapping after every restart)
        self.runners: dict[str, Child] = {}
        for name, functions in (("logs", ("logs-processor", "logs-finaliser")), ("faq", ("faq-processor",))):
            cp = self.dir / f"checkpoints-{name}.json"
            cp.unlink(missing_ok=True)
            argv = [sys.executable, "-m", "processors.cli", "run", "--config", str(cfg_path), "--checkpoints", str(cp)]
            for f in functions:
                argv += ["--function", f]
            child = Child(argv + (["-v"] if sc.verbose else []), child_env, self.dir / f"runner-{name}.log")
            child.log.unlink(missing_ok=True)
            stack.callback(child.kill)
            self.runners[name] = child

        # -- faults on, workload in ---------------------------------------------------------
        self.note("faults on")
        self.proxy.enabled = True
        for child in self.runners.values():
            child.start()
        drivers = [threading.Thread(target=f, daemon=True, name=f.__name__) for f in
                   (self.killer, self.opensearch_faults, self.slack_faults)
                   + ((self.model_faults,) if sc.model_faults else ())]
        workers = [threading.Thread(target=self._guard(self.pusher), args=(lines,), daemon=True),
                   threading.Thread(target=self._guard(self.faq_writer), daemon=True)]
        for t in drivers + workers:
            t.start()
        sampler_stop = threading.Event()
        sampler = threading.Thread(target=self._sample_rss, args=(sampler_stop,), daemon=True)
        sampler.start()
        deadline = time.monotonic() + sc.fault_seconds
        longest = time.monotonic() + sc.fault_seconds * 2
        while time.monotonic() < deadline or (
                sc.model_faults and time.monotonic() < longest
                and len(model_requests(self.model_log)) < sc.min_model_requests):
            time.sleep(0.5)  # the model's faults need model calls: windows must close while faults are on
        for t in workers:
            t.join(sc.fault_seconds * 3)
        if self.errors:
            raise RuntimeError("; ".join(self.errors))

        # -- faults off, drain ---------------------------------------------------------------
        self.stop_faults.set()
        for t in drivers:
            t.join(120)
        self.proxy.enabled = False
        self.os_proxy.allow()
        if sc.model_faults:
            self.model.kill()
            self.start_model(healthy=True)
        for child in self.runners.values():
            if not child.alive():
                child.start()
        self.note("faults off; draining")
        t_drain = time.monotonic()
        drained = self._drain(loaded)
        drain_seconds = time.monotonic() - t_drain
        sampler_stop.set()
        self.note(f"drained={drained} in {drain_seconds:.1f}s")

        result = self._check(loaded, truth, prefix)
        result.update({
            "scenario": asdict(sc),
            "drained": drained,
            "drain_seconds": round(drain_seconds, 1),
            "total_seconds": round(time.monotonic() - self.t0, 1),
            "faults": dict(sorted(self.faults.items())),
            "aws_faults": dict(sorted(self.proxy.counts.items())),
            "aws_calls": dict(sorted(self.proxy.calls.items())),
            "slack_proxy": dict(self.slack_proxy.counts),
            "opensearch_proxy": dict(self.os_proxy.counts),
            "runner_starts": {k: c.starts for k, c in self.runners.items()},
            "peak_rss_mb": {**{f"sieve run ({k})": round(c.peak_rss_kb / 1024, 1) for k, c in self.runners.items()},
                            "model server": round(self.model.peak_rss_kb / 1024, 1),
                            **({"moto": round(self.moto.peak_rss_kb / 1024, 1)} if hasattr(self, "moto") else {}),
                            "harness (receiver, proxies)": round((peak_rss_kb(os.getpid()) or (0, 0))[1] / 1024, 1)},
            "push": asdict(self.push_result) if hasattr(self, "push_result") else None,
            "timeline": self.events,
            "work_dir": str(self.dir),
        })
        return result

    def _guard(self, fn):
        def wrapped(*args):
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - reported by the main thread
                self.errors.append(f"{fn.__name__}: {type(exc).__name__}: {exc}")
        return wrapped

    def _sample_rss(self, stop: threading.Event) -> None:
        while not stop.wait(1.0):
            for c in (*self.runners.values(), self.model, getattr(self, "moto", None)):
                if c is not None:
                    c.sample()

    def _drain(self, loaded) -> bool:
        """Let the runners finish what is in flight, then end the stream: each `sieve run` again with
        `--until-idle` (and `--flush` for the log pipeline) until every window is finalised (a post
        still in progress when a runner was killed keeps its window open until the idempotency
        record's in-progress expiry, as in Lambda)."""
        from processors import wiring

        store = wiring.state_store(loaded)
        for child in self.runners.values():
            child.stop(60)
        deadline = time.monotonic() + self.sc.drain_timeout
        finals = {}
        for name, child in self.runners.items():
            argv = [a for a in child.argv if a != "-v"] + ["--until-idle", "120"] + (["--flush"] if name == "logs" else [])
            finals[name] = Child(argv, child.env, self.dir / f"drain-{name}.log")
        finals["faq"].start()  # the two drain in parallel, as two Lambda functions would
        first = True
        while time.monotonic() < deadline:
            finals["logs"].start()
            finals["logs"].proc.wait(max(1, deadline - time.monotonic()))
            if first:
                finals["faq"].proc.wait(max(1, deadline - time.monotonic()))
                first = False
            for c in finals.values():
                c.sample()
            open_left = {r: store.open_windows(r) for r in RULES}
            if not any(open_left.values()):
                return True
            self.note(f"windows still open after a flush: {open_left}")
            time.sleep(3)
        return False

    def _delete_indexes(self, prefix: str) -> None:
        with contextlib.suppress(Exception):
            req = urllib.request.Request(f"http://127.0.0.1:9200/{prefix}*", method="DELETE")
            urllib.request.urlopen(req, timeout=30).close()  # noqa: S310

    # -- the checks ------------------------------------------------------------------------

    def _check(self, loaded, truth: dict, prefix: str) -> dict:
        from processors import wiring
        from processors.core.slack_blocks import format_window

        store = wiring.state_store(loaded)
        expected = truth["windows"]
        lost = twice = counted = late = 0
        wrong_topn = []
        late_unmatched = []
        finalised = 0
        reports = {}
        for (rule, start), exp in sorted(expected.items()):
            stored = store.stored_report(rule, start)
            if stored is None:
                if rule == RULES[-1]:
                    lost += exp["total_events"]
                continue
            finalised += 1
            doc = stored.document
            reports[(rule, start)] = doc
            topn = doc["topn"]
            n = int(topn["total_events"]) + int(doc.get("late_events", 0) or 0)
            late += int(doc.get("late_events", 0) or 0)
            if rule == RULES[-1]:  # every rule counts every parsed event of the window; one is the record count
                counted += n
                lost += max(0, exp["total_events"] - n)
                twice += max(0, n - exp["total_events"])
            got_top = [(list(c["keys"]), c["value"]) for c in topn["contributors"]]
            want_top = [(c["keys"], c["value"]) for c in exp["top"]]
            exact = (got_top == want_top and topn["sample_count"] == exp["sample_count"]
                     and abs(float(topn["sum"]) - float(exp["sum"])) <= 1e-6)
            if exact and n != exp["total_events"] and int(doc.get("late_partials", 0) or 0) > 0:
                # the window closed before a lagging shard's partial (the watermark does not wait for a shard that
                # has flushed nothing yet); that partial was merged as late: its matched events are on the report
                # (late_events) and the top-N is exact, but its unmatched events are not tallied anywhere
                late_unmatched.append({"rule": rule, "window": start, "events": exp["total_events"] - n,
                                       "late_partials": int(doc.get("late_partials") or 0)})
            elif not exact or n != exp["total_events"]:
                wrong_topn.append({"rule": rule, "window": start, "got": {"sample_count": topn["sample_count"],
                                   "sum": topn["sum"], "total_events": n, "top": got_top[:3]},
                                   "want": {"sample_count": exp["sample_count"], "sum": exp["sum"],
                                            "total_events": exp["total_events"], "top": want_top[:3]}})
        # windows nobody expected (counted under a wrong window, or phantom)
        unexpected = []
        for rule in RULES:
            for item in store.reports(rule, limit=1000):
                start = int(aws_from(item)["topn"]["window"]["start"])
                if (rule, start) not in expected:
                    unexpected.append((rule, start))
        # Slack: each report with a selected group is posted exactly once
        payloads = list(self.receiver.accepted)
        texts = [json.dumps(p, ensure_ascii=False) for p in payloads]
        selected = posted = posted_twice = not_posted = dead_lettered = 0
        for (rule, start), doc in reports.items():
            header = f"{rule} · {format_window(start, start + 60)}"
            hits = sum(1 for t in texts if header in t)
            if doc.get("selected"):
                selected += 1
                if hits == 0:
                    if "failure queue" in str(doc.get("delivery")):
                        dead_lettered += 1
                    else:
                        not_posted += 1
                posted += min(hits, 1)
                posted_twice += max(0, hits - 1)
            elif hits:
                posted_twice += hits  # posted although nothing was selected: a phantom post
        in_queue = self._failure_queue_headers()
        dead_in_queue = 0
        for (rule, start), doc in reports.items():
            if doc.get("selected") and "failure queue" in str(doc.get("delivery")):
                dead_in_queue += int(any(f"{rule} · {format_window(start, start + 60)}" in t for t in in_queue))
        incidents_found = 0
        incidents_missing = []
        for inc in truth["incidents"]:
            w = inc["windows"][0]["window"][0]
            doc = reports.get((inc["rule"], w)) or {}
            if any(list(g["keys"].values()) == inc["rule_keys"] for g in doc.get("selected", [])):
                incidents_found += 1
            else:  # what the stored report says instead, to tell a selection problem from a counting one
                incidents_missing.append({"kind": inc["kind"], "rule": inc["rule"], "window": w, "keys": inc["rule_keys"],
                                          "report": bool(doc), "selected": [g.get("keys") for g in doc.get("selected", [])],
                                          "not_selected": (doc.get("not_selected") or [])[:5],
                                          "top": ((doc.get("topn") or {}).get("contributors") or [])[:3],
                                          "late": doc.get("late_events"), "delivery": str(doc.get("delivery"))[:200]})
        secrets = self._secrets(store)
        faq = self._faq(prefix)
        return {
            "records": {"pushed": truth["lines"] + self.sc.planted_per_group * len(PLANTED_GROUPS), "counted": counted,
                        "lost": lost, "counted_twice": twice, "late": late},
            "windows": {"expected": len(expected), "finalised": finalised, "unexpected": len(unexpected),
                        "wrong_topn": len(wrong_topn), "selected": selected, "posted": posted,
                        "posted_twice": posted_twice, "not_posted": not_posted, "dead_lettered": dead_lettered,
                        "dead_lettered_in_queue": dead_in_queue,
                        "slack_requests": len(self.receiver.requests), "slack_accepted": len(payloads)},
            "wrong_topn_detail": wrong_topn[:10],
            "late_unmatched": late_unmatched,
            "window_outcomes": [{"rule": rule, "window": start, "selected": len(doc.get("selected") or []),
                                 "analysis": (doc.get("outcome") or {}).get("status"),
                                 "reason": str((doc.get("outcome") or {}).get("reason") or "")[:120],
                                 "delivery": str(doc.get("delivery"))[:120],
                                 "finalised_after_s": round(float(doc.get("finalised_at", 0)) - self.wall0, 1)}
                                for (rule, start), doc in sorted(reports.items())],
            "incidents": {"expected": len(truth["incidents"]), "found_and_selected": incidents_found},
            "incidents_missing": incidents_missing,
            "faq": faq,
            "secrets": secrets,
        }

    def _failure_queue_headers(self) -> list[str]:
        """The bodies of the messages in the failure queue (read without deleting them)."""
        import boto3

        sqs = boto3.client("sqs")
        url = sqs.get_queue_url(QueueName="sieve-logs-failures")["QueueUrl"]
        bodies: dict[str, str] = {}
        for _ in range(20):
            msgs = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=120).get("Messages", [])
            if not msgs:
                break
            for m in msgs:
                bodies[m["MessageId"]] = json.dumps(json.loads(m["Body"]), ensure_ascii=False)
        return list(bodies.values())

    def _secrets(self, store) -> dict:
        import boto3

        where: dict[str, set[str]] = {"prompts": set(), "audit": set(), "slack": set(), "logs": set()}
        reqs = model_requests(self.model_log)
        prompts = "\n".join(json.dumps(r["messages"], ensure_ascii=False) for r in reqs)
        audit = boto3.client("dynamodb").scan(TableName="sieve-audit")
        audit_text = json.dumps(audit.get("Items", []), ensure_ascii=False)
        slack_text = "\n".join(json.dumps(r.payload, ensure_ascii=False) if r.payload is not None else ""
                               for r in self.receiver.requests)
        logs_text = "".join(p.read_text(errors="replace") for p in sorted(self.dir.glob("*.log")))
        for s in SECRETS:
            for name, text in (("prompts", prompts), ("audit", audit_text), ("slack", slack_text), ("logs", logs_text)):
                if s in text:
                    where[name].add(s)
        return {"planted": len(SECRETS), "model_requests": len(reqs), "audit_records": len(audit.get("Items", [])),
                "slack_requests": len(self.receiver.requests),
                **{f"in_{k}": len(v) for k, v in where.items()}, "which": {k: sorted(v) for k, v in where.items() if v}}

    def _faq(self, prefix: str) -> dict:
        import boto3

        roles = {"public": ["public"], "staff": ["public", "staff"]}
        items = boto3.client("dynamodb").scan(TableName="sieve-faq")["Items"]
        final = {i["id"]["S"]: (i.get("role") or {}).get("S") for i in items}
        expected = {(idx, eid) for idx, allowed in roles.items() for eid, role in final.items() if role in allowed}
        present = set()
        for idx in roles:
            name = prefix + idx
            try:
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:9200/{name}/_refresh", method="POST"),
                                       timeout=30).close()  # noqa: S310
                with urllib.request.urlopen(f"http://127.0.0.1:9200/{name}/_search?size=1000&_source=false",  # noqa: S310
                                            timeout=30) as r:
                    hits = json.loads(r.read())["hits"]["hits"]
            except urllib.error.HTTPError as exc:
                if exc.code != 404:
                    raise
                hits = []
            present |= {(idx, h["_id"]) for h in hits}
        leaked = sorted(p for p in present - expected if p[1] in final)  # in an index its role may not see
        stale = sorted(p for p in present - expected if p[1] not in final)  # deleted in the table, still indexed
        return {"entries_written": self.sc.faq_entries, "entries_final": len(final), "expected": len(expected),
                "indexed": len(expected & present), "missing": len(expected - present), "leaked": len(leaked),
                "stale": len(stale), "leaked_detail": leaked[:10], "stale_detail": stale[:10],
                "missing_detail": sorted(expected - present)[:10]}


def aws_from(item: dict) -> dict:
    from processors.adapters import aws

    return aws.from_ddb({k: v for k, v in item.items() if k not in ("pk", "sk", "expires_at")})


def run(sc: Scenario) -> dict:
    return Run(sc).run()


def table(r: dict) -> str:
    """The fault table, as printed by bench/bench_faults.py."""
    rec, win, faq, sec = r["records"], r["windows"], r["faq"], r["secrets"]
    rows = [
        ("records pushed / counted / lost / counted twice", f"{rec['pushed']} / {rec['counted']} / {rec['lost']} / {rec['counted_twice']}"),
        ("windows expected / finalised / wrong top-N / unexpected", f"{win['expected']} / {win['finalised']} / {win['wrong_topn']} / {win['unexpected']}"),
        ("windows selected / posted / posted twice / not posted / dead-lettered",
         f"{win['selected']} / {win['posted']} / {win['posted_twice']} / {win['not_posted']} / {win['dead_lettered']} "
         f"({win['dead_lettered_in_queue']} of them found in the failure queue)"),
        ("incidents found and selected", f"{r['incidents']['found_and_selected']} of {r['incidents']['expected']}"),
        ("FAQ index entries expected / indexed / missing / leaked to another role / stale",
         f"{faq['expected']} / {faq['indexed']} / {faq['missing']} / {faq['leaked']} / {faq['stale']}"),
        ("planted secrets seen in prompts / audit / Slack / logs",
         f"{sec['in_prompts']} / {sec['in_audit']} / {sec['in_slack']} / {sec['in_logs']} (of {sec['planted']})"),
        ("time to drain after the faults stopped", f"{r['drain_seconds']} s ({'drained' if r['drained'] else 'NOT drained'})"),
    ]
    f = r["faults"]
    injected = [
        ("runner SIGKILLs (logs / FAQ)", f"{f.get('runner_sigkill_logs', 0)} / {f.get('runner_sigkill_faq', 0)}"),
        ("runner exits on its own (restarted)", f.get("runner_exited_logs", 0) + f.get("runner_exited_faq", 0)),
        ("AWS faults injected", sum(r["aws_faults"].values())),
        ("OpenSearch outages", f.get("opensearch_outage", 0)),
        ("Slack 429 / 500 / hangs past the timeout", f"{f.get('slack_429', 0)} / {f.get('slack_500', 0)} / {r['slack_proxy'].get('hung', 0)}"),
        ("model garbage answers / killed mid-answer", f"{f.get('model_garbage', 0)} / {f.get('model_sigkill_mid_answer', 0)}"),
    ]
    w = max(len(a) for a, _ in rows + injected)
    out = ["faults injected:"] + [f"  {a:<{w}}  {b}" for a, b in injected]
    out += ["after the drain, against the workload's ground truth:"] + [f"  {a:<{w}}  {b}" for a, b in rows]
    return "\n".join(out)


def problems(r: dict) -> list[str]:
    """Every broken promise, in words (the tests assert the same list is empty)."""
    rec, win, faq, sec = r["records"], r["windows"], r["faq"], r["secrets"]
    out = []
    if not r["drained"]:
        out.append("the pipeline did not drain")
    if rec["lost"] or rec["counted_twice"] or rec["counted"] != rec["pushed"]:
        out.append(f"records: {rec}")
    if win["finalised"] != win["expected"] or win["wrong_topn"] or win["unexpected"]:
        out.append(f"windows: {win['expected']} expected, {win['finalised']} finalised, {win['wrong_topn']} with a "
                   f"wrong top-N, {win['unexpected']} unexpected: {r.get('wrong_topn_detail')}")
    if win["posted_twice"] or win["not_posted"] or win["dead_lettered"] != win["dead_lettered_in_queue"]:
        out.append(f"Slack: {win}")
    if r["incidents"]["found_and_selected"] != r["incidents"]["expected"]:
        out.append(f"incidents: {r['incidents']}")
    if faq["missing"] or faq["leaked"] or faq["stale"]:
        out.append(f"FAQ: {faq}")
    if sec["in_prompts"] or sec["in_audit"] or sec["in_slack"] or sec["in_logs"]:
        out.append(f"secrets past the boundary: {sec['which']}")
    return out
