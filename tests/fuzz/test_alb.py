"""Fuzzing the ALB access-log parser (processors/core/parse.py parse_alb): real entries field by field
(replaced, quoted, dropped, appended tokens) and character mutations."""

from __future__ import annotations

from hypothesis import given

from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import ALB


@fuzz_settings(400)
@given(ALB.strategy())
def test_alb_fuzz(arg):
    ALB.check(arg)
