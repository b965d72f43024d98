"""Turning whatever a small model writes into a permutation, never failing.

Models answer ``[3] > [1] > [2]`` when trained, and anything at all when not: repeated ids,
ids past the window, prose, an empty string. The window must still come out as a permutation:
mentioned ids in the order of first mention, then every unmentioned id in its original order,
so a useless answer leaves the retriever's order untouched.
"""

from __future__ import annotations

import re
from typing import Iterable

_BRACKETED = re.compile(r"\[\s*(\d+)\s*\]")
_NUMBER = re.compile(r"\d+")
# Look-alike digits some models emit (superscripts, subscripts, circled, full-width), as in rank_llm.
_FAKE_DIGITS = str.maketrans(
    "⁰¹²³⁴⁵⁶⁷⁸⁹₀₁₂₃₄₅₆₇₈₉①②③④⑤⑥⑦⑧⑨０１２３４５６７８９",
    "0123456789" "0123456789" "123456789" "0123456789",
)


def mentioned_ids(response: str) -> list[int]:
    """The 1-based ids in ``response``, in order, repeats kept.

    Bracketed ids are trusted when there are any, so prose such as "the top 2 are [5] and [3]"
    yields 5, 3 and not 2. Reasoning before ``</think>`` is ignored.
    """
    if "</think>" in response:
        response = response.rsplit("</think>", 1)[-1]
    response = response.translate(_FAKE_DIGITS)
    bracketed = _BRACKETED.findall(response)
    found = bracketed if bracketed else _NUMBER.findall(response)
    return [int(x) for x in found if len(x) <= 6]


def complete_order(ids: Iterable[int], n: int) -> list[int]:
    """0-based order over ``n`` positions from 1-based ``ids``: repeats and out-of-range ids dropped,
    unmentioned positions appended in their original order."""
    seen: set[int] = set()
    order: list[int] = []
    for one_based in ids:
        pos = one_based - 1
        if 0 <= pos < n and pos not in seen:
            seen.add(pos)
            order.append(pos)
    return order + [pos for pos in range(n) if pos not in seen]


def parse_permutation(response: str, n: int) -> list[int]:
    """A best-first permutation of ``range(n)`` from a model's answer; the identity when it says nothing usable."""
    return complete_order(mentioned_ids(response or ""), n)
