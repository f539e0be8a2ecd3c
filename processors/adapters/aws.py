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
