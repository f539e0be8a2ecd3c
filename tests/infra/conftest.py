"""Shared by the infra tests: the artifacts `sieve package` builds (once per session, from the wheel and
layer caches in ~/.cache/sieve)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> dict:
    from processors.runtime.package import package

    out = tmp_path_factory.mktemp("package")
    manifest = package(out, llama=False)
    return {"out": out, "manifest": manifest}
