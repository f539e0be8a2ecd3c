"""Seeded synthetic access-log traffic with labelled incidents and exact ground truth. Pure.

`AccessLogGenerator(GeneratorConfig(...))` yields log lines (`lines()`); once they are consumed,
`truth()` returns what a correct engine must find: per incident its window(s), key values and
exact counts, and for every default rule in `rules/` (`errors-by-path`, `404-by-client`,
`bytes-by-client`) the exact top-N per window; `extra_rules` holds the same for
`errors-by-path-template` (kept apart so that comparing `rules` with a pipeline that runs the
default rules is unaffected). The truth is tallied from the generator's own
choices (status, path, client, bytes of every line it writes), never by parsing its output, so it
checks the decode/parse/rules/aggregate engine independently.

Traffic: a Zipf-like client pool (IPv4 from documentation and private-looking ranges, ~6% IPv6),
a mix of pages, static files and API paths with ids (numbers, UUIDs), realistic query strings on
~20% of requests (search terms and paging, campaign tags, high-cardinality click ids, cache
busters, asset versions), GET-heavy methods, a status mix (200/304/301/302/404/5xx), sizes,
referers, user agents (one with escaped quotes), evenly spread over `duration` seconds from
`start`. The truth keys `errors-by-path` on the path without its query string and
`errors-by-path-template` on the template the generator chose (its id segments as `{id}`). JSON
lines log the target with its query in `path`, as many loggers do. Formats: nginx/Apache `combined` (Apache-style `-` bytes on 304),
`json` (one object per line: time ISO 8601 ms, client, method, host, path, protocol, status, bytes,
referer, user_agent, latency_ms, upstream), or `alb`: the same events as AWS Application Load
Balancer access-log entries (every documented field through `conn_trace_id`; times in UTC with
microseconds). In `alb` the requests are spread over registered targets (`10.0.1.x:8080` for API
paths, `10.0.2.x:80` for pages and static files); 503s come from the load balancer itself (target
`-`, processing times `-1`); `target_processing_time` is the event's latency in seconds; the
request's host is the URL's and `domain_name`, `h2` entries are the HTTP/2.0 requests. The
decorations only ALB has (ports, trace ids) come from a second random stream, so the events (time,
client, request, status, bytes) are the same as in the other formats for a seed.

The truth covers the rules of the chosen format: `rules/*.json` (combined), `rules/json/*.json`
(json) or `rules/alb/*.json` (alb: `5xx-by-target`, `slow-by-path`, `404-by-client`,
`bytes-by-client`).

Incident kinds (`KIND` or `KIND:at=SECONDS,count=N,duration=SECONDS`, `at` counted from start). Each
is caused by ONE attribute, recorded in the truth as `cause = {"field", "value"}` with the dimension
names of processors/core/explain.py (`cause_observable`: whether this format logs that dimension);
apart from the cause and the failure it produces, an incident's lines look like background traffic:

| kind | what fails | cause (field = value) |
|---|---|---|
| `burst500` | POST /api/v1/checkout 500, 5 query strings (`alb`: all on target 10.0.1.13:8080) | user_agent = OrdersWorker/3.4.1 |
| `scan404` | one client probing many missing paths (404) | client_network = 198.51.100.0/24 |
| `slow_upstream` | /api/v1/inventory 504 after 30-60 s (each with its own query) | response_time = >5s |
| `bytes_hog` | one client downloading very large files (the bytes Sum rule) | client_network = 2001:db8:bad::/48 |
| `bad_release` | /api/v1/orders/{id} 500 over many ids | user_agent = OrdersWorker/3.4.1 |
| `bad_target` | /api/v1/products 502 from one upstream | target = 10.0.3.17:8080 |
| `partner_referer` | /api/v1/search 500 for a partner's widget | referer = https://widgets.partner.example/embed |
| `delete_fails` | DELETE /api/v1/cart 500 / 502 | method = DELETE |
| `template_fails` | /api/v1/users/{id}/avatar 500 over many ids | path_template = /api/v1/users/{id}/avatar |
| `network_hammer` | POST /login 429 / 403 from ~50 addresses of one /24 | client_network = 192.0.2.0/24 |
| `slow_backend` | /api/v1/search 504 after 6-20 s | response_time = >5s |
| `bad_host` | /account 502 on one virtual host | host = legacy.example.com |
| `old_protocol` | /api/v1/inventory 400 for HTTP/1.0 requests | protocol = HTTP/1.0 |
| `empty_replies` | /api/v1/cart 500 / 502 with empty bodies | bytes = 0B |

Each dimension's other values are in the background (methods, statuses 504 included, user agents with
the healthy release OrdersWorker/3.4.0, referers, networks, templates, HTTP/1.1 and HTTP/2.0,
upstream targets, hosts www/api/static, response times up to 5 s, sizes), while a cause value is absent
from it, so a contrast against the rest of the window is meaningful. These decorations come from a
third random stream, so the events are the same in every format for a seed. `INCIDENT_RULE` /
`ALB_INCIDENT_RULE` name the rule each incident is found by: the default rules, or
`client-errors-by-path` (status in `CLIENT_ERROR_STATUSES`, keyed on the path; not shipped in rules/,
see bench/bench_explain.py), which the truth counts only for the incidents' windows.

Everything is a function of the config: same seed, same bytes.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator, Literal

__all__ = ["GeneratorConfig", "IncidentSpec", "AccessLogGenerator", "parse_incident", "INCIDENT_KINDS", "DEFAULT_START",
           "CAUSES", "INCIDENT_RULE", "ALB_INCIDENT_RULE", "CLIENT_ERRORS_RULE", "CLIENT_ERROR_STATUSES", "cause_observable"]

INCIDENT_KINDS = ("burst500", "scan404", "slow_upstream", "bytes_hog", "bad_release", "bad_target", "partner_referer",
                  "delete_fails", "template_fails", "network_hammer", "slow_backend", "bad_host", "old_protocol",
                  "empty_replies")  # fmt: skip
DEFAULT_START = datetime(2024, 3, 4, 10, 0, 0, tzinfo=timezone.utc)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class IncidentSpec:
    kind: str
    at: int | None = None  # seconds after start; None = the second half of a window chosen from the seed
    count: int | None = None  # lines; None = 1% of lines (at least 40)
    duration: int | None = None  # seconds; None = half a period without `at`, else one period


def parse_incident(spec: str) -> IncidentSpec:
    """`burst500` or `burst500:at=600,count=300,duration=60` -> IncidentSpec (ValueError if bad)."""
    kind, _, params = spec.partition(":")
    if kind not in INCIDENT_KINDS:
        raise ValueError(f"unknown incident kind {kind!r}; choose from {', '.join(INCIDENT_KINDS)}")
    values: dict[str, int] = {}
    for part in filter(None, params.split(",")):
        name, eq, raw = part.partition("=")
        if not eq or name not in ("at", "count", "duration"):
            raise ValueError(f"incident {spec!r}: expected at=, count= or duration=, got {part!r}")
        try:
            values[name] = int(raw)
        except ValueError:
            raise ValueError(f"incident {spec!r}: {name} must be an integer, got {raw!r}") from None
        if values[name] < (0 if name == "at" else 1):
            raise ValueError(f"incident {spec!r}: {name} must be {'>= 0' if name == 'at' else '>= 1'}")
    return IncidentSpec(kind, **values)


@dataclass(frozen=True, slots=True)
class GeneratorConfig:
    seed: int = 1
    lines: int = 10_000
    start: datetime = DEFAULT_START
    duration: int = 3600
    incidents: tuple[IncidentSpec, ...] = ()
    format: Literal["combined", "json", "alb"] = "combined"
    tz_offset_minutes: int = 0  # how the combined timestamps are written, e.g. -420 for -0700
    period: int = 60  # window length used in the truth
    top: int = 10  # top-N length in the truth
    clients: int = 3000


# Path templates: `{id}` is a whole id segment (a number; `{uuid}` a UUID), which the rules'
# `path_template` masks; `{n}`, `{h}` and `{slug}` are parts of names it keeps. Query strings are
# chosen apart (`_query`).
_PAGES = ["/", "/index.html", "/about", "/pricing", "/blog", "/blog/{slug}", "/docs/{slug}", "/login", "/signup",
          "/search", "/account", "/cart"]  # fmt: skip
_STATIC = ["/static/app.{h}.js", "/static/style.{h}.css", "/img/logo.png", "/img/hero-{n}.jpg", "/favicon.ico",
           "/fonts/inter.woff2"]  # fmt: skip
_API = ["/api/v1/products", "/api/v1/products/{id}", "/api/v1/cart", "/api/v1/orders/{id}",
        "/api/v1/orders/{id}/items/{uuid}", "/api/v1/users/me", "/api/v1/inventory", "/api/v1/checkout",
        "/api/v1/search", "/healthz"]  # fmt: skip
_WORDS = ["shoes", "red+dress", "laptop", "caf%C3%A9", "gift", "usb-c", "tent", "coffee", "desk", "lamp"]
_CAMPAIGNS = ["utm_source=newsletter&utm_medium=email&utm_campaign=spring-sale", "utm_source=google&utm_medium=cpc",
              "ref=home", "ref=producthunt", "utm_source=twitter&utm_medium=social"]  # fmt: skip
#: The query strings of a burst500 incident: one failing endpoint, several query strings (one group).
_CHECKOUT_QUERIES = ("step=shipping", "step=payment", "step=review", "step=confirm", "step=payment&retry=1")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SLUGS = ["getting-started", "release-notes", "pricing-faq", "scaling", "security", "api", "sdk", "billing"]
_SCAN = ["/wp-login.php", "/.env", "/.git/config", "/admin/", "/phpmyadmin/", "/cgi-bin/test.cgi", "/backup.zip",
         "/config.php", "/server-status", "/xmlrpc.php", "/.aws/credentials", "/actuator/env"]  # fmt: skip
_UAS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_3) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:123.0) Gecko/20100101 Firefox/123.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "curl/8.5.0",
    "python-requests/2.31.0",
    "Googlebot/2.1 (+http://www.google.com/bot.html)",
    'Mozilla/5.0 (compatible; "Quoted" Monitor/1.0)',
    "-",
]
_REFERERS = ["-", "-", "-", "https://www.example.com/", "https://www.example.com/blog", "https://search.example.net/?q=shop",
             "https://news.example.org/item?id=42"]  # fmt: skip

RULE_NAMES = ("errors-by-path", "404-by-client", "bytes-by-client")
#: Rules shipped beside the defaults whose truth is under "extra_rules" (every format has one in
#: its rules folder): 5xx by `path_template`.
EXTRA_RULE_NAMES = ("errors-by-path-template",)
#: The rules in rules/alb/ the truth covers when format == "alb".
ALB_RULE_NAMES = ("5xx-by-target", "slow-by-path", "404-by-client", "bytes-by-client")
#: A rule the truth counts for the incidents that no shipped rule selects (4xx other than 404, by path):
#: `{"Keys": ["path"], "Filters": [{"Match": "status", "In": [...]}]}`, see bench/bench_explain.py.
CLIENT_ERRORS_RULE = "client-errors-by-path"
CLIENT_ERROR_STATUSES = (400, 401, 403, 405, 429)
_CLIENT_ERRORS = frozenset(CLIENT_ERROR_STATUSES)
#: kind -> the rule whose top-N finds it (CLF/combined and JSON), and in `alb`
INCIDENT_RULE = {"burst500": "errors-by-path", "scan404": "404-by-client", "slow_upstream": "errors-by-path",
                 "bytes_hog": "bytes-by-client", "bad_release": "errors-by-path-template", "bad_target": "errors-by-path",
                 "partner_referer": "errors-by-path", "delete_fails": "errors-by-path",
                 "template_fails": "errors-by-path-template", "network_hammer": CLIENT_ERRORS_RULE,
                 "slow_backend": "errors-by-path", "bad_host": "errors-by-path", "old_protocol": CLIENT_ERRORS_RULE,
                 "empty_replies": "errors-by-path"}  # fmt: skip
ALB_INCIDENT_RULE = {"burst500": "5xx-by-target", "scan404": "404-by-client", "slow_upstream": "slow-by-path",
                     "bytes_hog": "bytes-by-client", "bad_release": "errors-by-path-template", "bad_target": "5xx-by-target",
                     "partner_referer": "errors-by-path-template", "delete_fails": "errors-by-path-template",
                     "template_fails": "errors-by-path-template", "network_hammer": CLIENT_ERRORS_RULE,
                     "slow_backend": "slow-by-path", "bad_host": "errors-by-path-template",
                     "old_protocol": CLIENT_ERRORS_RULE, "empty_replies": "errors-by-path-template"}  # fmt: skip
_INCIDENT_RULE, _ALB_INCIDENT_RULE = INCIDENT_RULE, ALB_INCIDENT_RULE
_RELEASE, _OLD_RELEASE = "OrdersWorker/3.4.1", "OrdersWorker/3.4.0"
_BAD_UPSTREAM = "10.0.3.17:8080"
_PARTNER = "https://widgets.partner.example/embed"
_LEGACY_HOST = "legacy.example.com"
#: kind -> (field, value): the one attribute that causes it (explain.py's dimension names and values)
CAUSES = {"burst500": ("user_agent", _RELEASE), "scan404": ("client_network", "198.51.100.0/24"),
          "slow_upstream": ("response_time", ">5s"), "bytes_hog": ("client_network", "2001:db8:bad::/48"),
          "bad_release": ("user_agent", _RELEASE), "bad_target": ("target", _BAD_UPSTREAM),
          "partner_referer": ("referer", _PARTNER), "delete_fails": ("method", "DELETE"),
          "template_fails": ("path_template", "/api/v1/users/{id}/avatar"),
          "network_hammer": ("client_network", "192.0.2.0/24"), "slow_backend": ("response_time", ">5s"),
          "bad_host": ("host", _LEGACY_HOST), "old_protocol": ("protocol", "HTTP/1.0"),
          "empty_replies": ("bytes", "0B")}  # fmt: skip
#: the dimensions each format logs (CLF/combined has no upstream, host, response time or bytes bucket; ALB no referer)
_FORMAT_FIELDS = {"combined": {"method", "status", "user_agent", "referer", "client_network", "path_template", "protocol"},
                  "json": {"method", "status", "user_agent", "referer", "client_network", "path_template", "protocol",
                           "target", "host", "response_time", "bytes"},
                  "alb": {"method", "status", "user_agent", "client_network", "path_template", "protocol", "target",
                          "host", "response_time", "bytes"}}  # fmt: skip


_INCIDENT_KEYS = {"bad_release": {"path_template": "/api/v1/orders/{id}"},
                  "bad_target": {"path": "/api/v1/products", "target": _BAD_UPSTREAM},
                  "partner_referer": {"path": "/api/v1/search"}, "delete_fails": {"path": "/api/v1/cart"},
                  "template_fails": {"path_template": "/api/v1/users/{id}/avatar"}, "network_hammer": {"path": "/login"},
                  "slow_backend": {"path": "/api/v1/search"}, "bad_host": {"path": "/account"},
                  "old_protocol": {"path": "/api/v1/inventory"}, "empty_replies": {"path": "/api/v1/cart"}}  # fmt: skip


def _key_for(rule: str, key: dict) -> str:
    """The value an incident has for `rule`'s one key."""
    if rule == "5xx-by-target":
        return key["target"]
    if rule in ("404-by-client", "bytes-by-client"):
        return key["client"]
    if rule == "errors-by-path-template":
        return key.get("path_template") or key["path"]
    return key["path"]


