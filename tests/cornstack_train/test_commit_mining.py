"""The commit-pair miner on a synthetic repository whose history is known: which commits are kept, which functions."""

from __future__ import annotations

from pathlib import Path

from cornstack_train.data.commits import (
    CommitConfig,
    CommitPair,
    UsableCommit,
    commit_pairs,
    describes_fault,
    is_bot_author,
    select_commits,
)
from indexer.git.log import RawCommit, iter_commits

from tests.conftest import commit_all, git, make_git_repo

CALC = '''def parse(text):
    """Split a comma-separated line into numbers."""
    return [float(x) for x in text.split(",")]


def total(values):
    """Sum of the values."""
    result = 0
    for v in values:
        result += v
    return result


def mean(values):
    """Arithmetic mean of the values."""
    return total(values) / len(values)


def render(values):
    """The values as a comma-separated line."""
    return ",".join(str(v) for v in values)
'''

BOT = "dependabot[bot] <49699333+dependabot[bot]@users.noreply.github.com>"


def edit(repo: Path, rel: str, old: str, new: str) -> None:
    path = repo / rel
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def function_at(source: str, name: str) -> str:
    """The text of a top-level function of CALC-like source, as the miner cuts it."""
    start = source.index(f"def {name}(")
    end = source.find("\n\n\ndef ", start)
    return source[start:] if end < 0 else source[start:end + 1]


