"""FAQ crawling, pure: which URLs a source may fetch, what a page says, and what changes in the table.

Everything here decides; nothing here does I/O. The HTTP side is the `Fetcher` port
(processors/adapters/web.py) and the table side the `FaqStore` port (processors/adapters/faq_table.py).

* **scope** (`Scope`): a URL is crawlable iff it is http(s) on the source's origin (scheme, host, port),
  its path starts with the scope prefix (default: the start URL's directory), it matches one of the
  `include` regexes (if any) and none of the `exclude` ones (both searched in path + query).
* **robots.txt** (`RobotsPolicy`, parsed by protego: wildcards, `$`, Allow/Disallow precedence,
  Crawl-delay, Sitemap lines): checked for every URL before it is fetched (start URL, sitemap entries,
  links, redirect targets). As RFC 9309 says, a 4xx robots.txt allows everything and an unreachable one
  (5xx, network failure) disallows everything: the source is not crawled and nothing is changed.
* **sitemaps** (`parse_sitemap`): `Sitemap:` lines of robots.txt and /sitemap.xml, sitemap indexes,
  gzip, plain-text sitemaps; parsed without DTDs, entities or network access. Entries on another site or
  outside the scope are skipped and counted.
* **extraction** (`extract_page`): schema.org Question items in JSON-LD and microdata (extruct), then
  `<details><summary>`, `<dl><dt><dd>` and question-like headings (ending in ? or ？, or starting with
  "Q." / "Q1:" ...) followed by their content up to the next heading of the same or a higher level.
  Whitespace is normalised (paragraphs kept as single newlines), the language is the nearest `lang`
  (else the page's `<html lang>`, else guessed from the script), and the anchor of the question's
  element (its id, or a single-question container's id) becomes the citation's #fragment.
* **items** (`page_items`): one entry = canonical page URL + question -> a stable id
  (`web-` + 32 hex of sha256). A long answer is cut into overlapping passages (`chunk`), each one item
  (`<id>`, `<id>-p2`, ...), each with a content hash over everything written. Every item is checked with
  the processor's own rules (processors.core.faq.parse_item) before it may be written.
* **the diff** (`diff_page`): per page that this crawl *decided* (fetched, gone with 404/410, now out of
  scope or disallowed, redirected out of scope, no longer HTML): items whose hash is unchanged are not
  written (no stream record), changed and new ones are, and held items the page no longer has are
  deleted. A page that could not be read (timeout, 5xx, too large, undecodable ...) is undecided: its
  entries stay as they are.
"""

from __future__ import annotations

import codecs
import copy
import hashlib
import json
import logging
import re
import unicodedata
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import html_text
import lxml.etree
import lxml.html
from extruct.jsonld import JsonLdExtractor
from extruct.w3cmicrodata import MicrodataExtractor
from protego import Protego
from w3lib.encoding import html_body_declared_encoding, http_content_type_encoding, read_bom, resolve_encoding
from w3lib.url import canonicalize_url

from processors.core.types import Fetched, FetchLimits, HeldEntry
from processors.ports import FaqStore, Fetcher
from processors.core.faq import LANGS, MAX_QUESTION_CHARS, Rejection, detect_lang, parse_item

log = logging.getLogger("sieve.crawl")

DEFAULT_USER_AGENT = "SieveFaqCrawler/0.1"
MAX_SITEMAPS = 20  # sitemap documents fetched per source and crawl
MAX_SITEMAP_URLS = 50_000  # as the sitemap protocol allows per file
MAX_DECOMPRESSED = 50 * 1024 * 1024
MAX_ROBOTS_BYTES = 500 * 1024  # RFC 9309: at least 500 KiB must be parsed

#: why a URL was not crawled or a page gave no entries (counted per URL)
SKIP_REASONS = {
    "robots_disallowed": "disallowed by robots.txt",
    "out_of_scope": "outside the source's scope (prefix, include, exclude)",
    "off_site": "on another site",
    "not_http": "not an http(s) URL",
    "not_html": "not an HTML page",
    "too_large": "larger than max_bytes",
    "timeout": "timed out",
    "connection_error": "connection failed",
    "redirect_loop": "redirect loop",
    "too_many_redirects": "more redirects than max_redirects",
    "undecodable": "not valid text in its declared encoding (or not UTF-8 without a declared one)",
    "unparseable": "not parseable as HTML",
    "no_qa": "no question/answer found",
    "noindex": "robots noindex (meta or X-Robots-Tag)",
    "bad_sitemap": "sitemap not parseable",
    "duplicate": "same content as a page already read (an alias URL)",
    "page_cap": "not fetched: max_pages reached",
    "deadline": "not fetched: the time budget ran out",
}


def describe(reason: str) -> str:
    if reason.startswith("http_"):
        return f"HTTP status {reason[5:]}"
    return SKIP_REASONS.get(reason, reason)


# ------------------------------------------------------------------------------------ the source


