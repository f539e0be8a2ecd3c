"""processors/core/crawl.py without services: scope, robots.txt, sitemaps, decoding, extraction, ids and
hashes, chunking, the diff, and the crawl loop's bounds (with in-memory ports)."""

from __future__ import annotations

import gzip
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.core import crawl as c
from processors.core.crawl import (
    CrawlSource, Crawler, Fetched, HeldEntry, QA, RobotsPolicy, Scope, SitemapError, canonical_url, chunk,
    content_hash, decode_html, diff_page, entry_id, extract_page, normalise_text, page_items, parse_sitemap,
)

O = "https://help.example.com"


def src(**kw) -> CrawlSource:
    return CrawlSource(**{"url": f"{O}/faq/", "role": "public", **kw})


# ------------------------------------------------------------------------------------ URLs and scope


@pytest.mark.parametrize(("raw", "expect"), [
    ("HTTPS://Help.Example.COM:443/faq/?b=2&a=1#x", f"{O}/faq/?a=1&b=2"),
    ("http://h:80", "http://h/"),
    ("http://h:8080/a b", "http://h:8080/a%20b"),
    ("/faq/ja/返品", f"{O}/faq/ja/%E8%BF%94%E5%93%81"),
    ("mailto:a@b", None), ("javascript:alert(1)", None), ("ftp://h/x", None), ("http://[::1", None), ("", f"{O}/base"),
])
def test_canonical_url(raw, expect):
    assert canonical_url(raw, f"{O}/base") == expect


def test_scope_decides_site_prefix_include_exclude():
    s = Scope.of(src(exclude=("^/faq/staff/",), include=(r"\.html$|/$",)))
    assert s.origin == O and s.prefix == "/faq/"
    assert s.reason(f"{O}/faq/a.html") is None
    assert s.reason(f"{O}/faq/") is None
    assert s.reason(f"{O}/faq/staff/x.html") == "out_of_scope"
    assert s.reason(f"{O}/faq/a.pdf") == "out_of_scope"
    assert s.reason(f"{O}/about.html") == "out_of_scope"
    assert s.reason("http://help.example.com/faq/a.html") == "off_site"  # another scheme is another site
    assert s.reason("https://evil.example.com/faq/a.html") == "off_site"
    assert Scope.of(src(url=f"{O}/faq/index.html")).prefix == "/faq/"
    assert Scope.of(src(scope="/")).prefix == "/"
    assert src(url=f"{O}/faq/index.html").key == f"{O}/faq/"


def test_a_source_checks_itself():
    with pytest.raises(ValueError, match="not an http"):
        src(url="ftp://x/")
    with pytest.raises(ValueError, match="outside the scope"):
        src(scope="/docs/")
    with pytest.raises(ValueError, match="not a regular expression"):
        src(exclude=("(",))


# ------------------------------------------------------------------------------------ robots.txt


def test_robots_policy_follows_rfc_9309():
    p = RobotsPolicy.from_response(200, b"User-agent: *\nDisallow: /faq/private/\nAllow: /faq/private/ok$\n"
                                        b"Disallow: /*.pdf$\nCrawl-delay: 2.5\nSitemap: https://x/s.xml\n", "SieveFaqCrawler/0.1")
    assert p.reason(f"{O}/faq/private/a") == "robots_disallowed"
    assert p.reason(f"{O}/faq/private/ok") is None
    assert p.reason(f"{O}/faq/a.pdf") == "robots_disallowed"
    assert p.reason(f"{O}/faq/a.html") is None
    assert p.crawl_delay == 2.5 and p.sitemaps == ["https://x/s.xml"]
    named = RobotsPolicy.from_response(200, b"User-agent: SieveFaqCrawler\nDisallow: /\n\nUser-agent: *\nAllow: /\n", "SieveFaqCrawler/0.1")
    assert named.reason(f"{O}/faq/") == "robots_disallowed"
    assert RobotsPolicy.from_response(404, b"", "ua").reason(f"{O}/x") is None  # none: everything allowed
    assert RobotsPolicy.from_response(503, b"", "ua").disallow_all  # unreachable: nothing allowed
    assert RobotsPolicy.from_response(None, b"", "ua", "timeout").disallow_all
    garbage = RobotsPolicy.from_response(200, bytes(range(256)) * 10, "ua")
    assert garbage.reason(f"{O}/x") is None and garbage.crawl_delay == 0.0


