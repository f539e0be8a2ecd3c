"""ml-commons remote models on OpenSearch: Bedrock connectors (aws_sigv4), model registration, predict.

The same code talks to Amazon Bedrock (endpoint https://bedrock-runtime.<region>.amazonaws.com, the
default) or to a Bedrock-compatible endpoint on loopback for local runs and tests (`endpoint=
"http://127.0.0.1:<port>"`; call `configure_cluster(..., local=True)` first so ml-commons trusts it).

`MLCommonsAnalyser` implements processors.ports.Analyser over a Converse connector: one system prompt +
one user text in, a ModelReply out. `MLCommonsEmbedder` implements processors.ports.Embedder over a Titan
embedding connector.

Pipelines (ml-commons only; neural-search is not on the local node):
  * ingest: `ml_inference` processor (fills an embedding field from a text field with a remote model)
  * search: `retrieval_augmented_generation` response processor (RAG), with a `bedrock-converse/` model
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from processors.errors import ServiceError
from processors.ports import ModelReply

try:
    from opensearchpy import OpenSearch
    from opensearchpy.exceptions import TransportError
except ImportError as exc:  # pragma: no cover
    raise ImportError("processors.adapters.mlcommons needs opensearch-py: pip install 'sieve-streams[opensearch]'") from exc

ML = "/_plugins/_ml"
LOCAL_ENDPOINT_REGEX = r"^http://127\.0\.0\.1:[0-9]+/.*$"


@dataclass(frozen=True, slots=True)
class AwsCredential:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def as_connector_credential(self) -> dict[str, str]:
        cred = {"access_key": self.access_key, "secret_key": self.secret_key}
        if self.session_token:
            cred["session_token"] = self.session_token
        return cred


@dataclass(frozen=True, slots=True)
class RoleCredential:
    """What a connector uses on Amazon OpenSearch Service: an IAM role the domain assumes
    (trusted by opensearchservice.amazonaws.com, allowed bedrock:InvokeModel on the model only), so no
    static key is ever stored in the connector. Registering it needs iam:PassRole on that role."""

    role_arn: str

    def __post_init__(self) -> None:
        if not self.role_arn.startswith("arn:") or ":role/" not in self.role_arn:
            raise ValueError(f"role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), got {self.role_arn!r}")

    def as_connector_credential(self) -> dict[str, str]:
        return {"roleArn": self.role_arn}


Credential = AwsCredential | RoleCredential


def connector_credential(*, role_arn: str | None = None, local: bool = False) -> Credential:
    """The connector credential for where the cluster runs: on AWS an IAM role (`role_arn`, or
    SIEVE_ML_CONNECTOR_ROLE_ARN, which the SAM template sets); static keys only for a local node, which
    cannot assume a role (any keys do for the local Bedrock-compatible endpoint)."""
    import os

    role_arn = role_arn or os.environ.get("SIEVE_ML_CONNECTOR_ROLE_ARN") or None
    if role_arn:
        return RoleCredential(role_arn)
    if not local:
        raise ValueError("an ml-commons connector on AWS needs an IAM role: set SIEVE_ML_CONNECTOR_ROLE_ARN "
                         "(the template's MlConnectorRoleArn output); static keys are for a local node only")
    return AwsCredential("local", "local")


def bedrock_endpoint(region: str) -> str:
    return f"https://bedrock-runtime.{region}.amazonaws.com"


# ------------------------------------------------------------------------------------------- cluster

def configure_cluster(
    client: OpenSearch,
    *,
    local: bool = False,
    trusted_endpoints: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Persistent ml-commons settings. local=True trusts http://127.0.0.1:<port>, allows private IPs, lets
    the single data node run models and turns the heap/disk breakers off (a 1 GB test node trips them)."""
    settings: dict[str, Any] = {"plugins.ml_commons.only_run_on_ml_node": False}
    if trusted_endpoints is not None:
        settings["plugins.ml_commons.trusted_connector_endpoints_regex"] = list(trusted_endpoints)
    if local:
        current = trusted_endpoints if trusted_endpoints is not None else [LOCAL_ENDPOINT_REGEX]
        settings.update(
            {
                "plugins.ml_commons.trusted_connector_endpoints_regex": list(current),
                "plugins.ml_commons.connector.private_ip_enabled": True,
                "plugins.ml_commons.jvm_heap_memory_threshold": 100,
                "plugins.ml_commons.native_memory_threshold": 100,
                "plugins.ml_commons.disk_free_space_threshold": -1,
            }
        )
    settings.update(extra or {})
    _call(client, "PUT", "/_cluster/settings", {"persistent": settings})
    return settings


