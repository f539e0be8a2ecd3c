"""OpenSearch adapter (opensearch-py): index layout, bulk writes that lose nothing, role-filtered search.

One index holds question/answer documents with an embedding; every search is filtered by `role`, so a
role never sees another role's documents. Vectors use the k-NN plugin's Lucene HNSW engine (cosine): it
needs no native library, and it supports *efficient filtering* (the role filter sits inside the knn
clause, so k hits come back even when few documents match the role).

Writes go through `bulk_index` / `delete`, which account for every input item in a `BulkResult`:
succeeded, rejected (id, reason), stale (an external version not newer than the stored one: skipped, not an
error), plus how many item retries 429/5xx answers caused. Change-data-capture writers pass a version per
document and get `version_type=external`, so an older change never overwrites a newer one.

Hybrid search runs BM25 and k-NN in one `_msearch` and fuses the two rankings on the client with
reciprocal rank fusion (deterministic; the neural-search `hybrid` query is not available on the local node,
because Maven Central serves no neural-search zip that matches it).

Local: `OpenSearchConfig(hosts=["http://127.0.0.1:9200"])`. AWS: set `aws_region` and `aws_service`
("es" for a managed domain, "aoss" for Serverless); requests are signed with SigV4 from the default boto3
credential chain. Note that Serverless accepts neither external versioning nor explicit refresh.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from processors.adapters.retry import Backoff
from processors.core.batching import bounded_batches
from processors.core.types import Candidate
from processors.errors import ConfigError, ServiceError
from processors.ports import Embedder, WriteResult

try:  # optional dependency: pip install 'sieve-streams[opensearch]'
    from opensearchpy import OpenSearch
    from opensearchpy.exceptions import ConnectionError as OSConnectionError
    from opensearchpy.exceptions import NotFoundError, RequestError, TransportError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("processors.adapters.opensearch needs opensearch-py: pip install 'sieve-streams[opensearch]'") from exc


# ------------------------------------------------------------------------------------------------ config

DEFAULT_URL = "http://127.0.0.1:9200"
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
MAX_EXTERNAL_VERSION = 2**63 - 1


@dataclass(frozen=True, slots=True)
class OpenSearchConfig:
    hosts: tuple[str, ...] = (DEFAULT_URL,)
    aws_region: str | None = None  # set => SigV4 signing
    aws_service: str = "es"  # "es" (managed domain) or "aoss" (Serverless)
    timeout: float = 30.0
    verify_certs: bool = True
    username: str | None = None  # basic auth, e.g. a domain with fine-grained access control
    password: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if not self.hosts:
            problems.append("hosts: at least one URL is needed")
        for h in self.hosts:
            if not str(h).startswith(("http://", "https://")):
                problems.append(f"hosts: {h!r} must start with http:// or https://")
        if self.aws_service not in ("es", "aoss"):
            problems.append(f"aws_service: {self.aws_service!r} must be 'es' or 'aoss'")
        if self.aws_region and self.username:
            problems.append("give either aws_region (SigV4) or username/password, not both")
        if problems:
            raise ConfigError("opensearch config", problems)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> OpenSearchConfig:
        """From a small config block: {hosts: [..] | host: str, aws_region, aws_service, timeout, ...}."""
        data = dict(data or {})
        hosts = data.pop("hosts", None) or data.pop("host", None) or DEFAULT_URL
        if isinstance(hosts, str):
            hosts = [hosts]
        known = {"aws_region", "aws_service", "timeout", "verify_certs", "username", "password"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError("opensearch config", [f"{k}: unknown key (known: hosts, {', '.join(sorted(known))})" for k in unknown])
        return cls(hosts=tuple(hosts), **data)

    @classmethod
    def from_env(cls) -> OpenSearchConfig:
        """OPENSEARCH_URL (comma-separated), OPENSEARCH_AWS_REGION, OPENSEARCH_AWS_SERVICE."""
        hosts = tuple(u.strip() for u in os.environ.get("OPENSEARCH_URL", DEFAULT_URL).split(",") if u.strip())
        return cls(
            hosts=hosts,
            aws_region=os.environ.get("OPENSEARCH_AWS_REGION") or None,
            aws_service=os.environ.get("OPENSEARCH_AWS_SERVICE", "es"),
        )


def make_client(config: OpenSearchConfig | Mapping[str, Any] | None = None) -> OpenSearch:
    """An opensearch-py client for the config (local http, basic auth, or AWS SigV4)."""
    if not isinstance(config, OpenSearchConfig):
        config = OpenSearchConfig.from_mapping(config)
    kwargs: dict[str, Any] = {
        "hosts": list(config.hosts),
        "timeout": config.timeout,
        "verify_certs": config.verify_certs,
        "retry_on_timeout": True,
        "max_retries": 2,
    }
    if config.aws_region:
        import boto3
        from opensearchpy import AWSV4SignerAuth, RequestsHttpConnection

        credentials = boto3.Session().get_credentials()
        if credentials is None:
            raise ConfigError("opensearch config", ["aws_region is set but boto3 found no AWS credentials"])
        kwargs["http_auth"] = AWSV4SignerAuth(credentials, config.aws_region, config.aws_service)
        kwargs["connection_class"] = RequestsHttpConnection
        kwargs["pool_maxsize"] = 20
    elif config.username:
        kwargs["http_auth"] = (config.username, config.password or "")
    return OpenSearch(**kwargs)


# ------------------------------------------------------------------------------------------------ index

VECTOR_FIELD = "embedding"
TEXT_FIELDS = ("question", "answer")


def index_body(
    dimension: int,
    *,
    shards: int = 1,
    replicas: int = 0,
    ef_construction: int = 128,
    m: int = 16,
    ef_search: int = 100,
    strict: bool = True,
    extra_properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Settings + mappings of a Sieve index (also usable as an index template body)."""
    if not isinstance(dimension, int) or not 1 <= dimension <= 16000:
        raise ConfigError("opensearch index", [f"dimension: {dimension!r} must be an integer in 1..16000"])

    def text_field() -> dict[str, Any]:
        # Main field: CJK bigrams (Japanese, Chinese, Korean) with width folding; latin words pass through
        # the standard tokenizer and are lowercased. `.en` adds English stemming and stop words.
        return {"type": "text", "analyzer": "sieve_cjk", "fields": {"en": {"type": "text", "analyzer": "sieve_english"}}}

    properties: dict[str, Any] = {
        "id": {"type": "keyword"},
        "role": {"type": "keyword"},
        "source_url": {"type": "keyword"},
        "question": text_field(),
        "answer": text_field(),
        "updated_at": {"type": "date"},
        "metadata": {"type": "object", "enabled": False},
        VECTOR_FIELD: {
            "type": "knn_vector",
            "dimension": dimension,
            "method": {
                "name": "hnsw",
                "engine": "lucene",  # the only engine that needs no native library
                "space_type": "cosinesimil",
                "parameters": {"ef_construction": ef_construction, "m": m},
            },
        },
    }
    properties.update(extra_properties or {})
    return {
        "settings": {
            "index": {
                "number_of_shards": shards,
                "number_of_replicas": replicas,
                "knn": True,
                "knn.algo_param.ef_search": ef_search,
            },
            "analysis": {
                "filter": {
                    "sieve_english_stop": {"type": "stop", "stopwords": "_english_"},
                    "sieve_english_stemmer": {"type": "stemmer", "language": "english"},
                    "sieve_english_possessive": {"type": "stemmer", "language": "possessive_english"},
                },
                "analyzer": {
                    "sieve_cjk": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["cjk_width", "lowercase", "cjk_bigram"],
                    },
                    "sieve_english": {
                        "type": "custom",
                        "tokenizer": "standard",
                        "filter": ["sieve_english_possessive", "lowercase", "sieve_english_stop", "sieve_english_stemmer"],
                    },
                },
            },
        },
        "mappings": {"dynamic": "strict" if strict else True, "properties": properties},
    }


