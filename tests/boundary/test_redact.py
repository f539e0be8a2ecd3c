"""Redaction: every kind, Luhn, IP pseudonyms, config patterns; and planted secrets never survive."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from processors.core.redact import DEFAULT_PATTERNS, Redactor, luhn_ok, patterns_from_config, window_key
from processors.core.types import Window
from processors.errors import ConfigError

SECRET = b"test-pseudonym-secret-0123456789"
W1, W2 = Window(1_700_000_000, 1_700_000_060), Window(1_700_000_060, 1_700_000_120)


def redactor(window=W1, rule="errors-by-path", patterns=DEFAULT_PATTERNS):
    return Redactor(window_key(SECRET, rule, window), patterns)


JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
CASES = [
    ("aws-access-key-id", 'GET /x?k=AKIAIOSFODNN7EXAMPLE HTTP/1.1', "AKIAIOSFODNN7EXAMPLE"),
    ("aws-secret-key", "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("aws-secret-key", "creds wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY used", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("jwt", f"GET /cb?id_tok={JWT}&x=1", JWT),
    ("bearer-token", "upstream said: bearer abc.DEF-123_xyz~/+= rejected", "abc.DEF-123_xyz"),
    ("authorization-header", 'h="Authorization: Basic dXNlcjpwYXNz" x', "dXNlcjpwYXNz"),
    ("cookie-header", "Cookie: theme=dark; auth=Zk9vYmFy", "Zk9vYmFy"),
    ("session-id", "GET /shop;jsessionid=8F2A11C0FFEE HTTP/1.1", "8F2A11C0FFEE"),
    ("session-id", "GET /?PHPSESSID=q9rle0s7h4m2 HTTP/1.1", "q9rle0s7h4m2"),
    ("secret-param", "POST /login user=bob&password=hunter2!&next=/", "hunter2!"),
    ("secret-param", '{"client_secret": "s3cr3t-value", "ok": 1}', "s3cr3t-value"),
    ("secret-param", "X-Api-Key: k_live_123456", "k_live_123456"),
    ("email", "reset sent to Jane.Doe+tag@mail.example.co.jp.", "Jane.Doe+tag@mail.example.co.jp"),
    ("card", "paid with 4111-1111-1111-1111 ok", "4111-1111-1111-1111"),
    ("card", "paid with 378282246310005 ok", "378282246310005"),
    ("private-key", "k=-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- end", "MIIEow"),
]


@pytest.mark.parametrize("kind,line,secret", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_kind_is_redacted_and_counted(kind, line, secret):
    result = redactor().redact(line)
    assert secret not in result.text
    assert result.counts.get(kind, 0) >= 1, result


def test_luhn_keeps_order_ids_and_timestamps():
    r = redactor()
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    line = "order 4111111111111112 ts 1700000000123 ref 12345678901234567890 card 4111 1111 1111 1111"
    out = r.redact(line)
    assert out.text == "order 4111111111111112 ts 1700000000123 ref 12345678901234567890 card [REDACTED:card]"
    assert out.counts == {"card": 1}


def test_ip_pseudonyms_consistent_within_a_window_and_different_across():
    a, b = redactor(W1), redactor(W2)
    line = "10.1.2.3 - - GET / from 10.1.2.3 via 192.168.0.9 and ::ffff:10.1.2.3"
    one = a.redact(line).text
    names = re.findall(r"ip-[0-9a-f]{6}", one)
    assert len(names) == 4 and names[0] == names[1] == names[3] != names[2]
    assert a.redact("again 10.1.2.3").text == f"again {names[0]}"
    other = re.findall(r"ip-[0-9a-f]{6}", b.redact(line).text)
    assert other[0] != names[0]
    six = a.redact("2001:db8::1 and 2001:0db8:0000:0000:0000:0000:0000:0001").text
    p = re.findall(r"ip-[0-9a-f]{6}", six)
    assert len(p) == 2 and p[0] == p[1]
    assert "12:30:45" in a.redact("at 12:30:45 mac aa:bb:cc:dd:ee:ff").text


def test_counts_accumulate_and_markers_are_not_redacted_twice():
    r = redactor()
    first = r.redact("password=a1 password=b2 AKIAIOSFODNN7EXAMPLE")
    again = r.redact(first.text)
    assert first.counts == {"aws-access-key-id": 1, "secret-param": 2}
    assert again.text == first.text and again.counts == {}
    assert r.totals == {"aws-access-key-id": 1, "secret-param": 2}


def test_config_patterns_and_builtin_subset():
    pats = patterns_from_config(["email"], [{"name": "internal-host", "regex": r"\b[a-z0-9-]+\.corp\.example\.com\b",
                                             "replacement": "<internal-host>"}])
    out = redactor(patterns=pats).redact("db-7.corp.example.com a@b.io 10.0.0.1")
    assert out.text == "<internal-host> [REDACTED:email] 10.0.0.1"
    assert out.counts == {"email": 1, "internal-host": 1}
    with pytest.raises(ConfigError) as err:
        patterns_from_config(["nope"], [{"name": "x", "regex": "("}, {"name": "e", "regex": "a*"}])
    msg = str(err.value)
    assert "unknown pattern 'nope'" in msg and "extra_patterns[0] (x)" in msg and "matches the empty string" in msg


def test_short_secret_is_refused():
    with pytest.raises(ConfigError, match="at least 16"):
        window_key(b"short", "r", W1)


# --- property tests: a planted secret never survives, whatever surrounds it ------------------------

ANY = st.text(alphabet=st.sampled_from(string.printable + "日本語ログ€é"), max_size=30)
B64URL = string.ascii_letters + string.digits + "-_"
NON_DIGIT_END = ANY.filter(lambda s: not s or not s[-1].isdigit())
NON_DIGIT_START = ANY.filter(lambda s: not s or not s[0].isdigit())


def card_numbers():
    def build(first, body, spaced):
        digits = first + body
        for check in "0123456789":
            if luhn_ok(digits + check):
                digits += check
                break
        return " ".join(digits[i : i + 4] for i in range(0, 16, 4)) if spaced else digits

    return st.builds(build, st.sampled_from("3456"), st.text("0123456789", min_size=14, max_size=14), st.booleans())


def _tok(alpha, lo, hi):
    return st.text(alphabet=alpha, min_size=lo, max_size=hi)


PLANTS = {
    "aws-access-key-id": st.builds(lambda s: ("AKIA" + s, "AKIA" + s), _tok(string.ascii_uppercase + string.digits, 16, 16)),
    "jwt": st.builds(lambda a, b, c: (f"eyJ{a}.eyJ{b}.{c}",) * 2, _tok(B64URL, 8, 20), _tok(B64URL, 8, 30), _tok(B64URL, 10, 40)),
    "email": st.builds(lambda u, d: (f"{u}@{d}.com",) * 2, _tok(string.ascii_lowercase + string.digits + "._+", 1, 12).filter(
        lambda u: u[0] not in "._+"), _tok(string.ascii_lowercase, 1, 10)),
    "password": st.builds(lambda k, v: (f"{k}={v}", v), st.sampled_from(["password", "passwd", "api_key", "apikey",
                          "access_token", "client_secret", "X-Api-Key"]), _tok(string.ascii_letters + string.digits + "!@#$%^*()_+.~-", 8, 24)),
    "bearer": st.builds(lambda t: (f"Authorization: Bearer {t}", t), _tok(B64URL + ".~+/", 12, 40)),
    "bearer-bare": st.builds(lambda t: (f"Bearer {t}", t), _tok(B64URL + ".~+/", 12, 40)),
    "session": st.builds(lambda k, v: (f"{k}={v}", v), st.sampled_from(["PHPSESSID", "JSESSIONID", "sessionid", "session_id"]),
                         _tok(string.ascii_letters + string.digits, 10, 32)),
    "ipv4": st.ip_addresses(v=4).map(lambda a: (str(a), str(a))),
    "ipv6": st.ip_addresses(v=6).filter(lambda a: str(a).count(":") >= 3).map(lambda a: (str(a), str(a))),
    "aws-secret-named": st.builds(lambda s: (f"aws_secret_access_key={s}", s), _tok(string.ascii_letters + string.digits + "/+", 40, 40)),
}


@pytest.mark.parametrize("kind", sorted(PLANTS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_planted_secret_never_survives(kind, data):
    planted, secret = data.draw(PLANTS[kind])
    prefix, suffix = data.draw(ANY), data.draw(ANY)
    # the secret must be the only place its text occurs (not in the surroundings, its key name or a marker)
    assume(secret not in prefix + suffix + planted.replace(secret, " ") + MARKERS and len(secret) >= 6)
    out = redactor().redact(prefix + planted + suffix).text
    assert secret not in out


@pytest.mark.parametrize("text, address", [("000:02001::1:0", "2001::1:0"),  # found by the property above
                                            ("ab:2001:db8::7", "2001:db8::7"), ("fe80::1:2001:db8::9", "2001:db8::9")])
def test_an_ipv6_address_glued_to_other_groups_is_still_redacted(text, address):
    out = redactor().redact(f"from {text} at noon").text
    assert address not in out and out.startswith("from ") and out.endswith(" at noon")


@settings(max_examples=150, deadline=None)
@given(card=card_numbers(), prefix=NON_DIGIT_END, suffix=NON_DIGIT_START)
def test_planted_card_never_survives(card, prefix, suffix):
    assume(card not in prefix + suffix)
    assert card not in redactor().redact(prefix + card + suffix).text


MARKERS = " ".join(f"[REDACTED:{p.name}] ip-" for p in DEFAULT_PATTERNS)
SEPARATORS = " \t\"'=:,&?;()[]{}<>|"


@settings(max_examples=150, deadline=None)
@given(body=_tok(string.ascii_letters + string.digits + "/+", 37, 37), prefix=ANY, suffix=ANY,
       left=st.sampled_from(SEPARATORS), right=st.sampled_from(SEPARATORS))
def test_planted_free_standing_aws_secret_never_survives(body, prefix, suffix, left, right):
    secret = "aA1" + body  # the shape of a secret key: upper, lower and digit, 40 characters
    assume(secret not in prefix + suffix)
    assert secret not in redactor().redact(prefix + left + secret + right + suffix).text


@pytest.mark.parametrize("key", [
    "sk_live_51H8xYzAbCdEfGhIjKlMn", "rk_test_4eC39HqLyjWDarjtT1zdp7dc", "ghp_" + "a1B2" * 9,
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv", "glpat-" + "x9Y8z7W6v5U4t3S2r1Q0",
    "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx", "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY",
    "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
])
def test_a_vendor_key_is_redacted_wherever_it_stands(key):
    for text in (f"GET /api/keys/{key}?v=1 HTTP/1.1", f'"{key}"', f"token {key} used"):
        out = redactor().redact(text).text
        assert key not in out and "[REDACTED:vendor-key]" in out


@pytest.mark.parametrize("text", ["/products/sk-ii-facial-treatment-essence-refill-230ml", "/ghp_docs", "task-list",
                                  "/risk-assessment-report-sk-management"])
def test_vendor_key_shapes_leave_ordinary_paths_alone(text):
    assert redactor().redact(text).text == text
