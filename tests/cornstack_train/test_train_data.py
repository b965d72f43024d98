"""The CoRNStack data stages: cleaning rules, docstring and commit pairs, deny-list, filter and negatives cores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cornstack_train.data.cleaning import (
    code_issue,
    deduplicate,
    docstring_text,
    near_duplicates,
    pair_issue,
    query_issue,
)
from cornstack_train.data.commits import CommitConfig, clean_message, commit_pairs, skip_reason_for_message
from cornstack_train.data.denylist import BenchmarkHashes, canonical_repo_name, denied_by_name, function_hashes
from cornstack_train.data.docstrings import docstring_pairs
from cornstack_train.data.filtering import consistency_filter, inject_shuffled, measure_injection
from cornstack_train.data.mining import MineConfig, SourceSpec, mine_hub
from cornstack_train.data.negatives import hard_negatives
from cornstack_train.data.records import PAIR_COLUMNS, load_stage, load_stats
from cornstack_train.data.stages import mine_command

from tests.conftest import commit_all, git, make_git_repo

# ------------------------------------------------------------------ cleaning


@pytest.mark.parametrize(
    "raw,language,expected",
    [
        ('"""Add two numbers.\n\n    Longer text.\n    """', "python", "Add two numbers.\n\nLonger text."),
        ("r'''Raw docstring here.'''", "python", "Raw docstring here."),
        ("/**\n * Computes the sum.\n * Second line.\n * @param a first\n * @return sum\n */", "java",
         "Computes the sum.\nSecond line."),
        ("// Sum returns the total.\n// It never fails.", "go", "Sum returns the total.\nIt never fails."),
        ("# Returns the active users.\n#\n# Sorted by name.", "ruby", "Returns the active users.\n\nSorted by name."),
        ("/* Block comment text. */", "javascript", "Block comment text."),
        ("/**\n * Returns the {@code a + b} of {@link Foo#bar}.\n * <p>\n * Uses &lt;T&gt;, see {@link List the list}.\n */",
         "java", "Returns the a + b of Foo.bar.\n\nUses <T>, see the list."),
    ],
)
def test_docstring_text(raw, language, expected):
    assert docstring_text(raw, language) == expected


@pytest.mark.parametrize(
    "query,reason",
    [
        ("Add two numbers together and return the result.", None),
        ("Get it", "query_too_short"),
        ("See https://example.com/docs for the details of this call.", "url"),
        ("Returns the <b>bold</b> value of the element given.", "html"),
        ("Escapes &lt; characters in the input string please.", "html"),
        ("{@inheritDoc} and nothing else to say here.", "boilerplate"),
        ("Auto-generated method stub for the handler.", "boilerplate"),
        ("TODO: write a proper description for this function.", "boilerplate"),
        ("Copyright (c) 2020 ACME Inc. Licensed under MIT.", "boilerplate"),
        ("返回给定用户的全部订单列表以及状态", "non_english"),
        ("Gibt die Anzahl der Elemente in der Liste zurück und ist nicht leer.", "non_english"),
        ("Devuelve el número de elementos de la lista para el usuario.", "non_english"),
        ("Return the license of the package as a string.", None),
        ("Broken \x00\x01\x02 control characters inside this text.", "invalid_chars"),
    ],
)
def test_query_rules(query, reason):
    assert query_issue(query) == reason


def test_code_rules():
    assert code_issue("def f():\n    pass") == "code_too_short"
    assert code_issue("def f(x):\n    y = x + 1\n    return y") is None
    assert code_issue("def f():\n" + "    x = 1\n" * 3000) == "code_too_long"
    assert pair_issue("Too short", "def f(x):\n    y = x\n    return y") == "query_too_short"


def test_near_duplicates_and_dedup():
    base = "def total(items):\n" + "".join(f"    value_{i} = items[{i}] * {i} + offset\n" for i in range(20)) + "    return value_0\n"
    renamed = base.replace("offset", "shift", 1)  # one token differs
    other = "def parse(text):\n    parts = text.split(',')\n    return [p.strip() for p in parts if p]\n"
    assert near_duplicates([base, other, renamed]) == [2]
    assert near_duplicates([base, other]) == []
    queries = ["Sum the items.", "Sum the items.", "Parse text.", "Sum the items again."]
    codes = [base, base + "   ", other, renamed]
    result = deduplicate(queries, codes)
    assert result.keep == [0, 2] and result.exact == 1 and result.near == 1
    assert deduplicate(queries, codes, near_threshold=None).keep == [0, 2, 3]


# ---------------------------------------------------------------- docstrings

SOURCES = {
    "python": ('x.py', 'class A:\n    @staticmethod\n    def f(x):\n        """Add one to the number."""\n'
               '        y = x + 1\n        return y\n\n    def undocumented(self):\n        return 1\n',
               "A.f", "Add one to the number.", "@staticmethod\ndef f(x):\n    y = x + 1\n    return y"),
    "java": ("A.java", "public class A {\n    /**\n     * Computes the sum of two integers.\n     * @param a first\n"
             "     */\n    public int add(int a, int b) {\n        return a + b;\n    }\n}\n",
             "A.add", "Computes the sum of two integers.", "public int add(int a, int b) {\n    return a + b;\n}"),
    "javascript": ("a.js", "// Build a URL path from parts\nconst join = (a, b) => {\n  return a + '/' + b;\n};\n",
                   "join", "Build a URL path from parts", "const join = (a, b) => {\n  return a + '/' + b;\n};"),
    "typescript": ("a.ts", "class S {\n  /** Load the user record by id. */\n  async load(id: string) {\n"
                   "    return db.get(id);\n  }\n}\n", "S.load", "Load the user record by id.",
                   "async load(id: string) {\n  return db.get(id);\n}"),
    "go": ("a.go", "package x\n\n// Sum returns the total of the values.\nfunc (s *Stats) Sum(v []int) int {\n"
           "\tt := 0\n\treturn t\n}\n", "Stats.Sum", "Sum returns the total of the values.",
           "func (s *Stats) Sum(v []int) int {\n    t := 0\n    return t\n}"),
    "php": ("a.php", "<?php\nclass C {\n    /**\n     * Render the template.\n     * @param array $vars\n     */\n"
            "    public function render($vars) {\n        return $this->engine->render($vars);\n    }\n}\n",
            "C.render", "Render the template.",
            "public function render($vars) {\n    return $this->engine->render($vars);\n}"),
    "ruby": ("a.rb", "module M\n  # Returns the active users.\n  def active_users\n    users.select(&:active?)\n"
             "  end\nend\n", "M.active_users", "Returns the active users.",
             "def active_users\n  users.select(&:active?)\nend"),
}


@pytest.mark.parametrize("language", sorted(SOURCES))
def test_docstring_pairs_all_languages(language):
    _, source, name, query, positive = SOURCES[language]
    pairs = docstring_pairs(source, language)
    assert [(p.name, p.query, p.positive) for p in pairs] == [(name, query, positive)]


# ------------------------------------------------------------------ commits

MODULE_V1 = '''"""Utilities."""


def normalize(values):
    """Scale values to the unit interval."""
    low, high = min(values), max(values)
    return [(v - low) / (high - low) for v in values]


def describe(values):
    """Summarize values as a short string."""
    total = sum(values)
    return f"n={len(values)} total={total}"
'''


def test_commit_messages():
    assert skip_reason_for_message("Bump version to 1.2.3") == "version"
    assert skip_reason_for_message("Release 2.0") == "version"
    assert skip_reason_for_message("v1.4.0") == "version"
    assert skip_reason_for_message("Merge branch 'dev'") == "merge"
    assert skip_reason_for_message("Fix typo in docstring") == "typo"
    assert skip_reason_for_message("Revert \"Add cache\"") == "revert"
    assert skip_reason_for_message("Handle empty input in normalize without dividing by zero") is None
    long_msg = "Fix crash when the parser meets an empty file; also fix a typo in a comment nearby"
    assert skip_reason_for_message(long_msg) is None
    assert clean_message("Fix parser (#123)\n\nSee https://x.org/y\n\nSigned-off-by: A <a@b>") == "Fix parser\n\nSee"


def test_commit_pairs_from_history(tmp_path):
    repo = make_git_repo(tmp_path / "r", {"pkg/stats.py": MODULE_V1, "tests/test_stats.py": "def test_x():\n    pass\n"})
    (repo / "pkg/stats.py").write_text(MODULE_V1.replace(
        "    low, high = min(values), max(values)\n",
        "    low, high = min(values), max(values)\n    if high == low:\n        return [0.0 for _ in values]\n"))
    fix = commit_all(repo, "Handle constant input in normalize without dividing by zero")
    (repo / "pkg/stats.py").write_text((repo / "pkg/stats.py").read_text().replace("total=", "sum="))
    commit_all(repo, "Bump version to 0.2.0")
    (repo / "tests/test_stats.py").write_text("def test_x():\n    assert True\n")
    commit_all(repo, "Strengthen the statistics test assertions")
    (repo / "pkg/stats.py").write_text((repo / "pkg/stats.py").read_text() + "\n\ndef extra(v):\n    return v\n")
    commit_all(repo, "Add an extra helper for later use")
    big = "\n".join(f"CONSTANT_{i} = {i}" for i in range(50)) + "\n"
    (repo / "pkg/stats.py").write_text((repo / "pkg/stats.py").read_text().replace("def describe", big + "\ndef describe"))
    commit_all(repo, "Add many constants used by describe elsewhere")
    git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    (repo / "pkg/other.py").write_text("def side(x):\n    \"\"\"Side.\"\"\"\n    return x\n")
    commit_all(repo, "Side branch adds other module")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge branch side into main for the release", "side")

    stats: dict[str, int] = {}
    pairs = list(commit_pairs(repo, CommitConfig(max_changed_lines=40), stats=stats))
    assert [(p.commit, p.name, p.path) for p in pairs] == [(fix, "normalize", "pkg/stats.py")]
    # The positive is the function before the fix.
    assert "if high == low" not in pairs[0].positive and pairs[0].positive.startswith("def normalize(values):")
    assert '"""Scale values' in pairs[0].positive  # commit positives keep their docstring
    assert pairs[0].query == "Handle constant input in normalize without dividing by zero"
    assert stats["commits_used"] == 1 and stats["commit_skipped_version"] == 1
    assert stats["commit_skipped_too_large"] == 1
    assert stats["commit_skipped_no_function"] == 3  # test-only change, new function, side branch's new file
    assert "commit_skipped_merge" not in stats  # merges never reach the message rules: --no-merges


