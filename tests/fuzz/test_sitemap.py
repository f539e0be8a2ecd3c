"""Fuzzing sitemaps, robots.txt and URL canonicalisation (processors/core/crawl.py parse_sitemap,
RobotsPolicy, canonical_url, Scope): mutated XML, gzip (truncated, corrupted, bombs past
MAX_DECOMPRESSED), plain-text sitemaps, odd URLs. canonical_url is idempotent."""

from __future__ import annotations

import gzip

import pytest
from hypothesis import given

from processors.core.crawl import SitemapError, parse_sitemap
from tests.fuzz import corpus
from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import SITEMAP


@fuzz_settings(100)
@given(SITEMAP.strategy())
def test_sitemap_fuzz(arg):
    SITEMAP.check(arg)


@pytest.mark.parametrize("doc", [b"<urlset><url><http:>x</http:></url></urlset>", b"<http:>",
                                 b"<urlset><url><loc>https://example.com/a</loc></url><http:a/></urlset>"])
def test_regression_unsplittable_element_name_is_not_a_crash(doc):
    """Found by the fuzzer: lxml recovers `<http:>` as an element whose name QName() refuses (ValueError),
    which escaped parse_sitemap and stopped the whole crawl."""
    try:
        pages, children = parse_sitemap(doc)
    except SitemapError:
        return
    assert pages in ([], ["https://example.com/a"]) and children == []


def test_regression_truncated_gzip_sitemap_is_refused():
    data = gzip.compress(corpus.sitemap_docs()[0])
    with pytest.raises(SitemapError, match="truncated"):
        parse_sitemap(data[:-12])


def test_regression_canonical_url_never_loses_its_host():
    """Found by the benchmark run: `//\\"oTHER/x` against https://example.com/faq/ canonicalised to
    `https:///%22oTHER/x` (w3lib dropped the host): a URL with no host, which canonical_url itself refuses."""
    from processors.core.crawl import canonical_url

    assert canonical_url('//\\"oTHER/TRUex', "https://example.com/faq/") is None
    assert canonical_url("//other.example/x", "https://example.com/faq/") == "https://other.example/x"
