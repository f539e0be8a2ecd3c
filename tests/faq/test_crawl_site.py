"""The FAQ crawler against a real local site (tests/faq/site, served from 127.0.0.1) and the session's moto
server: crawl -> the FAQ table, re-crawls that change nothing (no stream records), changes, removals,
robots.txt, scope, roles, bad input; the scheduled handler and `sieve faq crawl`."""

from __future__ import annotations

import json
import time
from collections import Counter

import boto3
import pytest

from processors import wiring
from processors.config import load
from processors.core.crawl import entry_id
from processors.runtime.lambda_context import LambdaContext
from processors.runtime.provision import provision
from tests.faq.conftest import write_config
from tests.faq.site.server import SiteServer

TABLE = "sieve-faq"


@pytest.fixture()
def site(tmp_path):
    server = SiteServer.copy_of_site(tmp_path).start()
    yield server
    server.stop()


def sources(origin: str) -> list[dict]:
    common = {"delay_seconds": 0, "timeout_seconds": 1.0, "max_bytes": 1024 * 1024, "passage_chars": 600,
              "passage_overlap": 100}
    return [
        {"name": "help", "url": f"{origin}/faq/", "role": "public", "exclude": ["^/faq/staff/"], **common},
        {"name": "staff", "url": f"{origin}/faq/staff/", "role": "staff", **common},
    ]


@pytest.fixture()
def crawl_env(aws, tmp_path, site, monkeypatch):
    """Config with the site's two sources (public help, staff section), provisioned on moto."""

    def mutate(doc):
        doc["pipelines"]["faq"]["sources"] = sources(site.origin)
        doc["functions"]["faq-crawler"] = {"handler": "processors.handlers.faq_crawler.handler",
                                           "timeout_seconds": 300, "schedule_seconds": 3600}

    path = write_config(tmp_path, "faq-crawl-test-", mutate)
    monkeypatch.setenv("SIEVE_CONFIG", str(path))
    loaded = load(path)
    provision(loaded.config, emulator=True)
    return loaded


def crawl(loaded, name: str | None = None):
    app = wiring.faq_crawler(loaded)
    reports = [app.crawler.crawl(s) for s in app.sources if name is None or s.name == name]
    for r in reports:
        assert r.error is None, r.lines()
    return reports if name is None else reports[0]


def items() -> dict[str, dict]:
    t = boto3.resource("dynamodb").Table(TABLE)
    out, kwargs = {}, {}
    while True:
        resp = t.scan(**kwargs)
        out.update({i["id"]: i for i in resp["Items"]})
        if "LastEvaluatedKey" not in resp:
            return out
        kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]


def stream_events() -> Counter:
    """Every record on the FAQ table's stream so far, by eventName."""
    ddb, streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    counts: Counter = Counter()
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while it:
            resp = streams.get_records(ShardIterator=it, Limit=1000)
            counts.update(r["eventName"] for r in resp["Records"])
            if not resp["Records"]:
                break
            it = resp.get("NextShardIterator")
    return counts


def by_question(all_items: dict) -> dict[str, dict]:
    return {i["question"]: i for i in all_items.values() if i.get("passage", 1) == 1}


