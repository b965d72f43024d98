"""Gold labels from patches (benchmarks.swebench.gold) and localization metrics (.metrics)."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.swebench.gold import (
    FilePatch,
    GoldLabels,
    function_id,
    functions_touched,
    git_blob_reader,
    gold_files,
    gold_function_ids,
    gold_labels,
    parse_patch,
)
from benchmarks.swebench.metrics import (
    accuracy_at_k,
    file_of,
    files_from_functions,
    gold_ranks,
    hit_at_k,
)
from indexer.chunking.chunk import Chunk
from indexer.chunking.chunker import chunk_source

from tests.conftest import commit_all, git, make_git_repo, write_files

# --------------------------------------------------------------------------- a real git diff

SHAPES_BEFORE = '''\
import math


def helper(x):
    return x + 1


@decorator
def decorated(value):
    total = value * 2
    return total


class Circle:
    """A circle."""

    unit = "cm"

    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius ** 2

    @property
    def diameter(self):
        return 2 * self.radius

    def scaled(self, factor):
        def inner(r):
            return r * factor

        return Circle(inner(self.radius))


def untouched():
    return None


@register
@decorator
def plugin():
    return 1
'''

SHAPES_AFTER = '''\
import math


def helper(x):
    x = abs(x)
    return x + 1


@decorator
def decorated(value):
    total = value * 3
    return total


class Circle:
    """A circle."""

    unit = "mm"

    def __init__(self, radius):
        self.radius = radius

    def area(self):
        return math.pi * self.radius * self.radius

    @cached_property
    def diameter(self):
        return 2 * self.radius

    def scaled(self, factor):
        def inner(r):
            return r * factor * 1.0

        return Circle(inner(self.radius))


def brand_new():
    return 42


def untouched():
    return None


@decorator
def plugin():
    return 1
'''


def _diff(root: Path, base: str, head: str) -> str:
    return git(
        root, "diff", "--no-color", "--no-ext-diff", "--src-prefix=a/", "--dst-prefix=b/", base, head
    )


@pytest.fixture
def toy_instance(tmp_path: Path) -> tuple[Path, dict]:
    root = make_git_repo(tmp_path / "toy", {"pkg/shapes.py": SHAPES_BEFORE, "README.md": "toy\n"})
    base = git(root, "rev-parse", "HEAD").strip()
    write_files(
        root,
        {"pkg/shapes.py": SHAPES_AFTER, "pkg/new_module.py": "def fresh():\n    return 1\n", "README.md": "toy!\n"},
    )
    head = commit_all(root, "the fix")
    return root, {"instance_id": "toy__toy-1", "base_commit": base, "patch": _diff(root, base, head)}


def test_gold_labels_from_a_real_git_diff(toy_instance: tuple[Path, dict]) -> None:
    root, instance = toy_instance
    with git_blob_reader(root) as read_blob:
        labels = gold_labels(instance, read_blob)
    assert labels == GoldLabels(
        instance_id="toy__toy-1",
        # The created module is no gold file; the README is one (without functions).
        files=("README.md", "pkg/shapes.py"),
        functions=(
            "pkg/shapes.py/helper",  # a line inserted inside it
            "pkg/shapes.py/decorated",  # a modified body line
            "pkg/shapes.py/Circle/area",  # a modified method line
            # Its decorator was replaced: the new line lands in front of the def line.
            "pkg/shapes.py/Circle/diameter",
            "pkg/shapes.py/Circle/scaled",  # its nested function was touched
        ),
    )
    # Not gold: Circle.__init__ (untouched), the class attribute `unit`,
    # brand_new (newly added), untouched (the new function was inserted right
    # in front of it) and plugin (a decorator line was only removed: decorators
    # are outside a function's def..end span).


def test_the_toy_diff_parses_as_expected(toy_instance: tuple[Path, dict]) -> None:
    _, instance = toy_instance
    patches = {fp.new_path: fp for fp in parse_patch(instance["patch"])}
    assert patches["pkg/new_module.py"].old_path is None
    shapes = patches["pkg/shapes.py"]
    assert shapes.old_path == "pkg/shapes.py"
    # helper's insertion, the new function before `untouched` (a definition run)
    assert 4 in shapes.insertion_points and 4 not in shapes.definition_insertions
    assert shapes.definition_insertions == (35,)
    assert shapes.removed_lines == (10, 17, 23, 25, 31, 40)
    assert gold_files(instance["patch"]) == ["README.md", "pkg/shapes.py"]


def test_decorators_count_only_without_source(toy_instance: tuple[Path, dict]) -> None:
    root, instance = toy_instance
    with git_blob_reader(root) as read_blob:
        source = read_blob(instance["base_commit"], "pkg/shapes.py")
    assert source is not None
    chunks = chunk_source("pkg/shapes.py", source, "python")
    fp = next(p for p in parse_patch(instance["patch"]) if p.old_path == "pkg/shapes.py")
    with_source = functions_touched(fp, chunks, source)
    chunk_spans = functions_touched(fp, chunks)
    assert "plugin" not in with_source
    assert "plugin" in chunk_spans  # its chunk opens at the removed decorator


def test_git_blob_reader_missing_and_present(toy_instance: tuple[Path, dict]) -> None:
    root, instance = toy_instance
    with git_blob_reader(root) as read_blob:
        assert read_blob(instance["base_commit"], "README.md") == b"toy\n"
        assert read_blob(instance["base_commit"], "pkg/new_module.py") is None
        assert read_blob(instance["base_commit"], "pkg") is None  # a tree, not a blob
        assert read_blob("0" * 40, "README.md") is None
        assert read_blob(instance["base_commit"], "README.md") == b"toy\n"  # still usable


def test_gold_re_exports_the_diff_parser_and_reader_of_indexer() -> None:
    """The harness (run.py) and older callers keep importing these names from gold."""
    from benchmarks.swebench import gold
    from indexer.git import blobs, diff

    assert gold.parse_patch is diff.parse_patch and gold.functions_touched is diff.functions_touched
    assert gold.FilePatch is diff.FilePatch and gold.GitBlobReader is blobs.GitBlobReader
    assert set(gold.__all__) <= set(vars(gold))


# --------------------------------------------------------------------------- parse_patch

MULTI_HUNK = """\
diff --git a/src/mod.py b/src/mod.py
index 1111111..2222222 100644
--- a/src/mod.py
+++ b/src/mod.py
@@ -2,4 +2,5 @@ def first():
     a = 1
