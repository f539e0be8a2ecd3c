"""The `sieve` command line. Each sub-command lives in processors/commands/<name>.py and exposes
`register(subparsers)`; the module sets `func` on its parser. Commands are discovered, so adding one
never touches this file."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

from processors.errors import SieveError

_COMMANDS = "processors.commands"


def _command_names() -> list[str]:
    import pkgutil

    from processors import commands

    return sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (`command`: the first argument names a command module) only that command's:
    a command then imports only its own module, not every other command's dependencies (start-up time)."""
    parser = argparse.ArgumentParser(prog="sieve", description="Sieve: AWS stream processing with AI behind a hard boundary")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    names = [command] if command is not None else _command_names()
    for name in names:
        importlib.import_module(f"{_COMMANDS}.{name}").register(sub)
    return parser


def _named_command(argv: list[str]) -> str | None:
    """The command module the first argument names, if there is one (else the whole parser is built:
    `sieve`, `sieve --help`, a mistyped command and its suggestions need every command)."""
    if not argv or argv[0].startswith("-") or not argv[0].isidentifier():
        return None
    try:
        found = importlib.util.find_spec(f"{_COMMANDS}.{argv[0]}")
    except (ImportError, ValueError):
        return None
    return argv[0] if found is not None else None


def main(argv: list[str] | None = None) -> int:
    # boto3 reads AWS_DEFAULT_REGION; the AWS CLI and Lambda also set AWS_REGION. Honour either.
    if os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_named_command(argv)).parse_args(argv)
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
