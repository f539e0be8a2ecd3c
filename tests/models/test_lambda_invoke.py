"""LambdaInvokeAnalyser against the moto server: a failing function becomes a typed error."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
import pytest

from processors.adapters.llama import LambdaInvokeAnalyser
from processors.ports import ModelCallError, ModelThrottled, TransientFailure


def _function(name: str, source: str) -> None:
    role = boto3.client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("h.py", source)
    boto3.client("lambda").create_function(
        FunctionName=name, Runtime="python3.12", Role=role, Handler="h.handler", Code={"ZipFile": buf.getvalue()}
    )


def test_function_error_becomes_model_call_error(aws):
    # With Docker, moto runs the function and it raises (FunctionError "Unhandled"); without Docker,
    # moto answers FunctionError "Handled" with its own message. Either way: a typed error, no reply.
    _function("sieve-llama", "def handler(event, context):\n    raise ValueError('event.max_tokens must be >= 1')\n")
    analyser = LambdaInvokeAnalyser("sieve-llama")
    with pytest.raises(ModelCallError, match=r"Lambda sieve-llama failed \((Handled|Unhandled|ValueError)\)"):
        analyser.complete("s", "u", max_tokens=4)


def test_missing_function_names_it(aws):
    analyser = LambdaInvokeAnalyser("no-such-function", client=boto3.client("lambda"))
    with pytest.raises(ModelCallError, match="no-such-function.*ResourceNotFoundException"):
        analyser.complete("s", "u", max_tokens=4)


class _Payload:
    def __init__(self, data: bytes):
        self._data = data

    def read(self) -> bytes:
        return self._data


class _FakeLambda:
    """An injected client: records the request, answers with a canned response or raises."""

    def __init__(self, response=None, error=None):
        self.response, self.error, self.calls = response, error, []

    def invoke(self, **kwargs):
        self.calls.append(kwargs)
        if self.error is not None:
            raise self.error
        return self.response


def test_injected_client_gets_the_event_and_the_reply_is_typed():
    reply = {"text": "{}", "model_id": "local.m", "tokens_in": 12, "tokens_out": 3, "latency_ms": 40}
    client = _FakeLambda({"StatusCode": 200, "Payload": _Payload(json.dumps(reply).encode())})
    out = LambdaInvokeAnalyser("arn:aws:lambda:eu-west-1:123456789012:function:llama", client=client).complete(
        "sys", "user", max_tokens=7, json_schema={"type": "object"}
    )
    assert (out.text, out.model_id, out.tokens_in, out.tokens_out, out.latency_ms) == ("{}", "local.m", 12, 3, 40)
    (call,) = client.calls
    assert call["FunctionName"].endswith(":function:llama") and call["InvocationType"] == "RequestResponse"
    assert json.loads(call["Payload"]) == {"system": "sys", "user": "user", "max_tokens": 7, "json_schema": {"type": "object"}}


def test_throttling_is_transient_and_a_bad_payload_is_an_error():
    from botocore.exceptions import ClientError

    throttled = ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke")
    with pytest.raises(ModelThrottled) as info:
        LambdaInvokeAnalyser("f", client=_FakeLambda(error=throttled)).complete("s", "u", max_tokens=4)
    assert isinstance(info.value, TransientFailure)
    bad = _FakeLambda({"StatusCode": 200, "Payload": _Payload(b'{"text": "x"}')})
    with pytest.raises(ModelCallError, match="unexpected payload"):
        LambdaInvokeAnalyser("f", client=bad).complete("s", "u", max_tokens=4)


def test_there_is_no_mode_and_a_function_name_is_required():
    with pytest.raises(TypeError):
        LambdaInvokeAnalyser("f", mode="inprocess")  # in-process use is LlamaChat itself
    with pytest.raises(ValueError, match="function_name"):
        LambdaInvokeAnalyser("")
