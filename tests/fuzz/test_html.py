"""Fuzzing crawled-page extraction (processors/core/crawl.py decode_html / extract_page / page_items): the
FAQ test site's pages with byte and character mutations, tag soups of FAQ structures (JSON-LD, microdata,
details, dl, headings), arbitrary bytes. Only PageError escapes; links are canonical; items validate."""

from __future__ import annotations

from hypothesis import given

from tests.fuzz.budget import fuzz_settings
from tests.fuzz.targets import HTML


@fuzz_settings(200)
@given(HTML.strategy())
def test_html_fuzz(arg):
    HTML.check(arg)


def test_regression_control_character_before_an_answer_keeps_the_page():
    """Found by the benchmark run: a control character (ESC) in the text between a question and its answer
    made lxml refuse the wrapper element (ValueError): the whole page was skipped as unparseable."""
    from processors.core.crawl import extract_page

    page = extract_page('<html><body><details><summary>How do I reset it?</summary> \x1b\x00<p>Use the link.</p>'
                        "</details><h2>Why?</h2>\x1b<p>Because.</p></body></html>", "https://example.com/faq/")
    assert [(q.question, q.answer) for q in page.qas] == [("How do I reset it?", "Use the link."), ("Why?", "Because.")]
