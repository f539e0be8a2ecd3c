"""The FAQ crawler Lambda (scheduled; `sieve run` invokes it locally): crawl `pipelines.faq.sources` -> table.

The use case is processors/core/crawl.py (`Crawler`): discover pages (sitemaps, same-site links inside the
source's scope), obey robots.txt, extract Q/As, and write only what changed to the FAQ table, whose
stream then updates the role indexes (processors/handlers/faq.py). `{"sieve": {"sources": [names]}}` crawls
only the sources with those names (or URLs). The invocation's remaining time bounds the crawl: pages not
reached in time are left for the next run, and nothing already in the table is lost.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger

from processors import wiring

logger = Logger(service="sieve-faq-crawler", logger_handler=None)

COMPONENT = wiring.FAQ_CRAWLER
_app: wiring.PerContainer[wiring.FaqCrawlerApp] = wiring.PerContainer(COMPONENT)
reset_runtime = _app.reset

SAFETY_MARGIN_S = 15.0  # stop fetching this long before Lambda's timeout


def handler(event: dict, context: Any) -> dict:
    app = _app.get()
    wanted = ((event or {}).get("sieve") or {}).get("sources")
    sources = [s for s in app.sources if not wanted or s.label in wanted or s.url in wanted]
    deadline = None
    if context is not None:
        deadline = app.crawler.clock() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_S
    started = time.monotonic()
    reports = []
    for source in sources:
        report = app.crawler.crawl(source, deadline=deadline)
        reports.append(report.as_dict())
        log = logger.warning if report.error else logger.info
        log("faq crawl", extra={"summary": " | ".join(report.lines()), **report.as_dict()})
    return {"sources": reports, "errors": sum(1 for r in reports if r["error"]),
            "duration_ms": round((time.monotonic() - started) * 1000, 1)}
