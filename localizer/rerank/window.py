"""Sliding windows over a ranked list, pure and model-free.

A listwise model sees only ``window`` candidates at a time. Windows slide from the bottom of
the list to the top, each overlapping the previous one by ``window - stride``, so a strong
candidate found low in the list is carried upward window after window (the bubble pass of
RankGPT and rank_llm). With rank_llm's window 10 and stride 5, a top 20 takes three calls; with
localize's default window 12 and stride 8, two (8-20, then 0-12, four candidates carried up). Either
way any item ranked best by every window it is in ends at the very top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generic, Sequence, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class WindowTask(Generic[T]):
    """One window to order: which list it belongs to, where it sits, and its items."""

    owner: int
    span: tuple[int, int]
    items: list[T]


RankWindows = Callable[[list[WindowTask[T]]], list[Sequence[int]]]


def window_spans(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """``[start, end)`` spans from the bottom up; the last one always starts at 0.

    Unlike rank_llm's loop this never emits a window that lies wholly inside the previous one
    (e.g. 0-2 after 0-7), which would cost a model call and change nothing.
    """
    if window < 1 or not 0 < stride <= window:
        raise ValueError(f"need window >= 1 and 0 < stride <= window (got window={window}, stride={stride})")
    spans: list[tuple[int, int]] = []
    end = n
    while end > 0:
        start = max(end - window, 0)
        spans.append((start, end))
        if start == 0:
            break
        end -= stride
    return spans


def apply_order(items: Sequence[T], span: tuple[int, int], order: Sequence[int]) -> list[T]:
    """A copy of ``items`` whose ``span`` is rearranged so that ``order[i]`` (window-relative) comes i-th."""
    start, end = span
    inside = list(items[start:end])
    if sorted(order) != list(range(len(inside))):
        raise ValueError(f"order {list(order)} is not a permutation of the {len(inside)} window positions")
    return list(items[:start]) + [inside[i] for i in order] + list(items[end:])


def sliding_rerank_batch(lists: Sequence[Sequence[T]], window: int, stride: int,
                         rank_windows: RankWindows) -> tuple[list[list[T]], list[list[tuple[tuple[int, int], list[int]]]]]:
    """Rerank several lists, step by step, with one ``rank_windows`` call per step for all lists.

    The windows of one list depend on each other (a window sees what the one below promoted),
    so only the same step of different lists can share a batch. Returns the reordered lists and,
    per list, the (span, order) of every step in the order applied.
    """
    current = [list(items) for items in lists]
    plans = [window_spans(len(items), window, stride) for items in current]
    trace: list[list[tuple[tuple[int, int], list[int]]]] = [[] for _ in current]
    for step in range(max((len(p) for p in plans), default=0)):
        todo = [i for i, plan in enumerate(plans) if step < len(plan)]
        tasks = [WindowTask(i, plans[i][step], current[i][plans[i][step][0]:plans[i][step][1]]) for i in todo]
        orders = rank_windows(tasks)
        if len(orders) != len(todo):
            raise ValueError(f"rank_windows returned {len(orders)} orders for {len(todo)} windows")
        for i, order in zip(todo, orders):
            span = plans[i][step]
            current[i] = apply_order(current[i], span, order)
            trace[i].append((span, list(order)))
    return current, trace


def sliding_rerank(items: Sequence[T], window: int, stride: int,
                   rank_window: Callable[[list[T]], Sequence[int]]) -> list[T]:
    """One list; ``rank_window`` gets a window's items and returns their best-first positions."""
    reranked, _ = sliding_rerank_batch([items], window, stride, lambda tasks: [rank_window(t.items) for t in tasks])
    return reranked[0]