@dataclass(frozen=True)
class CrawlSource:
    """One crawl source (pipelines.faq.sources[]; `sieve faq crawl URL --role ROLE`)."""

    url: str
    role: str
    name: str = ""
    scope: str = ""  # URL prefix; "" = the start URL's directory
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    sitemaps: bool = True
    max_pages: int = 200
    delay_seconds: float = 1.0
    timeout_seconds: float = 10.0
    max_bytes: int = 2 * 1024 * 1024
    max_redirects: int = 5
    passage_chars: int = 1000
    passage_overlap: int = 150
    max_passages: int = 20
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        problems = []
        start = canonical_url(self.url)
        if start is None:
            problems.append(f"url: {self.url!r} is not an http(s) URL")
        if not self.role:
            problems.append("role: required")
        for name in ("include", "exclude"):
            for rx in getattr(self, name):
                try:
                    re.compile(rx)
                except re.error as exc:
                    problems.append(f"{name}: {rx!r} is not a regular expression ({exc})")
        if self.passage_chars < 100 or not 0 <= self.passage_overlap <= self.passage_chars // 2:
            problems.append("passage_chars must be >= 100 and passage_overlap between 0 and passage_chars / 2")
        if start is not None and not problems:
            scope = Scope.of(self)
            if scope.reason(start) is not None:
                problems.append(f"url: {start} is outside the scope {scope.origin}{scope.prefix} "
                                f"({describe(scope.reason(start) or '')})")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def start(self) -> str:
        return canonical_url(self.url) or self.url

    @property
    def key(self) -> str:
        """What the table's items remember as their source: the scope (origin + prefix), so a source keeps
        its entries when its name, role or limits change."""
        s = Scope.of(self)
        return f"{s.origin}{s.prefix}"

    @property
    def label(self) -> str:
        return self.name or self.start


