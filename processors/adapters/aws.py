"""boto3 sessions and clients. One code path for moto, LocalStack and AWS.

boto3 itself reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>), AWS_PROFILE and the region
variables, so nothing here special-cases an emulator; `is_emulator()` only decides whether
emulator-only conveniences (writing local secret values) are allowed.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict

import boto3
from botocore.config import Config as BotoConfig

# Bounded, so that an endpoint that is down fails in seconds: 3 attempts (the standard mode's own
# default) of at most 3 s to connect; 30 s to answer covers SQS long polls (20 s at most).
_RETRIES = BotoConfig(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=30)
CLIENT_CONFIG = _RETRIES  # for clients made without `client()` (the runner's)


def region(default: str | None = None) -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or default or "us-east-1"


def is_emulator() -> bool:
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    return url.startswith("http://127.") or url.startswith("http://localhost") or url.startswith("http://[::1]") or bool(
        os.environ.get("SIEVE_EMULATOR")
    ) or target() == "localstack"


#: LocalStack's own variables: LOCALSTACK_HOSTNAME/EDGE_PORT inside its Lambda containers, LOCALSTACK_HOST on a client
LOCALSTACK_VARIABLES = ("LOCALSTACK_HOSTNAME", "LOCALSTACK_HOST", "EDGE_PORT")


def target() -> str:
    """"localstack" when SIEVE_TARGET says so or LocalStack's variables are set (its sessions then come from
    localstack-client), otherwise SIEVE_TARGET or "aws" (boto3 as configured: AWS, or moto via AWS_ENDPOINT_URL)."""
    wanted = os.environ.get("SIEVE_TARGET", "").strip().lower()
    if wanted:
        return wanted
    return "localstack" if any(os.environ.get(v) for v in LOCALSTACK_VARIABLES) else "aws"


def _localstack_host() -> str | None:
    host = os.environ.get("LOCALSTACK_HOSTNAME")
    if host:
        return f"{host}:{os.environ.get('EDGE_PORT') or 4566}"
    return os.environ.get("LOCALSTACK_HOST") or None  # None: localstack-client's default, localhost:4566


# One session per container and settings. A new boto3 session reloads botocore's loaders, endpoint and
# service data (30-200 ms each); the finaliser's first invocation built seven (issue 13). Sessions are
# kept per (target, region, the environment a session reads): every AWS_* variable (endpoint, keys,
# profile, config files, ...), LocalStack's variables and SIEVE_TARGET. So a test or the fault harness
# that points AWS_ENDPOINT_URL elsewhere, or changes the keys, gets a session for what is set now; a
# Lambda container, whose environment does not change, builds one. Clients are not cached: each adapter
# gets its own (Powertools registers handlers on the clients it is given), made under one lock because a
# boto3 session is not thread-safe to create clients or resources from.
_SESSIONS: OrderedDict[tuple, object] = OrderedDict()
_SESSIONS_KEPT = 16  # the least recently used beyond this are dropped (a long test run's old endpoints)
_LOCK = threading.RLock()  # guards _SESSIONS and every client()/resource() made from a shared session
_TARGET_VARIABLES = ("SIEVE_TARGET", *LOCALSTACK_VARIABLES)


def _settings_key(region_name: str | None) -> tuple:
    env = tuple(sorted((k, v) for k, v in os.environ.items()
                       if (k.startswith("AWS_") and not k.startswith("AWS_LAMBDA_")) or k in _TARGET_VARIABLES))
    return target(), region(region_name), env


class _Locked:
    """client() and resource() under the module's lock (boto3: "sessions are not thread safe")."""

    def client(self, *args, **kwargs):
        with _LOCK:
            return super().client(*args, **kwargs)

    def resource(self, *args, **kwargs):
        with _LOCK:
            return super().resource(*args, **kwargs)


class _SharedSession(_Locked, boto3.session.Session):
    pass


@functools.lru_cache(maxsize=1)
def _shared_localstack_session_class():
    from localstack_client.session import Session as LocalStackSession

    return type("_SharedLocalStackSession", (_Locked, LocalStackSession), {})


def _new_session(region_name: str | None):
    if target() == "localstack":
        creds = _SharedSession().get_credentials()
        frozen = creds.get_frozen_credentials() if creds is not None else None
        return _shared_localstack_session_class()(
            aws_access_key_id=frozen.access_key if frozen else "test",
            aws_secret_access_key=frozen.secret_key if frozen else "test",
            aws_session_token=(frozen.token if frozen else None),
            region_name=region(region_name), localstack_host=_localstack_host())
    return _SharedSession(region_name=region(region_name))


def session(region_name: str | None = None):
    """The container's boto3 session for this region and the current settings (one per (target, region,
    AWS_* / LocalStack variables); see `_SESSIONS`); for LocalStack (`target()`), localstack-client's, which
    points every client at LocalStack's edge endpoint (AWS_ENDPOINT_URL, when set, still wins) with the
    configured keys or test ones. Its client() and resource() are thread-safe (one lock)."""
    key = _settings_key(region_name)
    with _LOCK:
        found = _SESSIONS.get(key)
        if found is not None:
            _SESSIONS.move_to_end(key)
            return found
        made = _SESSIONS[key] = _new_session(region_name)
        while len(_SESSIONS) > _SESSIONS_KEPT:
            _SESSIONS.popitem(last=False)
        return made