-    b = 2
+    b = 3
+    c = 4
     return a
 
@@ -20,3 +21,2 @@ class K:
     x = 1
-    y = 2
     z = 3
@@ -40 +40 @@
-old
+new
"""


def test_parse_patch_multiple_hunks() -> None:
    [fp] = parse_patch(MULTI_HUNK)
    assert fp == FilePatch(
        old_path="src/mod.py",
        new_path="src/mod.py",
        removed_lines=(3, 21, 40),
        insertion_points=(3, 40),
        definition_insertions=(),
    )


def test_parse_patch_rename_with_and_without_hunks() -> None:
    patch = """\
diff --git a/old name.py b/new name.py
similarity index 90%
rename from old name.py
rename to new name.py
index 1111111..2222222 100644
--- a/old name.py
+++ b/new name.py
@@ -1,2 +1,2 @@
-x = 1
+x = 2
 y = 2
diff --git a/a.py b/b.py
similarity index 100%
rename from a.py
rename to b.py
"""
    first, second = parse_patch(patch)
    assert (first.old_path, first.new_path, first.removed_lines, first.insertion_points) == (
        "old name.py",
        "new name.py",
        (1,),
        (1,),
    )
    assert (second.old_path, second.new_path, second.removed_lines) == ("a.py", "b.py", ())
    assert gold_files(patch) == ["old name.py", "a.py"]


def test_parse_patch_quoted_paths() -> None:
    patch = """\
diff --git "a/t\\303\\251st.py" "b/t\\303\\251st.py"
index 1111111..2222222 100644
--- "a/t\\303\\251st.py"
+++ "b/t\\303\\251st.py"
@@ -1 +1 @@
-a
+b
diff --git "a/odd\\"name.bin" "b/odd\\"name.bin"
index 1111111..2222222 100644
Binary files "a/odd\\"name.bin" and "b/odd\\"name.bin" differ
"""
    assert gold_files(patch) == ["t\u00e9st.py", 'odd"name.bin']


def test_parse_patch_created_and_deleted_files() -> None:
    patch = """\
