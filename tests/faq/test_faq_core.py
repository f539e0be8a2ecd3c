"""processors.core.faq: records, fail-closed routing and the change-data-capture plan (pure)."""

from __future__ import annotations

import pytest

from processors.core.faq import (
    VERSION_SCALE,
    FaqRecord,
    Rejection,
    detect_lang,
    event_version,
    parse_image,
    parse_item,
    plan_change,
    route,
)

ROLES = {"public": ["public"], "staff": ["public", "staff"]}


def item(**over):
    base = {"id": "q1", "question": "How do I reset my password?", "answer": "Settings > Account > Reset.",
            "role": "public", "source_url": "https://help.example.com/q1", "lang": "en",
            "updated_at": "2024-05-01T12:00:00Z"}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


def ddb(d):
    return {k: {"S": v} if isinstance(v, str) else {"N": str(v)} for k, v in d.items()}


def stream(name, new=None, old=None, seq="100", ts=1_714_564_800, key="q1"):
    body = {"Keys": {"id": {"S": key}}, "SequenceNumber": seq, "ApproximateCreationDateTime": ts,
            "StreamViewType": "NEW_AND_OLD_IMAGES", "SizeBytes": 10}
    if new is not None:
        body["NewImage"] = ddb(new)
    if old is not None:
        body["OldImage"] = ddb(old)
    return {"eventID": f"e-{seq}", "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": body}


# ----------------------------------------------------------------------------------- record


def test_valid_image_becomes_a_record():
    rec = parse_image(ddb(item(updated_at="2024-05-01T21:00:00+09:00")))
    assert rec == FaqRecord("q1", "How do I reset my password?", "Settings > Account > Reset.", "public",
                            "https://help.example.com/q1", "en", "2024-05-01T12:00:00Z")


@pytest.mark.parametrize("over,reason", [
    ({"id": None}, "id: missing"),
    ({"question": None}, "question: missing"),
    ({"answer": "   "}, "answer: empty"),
    ({"source_url": "javascript:alert(1)"}, "source_url"),
    ({"source_url": "https://x.example/a|b"}, "source_url"),
    ({"updated_at": "yesterday"}, "updated_at"),
    ({"updated_at": None}, "updated_at: missing"),
    ({"lang": "fr"}, "lang"),
    ({"question": "x" * 2001}, "question: 2001 characters"),
])
def test_missing_or_invalid_fields_are_rejections_with_a_reason(over, reason):
    rec = parse_image(ddb(item(**over)))
    assert isinstance(rec, Rejection)
    assert reason in rec.reason


def test_number_fields_and_lang_detection():
    rec = parse_item(item(updated_at=1714564800, lang=None, question="パスワードを忘れました", answer="設定から再設定できます。"))
    assert rec.updated_at == "2024-05-01T12:00:00Z" and rec.lang == "ja"
    assert parse_item(item(lang="ja-JP")).lang == "ja"
    assert detect_lang("VPN access") == "en" and detect_lang("VPNの申請") == "ja"
    num = parse_image({**ddb(item()), "updated_at": {"N": "1714564800"}})
    assert num.updated_at == "2024-05-01T12:00:00Z"


def test_non_string_question_is_rejected():
    image = {**ddb(item()), "question": {"N": "5"}}
    rec = parse_image(image)
    assert isinstance(rec, Rejection) and "question: expected a string" in rec.reason


# ----------------------------------------------------------------------------------- routing


@pytest.mark.parametrize("role,expected", [
    ("public", {"public", "staff"}),
    ("staff", {"staff"}),
    ("Staff", set()),          # exact match only
    ("admin", set()),          # unknown -> nowhere
    (None, set()),             # missing -> nowhere
    ("", set()),
])
def test_route_fails_closed(role, expected):
    rec = parse_item(item(role=role))
    assert route(rec, ROLES) == expected


def test_non_string_role_routes_nowhere():
    rec = parse_image({**ddb(item()), "role": {"SS": ["public", "staff"]}})
    assert isinstance(rec, FaqRecord) and rec.role is None and route(rec, ROLES) == frozenset()