def reset_sessions() -> None:
    """Forget the shared sessions (tests; a changed ~/.aws/config, which the key does not see)."""
    with _LOCK:
        _SESSIONS.clear()


def client(service: str, region_name: str | None = None, **kwargs):
    """A new client from the shared session (`session()`), with bounded retries and timeouts unless
    `config` says otherwise. It reads AWS_ENDPOINT_URL (and AWS_ENDPOINT_URL_<SERVICE>) now."""
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


# ClientError codes that mean "these credentials are not accepted here" (not "this call is wrong").
_AUTH_CODES = frozenset({
    "UnrecognizedClientException", "InvalidClientTokenId", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationToken",
    "MissingAuthenticationTokenException", "ExpiredToken", "ExpiredTokenException", "AuthFailure",
    "InvalidToken", "RequestExpired",
})
_DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized"})


def _endpoint_of(url: str | None) -> str:
    from urllib.parse import urlsplit

    if not url:
        return os.environ.get("AWS_ENDPOINT_URL") or f"AWS's own endpoint for {region()}"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def endpoint_error(exc: BaseException):
    """The AWS endpoint could not be reached, or would not take the credentials: a one-paragraph
    ServiceError that names the endpoint and says what to do. None for any other exception (a bug
    keeps its traceback). The exception's causes are looked through, so a wrapped failure counts."""
    from botocore import exceptions as bx

    from processors.errors import ServiceError

    seen = 0
    while exc is not None and seen < 10:
        err = _endpoint_error_of(exc, bx)
        if err is not None:
            return ServiceError(err)
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _endpoint_error_of(exc: BaseException, bx) -> str | None:
    env = os.environ.get("AWS_ENDPOINT_URL")
    settings = (f"check AWS_ENDPOINT_URL (now {env or 'not set, so AWS itself'}), your credentials "
                f"(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and the region ({region()})")
    local = "if it is the local stack, start it with `sieve up` (and `source .sieve/env` in other shells)"
    if isinstance(exc, (bx.ConnectionError, bx.ReadTimeoutError, bx.ConnectionClosedError)):
        url = getattr(exc, "kwargs", {}).get("endpoint_url")
        endpoint = _endpoint_of(url)
        if isinstance(exc, bx.ConnectTimeoutError):
            why = "no connection within the connect timeout"
        elif isinstance(exc, bx.ReadTimeoutError):
            why = "it accepted the connection but did not answer in time"
        elif isinstance(exc, bx.ConnectionClosedError):
            why = "it closed the connection without an answer"
        elif isinstance(exc, bx.ProxyConnectionError):
            why = f"the proxy {exc.kwargs.get('proxy_url', '')} could not be reached; check HTTPS_PROXY / NO_PROXY"
        elif isinstance(exc, bx.SSLError):
            why = "TLS failed; check the URL's scheme (http:// for the local stack)"
        elif "refused" in str(getattr(exc, "kwargs", {}).get("error", "")).lower():
            why = "connection refused: nothing listens there"
        else:
            why = str(exc)[:200]
        return f"cannot reach the AWS endpoint {endpoint} ({why}). {local.capitalize()}; otherwise {settings}."
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.CredentialRetrievalError)):
        return (f"no usable AWS credentials for {_endpoint_of(None)} ({exc}). Set AWS_ACCESS_KEY_ID and "
                f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (any values do for the local stack: `sieve up` writes "
                f".sieve/env); also check AWS_ENDPOINT_URL (now {env or 'not set'}) and the region ({region()}).")
    if isinstance(exc, bx.NoRegionError):
        return (f"no AWS region is set for {_endpoint_of(None)}. Set AWS_REGION (e.g. us-east-1) or the config's "
                f"`region`; for the local stack start it with `sieve up`, and check AWS_ENDPOINT_URL and your "
                f"credentials.")
    if isinstance(exc, bx.ProfileNotFound):
        return (f"{exc} (AWS_PROFILE). Fix AWS_PROFILE or your ~/.aws/config; for the local stack unset it and "
                f"use `sieve up`; otherwise {settings}.")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        code, message = str(error.get("Code", "")), str(error.get("Message", ""))[:200]
        op = getattr(exc, "operation_name", "the call")
        if code in _AUTH_CODES:
            return (f"{_endpoint_of(None)} refused the credentials for {op} ({code}: {message}). "
                    f"{local.capitalize()}; otherwise {settings}.")
        if code in _DENIED_CODES:
            return (f"{_endpoint_of(None)} denied {op} ({code}: {message}). Check the IAM permissions of these "
                    f"credentials; {local}; otherwise {settings}.")
    return None