diff --git a/new.py b/new.py
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/new.py
@@ -0,0 +1,2 @@
+def f():
+    pass
diff --git a/gone.py b/gone.py
deleted file mode 100644
index 1111111..0000000
--- a/gone.py
+++ /dev/null
@@ -1,2 +0,0 @@
-a = 1
-b = 2
diff --git a/empty.txt b/empty.txt
new file mode 100644
index 0000000..e69de29
"""
    new, gone, empty = parse_patch(patch)
    assert (new.old_path, new.new_path, new.insertion_points, new.definition_insertions) == (None, "new.py", (0,), (0,))
    assert (gone.old_path, gone.new_path, gone.removed_lines) == ("gone.py", None, (1, 2))
    assert (empty.old_path, empty.new_path) == (None, "empty.txt")
    assert gold_files(patch) == ["gone.py"]


def test_parse_patch_no_newline_marker_and_header_lookalikes() -> None:
    patch = """\
diff --git a/q.sql b/q.sql
--- a/q.sql
+++ b/q.sql
@@ -1,3 +1,3 @@
 select 1;
--- a comment
-select 2;
\\ No newline at end of file
+++ a counter
+select 3;
\\ No newline at end of file
diff --git a/r.py b/r.py
--- a/r.py
+++ b/r.py
@@ -5 +5,2 @@
 keep
+added
"""
    q, r = parse_patch(patch)
    assert q == FilePatch("q.sql", "q.sql", (2, 3), (3,), ())
    assert r == FilePatch("r.py", "r.py", (), (5,), ())


def test_parse_patch_binary_and_plain_unified_diffs() -> None:
    binary = """\
diff --git a/img.png b/img.png
index 1111111..2222222 100644
Binary files a/img.png and b/img.png differ
diff --git a/new.png b/new.png
new file mode 100644
index 0000000..2222222
Binary files /dev/null and b/new.png differ
"""
    assert gold_files(binary) == ["img.png"]
    plain = """\
--- a/one.py\t2024-01-01 00:00:00
+++ b/one.py\t2024-01-02 00:00:00
@@ -1 +1 @@
-a
+b
--- a/two.py
+++ b/two.py
@@ -3,0 +4 @@
+c
"""
    one, two = parse_patch(plain)
    assert (one.old_path, one.removed_lines, one.insertion_points) == ("one.py", (1,), (1,))
    assert (two.old_path, two.removed_lines, two.insertion_points) == ("two.py", (), (3,))


def test_definition_insertions_use_a_substring_test() -> None:
    patch = """\
--- a/m.py
+++ b/m.py
@@ -1,6 +1,9 @@
 a
+def new():
+    pass
 b
+    if mat_class == X:
 c
+    y = 1
 d
 e
 f