# ------------------------------------------------------------------------------------ sitemaps


def test_sitemaps_of_every_kind():
    urlset = (b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
              b"<url><loc> https://a/1 </loc><lastmod>2024</lastmod></url><url><loc>https://a/2</loc></url></urlset>")
    assert parse_sitemap(urlset) == (["https://a/1", "https://a/2"], [])
    assert parse_sitemap(gzip.compress(urlset)) == (["https://a/1", "https://a/2"], [])
    index = b"<sitemapindex><sitemap><loc>https://a/s1.xml</loc></sitemap></sitemapindex>"
    assert parse_sitemap(index) == ([], ["https://a/s1.xml"])
    assert parse_sitemap(b"https://a/1\nnot a url\nhttps://a/2\n") == (["https://a/1", "https://a/2"], [])
    xxe = (b'<?xml version="1.0"?><!DOCTYPE u [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b"<urlset><url><loc>&x;</loc></url><url><loc>https://a/ok</loc></url></urlset>")
    assert parse_sitemap(xxe) == (["https://a/ok"], [])
    for bad in (b"", b"<html><body>no</body></html>", b"\x1f\x8bnot gzip", b"\xff\xfe\x00garbage", b"<<<"):
        with pytest.raises(SitemapError):
            parse_sitemap(bad)
    bomb = gzip.compress(b"https://a/x\n" * 10_000_000)
    with pytest.raises(SitemapError, match="uncompressed"):
        c.gunzip_bounded(bomb, limit=1024 * 1024)


# ------------------------------------------------------------------------------------ decoding


def test_decoding_honours_the_declared_encoding_and_refuses_guesses():
    sjis = "<p>支払い</p>".encode("shift_jis")
    assert decode_html(sjis, "text/html; charset=Shift_JIS")[0] == "<p>支払い</p>"
    euc = '<meta charset="euc-jp"><p>返品</p>'.encode("euc_jp")
    assert "返品" in decode_html(euc, "text/html")[0]
    assert decode_html("\ufeff<p>é</p>".encode("utf-8"), "text/html")[0] == "<p>é</p>"
    assert decode_html(b"<p>caf\xe9</p>", "text/html")[0] is None  # not UTF-8, nothing declared
    text, why = decode_html(b"<p>\x82</p>", "text/html; charset=utf-8")
    assert text is None and "utf-8" in why
    assert decode_html(b"<p>x</p>", "text/html; charset=no-such-thing")[0] == "<p>x</p>"  # unknown: UTF-8 it is


# ------------------------------------------------------------------------------------ extraction


def test_whitespace_is_normalised_and_paragraphs_kept():
    assert normalise_text("  a\u00a0\u00a0b\u3000c\u200b \r\n\r\n\n  d\te  ") == "a b c\nd e"


def page(body: str, lang: str = "en", head: str = "") -> str:
    return f'<!DOCTYPE html><html lang="{lang}"><head><meta charset="utf-8">{head}</head><body>{body}</body></html>'


def qas(html: str, url: str = f"{O}/faq/p.html"):
    return [(q.question, q.answer, q.method, q.lang, q.anchor) for q in extract_page(html, url).qas]


def test_json_ld_question_items_anywhere():
    ld = ('<script type="application/ld+json">[{"@context":"https://schema.org","@type":["FAQPage","WebPage"],'
          '"mainEntity":{"@type":"Question","name":"Q one?","acceptedAnswer":[{"@type":"Answer","text":"A <b>one</b>."}]}},'
          '{"@type":"Question","name":"Q two?","inLanguage":"ja","suggestedAnswer":{"@type":"Answer","text":"二"}}]</script>'
          '<script type="application/ld+json">{"@type": "FAQPage", "mainEntity": [</script>')
    html = page('<h2 id="one">Q one?</h2><p>A one.</p>', head=ld)
    extract = extract_page(html, f"{O}/faq/p.html")
    assert qas(html) == [("Q one?", "A one.", "json-ld", "en", "one"), ("Q two?", "二", "json-ld", "ja", None)]
    assert extract.problems == Counter({"bad_json_ld": 1})


def test_microdata_details_dl_and_headings():
    html = page(
        '<div itemscope itemtype="http://schema.org/Question" id="m1"><span itemprop="name">Micro?</span>'
        '<div itemprop="acceptedAnswer" itemscope itemtype="http://schema.org/Answer"><p itemprop="text">Data.</p></div></div>'
        '<details id="d1"><summary>Details?</summary>Tail text <p>More.</p></details>'
        '<details><summary><h3>Nested heading?</h3></summary><p>Inside.</p></details>'
        '<dl><div><dt>Term?</dt><dd>One.</dd><dd>Two.</dd></div><dt>No definition</dt></dl>'
        '<nav><details><summary>Menu?</summary>links</details></nav>'
        '<section lang="ja"><h2>質問ですか？</h2><p>答え。</p><h3>Sub part</h3><p>still part of it</p><h2>Next</h2><p>x</p></section>'
        '<h4>Q1. A question without a mark</h4><p>Answered.</p><h4>Plain heading</h4><p>Not a question.</p>'
        '<h2>Empty?</h2><h2>Another</h2>')
    got = qas(html)
    assert got == [
        ("Micro?", "Data.", "microdata", "en", "m1"),
        ("Details?", "Tail text\nMore.", "details", "en", "d1"),
        ("Nested heading?", "Inside.", "details", "en", None),
        ("Term?", "One.\nTwo.", "dl", "en", None),
        ("質問ですか？", "答え。\nSub part\nstill part of it", "heading", "ja", None),
        ("Q1. A question without a mark", "Answered.", "heading", "en", None),
    ]
    assert extract_page(html, f"{O}/x").problems == Counter({"no_answer": 1})


def test_links_canonical_and_robots_meta():
    html = page('<a href="a.html#frag">a</a> <a href="/faq/b.html?y=2&x=1">b</a> <a href="mailto:x@y">m</a>'
                '<a href="c.html" rel="nofollow">c</a> <a href="https://other.example/">o</a> <a href="a.html">again</a>',
                head='<base href="/faq/sub/"><link rel="Canonical" href="/faq/sub/canon.html">'
                     '<meta name="ROBOTS" content="noindex">')
    p = extract_page(html, f"{O}/faq/p.html")
    assert p.links == [f"{O}/faq/sub/a.html", f"{O}/faq/b.html?x=1&y=2", "https://other.example/"]
    assert p.canonical == f"{O}/faq/sub/canon.html" and p.noindex and not p.nofollow
    assert extract_page(page("x", head='<meta name="robots" content="none">'), O).links == []


@pytest.mark.parametrize("bad", ["", "   ", "\x00\x00", "<", "<html", "<<<>>>", "<?xml version='1.0' encoding='latin-1'?><x/>",
                                 "<html><body>" + "<div>" * 5000 + "deep" + "</div>" * 10, "<svg><details><summary>s?</summary>a"])
def test_malformed_html_never_raises_anything_but_page_error(bad):
    try:
        extract_page(bad, O)
    except c.PageError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(list("<>/=\"' abcdhlpstu?？\n日本") + ["<details>", "<summary>", "<dt>", "<dd>", "<dl>",
                                  "<h2>", "</h2>", "<script type=\"application/ld+json\">", "{\"@type\": \"Question\""]),
                max_size=120).map("".join))
