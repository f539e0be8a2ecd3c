"""Real samples the fuzzers start from and mutate: generated access logs in the three formats
(processors/core/generate.py), the ALB sample of tests/core/data, the shipped rule files and
pipelines.yaml, the FAQ test site's HTML. Loaded once, cached."""

from __future__ import annotations

import functools
import gzip
import itertools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def log_lines(fmt: str) -> tuple[str, ...]:
    from processors.core.generate import AccessLogGenerator, GeneratorConfig

    gen = AccessLogGenerator(GeneratorConfig(format=fmt, seed=7, lines=400, incidents=()))
    lines = list(itertools.islice(gen.lines(), 60))
    if fmt == "alb":
        lines += [ln for ln in (ROOT / "tests/core/data/alb-small.log").read_text().splitlines() if ln.strip()][:20]
    return tuple(lines)


@functools.cache
def rule_files() -> tuple[tuple[str, bytes], ...]:
    files = sorted((ROOT / "rules").rglob("*.json"))
    return tuple((str(p.relative_to(ROOT)), p.read_bytes()) for p in files)


@functools.cache
def rule_docs() -> tuple[dict, ...]:
    return tuple(json.loads(b) for _, b in rule_files())


@functools.cache
def pipelines_yaml() -> str:
    return (ROOT / "pipelines.yaml").read_text()


@functools.cache
def html_pages() -> tuple[bytes, ...]:
    site = ROOT / "tests/faq/site"
    return tuple(p.read_bytes() for p in sorted(site.rglob("*.html")))


@functools.cache
def sitemap_docs() -> tuple[bytes, ...]:
    site = ROOT / "tests/faq/site"
    return tuple(p.read_bytes() for p in sorted(site.glob("*.xml"))) + ((site / "robots.txt").read_bytes(),)


def cwl_payload(messages, *, group: str = "/sieve/access/nginx", stream: str = "i-0", ts: int = 1_709_546_400_000,
                message_type: str = "DATA_MESSAGE") -> dict:
    return {"messageType": message_type, "owner": "123456789012", "logGroup": group, "logStream": stream,
            "subscriptionFilters": ["sieve-access"],
            "logEvents": [{"id": str(36000000000000000000000000000000000000000000000000000000 + i), "timestamp": ts + i,
                           "message": m} for i, m in enumerate(messages)]}


def gzip_json(doc) -> bytes:
    return gzip.compress(json.dumps(doc).encode(), 6, mtime=0)
