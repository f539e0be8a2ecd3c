"""An AWS endpoint that cannot be reached (or refuses the credentials) is one clear paragraph and a
ServiceError exit code, never a botocore traceback, and it comes within seconds."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from processors.adapters.aws import endpoint_error
from processors.errors import ServiceError


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def sieve(argv: list[str], endpoint: str, cwd, timeout: float) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "processors.cli", *argv], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def assert_one_clear_paragraph(proc: subprocess.CompletedProcess, endpoint: str, command: str) -> None:
    assert proc.returncode == ServiceError.exit_code, (proc.returncode, proc.stderr)
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr, proc.stderr
    assert err.startswith(f"sieve {command}: "), err
    assert "\n" not in err and len(err) < 700, err  # one paragraph
    assert endpoint in err, err
    assert "sieve up" in err and "AWS_ENDPOINT_URL" in err and "region" in err, err


def test_push_to_a_closed_port_says_which_endpoint_and_what_to_do(tmp_path):
    f = tmp_path / "in.log"
    f.write_text("one line\nanother line\n")
    endpoint = f"http://127.0.0.1:{closed_port()}"
    # a timeout, not a timing assertion: botocore's retries must end in seconds, not minutes
    proc = sieve(["push", str(f), "--stream", "s"], endpoint, tmp_path, timeout=30)
    assert_one_clear_paragraph(proc, endpoint, "push")
    assert "connection refused" in proc.stderr


def test_an_endpoint_that_never_accepts_gives_up_within_seconds(tmp_path):
    # a listening socket whose backlog is full drops further SYNs: a connect timeout, like an
    # address nothing routes to
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            c = socket.socket()
            c.settimeout(0.3)
            try:
                c.connect(("127.0.0.1", port))
            except OSError:
                c.close()
                break
            fillers.append(c)
        else:
            pytest.skip("this kernel does not drop SYNs on a full backlog")
        f = tmp_path / "in.log"
        f.write_text("x\n")
        endpoint = f"http://127.0.0.1:{port}"
        proc = sieve(["push", str(f), "--stream", "s"], endpoint, tmp_path, timeout=45)
        assert_one_clear_paragraph(proc, endpoint, "push")
    finally:
        for c in fillers:
            c.close()
        server.close()


def test_run_against_a_closed_port_is_the_same_clear_error(tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    cfg = os.path.join(os.getcwd(), "pipelines.yaml")
    proc = sieve(["run", "--config", cfg, "--until-idle", "5", "--checkpoints", str(tmp_path / "cp.json")],
                 endpoint, tmp_path, timeout=60)
    assert_one_clear_paragraph(proc, endpoint, "run")


@pytest.mark.parametrize("exc, needle", [
    (EndpointConnectionError(endpoint_url="http://127.0.0.1:9/", error="refused"), "http://127.0.0.1:9"),
    (ConnectTimeoutError(endpoint_url="http://10.1.2.3:4566/"), "http://10.1.2.3:4566"),
    (ReadTimeoutError(endpoint_url="http://127.0.0.1:4566/"), "did not answer"),
    (NoCredentialsError(), "AWS_ACCESS_KEY_ID"),
    (NoRegionError(), "AWS_REGION"),
    (ClientError({"Error": {"Code": "UnrecognizedClientException", "Message": "The security token is invalid"}},
                 "PutRecords"), "UnrecognizedClientException"),
    (ClientError({"Error": {"Code": "ExpiredTokenException", "Message": "expired"}}, "GetRecords"), "credentials"),
    (ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "PutRecords"), "IAM"),
])
def test_endpoint_failures_become_a_service_error_with_a_hint(exc, needle, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    err = endpoint_error(exc)
    assert isinstance(err, ServiceError)
    assert needle in str(err) and "\n" not in str(err)


def test_a_wrapped_connection_failure_is_found_through_its_cause():
    try:
        try:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9/x", error="refused")
        except EndpointConnectionError as inner:
            raise RuntimeError("while doing something") from inner
    except RuntimeError as outer:
        err = endpoint_error(outer)
    assert err is not None and "http://127.0.0.1:9" in str(err)


def test_other_errors_are_left_alone():
    assert endpoint_error(ValueError("a bug")) is None
    assert endpoint_error(ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no"}}, "X")) is None


def test_up_starts_moto_when_the_sourced_endpoint_is_its_own_and_down(tmp_path):
    """`.sieve/env` exports AWS_ENDPOINT_URL=http://127.0.0.1:<moto port>; once moto is gone, the
    hint above says `sieve up`, which must then start it rather than fail on the same endpoint."""
    port = closed_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=endpoint, SIEVE_STATE_DIR=str(tmp_path), SIEVE_MOTO_PORT=str(port), COLUMNS="200")
    cfg = os.path.join(os.getcwd(), "pipelines.yaml")
    try:
        up = subprocess.run([sys.executable, "-m", "processors.cli", "up", "--no-models", "--config", cfg],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
        assert up.returncode == 0, up.stderr
        assert (tmp_path / "pids" / "moto.json").exists()
    finally:
        subprocess.run([sys.executable, "-m", "processors.cli", "down"], env=env, cwd=tmp_path, timeout=60,
                       capture_output=True)
