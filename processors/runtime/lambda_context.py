"""A Lambda-like context object for handlers the local runner calls in-process.

It carries the attributes of the Python runtime's context that Powertools and ordinary handlers
read (`function_name`, `function_version`, `invoked_function_arn`, `memory_limit_in_mb`,
`aws_request_id`, `log_group_name`, `log_stream_name`, `identity`, `client_context`, `tenant_id`,
`get_remaining_time_in_millis()`), so `Logger.inject_lambda_context`, `Tracer` and
`IdempotencyConfig.register_lambda_context` behave as they do on AWS.

The deadline is measured on a monotonic clock from the moment the context is made, exactly like the
runtime's: the real one, or the runner's injected clock's `monotonic()` (tests move it by hand).
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Callable

DEFAULT_MEMORY_MB = 128


def function_arn(region: str, account: str, function_name: str, partition: str = "aws") -> str:
    return f"arn:{partition}:lambda:{region}:{account}:function:{function_name}"


class LambdaContext:
    """What `handler(event, context)` receives. Attribute names match the AWS Python runtime."""

    def __init__(
        self,
        *,
        function_name: str,
        invoked_function_arn: str,
        timeout_seconds: float,
        memory_limit_in_mb: int = DEFAULT_MEMORY_MB,
        aws_request_id: str | None = None,
        function_version: str = "$LATEST",
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.function_name = function_name
        self.function_version = function_version
        self.invoked_function_arn = invoked_function_arn
        # The runtime exposes memory as a string in some SDKs; Python's is an int-like string on
        # AWS. Powertools logs it as given, so keep the int the console shows.
        self.memory_limit_in_mb = int(memory_limit_in_mb)
        self.aws_request_id = aws_request_id or str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function_name}"
        day = datetime.now(timezone.utc).strftime("%Y/%m/%d")
        self.log_stream_name = f"{day}/[{function_version}]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._monotonic = monotonic
        self._deadline = monotonic() + float(timeout_seconds)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - self._monotonic()) * 1000))

    def __repr__(self) -> str:
        return (
            f"LambdaContext(function_name={self.function_name!r}, aws_request_id={self.aws_request_id!r}, "
            f"remaining_ms={self.get_remaining_time_in_millis()})"
        )