def ensure_index(client: OpenSearch, name: str, dimension: int, **options: Any) -> bool:
    """Create the index if missing (returns True if created). An existing index must have the same vector
    dimension and engine; anything else is a ConfigError naming the difference."""
    body = index_body(dimension, **options)
    try:
        client.indices.create(index=name, body=body)
        return True
    except RequestError as exc:
        if _error_type(exc) != "resource_already_exists_exception":
            raise ServiceError(f"opensearch: creating index {name!r} failed: {_error_reason(exc)}") from exc
    mapping = client.indices.get_mapping(index=name)
    props = next(iter(mapping.values()))["mappings"].get("properties", {})
    vec = props.get(VECTOR_FIELD, {})
    problems = []
    if vec.get("type") != "knn_vector":
        problems.append(f"{VECTOR_FIELD}: existing type {vec.get('type')!r}, expected knn_vector")
    elif int(vec.get("dimension", -1)) != dimension:
        problems.append(f"{VECTOR_FIELD}: existing dimension {vec.get('dimension')}, configured {dimension}")
    elif vec.get("method", {}).get("engine") not in (None, "lucene"):
        problems.append(f"{VECTOR_FIELD}: existing engine {vec['method']['engine']!r}, expected lucene")
    for f in ("role", "id"):
        if props.get(f, {}).get("type") != "keyword":
            problems.append(f"{f}: existing type {props.get(f, {}).get('type')!r}, expected keyword")
    if problems:
        raise ConfigError(f"opensearch index {name}", problems)
    return False


