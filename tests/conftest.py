"""Shared fixtures: real local services, started and stopped by the test session.

`moto_endpoint` starts a real moto server (HTTP, its own process) on a free loopback port, so
parallel test sessions never collide with a developer's `sieve up` on 4566. Every boto3 client
made by Sieve reads AWS_ENDPOINT_URL, so the fixture only has to set the environment.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as r:  # noqa: S310 - loopback only
                if r.status < 500:
                    return
        except Exception as exc:  # still starting
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"service at {url} did not answer within {timeout}s: {last}")


@pytest.fixture(scope="session")
def moto_endpoint():
    """A real moto server for the whole session; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(url + "/moto-api/")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture()
def aws(moto_endpoint, monkeypatch):
    """Point every boto3 client at the session's moto server, with state wiped for this test."""
    req = urllib.request.Request(moto_endpoint + "/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=5).close()  # noqa: S310
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_endpoint