def canonical_url(url: str, base: str | None = None) -> str | None:
    """Absolute, fragment-less, canonical form (w3lib: sorted query, percent-encoding, lowercase host,
    default port dropped) of an http(s) URL, or None."""
    try:
        raw = urljoin(base, url.strip()) if base else url.strip()
        parts = urlsplit(raw)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    try:
        canon = canonicalize_url(raw, keep_fragments=False)
        p = urlsplit(canon)
        host = (p.hostname or "").lower()
        port = p.port
    except ValueError:
        return None
    if not host:  # w3lib dropped a host it could not encode (`//\\"x/` -> `https:///%22x/`)
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or (p.scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((p.scheme, netloc, p.path or "/", p.query, ""))


def origin_of(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


@dataclass(frozen=True)
class Scope:
    origin: str  # scheme://host[:port]
    prefix: str  # path prefix, starting with /
    include: tuple[re.Pattern, ...] = ()
    exclude: tuple[re.Pattern, ...] = ()

    @classmethod
    def of(cls, source: CrawlSource) -> Scope:
        start = canonical_url(source.url) or source.url
        if source.scope:
            base = canonical_url(source.scope, start) or start
            prefix = urlsplit(base).path or "/"
            origin = origin_of(base)
        else:
            path = urlsplit(start).path or "/"
            prefix, origin = path[: path.rfind("/") + 1] or "/", origin_of(start)
        return cls(origin, prefix, tuple(re.compile(r) for r in source.include), tuple(re.compile(r) for r in source.exclude))

    def reason(self, url: str) -> str | None:
        """None if the (canonical) URL is inside the scope, else the reason code."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            return "not_http"
        if origin_of(url) != self.origin:
            return "off_site"
        path = parts.path or "/"
        if not path.startswith(self.prefix):
            return "out_of_scope"
        target = path + (f"?{parts.query}" if parts.query else "")
        if self.include and not any(rx.search(target) for rx in self.include):
            return "out_of_scope"
        if any(rx.search(target) for rx in self.exclude):
            return "out_of_scope"
        return None


# ------------------------------------------------------------------------------------ robots.txt


@dataclass(frozen=True)
class RobotsPolicy:
    """robots.txt of one origin, as RFC 9309 says to treat it."""

    status: str  # "ok" | "none (HTTP 404)" | "unreachable: ..."
    parser: Any = None  # Protego, when a robots.txt was read
    user_agent: str = DEFAULT_USER_AGENT
    disallow_all: bool = False

    @classmethod
    def from_response(cls, status: int | None, body: bytes, user_agent: str, failure: str | None = None) -> RobotsPolicy:
        if failure is not None or status is None:
            return cls(f"unreachable: {describe(failure or 'connection_error')}", user_agent=user_agent, disallow_all=True)
        if 200 <= status < 300:
            text = body[:MAX_ROBOTS_BYTES].decode("utf-8", errors="replace")
            try:
                return cls("ok", Protego.parse(text), user_agent)
            except Exception as exc:  # noqa: BLE001 - protego is lenient; anything else means "no rules"
                log.warning("robots.txt not parseable; treated as absent", extra={"error": str(exc)[:200]})
                return cls("unparseable (treated as absent)", user_agent=user_agent)
        if 400 <= status < 500:
            return cls(f"none (HTTP {status})", user_agent=user_agent)
        return cls(f"unreachable: HTTP {status}", user_agent=user_agent, disallow_all=True)

    def reason(self, url: str) -> str | None:
        if self.disallow_all:
            return "robots_disallowed"
        if self.parser is None:
            return None
        try:
            return None if self.parser.can_fetch(url, self.user_agent) else "robots_disallowed"
        except Exception:  # noqa: BLE001 - an odd URL the parser cannot match: do not fetch it
            return "robots_disallowed"

    @property
    def crawl_delay(self) -> float:
        if self.parser is None:
            return 0.0
        try:
            d = self.parser.crawl_delay(self.user_agent)
        except Exception:  # noqa: BLE001
            return 0.0
        return float(d) if d and d > 0 else 0.0

    @property
    def sitemaps(self) -> list[str]:
        if self.parser is None:
            return []
        try:
            return list(self.parser.sitemaps)
        except Exception:  # noqa: BLE001
            return []


# ------------------------------------------------------------------------------------ sitemaps


class SitemapError(ValueError):
    pass


def gunzip_bounded(body: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit)
    except zlib.error as exc:
        raise SitemapError(f"gzip: {exc}") from None
    if d.unconsumed_tail:
        raise SitemapError(f"gzip: more than {limit} bytes uncompressed")
    if not d.eof:
        raise SitemapError("gzip: truncated")
    return out


def _localname(el) -> str:
    """An element's name without its namespace; "" for a name lxml recovered but cannot split (`<http:>`)."""
    if not isinstance(el.tag, str):
        return ""
    try:
        return lxml.etree.QName(el).localname
    except ValueError:
        return ""


def parse_sitemap(body: bytes, max_urls: int = MAX_SITEMAP_URLS) -> tuple[list[str], list[str]]:
    """(page URLs, child sitemap URLs) of a sitemap (XML urlset or sitemapindex, gzip or not, or plain
    text: one URL a line). Raises SitemapError."""
    if body[:2] == b"\x1f\x8b":
        body = gunzip_bounded(body)
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        raise SitemapError("empty")
    if not stripped.startswith(b"<"):
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError:
            raise SitemapError("neither XML nor UTF-8 text") from None
        urls = [ln.strip() for ln in text.splitlines() if ln.strip().startswith(("http://", "https://"))]
        if not urls:
            raise SitemapError("no URLs")
        return urls[:max_urls], []
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False,
                                  huge_tree=False, recover=True, remove_comments=True, remove_pis=True)
    try:
        root = lxml.etree.fromstring(stripped, parser=parser)
    except (lxml.etree.XMLSyntaxError, ValueError) as exc:
        raise SitemapError(f"XML: {exc}") from None
    if root is None:
        raise SitemapError("XML: no document element")
    kind = _localname(root)
    if kind not in ("urlset", "sitemapindex"):
        raise SitemapError(f"XML: root element <{kind}> is neither urlset nor sitemapindex")
    child = "url" if kind == "urlset" else "sitemap"
    locs = []
    for el in root:
        if _localname(el) != child:
            continue
        for sub in el:
            if _localname(sub) == "loc" and (sub.text or "").strip():
                locs.append(sub.text.strip())
                break
        if len(locs) >= max_urls:
            break
    return (locs, []) if kind == "urlset" else ([], locs)


# ------------------------------------------------------------------------------------ text


_HSPACE = re.compile(r"[ \t\f\v\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
_INVISIBLE = re.compile(r"[\u200b\u200c\u200d\u2060\ufeff\u00ad]")


def normalise_text(text: str) -> str:
    """NFC, no invisible characters, runs of spaces (also no-break and ideographic ones) -> one space,
    lines trimmed, blank lines dropped: paragraphs stay apart by one newline."""
    text = _INVISIBLE.sub("", unicodedata.normalize("NFC", text or "")).replace("\r\n", "\n").replace("\r", "\n")
    lines = (_HSPACE.sub(" ", ln).strip() for ln in text.split("\n"))
    return "\n".join(ln for ln in lines if ln)


def normalise_question(text: str) -> str:
    return " ".join(normalise_text(text).split())


def question_key(text: str) -> str:
    return normalise_question(text).casefold()


def decode_html(body: bytes, content_type: str) -> tuple[str | None, str]:
    """(text, encoding) or (None, why). The encoding is the HTTP header's, else a BOM's, else a
    `<meta charset>`; without any the page must be UTF-8. Bytes invalid in that encoding are refused."""
    enc = None
    bom_encoding, bom = read_bom(body)
    if bom_encoding:
        enc = bom_encoding
        body = body[len(bom):]
    declared = http_content_type_encoding(content_type or "") or None
    if enc is None:
        enc = declared or html_body_declared_encoding(body[:4096]) or None
    name = resolve_encoding(enc) if enc else "utf-8"
    if name is None:
        return None, f"unknown encoding {enc!r}"
    try:
        codecs.lookup(name)
        return body.decode(name), name
    except (LookupError, UnicodeDecodeError) as exc:
        return None, (f"not valid {name}" if enc else "not UTF-8 and no encoding declared") + f" ({str(exc)[:80]})"


# ------------------------------------------------------------------------------------ extraction


@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    method: str  # json-ld | microdata | details | dl | heading
    lang: str | None = None  # as declared (BCP 47), None: unknown
    anchor: str | None = None


@dataclass
class PageExtract:
    qas: list[QA]
    links: list[str]  # canonical, absolute
    canonical: str | None = None  # <link rel=canonical>, resolved (not yet checked against the scope)
    lang: str | None = None  # <html lang>
    noindex: bool = False
    nofollow: bool = False
    problems: Counter = field(default_factory=Counter)  # e.g. bad_json_ld


class PageError(ValueError):
    pass


_QUESTION_HEADING = re.compile(r"([?？]\s*$)|(^\s*(Q|Ｑ)\s*\d*\s*[.:：．)）]\s*)|(ですか[。]?\s*$)", re.IGNORECASE)
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_QUESTIONISH = "//h1|//h2|//h3|//h4|//h5|//h6|//summary|//dt|//*[@itemprop='name']"
_BAD_ANCESTORS = "ancestor::nav or ancestor::template or ancestor::noscript"


def _text(el) -> str:
    try:
        return normalise_text(html_text.extract_text(el))
    except Exception:  # noqa: BLE001 - a fragment html_text cannot clean: fall back to the raw text
        return normalise_text(el.text_content() if hasattr(el, "text_content") else "")


#: What lxml refuses in a text node (C0 controls but tab / newline / CR, surrogates, U+FFFE / U+FFFF).
_NOT_XML_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _wrap(nodes, leading_text: str | None = None):
    div = lxml.html.Element("div")
    div.text = _NOT_XML_TEXT.sub("", leading_text) if leading_text else leading_text
    for n in nodes:
        div.append(copy.deepcopy(n))
    return div


def _html_fragment_text(value: Any) -> str:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if isinstance(v, (str, int, float)))
    if not isinstance(value, (str, int, float)):
        return ""
    s = str(value)
    if "<" not in s:
        return normalise_text(s)
    try:
        return _text(lxml.html.fragment_fromstring(s, create_parent="div"))
    except (lxml.etree.ParserError, ValueError):
        return normalise_text(s)


def _is_type(item: Mapping, name: str) -> bool:
    t = item.get("@type", item.get("type"))
    types = t if isinstance(t, list) else [t]
    return any(isinstance(x, str) and re.split(r"[/#:]", x)[-1] == name for x in types)


def _lang_of(el) -> str | None:
    got = el.xpath("ancestor-or-self::*[@lang][1]/@lang")
    return str(got[0]).strip() or None if got else None


def _anchor_of(el) -> str | None:
    """The element's own id (or <a name>), a descendant's, or the id of a container (up to 3 levels)
    that holds no other question-like element."""
    own = el.get("id") or (el.get("name") if el.tag == "a" else None)
    if own:
        return own
    inner = el.xpath(".//*[@id]/@id | .//a[@name]/@name")
    if inner:
        return str(inner[0])
    parent, depth = el.getparent(), 0
    while parent is not None and depth < 3 and parent.tag not in ("body", "html", "main"):
        if parent.get("id"):
            count = len(parent.xpath(".//h1|.//h2|.//h3|.//h4|.//h5|.//h6|.//summary|.//dt|.//*[@itemprop='name']"))
            return parent.get("id") if count <= 1 else None
        parent, depth = parent.getparent(), depth + 1
    return None


def _dom_hints(doc) -> dict[str, tuple[str | None, str | None]]:
    """question key -> (anchor, lang) of the first visible element whose text is that question."""
    hints: dict[str, tuple[str | None, str | None]] = {}
    for el in doc.xpath(_QUESTIONISH + "|//*[@id]"):
        if not isinstance(el.tag, str):
            continue
        text = el.text_content() if hasattr(el, "text_content") else ""
        if not text or len(text) > MAX_QUESTION_CHARS:
            continue
        key = question_key(text)
        if key and key not in hints:
            hints[key] = (_anchor_of(el), _lang_of(el))
    return hints


def _schema_questions(items: Iterable[Any], method: str, default_lang: str | None) -> list[QA]:
    """Question items anywhere in JSON-LD (dicts with @type / @graph) or extruct microdata (type /
    properties), with their accepted (else suggested) answer."""
    out: list[QA] = []

    def props(d: Mapping) -> Mapping:
        p = d.get("properties")
        return p if isinstance(p, Mapping) else d

    def first(v: Any) -> Any:
        return v[0] if isinstance(v, list) and v else v

    def walk(node: Any, lang: str | None, depth: int = 0) -> None:
        if depth > 20:
            return
        if isinstance(node, list):
            for x in node:
                walk(x, lang, depth + 1)
            return
        if not isinstance(node, Mapping):
            return
        p = props(node)
        here = p.get("inLanguage") if isinstance(p.get("inLanguage"), str) else lang
        if _is_type(node, "Question"):
            answer = first(p.get("acceptedAnswer")) or first(p.get("suggestedAnswer"))
            a = props(answer) if isinstance(answer, Mapping) else {}
            q_text = _html_fragment_text(p.get("name") or p.get("text"))
            a_text = _html_fragment_text(a.get("text")) if a else (_html_fragment_text(answer) if isinstance(answer, str) else "")
            url = p.get("url") if isinstance(p.get("url"), str) else ""
            anchor = urlsplit(url).fragment or None if url else None
            if q_text:
                out.append(QA(q_text, a_text, method, here, anchor))
            return
        for k, v in node.items():
            if k in ("@context",):
                continue
            walk(v, here, depth + 1)

    walk(list(items), default_lang)
    return out


def _json_ld(doc, problems: Counter) -> list[QA]:
    extractor = JsonLdExtractor()
    found: list[Any] = []
    for script in doc.xpath("//script[@type='application/ld+json']"):
        try:
            found += extractor.extract_items(script)
        except Exception:  # noqa: BLE001 - a broken block is skipped (and counted); the page goes on
            problems["bad_json_ld"] += 1
    return _schema_questions(found, "json-ld", None)


def _microdata(doc, url: str, problems: Counter) -> list[QA]:
    if not doc.xpath("//*[@itemscope]"):
        return []
    try:
        items = MicrodataExtractor(nested=True).extract_items(doc, base_url=url)
    except Exception:  # noqa: BLE001
        problems["bad_microdata"] += 1
        return []
    return _schema_questions(items, "microdata", None)


def _details(doc) -> list[QA]:
    out = []
    for det in doc.xpath(f"//details[not({_BAD_ANCESTORS})]"):
        summary = det.find("summary")
        if summary is None:
            continue
        q = normalise_question(summary.text_content())
        rest = [c for c in det if c is not summary and isinstance(c.tag, str)]
        a = _text(_wrap(rest, summary.tail))
        out.append(QA(q, a, "details", _lang_of(summary), _anchor_of(summary) or det.get("id")))
    return out


def _dl(doc) -> list[QA]:
    out = []
    for dl in doc.xpath(f"//dl[not({_BAD_ANCESTORS})]"):
        children = [c for c in dl if isinstance(c.tag, str)]
        # <dl><div><dt/><dd/></div></dl> is allowed by HTML too
        flat = []
        for c in children:
            flat += [g for g in c if isinstance(g.tag, str)] if c.tag == "div" else [c]
        i = 0
        while i < len(flat):
            if flat[i].tag != "dt":
                i += 1
                continue
            dt, dds = flat[i], []
            i += 1
            while i < len(flat) and flat[i].tag == "dd":
                dds.append(flat[i])
                i += 1
            if dds:
                out.append(QA(normalise_question(dt.text_content()), _text(_wrap(dds)), "dl", _lang_of(dt), _anchor_of(dt)))
    return out


def _headings(doc) -> list[QA]:
    out = []
    for h in doc.xpath(f"//*[self::h1 or self::h2 or self::h3 or self::h4 or self::h5 or self::h6][not({_BAD_ANCESTORS})]"):
        q = normalise_question(h.text_content())
        if not q or not _QUESTION_HEADING.search(q):
            continue
        level = int(h.tag[1])
        content = []
        sib = h.getnext()
        while sib is not None:
            if isinstance(sib.tag, str) and sib.tag in _HEADINGS and int(sib.tag[1]) <= level:
                break
            if isinstance(sib.tag, str) and (sib.tag in ("details", "dl") or sib.xpath(".//h1|.//h2|.//h3|.//h4|.//h5|.//h6")):
                break  # another structure (or a section with its own headings) starts
            content.append(sib)
            sib = sib.getnext()
        out.append(QA(q, _text(_wrap(content, h.tail)), "heading", _lang_of(h), _anchor_of(h)))
    return out


def parse_html_document(text: str):
    """lxml document of a decoded page; PageError when nothing parseable is there."""
    text = text.replace("\x00", "")
    if not text.strip():
        raise PageError("empty document")
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, recover=True)
    try:
        doc = lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)
    except (lxml.etree.ParserError, lxml.etree.XMLSyntaxError, ValueError) as exc:
        raise PageError(str(exc)[:200]) from None
    if doc is None or not isinstance(doc.tag, str):
        raise PageError("no document element")
    return doc


