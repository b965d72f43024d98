"""Human and machine output for a localization result."""

from __future__ import annotations

import json
from typing import TextIO

from rich.console import Console
from rich.table import Table

from localizer.api import LocalizationResult


def render_json(result: LocalizationResult, level: str, stream: TextIO) -> None:
    stream.write(json.dumps(result.to_json_dict(level), indent=2) + "\n")


def past_fix(evidence) -> str:
    """``abc1234 2023-05-01 Fix the parser`` for the most similar past commit, or nothing."""
    if not evidence:
        return ""
    commit = evidence[0]
    subject = commit.subject if len(commit.subject) <= 60 else commit.subject[:57] + "..."
    return f"{commit.sha[:7]} {commit.date} {subject}"


def render_table(result: LocalizationResult, level: str, console: Console) -> None:
    where = result.repo + (f" @ {result.commit[:12]}" if result.commit else "")
    if level in ("file", "both"):
        table = Table(title=f"Suspect files ({result.retriever}) — {where}", title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("score", justify="right")
        table.add_column("path")
        with_fixes = any(hit.evidence for hit in result.files)
        if with_fixes:
            table.add_column("most similar past fix")
        for rank, hit in enumerate(result.files, 1):
            table.add_row(str(rank), f"{hit.score:.3f}", hit.path, *([past_fix(hit.evidence)] if with_fixes else []))
        console.print(table)
    if level in ("function", "both"):
        table = Table(title=f"Suspect functions ({result.retriever})", title_justify="left")
        table.add_column("rank", justify="right")
        table.add_column("score", justify="right")
        table.add_column("location")
        table.add_column("name")
        for rank, hit in enumerate(result.functions, 1):
            table.add_row(str(rank), f"{hit.score:.3f}", f"{hit.path}:{hit.start_line}-{hit.end_line}", hit.name)
        console.print(table)