def test_any_markup_either_extracts_or_says_why(text):
    try:
        p = extract_page(text, O)
    except c.PageError:
        return
    for qa in p.qas:
        assert qa.question and qa.answer and qa.question == " ".join(qa.question.split())


# ------------------------------------------------------------------------------------ items, ids, hashes


def test_items_have_stable_ids_hashes_passages_and_are_valid_records():
    s = src(passage_chars=200, passage_overlap=40)
    long = " ".join(f"Sentence number {i} explains one more detail." for i in range(30))
    found = [QA("How?", "Like this.", "details", "en-GB", "how"), QA("Long?", long, "details", None, None),
             QA("Wie?", "So.", "details", "de", None), QA("x" * 2001, "a", "details", "en", None),
             QA("日本語？", "はい。", "heading", None, "日本 語")]
    items, skipped = page_items(f"{O}/faq/p.html", found, s, "2024-05-01T00:00:00Z")
    assert [k.reason for k in skipped] == ["unsupported_lang", "question_too_long"]
    first = items[0]
    assert first["id"] == entry_id(f"{O}/faq/p.html", "How?") == entry_id(f"{O}/faq/p.html", "  How? ")
    assert first["source_url"] == f"{O}/faq/p.html#how" and first["lang"] == "en" and first["role"] == "public"
    assert first["crawl_source"] == f"{O}/faq/" and first["content_hash"] == content_hash(first)
    long_items = [i for i in items if i["question"] == "Long?"]
    assert len(long_items) > 3 and all(len(i["answer"]) <= 200 for i in long_items)
    assert [i["id"] for i in long_items][1:] == [f"{long_items[0]['id']}-p{n}" for n in range(2, len(long_items) + 1)]
    assert items[-1]["lang"] == "ja" and items[-1]["source_url"].endswith("#%E6%97%A5%E6%9C%AC%20%E8%AA%9E")
    # the hash covers what is written, not when
    again, _ = page_items(f"{O}/faq/p.html", found[:1], s, "2030-01-01T00:00:00Z")
    assert again[0]["content_hash"] == first["content_hash"]
    other_role, _ = page_items(f"{O}/faq/p.html", found[:1], src(role="staff"), "2030-01-01T00:00:00Z")
    assert other_role[0]["content_hash"] != first["content_hash"] and other_role[0]["id"] == first["id"]