def extract_page(text: str, url: str) -> PageExtract:
    """Questions and answers, links and directives of one decoded HTML page (url: its final URL)."""
    doc = parse_html_document(text)
    problems: Counter = Counter()
    base = url
    base_href = doc.xpath("//base[@href][1]/@href")
    if base_href:
        base = canonical_url(str(base_href[0]), url) or url
    html_lang = doc.get("lang") or doc.get("{http://www.w3.org/XML/1998/namespace}lang") or None
    robots = set(re.split(r"[\s,]+", " ".join(str(c) for c in doc.xpath(
        "//meta[translate(@name,'ROBTS','robts')='robots']/@content")).lower()))
    canon = doc.xpath("//link[@href][contains(concat(' ', translate(@rel,'CANONIL','canonil'), ' '), ' canonical ')][1]/@href")
    canonical = canonical_url(str(canon[0]), base) if canon else None

    found = _json_ld(doc, problems) + _microdata(doc, url, problems)
    found += _details(doc) + _dl(doc) + _headings(doc)
    hints = _dom_hints(doc)
    qas: list[QA] = []
    seen: set[str] = set()
    for qa in found:
        key = question_key(qa.question)
        if not key or key in seen:
            continue
        if not qa.answer:
            problems["no_answer"] += 1
            continue
        seen.add(key)
        anchor, lang = hints.get(key, (None, None))
        qas.append(QA(qa.question, qa.answer, qa.method, qa.lang or lang or html_lang, qa.anchor or anchor))

    links: list[str] = []
    nofollow, noindex = bool(robots & {"nofollow", "none"}), bool(robots & {"noindex", "none"})
    if not nofollow:
        for a in doc.xpath("//a[@href] | //area[@href]"):
            if "nofollow" in (a.get("rel") or "").lower():
                continue
            u = canonical_url(a.get("href") or "", base)
            if u is not None and u not in links:
                links.append(u)
            elif u is None and (a.get("href") or "").strip().lower().startswith(("ftp:", "file:")):
                problems["not_http_link"] += 1
    return PageExtract(qas, links, canonical, html_lang, noindex=noindex, nofollow=nofollow, problems=problems)


