"""Fuzzing the crawler's HTTP fetcher (processors/adapters/web.py HttpFetcher) through requests and urllib3
with scripted answers (no network): statuses, redirects with odd Locations, Content-Length lies, gzip
bodies (valid, truncated, bombs), connection resets. It never raises and never keeps more than max_bytes."""

from __future__ import annotations

import gzip

from hypothesis import given

from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import SKIP_REASONS_OK, WEB, WEB_LIMITS, check_web


@fuzz_settings(200)
@given(WEB.strategy())
def test_web_fuzz(answers):
    WEB.check(answers)


def test_regression_redirect_with_broken_gzip_body_is_a_connection_error():
    """Found by the fuzzer: requests drains a redirect's body; a gzip body shorter than its Content-Length
    makes urllib3 raise RuntimeError, which escaped HttpFetcher.fetch (and the crawl)."""
    body = gzip.compress(b"<p>moved</p>")
    answers = [(301, {"Location": "/faq/next", "Content-Encoding": "gzip", "Content-Length": str(10**12)}, body)]
    f = check_web(answers)
    assert f.reason == "connection_error"


def test_gzip_bomb_body_stops_at_max_bytes():
    body = gzip.compress(b"a" * (64 * WEB_LIMITS.max_bytes), 9)
    f = check_web([(200, {"Content-Type": "text/html", "Content-Encoding": "gzip"}, body)])
    assert f.reason == "too_large" and f.reason in SKIP_REASONS_OK
