"""Fuzzing the issue parser: whatever an issue holds, it parses or is refused with an IssueError.

Issues are user input (``localize --issue``, ``triage --issues-dir``, a bot piping a GitHub issue):
``build_query`` must not raise, and ``validate_issue_text``/``decode_issue`` must raise nothing but
``IssueError``. The strategies mix free text with the shapes the parser looks for (traceback frames,
code fences, error lines, paths), including line numbers far longer than ``int()`` accepts. A few
hundred examples: seconds in the default test run.
"""

from __future__ import annotations

import codecs

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.errors import IssueError
from localizer.issue_input import decode_issue, validate_issue_text
from localizer.retrieval.query import IssueQuery, build_query

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.$<>]{0,15}", fullmatch=True)
paths = st.from_regex(r"(/?[\w.-]{1,8}/){0,3}[\w.-]{1,8}\.(py|java|js|ts|go|rb|php)", fullmatch=True)
numbers = st.one_of(
    st.integers(min_value=0, max_value=10**9).map(str),
    st.text(alphabet="0123456789", min_size=4301, max_size=4400),  # past int()'s 4300-digit limit
    st.text(alphabet="٠١٢٣٤٥٦٧٨٩０１２３", min_size=1, max_size=8),  # \d matches these digits too
)
frames = st.one_of(
    st.builds(lambda p, n, f: f'  File "{p}", line {n}, in {f}\n', paths, numbers, names),
    st.builds(lambda q, m, c, n: f"\tat {q}.{m}({c}.java:{n})\n", names, names, names, numbers),
    st.builds(lambda p, n, f: f"    at {f} ({p}:{n}:7)\n", paths, numbers, names),
)
pieces = st.one_of(
    st.text(max_size=40),
    frames,
    paths,
    names.map(lambda n: f"`{n}`"),
    st.sampled_from(["```\n", "```python\n", "`", "\n", "# ", "Traceback (most recent call last):\n",
                     "ValueError: bad\n", "pkg.errors.CustomError\n", "\0", "\r\n", "\ufeff", " " * 50]),
)
issues = st.lists(pieces, max_size=25).map("".join)


@FUZZ
@given(issues)
def test_build_query_parses_any_issue(text):
    query = build_query(text)
    assert isinstance(query, IssueQuery) and query.text == text
    assert query.title == "" or query.title in text
    assert all(isinstance(t, str) and t for t in query.terms)
    assert all(isinstance(f.line, int) and f.line >= 0 for f in query.frames)
    if text:
        assert query.dense_text.endswith(text[:4000])


@FUZZ
@given(issues)
def test_validate_refuses_only_binary_or_blank_text(text):
    bad = "\0" in text or not text.strip()
    try:
        assert validate_issue_text(text) == text and not bad
    except IssueError:
        assert bad


@FUZZ
@given(st.binary(max_size=300))
def test_decode_issue_raises_nothing_but_issue_errors(data):
    try:
        assert isinstance(decode_issue(data), str)
    except IssueError:
        pass


@FUZZ
@given(issues.filter(lambda t: "\0" not in t and t.strip() and not t.startswith("\ufeff")),
       st.sampled_from([(codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                        (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF32_LE, "utf-32-le"), (b"", "utf-8")]))
def test_decoded_issue_text_round_trips_through_a_byte_order_mark(text, encoding):
    bom, codec = encoding
    assert decode_issue(bom + text.encode(codec)) == text


@pytest.mark.parametrize("digits", ["9" * 5000, "1" * 4301], ids=["5000-digits", "4301-digits"])
def test_an_absurd_line_number_is_not_a_crash(digits):
    """int() refuses more than 4300 digits: such a "line number" used to raise ValueError out of build_query."""
    for text in (f'File "a.py", line {digits}, in f', f"at a.B.c(B.java:{digits})", f"x.js:{digits}"):
        build_query(text)
