"""Injection screen: attacker-controlled text that reads as instructions to a model never reaches one.

    screen(text) -> Screened                 one string (a user agent, a referer, a path, a JSON value)
    screen_line(line) -> Screened            a raw access-log line (CLF / combined / ALB / JSON): every
                                             quoted field or JSON string is screened on its own, then the
                                             whole line; a withheld part is replaced *in place*
    screen_record(record) -> ScreenedRecord  every string (keys too) of a parsed record / group keys
    screen_lines(lines) -> ScreenedLines     many sample lines of one group, with `ScreenStats`

A flagged string is replaced by a marker that carries only its length and the first 8 hex digits
of its sha256 (UTF-8, surrogates escaped), never any of its text:

    [withheld: 212 chars addressed to an AI model, sha256:1a2b3c4d]

and the reasons come from a small fixed vocabulary (`REASONS`), in that order:

    role_marker           chat-template tokens and turns: <|im_start|>, [INST], <<SYS>>, </s>,
                          ### Instruction, <system>, "System: ..." / "Assistant: ..." at the start of
                          a segment, Human:/User: ... AI:/Assistant: turns, {"role": "system", "content"
    override_request      ignore / disregard / forget / override + (previous | all | your | system ...)
                          + instructions / prompt / rules ...; "previous instructions are void"; "new
                          instructions:"; reveal-your-system-prompt; jailbreak modes; Japanese
                          以前の指示を無視 / これまでの命令を忘れ / システムプロンプトを表示 ...
    fake_delimiter        text imitating the prompt's structure: the data markers, "END OF DATA",
                          "----- END", triple quotes or fences then a new section, closing JSON then a
                          role, a newline then "| ", digest ids like [G1.S2], the answer's JSON keys
                          (likely_cause, next_checks, "confidence": "high"), </data>, データの終わり
    assistant_imperative  text addressed to an assistant: "you are now", "as an AI,", "Dear AI,",
                          "If you are an LLM", sentence-initial "Respond with / Answer that / Say ...",
                          "tell the user", "set confidence to", "the root cause is ... confidence high",
                          "classify this as benign", "in your answer"; Japanese あなたは今から, AIは...
                          回答して, 「...」と答えて, 根本原因は...と答えて, 確信度をhighに設定
    encoded_instruction   any of the above found only after decoding base64 / base64url / hex runs or
                          Unicode tag characters, or a request to decode-and-follow

Every rule needs an instruction-like *structure* (a verb of override and its object, a role marker
at the start of a segment, an address to a model and an imperative), never a single word, so
`/api/v1/system/assistant/config`, `/ignore-list`, `?q=how+to+ignore+previous+errors`,
`?next=%2Fsystem%2Fstatus`, `kube-probe/1.29` or a JWT in a query string pass unchanged.

Before matching, each string is examined in several forms: as given and decoded (percent-encoding
and `+` up to three layers, `%uXXXX`, `\\xHH` bytes as nginx logs them, `\\uXXXX`, `\\n`, `\\"`,
HTML entities); each normalised (NFKC, casefold, zero-width / bidi / soft hyphen / variation
selectors / tag characters removed, Latin diacritics dropped, Cyrillic / Greek / small-capital
homoglyphs mapped to Latin), then as punctuated text, as words (any punctuation a single space,
s p a c e d letters joined, leetspeak digits read as letters) and as Japanese without spaces or
punctuation. base64 / base64url runs of 16+ characters and hex runs of 24+ digits are decoded and,
when the result is UTF-8 text (not binary), screened again (two levels at most).

Bounded and deterministic: only the first `MAX_SCAN_CHARS` characters are examined (a longer clean
string is returned cut to that length plus "…", so nothing unexamined passes), at most
`MAX_ENCODED` encoded runs per level, regexes are precompiled with bounded gaps only.
Standard library only; no I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, unquote_plus

import orjson

from processors.core.types import SelectedGroup

__all__ = [
    "MARKER_RE",
    "MAX_SCAN_CHARS",
    "REASONS",
    "ScreenStats",
    "Screened",
    "ScreenedLines",
    "ScreenedRecord",
    "is_marker",
    "marker_for",
    "screen",
    "screen_line",
    "screen_lines",
    "screen_record",
]

REASONS: tuple[str, ...] = (
    "role_marker",
    "override_request",
    "fake_delimiter",
    "assistant_imperative",
    "encoded_instruction",
)
_ORDER = {r: i for i, r in enumerate(REASONS)}

MAX_SCAN_CHARS = 8192  # characters of one string that are examined (and, if clean, returned)
MAX_ENCODED = 16  # base64/hex runs decoded per level
MAX_DEPTH = 2  # levels of decoding (base64 inside base64)
MAX_LINE_SEGMENTS = 64  # quoted fields / JSON strings screened individually in one line

MARKER_RE = re.compile(r"\[withheld: \d+ chars addressed to an AI model, sha256:[0-9a-f]{8}\]")
_MARKER_FULL = re.compile(r"\s*" + MARKER_RE.pattern + r"\s*")


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Screened:
    """`text` is safe to show a model: the original when clean, else a marker (for `screen_line`
    and `screen_record`: the original with each withheld part replaced by its marker)."""

    text: str
    flagged: bool
    reasons: tuple[str, ...] = ()
    length: int = 0  # characters of the original
    hash: str = ""  # first 8 hex digits of sha256(original), set when flagged


@dataclass(frozen=True, slots=True)
class ScreenedRecord:
    record: Any  # the same shape, withheld strings (and keys) replaced by markers
    flagged_fields: tuple[str, ...]  # dotted paths, e.g. "headers.user-agent", "items[2]"
    reasons: tuple[str, ...]

    @property
    def flagged(self) -> bool:
        return bool(self.flagged_fields)


@dataclass(frozen=True, slots=True)
class ScreenStats:
    """What a person is told about one group's sample lines (a computed security fact)."""

    lines: int = 0
    flagged_lines: int = 0
    reasons: Mapping[str, int] = field(default_factory=dict)  # reason -> lines carrying it, REASONS order

    @classmethod
    def of(cls, results: Iterable[Screened]) -> "ScreenStats":
        n = flagged = 0
        counts: dict[str, int] = {}
        for r in results:
            n += 1
            if r.flagged:
                flagged += 1
                for reason in r.reasons:
                    counts[reason] = counts.get(reason, 0) + 1
        return cls(n, flagged, {k: counts[k] for k in REASONS if k in counts})

    def merge(self, other: "ScreenStats") -> "ScreenStats":
        counts = dict(self.reasons)
        for k, v in other.reasons.items():
            counts[k] = counts.get(k, 0) + v
        return ScreenStats(self.lines + other.lines, self.flagged_lines + other.flagged_lines,
                           {k: counts[k] for k in REASONS if k in counts})

    def fact(self) -> str | None:
        """e.g. "3 of 40 sample lines carry text addressed to an AI model (withheld from the model:
        override_request 3, role_marker 1)"; None when no line was flagged."""
        if not self.flagged_lines:
            return None
        detail = ", ".join(f"{k} {v}" for k, v in self.reasons.items())
        noun = "line carries" if self.flagged_lines == 1 else "lines carry"
        return (f"{self.flagged_lines} of {self.lines} sample {noun} text addressed to an AI model "
                f"(withheld from the model: {detail})")


@dataclass(frozen=True, slots=True)
class ScreenedLines:
    lines: tuple[str, ...]  # safe to show, same order as given
    results: tuple[Screened, ...]
    stats: ScreenStats


# --- public functions ------------------------------------------------------------------------------


def marker_for(text: str) -> str:
    return f"[withheld: {len(text)} chars addressed to an AI model, sha256:{_hash8(text)}]"


def is_marker(text: str) -> bool:
    return _MARKER_FULL.fullmatch(text) is not None


def screen(text: str) -> Screened:
    """Screen one attacker-controlled string. Never raises for any `str`."""
    if not isinstance(text, str):
        text = str(text)
    if not text or is_marker(text):
        return Screened(text, False, (), len(text))
    reasons = _analyse(text[:MAX_SCAN_CHARS], 0)
    if reasons:
        ordered = tuple(sorted(reasons, key=_ORDER.__getitem__))
        return Screened(marker_for(text), True, ordered, len(text), _hash8(text))
    shown = text if len(text) <= MAX_SCAN_CHARS else text[:MAX_SCAN_CHARS] + "…"
    return Screened(shown, False, (), len(text))


def screen_record(record: Any) -> ScreenedRecord:
    """Screen every string in a parsed record (dict / list / tuple nesting, keys included; other
    values are kept). A `ClfRecord` can be passed as `record.as_dict()`."""
    flagged: list[str] = []
    reasons: set[str] = set()
    out = _walk(record, "", flagged, reasons, 0)
    return ScreenedRecord(out, tuple(flagged), tuple(sorted(reasons, key=_ORDER.__getitem__)))


