"""The crawler's test site, served from 127.0.0.1 by the tests (a copy per test, so a test may edit it).

Static files come from this folder ({{ORIGIN}} in .html/.xml/.txt files becomes the server's origin);
a few routes are dynamic: a huge page, a redirect loop, a server error, a slow page and a redirect to
another site. Every request is recorded (path and arrival time), so tests can prove what was never
fetched and how far apart the requests were.
"""

from __future__ import annotations

import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
OFF_SITE = "http://127.0.0.2:9"  # another host (loopback, nothing listens): the crawler must never go there
TYPES = {".html": "text/html; charset=utf-8", ".xml": "application/xml", ".txt": "text/plain; charset=utf-8",
         ".pdf": "application/pdf"}
SPECIAL_TYPES = {"sjis.html": "text/html; charset=Shift_JIS", "latin1.html": "text/html"}
HUGE_BYTES = 3 * 1024 * 1024
SLOW_SECONDS = 3.0


class SiteServer:
    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[float, str]] = []
        self.gone: set[str] = set()  # paths answered with 410
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @classmethod
    def copy_of_site(cls, tmp: Path) -> SiteServer:
        dest = tmp / "site"
        shutil.copytree(HERE, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
        return cls(dest)

    def start(self) -> SiteServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def paths(self) -> list[str]:
        with self._lock:
            return [p for _, p in self.requests]

    def times(self) -> list[float]:
        with self._lock:
            return [t for t, _ in self.requests]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def url(self, path: str) -> str:
        return self.origin + path

    def _handler(self):
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = urlsplit(self.path).path
                with site._lock:
                    site.requests.append((time.monotonic(), self.path))
                try:
                    self._route(path)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the crawler hung up (size limit, timeout): expected

            def _send(self, status: int, body: bytes = b"", ctype: str = "text/html; charset=utf-8", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _route(self, path: str) -> None:
                if path in site.gone:
                    return self._send(410, b"gone")
                if path == "/faq/bad/huge.html":  # no Content-Length: the limit must hold while reading
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.end_headers()
                    self.wfile.write(b"<html><body>")
                    chunk = b"<p>" + b"x" * 65_000 + b"</p>"
                    for _ in range(HUGE_BYTES // len(chunk) + 1):
                        self.wfile.write(chunk)
                    return None
                if path in ("/faq/bad/loop-a", "/faq/bad/loop-b"):
                    nxt = "/faq/bad/loop-b" if path.endswith("a") else site.url("/faq/bad/loop-a")
                    return self._send(302, headers={"Location": nxt})
                if path == "/faq/bad/error":
                    return self._send(500, b"internal error")
                if path == "/faq/bad/slow":
                    time.sleep(SLOW_SECONDS)
                    return self._send(200, b"<html><body><h2>Too slow?</h2><p>yes</p></body></html>")
                if path == "/faq/bad/offsite-redirect":
                    return self._send(302, headers={"Location": OFF_SITE + "/landing"})
                target = site.root / path.lstrip("/")
                if target.is_dir():
                    if not path.endswith("/"):
                        return self._send(301, headers={"Location": path + "/"})
                    target = target / "index.html"
                if not target.is_file() or ".." in path:
                    return self._send(404, b"<html><body>not found</body></html>")
                body = target.read_bytes()
                ctype = SPECIAL_TYPES.get(target.name) or TYPES.get(target.suffix, "application/octet-stream")
                if "utf-8" in ctype or target.suffix == ".xml":
                    body = body.replace(b"{{ORIGIN}}", site.origin.encode())
                return self._send(200, body, ctype)

        return Handler
