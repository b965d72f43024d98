"""Issue bytes to text (issue #26, case 9): byte-order marks decide the encoding."""

from __future__ import annotations

import codecs

import pytest

from indexer.errors import IssueError
from localizer.issue_input import decode_issue, read_issue

TEXT = "Crash in Cart.total — naïve coupon ✓\n\nSee `apply_coupon`.\n"


@pytest.mark.parametrize("bom,encoding", [
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
])
def test_a_byte_order_mark_decides_the_encoding_and_is_dropped(tmp_path, bom, encoding):
    data = bom + TEXT.encode(encoding)
    assert decode_issue(data) == TEXT
    path = tmp_path / "issue.md"
    path.write_bytes(data)
    assert read_issue(path) == TEXT


def test_without_a_mark_zero_bytes_are_still_binary():
    with pytest.raises(IssueError, match="looks binary"):
        decode_issue(TEXT.encode("utf-16-le"))
    with pytest.raises(IssueError, match="looks binary"):
        decode_issue(codecs.BOM_UTF16_BE + "title\0\1\2".encode("utf-16-be"))  # a mark, then NULs: still not text
    with pytest.raises(IssueError, match="empty"):
        decode_issue(codecs.BOM_UTF16_LE + " \n".encode("utf-16-le"))
