"""Errors a user can act on. Every one says where, what, and what to do."""

from __future__ import annotations


class SieveError(Exception):
    """Base class; `exit_code` is what the CLI exits with."""

    exit_code = 1


class ConfigError(SieveError):
    """pipelines.yaml (or a rule file) is invalid. Carries every problem, each with its path."""

    exit_code = 2

    def __init__(self, source: str, problems: list[str]):
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} error(s)\n" + "\n".join(f"  {p}" for p in problems))


class ServiceError(SieveError):
    """A local service (moto, OpenSearch, the model endpoint) could not be started or reached."""

    exit_code = 3
