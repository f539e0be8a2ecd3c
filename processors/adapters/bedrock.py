"""Amazon Bedrock adapters: `BedrockConverseAnalyser` (chat through Converse) and `BedrockTitanEmbedder`.

Both take an injected boto3 `bedrock-runtime` client or create one plainly, so AWS_ENDPOINT_URL,
region and profile are honoured; locally they talk to `sieve models serve`
(processors/runtime/bedrock_local.py), which speaks the same wire protocol.

Vendor errors become ours: throttling -> `ModelThrottled`, timeouts -> `ModelTimeout`, anything else
-> `ModelCallError` (all three defined in processors/ports.py). The pipeline decides what to do with
each (retry later, count, fall back).
"""

from __future__ import annotations

import json
from typing import Any, Literal, Sequence

from processors.ports import ModelCallError, ModelReply, ModelThrottled, ModelTimeout

__all__ = [
    "BedrockConverseAnalyser", "BedrockTitanEmbedder", "ModelCallError", "ModelReply", "ModelThrottled", "ModelTimeout",
    "TITAN_EMBED_V2", "TITAN_V2_DIMENSIONS",
]

TITAN_EMBED_V2 = "amazon.titan-embed-text-v2:0"
TITAN_V2_DIMENSIONS = (256, 512, 1024)

_THROTTLE_CODES = frozenset(
    {"ThrottlingException", "ServiceQuotaExceededException", "TooManyRequestsException", "ServiceUnavailableException"}
)
_TIMEOUT_CODES = frozenset({"ModelTimeoutException", "RequestTimeout", "RequestTimeoutException"})


def _bedrock_client(timeout_s: float, max_attempts: int):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "bedrock-runtime",
        config=Config(read_timeout=timeout_s, connect_timeout=10, retries={"mode": "standard", "max_attempts": max_attempts}),
    )


def _translate(exc: Exception, what: str, timeout_s: float) -> ModelCallError:
    from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

    if isinstance(exc, (ReadTimeoutError, ConnectTimeoutError)):
        return ModelTimeout(f"{what}: no answer within {timeout_s}s ({type(exc).__name__})")
    if isinstance(exc, EndpointConnectionError):
        return ModelCallError(f"{what}: cannot reach the endpoint ({exc}); is `sieve models serve` running / AWS_ENDPOINT_URL right?")
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code, message = err.get("Code", "?"), err.get("Message", "")
        if code in _THROTTLE_CODES:
            return ModelThrottled(f"{what}: throttled ({code}: {message}); retry later")
        if code in _TIMEOUT_CODES:
            return ModelTimeout(f"{what}: {code}: {message}")
        return ModelCallError(f"{what}: {code}: {message}")
    return ModelCallError(f"{what}: {type(exc).__name__}: {exc}")


class BedrockConverseAnalyser:
    """`Analyser` over bedrock-runtime Converse.

    `schema_mode` says how a JSON Schema reaches the model:
    - "output_config" (default): Converse `outputConfig.textFormat` (structured output, json_schema);
      the local endpoint enforces it with a grammar; on AWS only models with structured-output support
      accept it.
    - "additional_fields": `additionalModelRequestFields={"json_schema": schema}` (local endpoint only).
    - "prompt": the schema is appended to the system prompt; the caller must validate the answer (it
      always must anyway)."""

    def __init__(
        self,
        model_id: str,
        *,
        client: Any = None,
        timeout_s: float = 60.0,
        max_attempts: int = 3,
        temperature: float = 0.0,
        schema_mode: Literal["output_config", "additional_fields", "prompt"] = "output_config",
    ):
        if schema_mode not in ("output_config", "additional_fields", "prompt"):
            raise ValueError(f"BedrockConverseAnalyser: unknown schema_mode {schema_mode!r}")
        self.model_id = model_id
        self.timeout_s = timeout_s
        self.temperature = temperature
        self.schema_mode = schema_mode
        self._client = client or _bedrock_client(timeout_s, max_attempts)

    def complete(self, system: str, user: str, *, max_tokens: int, json_schema: dict | None = None) -> ModelReply:
        request: dict[str, Any] = {
            "modelId": self.model_id,
            "messages": [{"role": "user", "content": [{"text": user}]}],
            "system": [{"text": system}],
            "inferenceConfig": {"maxTokens": int(max_tokens), "temperature": self.temperature},
        }
        if json_schema is not None:
            if self.schema_mode == "output_config":
                request["outputConfig"] = {
                    "textFormat": {
                        "type": "json_schema",
                        "structure": {"jsonSchema": {"schema": json.dumps(json_schema), "name": "answer"}},
                    }
                }
            elif self.schema_mode == "additional_fields":
                request["additionalModelRequestFields"] = {"json_schema": json_schema}
            else:
                request["system"] = [
                    {"text": f"{system}\n\nAnswer with one JSON object that validates against this JSON Schema:\n"
                     f"{json.dumps(json_schema)}"}
                ]
        try:
            resp = self._client.converse(**request)
        except Exception as exc:
            raise _translate(exc, f"bedrock converse {self.model_id}", self.timeout_s) from exc
        try:
            blocks = resp["output"]["message"]["content"]
            text = "".join(b.get("text", "") for b in blocks)
            usage = resp["usage"]
            return ModelReply(
                text=text,
                model_id=self.model_id,
                tokens_in=int(usage["inputTokens"]),
                tokens_out=int(usage["outputTokens"]),
                latency_ms=int(resp.get("metrics", {}).get("latencyMs", 0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCallError(f"bedrock converse {self.model_id}: unexpected response shape: {str(resp)[:300]}") from exc


class BedrockTitanEmbedder:
    """`Embedder` over Titan Text Embeddings V2 (`InvokeModel`, one text per call as the API requires)."""

    def __init__(
        self,
        *,
        model_id: str = TITAN_EMBED_V2,
        dimension: int = 512,
        normalize: bool = True,
        client: Any = None,
        timeout_s: float = 30.0,
        max_attempts: int = 3,
    ):
        if model_id == TITAN_EMBED_V2 and dimension not in TITAN_V2_DIMENSIONS:
            raise ValueError(f"BedrockTitanEmbedder: Titan V2 supports dimensions {TITAN_V2_DIMENSIONS}, got {dimension}")
        self.model_id = model_id
        self.dimension = dimension
        self.normalize = normalize
        self.timeout_s = timeout_s
        self._client = client or _bedrock_client(timeout_s, max_attempts)
        self.input_tokens = 0  # running total, for budgets and metrics

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if isinstance(texts, str):
            raise TypeError("BedrockTitanEmbedder.embed takes a sequence of strings, not one string")
        out = []
        for text in texts:
            body = json.dumps({"inputText": text, "dimensions": self.dimension, "normalize": self.normalize})
            try:
                resp = self._client.invoke_model(
                    modelId=self.model_id, body=body, contentType="application/json", accept="application/json"
                )
                payload = json.loads(resp["body"].read())
            except Exception as exc:
                raise _translate(exc, f"bedrock invoke_model {self.model_id}", self.timeout_s) from exc
            vector = payload.get("embedding")
            if not isinstance(vector, list) or len(vector) != self.dimension:
                got = len(vector) if isinstance(vector, list) else type(vector).__name__
                raise ModelCallError(f"bedrock invoke_model {self.model_id}: expected a {self.dimension}-d embedding, got {got}")
            self.input_tokens += int(payload.get("inputTextTokenCount", 0))
            out.append([float(x) for x in vector])
        return out