def cause_observable(kind: str, fmt: str) -> bool:
    """Whether lines of format `fmt` carry the dimension that causes incident `kind`."""
    return CAUSES[kind][0] in _FORMAT_FIELDS[fmt]


_ALB_APP_TARGETS = tuple(f"10.0.1.{i}:8080" for i in range(11, 17))
_ALB_WEB_TARGETS = tuple(f"10.0.2.{i}:80" for i in range(21, 25))
_ALB_BAD_TARGET = "10.0.1.13:8080"
_ALB_ELB = "app/sieve-web/50dc6c495c0c9188"
_ALB_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{}/73e2d6bc24d8a067"
_ALB_CERT = "arn:aws:acm:us-east-1:123456789012:certificate/5e7a3a3c-0b3f-4b6e-9a5e-3c0d1a2b4c5d"


class AccessLogGenerator:
    """Iterate `lines()` once; then `truth()` describes exactly what was written."""

    def __init__(self, config: GeneratorConfig):
        if config.lines < 0 or config.duration <= 0 or config.period <= 0:
            raise ValueError("lines must be >= 0, duration and period > 0")
        self.cfg = config
        self.rng = random.Random(config.seed)
        self._start = int(config.start.timestamp())
        self._make_pools()
        self._plans = self._plan_incidents()
        n_incident = sum(p["count"] for p in self._plans)
        if n_incident > config.lines:
            raise ValueError(f"incidents need {n_incident} lines but only {config.lines} were asked for")
        self._background = config.lines - n_incident
        # tallies: window start -> rule -> key -> [value, samples]
        self._tally: dict[int, dict[str, dict[tuple[str, ...], list]]] = defaultdict(lambda: defaultdict(dict))
        self._samples: dict[int, Counter] = defaultdict(Counter)
        self._events: Counter = Counter()
        self._incident_hits: dict[int, Counter] = defaultdict(Counter)
        self._done = False
        self._clf_cache: dict[int, str] = {}
        self._rule_sum: dict[int, Counter] = defaultdict(Counter)  # window -> rule -> sum in line order
        self._alb_rng = random.Random(f"alb:{config.seed}")  # ALB-only decorations; events stay the same
        self._dim_rng = random.Random(f"dims:{config.seed}")  # targets, hosts, protocols, tails: every format alike

    # -- setup -------------------------------------------------------------------------------

    def _make_pools(self) -> None:
        rng = self.rng
        clients = set()
        while len(clients) < self.cfg.clients:
            r = rng.random()
            if r < 0.06:
                ip = f"2001:db8:{rng.randrange(1, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}"
            elif r < 0.5:
                ip = f"203.0.{rng.randrange(113, 120)}.{rng.randrange(1, 255)}"
            else:
                ip = f"10.{rng.randrange(0, 256)}.{rng.randrange(0, 256)}.{rng.randrange(1, 255)}"
            clients.add(ip)
        self._clients = sorted(clients)
        rng.shuffle(self._clients)
        weights = [1 / (i + 1) ** 0.9 for i in range(len(self._clients))]
        total = 0.0
        self._client_cw = []
        for w in weights:
            total += w
            self._client_cw.append(total)
        # reserved incident actors, never in the background pool
        self._scanner = "198.51.100.77"
        self._hog = "2001:db8:bad::1"

    def _plan_incidents(self) -> list[dict]:
        cfg, rng = self.cfg, self.rng
        plans = []
        for i, spec in enumerate(cfg.incidents):
            count = spec.count or max(40, cfg.lines // 100)
            if spec.at is None:
                # an incident begins part-way into a window, as real ones do (its onset is then visible
                # in the window's sub-windows), and ends with it: the second half of a window chosen by the seed
                duration = spec.duration or max(1, cfg.period // 2)
                slots = max(1, (cfg.duration - max(duration, cfg.period)) // cfg.period)
                at = rng.randrange(0, slots) * cfg.period + max(0, cfg.period - duration)
            else:
                duration = spec.duration or cfg.period
                at = spec.at
            if at + duration > cfg.duration:
                raise ValueError(f"incident {spec.kind} at {at}s + {duration}s ends after the {cfg.duration}s span")
            key = _INCIDENT_KEYS.get(spec.kind)
            if spec.kind == "burst500":
                key = {"path": "/api/v1/checkout"}
                if cfg.format == "alb":
                    key["target"] = _ALB_BAD_TARGET
            elif spec.kind == "scan404":
                key = {"client": self._scanner}
            elif spec.kind == "slow_upstream":
                key = {"path": "/api/v1/inventory", "upstream": "inventory-svc:8080"}
            elif spec.kind == "bytes_hog":
                key = {"client": self._hog}
            rule = (ALB_INCIDENT_RULE if cfg.format == "alb" else INCIDENT_RULE)[spec.kind]
            rule_keys = (_key_for(rule, key),)
            plans.append({"id": i, "kind": spec.kind, "start": self._start + at, "duration": duration, "count": count,
                          "key": key, "rule": rule, "rule_keys": rule_keys})  # fmt: skip
        return plans

    # -- generation --------------------------------------------------------------------------

    def _timeline(self) -> Iterator[tuple[float, int]]:
        """(epoch time, incident id or -1) for every line, in time order."""
        n, start, dur = self._background, self._start, self.cfg.duration
        background = ((start + i * dur / n, -1) for i in range(n)) if n else iter(())
        streams = [background] + [_evenly(p["start"], p["duration"], p["count"], p["id"]) for p in self._plans]
        return heapq.merge(*streams)

    def lines(self) -> Iterator[str]:
        if self._done:
            raise RuntimeError("lines() can only be iterated once per generator")
        fmt = self.cfg.format
        for ts, incident in self._timeline():
            ev = self._background_event(ts) if incident < 0 else self._incident_event(ts, self._plans[incident])
            if fmt == "alb":
                self._alb_decorate(ev, self._plans[incident]["kind"] if incident >= 0 else None)
            self._count(ev, incident)
            if fmt == "combined":
                yield self._format_combined(ev)
            elif fmt == "json":
                yield self._format_json(ev)
            else:
                yield self._format_alb(ev)
        self._done = True

    def _pick_path(self) -> tuple[str, str, str]:
        """(path, its template as the rules' `path_template` writes it, kind), from the choices made."""
        rng = self.rng
        r = rng.random()
        if r < 0.35:
            tpl, kind = rng.choice(_PAGES), "page"
        elif r < 0.65:
            tpl, kind = rng.choice(_STATIC), "static"
        else:
            tpl, kind = rng.choice(_API), "api"
        if "{" not in tpl:
            return tpl, tpl, kind
        name = (tpl.replace("{n}", str(rng.randrange(1, 120))).replace("{h}", rng.choice(("3f9a1c", "b71e02")))
                .replace("{slug}", rng.choice(_SLUGS)))  # fmt: skip
        path = name
        if "{id}" in path:
            path = path.replace("{id}", str(rng.randrange(1, 120) if "/products/" in tpl else rng.randrange(1000, 99_999)))
        if "{uuid}" in path:
            path = path.replace("{uuid}", str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        return path, name.replace("{uuid}", "{id}"), kind

    def _query(self, path: str, kind: str) -> str:
        """A realistic query string for a request to `path` ('' for none): search terms, paging,
        campaign tags, click ids (high cardinality), cache busters."""
        rng = self.rng
        r = rng.random()
        if path in ("/search", "/api/v1/search"):
            q = f"q={rng.choice(_WORDS)}"
            return q + f"&page={rng.randrange(2, 6)}" if r < 0.3 else q
        if kind == "static":
            return f"v={rng.choice(('3f9a1c', 'b71e02'))}" if r < 0.2 else ""
        if kind == "page":
            if r < 0.08:
                return rng.choice(_CAMPAIGNS)
            if r < 0.12:
                return "fbclid=IwAR" + "".join(rng.choices(_B64, k=22))
            return ""
        if path == "/api/v1/products":
            return rng.choice(("page=2&limit=20", "page=3&limit=20", "sort=price", "category=shoes&sort=new")) if r < 0.5 else ""
        if r < 0.05:
            return f"_={int(self._start * 1000) + rng.randrange(0, 10**8)}"
        return ""

    def _background_event(self, ts: float) -> dict:
        rng = self.rng
        client = rng.choices(self._clients, cum_weights=self._client_cw)[0]
        path, template, kind = self._pick_path()
        query = self._query(path, kind)
        method = "GET"
        if kind == "api":
            method = rng.choices(("GET", "POST", "PUT", "DELETE"), (75, 17, 5, 3))[0]
        elif kind == "page" and path in ("/login", "/signup"):
            method = rng.choice(("GET", "POST"))
        r = rng.random()
        if kind == "static" and r < 0.25:
            status = 304
        elif r < 0.010:
            status = 404
        elif r < 0.013:
            status = rng.choice((500, 502, 503))
        elif r < 0.03:
            status = rng.choice((301, 302))
        elif r < 0.035 and kind == "api":
            status = rng.choice((400, 401, 403, 429))
        else:
            status = 200
        if status == 304:
            size = None
        elif status in (301, 302):
            size = rng.randrange(150, 400)
        elif kind == "static":
            size = int(rng.lognormvariate(9.5, 1.0))
        else:
            size = int(rng.lognormvariate(8.0, 0.8))
        latency = round(rng.lognormvariate(3.0, 0.6), 1) if kind == "api" else round(rng.lognormvariate(1.0, 0.5), 1)
        ev = {"ts": ts, "client": client, "method": method, "path": path, "query": query, "template": template,
              "status": status, "bytes": size,
              "referer": rng.choice(_REFERERS), "ua": rng.choice(_UAS), "latency": latency,
              "upstream": "app-svc:8080" if kind == "api" else "-"}  # fmt: skip
        self._decorate(ev, kind)
        return ev

    def _decorate(self, ev: dict, kind: str) -> None:
        """The background's other dimension values, from a stream of their own (the draws above stay as they
        were): protocol, virtual host, upstream target (JSON `upstream` is the target's address, the
        inventory service's name for /api/v1/inventory), the healthy OrdersWorker/3.4.0 on 5% of API
        calls, some 504s (after a short upstream timeout, 1-5 s) and a tail of slower responses (never
        over 5 s: that is what slow incidents look like)."""
        d = self._dim_rng
        ev["protocol"] = "HTTP/2.0" if d.random() < 0.4 else "HTTP/1.1"
        if kind == "api":
            ev["host"] = "api.example.com"
            ev["target"] = d.choice(_ALB_APP_TARGETS)
            ev["upstream"] = "inventory-svc:8080" if ev["path"] == "/api/v1/inventory" else ev["target"]
            if d.random() < 0.05:
                ev["ua"] = _OLD_RELEASE
        else:
            ev["host"] = "static.example.com" if kind == "static" else "www.example.com"
            ev["target"] = d.choice(_ALB_WEB_TARGETS)
        r, t = d.random(), d.random()
        if ev["status"] in (500, 502, 503) and r < 0.25:
            ev["status"] = 504
            ev["latency"] = round(d.uniform(1000, 4900), 1)
        elif t < 0.003:
            ev["latency"] = round(d.uniform(1000, 4900), 1)
        elif t < 0.01:
            ev["latency"] = round(d.uniform(500, 999), 1)
        elif t < 0.04:
            ev["latency"] = round(d.uniform(100, 499), 1)

    def _api(self, ev: dict, path: str, template: str, query: str = "") -> None:
        """Turn a background event into a request to an API path (the method as API traffic has them)."""
        ev.update(path=path, template=template, query=query, host="api.example.com",
                  method=self.rng.choices(("GET", "POST", "PUT", "DELETE"), (75, 17, 5, 3))[0],
                  target=self._dim_rng.choice(_ALB_APP_TARGETS), latency=round(self.rng.lognormvariate(3.0, 0.6), 1))
        ev["upstream"] = "inventory-svc:8080" if path == "/api/v1/inventory" else ev["target"]

    def _incident_event(self, ts: float, plan: dict) -> dict:
        rng = self.rng
        kind = plan["kind"]
        ev = self._background_event(ts)  # realistic surroundings (client, UA, referer)
        small = rng.randrange(80, 200)
        if kind == "burst500":  # one endpoint failing, whatever the query string: one group; a client release
            ev.update(method="POST", path=plan["key"]["path"], query=rng.choice(_CHECKOUT_QUERIES), status=500,
                      bytes=rng.randrange(80, 200), latency=round(rng.uniform(5, 50), 1), ua=_RELEASE,
                      host="api.example.com", target=_ALB_BAD_TARGET, upstream=_ALB_BAD_TARGET)  # fmt: skip
        elif kind == "scan404":
            ev.update(client=plan["key"]["client"], method="GET", path=rng.choice(_SCAN),
                      query="" if rng.random() < 0.5 else f"v={rng.randrange(1, 99)}",
                      status=404, bytes=rng.randrange(150, 600), ua="Mozilla/5.0 zgrab/0.x", referer="-", upstream="-",
                      host="www.example.com", target=self._dim_rng.choice(_ALB_WEB_TARGETS))  # fmt: skip
        elif kind == "slow_upstream":
            ev.update(method="GET", path=plan["key"]["path"], query=f"sku={rng.randrange(10_000, 99_999)}&warehouse=eu-1",
                      status=504, bytes=rng.randrange(160, 200), latency=round(rng.uniform(30000, 60000), 1),
                      upstream=plan["key"]["upstream"], host="api.example.com",
                      target=self._dim_rng.choice(_ALB_APP_TARGETS))  # fmt: skip
        elif kind == "bytes_hog":
            ev.update(client=plan["key"]["client"], method="GET", path=f"/downloads/dataset-{rng.randrange(1, 9)}.tar.gz",
                      query="", status=200, bytes=rng.randrange(50_000_000, 500_000_000), ua="curl/8.5.0", upstream="-",
                      host="www.example.com", target=self._dim_rng.choice(_ALB_WEB_TARGETS))  # fmt: skip
        elif kind == "bad_release":  # the new client release fails on every order it touches
            n = rng.randrange(1000, 99_999)
            self._api(ev, f"/api/v1/orders/{n}", "/api/v1/orders/{id}")
            ev.update(status=500, bytes=small, ua=_RELEASE)
        elif kind == "bad_target":  # one upstream answers every request it gets with 502
            self._api(ev, "/api/v1/products", "/api/v1/products", "page=2&limit=20" if rng.random() < 0.3 else "")
            ev.update(status=502, bytes=small, target=_BAD_UPSTREAM, upstream=_BAD_UPSTREAM)
        elif kind == "partner_referer":  # a partner's embedded widget sends searches the API cannot handle
            self._api(ev, "/api/v1/search", "/api/v1/search", f"q={rng.choice(_WORDS)}")
            ev.update(method="GET", status=500, bytes=small, referer=_PARTNER)
        elif kind == "delete_fails":
            self._api(ev, "/api/v1/cart", "/api/v1/cart")
            ev.update(method="DELETE", status=500 if rng.random() < 0.6 else 502, bytes=small)
        elif kind == "template_fails":  # one route fails for every id
            n = rng.randrange(1000, 99_999)
            self._api(ev, f"/api/v1/users/{n}/avatar", "/api/v1/users/{id}/avatar")
            ev.update(method="GET", status=500, bytes=small)
        elif kind == "network_hammer":  # ~50 addresses of one /24 throttled and blocked at the login form
            ev.update(client=f"192.0.2.{rng.randrange(1, 51)}", method="POST", path="/login", template="/login",
                      query="", status=429 if rng.random() < 0.7 else 403, bytes=small, host="www.example.com",
                      upstream="-", target=self._dim_rng.choice(_ALB_WEB_TARGETS))  # fmt: skip
        elif kind == "slow_backend":
            self._api(ev, "/api/v1/search", "/api/v1/search", f"q={rng.choice(_WORDS)}")
            ev.update(method="GET", status=504, bytes=small, latency=round(rng.uniform(6000, 20000), 1))
        elif kind == "bad_host":  # one virtual host points at a backend that is gone
            ev.update(method="GET", path="/account", template="/account", query="", status=502, bytes=small,
                      host=_LEGACY_HOST, upstream="-", target=self._dim_rng.choice(_ALB_WEB_TARGETS))  # fmt: skip
        elif kind == "old_protocol":  # an old integration speaking HTTP/1.0 (no Host header): 400
            self._api(ev, "/api/v1/inventory", "/api/v1/inventory", f"sku={rng.randrange(10_000, 99_999)}")
            ev.update(status=400, bytes=small, protocol="HTTP/1.0")
        else:  # empty_replies: errors with empty bodies
            self._api(ev, "/api/v1/cart", "/api/v1/cart")
            ev.update(status=500 if rng.random() < 0.5 else 502, bytes=0)
        if kind in ("burst500", "scan404", "slow_upstream", "bytes_hog"):
            ev["template"] = ev["path"]  # no id segment in these paths
        return ev

    # -- formatting --------------------------------------------------------------------------

    def _format_combined(self, ev: dict) -> str:
        ua = ev["ua"].replace("\\", "\\\\").replace('"', '\\"')
        size = "-" if ev["bytes"] is None else str(ev["bytes"])
        return (f'{ev["client"]} - - [{self._clf_time(int(ev["ts"]))}] "{ev["method"]} {_uri(ev)} {ev["protocol"]}" '
                f'{ev["status"]} {size} "{ev["referer"]}" "{ua}"')  # fmt: skip

    def _clf_time(self, ts: int) -> str:
        got = self._clf_cache.get(ts)
        if got is None:
            if len(self._clf_cache) > 10_000:
                self._clf_cache.clear()
            got = self._clf_cache[ts] = self._clf_time_uncached(ts)
        return got

    def _clf_time_uncached(self, ts: int) -> str:
        off = self.cfg.tz_offset_minutes
        dt = datetime.fromtimestamp(ts, timezone(timedelta(minutes=off)))
        sign = "-" if off < 0 else "+"
        hh, mm = divmod(abs(off), 60)
        return f"{dt.day:02d}/{_MONTHS[dt.month - 1]}/{dt.year}:{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} {sign}{hh:02d}{mm:02d}"

    def _format_json(self, ev: dict) -> str:
        import orjson

        ms = int(round(ev["ts"] * 1000))
        iso = datetime.fromtimestamp(ms // 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"
        obj = {"time": iso, "client": ev["client"], "method": ev["method"], "host": ev["host"], "path": _uri(ev),
               "protocol": ev["protocol"], "status": ev["status"], "bytes": ev["bytes"] if ev["bytes"] is not None else 0,
               "referer": ev["referer"], "user_agent": ev["ua"], "latency_ms": ev["latency"], "upstream": ev["upstream"]}  # fmt: skip
        return orjson.dumps(obj).decode()

    def _alb_decorate(self, ev: dict, kind: str | None) -> None:
        """Choose what only an ALB entry has: ports, processing times, trace id (the target is the event's)."""
        rng = self._alb_rng
        if ev["status"] == 503:
            ev["target"] = None  # the load balancer answered itself: no target, times -1
            ev["tpt"] = None
        else:
            ev["tpt"] = f"{ev['latency'] / 1000:.3f}"
        ev["alb_type"] = "h2" if ev["protocol"] == "HTTP/2.0" else "https"
        ev["client_port"] = rng.randrange(1024, 65536)
        ev["received"] = rng.randrange(120, 900) + (len(_uri(ev)) if ev["method"] in ("GET", "DELETE") else 400)
        ev["trace"] = f"Root=1-{int(ev['ts']):08x}-{rng.getrandbits(96):024x}"
        ev["conn"] = f"TID_{rng.getrandbits(64):016x}"
        ev["priority"] = 10 if ev["upstream"] != "-" else 0

    def _format_alb(self, ev: dict) -> str:
        us = int(round(ev["ts"] * 1_000_000))
        latency_us = int(round(ev["latency"] * 1000))
        client = ev["client"]
        client = f"[{client}]:{ev['client_port']}" if ":" in client else f"{client}:{ev['client_port']}"
        target = ev["target"]
        if target is None:
            times, tstatus = "-1 -1 -1", "-"
        else:
            times, tstatus = f"0.000 {ev['tpt']} 0.000", str(ev["status"])
        ua = ev["ua"].replace("\\", "\\\\").replace('"', '\\"')
        sent = ev["bytes"] if ev["bytes"] is not None else 0
        tg = _ALB_TG.format("app" if ev["upstream"] != "-" else "web")
        return (f'{ev["alb_type"]} {_iso_us(us)} {_ALB_ELB} {client} {target or "-"} {times} {ev["status"]} {tstatus} '
                f'{ev["received"]} {sent} "{ev["method"]} https://{ev["host"]}:443{_uri(ev)} '
                f'{ev["protocol"]}" "{ua}" ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 {tg} "{ev["trace"]}" '
                f'"{ev["host"]}" "{_ALB_CERT}" {ev["priority"]} {_iso_us(us - latency_us)} "forward" "-" "-" '
                f'"{target or "-"}" "{tstatus}" "-" "-" {ev["conn"]}')  # fmt: skip

    # -- truth -------------------------------------------------------------------------------

    def _window_start(self, ts: float) -> int:
        if self.cfg.format == "json":
            ts = int(round(ts * 1000)) / 1000
        elif self.cfg.format == "alb":
            ts = int(round(ts * 1_000_000)) // 1_000_000
        else:
            ts = int(ts)
        return int(ts // self.cfg.period) * self.cfg.period

    def _count(self, ev: dict, incident: int) -> None:
        w = self._window_start(ev["ts"])
        self._events[w] += 1
        t = self._tally[w]
        status = ev["status"]
        if incident >= 0:
            self._incident_hits[incident][w] += 1
        if self.cfg.format == "alb":
            self._count_alb(w, t, ev)
            return
        if status >= 500:
            _bump(t["errors-by-path"], (ev["path"],), 1)  # the path without its query string
            _bump(t["errors-by-path-template"], (ev["template"],), 1)
        if status == 404:
            _bump(t["404-by-client"], (ev["client"],), 1)
        if status in _CLIENT_ERRORS:
            _bump(t[CLIENT_ERRORS_RULE], (ev["path"],), 1)
        size = ev["bytes"]
        if size is None and self.cfg.format == "json":
            size = 0  # the JSON form writes 0 where combined writes "-"
        if size is not None:
            _bump(t["bytes-by-client"], (ev["client"],), size)

    def _count_alb(self, w: int, t: dict, ev: dict) -> None:
        """What rules/alb/*.json must count for this event, from the generator's own choices."""
        status, sums = ev["status"], self._rule_sum[w]
        if status >= 500 and ev["target"] is not None:
            _bump(t["5xx-by-target"], (ev["target"],), 1)
        if status >= 500:
            _bump(t["errors-by-path-template"], (ev["template"],), 1)
        if ev["tpt"] is not None:
            value = float(ev["tpt"])  # what the entry says, to the bit
            _bump(t["slow-by-path"], (ev["path"],), value)
            sums["slow-by-path"] += value  # the engine adds in line order too
        if status == 404:
            _bump(t["404-by-client"], (ev["client"],), 1)
        if status in _CLIENT_ERRORS:
            _bump(t[CLIENT_ERRORS_RULE], (ev["path"],), 1)
        _bump(t["bytes-by-client"], (ev["client"],), ev["bytes"] if ev["bytes"] is not None else 0)

    def truth(self) -> dict:
        """Ground truth as a JSON-ready dict (see the module docstring)."""
        if not self._done:
            raise RuntimeError("consume lines() first")
        cfg = self.cfg
        names = ALB_RULE_NAMES if cfg.format == "alb" else RULE_NAMES
        rules = {name: self._rule_truth(name) for name in names}
        extra_rules = {name: self._rule_truth(name) for name in EXTRA_RULE_NAMES}
        incidents = []
        for p in self._plans:
            rule, key = p["rule"], p["rule_keys"]
            windows = []
            for w, n in sorted(self._incident_hits[p["id"]].items()):
                entry = self._tally[w].get(rule, {}).get(key, [0, 0])
                windows.append({"window": [w, w + cfg.period], "incident_lines": n, "rule_value": entry[0]})
            field, value = CAUSES[p["kind"]]
            incidents.append({"kind": p["kind"], "rule": rule, "key": p["key"], "rule_keys": list(key),
                              "start": p["start"], "end": p["start"] + p["duration"], "count": p["count"], "windows": windows,
                              "cause": {"field": field, "value": value},
                              "cause_observable": cause_observable(p["kind"], cfg.format)})  # fmt: skip
        return {
            "generator": "sieve gen access-log",
            "seed": cfg.seed,
            "lines": cfg.lines,
            "format": cfg.format,
            "start": int(cfg.start.timestamp()),
            "duration": cfg.duration,
            "period": cfg.period,
            "top": cfg.top,
            "incidents": incidents,
            "rules": rules,
            "extra_rules": extra_rules,
        }

    def _rule_truth(self, name: str) -> list[dict]:
        cfg, out = self.cfg, []
        for w in sorted(self._events):
            tally = self._tally[w].get(name, {})
            ranked = sorted(tally.items(), key=lambda kv: (-kv[1][0], kv[0]))
            out.append({
                "window": [w, w + cfg.period],
                "top": [{"keys": list(k), "value": v[0]} for k, v in ranked[: cfg.top]],
                "unique_contributors": len(tally),
                "max_contributor_value": ranked[0][1][0] if ranked else 0,
                "sample_count": sum(v[1] for v in tally.values()),
                "sum": self._rule_sum[w][name] if name in self._rule_sum[w] else sum(v[0] for v in tally.values()),
                "total_events": self._events[w],
            })  # fmt: skip
        return out


def _uri(ev: dict) -> str:
    """The request target as written: the path and, when there is one, `?` and the query string."""
    return ev["path"] + "?" + ev["query"] if ev["query"] else ev["path"]


def _iso_us(us: int) -> str:
    """Epoch microseconds -> `2024-03-04T10:00:00.123456Z` (ALB's time format)."""
    sec, frac = divmod(us, 1_000_000)
    return datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:06d}Z"


def _evenly(start: float, duration: float, count: int, tag: int) -> Iterator[tuple[float, int]]:
    for j in range(count):
        yield start + j * duration / count, tag


def _bump(d: dict, key: tuple[str, ...], value: int) -> None:
    cur = d.get(key)
    if cur is None:
        d[key] = [value, 1]
    else:
        cur[0] += value
        cur[1] += 1
