"""Triage a directory of issue files, one report each, skipping reports that are up to date.

For teams without GitHub: issues live as files (``issues/0042-login.md``) and
a git hook or cron job keeps ``issues/reports/0042-login.triage.md`` current.
Each report carries a fingerprint of everything it was made from (the issue
text, the indexed code, HEAD, the settings, the localizer version), so a run
rewrites only reports whose inputs changed and is safe to repeat. One bad
issue file (empty, binary) is reported and skipped; the others still run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from indexer.storage.atomic import atomic_write_bytes
from indexer.errors import IssueError, LocalizerError

from localizer.api import read_issue
from localizer.triage.triager import IssueText, TriageConfig, Triager
from localizer.triage.render import render_json, render_markdown, report_fingerprint

log = logging.getLogger(__name__)

ISSUE_SUFFIXES = (".md", ".markdown", ".txt")
REPORTS_DIRNAME = "reports"


@dataclass
class BatchResult:
    out_dir: Path
    written: list[Path] = field(default_factory=list)
    up_to_date: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)

    def line(self) -> str:
        return (f"{len(self.written)} written, {len(self.up_to_date)} up to date, {len(self.failed)} failed "
                f"(reports in {self.out_dir})")

    def summary(self) -> dict:
        return {"written": len(self.written), "up_to_date": len(self.up_to_date), "failed": len(self.failed),
                "errors": {str(p): m for p, m in self.failed}, "out_dir": str(self.out_dir), "line": self.line()}


class ReportError(LocalizerError):
    """The reports cannot be written (an unwritable or impossible ``--out-dir``)."""


def issue_files(issues_dir: Path, out_dir: Path, warn: bool = True) -> list[Path]:
    """Issue files directly in ``issues_dir`` (not hidden, not the reports).

    A symlink that leads out of the directory is skipped, with a warning: a checkout can
    plant ``issues/x.md -> ~/.ssh/id_rsa``, and its report would quote the file.
    """
    if not issues_dir.is_dir():
        raise IssueError(f"issues directory does not exist: {issues_dir}")
    out, root = out_dir.resolve(), issues_dir.resolve()
    files = []
    for path in sorted(issues_dir.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.suffix.lower() not in ISSUE_SUFFIXES:
            continue
        target = path.resolve()
        if target.parent == out:
            continue
        if path.is_symlink() and not target.is_relative_to(root):
            if warn:
                log.warning("skipped %s: a symlink to %s, outside %s", path, target, issues_dir)
            continue
        files.append(path)
    return files


def prepare_out_dir(out_dir: Path) -> None:
    """Create the reports dir and check it takes a file, before any issue is triaged."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out_dir):
            pass
    except OSError as exc:
        raise ReportError(f"cannot write reports to {out_dir}: {exc.strerror or exc}") from None


def report_names(files: list[Path], suffix: str) -> dict[Path, str]:
    """``<stem>.triage.md``; issues sharing a stem (``a.md``, ``a.txt``) keep their full names."""
    stems: dict[str, int] = {}
    for f in files:
        stems[f.stem] = stems.get(f.stem, 0) + 1
    return {f: f"{f.stem if stems[f.stem] == 1 else f.name}.triage.{suffix}" for f in files}


def index_digest(triager: Triager) -> str:
    """What was indexed, as a hash: reports go stale when the code they point at changes."""
    digest = hashlib.sha256()
    for chunk in triager.localizer.index().chunks:
        digest.update(f"{chunk.path}\0{chunk.start_line}\0{chunk.end_line}\0".encode("utf-8", "surrogateescape"))
        digest.update(chunk.text.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def fingerprint(issue_text: str, code_digest: str, head: str | None, config: TriageConfig, output_format: str,
                show_emails: bool, version: str) -> str:
    payload = {"issue": hashlib.sha256(issue_text.encode("utf-8", "surrogateescape")).hexdigest(),
               "code": code_digest, "head": head, "config": config.fingerprint_fields(), "format": output_format,
               "emails": show_emails, "version": version}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


def triage_directory(
    repo: str | Path,
    issues_dir: Path,
    config: TriageConfig,
    *,
    out_dir: Path | None = None,
    output_format: str = "markdown",
    show_emails: bool = False,
    force: bool = False,
    triager: Triager | None = None,
    before_each: Callable[[], None] | None = None,
) -> BatchResult:
    """Write one report per issue file into ``out_dir`` (default ``<issues_dir>/reports``)."""
    from localizer import __version__

    out_dir = out_dir or issues_dir / REPORTS_DIRNAME
    files = issue_files(issues_dir, out_dir)
    result = BatchResult(out_dir)
    if not files:
        return result
    prepare_out_dir(out_dir)
    triager = triager or Triager(repo, config)
    code = index_digest(triager)
    state = triager.repo_state()
    head = state.head if state else None
    suffix = "json" if output_format == "json" else "md"
    names = report_names(files, suffix)
    for path in files:
        if before_each:
            before_each()
        target = out_dir / names[path]
        try:
            text = read_issue(path)
            issue = IssueText.parse(text, str(path))
        except IssueError as exc:
            result.failed.append((path, str(exc)))
            continue
        mark = fingerprint(text, code, head, config, output_format, show_emails, __version__)
        if not force and target.is_file():
            try:
                if report_fingerprint(target.read_text(errors="replace")) == mark:
                    result.up_to_date.append(target)
                    continue
            except OSError:
                pass
        try:
            report = triager.triage(issue)
        except LocalizerError as exc:
            result.failed.append((path, str(exc)))
            continue
        report.fingerprint = mark
        rendered = render_json(report, show_emails) if output_format == "json" else render_markdown(report, show_emails)
        try:
            atomic_write_bytes(target, rendered.encode("utf-8"))
        except OSError as exc:
            raise ReportError(f"cannot write {target}: {exc.strerror or exc}") from None
        result.written.append(target)
    return result