# ----------------------------------------------------------------------------------- versions


def test_version_orders_by_time_then_sequence():
    a = event_version(stream("INSERT", item(), seq="4421584500000000017450439091", ts=100))
    b = event_version(stream("MODIFY", item(), seq="4421584500000000017450439092", ts=100))
    c = event_version(stream("MODIFY", item(), seq="1", ts=101))
    assert a < b < c
    assert a == 100 * VERSION_SCALE + 450439091
    assert c < 2**63
    # Lambda may send fractional seconds: the whole second counts
    assert event_version(stream("MODIFY", item(), seq="7", ts=100.9)) == 100 * VERSION_SCALE + 7


@pytest.mark.parametrize("seq,ts", [("abc", 1), ("1", "x"), (None, 1), ("1", -1), ("1", True)])
def test_bad_version_inputs_are_rejections(seq, ts):
    plan = plan_change(stream("INSERT", item(), seq=seq, ts=ts), ROLES)
    assert plan.rejection is not None and plan.writes == 0


# ----------------------------------------------------------------------------------- plan


def test_insert_public_upserts_into_public_and_staff():
    plan = plan_change(stream("INSERT", item()), ROLES)
    assert plan.upsert == {"public", "staff"} and plan.delete == set()
    assert plan.record.id == "q1" and plan.rejection is None and plan.unrouted is None


def test_insert_staff_goes_to_staff_only_and_is_kept_out_of_public():
    plan = plan_change(stream("INSERT", item(role="staff")), ROLES)
    assert plan.upsert == {"staff"} and plan.delete == {"public"}


def test_unknown_role_is_indexed_nowhere_and_counted():
    plan = plan_change(stream("INSERT", item(role="contractor")), ROLES)
    assert plan.upsert == set() and plan.record is None
    assert plan.delete == {"public", "staff"}
    assert "contractor" in plan.unrouted


def test_modify_public_to_staff_revokes_public():
    plan = plan_change(stream("MODIFY", item(role="staff"), old=item(role="public")), ROLES)
    assert plan.upsert == {"staff"} and plan.delete == {"public"} and plan.revoked == {"public"}


def test_modify_staff_to_public_widens():
    plan = plan_change(stream("MODIFY", item(role="public"), old=item(role="staff")), ROLES)
    assert plan.upsert == {"public", "staff"} and plan.revoked == set()


def test_modify_to_unknown_role_removes_from_every_index():
    plan = plan_change(stream("MODIFY", item(role="admin"), old=item(role="public")), ROLES)
    assert plan.upsert == set() and plan.delete == {"public", "staff"} and plan.revoked == {"public", "staff"}


def test_modify_to_invalid_image_is_rejected_and_deleted_everywhere():
    plan = plan_change(stream("MODIFY", item(answer=None), old=item()), ROLES)
    assert plan.rejection is not None and "answer: missing" in plan.rejection.reason
    assert plan.rejection.id == "q1"
    assert plan.upsert == set() and plan.delete == {"public", "staff"}


def test_remove_deletes_from_every_index_even_without_old_image():
    plan = plan_change(stream("REMOVE", old=item(role="staff")), ROLES)
    assert plan.delete == {"public", "staff"} and plan.revoked == {"staff"} and plan.upsert == set()
    bare = plan_change(stream("REMOVE"), ROLES)
    assert bare.delete == {"public", "staff"} and bare.doc_id == "q1"


def test_image_id_must_match_the_key():
    plan = plan_change(stream("INSERT", item(id="other"), key="q1"), ROLES)
    assert plan.rejection is not None and plan.upsert == set()


def test_record_without_keys_is_a_rejection():
    rec = stream("INSERT", item())
    del rec["dynamodb"]["Keys"]
    plan = plan_change(rec, ROLES)
    assert plan.rejection is not None and plan.writes == 0


def test_unknown_event_name_is_rejected():
    plan = plan_change(stream("TRUNCATE", item()), ROLES)
    assert plan.rejection is not None and plan.writes == 0