def screen_line(line: str) -> Screened:
    """Screen a raw log line. JSON lines: each string value (and key), then all values together;
    a flagged value is replaced and the line re-serialised. Other lines (CLF, combined, ALB, plain):
    each double-quoted field is screened and replaced in place, then all fields together, one per
    line (unquoted fields such as the CLF user, instructions spread over several fields); if that
    flags, the whole line is withheld. `screen_line` of the result returns it unchanged."""
    if not isinstance(line, str):
        line = str(line)
    if not line or is_marker(line):
        return Screened(line, False, (), len(line))
    stripped = line.strip()
    if stripped[:1] in "{[" and len(line) <= 4 * MAX_SCAN_CHARS:
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, (dict, list)):
            return _screen_json_line(line, obj)
    return _screen_text_line(line)


def screen_lines(lines: Iterable[str]) -> ScreenedLines:
    """`screen_line` over a group's sample lines, with the counts a person is told about."""
    results = tuple(screen_line(line) for line in lines)
    return ScreenedLines(tuple(r.text for r in results), results, ScreenStats.of(results))


# --- line and record helpers -------------------------------------------------------------------


def _hash8(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _walk(value: Any, path: str, flagged: list[str], reasons: set[str], depth: int) -> Any:
    if isinstance(value, str):
        s = screen(value)
        if s.flagged:
            flagged.append(path or "$")
            reasons.update(s.reasons)
        return s.text
    if depth > 32:
        return value
    if isinstance(value, Mapping):
        out: dict = {}
        for k, v in value.items():
            key = k
            if isinstance(k, str):
                sk = screen(k)
                key = sk.text
                if sk.flagged:
                    reasons.update(sk.reasons)
                    while key in out:  # two withheld keys with the same marker
                        key += "'"
            child = f"{path}.{key}" if path else str(key)
            if isinstance(k, str) and key != k and is_marker(key.rstrip("'")):
                flagged.append(child)
            out[key] = _walk(v, child, flagged, reasons, depth + 1)
        return out
    if isinstance(value, (list, tuple)):
        items = [_walk(v, f"{path}[{i}]", flagged, reasons, depth + 1) for i, v in enumerate(value)]
        return items if isinstance(value, list) else tuple(items)
    return value


def _strings(value: Any, acc: list[str], depth: int = 0) -> None:
    if isinstance(value, str):
        acc.append(value)
    elif depth <= 32 and isinstance(value, Mapping):
        for v in value.values():
            _strings(v, acc, depth + 1)
    elif depth <= 32 and isinstance(value, (list, tuple)):
        for v in value:
            _strings(v, acc, depth + 1)


def _screen_json_line(line: str, obj: Any) -> Screened:
    res = screen_record(obj)
    values: list[str] = []
    _strings(res.record, values)
    # each value was decoded on its own already: the joined pass only looks across values
    joined = _analyse("\n".join(v for v in values if not is_marker(v))[:MAX_SCAN_CHARS], MAX_DEPTH)
    if joined:  # instructions split across fields: the whole line goes
        reasons = set(res.reasons) | joined
        return Screened(marker_for(line), True, tuple(sorted(reasons, key=_ORDER.__getitem__)), len(line), _hash8(line))
    if not res.flagged and len(line) <= MAX_SCAN_CHARS:
        return Screened(line, False, (), len(line))
    text = orjson.dumps(res.record, option=orjson.OPT_NON_STR_KEYS).decode()
    if not res.flagged:
        return Screened(text, False, (), len(line))
    return Screened(text, True, res.reasons, len(line), _hash8(line))


def _quoted_spans(line: str) -> list[tuple[int, int]]:
    """(start, end) of the contents of each double-quoted field, backslash escapes honoured; an
    unterminated quote runs to the end. Linear in the length of the line."""
    spans: list[tuple[int, int]] = []
    i, n = 0, len(line)
    while len(spans) < MAX_LINE_SEGMENTS:
        open_ = line.find('"', i)
        if open_ < 0:
            break
        j = open_ + 1
        while True:
            close = line.find('"', j)
            if close < 0:
                spans.append((open_ + 1, n))
                return spans
            k = close - 1
            while k > open_ and line[k] == "\\":
                k -= 1
            if (close - 1 - k) % 2 == 0:
                break
            j = close + 1
        spans.append((open_ + 1, close))
        i = close + 1
    return spans


def _unescape_field(s: str) -> str:
    if "\\" not in s:
        return s
    return s.replace('\\"', '"').replace("\\\\", "\\")


def _screen_text_line(line: str) -> Screened:
    head = line[:MAX_SCAN_CHARS]
    parts: list[str] = []
    fields: list[str] = []  # every field on a line of its own, for the whole-line check
    unquoted: list[str] = []
    reasons: set[str] = set()
    last = 0
    for a, b in _quoted_spans(head):
        s = screen(_unescape_field(head[a:b]))
        fields.append(head[last : a - 1])
        unquoted.append(head[last : a - 1])
        if s.flagged:
            reasons.update(s.reasons)
            parts.append(head[last:a])
            parts.append(marker_for(head[a:b]))
        else:
            parts.append(head[last:b])
            fields.append(_unescape_field(head[a:b]))
        last = b
    parts.append(head[last:])
    fields.append(head[last:])
    unquoted.append(head[last:])
    rebuilt = "".join(parts)
    if len(line) > len(head):
        rebuilt += "…"
    # quoted fields were decoded (base64, hex) on their own; across fields, and in the unquoted
    # fields (the CLF user, ALB tokens), look again
    split = _analyse("\n".join(fields), MAX_DEPTH)
    if not split and len(unquoted) > 1:
        split = _analyse("\n".join(unquoted), 0)
    if split:  # unquoted fields (the CLF user, ...), or instructions spread over several fields
        reasons.update(split)
        return Screened(marker_for(line), True, tuple(sorted(reasons, key=_ORDER.__getitem__)), len(line), _hash8(line))
    if not reasons:
        return Screened(line if rebuilt == line else rebuilt, False, (), len(line))
    return Screened(rebuilt, True, tuple(sorted(reasons, key=_ORDER.__getitem__)), len(line), _hash8(line))


# --- normalisation -----------------------------------------------------------------------------------

# zero-width, joiners, bidi controls, soft hyphen, fillers, variation selectors, tag characters
_INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\U0001bca0-\U0001bca3\U000e0000-\U000e007f\U000e0100-\U000e01ef]"
)
_TAGS = re.compile("[\U000e0020-\U000e007e]+")

_HOMOGLYPHS = str.maketrans({
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p", "с": "c",
    "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "һ": "h", "ӏ": "l", "ɡ": "g", "ո": "n", "ս": "u", "ց": "g", "օ": "o", "ᴦ": "r", "г": "r", "п": "n",
    "ь": "b", "ү": "y", "ԍ": "g", "ԗ": "x",
    # Greek
    "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "γ": "y", "ϲ": "c", "ϳ": "j", "ω": "w", "ς": "s", "σ": "o", "μ": "u", "ί": "i",
    "ό": "o", "έ": "e", "ά": "a", "ύ": "u",
    # small capitals and other Latin look-alikes
    "ᴀ": "a", "ʙ": "b", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k",
    "ʟ": "l", "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u", "ᴠ": "v",
    "ᴡ": "w", "ʏ": "y", "ᴢ": "z", "ı": "i", "ɩ": "i", "ȷ": "j", "ɑ": "a", "ɛ": "e", "ɔ": "o", "ʋ": "u",
    "ꞵ": "b", "ɾ": "r",
})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_LEET_TOKEN = re.compile(r"[a-z0-9@$!]*[013457@$!][a-z0-9@$!]*")


def _norm(s: str) -> str:
    s = _INVISIBLE.sub("", unicodedata.normalize("NFKC", s))
    s = s.casefold().translate(_HOMOGLYPHS)
    if not s.isascii():
        # drop combining marks that sit on a Latin letter (ìgnörè), keep kana voicing marks
        d = unicodedata.normalize("NFD", s)
        out = []
        prev_latin = False
        for ch in d:
            if prev_latin and unicodedata.combining(ch):
                continue
            out.append(ch)
            prev_latin = ch.isascii() and ch.isalpha()
        s = unicodedata.normalize("NFC", "".join(out))
    return s


_PCT = re.compile(r"%[0-9a-fA-F]{2}")
_PCT_U = re.compile(r"%u([0-9a-fA-F]{4})")
_XBYTES = re.compile(r"(?:\\x[0-9a-fA-F]{2})+")
_UESC = re.compile(r"\\u([0-9a-fA-F]{4})")
_CESC = re.compile(r"\\([nrt\"'\\/])")
_CESC_MAP = {"n": "\n", "r": "\n", "t": " ", '"': '"', "'": "'", "\\": "\\", "/": "/"}


