"""The layout argument of the processes x threads benchmark (the measurement itself needs real repos)."""

from __future__ import annotations

import argparse

import pytest

from benchmarks.bench_workers import parse_layout


def test_layouts_parse_and_bad_ones_say_why():
    assert parse_layout("2x1") == (2, 1) and parse_layout("1X2") == (1, 2)
    for bad in ("2", "ax1", "0x2", "2x0", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_layout(bad)
