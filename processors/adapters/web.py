"""HTTP fetching for the FAQ crawler (the core's `Fetcher` port), with requests.

Polite and bounded, whatever the site does:
* **per-host delay**: a request to a host starts at least `delay` seconds after the previous request to
  that host ended (the crawler passes max(configured delay, robots.txt Crawl-delay));
* **timeouts**: connect and read timeouts of `limits.timeout_seconds`, and the whole body within three
  times that (a server that drips bytes is cut off);
* **redirects** are followed by hand, at most `limits.max_redirects`, each target passed to the caller's
  `allow` first (scope and robots.txt hold for redirects too); a URL seen twice is a redirect loop;
* **size**: a Content-Length above `limits.max_bytes` is refused before reading, and a body is never
  read past it (decompressed bytes are what count, so a gzip bomb stops there too).

Nothing the site does raises: every failure is a `Fetched` with a reason code (see
processors.core.crawl.SKIP_REASONS) and a detail for the logs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import requests

from processors.core.crawl import FetchLimits, Fetched, canonical_url

REDIRECTS = frozenset({301, 302, 303, 307, 308})
ACCEPT = "text/html,application/xhtml+xml;q=0.9,application/xml;q=0.8,text/plain;q=0.5,*/*;q=0.1"


class HttpFetcher:
    def __init__(self, *, session: requests.Session | None = None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.session = session or requests.Session()
        self.clock, self.sleep = clock, sleep
        self._last: dict[str, tuple[float, float]] = {}  # host -> (when its last request ended, the delay it asked)
        self.requests = 0
        self._asked = 0.0

    def fetch(self, url: str, *, limits: FetchLimits, delay: float, allow: Callable[[str], str | None]) -> Fetched:
        seen = [url]
        current = url
        for _ in range(limits.max_redirects + 1):
            result = self._one(url, current, limits, delay, tuple(seen[:-1]))
            if isinstance(result, Fetched):
                return result
            status, location = result
            target = canonical_url(location, current)
            if target is None:
                return Fetched(url, current, status, reason="not_http", detail=f"redirects to {location[:200]}",
                               redirects=tuple(seen))
            if target in seen:
                return Fetched(url, current, status, reason="redirect_loop", detail=f"{current} -> {target}",
                               redirects=tuple(seen))
            why = allow(target)
            if why is not None:
                return Fetched(url, current, status, reason=why, detail=f"redirects to {target}", redirects=tuple(seen))
            seen.append(target)
            current = target
        return Fetched(url, current, None, reason="too_many_redirects", detail=f"more than {limits.max_redirects}",
                       redirects=tuple(seen))

    # -- one request

    def _one(self, url: str, current: str, limits: FetchLimits, delay: float, redirects: tuple[str, ...]):
        """A Fetched, or (status, Location) of a redirect to follow."""
        host = (urlsplit(current).netloc or "").lower()
        self._wait(host, delay)
        started = self.clock()
        self.requests += 1
        try:
            resp = self.session.get(current, headers={"User-Agent": limits.user_agent, "Accept": ACCEPT},
                                    timeout=(limits.timeout_seconds, limits.timeout_seconds), allow_redirects=False,
                                    stream=True)
        except requests.Timeout as exc:
            self._done(host)
            return Fetched(url, current, None, reason="timeout", detail=_short(exc), redirects=redirects)
        except (requests.RequestException, ValueError, OSError, RuntimeError) as exc:  # refused, reset, DNS, bad URL ...
            # (RuntimeError: requests drains a redirect's body and urllib3 refuses a broken gzip one mid-read)
            self._done(host)
            return Fetched(url, current, None, reason="connection_error", detail=_short(exc), redirects=redirects)
        try:
            with resp:
                status = resp.status_code
                if status in REDIRECTS and resp.headers.get("Location"):
                    return status, resp.headers["Location"]
                headers = {k.lower(): v for k, v in resp.headers.items()}
                ctype = headers.get("content-type", "")
                if not 200 <= status < 300:
                    return Fetched(url, current, status, ctype, headers=headers, redirects=redirects)
                length = headers.get("content-length", "")
                if length.isdigit() and int(length) > limits.max_bytes:
                    return Fetched(url, current, status, ctype, headers=headers, reason="too_large",
                                   detail=f"Content-Length {length} > {limits.max_bytes}", redirects=redirects)
                body = bytearray()
                budget = started + 3 * limits.timeout_seconds
                for chunk in resp.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > limits.max_bytes:
                        return Fetched(url, current, status, ctype, headers=headers, reason="too_large",
                                       detail=f"more than {limits.max_bytes} bytes", redirects=redirects)
                    if self.clock() > budget:
                        return Fetched(url, current, status, ctype, headers=headers, reason="timeout",
                                       detail=f"body not read within {3 * limits.timeout_seconds:g}s", redirects=redirects)
                return Fetched(url, current, status, ctype, bytes(body), headers, redirects=redirects)
        except requests.Timeout as exc:
            return Fetched(url, current, None, reason="timeout", detail=_short(exc), redirects=redirects)
        except (requests.RequestException, ValueError, OSError) as exc:  # reset mid-body, bad gzip ...
            reason = "timeout" if "timed out" in str(exc).lower() else "connection_error"  # requests wraps read timeouts
            return Fetched(url, current, None, reason=reason, detail=_short(exc), redirects=redirects)
        finally:
            self._done(host)

    def _wait(self, host: str, delay: float) -> None:
        """The longer of this request's delay and the previous one's: a new crawl of the same site (another
        source, whose robots.txt is not read yet) still keeps the Crawl-delay the site asked for."""
        last = self._last.get(host)
        if last is not None:
            ended, previous = last
            wait = ended + max(0.0, delay, previous) - self.clock()
            if wait > 0:
                self.sleep(wait)
        self._asked = max(0.0, delay)

    def _done(self, host: str) -> None:
        self._last[host] = (self.clock(), self._asked)

    def close(self) -> None:
        self.session.close()


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"
