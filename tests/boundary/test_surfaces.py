"""processors/core/surfaces.py: the one redaction for what people see (Slack and the terminal)."""

from __future__ import annotations

import io
import json

import pytest
import yaml
from rich.console import Console

from processors.core.boundary import BoundaryConfig
from processors.core.finalise import slack_safe
from processors.core.redact import DEFAULT_PATTERNS, Pattern, patterns_from_config
from processors.core.surfaces import PSEUDONYM_KINDS, ForPeople, for_people, people_patterns
from processors.core.types import AnalysisOutcome, Contributor, SelectedGroup, TopNReport, Window, WindowReport
from processors.errors import ConfigError
from processors.runtime.slack_terminal import payload_renderable, people_view

from .conftest import SECRET

KEYS = (
    "/reset/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyLTQyIn0.c2lnbmF0dXJl?email=alice@example.org",
    "/login?password=hunter2&card=4111111111111111&key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "curl/8 AKIAIOSFODNN7EXAMPLE",
    "Mozilla/5.0 (Bearer tok_4f3e2d1c0b9aZZyyXX)",
    "https://shop.example.com/pay?cc=5500-0000-0000-0004&sid=s3ss10n-9f8e7d6c5b4a",
    "Cookie: PHPSESSID=abc123; theme=dark",
    "198.51.100.7",
    "2001:db8::1",
    "/orders/1714564800123",
    "CUST-778899",
)


def test_secrets_go_addresses_and_plain_values_stay():
    out = [for_people(k) for k in KEYS]
    for secret in ("eyJhbGci", "alice@example.org", "hunter2", "4111111111111111", "wJalrXUtnFEMI", "AKIAIOSFODNN7EXAMPLE",
                   "tok_4f3e2d1c0b9aZZyyXX", "5500-0000-0000-0004", "s3ss10n-9f8e7d6c5b4a", "abc123"):
        assert not any(secret in o for o in out), secret
    assert out[6] == "198.51.100.7" and out[7] == "2001:db8::1"  # which client: a fact people need
    assert out[8] == "/orders/1714564800123" and out[9] == "CUST-778899"
    assert "[REDACTED:aws-access-key-id]" in out[2]


def test_the_pattern_set_is_the_models_minus_the_pseudonyms():
    assert {p.name for p in DEFAULT_PATTERNS} - {p.name for p in people_patterns()} == set(PSEUDONYM_KINDS)
    extra = patterns_from_config("all", [{"name": "customer", "regex": r"CUST-\d+", "replacement": "CUST-?"},
                                         {"name": "ipv4", "regex": r"tenant-\d+"}])
    view = ForPeople(extra)
    assert view("CUST-778899 from 198.51.100.7 tenant-42") == "CUST-? from 198.51.100.7 <redacted>"
    chosen = patterns_from_config(["email"])
    assert for_people("a@b.io AKIAIOSFODNN7EXAMPLE", chosen) == "[REDACTED:email] AKIAIOSFODNN7EXAMPLE"


def test_same_result_as_slack_safe_so_terminal_and_slack_cannot_drift():
    patterns = patterns_from_config("all", [{"name": "customer", "regex": r"CUST-\d+"}])
    boundary = BoundaryConfig(model_id="m", redaction_secret=SECRET, patterns=patterns)
    w = Window(1_700_000_000, 1_700_000_060)
    contributors = tuple(Contributor((k, "500"), 10.0) for k in KEYS)
    report = TopNReport(rule="r", window=w, key_names=("path", "status"), aggregate_on="Count",
                        contributors=contributors, unique_contributors=len(KEYS), max_contributor_value=10.0,
                        sample_count=10 * len(KEYS), sum=10.0 * len(KEYS), total_events=10 * len(KEYS))
    selected = tuple(SelectedGroup("r", w, {"path": k, "status": "500"}, 10.0, 0.1, ("count",)) for k in KEYS)
    safe = slack_safe(WindowReport("r", w, report, selected, AnalysisOutcome(status="disabled")), boundary)
    view = ForPeople(patterns)
    assert [c.keys[0] for c in safe.topn.contributors] == [view(k) for k in KEYS]
    assert [g.keys["path"] for g in safe.selected] == [view(k) for k in KEYS]


def test_value_redacts_every_string_in_json_like_data_and_counts():
    view = ForPeople()
    data = {"keys": ["a@b.io", 3, None, ("AKIAIOSFODNN7EXAMPLE",)], "token=abc": {"n": 1.5, "t": "ok"}}
    assert view.value(data) == {"keys": ["[REDACTED:email]", 3, None, ("[REDACTED:aws-access-key-id]",)],
                                "token=[REDACTED:secret-param]": {"n": 1.5, "t": "ok"}}
    assert view.totals == {"email": 1, "aws-access-key-id": 1, "secret-param": 1} and view.redacted == 3
    assert view(42) == "42"


