"""`sieve opensearch {install,start,stop,status}`: the local single-node OpenSearch (localstack/opensearch.sh).

`run(action)` is the entry point for other commands (e.g. `sieve up --with opensearch`).
"""

from __future__ import annotations

import argparse
import os
import subprocess
from pathlib import Path

from processors.errors import ServiceError

ACTIONS = ("install", "start", "stop", "status")
# status exits 3 when the node is stopped (LSB convention); that is an answer, not a failure.
STATUS_STOPPED = 3


def script_path() -> Path:
    """localstack/opensearch.sh of this checkout, or $SIEVE_OPENSEARCH_SCRIPT."""
    override = os.environ.get("SIEVE_OPENSEARCH_SCRIPT")
    path = Path(override) if override else Path(__file__).resolve().parents[2] / "localstack" / "opensearch.sh"
    if not path.is_file():
        raise ServiceError(
            f"opensearch: {path} not found; run sieve from a checkout of the repository "
            "or set SIEVE_OPENSEARCH_SCRIPT to the path of opensearch.sh"
        )
    return path


def run(action: str, *, port: int | None = None, check: bool = True) -> int:
    """Run one action of the script, streaming its output; returns its exit code.
    With check=True a failed install/start/stop raises ServiceError (status never raises)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    env = dict(os.environ)
    if port is not None:
        env["OPENSEARCH_PORT"] = str(port)
    rc = subprocess.run(["bash", str(script_path()), action], env=env, check=False).returncode
    if check and action != "status" and rc != 0:
        raise ServiceError(f"opensearch {action} failed (exit {rc}); see the messages above")
    return rc


def _main(args: argparse.Namespace) -> int:
    return run(args.action, port=args.port)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "opensearch",
        help="install/start/stop/status of the local single-node OpenSearch (k-NN, from Maven Central)",
        description="Manage the local OpenSearch node built by localstack/opensearch.sh. "
        "start implies install; status exits 0 when running and healthy, 3 when stopped.",
    )
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--port", type=int, default=None, help="HTTP port on 127.0.0.1 (default: $OPENSEARCH_PORT or 9200)")
    p.set_defaults(func=_main)