# ------------------------------------------------------------------------------------ items


def chunk(text: str, size: int, overlap: int) -> list[str]:
    """Passages of at most `size` characters, each starting `overlap` characters (or a little less, to
    start on a sentence or word) before the previous one ended. Cuts prefer a line break, then the end of
    a sentence (. ! ? 。 ！ ？), then a space, and cut mid-word only when there is none."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    out: list[str] = []
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _cut(text, start + max(size // 2, 1), end)
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        if end >= len(text):
            break
        nxt = _restart(text, max(end - overlap, start + 1), end)
        start = nxt if nxt > start else end
    return out


_SENTENCE_END = re.compile(r"[.!?。！？．](?=\s|$)|[。！？]")


def _cut(text: str, lo: int, hi: int) -> int:
    window = text[lo:hi]
    nl = window.rfind("\n")
    if nl >= 0:
        return lo + nl + 1
    ends = [m.end() for m in _SENTENCE_END.finditer(window)]
    if ends:
        return lo + ends[-1]
    sp = window.rfind(" ")
    return lo + sp + 1 if sp >= 0 else hi


def _restart(text: str, lo: int, hi: int) -> int:
    """Where a passage that overlaps the previous one from `lo` starts: the first sentence or line start
    in [lo, hi), else the first word start, else lo."""
    window = text[lo:hi]
    for m in re.finditer(r"\n|" + _SENTENCE_END.pattern, window):
        pos = lo + m.end()
        while pos < hi and text[pos] in " \n":
            pos += 1
        if pos < hi:
            return pos
    if lo > 0 and not text[lo - 1].isspace():
        sp = window.find(" ")
        if 0 <= sp < len(window) - 1:
            return lo + sp + 1
    return lo


def entry_id(page_url: str, question: str) -> str:
    digest = hashlib.sha256(f"{page_url}\n{normalise_question(question)}".encode()).hexdigest()
    return f"web-{digest[:32]}"


HASHED_FIELDS = ("question", "answer", "role", "lang", "source_url", "page_url", "entry_id", "passage", "crawl_source")


def content_hash(item: Mapping[str, Any]) -> str:
    body = json.dumps({k: item.get(k) for k in HASHED_FIELDS}, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def lang_code(tag: str | None, text: str) -> tuple[str | None, str | None]:
    """(en|ja, None) or (None, the unsupported tag). No tag: guessed from the text's script."""
    if not tag:
        return detect_lang(text), None
    primary = tag.strip().lower().replace("_", "-").split("-")[0]
    return (primary, None) if primary in LANGS else (None, tag)