def test_crawl_fills_the_table_from_every_format_in_both_languages(crawl_env, site):
    public, staff = crawl(crawl_env)
    got = items()
    q = by_question(got)
    o = site.origin
    expected = {  # question -> (lang, role, cited URL)
        "How do I reset my password?": ("en", "public", f"{o}/faq/#password"),  # JSON-LD, anchor of the visible copy
        "What are the office opening hours?": ("en", "public", f"{o}/faq/"),  # JSON-LD only: no anchor
        "How do I get a refund?": ("en", "public", f"{o}/faq/details.html#refund"),  # <details>
        "What does the warranty cover?": ("en", "public", f"{o}/faq/details.html#warranty"),
        "How long does shipping take?": ("en", "public", f"{o}/faq/dl.html#shipping-time"),  # <dl>
        "Do you ship internationally?": ("en", "public", f"{o}/faq/dl.html#international"),
        "パスワードをリセットするには？": ("ja", "public", f"{o}/faq/ja/"),  # JSON-LD @graph
        "営業時間は何時から何時までですか？": ("ja", "public", f"{o}/faq/ja/#hours"),  # JSON-LD url fragment
        "商品を返品できますか？": ("ja", "public", f"{o}/faq/ja/microdata.html#henpin"),  # microdata
        "返金はいつ受け取れますか？": ("ja", "public", f"{o}/faq/ja/microdata.html#henkin"),
        "配送にはどのくらいかかりますか？": ("ja", "public", f"{o}/faq/ja/headings.html#haisou"),  # heading
        "Is malformed markup still read?": ("en", "public", f"{o}/faq/bad/malformed.html#malformed"),
        "Can I send an order as a gift?": ("en", "public", f"{o}/faq/bad/bad-jsonld.html#gift"),
        "支払い方法は何がありますか？": ("ja", "public", f"{o}/faq/bad/sjis.html#shiharai"),  # Shift_JIS, declared
        "How do I request VPN access?": ("en", "staff", f"{o}/faq/staff/#vpn"),  # the staff section
    }
    assert {k: (v["lang"], v["role"], v["source_url"]) for k, v in q.items()} == expected
    # whitespace normalised, paragraphs kept as lines, entities decoded
    assert q["How do I get a refund?"]["answer"] == ("Request a refund within 30 days from the Orders page. "
                                                     "The money is returned to the original payment method.")
    assert q["How do I reset my password?"]["answer"] == ("Open Settings > Account and choose Reset password.\n"
                                                          "A reset link is e-mailed to you.")
    assert q["Do you ship internationally?"]["answer"] == "Yes, to 40 countries.\nDuties are paid by the recipient."
    assert q["配送にはどのくらいかかりますか？"]["answer"] == "通常、ご注文から2〜3営業日でお届けします。\n離島へのお届けは、さらに数日かかる場合があります。"
    # stable ids: canonical page URL + question
    assert q["How do I get a refund?"]["id"] == entry_id(f"{o}/faq/details.html", "How do I get a refund?")
    # the long answer became overlapping passages, each its own item citing the same anchor
    warranty = sorted((i for i in got.values() if i["question"] == "What does the warranty cover?"), key=lambda i: i["passage"])
    assert len(warranty) >= 3 and [int(i["passage"]) for i in warranty] == list(range(1, len(warranty) + 1))
    assert [i["id"] for i in warranty[1:]] == [f"{warranty[0]['id']}-p{n}" for n in range(2, len(warranty) + 1)]
    assert all(len(i["answer"]) <= 600 and i["source_url"].endswith("#warranty") for i in warranty)
    for a, b in zip(warranty, warranty[1:]):
        assert a["answer"][-40:] in b["answer"] or b["answer"][:40] in a["answer"], "passages overlap"
    assert public.new == len(got) - 1 and staff.new == 1 and public.removed == staff.removed == 0


def test_robots_scope_and_politeness(crawl_env, site):
    public, staff = crawl(crawl_env)
    paths = site.paths()
    # robots.txt disallows a page that the index links to and the sitemap lists: never requested
    assert not [p for p in paths if p.startswith("/faq/private/")]
    assert public.skipped["robots_disallowed"] == 1 and "secret.html" in public.examples["robots_disallowed"][0]
    # never outside the scope: not /outside/, and the public source never enters the staff section
    assert "/outside/page.html" not in paths
    assert paths.count("/faq/staff/") == 1  # once, by the staff source only
    assert public.skipped["out_of_scope"] == 2 and staff.skipped["out_of_scope"] >= 1
    # off-site: a robots.txt Sitemap line, a sitemap entry, a link, a redirect target: counted, not followed
    assert public.skipped["off_site"] == 4
    # sitemaps: robots.txt's Sitemap line -> an index -> the urlset (whose XXE entity is not resolved)
    assert paths[:3] == ["/robots.txt", "/sitemap.xml", "/sitemap-faq.xml"] and public.sitemaps_fetched == 2
    assert not any("passwd" in p for p in paths)
    # Crawl-delay 0.1 s (longer than the configured 0): requests to the site at least that far apart
    times = site.times()
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.09, sorted(gaps)[:3]
    assert public.crawl_delay == 0.1


