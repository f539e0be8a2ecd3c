"""`sieve up` / `sieve down`: the embedded local stack.

up:   validate pipelines.yaml (nothing starts if it is invalid), start moto in server mode on
      127.0.0.1:4566 unless AWS_ENDPOINT_URL points elsewhere (LocalStack, say) or something already
      listens there, then create every declared resource idempotently. The local Bedrock-compatible
      model server starts too when the analyser points at a loopback endpoint (--no-models: don't);
      `--with opensearch` also starts the local OpenSearch node.
down: stop only what `up` started, by pid.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console
from rich.table import Table

from processors.adapters import aws
from processors.config import load
from processors.errors import ServiceError
from processors.runtime import services
from processors.runtime.provision import provision

ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("opensearch", "models")


def default_endpoint() -> str:
    return f"http://127.0.0.1:{os.environ.get('SIEVE_MOTO_PORT', '4566')}"


def register(sub) -> None:
    p = sub.add_parser("up", help="start the embedded local stack and create the declared resources")
    p.add_argument("--config", help="pipelines.yaml (default: $SIEVE_CONFIG or ./pipelines.yaml)")
    p.add_argument("--with", dest="extras", action="append", default=[], metavar="SERVICE",
                   help="also start: opensearch, models (repeat or comma-separate)")
    p.add_argument("--no-models", action="store_true",
                   help="do not start the local model server even though the analyser points at a local endpoint")
    p.set_defaults(func=run_up)
    d = sub.add_parser("down", help="stop what `sieve up` started (by pid, nothing else)")
    d.set_defaults(func=run_down)


def ensure_aws_endpoint(console: Console | None = None) -> str:
    """Use AWS_ENDPOINT_URL when set; otherwise start (or reuse) the embedded moto server. An
    AWS_ENDPOINT_URL that is the embedded server's own address (what `.sieve/env` exports) with
    nothing listening there starts it too, so "start it with `sieve up`" holds in that shell."""
    url = os.environ.get("AWS_ENDPOINT_URL")
    aws.use_local_credentials_if_missing()
    endpoint = default_endpoint()
    u = urlparse(endpoint)
    if url and (url.rstrip("/") != endpoint or services.port_open(u.hostname, u.port)):
        return url
    started = services.start("moto", services.moto_argv(u.hostname, u.port), host=u.hostname, port=u.port,
                             health_path="/moto-api/", marker="moto.server")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    os.environ.setdefault("SIEVE_EMULATOR", "1")
    if console:
        console.print(f"moto server {'started (pid %d)' % started.pid if started.started_here else 'already running'} at {started.url}")
    return endpoint


def run_up(args) -> int:
    console = Console(stderr=False)
    loaded = load(args.config)  # raises ConfigError (exit 2) before anything starts
    extras = {e.strip() for x in args.extras for e in x.split(",") if e.strip()}
    unknown = extras - set(EXTRAS)
    if unknown:
        raise ServiceError(f"--with: unknown service(s) {sorted(unknown)}; choose from {list(EXTRAS)}")
    url = ensure_aws_endpoint(console)
    changes = provision(loaded.config, emulator=aws.is_emulator() or url == default_endpoint())
    table = Table(title=f"resources at {url}")
    for col in ("kind", "name", "action", "detail"):
        table.add_column(col)
    for c in changes:
        style = {"created": "green", "exists": "dim", "drift": "yellow", "updated": "cyan"}.get(c.action, "")
        table.add_row(c.kind, c.name, f"[{style}]{c.action}[/]", c.detail)
    console.print(table)
    if "opensearch" in extras:
        script = str(ROOT / "localstack" / "opensearch.sh")
        was_running = subprocess.call(["bash", script, "status"], stdout=subprocess.DEVNULL) == 0
        rc = subprocess.call(["bash", script, "start"])
        if rc != 0:
            raise ServiceError(f"localstack/opensearch.sh start failed (exit {rc}); see its output above")
        if not was_running:  # `down` stops only a node that this `up` started
            (services.state_dir() / "opensearch.started").write_text("started by sieve up\n")
    if "models" in extras or (_local_model_configured(loaded.config) and not args.no_models):
        try:
            start_models(loaded.config, console)
        except ServiceError as exc:
            if "models" in extras:
                raise
            console.print(f"[yellow]local model server not started[/] ({exc}); run `./dev setup` to build "
                          "llama-cpp-python and fetch the model, or use --with models to make this an error")
    env_file = services.state_dir() / "env"
    env_file.write_text(
        f"export AWS_ENDPOINT_URL={url}\nexport AWS_ACCESS_KEY_ID=${{AWS_ACCESS_KEY_ID:-test}}\n"
        f"export AWS_SECRET_ACCESS_KEY=${{AWS_SECRET_ACCESS_KEY:-test}}\nexport AWS_REGION={aws.region(loaded.config.region)}\n"
    )
    console.print(f"ready. In another shell: [bold]source {env_file}[/] to point the AWS CLI / boto3 at it.")
    return 0


def _local_model_configured(cfg) -> bool:
    logs = cfg.pipelines.logs
    if logs is None or logs.ai.analyser.kind != "bedrock":
        return False
    return urlparse(logs.ai.analyser.endpoint_url or "").hostname in ("127.0.0.1", "localhost")


def start_models(cfg, console: Console | None = None) -> str:
    """Start (or reuse) the local Bedrock-compatible model server the config points at."""
    logs = cfg.pipelines.logs
    endpoint = (logs.ai.analyser.endpoint_url if logs else None) or "http://127.0.0.1:4567"
    model_id = logs.ai.analyser.model_id if logs else None
    u = urlparse(endpoint)
    argv = [sys.executable, "-m", "processors.cli", "models", "serve", "--host", u.hostname, "--port", str(u.port), "--preload"]
    if model_id:
        # a known local model's id selects that model (unless SIEVE_MODEL/SIEVE_MODEL_PATH choose); any other
        # id is answered by the default model under that name
        from processors.adapters.model_files import MODELS

        known = next((m.name for m in MODELS.values() if model_id in (m.model_id, m.name)), None)
        if known and not (os.environ.get("SIEVE_MODEL") or os.environ.get("SIEVE_MODEL_PATH")):
            argv += ["--model", known]
        else:
            argv += ["--alias", model_id]
    started = services.start("models", argv, host=u.hostname, port=u.port, health_path="/health",
                             marker="models serve", timeout=300)
    if console:
        console.print(f"model server {'started (pid %d)' % started.pid if started.started_here else 'already running'} at {started.url}")
    return started.url


def run_down(args) -> int:
    for name in services.started_services():
        print(f"{name}: {services.stop(name)}")
    marker = services.state_dir() / "opensearch.started"
    if marker.exists():  # only a node that `up --with opensearch` started
        subprocess.call(["bash", str(ROOT / "localstack" / "opensearch.sh"), "stop"])
        marker.unlink()
    return 0
