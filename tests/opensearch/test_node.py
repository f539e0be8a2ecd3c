"""The node built by localstack/opensearch.sh, and the `sieve opensearch` command."""

from __future__ import annotations

import subprocess
import sys

import pytest

from processors.cli import build_parser

pytestmark = pytest.mark.opensearch


def test_node_has_knn_and_the_hand_built_modules(os_client):
    plugins = {p["component"] for p in os_client.cat.plugins(format="json")}
    assert "opensearch-knn" in plugins
    nodes = os_client.nodes.info(metric="plugins")["nodes"]
    (node,) = nodes.values()
    modules = {m["name"] for m in node["modules"]}
    assert {"lang-painless", "analysis-common", "transport-netty4"} <= modules
    # painless really compiles and runs (k-NN extends it)
    resp = os_client.transport.perform_request(
        "POST", "/_scripts/painless/_execute", body={"script": {"source": "params.a + 1", "params": {"a": 41}}}
    )
    assert str(resp["result"]) == "42"


def test_sieve_opensearch_command_is_registered():
    args = build_parser().parse_args(["opensearch", "start", "--port", "9311"])
    assert args.action == "start" and args.port == 9311 and callable(args.func)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["opensearch", "explode"])


def test_sieve_opensearch_status_runs_the_script(opensearch_url):
    port = opensearch_url.rsplit(":", 1)[-1]
    proc = subprocess.run(
        [sys.executable, "-m", "processors.cli", "opensearch", "status", "--port", port],
        capture_output=True, text=True, timeout=60, check=False,
    )
    # 0: the script's node is running and healthy; 3: the tests use a node the script did not start
    assert proc.returncode in (0, 3), proc.stderr
    assert "opensearch" in proc.stdout and ("running" in proc.stdout or "stopped" in proc.stdout)


def test_client_config_and_aws_sigv4_signing(monkeypatch):
    """The AWS variant signs every request with SigV4 for the configured service (checked on a local peer)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from processors.adapters.opensearch import OpenSearchConfig, make_client
    from processors.errors import ConfigError

    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append({k.lower(): v for k, v in self.headers.items()})
            data = json.dumps({"cluster_name": "peer", "version": {"number": "2.19.1", "distribution": "opensearch"}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEFAKEFAKE0000")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake")
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        for service in ("es", "aoss"):
            client = make_client({"hosts": [f"http://127.0.0.1:{server.server_address[1]}"], "aws_region": "eu-west-1", "aws_service": service})
            assert client.info()["cluster_name"] == "peer"
            auth = seen[-1]["authorization"]
            assert auth.startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKEFAKEFAKE0000/") and f"/eu-west-1/{service}/aws4_request" in auth
    finally:
        server.shutdown()
        server.server_close()

    assert OpenSearchConfig.from_mapping({"host": "http://h:9200"}).hosts == ("http://h:9200",)
    with pytest.raises(ConfigError, match="unknown key"):
        OpenSearchConfig.from_mapping({"hosts": ["http://h:9200"], "regoin": "x"})
    with pytest.raises(ConfigError, match="aws_service"):
        OpenSearchConfig(aws_region="eu-west-1", aws_service="lambda")
    with pytest.raises(ConfigError, match="http"):
        OpenSearchConfig(hosts=("h:9200",))
