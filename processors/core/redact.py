"""Redaction: what must never leave for a model (or reach Slack, logs or the audit table).

The patterns are data. `DEFAULT_PATTERNS` is the built-in set; pipelines.yaml adds its own
(`ai.redact.extra_patterns`: name, regex, replacement) and may pick a subset of the built-ins by
name (`ai.redact.builtin`). A `Redactor` is built once per window and applied to every string
that goes into a digest; it returns the redacted text plus how often each pattern fired, which
the audit record keeps.

IP addresses are not removed but *pseudonymised*: `ip-` + the first 6 hex digits of
HMAC-SHA256(window key, normalised address). The same client gets the same pseudonym in every
line of one window (so the model can still see "one client did all of this"), a different one in
the next window, and nobody without the secret can map a pseudonym back by hashing all 2^32
addresses. Derive the window key with `window_key(secret, rule, window)`.

Built-in kinds (applied in this order; each replacement is a `[REDACTED:<name>]` marker, which
later patterns never match again):

    private-key          PEM private key blocks
    authorization-header Authorization / Proxy-Authorization header values (any scheme)
    cookie-header        Cookie / Set-Cookie header values (they carry session ids)
    bearer-token         `Bearer <token>` anywhere
    jwt                  three base64url segments starting `eyJ`
    aws-access-key-id    AKIA/ASIA/... + 16 upper-case alphanumerics
    vendor-key           keys whose vendor prefix says what they are, wherever they stand (a URL path
                         too): Stripe sk_/rk_/pk_live|test_, GitHub ghp_/gho_/ghu_/ghs_/ghr_/github_pat_,
                         GitLab glpat-, Slack xox[abprs]- and xapp-, Google AIza, OpenAI/Anthropic sk-...
    aws-secret-key       `aws_secret_access_key=...` and any free-standing 40-character
                         base64 run with upper, lower and digit (the shape of a secret key)
    secret-param         key=value / key: value / "key": "value" where the key names a password,
                         token, secret, api key, signature or credential (query strings, headers,
                         JSON, form bodies)
    session-id           PHPSESSID, JSESSIONID, ASP.NET_SessionId, sessionid, session_id, sid ...
    email                addresses
    card                 13-19 digit card numbers (spaces/dashes allowed) that pass the Luhn check
                         and start with 2-6, so order ids and epoch-millisecond timestamps stay
    ipv6, ipv4           pseudonymised (see above); candidates are validated with `ipaddress`

Limits, on purpose: a card number glued to other digits (no separator) is not recognised,
because splitting digit runs would redact order ids; an AWS secret key without its
`aws_secret_access_key` name is recognised only when it stands free (not inside a longer token).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from processors.core.types import Window
from processors.errors import ConfigError

MARKER_PREFIX = "[REDACTED:"
_NOT_MARKER = r"(?!\[REDACTED:)"


def marker(name: str) -> str:
    return f"{MARKER_PREFIX}{name}]"


@dataclass(frozen=True, slots=True)
class Pattern:
    """One redaction rule. `replacement` is an `re` template (may use `\\g<name>` groups).
    `check`, when set, gets the match and returns the replacement text or None to keep the match
    (used for the Luhn check and IP pseudonyms); built-ins only, config patterns are pure regex."""

    name: str
    regex: str
    replacement: str = ""
    flags: int = 0
    check: Callable[[re.Match[str], "Redactor"], str | None] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class RedactionResult:
    text: str
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# --- checks used by the built-ins -------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_GROUP_SPLIT = re.compile(r"[ -]")


def _card(match: re.Match[str], _: "Redactor") -> str | None:
    """A run of digit groups; redact the earliest, longest sub-run of whole groups that is a card."""
    run = match.group(0)
    groups = _GROUP_SPLIT.split(run)
    # character offsets of each group inside the run
    offsets, pos = [], 0
    for g in groups:
        offsets.append(pos)
        pos += len(g) + 1
    out, i, last = [], 0, 0
    while i < len(groups):
        found, digits = None, ""
        for j in range(i, len(groups)):  # grow the span while it can still be a card (<= 19 digits)
            digits += groups[j]
            if len(digits) > 19:
                break
            if len(digits) >= 13 and digits[0] in "23456" and luhn_ok(digits):
                found = j  # keep the longest
        if found is None:
            i += 1
            continue
        start, end = offsets[i], offsets[found] + len(groups[found])
        out.append(run[last:start] + marker("card"))
        last, i = end, found + 1
    if not out:
        return None
    return "".join(out) + run[last:]


def _ip_pseudonym(address: str, redactor: "Redactor") -> str:
    digest = hmac.new(redactor.key, address.encode(), hashlib.sha256).hexdigest()
    return f"ip-{digest[:6]}"


def _ipv4(match: re.Match[str], redactor: "Redactor") -> str | None:
    try:
        addr = ipaddress.IPv4Address(match.group(0))
    except ValueError:
        return None
    return _ip_pseudonym(str(addr), redactor)


def _ipv6(match: re.Match[str], redactor: "Redactor") -> str | None:
    """IPv6 candidates are loose (`[hex:.]` runs with two colons); every valid address inside is
    pseudonymised, longest first, whatever is glued on either side (hex digits, or whole groups:
    `000:02001::1:0` holds `2001::1:0`)."""
    return _ipv6_within(match.group(0), redactor)


_IPV6_MAX = 45  # the longest text form of an IPv6 address (an IPv4-mapped one, fully written)


def _ipv6_within(cand: str, redactor: "Redactor") -> str | None:
    n = len(cand)
    for size in range(min(n, _IPV6_MAX), 1, -1):
        for left in range(0, n - size + 1):
            piece = cand[left : left + size]
            if piece.count(":") < 2:
                continue
            try:
                addr = ipaddress.IPv6Address(piece)
            except ValueError:
                continue
            norm = str(addr.ipv4_mapped) if addr.ipv4_mapped else addr.compressed
            before, after = cand[:left], cand[left + size :]
            before = _ipv6_within(before, redactor) or before if before.count(":") >= 2 else before
            after = _ipv6_within(after, redactor) or after if after.count(":") >= 2 else after
            return before + _ip_pseudonym(norm, redactor) + after
    return None


def _aws_secret_shape(match: re.Match[str], _: "Redactor") -> str | None:
    s = match.group(0)
    if s.startswith("/") or s.count("/") > 4:
        return None
    if not (re.search(r"[A-Z]", s) and re.search(r"[a-z]", s) and re.search(r"[0-9]", s)):
        return None
    return marker("aws-secret-key")


_SECRET_NAMES = (
    r"pass(?:word|wd|phrase)|pwd|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?key"
    r"|(?:access|auth|refresh|id|session|csrf|xsrf)?[_-]?token|signature|x-amz-signature|x-amz-credential"
    r"|x-amz-security-token|credentials?|private[_-]?key"
)
_SEP = r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)"

DEFAULT_PATTERNS: tuple[Pattern, ...] = (
    Pattern(
        "private-key",
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)",
        marker("private-key"),
    ),
    Pattern(
        "authorization-header",
        r"(?P<name>(?:proxy-)?authorization)" + _SEP + _NOT_MARKER + r"[^\"'\r\n,;}]+",
        r"\g<name>\g<sep>" + marker("authorization-header"),
        re.IGNORECASE,
    ),
    Pattern(
        "cookie-header",
        r"(?P<name>(?:set-)?cookie)(?P<sep>[\"']?\s*:\s*[\"']?)" + _NOT_MARKER + r"[^\"'\r\n]+",
        r"\g<name>\g<sep>" + marker("cookie-header"),
        re.IGNORECASE,
    ),
    Pattern("bearer-token", r"(?P<b>bearer)\s+" + _NOT_MARKER + r"[A-Za-z0-9\-._~+/]+=*", r"\g<b> " + marker("bearer-token"), re.IGNORECASE),
    Pattern("jwt", r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*", marker("jwt")),
    Pattern(
        "aws-access-key-id",
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|ANPA|ANVA|APKA|AROA|ASCA)[A-Z0-9]{16}",
        marker("aws-access-key-id"),
    ),
    Pattern(
        "vendor-key",
        r"(?<![A-Za-z0-9])(?:"
        r"(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{10,}"
        r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"
        r"|glpat-[A-Za-z0-9_-]{20,}"
        r"|xox[abprs]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{10,}"
        r"|AIza[A-Za-z0-9_-]{35}"
        # OpenAI / Anthropic: long, with a digit and a capital (a lower-case product slug `sk-...` stays)
        r"|sk-(?:ant-(?:api\d\d-)?|proj-)?(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Z])[A-Za-z0-9_-]{32,}"
        r")",
        marker("vendor-key"),
    ),
    Pattern(
        "aws-secret-key",
        r"(?P<name>aws[_-]?secret[_-]?(?:access[_-]?)?key|secret[_-]?access[_-]?key)" + _SEP + _NOT_MARKER + r"[A-Za-z0-9/+=]{20,}",
        r"\g<name>\g<sep>" + marker("aws-secret-key"),
        re.IGNORECASE,
    ),
    Pattern(
        "aws-secret-key",
        r"(?<![A-Za-z0-9/+_\-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+_\-])",
        check=_aws_secret_shape,
    ),
    Pattern(
        "session-id",
        r"(?P<name>phpsessid|jsessionid|asp\.net_sessionid|connect\.sid|session[_-]?id|sessid|sid|_session)"
        r"(?P<sep>[\"']?\s*[:=]\s*[\"']?)" + _NOT_MARKER + r"[^\s;&\"',}]+",
        r"\g<name>\g<sep>" + marker("session-id"),
        re.IGNORECASE,
    ),
    Pattern(
        "secret-param",
        r"(?P<name>(?:[A-Za-z0-9]{1,24}[_.-]){0,3}(?:" + _SECRET_NAMES + r"))" + _SEP + _NOT_MARKER + r"[^\s&\"',;}]+",
        r"\g<name>\g<sep>" + marker("secret-param"),
        re.IGNORECASE,
    ),
    Pattern("email", r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}", marker("email")),
    Pattern("card", r"(?<!\d)\d(?:[ -]?\d){12,}(?!\d)", check=_card),
    Pattern("ipv6", r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f.]*(?::[0-9A-Fa-f.]*){2,}", check=_ipv6),
    Pattern(
        "ipv4",
        r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)",
        check=_ipv4,
    ),
)

BUILTIN_NAMES: tuple[str, ...] = tuple(dict.fromkeys(p.name for p in DEFAULT_PATTERNS))


def window_key(secret: bytes | str, rule: str, window: Window) -> bytes:
    """The per-window HMAC key: derived from a long-lived secret, so retries of the same window
    pseudonymise identically and different windows differently."""
    if isinstance(secret, str):
        secret = secret.encode()
    if len(secret) < 16:
        raise ConfigError("redaction", [f"the pseudonymisation secret is {len(secret)} bytes; use at least 16 random bytes"])
    return hmac.new(secret, f"sieve-ip|{rule}|{window.key}".encode(), hashlib.sha256).digest()


def patterns_from_config(
    builtin: Sequence[str] | str = "all", extra: Iterable[Mapping[str, str]] = ()
) -> tuple[Pattern, ...]:
    """Built-ins chosen by name (or "all") followed by config patterns, each checked to compile."""
    problems: list[str] = []
    if builtin == "all":
        chosen = DEFAULT_PATTERNS
    else:
        unknown = [n for n in builtin if n not in BUILTIN_NAMES]
        problems += [f"ai.redact.builtin: unknown pattern {n!r}; known: {', '.join(BUILTIN_NAMES)}" for n in unknown]
        chosen = tuple(p for p in DEFAULT_PATTERNS if p.name in set(builtin))
    extras: list[Pattern] = []
    for i, spec in enumerate(extra):
        name, regex, repl = spec.get("name"), spec.get("regex"), spec.get("replacement", "<redacted>")
        where = f"ai.redact.extra_patterns[{i}]"
        if not name or not regex:
            problems.append(f"{where}: needs both 'name' and 'regex'")
            continue
        try:
            compiled = re.compile(regex)
            compiled.sub(repl, "")  # checks group references in the replacement
        except (re.error, IndexError) as exc:
            problems.append(f"{where} ({name}): {exc}")
            continue
        if compiled.search(""):
            problems.append(f"{where} ({name}): the regex matches the empty string; it would redact nothing useful")
            continue
        extras.append(Pattern(name, regex, repl))
    if problems:
        raise ConfigError("pipelines.yaml", problems)
    return chosen + tuple(extras)


class Redactor:
    """Applies the patterns in order. One instance per (rule, window); keeps running counts."""

    def __init__(self, key: bytes, patterns: Sequence[Pattern] = DEFAULT_PATTERNS):
        if len(key) < 16:
            raise ConfigError("redaction", ["the window key must be at least 16 bytes; derive it with window_key()"])
        self.key = key
        self._compiled = [(p, re.compile(p.regex, p.flags)) for p in patterns]
        self.totals: dict[str, int] = {}

    def redact(self, text: str) -> RedactionResult:
        counts: dict[str, int] = {}
        for pattern, rx in self._compiled:
            text = self._apply(pattern, rx, text, counts)
        for k, v in counts.items():
            self.totals[k] = self.totals.get(k, 0) + v
        return RedactionResult(text, counts)

    def _apply(self, pattern: Pattern, rx: re.Pattern[str], text: str, counts: dict[str, int]) -> str:
        hits = 0

        def repl(m: re.Match[str]) -> str:
            nonlocal hits
            if pattern.check is not None:
                out = pattern.check(m, self)
                if out is None:
                    return m.group(0)
                hits += 1 if pattern.name != "card" else out.count(marker("card"))
                return out
            hits += 1
            return m.expand(pattern.replacement)

        new = rx.sub(repl, text)
        if hits:
            counts[pattern.name] = counts.get(pattern.name, 0) + hits
        return new