def ensure_template(client: OpenSearch, template_name: str, pattern: str, dimension: int, **options: Any) -> None:
    """A composable index template with the same layout, for indices created on first write (e.g. per day)."""
    body = index_body(dimension, **options)
    client.indices.put_index_template(
        name=template_name,
        body={"index_patterns": [pattern], "template": {"settings": body["settings"], "mappings": body["mappings"]}},
    )


# ------------------------------------------------------------------------------------------------ bulk

@dataclass
class BulkResult(WriteResult):
    """Every input item lands in exactly one of succeeded / rejected / stale (the port's WriteResult)."""

    retried: int = 0  # item retries caused by 429/5xx (whole-request retries count each item)

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def total(self) -> int:
        return len(self.succeeded) + len(self.rejected) + len(self.stale)

    def merge(self, other: BulkResult) -> BulkResult:
        self.succeeded += other.succeeded
        self.rejected += other.rejected
        self.stale += other.stale
        self.retried += other.retried
        return self

    def summary(self) -> str:
        return f"{len(self.succeeded)} succeeded, {len(self.rejected)} rejected, {len(self.stale)} stale (skipped), {self.retried} retried"


@dataclass(frozen=True, slots=True)
class _Op:
    key: str  # the id reported back (or "#<position>" when the item had no usable id)
    action: dict[str, Any]
    source: dict[str, Any] | None


