"""Size and cost of the AI boundary: digest size and token estimate for a realistic window, and the
time to redact / template sample lines (normal and pathological lines).

    .venv/bin/python bench/bench_boundary.py

Writes bench/results/boundary.json. Timing only: nothing here is a pass/fail test.
"""

from __future__ import annotations

import platform
import random
import string
import sys
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from processors.core.budget import estimate_tokens  # noqa: E402
from processors.core.digest import DigestConfig, build_digest  # noqa: E402
from processors.core.prompts import build_prompt  # noqa: E402
from processors.core.redact import Redactor, window_key  # noqa: E402
from processors.core.select import SelectionConfig, select_groups  # noqa: E402
from processors.core.types import Contributor, TopNReport, Window  # noqa: E402

SECRET = b"bench-pseudonym-secret-012345678"


def access_line(rng: random.Random, path: str, status: str) -> str:
    ip = f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    q = rng.choice(["", f"?id={rng.randint(1, 10**6)}", f"?session_id={rng.getrandbits(64):x}", f"?token={rng.getrandbits(128):x}"])
    ua = rng.choice(["curl/8.5.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0", "python-requests/2.32.3"])
    return (f'{ip} - - [14/Nov/2025:22:13:{rng.randint(0, 59):02d} +0000] "GET {path}/{rng.randint(1, 99999)}{q} HTTP/1.1" '
            f'{status} {rng.randint(100, 90000)} "https://shop.example.com/" "{ua}"')


def main() -> None:
    rng = random.Random(7)
    rows = [(("500", "/api/orders"), 4120), (("503", "/api/pay"), 600), (("502", "/api/cart"), 450), (("500", "/api/search"), 80)]
    report = TopNReport("errors-by-path", Window(1_763_000_000, 1_763_000_060), ("status", "path"), "Count",
                        tuple(Contributor(k, float(v)) for k, v in rows), 4, 4120.0, 5250, 5250.0, 120_000)
    samples = {k: [access_line(rng, k[1], k[0]) for _ in range(200)] for k, _ in rows}
    results: dict = {"machine": platform.platform(), "python": platform.python_version()}

    sel = select_groups(report, SelectionConfig(min_count=50, max_groups=3), samples=samples)
    for n in (3, 5):
        t = time.perf_counter()
        d = build_digest(report, sel.selected, Redactor(window_key(SECRET, report.rule, report.window)), DigestConfig(samples_per_group=n))
        ms = (time.perf_counter() - t) * 1000
        p = build_prompt(d.text)
        results[f"digest_{n}_samples"] = {
            "groups": len(d.groups), "sample_lines_in": sum(len(g.samples) for g in sel.selected),
            "digest_chars": len(d.text), "digest_bytes": len(d.text.encode()), "omitted": list(d.omitted),
            "prompt_bytes": len((p.system + p.user).encode()), "estimated_prompt_tokens": estimate_tokens(p.system + "\n" + p.user),
            "build_ms": round(ms, 1),
        }

    r = Redactor(window_key(SECRET, report.rule, report.window))
    lines = [line for v in samples.values() for line in v]
    t = time.perf_counter()
    for line in lines:
        r.redact(line)
    per = (time.perf_counter() - t) / len(lines)
    results["redact_access_line_us"] = round(per * 1e6, 1)
    patho = {
        "alnum_4k": "a" * 4096, "digits_spaced_4k": "1 " * 2048, "hex_colons_4k": "a:" * 2048, "dashes_4k": "a-" * 2048,
        "base64_4k": "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(4096)),
    }
    results["redact_pathological_ms"] = {}
    for name, text in patho.items():
        t = time.perf_counter()
        r.redact(text)
        results["redact_pathological_ms"][name] = round((time.perf_counter() - t) * 1000, 1)

    out = ROOT / "bench" / "results" / "boundary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    main()
