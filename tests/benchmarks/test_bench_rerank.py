"""bench_rerank's choice of issues: a repository's own Lite problem statements, in file order."""

from __future__ import annotations

import json

from benchmarks.bench_rerank import lite_issues


def test_lite_issues_are_the_repositorys_own_problem_statements(tmp_path):
    data = tmp_path / "lite.jsonl"
    rows = [{"repo": "pallets/flask", "problem_statement": "first flask issue"},
            {"repo": "psf/requests", "problem_statement": "a requests issue"},
            {"repo": "pallets/flask", "problem_statement": ""},
            {"repo": "pallets/flask", "problem_statement": "second flask issue"}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert lite_issues(data, tmp_path / "pallets__flask", 5) == ["first flask issue", "second flask issue"]
    assert lite_issues(data, tmp_path / "pallets__flask", 1) == ["first flask issue"]
    assert lite_issues(data, tmp_path / "sympy__sympy", 5) == []