def _decode(s: str) -> str:
    plus = True  # "+" is a space only in the first layer; a decoded %2B is a plus (base64)
    for _ in range(2):
        before = s
        for _ in range(3):
            if "%" not in s and not (plus and "+" in s):
                break
            t = _PCT_U.sub(lambda m: chr(int(m.group(1), 16)), s) if "%u" in s or "%U" in s else s
            t = (unquote_plus if plus else unquote)(t, errors="replace")
            plus = False
            if t == s:
                break
            s = t
        if "\\" in s:
            s = _XBYTES.sub(lambda m: bytes.fromhex(m.group(0).replace("\\x", "")).decode("utf-8", "replace"), s)
            s = _UESC.sub(lambda m: chr(int(m.group(1), 16)), s)
            s = _CESC.sub(lambda m: _CESC_MAP[m.group(1)], s)
        if "&" in s:
            s = html.unescape(s)
        if s == before:
            break
    return s


_NONWORD = re.compile(r"[^\w/]+|_+")
_SLASHES = re.compile(r"\s*/[\s/]*")
_SPACED = re.compile(r"\b[a-z](?:[ .\-_*·][a-z]\b){3,}")
_SPACED_SEP = re.compile(r"[ .\-_*·]")


_SPACED_WORDS = (
    "ignore|disregard|forget|override|bypass|previous|prior|above|earlier|all|your|the|instructions?|prompt|system"
    "|rules|guidelines|respond|reply|answer|say|output|print|tell|user|with|only|you|are|now|new|confidence|high"
    "|assistant|model|dan|as|an|ai|if|reveal|set|to|and|then|classify|benign|safe|normal|mark|report|cause|root|is"
).split("|")
# the long words are split out first, so a short one cannot eat their first letter ("a ignore" joined is
# "aignore": "ai" first would leave "gnore")
_SPACED_LONG = re.compile("(" + "|".join(w for w in _SPACED_WORDS if len(w.rstrip("?")) >= 5) + ")")
_SPACED_SHORT = re.compile("|".join(w for w in _SPACED_WORDS if len(w.rstrip("?")) < 5))


def _unspace(m: re.Match[str]) -> str:
    """"i g n o r e  p r e v i o u s": join the letters, then split the words we know back out, so
    a letter glued on either side does not hide the word."""
    parts = _SPACED_LONG.split(_SPACED_SEP.sub("", m.group(0)))
    return " " + "".join(f" {p} " if i % 2 else _SPACED_SHORT.sub(lambda w: " " + w.group(0) + " ", p)
                         for i, p in enumerate(parts)) + " "


def _words(t: str) -> str:
    t = _SPACED.sub(_unspace, t)
    # a slash separates path segments: words on either side do not make one phrase
    return " " + _SLASHES.sub(" / ", _NONWORD.sub(" ", t)).strip() + " "


def _leet(t: str) -> str:
    """Read digits as letters in tokens that mix them with letters ("1gn0r3", "5y5t3m"); short
    all-digit tokens ("15", "4") too, once the text has such mixed tokens."""
    mixed = False

    def fix(m: re.Match[str]) -> str:
        nonlocal mixed
        tok = m.group(0)
        if sum(c.isalpha() for c in tok) >= 2:
            mixed = True
            return tok.translate(_LEET)
        return tok
    out = _LEET_TOKEN.sub(fix, t)
    if mixed:  # then "53t", "t0", "15", "4" are words too
        out = _LEET_TOKEN.sub(lambda m: m.group(0).translate(_LEET) if len(m.group(0)) <= 12 else m.group(0), out)
    return out


def _unspace_all(t: str) -> str | None:
    """"T o  t h e  m o d e l", "f-o-r-g-e-t--a-n-y", "< | i m _ s t a r t | >": a separator between
    two isolated single characters is removed; a wider gap (two or more) becomes one space."""
    out, changed = t, False
    for sep, isolated, wide in _ISOLATED:
        if out.count(sep) < 6:
            continue
        new, n = isolated.subn("", out)
        if n >= 5:
            out, changed = (wide.sub(" ", new) if wide is not None else new), True
    return out if changed else None


def _isolated(sep: str) -> re.Pattern[str]:
    s = re.escape(sep)
    edge = r"\s/=?&\"'(\[<>|" + s
    return re.compile(rf"(?<=(?<![^{edge}])[^\s{s}]){s}(?=[^\s{s}](?![^{edge}]))")


_ISOLATED = tuple((sep, _isolated(sep), re.compile(re.escape(sep) + "{2,}") if sep != " " else None) for sep in (" ", "-", "_", "."))


_SLUG_SEP = re.compile(r"(?<=[^\s\-_])[\-_](?=[^\s\-_])")
_JSTRIP = re.compile(r"[\s\W_]+")


# --- rules -----------------------------------------------------------------------------------------
# T: normalised text with punctuation; W: " word word " (single spaces, padded); J: no spaces or
# punctuation (Japanese). All gaps are bounded; no nested unbounded quantifiers.

def _rx(p: str):
    """A pattern that starts with \\b is searched behind a gate without it: removing an assertion
    only widens what matches, and a pattern that opens with a literal or a class is scanned much
    faster by `re` than one that opens with an assertion."""
    if p.startswith(r"\b"):
        return re.compile(p[2:], re.DOTALL), re.compile(p, re.DOTALL)
    return re.compile(p, re.DOTALL)