class BulkWriter:
    """Bulk index/delete with per-item accounting, backoff on 429/5xx and external versioning."""

    def __init__(
        self,
        client: OpenSearch,
        *,
        max_retries: int = 6,
        initial_backoff: float = 0.2,
        max_backoff: float = 10.0,
        chunk_items: int = 500,
        chunk_bytes: int = 5 * 1024 * 1024,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.client = client
        self.max_retries = max_retries
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.chunk_items = chunk_items
        self.chunk_bytes = chunk_bytes
        self.sleep = sleep
        Backoff(initial_backoff, max_backoff, max_retries)  # a bad number fails here, not at the first write

    # -- public

    def index(
        self,
        index: str,
        docs: Iterable[Mapping[str, Any]],
        *,
        id_field: str = "id",
        version_field: str | None = None,
        refresh: bool | str = False,
    ) -> BulkResult:
        """Index documents. Each needs `id_field`; with `version_field` the value there (not stored) is the
        document's external version: a write whose version is not newer than the stored one is stale."""
        result = BulkResult()
        ops: list[_Op] = []
        for pos, doc in enumerate(docs):
            doc = dict(doc)
            version = doc.pop(version_field, None) if version_field else None
            raw_id = doc.get(id_field)
            if raw_id is None or str(raw_id) == "":
                result.rejected.append((f"#{pos}", f"missing {id_field!r}"))
                continue
            doc_id = str(raw_id)
            action: dict[str, Any] = {"_index": index, "_id": doc_id}
            if version_field:
                problem = _check_version(version)
                if problem:
                    result.rejected.append((doc_id, f"{version_field}: {problem}"))
                    continue
                action.update(version=int(version), version_type="external")
            ops.append(_Op(doc_id, {"index": action}, doc))
        return result.merge(self._run(ops, refresh))

    def delete(
        self,
        index: str,
        ids: Iterable[str] | Mapping[str, int],
        *,
        refresh: bool | str = False,
    ) -> BulkResult:
        """Delete by id. Give a mapping id -> version for external versioning (a stale delete is skipped).
        Deleting a document that is not there counts as succeeded (deletes are idempotent)."""
        result = BulkResult()
        versioned = isinstance(ids, Mapping)
        ops: list[_Op] = []
        items = ids.items() if versioned else ((i, None) for i in ids)
        for pos, (doc_id, version) in enumerate(items):
            if doc_id is None or str(doc_id) == "":
                result.rejected.append((f"#{pos}", "missing id"))
                continue
            action: dict[str, Any] = {"_index": index, "_id": str(doc_id)}
            if versioned:
                problem = _check_version(version)
                if problem:
                    result.rejected.append((str(doc_id), f"version: {problem}"))
                    continue
                action.update(version=int(version), version_type="external")
            ops.append(_Op(str(doc_id), {"delete": action}, None))
        return result.merge(self._run(ops, refresh))

    # -- internals

    def _run(self, ops: list[_Op], refresh: bool | str) -> BulkResult:
        result = BulkResult()
        for chunk in self._chunks(ops):
            result.merge(self._send_with_retries(chunk))
        if refresh and ops:
            indices = sorted({op.action[next(iter(op.action))]["_index"] for op in ops})
            self.client.indices.refresh(index=",".join(indices))
        return result

    def _chunks(self, ops: list[_Op]) -> Iterable[list[_Op]]:
        return bounded_batches(ops, max_items=self.chunk_items, max_bytes=self.chunk_bytes, size=_op_bytes)

    def _send_with_retries(self, ops: list[_Op]) -> BulkResult:
        # Built per call from the attributes, so a caller that tunes them on a live writer is heeded.
        backoff = Backoff(self.initial_backoff, self.max_backoff, self.max_retries, sleep=self.sleep)
        result = BulkResult()
        pending = ops
        last_reason = ""
        for attempt in backoff.attempts():
            if attempt:
                result.retried += len(pending)
            body: list[dict[str, Any]] = []
            for op in pending:
                body.append(op.action)
                if op.source is not None:
                    body.append(op.source)
            retry: list[_Op] = []
            try:
                resp = self.client.bulk(body=body)
            except TransportError as exc:
                status = exc.status_code if isinstance(exc.status_code, int) else None
                if status in RETRYABLE_STATUS or isinstance(exc, OSConnectionError):
                    retry = pending
                    last_reason = f"HTTP {exc.status_code}: {_error_reason(exc)}"
                else:  # the whole request was refused (e.g. 400 on a malformed body): every item carries the reason
                    reason = f"bulk request refused: HTTP {exc.status_code}: {_error_reason(exc)}"
                    result.rejected += [(op.key, reason) for op in pending]
                    return result
            else:
                items = resp.get("items", [])
                if len(items) != len(pending):  # never trust a short answer: nothing may be lost silently
                    reason = f"bulk answered {len(items)} items for {len(pending)} sent"
                    result.rejected += [(op.key, reason) for op in pending]
                    return result
                for op, item in zip(pending, items):
                    (_, info), = item.items()
                    status = int(info.get("status", 0))
                    error = info.get("error")
                    is_delete = "delete" in op.action
                    if 200 <= status < 300 or (is_delete and status == 404 and not error):
                        result.succeeded.append(op.key)
                    elif status == 409 and _is_versioned(op) and _error_type_of(error) == "version_conflict_engine_exception":
                        result.stale.append(op.key)
                    elif status in RETRYABLE_STATUS:
                        retry.append(op)
                        last_reason = f"HTTP {status}: {_describe(error)}"
                    else:
                        result.rejected.append((op.key, f"HTTP {status}: {_describe(error)}"))
            if not retry:
                break
            pending = retry
        else:
            result.rejected += [(op.key, f"gave up after {self.max_retries} retries: {last_reason}") for op in pending]
        return result


def bulk_index(client: OpenSearch, index: str, docs: Iterable[Mapping[str, Any]], **kwargs: Any) -> BulkResult:
    """Shorthand for `BulkWriter(client).index(...)`; see there."""
    writer_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in {"max_retries", "initial_backoff", "max_backoff", "chunk_items", "chunk_bytes", "sleep"}}
    return BulkWriter(client, **writer_kwargs).index(index, docs, **kwargs)


def delete(client: OpenSearch, index: str, ids: Iterable[str] | Mapping[str, int], **kwargs: Any) -> BulkResult:
    """Shorthand for `BulkWriter(client).delete(...)`; see there."""
    writer_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in {"max_retries", "initial_backoff", "max_backoff", "chunk_items", "chunk_bytes", "sleep"}}
    return BulkWriter(client, **writer_kwargs).delete(index, ids, **kwargs)