def test_bad_input_is_skipped_with_its_reason_and_the_crawl_goes_on(crawl_env, site):
    public = crawl(crawl_env, "help")
    assert dict(public.skipped) == {
        "robots_disallowed": 1, "out_of_scope": 2, "off_site": 4,
        "duplicate": 1,  # /faq/index.html is /faq/
        "no_qa": 2,  # the problem-page index and a news page
        "unparseable": 1,  # whitespace only
        "undecodable": 1,  # Latin-1 bytes without a declared charset
        "not_html": 1,  # a PDF
        "too_large": 1,  # 3 MiB without Content-Length, max_bytes 1 MiB
        "redirect_loop": 1,
        "http_500": 1,
        "timeout": 1,  # slower than timeout_seconds
    }
    assert dict(public.entries_skipped) == {"bad_json_ld": 1, "unsupported_lang": 1}
    assert "loop-b -> " in public.examples["redirect_loop"][0]
    # everything that was readable was read (the page after each bad one too)
    assert public.pages_with_entries == 9 and public.error is None


def test_recrawl_of_an_unchanged_site_writes_nothing(crawl_env, site):
    crawl(crawl_env)
    before_items, before_stream = items(), stream_events()
    assert before_stream == Counter({"INSERT": len(before_items)})
    public, staff = crawl(crawl_env)
    assert (public.new, public.changed, public.removed) == (0, 0, 0)
    assert public.unchanged + staff.unchanged == len(before_items)
    assert stream_events() == before_stream  # not one stream record
    assert items() == before_items


def test_changes_removals_and_gone_pages_reach_the_table(crawl_env, site):
    crawl(crawl_env)
    before = items()
    details = site.root / "faq" / "details.html"
    html = details.read_text()
    start = html.index('<details id="refund">')
    html = html[:start] + html[html.index("</details>", start) + len("</details>"):]  # the refund Q/A vanishes
    html = html.replace("two years from the date of delivery", "three years from the date of delivery")  # changed
    details.write_text(html)
    (site.root / "faq" / "dl.html").unlink()  # a page that is gone (404)
    site.gone.add("/faq/ja/headings.html")  # and one answered with 410
    stream_before = stream_events()
    public = crawl(crawl_env, "help")
    after = items()
    q_before, q_after = by_question(before), by_question(after)
    vanished = {"How do I get a refund?", "How long does shipping take?", "Do you ship internationally?", "配送にはどのくらいかかりますか？"}
    assert set(q_before) - set(q_after) == vanished
    assert public.pages_gone == 2
    assert public.removed == 4 and public.changed == 1 and public.new == 0
    assert "three years" in q_after["What does the warranty cover?"]["answer"]
    assert q_after["What does the warranty cover?"]["id"] == q_before["What does the warranty cover?"]["id"]
    delta = stream_events() - stream_before
    assert delta == Counter({"REMOVE": 4, "MODIFY": 1})  # only the first warranty passage changed