def _gated(gate: str, p: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """A pattern that can only match where `gate` (a cheap, keyword-first regex) matches: the
    gate is searched first, so most texts never pay for the pattern's leading alternation."""
    return re.compile(gate, re.DOTALL), re.compile(p, re.DOTALL)


# the start of a segment: start of the text, a line, a sentence, a quote or bracket, a wide gap
_SEG = r"(?:^|[\n\r]|[.!?;:]\s+|[\"'“”‘’(>\]|*`#]\s*|(?<!\s)\s{2,}|(?<!-)-{2,}\s*)"

_AI = (r"(?:ai|a i|llm|llms|large language model|language model|ai model|ai assistant|assistant|chatgpt|chat gpt"
       r"|gpt ?\d*o?|claude|gemini|copilot|bard|llama|mistral|qwen|chatbot|ai agent|agent|bot|model|log analyst"
       r"|analyst|analy[sz]er|sieve)")
_AI_STRONG = (r"(?:ai|a i|llm|llms|large language model|language model|ai model|ai assistant|assistant|chatgpt"
              r"|chat gpt|gpt|claude|gemini|copilot|chatbot|ai agent|log analyst|analy[sz]er|sieve)")
_ANSWER_VERB = (r"(?:respond|reply|answer|say|output|print|write|report|state|conclude|classify|mark|label|tell|return"
                r"|include|summari[sz]e|declare|claim|confirm|assert|attribute|blame|diagnose|recommend|ignore|disregard"
                r"|forget|obey|comply|pretend|append|mention|insert|omit|hide|suppress)")

# role markers --------------------------------------------------------------------------------------
_ROLE_T = [
    _rx(r"<\|\s*(?:im_start|im_end|im_sep|endoftext|system|user|assistant|developer|tool|eot_id|eom_id"
        r"|start_header_id|end_header_id|begin_of_text|end_of_text|end|start|fim_\w{1,12}|\w{1,20}_id)\s*\|>"),
    _rx(r"\[/?inst\]|<</?sys>>|</s>|<s>\s*\[|\[/?sys\]"),
    _rx(r"#(?<!##)#+\s*(?:(?:instructions?|system(?: prompt| message)?|response|human|assistant|user|input|context"
        r"|new instructions?|prompt|task)\b|指示|命令|システム)"),
    _rx(r"</?\s*(?:system|assistant|human|instructions?|system_prompt|prompt|developer|im_start|sys)\s*>"),
    _rx(r"\[\s*(?:system|assistant|developer|instructions?|system prompt|system message)\s*\]"),
    _gated(r"\[\s*(?:user|human|ai)\s*\]", _SEG + r"\[\s*(?:user|human|ai)\s*\]"),
    _rx(r"【\s*(?:システム|指示|命令|アシスタント|ユーザー?|開発者|システムプロンプト)\s*】"),
    _rx(r"\[\s*(?:システム|指示|命令|アシスタント|システムプロンプト)\s*\]"),
    # a turn at the start of a segment, followed by at least two words
    _gated(r"(?:system|assistant|developer|human|ai|chatgpt|claude|llm|instructions?|prompt|message|sys)\s*:",
           _SEG + r"(?:system|assistant|developer|human|ai|chatgpt|claude|llm|instructions?|new instructions?"
        r"|system prompt|system message|sys)\s*:\s*[^\s:/=&]+[ \t,]+[^\s\"']"),
    _rx(r"\b(?:assistant|ai assistant|chatgpt|claude|llm|system prompt"
        r"|new instructions)\s*:\s*[a-z][^\s:/=&]*[ \t,]+[a-z]+[ \t,]+[a-z]"),
    _rx(r"\b(?:assistant|ai|model|llm|bot)[_\s\-]?(?:response|reply|answer|output|message|turn)\s*[:=]\s*[\"'a-z]"),
    _gated(r"(?:システム|アシスタント|開発者|指示|命令)\s*:", _SEG + r"(?:システム|アシスタント|開発者|指示|命令|システムプロンプト)\s*:\s*\S{2}"),
    _rx(r"(?<![\u30a0-\u30ff])(?:システム|アシスタント|システムプロンプト|システムメッセージ|開発者メッセージ)\s*:\s*[^\s:/]{2}"),
    _rx(rf"\b(?:system|developer|human|sys)\s*:\s*(?:please\s+|now\s+)?{_ANSWER_VERB}\s+\S"),
    # a user/human turn followed by an assistant/AI/system turn
    _rx(r"(?:\b(?:human|user)|ユーザー?|人間)\s*:\s+\S.{0,400}?(?:\b(?:assistant|ai|system)|アシスタント|システム)\s*:(?:\s|$)"),
    _gated(r"(?:human|user)\s*:\s*$", _SEG + r"(?:human|user)\s*:\s*$"),  # a dangling turn opener at the very end
    # chat-message JSON
    _rx(r"[\"']role[\"']\s*:\s*[\"'](?:system|assistant|developer|user|tool)[\"'].{0,400}?[\"']content[\"']\s*:"),
    _rx(r"[\"']content[\"']\s*:.{0,400}?[\"']role[\"']\s*:\s*[\"'](?:system|assistant|developer)[\"']"),
    _rx(r"[\"']messages[\"']\s*:\s*\[\s*\{"),
]

# override requests --------------------------------------------------------------------------------
_OV_STRONG_VERB = (r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|overlook|neglect|pay no attention to"
                   r"|do not follow|don t follow|dont follow|stop following|no longer follow|do not obey|don t obey"
                   r"|stop obeying|never mind|nevermind|skip over)")
_OV_WEAK_VERB = (r"(?:override|overriding|overrule|supersede|bypass|bypassing|circumvent|discard|abandon|drop|skip"
                 r"|reset|erase|wipe|clear|cancel|revoke|nullify|void|delete|remove|disable|deactivate|turn off"
                 r"|throw away|throw out|set aside|replace|break out of|escape|jailbreak|get around|work around)")
# qualifiers that point at earlier / the model's own instructions
_OV_PRIOR = (r"previous|previously given|prior|above|earlier|preceding|former|original|initial|foregoing|aforementioned"
             r"|your|ur|all of your|all your")
_OV_TEMP = (r"(?:" + _OV_PRIOR + r"|past|old|existing|current|preset|pre set|built in|default|given|hidden|developer"
            r"|developers|system|safety|security)")
_OV_QUAL = r"(?:all|any|every|each|the|my|these|those|of|its|their|our|and|or|" + _OV_TEMP[3:]
_OV_OBJ_STRONG = (r"(?:instructions?|instruction set|prompts?|system prompt|system message|directives?|guidelines?"
                  r"|guidance|briefing|digest"
                  r"|guardrails?|programming|conditioning|training|safety rules|content polic(?:y|ies)|persona)")
_OV_OBJ_WEAK = (r"(?:rules?|commands?|orders?|context|constraints?|restrictions?|polic(?:y|ies)|conversation|directions?"
                r"|limitations?)")
_OV_W = [
    _rx(rf" {_OV_STRONG_VERB}(?: {_OV_QUAL}){{0,4}} {_OV_OBJ_STRONG} "),
    _rx(rf" {_OV_STRONG_VERB}(?: {_OV_QUAL}){{0,3}} (?:all|any|every|{_OV_TEMP[3:]}(?: {_OV_QUAL}){{0,3}} {_OV_OBJ_WEAK} "),
    _rx(rf" {_OV_WEAK_VERB}(?: (?:all|any|every|the|of|these|those|and)){{0,3}} (?:{_OV_PRIOR})(?: {_OV_QUAL}){{0,3}} (?:"
        rf"{_OV_OBJ_STRONG}|{_OV_OBJ_WEAK}) "),
    _rx(rf" {_OV_WEAK_VERB}(?: (?:the|your|all|its|of)){{0,2}} (?:system prompt|system message|guardrails?"
        rf"|safety guidelines|content polic(?:y|ies)|programming) "),
    _rx(rf" {_OV_STRONG_VERB} (?:everything|anything|all|whatever)(?: that| you were| you have been| i"
        rf"| we){{0,2}}(?: (?:was|were|have|has|been|said|told|given|written|stated|above|before|prior|previously|so far"
        rf"|earlier|up to now|until now|here|before this)){{1,4}} "),
    _rx(rf" {_OV_STRONG_VERB} (?:what|anything|everything|all) (?:you were|you ve been|you have been|you got|i|we"
        rf"|they) (?:told|given|instructed|asked|taught|shown|said) "),
    _rx(rf" {_OV_STRONG_VERB} (?:the |all )?(?:above|previous|prior|preceding|foregoing|earlier)(?: (?:text|message"
        rf"|messages|prompt|context|content|input|one|part|lines?|paragraph|sentences?|statements?))? (?:and|then|instead"
        rf"|just|now|say|respond|reply|output|print|write|tell) "),
    _rx(rf" {_OV_STRONG_VERB} (?:the |all (?:of )?the |everything )?above $"),
    _rx(rf" (?:the |all |all of )?(?:{_OV_PRIOR}|old|system)(?: {_OV_QUAL}){{0,2}} (?:{_OV_OBJ_STRONG}|rules?|commands?"
        rf"|orders?) (?:are|is|were|was|have been|has been|are now|is now|will be|must be|should be)(?: now| hereby| all"
        rf"| officially){{0,2}} (?:void|null|cancell?ed|obsolete|outdated|revoked|invalid|no longer valid|overridden"
        rf"|superseded|lifted|removed|disabled|suspended|fake|wrong|a test|ignored|irrelevant|not applicable|not valid"
        rf"|replaced) "),
    _rx(r" (?:previous|prior|above|earlier|original|system|your|the) (?:instructions|prompts?|system prompt|directives"
        r"|guidelines|rules) (?:no longer|do not|don t|does not|doesn t) (?:apply|matter|count|hold) "),
    _rx(r" (?:here are|these are|below are|the following are|obey|follow|execute) (?:your|my|these) (?:new|real|actual"
        r"|true|secret|hidden|updated|revised|priority|overriding) (?:system )?(?:instructions|orders|commands|directives"
        r"|system prompt|prompt|task) "),
    _rx(r" (?:reveal|print|show|display|repeat|output|leak|dump|tell me|give me|write out|recite|spell out|disclose|expose"
        r"|paste|echo|what is|what are|what were)(?: me| us| out| back){0,2} (?:your|all (?:of )?your|the (?:system"
        r"|initial|original|hidden|secret))(?: (?:full|entire|exact|complete|initial|original|hidden|secret|system"
        r"|internal))? (?:system prompt|prompt|instructions|system message|initial prompt|directives|system instructions) "),
    _rx(r" (?:reveal|print|show|display|output|leak|dump|list|disclose|expose|share) (?:me |us )?(?:your|the) (?:hidden"
        r"|secret|internal|system|confidential|original) (?:rules|guidelines|configuration|policies|constraints) "),
    _rx(r" (?:reveal|print|show|display|repeat|output|leak|dump|write out|recite|spell out|disclose|paste|echo|copy)(?: me"
        r"| us| out| back){0,2} (?:the |all |all the )?(?:instructions|prompt|text|rules|directives|system message"
        r"|messages) (?:above|before this|you were given|you received|that came before|preceding this) "),
    _rx(r" (?:do anything now|dan mode|jailbr(?:eak|oken) mode|unrestricted mode|unfiltered mode|uncensored mode|evil mode"
        r"|opposite mode|chaos mode) "),
    _rx(r" (?:without|with no|free of|free from|ignoring) (?:any |your |all |the )?(?:restrictions|guardrails|filters"
        r"|limitations|safety guidelines|content polic(?:y|ies)|rules)(?: and \w+)?(?: you| respond| reply| answer| say"
        r"| output) "),
]
_OV_T = [
    _rx(r"\bnew (?:system )?(?:instructions?|prompt|system prompt|rules?|directives?|task|objective|goal|mission|role"
        r"|persona|orders)\s*[:=]\s*\S"),
    _rx(r"\b(?:updated|real|actual|true|secret|hidden|revised|overriding) (?:system )?(?:instructions?|prompt"
        r"|directives?)\s*[:=]\s*\S"),
    _gated(r"override\s*:", _SEG + r"(?:admin |system |developer |priority |emergency )?override\s*:\s*[a-z]{2,}[ \t,]+[a-"
                                   r"z]"),
    _rx(r"\b(?:system|admin|administrator|developer|root|security|emergency|priority) override\b(?!\s*(?:settings?|config"
        r"|css|file|flag|mode|switch|button|page|api))"),
    _rx(r"\b(?:summari[sz]e|describe|report|conclude|answer|respond|reply|classify|present)(?: (?:this|it|them|these"
        r"|the \w+))? as\s*:"),
]
_J_PRIOR = (r"(?:以前|これまで|それまで|その前|与えられた|今まで|いままで|これ以前|上記|上述|先ほど|先程|さっき|最初|元々|もともと|前述|前回|直前|ひとつ前|一つ前"
            r"|(?<![名午以直手事空寸腕駅門建目])前)")
_J_TEMP = (r"(?:以前|これまで|それまで|その前|今まで|いままで|これ以前|上記|上述|先ほど|先程|さっき|最初|元々|もともと|既存|与えられた|事前|過去"
           r"|従来|前述|前回|当初|初期|直前|ひとつ前|一つ前|この前|(?<![名午以直手事空寸腕駅門建目])前|(?<![以今途身])上|(?<![優祖])先"
           r"|(?<![地手身次足])元|すべて|全て|全部|あらゆる|システム|開発者|デフォルト|設定された|受けた|受け取った|これまでに与えられた)")
_J_OBJ_STRONG = r"(?:指示|命令|指令|プロンプト|システムプロンプト|ガイドライン|指図|インストラクション)"
_J_OBJ_WEAK = r"(?:ルール|規則|制約|制限|前提|会話|やり取り|やりとり|文脈|コンテキスト|方針|ポリシー|教え|役割|人格)"
_J_VERB_STRONG = (r"(?:無視|むし|忘れ|わすれ|従わな|従う必要はな|従うな|従う必要は|守らな|守る必要はな|守るな|気にしな|気にせ"
                  r"|気にする必要はな|考慮しな|なかったこと|白紙|無効)")
_J_VERB = r"(?:" + _J_VERB_STRONG[3:-1] + r"|破棄|取り消|取消|撤回|捨て|リセット|上書き|放棄|除外)"
_J_QUANT = r"(?:すべて|全て|全部|一切|完全に|いったん|一旦|今すぐ|ただちに|直ちに|もう|もはや)"
_OV_J = [
    _rx(rf"{_J_TEMP}(?:の|に|な|で)?(?:すべて|全て|全部|一切|あらゆる)?(?:の)?{_J_OBJ_STRONG}(?:は|を|も|に|など|とか|について)?{_J_QUANT}?{_J_VERB}"),
    _rx(rf"{_J_TEMP}(?:の|に|な|で)?(?:すべて|全て|全部|一切|あらゆる)?(?:の)?{_J_OBJ_WEAK}(?:は|を|も|に|など|とか"
        rf"|について)?{_J_QUANT}?{_J_VERB_STRONG}"),
    _rx(rf"{_J_PRIOR}の(?:すべて|全て|全部)?(?:の)?{_J_OBJ_WEAK}(?:は|を|も)?{_J_QUANT}?{_J_VERB}"),
    _rx(r"(?:プロンプト|システムプロンプト|システム指示|システムメッセージ|初期指示|インストラクション)(?:は|を|も)?(?:すべて|全て|全部|一切|完全に)?(?:無視|忘れ|破棄|無効|上書き|リセット)"),
    _rx(r"(?:システムプロンプト|初期プロンプト|システム指示|システムメッセージ|隠された指示|元の指示|最初の指示)(?:を|は|の)?.{0,10}?(?:表示|出力|教え|見せ|開示|公開|漏ら|書き出|暴露|繰り返)"),
    _rx(r"(?:新しい|新たな|本当の|真の|秘密の|隠された|最新の|優先|更新された)(?:システム)?(?:指示|命令|指令|システムプロンプト)(?:です|だ|は|に従|を与え|が与え|を以下|を伝え|を示)"),
    _rx(r"(?:無視|忘れ|破棄)(?:して|しろ|せよ|しなさい|してください|して下さい|てください|て|ろ|なさい)(?:ください)?(?:以前|これまで|今まで|上記|前)の(?:指示|命令|プロンプト|ルール)"),
    _rx(r"(?:制限|制約|ルール|フィルター|検閲)(?:を|は)?(?:すべて|全て|一切)?(?:解除|無視|無効)(?:して|し|した)(?:状態で|まま)?(?:回答|答え|応答|出力)"),
]

# fake delimiters ---------------------------------------------------------------------------------
_AFTER_SECTION = (r"(?:\s*(?:-{2,}|={2,}|#|\*{2,}|[.!:;](?:\s|$)|[\]>)}]|$|\n)"
                  r"|\s+(?:new|system|instructions?|now|ignore|assistant|user|human|begin|start|the following|you|below"
                  r"|here|follow)\b)")
_FD_T = [
    _rx(r"sieve[\s_\-.]*data[\s_\-.]*(?:begin|end|start)"),
    _gated(r"<<<|>>>", r"<(?<!<<)<<+\s*[a-z_/]|(?<=[a-z_])>>>|(?<=[a-z_])\s+>>>"),
    _rx(r"\bend(?:\W{0,3}of\W{0,3}|\s{1,3})(?:the\W{0,3})?(?:quoted\W{0,3}|untrusted\W{0,3}|log\W{0,3}|user\W{0,3}|input\W{0,3})?"
        r"(?:data|digest|logs?|input|document|context|quote|quoted text|transcript|block|samples?|user input|payload"
        r"|record|prompt)\b" + _AFTER_SECTION),
    _gated(r"begin|start", r"(?:^|\n[ \t]*|[=#*\[<(]\s*|(?<!-)-{2,}\s*|[.!?]\s+)(?:begin"
                           r"|start)\W{0,3}(?:of\W{0,3})?(?:the\W{0,3})?(?:new\W{0,3}|real\W{0,3}|actual\W{0,3})?"
        r"(?:instructions?|system(?: prompt| message)?|prompt|commands?|admin (?:instructions|commands))\b"),
    _rx(r"\b(?:data|digest|log|logs|input|quote|quoted data|user input)\s+(?:ends?|ended|is over|finished"
        r"|stops?)\s+(?:here|now)\b"),
    _rx(r"-(?<!--)--+\s*(?:end|begin|start|stop)\b(?!\s*(?:certificate|(?:(?:rsa|ec|dsa|openssh|encrypted"
        r"|pgp)\s+)?(?:private|public)\s+key|pgp|ssh|x509|signed))"),
    _rx(r"(?:=(?<!==)==+|\*(?<!\*\*)\*\*+|#(?<!##)##+|~(?<!~~)~~+)\s*(?:end|begin|start|system|instructions?|new|data"
        r"|prompt|assistant|user)\b"),
    _rx(r"(?:\"\"\"|'''|```)\s*(?:\n|(?:system|assistant|user|human|instructions?|end|new|now|ignore)\b|###)"),
    _rx(r"[\n\r][ \t]*\|\s"),
    _rx(r"\[g\d{1,3}\.s\d{1,3}\]|\[g\d{1,3}\]\s*(?:x\d|\w+=)"),
    _rx(r"selected because\s*:|sample templates\s*\(|earlier windows,? oldest first|events in window\s*:"
        r"|matched by rule\s*:"
        r"|distinct contributors\s*:|omitted to fit the size cap"),
    _gated(r"likely_cause|next_checks|evidence|confidence", r"\blikely_cause\b|\bnext_checks\b|[\"']evidence[\"']\s*:\s*\["
                                                            r"|confidence[\"']?\s*:\s*[\"'](?:high|medium|low)[\"']"),
    _rx(r"[}\]](?<![}\]]{2})\s*[}\]]*\s*[,;]?\s*[\n\r]+\s*(?:(?:system|assistant|user|human|ai|instructions?|new|ignore"
        r"|now)\b|###)"),
    _rx(r"</\s*(?:data|log|logs|context|input|document|digest|untrusted|untrusted_data|quoted|quote|user_input|sample"
        r"|samples|log_data|transcript)\s*>"),
    _rx(r"(?:データ|ログ|入力|引用|ダイジェスト|サンプル|ユーザー入力)(?:の)?(?:終わり|終了|おわり|末尾|ここまで)"
        r"(?:\s*[。.!！:\-=\]】>\n]|$|\s*(?:以下|ここから|次|新しい|システム|指示))"),
    _rx(r"(?:以降|これより先|ここから先|これ以降|この先|以下|次)の(?:データ|行|ログ|テキスト|内容|文章|入力)(?:は|を)(?:すべて|全て)?(?:指示|命令|システムプロンプト)として(?:扱|解釈|処理"
        r"|実行)"),
    _rx(r"ここまで(?:が|は)(?:データ|ログ|入力|引用)|(?:ここから|これ以降|以下)(?:は|が)?(?:新しい|本当の|真の)?"
        r"(?:指示|命令|システム(?:プロンプト|メッセージ)?)(?:です|だ|:|\s*$|に従)"),
]

# imperatives addressed to an assistant --------------------------------------------------------------
_IMP_W = [
    _rx(r" (?:you are|you re|youre|u r|you will be|you ll be) now(?: (?:a|an|the|my|our))?(?: \w+){0,2} (?:ai|assistant"
        r"|bot|chatbot|language model|llm|ai model|dan|persona|character|terminal|unrestricted ai|evil ai|jailbroken"
        r"|hacker) "),
    _rx(r" (?:you are|you re|youre|u r) now (?:in (?:dan|developer|dev|god|jailbreak|jailbroken|unrestricted|unfiltered"
        r"|uncensored|evil|admin|sudo|root|opposite|chaos) mode|unrestricted|unfiltered|jailbroken|uncensored|dan"
        r"|going to (?:respond|answer|reply|act|ignore|say|output|pretend)|acting as|operating as|to (?:act|respond|answer"
        r"|reply|ignore)|responding|answering) "),
    _rx(r" (?:don t|dont|do not|never|stop|no longer) (?:treat|consider|handle|read|see) (?:this|these|that|it|them"
        r"|the (?:\w+ )?(?:lines?|text|content|data|logs?|digest|samples?|messages?)(?: above| below| here)?) as (?:data"
        r"|quoted data|untrusted|logs?|input|text) "),
    _rx(r" (?:are|is|were|these are|this is) (?:instructions|orders|commands|directives|a message) from (?:your"
        r"|the) (?:developer|developers|operator|operators|admin|administrator|creator|creators|owner|system|team"
        r"|engineers) "),
    _rx(r" the (?:model|ai|assistant|analyst|llm|analyzer|analyser|bot) (?:must|should|shall|will|needs to|has to)(?: now"
        r"| always| simply| just){0,2} (?:conclude|report|say|answer|respond|reply|state|classify|ignore|treat|tell|blame"
        r"|attribute|declare|mark) "),
    _rx(r" (?:you|u) (?:no longer|don t|dont|do not|won t|will not|never) (?:have|need|got) to (?:cite|follow|obey|use"
        r"|respect|stick to|answer in|reply in|comply|quote|mention|check|be) "),
    _rx(rf" (?:{_AI_STRONG}|model|system|admin|developer|operator) (?:instructions|directives|orders|commands|rules"
        rf"|prompt) (?:follow|below|are as follows|as follows) "),
    _rx(rf" {_AI_STRONG}s? (?:please |kindly |now |just )?(?:ignore|disregard|forget|skip|stop|drop|override) (?:the|your"
        rf"|all|this|these|any|every|my) "),
    _rx(r" (?:summari[sz]e|describe|report|conclude|answer|respond|reply|classify|present|explain) (?:this |it |them "
        r"|these |the \w+ )?as (?:follows|such|this) "),
    _rx(r" (?:you are|you re) no longer (?:bound|restricted|limited|constrained|subject to|required to follow"
        r"|required to obey|an ai|a language model|an assistant|a chatbot|sieve|claude|chatgpt) "),
    _rx(rf" {_AI_STRONG} (?:from now on|from here on|from this point(?: on| forward)?|henceforth|going forward) "),
    _rx(r" (?:analysis|analyses|answer|answers|reply|replies|response|responses|output|summary|verdict) you (?:produce"
        r"|give|write|return|generate|send) (?:must|should|shall|will|has to|have to) (?:say|be|read|contain|state|include"
        r"|conclude) "),
    _rx(r" (?:from now on|from here on|from this point(?: on| forward)?|henceforth|going forward) (?:you |sieve |the (?:ai"
        r"|model|assistant) )?(?:will |must |shall |should )?(?:only |always )?(?:respond|reply|answer|act as|behave"
        r"|ignore|disregard|say|output|speak|pretend|obey|are (?:a|an|the|dan|my|no longer)) "),
    _rx(r" (?:pretend (?:to be|you are|you re|that you are)|roleplay as|role play as|act as if you|behave as if you"
        r"|imagine you are|simulate being) "),
    _rx(r" (?:you are|you re|youre) (?:an? |the )?(?:\w+ ){0,3}(?:assistant|ai|bot|chatbot|model|llm|analyst|agent) now "),
    _rx(r" (?:act|behave|respond|answer|reply) as (?:an? |the |my )?(?:\w+ ){0,3}(?:who|that|which) (?:always|only|never"
        r"|will|must|just) "),
    _rx(r" (?:whoever|anyone|anybody|whatever|whichever (?:ai|model|system|tool|bot)) (?:is |are )?(?:reading"
        r"|summari[sz]ing|analy[sz]ing|processing|parsing|reviewing|triaging|looking at) (?:this|these|the) "),
    _rx(r" your (?:new|real|true|actual|only|primary|sole|next|updated) (?:role|task|job|goal|purpose|instructions?"
        r"|objective|mission|persona|name|directive|orders) (?:is|are|will be|now) "),
    _rx(r" your (?:role|task|job|goal|purpose|objective|mission|instructions?) (?:from now(?: on)?|henceforth|from here on"
        r"|as of now) (?:is|are|will be) "),
    _rx(r" you are (?:an? |the )?(?:ai|llm|language model|large language model|ai model|ai assistant|helpful assistant"
        r"|chatbot|dan|unrestricted ai|jailbroken ai) (?:and|who|that|with|named|called|whose|you|your|trained|designed"
        r"|made|from|so|now|must|will|should) "),
    _rx(rf" (?:if|when|since|because|as) you (?:are|re) (?:an? |the )?{_AI_STRONG} "),
    _rx(rf" (?:(?:any|all|every|each|the|dear) )?{_AI_STRONG}s? (?:reading|processing|analy[sz]ing|parsing|seeing"
        rf"|summari[sz]ing|reviewing|examining|inspecting|handling|triaging|looking at|that reads?|that process(?:es)?"
        rf"|that sees?|which reads?|who reads?) (?:this|these|it|the) "),
    _rx(rf" (?:dear|hey|hi|hello|greetings|yo|note to|message to|memo to|notice to|psa to|instructions? for"
        rf"|instructions? to|a note for|a message for|important for|attention) (?:the |all |any |our "
        rf"|my )?{_AI_STRONG}s? (?:\w+ ){{0,8}}?(?:{_ANSWER_VERB}|you must|you should|you will|you need to|you are|your"
        rf"|please|must|kindly) "),
    _rx(rf" {_AI_STRONG}s? (?:must|should|shall|will now|needs to|need to|has to|have to|is instructed to|is required to"
        rf"|are instructed to|are required to|is ordered to|may only|can only)(?: now| always| only| simply| just"
        rf"| strictly| immediately){{0,2}} (?:respond|reply|answer|say|report|state|conclude|classify|mark|label|tell"
        rf"|ignore|disregard|forget|obey|comply|set|treat|consider|output|print|write|return|include|mention|omit|pretend"
        rf"|act) "),
    _rx(r" (?:classify|mark|label|treat|consider|report|flag|categori[sz]e|tag|dismiss) (?:this|these|those|it|them"
        r"|everything|the following|all(?: of)?(?: this| these| them| the)?|the)(?: \w+){0,2} as (?:benign|safe|normal"
        r"|legitimate|legit|harmless|expected|a false positive|false positives?|not (?:an? )?(?:attack|incident|malicious"
        r"|suspicious|problem|issue)|low (?:severity|risk|priority)|noise|informational|nothing|routine) "),
    _rx(r" (?:please|kindly|and|then|now|also|just|instead|so|must|should) tell (?:the |your |our |all )?(?:user|users"
        r"|engineer|engineers|on call|oncall|on call engineer|operator|operators|reader|readers|human|humans|analyst|sre"
        r"|sres|responder|responders|person reading|team reading|everyone reading) "),
    _rx(r" (?:in|within|at the (?:start|end|beginning) of|start|end|begin|prefix|finish|conclude) your (?:answer|reply"
        r"|response|output|verdict|json|likely cause) "),
    _rx(r" your (?:answer|reply|response|output|analysis|summary|json|verdict|conclusion) (?:must|should|shall|will|has to"
        r"|needs to|is to|may only|can only|must only) (?:be|say|read|contain|include|state|start|begin|end|only|exactly"
        r"|just) "),
    _rx(r" (?:do not|don t|dont|never|must not|should not|you must not|you should not)(?: ever)? (?:mention|report|include"
        r"|reveal|flag|alert|notify|escalate|tell (?:the )?(?:user|engineer|operator|anyone)|say anything about|bring up"
        r"|talk about|point out) (?:this|these|that|it|the (?:attack|injection|prompt|instructions?|scan|intrusion|breach"
        r"|exfiltration|line|request|ip|client)|any(?:thing)?|them) "),
    _rx(r" set (?:the |your |its )?confidence(?: level| score| value)?(?: to| as| at| equal to)? (?:high|medium|low"
        r"|very high|max(?:imum)?|100|certain) "),
    _rx(r" (?:confidence|confidence level) (?:must|should|shall|has to|needs to) be (?:high|medium|low|very high"
        r"|max(?:imum)?|100) "),
    _rx(r" (?:the )?(?:root|likely|real|actual|true|underlying|most likely) cause (?:is|was|of (?:this|the \w+) is"
        r"|should be|must be) .{0,200}?(?: confidence(?: is| level| level is| of)? (?:high|medium|low) | with (?:high"
        r"|medium|low) confidence | (?:say|answer|report|respond|reply|conclude|write|output|state|tell) )"),
    _rx(r" (?:please |kindly )?(?:respond|reply|answer) (?:only |exactly |just |strictly |solely )(?:with|in|using"
        r"|the following|this|that|yes|no|json|ok|okay) "),
    _rx(r" (?:output|print|say|return) only (?:the following|this|that|yes|no|ok|okay|the word|the words|the string"
        r"|the text) "),
    _rx(r" (?:respond|reply|answer|output|write|print|say|return|conclude|report|state|tell)(?: (?:only|exactly"
        r"|just))? (?:with|that) (?:the |a |an )?(?:following|json object|exact (?:text|words|string|phrase)|verbatim) "),
]
_IMP_T = [
    # a sentence (or a segment) that opens with an answer verb and answer content
    _gated(r"(?:respond|reply|answer|say|output|print|write|report|state|conclude|declare|claim|confirm|tell|return"
           r"|summari[sz]e)\s",
           _SEG + r"(?:(?:please|kindly|now|instead|just|simply|only|always|immediately|then|and)\s+){0,3}"
        r"(?:respond|reply|answer|say|output|print|write|report|state|conclude|declare|claim|confirm|tell|return"
        r"|summari[sz]e)"
        r"\s+(?:only\b|exactly\b|with\b|that\b|the following|this\b|[\"'“”‘’«<\[{:]|everything|nothing|yes\b|no\b"
        r"|the (?:root|likely|real|actual) cause|to the user|the user|in json|json\b|ok\b|okay\b|pwned|hacked"
        r"|accordingly\b)"),
    _gated(r"\b(?:you|u)\s+(?:must|shall|will|should|need|have|are|may|can)\b",
           _SEG + r"(?:(?:please|kindly|now|then|and)\s+)?(?:you|u)\s+(?:must|shall|will|should|need to|have to|are to"
                  r"|are required to|are instructed to|may only|can only)"
        r"(?:\s+(?:now|always|only|simply|just|strictly|immediately)){0,2}\s+"
        r"(?:respond|reply|answer|say|output|print|report|state|conclude|classify|label|tell|ignore|forget|disregard|obey"
        r"|comply|declare|pretend|set the confidence|include|mention|omit|act as|treat)\b"),
    _rx(r"\bas an? (?:ai|llm|large language model|language model|ai model|ai assistant|chatbot|ai language model)\b\s*(?:,"
        r"|you\b|your\b|i\b|it\b|model\b|assistant\b|developed\b|trained\b|created\b|made\b)"),
    _rx(rf"\b{_AI_STRONG}s?\s*[,:!]\s*(?:please\s+|now\s+|kindly\s+)?(?:you\s+(?:must|should|will|need to|have to"
        rf"|are to)\s+(?:now\s+|only\s+|always\s+)?)?{_ANSWER_VERB}\b"),
    _rx(rf"\b(?:attention|to|for|dear|hey|hi|hello)\s+(?:the\s+|all\s+|any\s+)?{_AI}s?\s*[:!]|\b(?:dear|hey)\s+{_AI}s?\s*,"),
    _rx(rf"\b(?:note|message|memo|notice|instructions?|reminder|request|directive|psa)s?\s+(?:to|for)\s+(?:the\s+|any\s+"
        rf"|all\s+|our\s+|my\s+)?(?:[a-z\-]+\s+){{0,2}}(?:{_AI}|reader|summari[sz]er|triager|automation)s?\s*[:,\-]"),
    _gated(r"tell", _SEG + r"(?:(?:please|kindly|now|then|and|also|just)\s+)?tell\s+(?:the\s+|your\s+|our\s+"
                           r"|all\s+)?(?:user|users|engineer|engineers|on[\s\-]?call(?:\s+engineer)?|operator|operators"
                           r"|reader|readers|human|humans|analyst|sre|sres|responders?)\b"),
    _rx(r"と\s*(?:だけ|のみ)?\s*(?:答え|伝え|書い|言っ|述べ|返し)て\s*(?:[。！!.]|$)"),
    _rx(r"\bset[\s_\-]+(?:the[\s_\-]+)?confidence(?:[\s_\-]+(?:level|score))?\s*(?:to|=|:|as)\s*[\"']?(?:high|medium"
        r"|low)\b"),
    _gated(r"<!(?:channel|here|everyone)>|@(?:channel|here|everyone)\b",
           rf"\b{_ANSWER_VERB}\s+(?:only\s+|exactly\s+|just\s+)?(?:with\s+|that\s+)?.{{0,40}}?(?:<!channel>|<!here>"
           rf"|<!everyone>|@channel\b|@here\b|@everyone\b)"),
]
_JN = (r"(?:あなた|貴方|君|きみ|お前|おまえ|ai|エーアイ|人工知能|アシスタント|言語モデル|大規模言語モデル|llm|チャットgpt|chatgpt|gpt"
       r"|claude|クロード|ボット|bot|チャットボット|アナリスト|分析者|分析官|解析者|sieve|モデル)")
_J_IMP = (r"(?:(?:回答|出力|返答|返信|報告|表示|記載|記述|判定|分類|設定|結論|説明|要約|翻訳|送信|投稿|応答|宣言|主張|記入)"
          r"(?:して|しなさい|せよ|しろ|すること|してください|して下さい|してくれ|してね|するように)|判断(?:して|しなさい|せよ|しろ|すること)"
          r"|(?:答え|伝え|教え|従っ|書い|言っ|述べ|認め|振る舞っ|ふるまっ|演じ|なりきっ|結論づけ|結論付け|扱っ)(?:て|なさい|ろ|よ|ること|るように)"
          r"|(?:従い|振る舞い|ふるまい)なさい|(?:従え|言え|書け|答えよ))")
_IMP_J = [
    _rx(r"(?:あなた|貴方|君|お前|おまえ)(?:は|が)(?:今から|これから|今後|以降|もはや|もう|今は|いまから).{0,20}?(?:です|だ|として|になり|ai|アシスタント|モデル|ボット|dan|制限|自由"
        r"|回答|答え|従|無視|振る舞|演じ|呼ばれ|という名前)"),
    _rx(r"(?:あなた|貴方|君|お前|おまえ)(?:は|が)(?:ai|人工知能|アシスタント|言語モデル|llm|ボット|チャットボット|dan|制限のない|自由な)(?:です|だ|として|では|になり|であり|なので)"),
    _rx(rf"{_JN}(?:は|へ|よ|さん|様|さま|くん|に告ぐ|に命じ|への指示|に指示|に命令)(?:.{{0,40}}?){_J_IMP}"),
    _rx(r"(?:として|になりきって|のように)(?:振る舞|ふるま|行動|回答し|答え|応答し)(?:って|え|いなさい|ってください|て|なさい|ろ)"),
    _rx(r"と(?:だけ|のみ)?(?:回答|出力|返答|返信|報告|判定|分類|結論づけ|記載)(?:して|しなさい|せよ|しろ|すること|するように)"),
    _rx(r"と(?:だけ|のみ)?(?:答え|伝え|書い|言っ|述べ)(?:て(?:ください|下さい|くれ)|なさい|ろ|よ|ること|るように)"),
    _rx(r"(?:根本原因|根本的な原因|真の原因|本当の原因|本当の理由|原因)(?:は|が).{0,60}?(?:と(?:回答|答え|出力|報告|結論|記載|伝え|判定)(?:して|し|て|ろ|なさい|よ|せよ|しろ|すること"
        r"|るように)|確信度|信頼度|自信度)"),
    _rx(r"(?:確信度|信頼度|自信度|confidence)(?:は|を|も)?(?:必ず|常に|絶対に)?(?:high|高|高い|最高|ハイ)(?:に設定|にして|にしろ|にせよ|にすること|とし|と(?:回答|答え|出力|し"
        r"|して|記載)|で(?:回答|出力|返答))"),
    _rx(r"(?:ai|人工知能|アシスタント|モデル|llm|言語モデル|チャットボット|ボット)(?:へ|に|宛て)の(?:お願い|指示|命令|依頼|メッセージ|伝言)"),
    _rx(r"(?:ユーザー|ユーザ|利用者|エンジニア|担当者|運用者|オンコール|読者|人間)(?:に|へ)(?:は)?(?:伝え|言っ|言え|知らせ|教え|説明し)(?:て|なさい|ろ|よ|ること)"),
    _rx(r"(?:ユーザー|ユーザ|利用者|エンジニア|担当者|運用者|オンコール|読者)(?:に|へ)(?:は)?.{1,30}?と(?:伝え|言っ|報告し|説明し|知らせ)(?:て|なさい|ろ|よ|ること)"),
    _rx(r"(?:次|以下|下記)の(?:ように|とおり|通り|内容で|内容を|文章で|文言で|jsonで|json|形式で|一文で|言葉で)(?:のみ|だけ)?(?:回答|出力|返答|返信|答え|報告|応答)(?:して|し|せよ|しろ"
        r"|しなさい|なさい|てください|ろ|よ|ること|るように)"),
    _rx(r"(?:以下|これ|これら|この|上記|このログ|このアクセス|この通信|このリクエスト|このトラフィック)(?:の\w{0,8})?(?:は|を)(?:すべて|全て)?(?:正常|安全|問題なし|無害|攻撃ではない|誤検知"
        r"|正当)(?:な\w{0,6})?(?:と|として)(?:判定|分類|報告|回答|扱|見な|みな|記載)(?:して|せよ|しろ|しなさい|って|え|い|すること)"),
    _rx(r"(?:回答|返答|出力|応答)(?:は|には|では)(?:必ず|常に|かならず)|(?:回答|返答|出力|応答)(?:に|の中に|の冒頭に|の最初に|の最後に).{0,30}?(?:を含め|を入れ|と書|を追加"
        r"|を付け)(?:て|なさい|ろ|よ|ること|るように)"),
    _rx(r"(?:このメッセージ|この文章|このテキスト|この指示)を(?:読んだ|見た|処理する)(?:ai|人工知能|aiアシスタント|アシスタント|モデル|llm|あなた)"),
    _rx(r"(?:解析|分析|処理|要約|監視|読ん|読み込ん)(?:する|している|中の|でいる|だ)(?:ai|人工知能|aiアシスタント|アシスタント|モデル|llm|言語モデル|ボット)(?:へ|に告ぐ|よ|は|の皆さん)"),
]
_ENC_W = [
    _rx(r" (?:decode|decipher|base64 decode|rot13|unscramble|reverse|translate|convert) (?:this|the following|it|below"
        r"|the string|the text|the message|these bytes)(?: (?:base64|hex|rot13|encoded|binary))?(?: (?:string|text|message"
        r"|payload|data|blob))?(?: (?:from|in|as) (?:base64|hex|rot13|binary|ascii))? (?:and|then) (?:follow|execute|obey"
        r"|run|do|apply|act on|comply with|carry out|perform) "),
    _rx(r" (?:the following|this) (?:base64|hex|rot13|encoded) (?:string |text |message |payload )?(?:contains|is"
        r"|holds) (?:your|the|my|new) (?:instructions?|task|orders|commands) "),
]
_ENC_J = [
    _rx(r"(?:base64|ベース64|16進|rot13)(?:を|で)?(?:デコード|復号|解読)(?:して|し)(?:その|中の)?(?:指示|命令|内容)(?:に従|を実行)"),
]

_RULES_T: tuple[tuple[str, tuple], ...] = (
    ("role_marker", tuple(_ROLE_T)),
    ("override_request", tuple(_OV_T)),
    ("fake_delimiter", tuple(_FD_T)),
    ("assistant_imperative", tuple(_IMP_T)),
)
_RULES_W: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = (
    ("override_request", tuple(_OV_W)),
    ("assistant_imperative", tuple(_IMP_W)),
    ("encoded_instruction", tuple(_ENC_W)),
)
_RULES_J: tuple[tuple[str, tuple[re.Pattern[str], ...]], ...] = (
    ("override_request", tuple(_OV_J)),
    ("assistant_imperative", tuple(_IMP_J)),
    ("encoded_instruction", tuple(_ENC_J)),
)

# cheap gates: a form without any of these characters cannot match the corresponding rule set
_HAS_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uff66-\uff9f]")