# ---------------------------------------------------------------- deny-list


@pytest.mark.parametrize(
    "name,reason",
    [
        ("django/django", "benchmark"),
        ("django__django", "benchmark"),
        ("https://github.com/psf/requests.git", "benchmark"),
        ("someone/sympy", "fork"),
        ("someone__scikit-learn", "fork"),
        ("jazzband/django-debug-toolbar", "name"),
        ("pytest-dev/pytest-xdist", "name"),
        ("pallets/click", None),
        ("encode/httpx", None),
    ],
)
def test_denied_by_name(name, reason):
    assert denied_by_name(name) == reason


def test_canonical_repo_name():
    assert canonical_repo_name("/work/train-repos/pallets__click") == "pallets/click"
    assert canonical_repo_name("git@github.com:Owner/Name.git") == "owner/name"


BENCH_FUNC = '''def super_len(o):
    """Length of o."""
    total_length = None
    if hasattr(o, "__len__"):
        total_length = len(o)
    return total_length
'''


def test_benchmark_content_overlap_and_mine_command(tmp_path):
    bench = tmp_path / "bench"
    make_git_repo(bench / "psf__requests", {"requests/utils.py": BENCH_FUNC})
    hashes = BenchmarkHashes.from_repos_dir(bench)
    assert hashes.repos == ["psf/requests"] and len(hashes.hashes) == 2  # with and without docstring
    assert function_hashes(BENCH_FUNC.encode(), "python") == hashes.hashes

    # A repository vendoring the benchmark function (re-indented), plus one of its own.
    own = '''def parse_range(text):
    """Parse a range like 3-7 into a tuple of integers."""
    start, _, end = text.partition("-")
    return int(start), int(end)
'''
    vendored = BENCH_FUNC.replace('"""Length of o."""', '"""Return the total length of the object o."""')
    app = make_git_repo(tmp_path / "acme__app", {"app/util.py": own + "\n\n" + vendored})
    denied = make_git_repo(tmp_path / "someone__django-extras", {"x.py": own})
    out = tmp_path / "data" / "mined"
    runner = CliRunner()
    args = [str(app), str(denied), "-o", str(out), "--benchmark-repos-dir", str(bench)]
    res = runner.invoke(mine_command, args)
    assert res.exit_code == 0, res.output
    ds = load_stage(out)
    assert list(ds.column_names) == list(PAIR_COLUMNS)
    assert ds["name"] == ["parse_range"] and ds["repo"] == ["acme/app"] and ds["kind"] == ["docstring"]
    assert ds["query"] == ["Parse a range like 3-7 into a tuple of integers."]
    stats = load_stats(out)
    assert stats["drop_reasons"]["dropped_benchmark_overlap"] == 1
    assert stats["denied_repos"] == {"someone/django-extras": "name"}
    assert stats["pairs_by_language"] == {"python": {"commit": 0, "docstring": 1}}

    # Finished: skipped without --overwrite; with it, the per-source shards are reused.
    res = runner.invoke(mine_command, args)
    assert res.exit_code == 0 and "already complete" in res.output
    res = runner.invoke(mine_command, args + ["--overwrite"])
    assert res.exit_code == 0, res.output
    assert load_stats(out)["shards_reused"] == 2

    bad = runner.invoke(mine_command, [str(tmp_path / "missing"), "-o", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "source is not a directory" in bad.output


def test_mine_hub_rows_and_unreachable_hub(tmp_path):
    rows = [
        {"query": "Return the sum of the two arguments given.", "document": "def add(a, b):\n    s = a + b\n    return s"},
        {"query": "x", "document": "def f():\n    pass"},
        {"document": "no query column"},
    ]
    spec = SourceSpec("hub:nomic-ai/cornstack-python-v1", "nomic-ai/cornstack-python-v1", "python")
    pairs, stats = mine_hub(spec, MineConfig(), rows_iter=rows)
    assert [p["positive"] for p in pairs] == [rows[0]["document"]]
    assert pairs[0]["language"] == "python" and pairs[0]["source"] == spec.location
    assert stats["dropped_query_too_short"] == 1 and stats["dropped_missing_columns"] == 1

    res = CliRunner().invoke(mine_command, ["hub:no-such-owner/no-such-dataset-xyz", "-o", str(tmp_path / "m")],
                             env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    assert res.exit_code != 0
    assert "cannot stream no-such-owner/no-such-dataset-xyz" in res.output
    assert "Traceback" not in res.output


# ------------------------------------------------------------- filter core


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_consistency_filter_ranks_and_threshold():
    codes = np.eye(4, dtype=np.float32)
    queries = _unit(np.array([
        [1.0, 0.1, 0, 0],   # row 0 -> code 0: rank 1, cos ~0.995
        [0.6, 0.8, 0, 0],   # row 1 -> code 0: rank 2 (code 1 scores higher), cos 0.6
        [0, 0, 0.3, 0.1],   # row 2 -> code 2: rank 1, cos ~0.95
        [0, 0.2, 0.5, 0.9],  # row 3 -> code 1: rank 3
    ]))
    row_to_code = np.array([0, 0, 2, 1])
    res = consistency_filter(queries, codes, row_to_code, top_k=2, threshold=0.7)
    assert res.rank.tolist() == [1, 2, 1, 3]
    np.testing.assert_allclose(res.score, [0.995, 0.6, 0.949, 0.1907], atol=1e-3)
    assert res.keep.tolist() == [True, False, True, False]  # row 1: rank ok, cosine too low
    assert consistency_filter(queries, codes, row_to_code, top_k=2, threshold=0.5).keep.tolist() == [True, True, True, False]
    assert consistency_filter(queries, codes, row_to_code, top_k=1, threshold=0.0).keep.tolist() == [True, False, True, False]
    # Rows sharing a query (one commit, two functions) do not push each other down.
    shared = consistency_filter(queries[[1, 1]], codes, np.array([1, 0]), top_k=1, threshold=0.0,
                                query_keys=["fix x", "Fix  X"])
    assert shared.rank.tolist() == [1, 1] and shared.keep.tolist() == [True, True]
    alone = consistency_filter(queries[[1, 1]], codes, np.array([1, 0]), top_k=1, threshold=0.0)
    assert alone.rank.tolist() == [1, 2]
    # Ranks deeper than rank_depth are reported as rank_depth + 1.
    assert consistency_filter(queries, codes, row_to_code, top_k=1, rank_depth=1).rank.tolist() == [1, 2, 1, 2]


def test_injection_on_synthetic_vectors():
    rng = np.random.default_rng(0)
    codes = _unit(rng.normal(size=(200, 32)))
    queries = _unit(codes + 0.1 * rng.normal(size=codes.shape))  # noisy but consistent pairs
    query_rows, code_rows, injected = inject_shuffled(200, 0.1, seed=1)
    assert injected.sum() == 20 and len(query_rows) == 220
    assert not np.any(query_rows[injected] == code_rows[injected])
    table = measure_injection(queries, codes, thresholds=[0.0, 0.5], ks=[1, 2])
    assert [(r["k"], r["threshold"]) for r in table] == [(1, 0.0), (1, 0.5), (2, 0.0), (2, 0.5)]
    for row in table:
        assert row["injected_removed"] == 1.0 and row["clean_kept"] == 1.0
    # A threshold above every clean score keeps nothing.
    assert measure_injection(queries, codes, thresholds=[0.999], ks=[2])[0]["clean_kept"] == 0.0


# ---------------------------------------------------------- negatives core


def test_hard_negatives_remove_false_negatives():
    rng = np.random.default_rng(0)
    dim = 16
    base = np.linalg.qr(rng.normal(size=(dim, dim)))[0].T.astype(np.float32)  # orthonormal rows
    q = base[0]
    pos = _unit(q + 0.9 * base[1])                      # code 0: the positive
    codes = np.stack([
        pos,
        pos,                                          # code 1: identical text key to the positive
        _unit(pos + 0.05 * base[2]),                  # code 2: near-duplicate (code cos >= 0.98)
        _unit(q + 0.85 * base[3]),                    # code 3: scores about as high as the positive
        _unit(q + 1.6 * base[4]),                     # code 4: a genuine hard negative
        _unit(q + 2.5 * base[5]),                     # code 5: a weaker negative
        _unit(q + 0.5 * base[6]),                     # code 6: positive of the same query (another row)
        _unit(-q),                                    # code 7: unrelated
    ])
    queries = np.stack([q, q, _unit(base[7])])
    row_to_code = np.array([0, 6, 7])
    keys = ["h0", "h0", "h2", "h3", "h4", "h5", "h6", "h7"]
    qkeys = ["same query", "same query", "other"]
    res = hard_negatives(queries, codes, row_to_code, query_keys=qkeys, code_keys=keys, top_n=2,
                         search_depth=8, margin=0.05, max_score=0.99)
    assert res.negatives[0].tolist() == [4, 5]
    assert np.all(np.diff(res.scores[0]) <= 0)
    assert 0 not in res.negatives[1].tolist() and 6 not in res.negatives[1].tolist()
    assert res.dropped["same_query"] >= 2 and res.dropped["identical"] >= 1
    assert res.dropped["near_duplicate"] >= 1 and res.dropped["margin"] >= 1
    # An absolute cap removes candidates however the positive scores.
    capped = hard_negatives(queries[:1], codes, row_to_code[:1], code_keys=keys, top_n=8, search_depth=8,
                            margin=0.0, max_score=-1.5)
    assert capped.negatives[0].size == 0 and capped.dropped["max_score"] > 0


def test_mine_stats_json_is_valid(tmp_path):
    # Stats must be plain JSON (lead's tools read them): one docstring repo, no commits.
    repo = make_git_repo(tmp_path / "o__lib", {"lib/m.py": MODULE_V1})
    out = tmp_path / "mined"
    res = CliRunner().invoke(mine_command, [str(repo), "-o", str(out), "--no-commits"])
    assert res.exit_code == 0, res.output
    stats = json.loads((Path(out) / "stats.json").read_text())
    assert stats["pairs"] == 2 and stats["pairs_by_kind"] == {"docstring": 2, "commit": 0}
    assert stats["config"]["commits"] is False


class _CountingEncoder:
    """Bag-of-words vectors (the conftest HashingEncoder) behind the data stages' encoder interface."""

    identity = "counting-test-encoder"

    def __init__(self) -> None:
        from tests.conftest import HashingEncoder

        self._inner = HashingEncoder()
        self.calls = 0

    def encode_queries(self, texts):
        self.calls += len(texts)
        return self._inner.encode_documents(list(texts))

    encode_codes = encode_queries


def test_run_filter_sharded_encoding_fills_the_cache(tmp_path):
    from datasets import Dataset

    from cornstack_train.data.filtering import FilterConfig, run_filter
    from cornstack_train.data.records import save_stage

    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"]
    rows = {c: [] for c in PAIR_COLUMNS}
    for i, w in enumerate(words):
        for col, value in (("id", f"r{i}"), ("query", f"compute {w} value"), ("positive", f"def {w}():\n    return {w}_value\n    pass"),
                           ("kind", "docstring"), ("language", "python"), ("repo", "t/t"), ("path", "a.py"),
                           ("name", w), ("source", "test")):
            rows[col].append(value)
    mined = save_stage(Dataset.from_dict(rows), tmp_path / "mined", {})
    encoder = _CountingEncoder()
    for shard in ((0, 2), (1, 2)):
        stats = run_filter(FilterConfig(encode_shard=shard), mined, tmp_path / "filtered", encoder=encoder)
        assert stats["encoded_queries"] == 4 and not (tmp_path / "filtered").exists()
    assert encoder.calls == 16
    stats = run_filter(FilterConfig(threshold=0.1), mined, tmp_path / "filtered", encoder=encoder)
    assert encoder.calls == 16  # everything came from the cache
    assert stats["pairs_kept"] == 8 and stats["keep_rate"] == 1.0


def test_vector_cache_round_trips_every_key(tmp_path):
    from cornstack_train.data.vectors import VectorCache, _key

    # Find texts whose keys end in NUL bytes: a string dtype would lose them.
    texts = [f"text {i}" for i in range(3000) if _key("code", f"text {i}").endswith(b"\0")][:3] + ["plain"]
    assert len(texts) == 4
    encoder = _CountingEncoder()
    first = VectorCache(tmp_path, "id").encode(texts, "code", encoder.encode_codes)
    reloaded = VectorCache(tmp_path, "id")
    assert len(reloaded) == 4
    again = reloaded.encode(texts, "code", encoder.encode_codes)
    assert encoder.calls == 4 and np.array_equal(first, again)
    assert len(VectorCache(tmp_path, "another model")) == 0