# ------------------------------------------------------------------------------------------------ search

@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    fields: dict[str, Any]
    knn_rank: int | None = None  # 1-based rank in the k-NN list (hybrid only)
    bm25_rank: int | None = None  # 1-based rank in the BM25 list (hybrid only)


SEARCH_TEXT_FIELDS = ("question^2", "question.en^2", "answer", "answer.en")


def _role_filter(role: str | Sequence[str]) -> dict[str, Any]:
    roles = [role] if isinstance(role, str) else list(role)
    if not roles or any(not isinstance(r, str) or not r for r in roles):
        raise ValueError("role: a non-empty role (or list of roles) is required for every search")
    return {"term": {"role": roles[0]}} if len(roles) == 1 else {"terms": {"role": roles}}


def knn_query(vector: Sequence[float], role: str | Sequence[str], k: int) -> dict[str, Any]:
    """k-NN with an efficient filter: the role filter is inside the knn clause (Lucene engine), so the
    graph search only considers that role's documents and still returns k of them."""
    return {
        "size": k,
        "_source": {"excludes": [VECTOR_FIELD]},
        "query": {"knn": {VECTOR_FIELD: {"vector": [float(x) for x in vector], "k": k, "filter": _role_filter(role)}}},
    }


def bm25_query(text: str, role: str | Sequence[str], k: int) -> dict[str, Any]:
    return {
        "size": k,
        "_source": {"excludes": [VECTOR_FIELD]},
        "query": {
            "bool": {
                "must": [{"multi_match": {"query": text, "fields": list(SEARCH_TEXT_FIELDS), "type": "best_fields"}}],
                "filter": [_role_filter(role)],
            }
        },
    }


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], *, rank_constant: int = 60) -> list[tuple[str, float]]:
    """Fuse ranked id lists: score(d) = sum 1/(rank_constant + rank). Ties break by id, so it is deterministic."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, start=1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (rank_constant + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def search(
    client: OpenSearch,
    index: str,
    *,
    role: str | Sequence[str],
    k: int = 10,
    vector: Sequence[float] | None = None,
    text: str | None = None,
    candidates: int | None = None,
    rank_constant: int = 60,
) -> list[Hit]:
    """Role-filtered search. `vector` only: filtered k-NN. `text` only: BM25. Both: hybrid, i.e. BM25 and
    k-NN (each `candidates` deep, default max(2k, 20)) in one _msearch, fused with reciprocal rank fusion."""
    if k < 1:
        raise ValueError("k must be >= 1")
    if vector is None and not text:
        raise ValueError("give a vector, a text, or both")
    if vector is not None and not text:
        return _hits(_checked(client.search(index=index, body=knn_query(vector, role, k))))
    if vector is None:
        return _hits(_checked(client.search(index=index, body=bm25_query(text or "", role, k))))

    depth = candidates or max(2 * k, 20)
    body = [{"index": index}, knn_query(vector, role, depth), {"index": index}, bm25_query(text or "", role, depth)]
    resp = client.msearch(body=body)
    knn_resp, bm25_resp = (_checked(r) for r in resp["responses"])
    knn_hits, bm25_hits = _hits(knn_resp), _hits(bm25_resp)
    fields: dict[str, dict[str, Any]] = {}
    for h in bm25_hits + knn_hits:
        fields.setdefault(h.id, h.fields)
    knn_rank = {h.id: i for i, h in enumerate(knn_hits, start=1)}
    bm25_rank = {h.id: i for i, h in enumerate(bm25_hits, start=1)}
    fused = reciprocal_rank_fusion([[h.id for h in knn_hits], [h.id for h in bm25_hits]], rank_constant=rank_constant)
    return [
        Hit(id=doc_id, score=score, fields=fields[doc_id], knn_rank=knn_rank.get(doc_id), bm25_rank=bm25_rank.get(doc_id))
        for doc_id, score in fused[:k]
    ]


class OpenSearchIndex:
    """Convenience wrapper binding a client, an index name and its dimension."""

    def __init__(self, client: OpenSearch, name: str, dimension: int, **index_options: Any):
        self.client, self.name, self.dimension, self.index_options = client, name, dimension, index_options
        self.writer = BulkWriter(client)

    @classmethod
    def from_config(cls, config: OpenSearchConfig | Mapping[str, Any] | None, name: str, dimension: int, **options: Any) -> OpenSearchIndex:
        return cls(make_client(config), name, dimension, **options)

    def ensure(self) -> bool:
        return ensure_index(self.client, self.name, self.dimension, **self.index_options)

    def bulk_index(self, docs: Iterable[Mapping[str, Any]], **kwargs: Any) -> BulkResult:
        return self.writer.index(self.name, docs, **kwargs)

    def delete(self, ids: Iterable[str] | Mapping[str, int], **kwargs: Any) -> BulkResult:
        return self.writer.delete(self.name, ids, **kwargs)

    def search(self, *, role: str | Sequence[str], k: int = 10, vector: Sequence[float] | None = None, text: str | None = None, **kwargs: Any) -> list[Hit]:
        return search(self.client, self.name, role=role, k=k, vector=vector, text=text, **kwargs)

    def refresh(self) -> None:
        self.client.indices.refresh(index=self.name)

    def drop(self) -> None:
        try:
            self.client.indices.delete(index=self.name)
        except NotFoundError:
            pass


# ------------------------------------------------------------------------------------------------ helpers

def _checked(resp: Mapping[str, Any]) -> Mapping[str, Any]:
    if "error" in resp:  # an _msearch item that failed
        raise ServiceError(f"opensearch search failed: {_describe(resp['error'])}")
    shards = resp.get("_shards", {})
    if shards.get("failed"):
        reasons = "; ".join(_describe(f.get("reason")) for f in shards.get("failures", []))
        raise ServiceError(f"opensearch search: {shards['failed']} shard(s) failed: {reasons}")
    return resp


def _hits(resp: Mapping[str, Any]) -> list[Hit]:
    return [Hit(id=h["_id"], score=float(h.get("_score") or 0.0), fields=dict(h.get("_source") or {})) for h in resp["hits"]["hits"]]


def _check_version(version: Any) -> str | None:
    """None if `version` is a usable external version (an int, or a string of digits), else the problem."""
    if version is None:
        return "missing (external versioning needs a version per item)"
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version.strip())
    if isinstance(version, bool) or not isinstance(version, int):
        return f"{version!r} is not an integer"
    if not 0 <= version <= MAX_EXTERNAL_VERSION:
        return f"{version} is outside 0..2^63-1"
    return None


def _op_bytes(op: _Op) -> int:
    """An op's share of the _bulk body: its action line plus its source line."""
    return len(json.dumps(op.action)) + (len(json.dumps(op.source, default=str)) if op.source is not None else 0)


