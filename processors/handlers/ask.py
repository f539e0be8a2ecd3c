"""The ask handler: a Slack slash command behind API Gateway (HTTP API, payload v2) -> an FAQ answer.

    POST /slack/ask   (Slack: application/x-www-form-urlencoded, X-Slack-Signature, X-Slack-Request-Timestamp)

1. The request is verified before anything else: the timestamp must be within 5 minutes of now (replays
   are refused), and the signature must be slack-sdk's `SignatureVerifier` v0 HMAC of the raw body under
   the signing secret (Secrets Manager `pipelines.faq.slack_secret`, JSON key `slack_signing_key`, read
   through Powertools parameters and cached for 5 minutes). Failures answer 401 and say nothing more.
2. The Slack user is mapped to an index role (`pipelines.faq.slack_user_roles`, else `default_role`).
3. `processors.core.answer.answer` retrieves from that role's index only and answers with citations, or
   "not in the knowledge base" without calling a model.
4. The reply is Block Kit, ephemeral: the answer text escaped (&, <, >), the cited entries as links, and
   a context line that says whether a model wrote the text (which one, tokens) or Sieve listed entries.

Slack wants an answer within 3 s. Without a model, retrieval takes milliseconds and the answer is the
HTTP response. With a model the handler acknowledges at once ("looking it up") and hands the question
to an asynchronous run of itself (`{"sieve_ask": {...}}`: a Lambda `Event` invoke of this function on
AWS, a background thread locally), which posts the answer to the command's `response_url`. Only a
Slack `response_url` (https://hooks.slack.com/...) is ever posted to; outside Lambda a loopback URL is
allowed too, for local receivers.

`OpenSearchRetriever` (also used by `sieve faq ask`) implements the core's Retriever port.
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import parse_qs

from aws_lambda_powertools import Logger

from processors.config import LoadedConfig
from processors.core.answer import Answer, Candidate, answer
from processors.core.slack_blocks import escape
from processors.errors import ConfigError, ServiceError
from processors.handlers.container import PerContainer

logger = Logger(service="sieve-ask", logger_handler=None)

MAX_SKEW_SECONDS = 5 * 60
SECTION_LIMIT = 3000


# ------------------------------------------------------------------------------------ retrieval


class OpenSearchRetriever:
    """Hybrid retrieval from ``<index_prefix><role>``, filtered to the record roles that index role may see.

    BM25 and filtered k-NN run in one `_msearch` (the adapter's query builders), fused with the adapter's
    reciprocal rank fusion. Every candidate also gets its cosine similarity to the question, computed
    from the stored vector, so BM25-only candidates are gated on the same scale as k-NN ones."""

    def __init__(self, client: Any, embedder: Any, index_prefix: str, roles: Mapping[str, Sequence[str]],
                 *, rank_constant: int = 60):
        self.client, self.embedder, self.index_prefix, self.rank_constant = client, embedder, index_prefix, rank_constant
        self.roles = {k: list(v) for k, v in roles.items()}

    def retrieve(self, question: str, role: str, k: int) -> list[Candidate]:
        from processors.adapters.opensearch import VECTOR_FIELD, bm25_query, knn_query, reciprocal_rank_fusion

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


# ------------------------------------------------------------------------------------ Slack


def verify_slack(signing_secret: str, body: str, timestamp: str | None, signature: str | None,
                 *, now: Callable[[], float] = time.time) -> str | None:
    """None if the request is genuine and fresh, else the reason (for the log; the caller says only 401)."""
    from slack_sdk.signature import Clock, SignatureVerifier

    if not timestamp or not signature:
        return "missing X-Slack-Request-Timestamp or X-Slack-Signature"
    try:
        ts = int(timestamp)
    except ValueError:
        return "timestamp is not an integer"
    if abs(now() - ts) > MAX_SKEW_SECONDS:
        return f"stale timestamp ({int(now() - ts)} s old)"

    class _Clock(Clock):
        def now(self) -> float:  # the same clock for the skew check above and inside the verifier
            return now()

    if not SignatureVerifier(signing_secret, clock=_Clock()).is_valid(body, timestamp, signature):
        return "bad signature"
    return None


def blocks_for(result: Answer, role: str) -> dict:
    """The ephemeral Slack response: answer (escaped), cited entries as links, and what wrote it."""
    refs = result.citations if result.status == "answered" else result.entries
    if result.status == "answered":
        main = escape(result.text)
        who = f"Answer written by model {escape(result.model_id)} from {len(result.entries)} retrieved entries " \
              f"(tokens {result.tokens_in} in / {result.tokens_out} out); citations checked by Sieve."
    elif result.status == "not_found":
        main = escape(result.text)
        who = f"No model was called: no entry visible to role {escape(role)} is relevant enough."
    else:
        main = escape(result.text.split("\n", 1)[0])
        who = "Listed by Sieve without model text" + (f" ({escape(result.reason)})" if result.reason else "") + "."
    if len(main) > SECTION_LIMIT:
        main = main[: SECTION_LIMIT - 1] + "…"
    blocks: list[dict] = [{"type": "section", "block_id": "answer", "text": {"type": "mrkdwn", "text": main}}]
    if refs:
        links = "\n".join(f"<{r.source_url}|[{r.ref}] {escape(r.question)}>" for r in refs)
        if len(links) > SECTION_LIMIT:
            links = links[: SECTION_LIMIT - 1] + "…"
        blocks.append({"type": "section", "block_id": "sources", "text": {"type": "mrkdwn", "text": links}})
    blocks.append({"type": "context", "block_id": "provenance", "elements": [{"type": "mrkdwn", "text": who}]})
    return {"response_type": "ephemeral", "text": escape(result.text)[:SECTION_LIMIT], "blocks": blocks}


# ------------------------------------------------------------------------------------ runtime


@dataclass
class AskRuntime:
    retriever: Any
    analyser: Any
    top_k: int
    min_score: float
    user_roles: dict[str, str]
    default_role: str
    signing_secret: Callable[[], str]
    dispatch: Callable[[dict, Any], None] | None = None  # run a follow-up asynchronously (default: see _dispatch)

    @classmethod
    def from_config(cls, loaded: LoadedConfig, *, embedder: Any = None, client: Any = None, analyser: Any = None,
                    no_model: bool = False) -> "AskRuntime":
        from processors.handlers.faq import make_embedder, make_opensearch_client

        faq = loaded.config.pipelines.faq
        if faq is None:
            raise ConfigError("pipelines.yaml", ["pipelines.faq: not configured"])
        if analyser is None and faq.analyser is not None and faq.analyser.kind != "none" and not no_model:
            from processors.handlers.finaliser import make_analyser

            analyser = make_analyser(faq.analyser)
        client = client or make_opensearch_client(faq.opensearch, loaded.config.region)
        retriever = OpenSearchRetriever(client, embedder or make_embedder(faq.embedder), faq.opensearch.index_prefix, faq.roles)
        return cls(retriever, None if no_model else analyser, faq.top_k, faq.min_score, dict(faq.slack_user_roles),
                   faq.default_role, _secret_reader(faq.slack_secret, faq.slack_signing_key))

    def role_of(self, user_id: str | None) -> str:
        return self.user_roles.get(user_id or "", self.default_role)

    def ask(self, question: str, role: str) -> Answer:
        return answer(question, role, self.retriever, self.analyser, top_k=self.top_k, min_score=self.min_score)


def _secret_reader(name: str, key: str) -> Callable[[], str]:
    provider = None

    def read() -> str:
        nonlocal provider
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        from processors.adapters import aws

        if provider is None:
            provider = SecretsProvider(boto3_client=aws.client("secretsmanager"))
        value = provider.get(name, max_age=300)
        try:
            doc = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            doc = None
        secret = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(secret, str) or not secret:
            raise ConfigError("slack signing secret", [f"secret {name!r} has no string key {key!r}"])
        return secret

    return read


_runtime: PerContainer[AskRuntime] = PerContainer(AskRuntime.from_config)


def runtime() -> AskRuntime:
    return _runtime.get()


def reset_runtime(rt: AskRuntime | None = None) -> None:
    _runtime.reset(rt)


def _response(status: int, payload: dict | str) -> dict:
    if isinstance(payload, str):
        return {"statusCode": status, "headers": {"content-type": "text/plain; charset=utf-8"}, "body": payload}
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": json.dumps(payload, ensure_ascii=False)}


def _in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def _dispatch(payload: dict, context: Any) -> None:
    """Run the follow-up asynchronously: a Lambda Event invoke of this very function, or a thread."""
    if _in_lambda() and getattr(context, "invoked_function_arn", None):
        from processors.adapters import aws

        aws.client("lambda").invoke(FunctionName=context.invoked_function_arn, InvocationType="Event",
                                    Payload=json.dumps(payload).encode())
        return
    import threading

    threading.Thread(target=handler, args=(payload, context), name="sieve-ask-followup", daemon=True).start()


def allowed_response_url(url: str) -> bool:
    if url.startswith("https://hooks.slack.com/"):
        return True
    return not _in_lambda() and (url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:"))


def _follow_up(rt: AskRuntime, job: dict) -> dict:
    from slack_sdk.webhook import WebhookClient

    url = str(job.get("response_url") or "")
    if not allowed_response_url(url):
        logger.error("follow-up refused: not a Slack response_url", extra={"user": job.get("user")})
        return {"posted": False, "reason": "response_url is not a Slack URL"}
    result = rt.ask(str(job.get("question") or ""), str(job.get("role") or rt.default_role))
    _log_answer(job.get("user"), job.get("role"), result)
    resp = WebhookClient(url, timeout=10).send_dict(blocks_for(result, job.get("role") or rt.default_role))
    if resp.status_code >= 300:
        logger.error("follow-up post failed", extra={"status": resp.status_code})
        return {"posted": False, "status": resp.status_code}
    return {"posted": True, "status": resp.status_code, "answer": result.status}


def _log_answer(user, role, result: Answer) -> None:
    logger.info("faq answer", extra={"user": user, "role": role, "status": result.status, "reason": result.reason,
                                     "entries": [c.id for c in result.entries], "model": result.model_id,
                                     "prompt_sha256": result.prompt_sha256})


def handler(event: dict, context: Any, *, now: Callable[[], float] = time.time) -> dict:
    rt = runtime()
    if "sieve_ask" in event:  # the asynchronous half: only ever created below, after verification
        return _follow_up(rt, event["sieve_ask"])
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = event.get("body") or ""
    try:
        body = base64.b64decode(raw).decode("utf-8") if event.get("isBase64Encoded") else raw
    except (ValueError, UnicodeDecodeError):
        return _response(400, "bad request")
    problem = verify_slack(rt.signing_secret(), body, headers.get("x-slack-request-timestamp"),
                           headers.get("x-slack-signature"), now=now)
    if problem:
        logger.warning("slack request refused", extra={"reason": problem})
        return _response(401, "invalid request")
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    user = form.get("user_id", "")
    role = rt.role_of(user)
    question = form.get("text", "").strip()
    if not question:
        return _response(200, {"response_type": "ephemeral", "text": f"Usage: {escape(form.get('command', '/ask'))} your question"})
    if rt.analyser is not None:  # a model may take longer than Slack's 3 s: acknowledge, answer later
        job = {"question": question, "role": role, "user": user, "response_url": form.get("response_url", "")}
        (rt.dispatch or _dispatch)({"sieve_ask": job}, context)
        return _response(200, {"response_type": "ephemeral", "text": ":mag: Looking that up in the knowledge base…"})
    result = rt.ask(question, role)
    _log_answer(user, role, result)
    return _response(200, blocks_for(result, role))