def _match(rules: tuple[tuple[str, tuple], ...], text: str, found: set[str]) -> None:
    for reason, patterns in rules:
        if reason in found:
            continue
        for rule in patterns:
            if isinstance(rule, tuple):
                gate, rx = rule
                if gate.search(text) is None:
                    continue
            else:
                rx = rule
            if rx.search(text) is not None:
                found.add(reason)
                break


# --- encoded payloads ------------------------------------------------------------------------------

_B64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{16,}={0,2}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){12,}(?![0-9A-Fa-f])")


def _as_text(raw: bytes) -> str | None:
    if len(raw) < 8:
        return None
    try:
        t = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    n = len(t)
    printable = sum(1 for c in t if c.isprintable() or c in "\t\n\r")
    if printable < 0.97 * n:
        return None
    letters = sum(1 for c in t if c.isalpha() or c == " ")
    if letters < 0.5 * n:
        return None
    return t


def _b64(s: str) -> str | None:
    s = s.rstrip("=")
    if "-" in s or "_" in s:
        if "+" in s or "/" in s:
            return None
        s = s.replace("-", "+").replace("_", "/")
    for offset in range(4):
        piece = s[offset:]
        if len(piece) < 16:
            break
        if len(piece) % 4 == 1:
            piece = piece[:-1]
        piece += "=" * (-len(piece) % 4)
        try:
            raw = base64.b64decode(piece, validate=True)
        except (binascii.Error, ValueError):
            continue
        t = _as_text(raw)
        if t is not None:
            return t
    return None


