"""boto3 sessions and clients. One code path for moto, LocalStack and AWS.

boto3 itself reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), AWS_PROFILE and the region
variables, so nothing here special-cases an emulator; `is_emulator()` only decides whether
emulator-only conveniences (writing local secret values) are allowed.
"""

from __future__ import annotations

import functools
import os

import boto3
from botocore.config import Config as BotoConfig

_RETRIES = BotoConfig(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=60)


def region(default: str | None = None) -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or default or "us-east-1"


def is_emulator() -> bool:
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    return url.startswith("http://127.") or url.startswith("http://localhost") or url.startswith("http://[::1]") or bool(
        os.environ.get("SIEVE_EMULATOR")
    )


def session(region_name: str | None = None) -> boto3.Session:
    return boto3.Session(region_name=region(region_name))


def client(service: str, region_name: str | None = None, **kwargs):
    kwargs.setdefault("config", _RETRIES)
    return session(region_name).client(service, **kwargs)


@functools.lru_cache(maxsize=1)
def _cached_account(endpoint: str | None, region_name: str) -> str:
    return client("sts", region_name).get_caller_identity()["Account"]


def account_id(region_name: str | None = None) -> str:
    return _cached_account(os.environ.get("AWS_ENDPOINT_URL"), region(region_name))


def use_local_credentials_if_missing() -> None:
    """Emulators accept any keys; give boto3 some when none are configured at all."""
    if not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")):
        if boto3.Session().get_credentials() is None:
            os.environ["AWS_ACCESS_KEY_ID"] = "test"
            os.environ["AWS_SECRET_ACCESS_KEY"] = "test"


def to_ddb(value):
    """DynamoDB wants Decimals, not floats: convert a JSON-like value, recursively."""
    from decimal import Decimal

    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: to_ddb(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_ddb(v) for v in value]
    return value


def from_ddb(value):
    """The inverse of `to_ddb`: Decimals back to ints (whole numbers) or floats, recursively."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_ddb(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [from_ddb(v) for v in value]
    return value



class Secrets:
    """The one reader of Secrets Manager values: Powertools' SecretsProvider, each value cached for
    `max_age` seconds by this reader (one per container, built by the wiring).

    `get(name)` is the secret's string; `get(name, key)` the string under `key` of a JSON secret;
    `get(name, key, plain_ok=True)` accepts either form. Errors name the secret and the key, never a value."""

    def __init__(self, *, max_age: int = 300, provider=None):
        self.max_age = max_age
        self._provider = provider

    def get(self, name: str, key: str | None = None, *, plain_ok: bool = False) -> str:
        import json

        from processors.errors import ConfigError

        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        if self._provider is None:
            from aws_lambda_powertools.utilities.parameters import SecretsProvider

            self._provider = SecretsProvider(boto3_client=client("secretsmanager"))
        try:
            value = self._provider.get(name, max_age=self.max_age)
        except GetParameterError as exc:
            raise ConfigError("secrets", [f"secret {name!r} could not be read: {str(exc)[:300]}"]) from None
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if key is not None:
            try:
                doc = json.loads(value)
            except (TypeError, ValueError):
                doc = None
            if isinstance(doc, dict):
                found = doc.get(key)
                if isinstance(found, str) and found:
                    return found
                raise ConfigError("secrets", [f"secret {name!r}: JSON object has no `{key}` key (or it is not a string)"])
            if not plain_ok:
                raise ConfigError("secrets", [f"secret {name!r} is not a JSON object with key {key!r}"])
        if not isinstance(value, str) or not value:
            raise ConfigError("secrets", [f"secret {name!r} is empty"])
        return value
