"""LambdaInvokeAnalyser in AWS mode against the moto server: a failing function becomes a typed error."""

from __future__ import annotations

import io
import zipfile

import boto3
import pytest

from processors.adapters.bedrock import ModelCallError
from processors.adapters.llama import LambdaInvokeAnalyser


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
    analyser = LambdaInvokeAnalyser("sieve-llama", mode="aws")
    with pytest.raises(ModelCallError, match=r"Lambda sieve-llama failed \((Handled|Unhandled|ValueError)\)"):
        analyser.complete("s", "u", max_tokens=4)


def test_missing_function_names_it(aws):
    analyser = LambdaInvokeAnalyser("no-such-function", mode="aws")
    with pytest.raises(ModelCallError, match="no-such-function.*ResourceNotFoundException"):
        analyser.complete("s", "u", max_tokens=4)


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="mode must be"):
        LambdaInvokeAnalyser("f", mode="local")