# ------------------------------------------------------------------------------------------- connectors

def bedrock_converse_connector_body(
    *, model: str, region: str, credential: Credential, endpoint: str | None = None, name: str = "Sieve Bedrock Converse"
) -> dict[str, Any]:
    """Bedrock Converse API (any chat model). Parameters at predict time: system_prompt, messages (a JSON
    array), max_tokens, temperature, top_p."""
    base = (endpoint or bedrock_endpoint(region)).rstrip("/")
    return {
        "name": name,
        "description": f"Bedrock Converse {model}",
        "version": 1,
        "protocol": "aws_sigv4",
        "parameters": {
            "region": region,
            "service_name": "bedrock",
            "model": model,
            "max_tokens": 512,
            "temperature": 0,
            "top_p": 1,
            "system_prompt": "You are a careful assistant.",
        },
        "credential": credential.as_connector_credential(),
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": base + "/model/${parameters.model}/converse",
                "headers": {"content-type": "application/json"},
                "request_body": (
                    '{ "system": [{"text": "${parameters.system_prompt}"}], "messages": ${parameters.messages}, '
                    '"inferenceConfig": {"temperature": ${parameters.temperature}, "topP": ${parameters.top_p}, '
                    '"maxTokens": ${parameters.max_tokens}} }'
                ),
            }
        ],
    }


def bedrock_titan_embedding_connector_body(
    *, model: str = "amazon.titan-embed-text-v1", region: str, credential: Credential, endpoint: str | None = None,
    name: str = "Sieve Bedrock Titan embedding", dimensions: int | None = None,
) -> dict[str, Any]:
    """Titan v1 takes only inputText; v2 (amazon.titan-embed-text-v2:0) also takes dimensions
    (256, 512 or 1024; 1024 when left out) and normalize."""
    base = (endpoint or bedrock_endpoint(region)).rstrip("/")
    body = '{ "inputText": "${parameters.inputText}" }'
    if dimensions is not None:
        body = '{ "inputText": "${parameters.inputText}", "dimensions": %d, "normalize": true }' % dimensions
    return {
        "name": name,
        "description": f"Bedrock embeddings {model}",
        "version": 1,
        "protocol": "aws_sigv4",
        "parameters": {"region": region, "service_name": "bedrock", "model": model},
        "credential": credential.as_connector_credential(),
        "actions": [
            {
                "action_type": "predict",
                "method": "POST",
                "url": base + "/model/${parameters.model}/invoke",
                "headers": {"content-type": "application/json", "x-amz-content-sha256": "required"},
                "request_body": body,
                "pre_process_function": "connector.pre_process.bedrock.embedding",
                "post_process_function": "connector.post_process.bedrock.embedding",
            }
        ],
    }