def test_a_removed_section_and_a_narrowed_scope_remove_their_entries(crawl_env, site):
    import dataclasses

    crawl(crawl_env)
    # the help source stops covering the Japanese pages: their entries go, nothing there is fetched
    help_source = wiring.faq_crawler(crawl_env).sources[0]
    narrowed = dataclasses.replace(help_source, exclude=help_source.exclude + ("^/faq/ja/",))
    site.clear()
    report = wiring.faq_crawler(crawl_env, sources=[narrowed]).crawler.crawl(narrowed)
    assert report.removed == 5 and not [p for p in site.paths() if p.startswith("/faq/ja/")]
    assert not [q for q in by_question(items()) if "？" in q and "支払い" not in q]
    # the staff section becomes disallowed by robots.txt: the staff source removes what it wrote
    robots = site.root / "robots.txt"
    robots.write_text(robots.read_text().replace("Disallow: /faq/private/", "Disallow: /faq/private/\nDisallow: /faq/staff/"))
    site.clear()
    staff = crawl(crawl_env, "staff")
    assert staff.removed == 1 and "/faq/staff/" not in site.paths()
    assert "How do I request VPN access?" not in by_question(items())


def test_hand_loaded_entries_are_never_touched(crawl_env, site):
    """An id already held by another writer (here: `sieve faq load`) is reported, not overwritten."""
    o = site.origin
    eid = entry_id(f"{o}/faq/details.html", "How do I get a refund?")
    boto3.resource("dynamodb").Table(TABLE).put_item(Item={
        "id": eid, "question": "How do I get a refund?", "answer": "Hand written.", "role": "public",
        "source_url": "https://help.example.com/refunds", "updated_at": "2024-05-01T00:00:00Z"})
    public = crawl(crawl_env, "help")
    assert public.conflicts == Counter({"claimed": 1})
    assert items()[eid]["answer"] == "Hand written."