def _encoded_payloads(forms: Iterable[str]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    budget = MAX_ENCODED
    for form in forms:
        for m in _HEX_RUN.finditer(form):
            if budget <= 0:
                return out
            run = m.group(0)
            if run in seen:
                continue
            seen.add(run)
            budget -= 1
            t = _as_text(bytes.fromhex(run))
            if t is not None:
                out.append(t)
        for m in _B64_RUN.finditer(form):
            run = m.group(0)
            pieces = [run]
            if "/" in run:  # a path prefix, or slashes inside: try the segments and what follows each slash
                cuts = [i + 1 for i, c in enumerate(run) if c == "/"][:4]
                pieces += [run[i:] for i in cuts if len(run) - i >= 16]
                pieces += [p for p in run.split("/") if len(p) >= 16]
            for piece in pieces:
                if budget <= 0:
                    return out
                if piece in seen or piece.isdigit():
                    continue
                seen.add(piece)
                budget -= 1
                t = _b64(piece)
                if t is not None:
                    out.append(t)
    return out


# --- the analysis --------------------------------------------------------------------------------------


def _analyse(text: str, depth: int) -> set[str]:
    found: set[str] = set()
    decoded_raw = _decode(text)
    hidden = ""
    if not decoded_raw.isascii():  # Unicode tag characters smuggle invisible ASCII
        runs = dict.fromkeys(_TAGS.findall(text) + _TAGS.findall(decoded_raw))  # each run once, in order
        hidden = "\n".join("".join(chr(ord(c) - 0xE0000) for c in run) for run in runs)
    visible = _INVISIBLE.sub("", text) if not text.isascii() else text
    decoded = _INVISIBLE.sub("", decoded_raw) if not decoded_raw.isascii() else decoded_raw
    forms = [visible] if decoded == visible else [visible, decoded]
    seen: set[str] = set()
    for form in forms:
        t = _norm(form)
        variants = [t]
        if t.count(" ") < t.count("-") + t.count("_"):  # a slug: hyphens and underscores are spaces
            variants.append(_SLUG_SEP.sub(" ", t))
        spaced = _unspace_all(t)
        if spaced:
            variants.append(spaced)
        if any(c in t for c in "013457@$!"):
            variants += [_leet(v) for v in variants]
        for v in variants:
            if v in seen:
                continue
            seen.add(v)
            _match(_RULES_T, v, found)
            _match(_RULES_W, _words(v), found)
        if not t.isascii() and _HAS_CJK.search(t):
            _match(_RULES_J, _JSTRIP.sub("", t), found)
    if depth < MAX_DEPTH:
        inner = _encoded_payloads(forms)
        if len(hidden) >= 8:
            inner.append(hidden)
        for payload in inner:
            sub = _analyse(payload[:MAX_SCAN_CHARS], depth + 1)
            if sub:
                found |= sub
                found.add("encoded_instruction")
    return found


def screen_group(group: SelectedGroup) -> SelectedGroup:
    """A selected group whose sample lines are screened: withheld parts replaced by markers before
    anything downstream (digest, prompt, audit) sees them, and the count kept as a computed fact."""
    import dataclasses

    screened = screen_lines(group.samples)
    return dataclasses.replace(group, samples=screened.lines, screened_lines=screened.stats.lines,
                               withheld_lines=screened.stats.flagged_lines,
                               withheld_reasons=tuple(screened.stats.reasons))
