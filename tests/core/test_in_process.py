"""The whole log use case in process, on the in-memory ports (processors/adapters/memory.py): generated
traffic split over shards in batches -> LogIngest -> Finaliser -> the exact top-N of the generator's
ground truth. The same use cases run on DynamoDB in tests/pipeline; this pins the memory store to the
same semantics so benchmarks and evaluations that use it measure the real thing."""

from __future__ import annotations

import dataclasses

from processors.adapters.memory import MemoryAudit, MemoryNotifier, MemoryWindowStore
from processors.adapters.sqs import LogRejectSink
from processors.config import load
from processors.core.budget import InMemoryBudgetLedger
from processors.core.finalise import Finaliser
from processors.core.generate import AccessLogGenerator, GeneratorConfig, parse_incident
from processors.core.ingest import LogIngest, line_batches
from processors.wiring import finalise_config, ingest_config

SHARDS = 2


def batches(lines, size=250):
    return line_batches(lines, shards=SHARDS, size=size)


def test_the_use_cases_on_memory_ports_give_the_exact_top_n():
    loaded = load("pipelines.yaml")
    gen = AccessLogGenerator(GeneratorConfig(seed=11, lines=6000, duration=600, period=60,
                                             incidents=(parse_incident("burst500"), parse_incident("scan404"))))
    lines = list(gen.lines())
    store = MemoryWindowStore(clock=lambda: 1_800_000_000)
    ingest = LogIngest(ingest_config(loaded), store, LogRejectSink(), clock=lambda: 1_800_000_000)
    for batch in batches(lines):
        assert ingest.process(batch).failed_sequence is None
    again = next(batches(lines))  # a redelivered batch counts nothing twice
    assert ingest.process(again).partials_written == 0
    notifier = MemoryNotifier()
    cfg = finalise_config(loaded, b"k" * 32)
    cfg = dataclasses.replace(cfg, boundary=dataclasses.replace(cfg.boundary, enabled=False))  # facts only
    fin = Finaliser(cfg, store, analyser=None, budget=InMemoryBudgetLedger(), audit=MemoryAudit(), notifier=notifier,
                    clock=lambda: 1_800_000_000)
    result = fin.run(flush=True)
    truth = gen.truth()
    for rule, windows in truth["rules"].items():
        if rule not in {r.name for r in loaded.rules}:
            continue
        for tw in windows:
            stored = store.stored_report(rule, tw["window"][0])
            assert stored is not None, (rule, tw["window"])
            assert [(c.keys, int(c.value)) for c in stored.topn.contributors] == \
                [(tuple(c["keys"]), c["value"]) for c in tw["top"]]
            assert stored.topn.total_events == tw["total_events"]
    posted = {(d["rule"], d["window"]) for d in result["finalised"] if d.get("delivery") == "posted"}
    assert len(posted) == len(notifier.posted) >= len(truth["incidents"])


def test_a_muted_incident_is_not_posted_and_says_who_muted_it():
    from processors.core.incidents import Mute, incident_id

    loaded = load("pipelines.yaml")
    gen = AccessLogGenerator(GeneratorConfig(seed=11, lines=6000, duration=600, period=60,
                                             incidents=(parse_incident("burst500"),)))
    store = MemoryWindowStore(clock=lambda: 1_800_000_000)
    ingest = LogIngest(ingest_config(loaded), store, LogRejectSink(), clock=lambda: 1_800_000_000)
    for batch in batches(list(gen.lines())):
        ingest.process(batch)
    incident = gen.truth()["incidents"][0]
    keys = tuple(incident["key"].values())
    store.put_mute("errors-by-path", incident_id("errors-by-path", keys), Mute("U1", 1_799_999_000, 1_800_003_600, "alice"))
    cfg = finalise_config(loaded, b"k" * 32)
    cfg = dataclasses.replace(cfg, boundary=dataclasses.replace(cfg.boundary, enabled=False))
    notifier = MemoryNotifier()
    result = Finaliser(cfg, store, analyser=None, budget=InMemoryBudgetLedger(), audit=MemoryAudit(), notifier=notifier,
                       clock=lambda: 1_800_000_000).run(flush=True)
    start = incident["windows"][0]["window"][0]
    (burst,) = [w for w in result["finalised"] if w["rule"] == "errors-by-path" and w["window"].startswith(f"{start}-")]
    muted = next(n for n in burst["report"]["not_selected"] if tuple(n["keys"].values()) == keys)
    assert any("muted by alice" in r for r in muted["reasons"])
    assert all(keys != tuple(g["keys"].values()) for w in result["finalised"] for g in (w.get("report") or {}).get("selected", []))
