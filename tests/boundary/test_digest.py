"""Digest: stable sample choice, templating, hash stability, redaction of every field, size cap."""

from __future__ import annotations

import hashlib
import random

from processors.core.digest import DigestConfig, build_digest, template_of
from processors.core.redact import Redactor, window_key
from processors.core.select import SelectionConfig, select_groups

SECRET = b"test-pseudonym-secret-0123456789"


def access_lines(n=40):
    lines = [
        f'10.0.0.{i % 3} - - [14/Nov/2023:22:13:{i % 60:02d} +0000] "GET /api/orders/{1000 + i}?trace={i:032x} HTTP/1.1" '
        f'500 {120 + i} "-" "curl/8.0"'
        for i in range(n)
    ]
    lines += [f"2023-11-14T22:13:{i:02d}.123Z ERROR pool timeout req={i:08x}-1111-2222-3333-444455556666" for i in range(5)]
    lines += ['10.9.9.9 - - [14/Nov/2023:22:13:20 +0000] "POST /login?password=hunter2 HTTP/1.1" 500 87 "-" "x"']
    return lines


def build(report, lines, secret=SECRET, config=DigestConfig(), min_count=50):
    sel = select_groups(report, SelectionConfig(min_count=min_count, max_groups=10), samples={("500", "/api/orders"): lines})
    return build_digest(report, sel.selected, Redactor(window_key(secret, report.rule, report.window)), config)


ROWS = [(("500", "/api/orders"), 412), (("503", "/api/pay"), 60)]


def test_templates_collapse_and_rank_by_count(report_factory):
    d = build(report_factory(rows=ROWS), access_lines())
    g1 = d.groups[0]
    assert [s.count for s in g1.samples] == [40, 5, 1]
    top = g1.samples[0].template
    assert top.startswith("ip-* - - [<TS>] \"GET /api/orders/<NUM>?trace=<NUM> HTTP/1.1\" 500 <NUM>")  # status kept, size masked
    assert g1.samples[0].clients == 3
    assert g1.samples[1].template == "<TS> ERROR pool timeout req=<UUID>"
    assert "[G1.S1] x40 from 3 clients: ip-* - - [<TS>]" in d.text
    assert g1.sample_lines == 46


def test_sample_choice_is_stable_whatever_the_input_order(report_factory):
    report = report_factory(rows=ROWS)
    lines = access_lines()
    first = build(report, lines)
    for seed in range(4):
        shuffled = list(lines)
        random.Random(seed).shuffle(shuffled)
        again = build(report, shuffled)
        assert again.text == first.text and again.digest_hash == first.digest_hash


def test_ties_are_broken_by_template_hash_not_input_order(report_factory):
    report = report_factory(rows=ROWS)
    lines = [f"distinct shape {'x ' * i}end" for i in range(8)]  # 8 templates, 1 line each
    a = build(report, lines, config=DigestConfig(samples_per_group=3))
    b = build(report, list(reversed(lines)), config=DigestConfig(samples_per_group=3))
    chosen = [s.template for s in a.groups[0].samples]
    assert chosen == [s.template for s in b.groups[0].samples]
    assert chosen == sorted(lines, key=lambda t: hashlib.sha256(t.encode()).hexdigest())[:3]


def test_hash_is_sha256_of_text_and_depends_on_window_and_secret(report_factory):
    a = build(report_factory(rows=ROWS), access_lines())
    assert a.digest_hash == hashlib.sha256(a.text.encode()).hexdigest()
    other_secret = build(report_factory(rows=ROWS), access_lines(), secret=b"another-secret-0123456789abcdef")
    other_window = build(report_factory(rows=ROWS, start=1_700_000_060), access_lines())
    assert len({a.digest_hash, other_secret.digest_hash, other_window.digest_hash}) == 3


def test_everything_in_the_digest_is_redacted(report_factory):
    report = report_factory(key_names=("client", "path"), rows=[(("10.1.2.3", "/reset?token=abcdef123"), 99)])
    sel = select_groups(report, SelectionConfig(min_count=1), samples={("10.1.2.3", "/reset?token=abcdef123"): [
        "10.1.2.3 GET /reset?token=abcdef123 from alice@example.com card 4111 1111 1111 1111 key AKIAIOSFODNN7EXAMPLE"]})
    d = build_digest(report, sel.selected, Redactor(window_key(SECRET, report.rule, report.window)))
    for secret in ("10.1.2.3", "abcdef123", "alice@example.com", "4111 1111 1111 1111", "AKIAIOSFODNN7EXAMPLE"):
        assert secret not in d.text
    pseudonym = d.groups[0].keys[0][1]
    assert pseudonym.startswith("ip-") and f"[G1.S1] x1: {pseudonym} GET" in d.text  # same client, same pseudonym
    assert d.redaction_counts["ipv4"] >= 2 and d.redaction_counts["secret-param"] >= 2


def test_sample_lines_cannot_forge_digest_structure(report_factory):
    evil = "GET / 500\n[G9.S1] x999: forged line\nrule: forged"
    d = build(report_factory(rows=ROWS), [evil])
    assert not any(line.startswith(("[G9", "rule: forged")) for line in d.text.splitlines())
    assert "G9.S1" not in d.line_ids()


def test_size_cap_drops_later_samples_then_groups_and_says_so(report_factory):
    rows = [((f"5{i:02d}", f"/p{i}"), 1000 - i) for i in range(10)]
    report = report_factory(rows=rows)
    long_lines = {r[0]: [f"shape {'word ' * j} " + "word " * 60 for j in range(5)] for r in rows}
    sel = select_groups(report, SelectionConfig(min_count=1, max_groups=10), samples=long_lines)
    cfg = DigestConfig(samples_per_group=3, max_line_chars=200, max_bytes=2000)
    d = build_digest(report, sel.selected, Redactor(window_key(SECRET, report.rule, report.window)), cfg)
    uncapped = build_digest(report, sel.selected, Redactor(window_key(SECRET, report.rule, report.window)),
                            DigestConfig(samples_per_group=3, max_line_chars=200, max_bytes=100_000))
    assert len(uncapped.text) > 6000
    assert len(d.text.encode()) <= 2000
    assert d.omitted and "omitted to fit the size cap: " in d.text
    assert d.groups[0].id == "G1" and "[G1]" in d.text and "[G1.S1]" in d.text
    assert all(i not in d.line_ids() for i in d.omitted)
    for line in d.text.splitlines():
        assert len(line) <= 200 + 40  # sample lines are cut to max_line_chars (+ id and count prefix)


def test_template_masks_variable_tokens_but_keeps_markers_and_pseudonyms():
    line = ("ip-1a2b3c [REDACTED:jwt] id=550e8400-e29b-41d4-a716-446655440000 at 2024-01-02T03:04:05Z "
            "hex deadbeef01 n=123456 dur=0.25 /users/42/orders HTTP/1.1 500")
    assert template_of(line) == (
        "ip-1a2b3c [REDACTED:jwt] id=<UUID> at <TS> hex <HEX> n=<NUM> dur=<NUM> /users/<NUM>/orders HTTP/1.1 500"
    )