def test_chunks_overlap_and_prefer_sentence_boundaries():
    text = " ".join(f"This is sentence {i}." for i in range(100))
    parts = chunk(text, 300, 60)
    assert all(len(p) <= 300 for p in parts) and len(parts) > 5
    assert all(p.endswith(".") for p in parts)  # cut after sentences
    assert all(p.startswith("This is sentence") for p in parts)  # restart at sentences
    for a, b in zip(parts, parts[1:]):
        assert b.split(".")[0] + "." in a  # b starts with a sentence that a ends with (overlap)
    joined = " ".join(parts)
    assert all(f"sentence {i}." in joined for i in range(100))
    ja = "。".join(f"これは{i}番目の文です" for i in range(80)) + "。"
    jparts = chunk(ja, 120, 30)
    assert all(len(p) <= 120 and p.endswith("。") for p in jparts)
    assert chunk("short", 100, 10) == ["short"] and chunk("", 100, 10) == []
    assert chunk("x" * 250, 100, 20) == ["x" * 100, "x" * 100, "x" * 90]  # no boundary at all: hard cuts


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab .。\n")), min_size=0, max_size=2000),
       st.integers(min_value=100, max_value=400), st.integers(min_value=0, max_value=50))
def test_chunks_cover_everything_within_bounds(text, size, overlap):
    parts = chunk(text, size, overlap)
    assert all(0 < len(p) <= size for p in parts)
    covered = "".join(parts)
    assert set(text.split()) <= set(" ".join(parts).split()) or not text.strip()
    assert len(parts) <= len(text) // max(size - overlap, 1) * 2 + 2 and (covered or not text.strip())


def test_diff_page():
    held = {"a": HeldEntry("a", "u1", "h1"), "b": HeldEntry("b", "u1", "h2"), "c": HeldEntry("c", "u1", "h3"),
            "d": HeldEntry("d", "u2", "h4")}
    now = [{"id": "a", "content_hash": "h1"}, {"id": "b", "content_hash": "NEW"}, {"id": "e", "content_hash": "h5"}]
    d = diff_page(["u1"], now, held)
    assert d.unchanged == ["a"] and [i["id"] for i in d.changed] == ["b"] and [i["id"] for i in d.new] == ["e"]
    assert d.removed == [held["c"]]  # d is on a page this crawl did not decide
    assert diff_page(["u2"], [], held).removed == [held["d"]]


# ------------------------------------------------------------------------------------ the crawl loop