def _is_versioned(op: _Op) -> bool:
    (_, meta), = op.action.items()
    return meta.get("version_type") == "external"


def _error_type_of(error: Any) -> str:
    return error.get("type", "") if isinstance(error, Mapping) else ""


def _describe(error: Any) -> str:
    """`type: reason` plus the innermost cause, e.g. a mapper_parsing_exception's field problem."""
    if not isinstance(error, Mapping):
        return str(error) if error else "unknown error"
    text = f"{error.get('type', 'error')}: {error.get('reason', '')}".strip()
    cause = error.get("caused_by")
    while isinstance(cause, Mapping):
        text += f" (caused by {cause.get('type', '')}: {cause.get('reason', '')})"
        cause = cause.get("caused_by")
    return text


def _error_info(exc: TransportError) -> Mapping[str, Any]:
    info = exc.info if isinstance(exc.info, Mapping) else {}
    err = info.get("error")
    return err if isinstance(err, Mapping) else {}


def _error_type(exc: TransportError) -> str:
    return str(_error_info(exc).get("type", exc.error))


def _error_reason(exc: TransportError) -> str:
    err = _error_info(exc)
    return _describe(err) if err else str(exc.error or exc)


# --------------------------------------------------------------------------------------- the FAQ ports


#: extra mapping for the FAQ role indexes (the index layout is strict)
FAQ_EXTRA_PROPERTIES = {"lang": {"type": "keyword"}}
_INDEX_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-.+]*$")