@dataclass(frozen=True)
class Skipped:
    reason: str
    detail: str = ""


def page_items(page_url: str, qas: Sequence[QA], source: CrawlSource, updated_at: str, *,
               id_attribute: str = "id") -> tuple[list[dict[str, Any]], list[Skipped]]:
    """Table items (one per passage) for a page's Q/As, and the Q/As that cannot be items."""
    items: list[dict[str, Any]] = []
    skipped: list[Skipped] = []
    for qa in qas:
        lang, unsupported = lang_code(qa.lang, qa.question + qa.answer)
        if unsupported:
            skipped.append(Skipped("unsupported_lang", f"{unsupported!r}: {qa.question[:60]}"))
            continue
        if len(qa.question) > MAX_QUESTION_CHARS:
            skipped.append(Skipped("question_too_long", qa.question[:60]))
            continue
        eid = entry_id(page_url, qa.question)
        url = page_url + (f"#{quote(qa.anchor, safe='-._~!$&()*+,;=:@/?')}" if qa.anchor else "")
        passages = chunk(qa.answer, source.passage_chars, source.passage_overlap)
        if len(passages) > source.max_passages:
            skipped.append(Skipped("answer_truncated", f"{len(passages)} passages, kept {source.max_passages}: {qa.question[:60]}"))
            passages = passages[: source.max_passages]
        for n, text in enumerate(passages, start=1):
            item = {id_attribute: eid if n == 1 else f"{eid}-p{n}", "question": qa.question, "answer": text,
                    "role": source.role, "lang": lang, "source_url": url, "page_url": page_url, "entry_id": eid,
                    "passage": n, "crawl_source": source.key, "updated_at": updated_at}
            checked = parse_item(item, id_attribute=id_attribute)
            if isinstance(checked, Rejection):
                skipped.append(Skipped("invalid", f"{checked.reason}: {qa.question[:60]}"))
                break
            item["content_hash"] = content_hash(item)
            items.append(item)
    return items, skipped


# ------------------------------------------------------------------------------------ the diff


@dataclass
class PageDiff:
    new: list[dict[str, Any]] = field(default_factory=list)
    changed: list[dict[str, Any]] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[HeldEntry] = field(default_factory=list)


def diff_page(pages: Iterable[str], items: Sequence[Mapping[str, Any]], held: Mapping[str, HeldEntry], *,
              id_attribute: str = "id") -> PageDiff:
    """What to write for the decided `pages` (URLs: the requested one, its redirects, its canonical):
    `items` are everything the crawl found there now, `held` what the table holds for the source."""
    pages = set(pages)
    d = PageDiff()
    now = {str(it[id_attribute]): it for it in items}
    for doc_id, it in now.items():
        h = held.get(doc_id)
        if h is None:
            d.new.append(dict(it))
        elif h.content_hash != it["content_hash"]:
            d.changed.append(dict(it))
        else:
            d.unchanged.append(doc_id)
    d.removed = sorted((h for h in held.values() if h.page_url in pages and h.id not in now), key=lambda h: h.id)
    return d


# ------------------------------------------------------------------------------------ ports


# ------------------------------------------------------------------------------------ the use case


HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass
class CrawlReport:
    source: str
    role: str
    robots: str = ""
    crawl_delay: float = 0.0
    pages_fetched: int = 0
    pages_with_entries: int = 0
    pages_gone: int = 0
    sitemaps_fetched: int = 0
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: Counter = field(default_factory=Counter)  # URLs by reason
    entries_skipped: Counter = field(default_factory=Counter)  # Q/As by reason
    conflicts: Counter = field(default_factory=Counter)  # claimed, delete_changed
    error: str | None = None
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few URLs

    def skip(self, reason: str, url: str, detail: str = "") -> None:
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 3:
            ex.append(url + (f" ({detail})" if detail else ""))
        log.info("crawl: skipped", extra={"source": self.source, "url": url, "reason": reason, "detail": detail[:300]})

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "role": self.role, "robots": self.robots, "crawl_delay": self.crawl_delay,
                "pages_fetched": self.pages_fetched, "pages_with_entries": self.pages_with_entries,
                "pages_gone": self.pages_gone, "sitemaps_fetched": self.sitemaps_fetched,
                "entries": {"new": self.new, "changed": self.changed, "unchanged": self.unchanged, "removed": self.removed},
                "skipped": dict(sorted(self.skipped.items())), "entries_skipped": dict(sorted(self.entries_skipped.items())),
                "conflicts": dict(sorted(self.conflicts.items())), "error": self.error}

    def lines(self) -> list[str]:
        out = [f"{self.source} (role {self.role}): {self.pages_fetched} page(s) fetched, {self.pages_with_entries} with "
               f"entries, {self.pages_gone} gone, {self.sitemaps_fetched} sitemap(s); robots.txt {self.robots}"
               + (f", crawl-delay {self.crawl_delay:g}s" if self.crawl_delay else ""),
               f"  entries: {self.new} new, {self.changed} changed, {self.unchanged} unchanged, {self.removed} removed"]
        if self.skipped:
            out.append("  skipped (URLs by reason): " + ", ".join(f"{r} {n}" for r, n in sorted(self.skipped.items())))
        if self.entries_skipped:
            out.append("  entries skipped: " + ", ".join(f"{r} {n}" for r, n in sorted(self.entries_skipped.items())))
        if self.conflicts:
            out.append("  conflicts: " + ", ".join(f"{r} {n}" for r, n in sorted(self.conflicts.items())))
        if self.error:
            out.append(f"  error: {self.error}")
        return out