"""
    [fp] = parse_patch(patch)
    assert fp.insertion_points == (1, 2, 3)
    # "mat_class == X" contains "class ": the reference takes it for a definition.
    assert fp.definition_insertions == (1, 2)


# --------------------------------------------------------------------------- functions_touched


def _chunk(name: str, kind: str, start: int, end: int, language: str = "python") -> Chunk:
    return Chunk("m.py", name, kind, start, end, language, "")


CHUNKS = [
    Chunk("m.py", "", "file", 1, 30, "python", ""),
    _chunk("K", "class", 1, 12),
    _chunk("K.a", "method", 3, 5),
    _chunk("K.b", "method", 7, 12),
    _chunk("f", "function", 15, 20),
]


@pytest.mark.parametrize(
    "removed, inserted, expected",
    [
        ((3,), (), ["K.a"]),  # the def line
        ((5,), (), ["K.a"]),  # the last line
        ((2, 6, 13, 14), (), []),  # class level and module level
        ((), (2,), ["K.a"]),  # lands right in front of the def line
        ((), (4,), ["K.a"]),
        ((), (5,), []),  # appended after the last line
        ((), (14,), ["f"]),
        ((), (20,), []),
        ((20, 3), (8,), ["K.a", "K.b", "f"]),  # source order
    ],
)
def test_functions_touched_line_rules(removed, inserted, expected) -> None:
    fp = FilePatch("m.py", "m.py", tuple(removed), tuple(inserted))
    assert functions_touched(fp, CHUNKS) == expected


def test_functions_touched_skips_definition_runs_and_decorators() -> None:
    source = "\n".join(["x"] * 6 + ["    @property", "    def b(self):"] + ["        pass"] * 4 + [""] * 20)
    chunks = [_chunk("K.b", "method", 7, 12)]
    assert functions_touched(FilePatch("m.py", "m.py", (7,), ()), chunks, source) == []  # decorator only
    assert functions_touched(FilePatch("m.py", "m.py", (7,), ()), chunks) == ["K.b"]
    assert functions_touched(FilePatch("m.py", "m.py", (8,), ()), chunks, source) == ["K.b"]
    assert functions_touched(FilePatch("m.py", "m.py", (), (7,)), chunks, source.encode()) == ["K.b"]
    assert functions_touched(FilePatch("m.py", "m.py", (), (7,), (7,)), chunks, source) == []
    # Other languages keep the chunk span (annotations included).
    java = [_chunk("K.b", "method", 7, 12, language="java")]
    assert functions_touched(FilePatch("m.py", "m.py", (7,), ()), java, source) == ["K.b"]


def test_function_ids() -> None:
    assert function_id("a/b.py", "f") == "a/b.py/f"
    assert function_id("a/b.py", "Outer.Inner.m") == "a/b.py/Outer/Inner/m"
    assert gold_function_ids("x.py", ["C.m", "g"]) == ["x.py/C/m", "x.py/g"]


def test_unsupported_and_unreadable_files_are_gold_files_only() -> None:
    instance = {
        "instance_id": "i",
        "base_commit": "c0",
        "patch": "--- a/doc.rst\n+++ b/doc.rst\n@@ -1 +1 @@\n-a\n+b\n"
        "--- a/lost.py\n+++ b/lost.py\n@@ -1 +1 @@\n-a\n+b\n",
    }
    calls: list[tuple[str, str]] = []

    def read_blob(commit: str, path: str) -> bytes | None:
        calls.append((commit, path))
        return None

    assert gold_labels(instance, read_blob) == GoldLabels("i", ("doc.rst", "lost.py"), ())
    assert calls == [("c0", "lost.py")]  # the .rst file is never read


# --------------------------------------------------------------------------- metrics


def test_hit_at_k_needs_all_gold_items() -> None:
    ranked = ["a", "b", "c", "d"]
    assert hit_at_k(ranked, ["a"], 1)
    assert not hit_at_k(ranked, ["a", "c"], 2)
    assert hit_at_k(ranked, ["a", "c"], 3)
    assert hit_at_k(ranked, {"c", "a"}, 10)  # k beyond the ranking
    assert not hit_at_k(ranked, ["a", "z"], 10)
    assert not hit_at_k(ranked, [], 5)  # empty gold is never a hit
    with pytest.raises(ValueError):
        hit_at_k(ranked, ["a"], 0)


def test_accuracy_at_k() -> None:
    rankings = {"i1": ["a", "b"], "i2": ["x", "y", "z"], "i3": ["q"]}
    golds = {"i1": ["a"], "i2": ["z", "x"], "i3": [], "i4": ["w"]}
    # Default ids: the instances with gold items (i1, i2, i4); i4 has no ranking.
    assert accuracy_at_k(rankings, golds, 1) == pytest.approx(100 / 3)
    assert accuracy_at_k(rankings, golds, 3) == pytest.approx(200 / 3)
    # Explicit ids: an id without gold (i3) or unknown (i5) is a miss.
    assert accuracy_at_k(rankings, golds, 3, ids=["i1", "i3"]) == 50.0
    assert accuracy_at_k(rankings, golds, 3, ids=["i2", "i5"]) == 50.0
    assert accuracy_at_k(rankings, golds, 3, ids=[]) == 0.0
    assert accuracy_at_k({}, {}, 5) == 0.0


def test_files_from_functions() -> None:
    ranked = [
        "pkg/b.py/C/m",
        "pkg/a.py/f",
        "pkg/b.py/g",
        "src/app.ts/Widget/render",
        "pkg/a.py/C/copy",
        "lib/node.js/index.js/main",
        "docs/notes.txt",
        "Rakefile/build",
    ]
    assert files_from_functions(ranked) == [
        "pkg/b.py",
        "pkg/a.py",
        "src/app.ts",
        "lib/node.js/index.js",
        "docs/notes.txt",
        "Rakefile",
    ]
    assert file_of("a/b.py") == "a/b.py"
    assert files_from_functions([]) == []


def test_gold_ranks() -> None:
    assert gold_ranks(["a", "b", "a", "c"], ["c", "a", "z"]) == {"c": 4, "a": 1, "z": None}
    assert gold_ranks([], []) == {}