def build_history(tmp_path: Path) -> dict[str, str]:
    """One repository with each kind of commit the miner must keep or skip; returns their SHAs by role."""
    helpers = {f"pkg/mod{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(12)}
    repo = make_git_repo(tmp_path / "calc", {"pkg/calc.py": CALC, "pkg/__init__.py": '__version__ = "0.1.0"\n',
                                             **helpers})
    shas = {"repo": str(repo)}
    before_fix = (repo / "pkg/calc.py").read_text()
    edit(repo, "pkg/calc.py", "    result = 0\n", "    result = 0.0\n")
    edit(repo, "pkg/calc.py", "    return total(values) / len(values)\n",
         "    if not values:\n        return 0.0\n    return total(values) / len(values)\n")
    shas["fix"] = commit_all(repo, "Fix crash in mean on empty input and wrong integer total")
    shas["before_fix"] = before_fix

    edit(repo, "pkg/calc.py", 'str(v) for v in values', 'format(v, "g") for v in values')
    shas["feature"] = commit_all(repo, "Render numbers in their shortest form")
    edit(repo, "pkg/calc.py", 'text.split(",")', 'text.replace(";", ",").split(",")')
    shas["reverted"] = commit_all(repo, "Accept semicolons between numbers in parse")
    git(repo, "revert", "--no-edit", "HEAD")
    shas["revert"] = git(repo, "rev-parse", "HEAD").strip()

    edit(repo, "pkg/__init__.py", '"0.1.0"', '"0.2.0"')
    edit(repo, "pkg/calc.py", '    """Sum of the values."""\n', '    """Sum of the values (0.2.0)."""\n')
    shas["version"] = commit_all(repo, "Bump version to 0.2.0")

    edit(repo, "pkg/calc.py", 'for x in text.split(",")', 'for x in text.strip().split(",")')
    git(repo, "add", "-A")
    git(repo, "commit", "-q", f"--author={BOT}", "-m", "Strip surrounding blanks before parsing numbers")
    shas["bot"] = git(repo, "rev-parse", "HEAD").strip()

    for i in range(12):  # one function changed in each of twelve files: a bulk commit
        edit(repo, f"pkg/mod{i}.py", f"x + {i}", f"x - {i}")
    shas["bulk"] = commit_all(repo, "Fix the sign error in every helper")

    git(repo, "checkout", "-q", "-b", "side")
    edit(repo, "pkg/calc.py", "    result = 0.0\n", "    result = 0.0  # float even for no values\n")
    shas["side"] = commit_all(repo, "Document why total starts from a float zero")
    git(repo, "checkout", "-q", "main")
    edit(repo, "pkg/mod0.py", "x - 0", "x - 0 * 1")
    commit_all(repo, "Spell out the zero offset of the first helper")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge branch side: fix wrong total documentation", "side")
    shas["merge"] = git(repo, "rev-parse", "HEAD").strip()
    return shas


def test_the_miner_keeps_the_fix_with_exactly_its_functions_and_skips_the_rest(tmp_path):
    shas = build_history(tmp_path)
    stats: dict[str, int] = {}
    pairs = list(commit_pairs(Path(shas["repo"]), CommitConfig(), stats=stats))
    by_commit: dict[str, list[CommitPair]] = {}
    for p in pairs:
        by_commit.setdefault(p.commit, []).append(p)

    fix = by_commit[shas["fix"]]
    assert sorted((p.path, p.name) for p in fix) == [("pkg/calc.py", "mean"), ("pkg/calc.py", "total")]
    for p in fix:  # the positive is the function before the fix, docstring included
        assert p.positive.strip() == function_at(shas["before_fix"], p.name).strip()
        assert p.query == "Fix crash in mean on empty input and wrong integer total"
    assert "if not values" not in next(p for p in fix if p.name == "mean").positive

    for role in ("revert", "version", "bot", "bulk", "merge"):
        assert shas[role] not in by_commit, role
    # The reverted commit itself and plain changes stay: only the revert is bookkeeping.
    assert {shas["feature"], shas["reverted"], shas["side"]} <= set(by_commit)
    assert [p.name for p in by_commit[shas["feature"]]] == ["render"]
    assert stats["commit_skipped_revert"] == 1 and stats["commit_skipped_version"] == 1
    assert stats["commit_skipped_bot"] == 1 and stats["commit_skipped_too_large"] == 1
    assert "commit_skipped_merge" not in stats  # merges never reach the message rules: --no-merges
    # Fault-describing commits come first; the fix is the only usable one (the bulk "fix" is skipped).
    assert pairs[0].commit == shas["fix"] and stats["commits_used_fault"] == 1


def test_fault_describing_commits_survive_the_pair_cap(tmp_path):
    funcs = "".join(f"def f{i}(x):\n    return x + {i}\n\n\n" for i in range(6))
    repo = make_git_repo(tmp_path / "r", {"m.py": funcs})
    fixes = []
    messages = ["Fix wrong offset returned by f0", "Use a named constant in f1", "Make f2 clearer to read",
                "Resolve crash of f3 on huge input", "Prefer addition order in f4", "Simplify the body of f5"]
    for i, message in enumerate(messages):
        edit(repo, "m.py", f"x + {i}\n", f"{i} + x\n")
        sha = commit_all(repo, message)
        if describes_fault(message):
            fixes.append(sha)
    assert len(fixes) == 2

    stats: dict[str, int] = {}
    capped = list(commit_pairs(repo, CommitConfig(max_pairs=2), stats=stats))
    assert sorted(p.commit for p in capped) == sorted(fixes)
    assert [p.name for p in capped] == ["f3", "f0"]  # fixes first, newest first among them
    assert stats["commit_skipped_pair_cap"] == 4 and stats["commits_used"] == 2

    three = list(commit_pairs(repo, CommitConfig(max_pairs=3)))
    assert [p.name for p in three] == ["f3", "f0", "f5"]  # then the newest other commit
    assert len(list(commit_pairs(repo, CommitConfig(max_pairs=0)))) == 6  # 0: no cap

    # Pairs the quality rules drop do not count against the cap.
    dropped = list(commit_pairs(repo, CommitConfig(max_pairs=2), stats=(s := {}),
                                check=lambda p: "too_short" if p.name == "f3" else None))
    assert [p.name for p in dropped] == ["f0", "f5"] and s["dropped_commit_too_short"] == 1


def test_select_commits_fills_the_cap_with_whole_commits():
    def usable(sha: str, fault: bool, n: int) -> UsableCommit:
        pair = CommitPair(sha, "q", "p.py", "f", "python", "def f(): pass")
        return UsableCommit(sha, fault, (pair,) * n)

    commits = [usable("a", False, 1), usable("b", True, 3), usable("c", True, 2), usable("d", False, 1)]
    chosen, left = select_commits(commits, 4)
    assert [c.sha for c in chosen] == ["b", "a"] and left == 2  # c would overflow; a still fits
    chosen, left = select_commits(commits, 0)
    assert [c.sha for c in chosen] == ["b", "c", "a", "d"] and left == 0


def test_bot_authors_and_fault_messages():
    assert is_bot_author("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")
    assert is_bot_author("renovate[bot]", "29139614+renovate[bot]@users.noreply.github.com")
    assert is_bot_author("pre-commit-ci[bot]", "66853113+pre-commit-ci[bot]@users.noreply.github.com")
    assert is_bot_author("github-actions", "41898282+github-actions[bot]@users.noreply.github.com")
    assert is_bot_author("Renovate Bot", "bot@renovateapp.com")
    assert not is_bot_author("Abbot Robertson", "abbot@example.com")
    assert not is_bot_author("Ada Lovelace", "ada@example.org")
    assert describes_fault("Handle None without crashing; previously raised TypeError: wrong type")
    assert describes_fault("Fixed #1234 -- Made QuerySet.count() handle empty IN lists")
    assert not describes_fault("Add a --json option to the CLI (#1234)")


def test_git_log_reads_the_author_and_raw_commit_stays_compatible(tmp_path):
    repo = make_git_repo(tmp_path / "r", {"a.py": "def f():\n    return 1\n"})
    (repo / "a.py").write_text("def f():\n    return 2\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", f"--author={BOT}", "-m", "Return two")
    (raw,) = list(iter_commits(repo))
    assert (raw.author, raw.email) == ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com")
    assert raw.message == "Return two" and raw.files == 1 and raw.time > 0 and len(raw.parents) == 1
    old_style = RawCommit("abc", ("def",), "msg", "", 1, 2, 3)  # callers that build it positionally still work
    assert (old_style.author, old_style.email, old_style.time) == ("", "", 3)
