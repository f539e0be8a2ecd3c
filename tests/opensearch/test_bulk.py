"""Bulk writes on the real node: per-item accounting, 429 back-off, external versioning."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from processors.adapters.opensearch import (
    VECTOR_FIELD,
    BulkWriter,
    ensure_index,
    make_client,
)

pytestmark = pytest.mark.opensearch

DIM = 4


def _doc(i, **extra):
    d = {"id": f"d{i}", "role": "support", "question": f"question {i}", "answer": f"answer {i}", VECTOR_FIELD: [1.0, 0.0, 0.0, float(i) / 10 + 0.1]}
    d.update(extra)
    return d


def _get(client, index, doc_id):
    return client.get(index=index, id=doc_id, ignore=[404])


def test_partial_failure_is_reported_item_by_item(os_client, index_name):
    ensure_index(os_client, index_name, DIM)
    docs = [
        _doc(1),
        _doc(2, updated_at="not a date"),  # mapping error: bad field type
        _doc(3),
        _doc(4, **{VECTOR_FIELD: [1.0, 2.0]}),  # wrong vector dimension
        {"role": "support", "question": "no id"},  # no id at all
        _doc(5, surprise="field"),  # unknown field (dynamic: strict)
        _doc(6, updated_at="2026-01-31T12:00:00Z"),
    ]
    res = BulkWriter(os_client).index(index_name, docs, refresh=True)

    assert sorted(res.succeeded) == ["d1", "d3", "d6"]
    reasons = dict(res.rejected)
    assert set(reasons) == {"d2", "d4", "#4", "d5"}
    assert "mapper_parsing_exception" in reasons["d2"] and "updated_at" in reasons["d2"]
    assert "dimension" in reasons["d4"].lower()
    assert reasons["#4"] == "missing 'id'"
    assert "strict_dynamic_mapping_exception" in reasons["d5"] and "surprise" in reasons["d5"]
    assert res.stale == [] and res.retried == 0 and not res.ok
    assert res.total == len(docs)  # nothing silently lost
    assert os_client.count(index=index_name)["count"] == 3


def test_external_versioning_keeps_the_newest(os_client, index_name):
    ensure_index(os_client, index_name, DIM)
    w = BulkWriter(os_client)

    res = w.index(index_name, [_doc(1, answer="v5", version=5)], version_field="version", refresh=True)
    assert res.succeeded == ["d1"]
    # an older change arriving late is stale: skipped, not an error, and does not overwrite
    res = w.index(index_name, [_doc(1, answer="v3", version=3)], version_field="version", refresh=True)
    assert res.stale == ["d1"] and res.succeeded == [] and res.rejected == [] and res.ok
    got = _get(os_client, index_name, "d1")
    assert got["_source"]["answer"] == "v5" and got["_version"] == 5
    assert "version" not in got["_source"]  # the version is metadata, not a stored field
    # the same version again (a replayed change) is stale too
    assert w.index(index_name, [_doc(1, answer="v5 again", version=5)], version_field="version").stale == ["d1"]
    # a newer one wins
    res = w.index(index_name, [_doc(1, answer="v7", version=7)], version_field="version", refresh=True)
    assert res.succeeded == ["d1"]
    assert _get(os_client, index_name, "d1")["_source"]["answer"] == "v7"

    # mixed batch: per item
    res = w.index(
        index_name,
        [_doc(1, answer="v6", version=6), _doc(2, version=1), _doc(3, version="12"), _doc(4, version=-1), _doc(5)],
        version_field="version",
        refresh=True,
    )
    assert res.stale == ["d1"] and sorted(res.succeeded) == ["d2", "d3"]
    reasons = dict(res.rejected)
    assert "outside" in reasons["d4"] and "missing" in reasons["d5"]
    assert res.total == 5
    assert _get(os_client, index_name, "d3")["_version"] == 12

    # deletes with versions: an older delete is stale, a newer one removes the document
    res = w.delete(index_name, {"d1": 6}, refresh=True)
    assert res.stale == ["d1"] and _get(os_client, index_name, "d1")["found"]
    res = w.delete(index_name, {"d1": 8}, refresh=True)
    assert res.succeeded == ["d1"] and not _get(os_client, index_name, "d1")["found"]
    # after a versioned delete, a write older than the delete does not resurrect the document
    res = w.index(index_name, [_doc(1, answer="late", version=7)], version_field="version", refresh=True)
    assert res.stale == ["d1"] and not _get(os_client, index_name, "d1")["found"]


def test_delete_is_idempotent(os_client, index_name):
    ensure_index(os_client, index_name, DIM)
    w = BulkWriter(os_client)
    assert w.index(index_name, [_doc(1), _doc(2)], refresh=True).ok
    res = w.delete(index_name, ["d1", "never-existed", ""], refresh=True)
    assert sorted(res.succeeded) == ["d1", "never-existed"]
    assert res.rejected == [("#2", "missing id")]
    assert os_client.count(index=index_name)["count"] == 1


# --------------------------------------------------------------------------------------- 429 back-off
class _Throttler:
    """A test peer in front of the real node: forwards every request, but answers some bulk requests
    (or some items) with 429 the way an overloaded node does. Throttled items are NOT forwarded."""

    def __init__(self, upstream: str, *, whole_requests: int = 0, item_ids=(), item_times: int = 1):
        self.upstream = upstream
        self.whole_requests = whole_requests
        self.item_budget = {i: item_times for i in item_ids}
        self.bulk_calls = 0
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _forward(self, method, body):
                req = urllib.request.Request(peer.upstream + self.path, data=body, method=method)
                for h in ("Content-Type",):
                    if self.headers.get(h):
                        req.add_header(h, self.headers[h])
                try:
                    with urllib.request.urlopen(req, timeout=30) as r:
                        return r.status, r.read(), r.headers.get("Content-Type", "application/json")
                except urllib.error.HTTPError as e:
                    return e.code, e.read(), e.headers.get("Content-Type", "application/json")

            def _reply(self, status, body, ctype="application/json"):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                if not self.path.split("?")[0].endswith("/_bulk"):
                    return self._reply(*self._forward(method, body))
                with peer.lock:
                    peer.bulk_calls += 1
                    if peer.whole_requests > 0:
                        peer.whole_requests -= 1
                        err = {"error": {"type": "rejected_execution_exception", "reason": "rejected execution (queue capacity 1)"}, "status": 429}
                        return self._reply(429, json.dumps(err).encode())
                lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                ops, i = [], 0
                while i < len(lines):
                    action = lines[i]
                    (kind, meta), = action.items()
                    src = lines[i + 1] if kind != "delete" else None
                    i += 1 if kind == "delete" else 2
                    ops.append((kind, meta, action, src))
                keep, throttled = [], {}
                with peer.lock:
                    for pos, (kind, meta, action, src) in enumerate(ops):
                        if peer.item_budget.get(meta.get("_id"), 0) > 0:
                            peer.item_budget[meta["_id"]] -= 1
                            throttled[pos] = (kind, meta)
                        else:
                            keep.append((action, src))
                items = []
                if keep:
                    fwd = "".join(json.dumps(a) + "\n" + (json.dumps(s) + "\n" if s is not None else "") for a, s in keep)
                    _, out, _ = self._forward("POST", fwd.encode())
                    items = json.loads(out)["items"]
                merged, it = [], iter(items)
                for pos in range(len(ops)):
                    if pos in throttled:
                        kind, meta = throttled[pos]
                        merged.append({kind: {"_index": meta.get("_index"), "_id": meta.get("_id"), "status": 429,
                                              "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution of write"}}})
                    else:
                        merged.append(next(it))
                resp = {"took": 1, "errors": True, "items": merged}
                return self._reply(200, json.dumps(resp).encode())

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

            def do_HEAD(self):
                self._handle("HEAD")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_429_is_retried_with_backoff(opensearch_url, os_client, index_name):
    ensure_index(os_client, index_name, DIM)
    sleeps = []
    with _Throttler(opensearch_url, whole_requests=1, item_ids=("d2", "d4"), item_times=2) as peer:
        client = make_client({"hosts": [peer.url]})
        w = BulkWriter(client, initial_backoff=0.01, max_backoff=0.05, sleep=lambda s: sleeps.append(s))
        res = w.index(index_name, [_doc(i) for i in range(1, 6)], refresh=True)
    assert sorted(res.succeeded) == ["d1", "d2", "d3", "d4", "d5"] and res.ok
    # 1 whole-request 429 (5 items), then d2 and d4 throttled twice each
    assert res.retried == 5 + 2 + 2
    assert peer.bulk_calls == 4
    # the shared Backoff: retry n waits within [d/2, d], d = min(0.05, 0.01 * 2**n), never zero
    assert len(sleeps) == 3 and all(d / 2 <= s <= d for s, d in zip(sleeps, (0.01, 0.02, 0.04)))
    assert os_client.count(index=index_name)["count"] == 5


def test_429_gives_up_after_max_retries_and_says_so(opensearch_url, os_client, index_name):
    ensure_index(os_client, index_name, DIM)
    with _Throttler(opensearch_url, item_ids=("d3",), item_times=100) as peer:
        w = BulkWriter(make_client({"hosts": [peer.url]}), max_retries=2, initial_backoff=0.001, sleep=lambda s: None)
        res = w.index(index_name, [_doc(i) for i in range(1, 5)], refresh=True)
    assert sorted(res.succeeded) == ["d1", "d2", "d4"]
    assert len(res.rejected) == 1 and res.rejected[0][0] == "d3"
    assert "gave up after 2 retries" in res.rejected[0][1] and "429" in res.rejected[0][1]
    assert res.retried == 2 and res.total == 4