def test_the_scheduled_handler_crawls_every_configured_source(crawl_env, site):
    from processors.handlers import faq_crawler

    faq_crawler.reset_runtime(None)
    try:
        ctx = LambdaContext(function_name="faq-crawler", timeout_seconds=300,
                            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:faq-crawler")
        out = faq_crawler.handler({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}, ctx)
        assert out["errors"] == 0 and [s["source"] for s in out["sources"]] == ["help", "staff"]
        assert out["sources"][1]["entries"] == {"new": 1, "changed": 0, "unchanged": 0, "removed": 0}
        json.dumps(out)  # a Lambda response
        again = faq_crawler.handler({"sieve": {"sources": ["staff"]}}, ctx)
        assert [s["source"] for s in again["sources"]] == ["staff"]
        assert again["sources"][0]["entries"]["unchanged"] == 1
        # a deadline already past: nothing is fetched beyond robots.txt and the sitemaps, nothing is lost
        short = LambdaContext(function_name="faq-crawler", timeout_seconds=1,
                              invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:faq-crawler")
        n = len(items())
        late = faq_crawler.handler({"sieve": {"sources": ["help"]}}, short)
        assert late["sources"][0]["skipped"]["deadline"] >= 1 and late["sources"][0]["pages_fetched"] == 0
        assert len(items()) == n
    finally:
        faq_crawler.reset_runtime(None)


def test_sieve_faq_crawl_command(crawl_env, site, capsys):
    from processors.cli import main

    rc = main(["faq", "crawl", site.url("/faq/staff/"), "--role", "staff", "--config", str(crawl_env.path), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "entries: 1 new, 0 changed, 0 unchanged, 0 removed" in out and "role staff" in out
    rc = main(["faq", "crawl", "--config", str(crawl_env.path), "--no-progress", "--json"])
    reports = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["source"] for r in reports] == ["help", "staff"]
    assert reports[1]["entries"]["unchanged"] == 1 and reports[0]["skipped"]["robots_disallowed"] == 1
    assert main(["faq", "crawl", site.url("/other/"), "--config", str(crawl_env.path)]) == 1
    assert "--role: required" in capsys.readouterr().err
    assert main(["faq", "crawl", site.url("/faq/"), "--role", "nobody", "--config", str(crawl_env.path)]) == 1
    assert "no index role may see it" in capsys.readouterr().err


def test_progress_is_reported_per_page(crawl_env, site):
    app = wiring.faq_crawler(crawl_env)
    seen = []
    report = app.crawler.crawl(app.sources[1], progress=lambda done, known, url: seen.append((done, known, url)))
    assert seen == [(1, 1, site.url("/faq/staff/"))] and report.pages_fetched == 1


def test_time_between_requests_follows_the_configured_delay(crawl_env, site):
    src = wiring.faq_crawler(crawl_env).sources[1]
    import dataclasses

    slow = dataclasses.replace(src, delay_seconds=0.4)
    app = wiring.faq_crawler(crawl_env, sources=[slow])
    started = time.monotonic()
    app.crawler.crawl(slow)
    times = site.times()
    assert len(times) >= 3  # robots.txt, sitemaps, the page
    assert min(b - a for a, b in zip(times, times[1:])) >= 0.38
    assert time.monotonic() - started >= 0.4 * (len(times) - 1)


# ------------------------------------------------------------------------------------ the HTTP adapter


def test_fetcher_limits(site):
    from processors.adapters.web import HttpFetcher
    from processors.core.crawl import FetchLimits

    f = HttpFetcher()
    allow = lambda u: None  # noqa: E731
    lim = FetchLimits(timeout_seconds=1.0, max_bytes=1024 * 1024, max_redirects=0)
    r = f.fetch(site.url("/faq"), limits=lim, delay=0, allow=allow)  # 301 -> /faq/, and no redirect allowed
    assert r.reason == "too_many_redirects" and r.status is None
    ok = f.fetch(site.url("/faq"), limits=FetchLimits(1.0, 1024 * 1024, 1), delay=0, allow=allow)
    assert ok.status == 200 and ok.final_url == site.url("/faq/") and ok.redirects == (site.url("/faq"),)
    small = f.fetch(site.url("/faq/details.html"), limits=FetchLimits(1.0, 2048, 1), delay=0, allow=allow)
    assert small.reason == "too_large" and "Content-Length" in small.detail and small.body == b""
    stopped = f.fetch(site.url("/faq"), limits=FetchLimits(1.0, 1024 * 1024, 3), delay=0, allow=lambda u: "out_of_scope")
    assert stopped.reason == "out_of_scope" and stopped.status == 301
    refused = f.fetch("http://127.0.0.1:9/", limits=lim, delay=0, allow=allow)  # nothing listens on port 9
    assert refused.reason == "connection_error" and refused.status is None
    gone = f.fetch(site.url("/faq/nothing.html"), limits=lim, delay=0, allow=allow)
    assert gone.status == 404 and gone.reason is None


def test_fetcher_waits_per_host():
    from processors.adapters.web import HttpFetcher
    from processors.core.crawl import FetchLimits

    class Resp:
        status_code, headers = 200, {"Content-Type": "text/html"}

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def iter_content(self, n):
            now[0] += 0.25  # the download takes a quarter second
            yield b"<p>x</p>"

    class Session:
        def get(self, url, **kw):
            calls.append((url, now[0]))
            return Resp()

    now, calls, slept = [0.0], [], []

    def sleep(s):
        slept.append(s)
        now[0] += s

    f = HttpFetcher(session=Session(), clock=lambda: now[0], sleep=sleep)
    lim = FetchLimits(5, 1000, 0)
    f.fetch("http://a/1", limits=lim, delay=2.0, allow=lambda u: None)
    f.fetch("http://b/1", limits=lim, delay=2.0, allow=lambda u: None)  # another host: no wait
    f.fetch("http://a/2", limits=lim, delay=2.0, allow=lambda u: None)  # 2 s after a/1 ended
    f.fetch("http://a/3", limits=lim, delay=0.0, allow=lambda u: None)  # a smaller delay: the site's 2 s still holds
    assert [(u, round(t, 2)) for u, t in calls] == [("http://a/1", 0.0), ("http://b/1", 0.25), ("http://a/2", 2.25),
                                                    ("http://a/3", 4.5)]