class OpenSearchFaqIndex:
    """The FaqIndex port: one index ``<index_prefix><role>`` per role, written with external versions
    through `BulkWriter` (per-item results, backoff on 429/5xx)."""

    def __init__(self, client: OpenSearch, index_prefix: str, roles: Sequence[str], dimension: int, *,
                 writer: BulkWriter | None = None):
        bad = [f"'{index_prefix}{r}'" for r in roles if not _INDEX_NAME.match(f"{index_prefix}{r}")]
        if bad:
            raise ValueError(f"{', '.join(bad)}: not valid OpenSearch index names (lowercase letters, digits, - _ . +)")
        self.client, self.index_prefix, self.roles, self.dimension = client, index_prefix, sorted(roles), dimension
        self.writer = writer or BulkWriter(client, max_retries=3, initial_backoff=0.2, max_backoff=2.0)
        self.ensured = False  # set once the indexes exist (cold start)

    def name(self, role: str) -> str:
        return f"{self.index_prefix}{role}"

    def ensure(self) -> None:
        if self.ensured:
            return
        for role in self.roles:
            ensure_index(self.client, self.name(role), self.dimension, extra_properties=FAQ_EXTRA_PROPERTIES)
        self.ensured = True

    def upsert(self, role: str, document: dict, version: int) -> BulkResult:
        return self.writer.index(self.name(role), [{**document, "_v": version}], version_field="_v")

    def delete(self, role: str, doc_id: str, version: int) -> BulkResult:
        return self.writer.delete(self.name(role), {doc_id: version})


class OpenSearchRetriever:
    """Hybrid retrieval from ``<index_prefix><role>``, filtered to the record roles that index role may see.

    BM25 and filtered k-NN run in one `_msearch` (the adapter's query builders), fused with the adapter's
    reciprocal rank fusion. Every candidate also gets its cosine similarity to the question, computed
    from the stored vector, so BM25-only candidates are gated on the same scale as k-NN ones."""

    def __init__(self, client: OpenSearch, embedder: Embedder, index_prefix: str, roles: Mapping[str, Sequence[str]],
                 *, rank_constant: int = 60):
        self.client, self.embedder, self.index_prefix, self.rank_constant = client, embedder, index_prefix, rank_constant
        self.roles = {k: list(v) for k, v in roles.items()}

    def retrieve(self, question: str, role: str, k: int) -> list[Candidate]:
        if role not in self.roles or not self.roles[role]:  # fail closed: an unknown role sees nothing
            raise ValueError(f"role {role!r} is not an index role ({', '.join(sorted(self.roles))})")
        visible = self.roles[role]
        index = f"{self.index_prefix}{role}"
        qvec = [float(x) for x in self.embedder.embed([question])[0]]
        depth = max(2 * k, 20)
        queries = [knn_query(qvec, visible, depth), bm25_query(question, visible, depth)]
        for q in queries:
            q["_source"] = True  # the stored vector too: the similarity of every candidate
        body: list[dict] = []
        for q in queries:
            body += [{"index": index}, q]
        responses = self.client.msearch(body=body)["responses"]
        ranked: list[list[dict]] = []
        for r in responses:
            if "error" in r:
                err = r["error"] if isinstance(r["error"], Mapping) else {}
                if err.get("type") == "index_not_found_exception":
                    return []  # nothing was ever indexed for this role
                raise ServiceError(f"opensearch search in {index} failed: {str(r['error'])[:300]}")
            ranked.append(r["hits"]["hits"])
        sources: dict[str, dict] = {}
        for hits in ranked:
            for h in hits:
                sources.setdefault(h["_id"], h.get("_source") or {})
        knn_rank = {h["_id"]: i for i, h in enumerate(ranked[0], start=1)}
        bm25_rank = {h["_id"]: i for i, h in enumerate(ranked[1], start=1)}
        fused = reciprocal_rank_fusion([[h["_id"] for h in ranked[0]], [h["_id"] for h in ranked[1]]],
                                       rank_constant=self.rank_constant)
        out = []
        for doc_id, score in fused:
            src = sources[doc_id]
            if src.get("role") not in visible:  # the index filter already did this; never trust one guard
                continue
            out.append(Candidate(
                id=doc_id, question=str(src.get("question", "")), answer=str(src.get("answer", "")),
                source_url=str(src.get("source_url", "")), lang=str(src.get("lang", "")), role=str(src.get("role")),
                similarity=cosine(qvec, src.get(VECTOR_FIELD) or []), fused=score,
                knn_rank=knn_rank.get(doc_id), bm25_rank=bm25_rank.get(doc_id),
            ))
        return out


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    if not a or len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