Progress = Callable[[int, int, str], None]  # (pages done, pages known so far (capped), url)


@dataclass
class _CrawlState:
    done: set[str] = field(default_factory=set)  # page URLs handled (requested, redirects, final, canonical)
    bodies: dict[str, str] = field(default_factory=dict)  # sha256 of a body -> the first URL that had it


class Crawler:
    """Crawl sources into the FAQ table: discover, fetch politely, extract, and write only what changed."""

    def __init__(self, fetcher: Fetcher, store: FaqStore, *, clock: Callable[[], float],
                 now_iso: Callable[[], str], id_attribute: str = "id"):
        self.fetcher, self.store, self.clock, self.now_iso, self.id_attribute = fetcher, store, clock, now_iso, id_attribute

    def crawl(self, source: CrawlSource, *, deadline: float | None = None, progress: Progress | None = None) -> CrawlReport:
        report = CrawlReport(source.label, source.role)
        try:
            self._crawl(source, report, deadline, progress)
        except Exception as exc:  # noqa: BLE001 - a store or fetcher failure ends this source, never the run
            report.error = f"{type(exc).__name__}: {str(exc)[:300]}"
            log.warning("crawl: source failed", extra={"source": source.label, "error": report.error})
        return report

    # -- steps

    def _crawl(self, source: CrawlSource, report: CrawlReport, deadline: float | None, progress: Progress | None) -> None:
        scope = Scope.of(source)
        limits = FetchLimits(source.timeout_seconds, source.max_bytes, source.max_redirects, source.user_agent)
        robots_url = f"{scope.origin}/robots.txt"
        r = self.fetcher.fetch(robots_url, limits=limits, delay=source.delay_seconds,
                               allow=lambda u: None if origin_of(u) == scope.origin else "off_site")
        robots = RobotsPolicy.from_response(r.status, r.body, source.user_agent, r.reason)
        report.robots = robots.status
        if robots.disallow_all:
            report.error = f"robots.txt {robots.status}: not crawled, nothing changed"
            return
        delay = max(source.delay_seconds, robots.crawl_delay)
        report.crawl_delay = robots.crawl_delay

        def allow(url: str) -> str | None:
            return scope.reason(url) or robots.reason(url)

        held = self.store.held(source.key)
        # entries of pages this source may no longer crawl (scope or robots.txt changed): decided, removed
        for page in sorted({h.page_url for h in held.values()}):
            why = allow(page)
            if why is not None:
                self._apply(report, diff_page([page], [], held, id_attribute=self.id_attribute), source)
                log.info("crawl: page no longer crawlable; its entries are removed", extra={"url": page, "reason": why})

        queue: deque[str] = deque()
        queued: set[str] = set()
        refused: set[str] = set()

        def offer(url: str | None, raw: str = "") -> None:
            if url is None:
                if raw and raw not in refused:
                    refused.add(raw)
                    report.skip("not_http", raw)
                return
            if url in queued or url in refused:
                return
            why = allow(url)
            if why is not None:
                refused.add(url)
                report.skip(why, url)
                return
            queued.add(url)
            queue.append(url)

        offer(source.start)
        if source.sitemaps:
            for page in self._sitemap_pages(source, scope, robots, limits, delay, report, deadline):
                offer(canonical_url(page), page)
        for page in sorted({h.page_url for h in held.values()}):
            if allow(page) is None:
                offer(page)

        state = _CrawlState()
        while queue:
            if report.pages_fetched >= source.max_pages:
                for u in queue:
                    report.skip("page_cap", u)
                break
            if deadline is not None and self.clock() + delay + source.timeout_seconds > deadline:
                for u in queue:
                    report.skip("deadline", u)
                break
            url = queue.popleft()
            if url in state.done:
                continue
            fetched = self.fetcher.fetch(url, limits=limits, delay=delay, allow=allow)
            report.pages_fetched += 1
            if progress:
                progress(report.pages_fetched, min(report.pages_fetched + len(queue), source.max_pages), url)
            for link in self._page(source, fetched, held, report, state):
                offer(link)

    def _sitemap_pages(self, source: CrawlSource, scope: Scope, robots: RobotsPolicy, limits: FetchLimits, delay: float,
                       report: CrawlReport, deadline: float | None) -> list[str]:
        declared = robots.sitemaps
        todo: deque[tuple[str, bool]] = deque((u, True) for u in declared)
        default = f"{scope.origin}/sitemap.xml"
        if default not in [canonical_url(u) for u in declared]:
            todo.append((default, False))  # implicit: its absence is normal, not a skip
        seen: set[str] = set()
        pages: list[str] = []
        while todo and report.sitemaps_fetched < MAX_SITEMAPS:
            raw, explicit = todo.popleft()
            url = canonical_url(raw)
            if url is None:
                report.skip("not_http", raw)
                continue
            if url in seen:
                continue
            seen.add(url)
            if origin_of(url) != scope.origin:
                report.skip("off_site", url, "sitemap")
                continue
            if robots.reason(url):
                report.skip("robots_disallowed", url, "sitemap")
                continue
            if deadline is not None and self.clock() + delay + source.timeout_seconds > deadline:
                report.skip("deadline", url, "sitemap")
                continue
            r = self.fetcher.fetch(url, limits=limits, delay=delay,
                                   allow=lambda u: None if origin_of(u) == scope.origin else "off_site")
            if r.reason is not None:
                report.skip(r.reason, url, f"sitemap {r.detail}".strip())
                continue
            if r.status is None or not 200 <= r.status < 300:
                if explicit or r.status not in (404, 410):
                    report.skip(f"http_{r.status}", url, "sitemap")
                continue
            report.sitemaps_fetched += 1
            try:
                locs, children = parse_sitemap(r.body)
            except SitemapError as exc:
                report.skip("bad_sitemap", url, str(exc))
                continue
            pages += locs
            todo.extend((c, True) for c in children)
        return pages

    def _page(self, source: CrawlSource, f: Fetched, held: Mapping[str, HeldEntry], report: CrawlReport,
              state: _CrawlState) -> list[str]:
        """Handle one fetched page; returns the links to offer."""
        names = {f.url} | {canonical_url(u) or u for u in f.redirects}
        if f.reason in ("off_site", "out_of_scope", "robots_disallowed", "not_http"):
            # it redirects where this source may not go: whatever it held is no longer the source's
            report.skip(f.reason, f.url, f.detail)
            self._apply(report, diff_page(names, [], held, id_attribute=self.id_attribute), source)
            return []
        if f.reason is not None:
            report.skip(f.reason, f.url, f.detail)
            return []  # undecided: timeouts, loops, too large ... keep what the table holds
        final = canonical_url(f.final_url) or f.final_url
        names.add(final)
        if f.status in (404, 410):
            report.pages_gone += 1
            self._apply(report, diff_page(names, [], held, id_attribute=self.id_attribute), source)
            return []
        if f.status is None or not 200 <= f.status < 300:
            report.skip(f"http_{f.status}", f.url, f.detail)
            return []
        if final in state.done:
            return []
        state.done.update(names)
        ctype = (f.content_type or "").split(";")[0].strip().lower()
        if ctype not in HTML_TYPES:
            report.skip("not_html", f.url, ctype or "no Content-Type")
            self._apply(report, diff_page(names, [], held, id_attribute=self.id_attribute), source)
            return []
        same = state.bodies.setdefault(hashlib.sha256(f.body).hexdigest(), final)
        if same != final:  # /faq/ and /faq/index.html: one page, one set of entries (the first URL's)
            report.skip("duplicate", f.url, f"same content as {same}")
            self._apply(report, diff_page(names, [], held, id_attribute=self.id_attribute), source)
            return []
        text, why = decode_html(f.body, f.content_type)
        if text is None:
            report.skip("undecodable", f.url, why)
            return []
        try:
            page = extract_page(text, final)
        except PageError as exc:
            report.skip("unparseable", f.url, str(exc))
            return []
        except Exception as exc:  # noqa: BLE001 - a parser surprise costs this page, never the crawl
            report.skip("unparseable", f.url, f"{type(exc).__name__}: {str(exc)[:200]}")
            log.exception("crawl: extraction failed", extra={"url": f.url})
            return []
        for problem, n in page.problems.items():
            report.entries_skipped[problem] += n
        page_url = final
        if page.canonical and page.canonical != final and Scope.of(source).reason(page.canonical) is None:
            page_url = page.canonical
            names.add(page_url)
            state.done.add(page_url)
        noindex = page.noindex or "noindex" in (f.headers.get("x-robots-tag") or "").lower()
        if noindex:
            report.skip("noindex", f.url)
            qas: list[QA] = []
        else:
            qas = page.qas
            if not qas:
                report.skip("no_qa", f.url)
        items, skipped = page_items(page_url, qas, source, self.now_iso(), id_attribute=self.id_attribute)
        for s in skipped:
            report.entries_skipped[s.reason] += 1
            log.info("crawl: entry skipped", extra={"url": page_url, "reason": s.reason, "detail": s.detail[:300]})
        if items:
            report.pages_with_entries += 1
        self._apply(report, diff_page(names, items, held, id_attribute=self.id_attribute), source)
        nofollow = page.nofollow or "nofollow" in (f.headers.get("x-robots-tag") or "").lower()
        return [] if nofollow else page.links

    def _apply(self, report: CrawlReport, d: PageDiff, source: CrawlSource) -> None:
        report.unchanged += len(d.unchanged)
        for kind, items in (("new", d.new), ("changed", d.changed)):
            for item in items:
                outcome = self.store.put(item, source_key=source.key)
                if outcome == "written":
                    setattr(report, kind, getattr(report, kind) + 1)
                elif outcome == "unchanged":
                    report.unchanged += 1
                else:
                    report.conflicts[outcome] += 1
                    log.warning("crawl: entry not written", extra={"id": item[self.id_attribute], "outcome": outcome,
                                                                  "url": item.get("source_url")})
        for h in d.removed:
            outcome = self.store.delete(h, source_key=source.key)
            if outcome == "deleted":
                report.removed += 1
            elif outcome != "gone":
                report.conflicts[f"delete_{outcome}"] += 1