class FakeSite:
    """Fetcher double: path -> (status, content type, body)."""

    def __init__(self, pages):
        self.pages, self.fetched = pages, []

    def fetch(self, url, *, limits, delay, allow):
        self.fetched.append(url)
        path = url[len(O):]
        status, ctype, body = self.pages.get(path, (404, "text/html", b""))
        return Fetched(url, url, status, ctype, body)


class MemStore:
    def __init__(self):
        self.items, self.writes = {}, 0

    def held(self, key):
        return {i: HeldEntry(i, it["page_url"], it["content_hash"]) for i, it in self.items.items() if it["crawl_source"] == key}

    def put(self, item, *, source_key):
        if self.items.get(item["id"], {}).get("content_hash") == item["content_hash"]:
            return "unchanged"
        self.items[item["id"]], self.writes = dict(item), self.writes + 1
        return "written"

    def delete(self, entry, *, source_key):
        self.items.pop(entry.id, None)
        self.writes += 1
        return "deleted"


def html_page(n: int, links=()) -> tuple[int, str, bytes]:
    body = f'<details><summary>Question {n}?</summary><p>Answer {n}.</p></details>' + "".join(f'<a href="{u}">x</a>' for u in links)
    return 200, "text/html; charset=utf-8", page(body).encode()


def test_page_cap_and_deadline_leave_the_rest_for_next_time():
    pages = {"/robots.txt": (404, "text/plain", b""), "/faq/": html_page(0, [f"p{i}.html" for i in range(1, 10)])}
    pages.update({f"/faq/p{i}.html": html_page(i) for i in range(1, 10)})
    site, store = FakeSite(pages), MemStore()
    crawler = Crawler(site, store, clock=lambda: 0.0, now_iso=lambda: "2024-05-01T00:00:00Z")
    r = crawler.crawl(src(max_pages=4, delay_seconds=0))
    assert r.pages_fetched == 4 and r.skipped["page_cap"] == 6 and r.new == 4
    # the next run re-checks what the table holds first, so capped crawls still see every held page again
    now = [0.0]
    late = Crawler(site, store, clock=lambda: now[0], now_iso=lambda: "2024-05-01T00:00:00Z")
    r2 = late.crawl(src(max_pages=100, delay_seconds=0, timeout_seconds=5), deadline=3.0)
    assert r2.pages_fetched == 0 and r2.skipped["deadline"] >= 5 and r2.removed == 0 and len(store.items) == 4


def test_unreachable_robots_txt_changes_nothing():
    store = MemStore()
    store.items["x"] = {"id": "x", "page_url": f"{O}/faq/a.html", "content_hash": "h", "crawl_source": f"{O}/faq/"}
    site = FakeSite({"/robots.txt": (503, "text/plain", b"")})
    r = Crawler(site, store, clock=lambda: 0.0, now_iso=lambda: "2024-05-01T00:00:00Z").crawl(src())
    assert r.error and "unreachable" in r.error and site.fetched == [f"{O}/robots.txt"] and "x" in store.items


def test_a_failing_store_ends_the_source_with_an_error_not_a_traceback():
    class Broken(MemStore):
        def held(self, key):
            raise RuntimeError("table gone")

    site = FakeSite({"/robots.txt": (404, "text/plain", b""), "/faq/": html_page(0)})
    r = Crawler(site, Broken(), clock=lambda: 0.0, now_iso=lambda: "2024-05-01T00:00:00Z").crawl(src())
    assert r.error == "RuntimeError: table gone"


def test_noindex_pages_and_x_robots_tag_drop_their_entries():
    store = MemStore()
    pages = {"/robots.txt": (404, "text/plain", b""), "/faq/": html_page(0, ["a.html"]), "/faq/a.html": html_page(1)}
    crawler = Crawler(FakeSite(pages), store, clock=lambda: 0.0, now_iso=lambda: "2024-05-01T00:00:00Z")
    assert crawler.crawl(src(delay_seconds=0)).new == 2
    pages["/faq/a.html"] = (200, "text/html", page("<details><summary>Q?</summary>A</details>",
                                                   head='<meta name="robots" content="noindex, follow">').encode())
    r = crawler.crawl(src(delay_seconds=0))
    assert r.removed == 1 and r.skipped["noindex"] == 1 and len(store.items) == 1
