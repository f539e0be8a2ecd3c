"""The `sieve` command line. Each sub-command lives in processors/commands/<name>.py and exposes
`register(subparsers)`; the module sets `func` on its parser. Commands are discovered, so adding one
never touches this file."""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

from processors import commands
from processors.errors import SieveError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sieve", description="Sieve: AWS stream processing with AI behind a hard boundary")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # boto3 reads AWS_DEFAULT_REGION; the AWS CLI and Lambda also set AWS_REGION. Honour either.
    if os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    args = build_parser().parse_args(argv)
    try:
        rc = args.func(args)
    except SieveError as exc:
        print(f"sieve {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Whatever the command, an AWS endpoint that is down (or refuses the credentials) is one
        # clear paragraph naming the endpoint and what to do, never a botocore traceback.
        from processors.adapters.aws import endpoint_error

        err = endpoint_error(exc)
        if err is None:
            raise
        print(f"sieve {args.command}: {err}", file=sys.stderr)
        return err.exit_code
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