def test_a_saved_slack_payload_is_rendered_redacted():
    payload = {"text": "top /reset?token=abc123 by 198.51.100.7",
               "blocks": [{"type": "section", "block_id": "computed-topn",
                           "text": {"type": "mrkdwn", "text": "```\n1  /a?email=alice@example.org  40\n```"}},
                          {"type": "section", "block_id": "ai-cause",
                           "text": {"type": "mrkdwn", "text": "*Likely cause:* key AKIAIOSFODNN7EXAMPLE leaked"}}]}
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(payload_renderable(payload))
    text = console.export_text()
    assert "abc123" not in text and "alice@example.org" not in text and "AKIAIOSFODNN7EXAMPLE" not in text
    assert "198.51.100.7" in text and "[REDACTED:email]" in text and "AI inference" in text


def _config(tmp_path, extra):
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((root / "pipelines.yaml").read_text())
    doc["pipelines"]["logs"]["rules"] = [str(root / "rules" / "errors-by-path.json")]
    doc["pipelines"]["logs"]["ai"]["redact"] = {"extra_patterns": extra}
    path = tmp_path / "pipelines.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_people_view_uses_the_config_patterns_or_the_builtins(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("SIEVE_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    assert people_view()("CUST-1 a@b.io") == "CUST-1 [REDACTED:email]"  # no pipelines.yaml here: built-ins
    cfg = _config(tmp_path, [{"name": "customer", "regex": r"CUST-\d+", "replacement": "CUST-?"}])
    assert people_view(str(cfg))("CUST-1 a@b.io") == "CUST-? [REDACTED:email]"
    assert people_view()("CUST-1") == "CUST-?"  # ./pipelines.yaml
    monkeypatch.setenv("SIEVE_CONFIG", str(cfg))
    monkeypatch.chdir("/")
    assert people_view()("CUST-1") == "CUST-?"
    # a default config that does not load: said on stderr, built-ins used; a named one must load
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines: {logs: {nope: 1}}\n")
    monkeypatch.setenv("SIEVE_CONFIG", str(bad))
    assert people_view()("a@b.io") == "[REDACTED:email]"
    assert "built-in patterns only" in capsys.readouterr().err
    with pytest.raises(ConfigError):
        people_view(str(bad))


def test_people_patterns_keep_a_config_pattern_that_reuses_a_pseudonym_name():
    mine = Pattern("ipv6", r"secret-\w+", "<gone>")
    assert mine in people_patterns((*DEFAULT_PATTERNS, mine))
    assert json.dumps(for_people("secret-x 10.0.0.1", (*DEFAULT_PATTERNS, mine))) == '"<gone> 10.0.0.1"'


def test_people_view_snapshot_is_used_only_for_the_same_file_variables_and_code(tmp_path, monkeypatch, capsys):
    """The redaction of a config that loaded is kept (so `sieve topn` does not load YAML and pydantic on
    every run); a changed file or a changed ${VAR} it names loads it again, a config that does not load
    is never kept."""
    import subprocess
    import sys

    from processors.runtime import people_view as pv

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("SIEVE_CONFIG", raising=False)
    cfg = _config(tmp_path, [{"name": "customer", "regex": r"CUST-\d+", "replacement": "${CUST_MASK:-CUST-?}"}])
    loads = []
    real_load = __import__("processors.config.loader", fromlist=["load"]).load
    monkeypatch.setattr("processors.config.loader.load", lambda p: loads.append(p) or real_load(p))
    assert pv.people_view(str(cfg))("CUST-1") == "CUST-?"
    assert pv.people_view(str(cfg))("CUST-1") == "CUST-?"
    assert len(loads) == 1 and len(list((tmp_path / "cache" / "sieve" / "people-view").glob("*.json"))) == 1
    monkeypatch.setenv("CUST_MASK", "<customer>")  # a variable the file names: loaded again, new value
    assert pv.people_view(str(cfg))("CUST-1") == "<customer>" and len(loads) == 2
    cfg.write_text(cfg.read_text().replace(r"CUST-\d+", r"CUST-[0-9]+X"))  # the file changed
    assert pv.people_view(str(cfg))("CUST-1 CUST-1X") == "CUST-1 <customer>" and len(loads) == 3
    assert pv.people_view(str(cfg), snapshot=False)("CUST-1X") == "<customer>" and len(loads) == 4
    # a config that does not load: never kept, its error comes every time
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipelines: {logs: {nope: 1}}\n")
    for _ in range(2):
        with pytest.raises(ConfigError):
            pv.people_view(str(bad))
    # a snapshot that is not one (truncated, another key) is ignored
    for f in (tmp_path / "cache" / "sieve" / "people-view").glob("*.json"):
        f.write_bytes(b'{"key": "other", "spec": null}')
    assert len(loads) == 6  # the bad config, loaded twice
    assert pv.people_view(str(cfg))("CUST-1X") == "<customer>" and len(loads) == 7
    # and a run that finds the snapshot imports neither YAML nor pydantic
    out = subprocess.run([sys.executable, "-c", "import sys, json\nfrom processors.runtime.people_view import people_view\n"
                          f"v = people_view({str(cfg)!r})\n"
                          "print(json.dumps([v('CUST-1X'), sorted(m for m in ('yaml', 'pydantic') if m in sys.modules)]))"],
                         capture_output=True, text=True, check=True, timeout=120,
                         env={**__import__("os").environ, "XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert out.stdout.strip() == '["<customer>", []]'