class MLCommons:
    """Thin client for the ml-commons REST API."""

    def __init__(self, client: OpenSearch, *, task_timeout: float = 120.0):
        self.client = client
        self.task_timeout = task_timeout

    def create_connector(self, body: Mapping[str, Any]) -> str:
        return _call(self.client, "POST", f"{ML}/connectors/_create", body)["connector_id"]

    def register_remote_model(self, name: str, connector_id: str, *, deploy: bool = True, description: str = "") -> str:
        """Register (and deploy) a remote model; waits for the task and returns the model id."""
        body = {"name": name, "function_name": "remote", "connector_id": connector_id, "description": description or name}
        resp = _call(self.client, "POST", f"{ML}/models/_register" + ("?deploy=true" if deploy else ""), body)
        model_id = resp.get("model_id")
        task = self.wait_task(resp["task_id"]) if resp.get("task_id") else {}
        model_id = model_id or task.get("model_id")
        if not model_id:
            raise ServiceError(f"ml-commons: register of {name!r} returned no model id: {resp} {task}")
        if deploy:
            self.wait_deployed(model_id)
        return model_id

    def deploy(self, model_id: str) -> None:
        resp = _call(self.client, "POST", f"{ML}/models/{model_id}/_deploy", None)
        if resp.get("task_id"):
            self.wait_task(resp["task_id"])
        self.wait_deployed(model_id)

    def wait_task(self, task_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.task_timeout
        while True:
            task = _call(self.client, "GET", f"{ML}/tasks/{task_id}", None)
            state = task.get("state")
            if state == "COMPLETED":
                return task
            if state in ("FAILED", "COMPLETED_WITH_ERROR", "CANCELLED"):
                raise ServiceError(f"ml-commons task {task_id} {state}: {task.get('error')}")
            if time.monotonic() > deadline:
                raise ServiceError(f"ml-commons task {task_id} still {state} after {self.task_timeout}s")
            time.sleep(0.3)

    def wait_deployed(self, model_id: str) -> None:
        deadline = time.monotonic() + self.task_timeout
        while True:
            state = _call(self.client, "GET", f"{ML}/models/{model_id}", None).get("model_state")
            if state == "DEPLOYED":
                return
            if state in ("DEPLOY_FAILED",):
                raise ServiceError(f"ml-commons model {model_id} {state}")
            if time.monotonic() > deadline:
                raise ServiceError(f"ml-commons model {model_id} still {state} after {self.task_timeout}s")
            time.sleep(0.3)

    def predict(self, model_id: str, parameters: Mapping[str, Any] | None = None, **body: Any) -> dict[str, Any]:
        payload: dict[str, Any] = dict(body)
        if parameters is not None:
            payload["parameters"] = dict(parameters)
        return _call(self.client, "POST", f"{ML}/models/{model_id}/_predict", payload)

    def undeploy_and_delete(self, model_id: str) -> None:
        for method, path in (("POST", f"{ML}/models/{model_id}/_undeploy"), ("DELETE", f"{ML}/models/{model_id}")):
            try:
                _call(self.client, method, path, None)
            except ServiceError:
                pass

    def delete_connector(self, connector_id: str) -> None:
        try:
            _call(self.client, "DELETE", f"{ML}/connectors/{connector_id}", None)
        except ServiceError:
            pass

    # -- pipelines

    def put_embedding_ingest_pipeline(self, pipeline_id: str, model_id: str, *, text_field: str, vector_field: str) -> None:
        """An ingest pipeline that fills `vector_field` from `text_field` with a remote Titan-style model
        (ml-commons' ml_inference processor; the model answers {"embedding": [...]})."""
        body = {
            "description": f"embed {text_field} -> {vector_field}",
            "processors": [
                {
                    "ml_inference": {
                        "model_id": model_id,
                        "input_map": [{"inputText": text_field}],
                        "output_map": [{vector_field: "embedding"}],
                        "ignore_missing": False,
                        "ignore_failure": False,
                    }
                }
            ],
        }
        _call(self.client, "PUT", f"/_ingest/pipeline/{pipeline_id}", body)

    def put_rag_search_pipeline(
        self, pipeline_id: str, model_id: str, *, context_fields: Sequence[str], system_prompt: str = "", user_instructions: str = ""
    ) -> None:
        proc: dict[str, Any] = {"model_id": model_id, "context_field_list": list(context_fields)}
        if system_prompt:
            proc["system_prompt"] = system_prompt
        if user_instructions:
            proc["user_instructions"] = user_instructions
        _call(self.client, "PUT", f"/_search/pipeline/{pipeline_id}", {"response_processors": [{"retrieval_augmented_generation": proc}]})


# ------------------------------------------------------------------------------------------- ports

class MLCommonsAnalyser:
    """processors.ports.Analyser over an ml-commons remote model built on a Converse connector."""

    def __init__(self, ml: MLCommons, model_id: str, *, model_name: str, temperature: float = 0.0):
        self.ml, self.model_id, self.model_name, self.temperature = ml, model_id, model_name, temperature

    def complete(self, system: str, user: str, *, max_tokens: int, json_schema: dict | None = None) -> ModelReply:
        if json_schema is not None:
            system = (
                f"{system}\n\nReply with exactly one JSON object that validates against this JSON Schema, "
                f"and nothing else:\n{json.dumps(json_schema, sort_keys=True)}"
            )
        params = {
            "system_prompt": system,
            "messages": [{"role": "user", "content": [{"text": user}]}],
            "max_tokens": int(max_tokens),
            "temperature": self.temperature,
        }
        t0 = time.monotonic()
        raw = self.ml.predict(self.model_id, params)
        latency = int((time.monotonic() - t0) * 1000)
        data = _first_output(raw)
        try:
            text = data["output"]["message"]["content"][0]["text"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ServiceError(f"ml-commons predict: no output.message.content[0].text in {json.dumps(data)[:500]}") from exc
        usage = data.get("usage") or {}
        return ModelReply(
            text=text,
            model_id=self.model_name,
            tokens_in=int(usage.get("inputTokens", 0)),
            tokens_out=int(usage.get("outputTokens", 0)),
            latency_ms=latency,
        )


class MLCommonsEmbedder:
    """processors.ports.Embedder over an ml-commons remote embedding model (Titan-style connector)."""

    def __init__(self, ml: MLCommons, model_id: str, *, dimension: int):
        self.ml, self.model_id, self.dimension = ml, model_id, dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        # One predict per text: the Bedrock embedding pre-process sends one document per request anyway,
        # and ml-commons 2.19 attaches a {parameters.inputText} input schema to Titan-style remote models.
        vectors: list[list[float]] = []
        for text in texts:
            raw = self.ml.predict(self.model_id, {"inputText": text})
            found = [
                [float(x) for x in out["data"]]
                for result in raw.get("inference_results", [])
                for out in result.get("output", [])
                if "data" in out
            ]
            if len(found) != 1:
                raise ServiceError(f"ml-commons embed: expected one vector, got {len(found)}: {json.dumps(raw)[:300]}")
            if len(found[0]) != self.dimension:
                raise ServiceError(f"ml-commons embed: got dimension {len(found[0])}, configured {self.dimension}")
            vectors.append(found[0])
        return vectors


# ------------------------------------------------------------------------------------------- helpers

def _first_output(raw: Mapping[str, Any]) -> dict[str, Any]:
    try:
        result = raw["inference_results"][0]
        out = result["output"][0]
    except (KeyError, IndexError, TypeError) as exc:
        raise ServiceError(f"ml-commons predict: unexpected answer {json.dumps(raw)[:500]}") from exc
    status = result.get("status_code", 200)
    if status and int(status) >= 300:
        raise ServiceError(f"ml-commons predict: remote answered {status}: {json.dumps(out)[:500]}")
    return out.get("dataAsMap") or {}


def _call(client: OpenSearch, method: str, path: str, body: Any) -> dict[str, Any]:
    try:
        return client.transport.perform_request(method, path, body=body)
    except TransportError as exc:
        detail = json.dumps(exc.info)[:800] if isinstance(exc.info, (dict, list)) else str(exc.info or exc.error)
        raise ServiceError(f"ml-commons {method} {path}: HTTP {exc.status_code}: {detail}") from exc
