"""A triage report as a GitHub-flavoured markdown comment, or as JSON for bots.

Pure functions of a :class:`~localizer.triage.triager.TriageReport`. The markdown is
meant to be pasted (or posted by a bot) as an issue comment, so it escapes
what GitHub would otherwise interpret: ``@name`` would notify people and ``|``
breaks tables. Code excerpts sit in collapsed ``<details>`` blocks to keep the
comment short. No timestamps: the same inputs render the same bytes, which is
what lets ``--issues-dir`` skip reports that are up to date.
"""

from __future__ import annotations

import json
import re

from localizer.triage.owners import CommitInfo, Owner
from localizer.triage.triager import Excerpt, Suspect, TriageReport

FINGERPRINT_RE = re.compile(r"<!-- localizer-triage fingerprint=([0-9a-f]+) -->")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def md_text(text: str) -> str:
    """Plain text safe inside markdown (and table cells), with @mentions defused."""
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\n", " ")).replace("@", "&#64;")


def md_code(text: str) -> str:
    """An inline code span that survives backticks and table pipes in the text."""
    text = text.replace("\n", " ").replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def code_block(excerpt: Excerpt) -> str:
    longest = max((len(run) for run in re.findall(r"`+", excerpt.text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = excerpt.text + ("\n…" if excerpt.truncated else "")
    return f"{fence}{excerpt.language or ''}\n{body}\n{fence}"


# Shown for an author whose name is empty. Falling back to the email put addresses into reports
# without --show-emails (issue #26, case 4).
UNNAMED = "(unnamed author)"


def person_text(name: str | None, email: str | None, show_emails: bool) -> str:
    """An author as the report shows them: the name, or a neutral label; the email only when asked."""
    shown = md_text(name.strip()) if name and name.strip() else UNNAMED
    if show_emails and email:
        shown += f" ({md_code(email)})"
    return shown


def owner_text(owner: Owner, show_emails: bool) -> str:
    name = person_text(owner.name, owner.email, show_emails)
    facts = []
    if owner.lines:
        facts.append(f"{owner.lines} line{'s' if owner.lines != 1 else ''}")
    if owner.commits:
        facts.append(f"{owner.commits} commit{'s' if owner.commits != 1 else ''}")
    if owner.last_date:
        facts.append(f"last {owner.last_date}")
    return f"{name} ({', '.join(facts)})" if facts else name


def _details(summary: str, excerpt: Excerpt | None) -> list[str]:
    if excerpt is None:
        return []
    return ["<details><summary>" + summary + "</summary>", "", code_block(excerpt), "", "</details>", ""]


def _function_section(functions: list[Suspect]) -> list[str]:
    out = ["### Suspect functions", "", "| # | location | function | score |", "|--:|---|---|--:|"]
    for s in functions:
        out.append(f"| {s.rank} | {md_code(s.location)} | {md_code(s.name)} | {s.score:.3f} |")
    out.append("")
    for s in functions:
        out += _details(f"{s.rank}. <code>{_html(s.location)}</code> {_html(s.name)}", s.excerpt)
    return out


def _file_section(files: list[Suspect], show_emails: bool, shown: dict[tuple[str, str], int]) -> list[str]:
    out = ["### Suspect files", "", "| # | file | score | likely owners |", "|--:|---|--:|---|"]
    for s in files:
        owners = "; ".join(owner_text(o, show_emails) for o in s.owners)
        if not owners:
            owners = md_text(s.owners_note) if s.owners_note else "—"
        elif s.owners_note:
            owners += f" ({md_text(s.owners_note)})"
        out.append(f"| {s.rank} | {md_code(s.location)} | {s.score:.3f} | {owners} |")
    out.append("")
    for s in files:
        if s.focus and (s.path, s.focus) in shown:
            continue  # its best function's excerpt is already above
        focus = f" around {_html(s.focus)}" if s.focus else ""
        out += _details(f"{s.rank}. <code>{_html(s.path)}</code>{focus}", s.excerpt)
    return out


def _past_fix_section(suspects: list[Suspect]) -> list[str]:
    """Each suspect's similar past fixes: a triager trusts a suspect more when a fix like this one changed it."""
    rows = []
    seen: set[tuple[str, str]] = set()
    for s in suspects:
        what = f"{s.path}::{s.name}" if s.name else s.path
        for commit in s.past_fixes:
            if (what, commit.sha) in seen:
                continue
            seen.add((what, commit.sha))
            rows.append(f"| {md_code(what)} | {md_code(commit.sha[:7])} | {commit.date} | {md_text(commit.subject)} |")
    if not rows:
        return []
    return ["### Similar past fixes", "", "| suspect | commit | date | subject |", "|---|---|---|---|", *rows, ""]


def _commit_section(commits: list[CommitInfo], show_emails: bool) -> list[str]:
    out = ["### Recent commits touching the suspects", "", "| commit | date | author | summary | suspects |",
           "|---|---|---|---|---|"]
    for c in commits:
        author = person_text(c.author, c.email, show_emails)
        paths = ", ".join(md_code(p) for p in c.paths)
        out.append(f"| {md_code(c.short)} | {c.date} | {author} | {md_text(c.summary)} | {paths} |")
    out.append("")
    return out


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("@", "&#64;")


def render_markdown(report: TriageReport, show_emails: bool = False) -> str:
    out = ["## Pre-triage: where this issue probably lives", ""]
    where = f"{md_code(report.head)}" if report.head else ""
    out.append(f"<sub>{md_text(report.generator or 'localizer')} · {md_text(report.retriever)} retrieval · {where}</sub>")
    out.append("")
    if report.confidence.note:
        out += [f"> **{md_text(report.confidence.note)}**", ""]
    if report.reviewers:
        out += ["**Suggested reviewers:** " + ", ".join(person_text(o.name, o.email, False) for o in report.reviewers),
                ""]
    if report.functions:
        out += _function_section(report.functions)
    if report.files:
        shown = {(f.path, f.name): f.rank for f in report.functions if f.excerpt is not None}
        out += _file_section(report.files, show_emails, shown)
    out += _past_fix_section(report.functions + report.files)
    if report.recent_commits:
        out += _commit_section(report.recent_commits, show_emails)
    if report.notes:
        out += ["**Notes**", ""] + [f"- {md_text(note)}" for note in report.notes] + [""]
    out.append("<sub>Ranked from the issue text and the repository's history: what the issue names, the code "
               "that matches it, and past commits like it (only commits before the ranked one). Owners last changed the suspect lines (git blame) or often change the "
               "files (git log), weighted by recency.</sub>")
    if report.fingerprint:
        out.append(f"<!-- localizer-triage fingerprint={report.fingerprint} -->")
    return "\n".join(out) + "\n"


def render_json(report: TriageReport, show_emails: bool = False) -> str:
    return json.dumps(report.to_json_dict(show_emails), indent=2, ensure_ascii=False) + "\n"


def report_fingerprint(text: str) -> str | None:
    """The fingerprint a rendered report (markdown or JSON) was written with, if any."""
    match = FINGERPRINT_RE.search(text)
    if match:
        return match.group(1)
    try:
        value = json.loads(text).get("fingerprint")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
