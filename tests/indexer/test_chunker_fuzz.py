"""Fuzzing the chunker (#26): random bytes, fragment soup, deep nesting and byte-order marks, every language.

Whatever a repository holds, chunking must neither raise nor produce a chunk
the index cannot store: spans inside the file, texts within budget and
encodable. Examples are derandomized and few, so this runs in seconds.
"""

import codecs

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from indexer.chunking.chunk import CHUNK_KINDS
from indexer.chunking.chunker import chunk_source
from indexer.chunking.languages import LANGUAGES
from indexer.index import IndexConfig, parse_blob
from indexer.source import SourceFile

FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Noise for every language, and per language fragments that open and close its definitions, so
# random sequences build real (often broken) trees rather than one error node.
NOISE = [
    "(", ")", "{", "}", "[", "]", ":", ";", ",", "=", "=>", "::", '"', "'", "`", "#", "//", "/*", "*/",
    '"""', "\n", "\r\n", "    ", "\t", "Ünï", "café", "\x00", "\ufeff", "\ud800", "x" * 80,
]
_JS = [
    "class A {\n", "  m(a, b) {\n", "  static s() {}\n", "}\n", "function f() {\n", "const g = () => {\n",
    "};\n", "exports.h = function () {\n", "(function () {\n", "})();\n", "handler = async () => 1;\n",
    "export default class extends B {\n", "/** doc */\n", "  return new class { m() {} };\n",
]
_TS = _JS + ["interface I {\n", "  m(): void;\n", "abstract class B {\n", "@Dec()\n", "  private x: number;\n"]
FRAGMENTS = {
    "python": [
        "class A:\n", "class B(A):\n", "    def m(self):\n", "        return 1\n", "def f(x):\n", '    """doc"""\n',
        "@dec\n", "    @property\n", "    pass\n", "async def g():\n", "if True:\n", "    lambda: 0\n",
    ],
    "java": [
        "class A {\n", "  void m() {\n", "  }\n", "}\n", "interface I {\n", "  int x();\n", "/** doc */\n",
        "record R(int a) {}\n", "enum E { A, B; void e() {} }\n", "  A() {}\n",
        "  new Runnable() { public void run() {} };\n",
    ],
    "javascript": _JS,
    "typescript": _TS,
    "tsx": _TS + ["  return <div>{x}</div>;\n", "const C = () => <p/>;\n"],
    "go": [
        "package p\n", "type T struct {\n", "}\n", "func (t *T) M() {\n", "func F() {\n", "type I interface {\n",
        "  M()\n", "// doc\n", "func (t T[K]) G() {\n", "  x := func() {}\n", "type (\n", ")\n",
    ],
    "php": [
        "<?php\n", "class A {\n", "  public function m() {\n", "}\n", "function f() {\n", "trait T {\n",
        "interface I {\n", "  $x = function () {\n", "};\n", "enum E {\n", "/** doc */\n",
    ],
    "ruby": [
        "class A\n", "module M\n", "  def m\n", "  def self.s\n", "end\n", "# doc\n", "class A::B < C\n",
        "  -> { 1 }\n", "def f(x)\n", "  class << self\n",
    ],
}
assert set(FRAGMENTS) == set(LANGUAGES)
BOMS = [b"", codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE]

# One nesting step per language, (opening of level i, closing), nested ``depth`` times around a function.
NESTING = {
    "python": ("{pad}class C{i}:\n", ""),
    "java": ("{pad}class C{i} {{\n", "}}\n"),
    "javascript": ("{pad}class C{i} {{ m{i}() {{ return {{\n", "}} }} }}\n"),
    "typescript": ("{pad}namespace N{i} {{ export class C{i} {{\n", "}} }}\n"),
    "tsx": ("{pad}function F{i}() {{ return <div>{{(() => {{\n", "}})()}}</div> }}\n"),
    "go": ("{pad}func F{i}() {{ if x {{\n", "}} }}\n"),
    "php": ("{pad}<?php class C{i} {{ function m{i}() {{ if ($x) {{\n", "}} }} }}\n"),
    "ruby": ("{pad}module M{i}\n", "end\n"),
}
INNERMOST = {
    "python": "def leaf():\n{pad}    return [[[1]]]\n",
    "ruby": "def leaf\n{pad}  [[[1]]]\n{pad}end\n",
}


def _check(chunks, max_chars: int) -> None:
    file_chunk = chunks[0]
    assert file_chunk.kind == "file" and file_chunk.start_line == 1
    for chunk in chunks:
        assert chunk.kind in CHUNK_KINDS
        assert 1 <= chunk.start_line <= chunk.end_line <= file_chunk.end_line
        assert len(chunk.text) <= max_chars
        chunk.text.encode("utf-8")  # storable: no lone surrogates
        assert chunk.kind == "file" or chunk.name


@FUZZ
@given(st.sampled_from(LANGUAGES), st.binary(max_size=3000), st.integers(min_value=20, max_value=2000))
def test_random_bytes_never_break_the_chunker(language, data, max_chars):
    _check(chunk_source("fuzz", data, language, max_chars=max_chars), max_chars)


def _soup(language: str):
    return st.tuples(st.just(language), st.lists(st.sampled_from(FRAGMENTS[language] + NOISE), max_size=200))


@FUZZ
@given(st.sampled_from(LANGUAGES).flatmap(_soup), st.sampled_from([40, 300, 2000]))
def test_fragment_soup_never_breaks_the_chunker(soup, max_chars):
    language, fragments = soup
    source = "".join(fragments)
    _check(chunk_source("fuzz", source, language, max_chars=max_chars), max_chars)
    _check(chunk_source("fuzz", source.encode("utf-8", "surrogatepass"), language, max_chars=max_chars), max_chars)


@FUZZ
@given(st.sampled_from(LANGUAGES), st.integers(min_value=1, max_value=300), st.booleans())
def test_deep_nesting_never_breaks_the_chunker(language, depth, indent):
    opening, closing = NESTING[language]
    indented = indent and language in ("python", "ruby")

    def pad(level: int) -> str:
        return "  " * level if indented else ""

    leaf = INNERMOST.get(language, "function leaf() {{ return [[[1]]]; }}\n").format(pad=pad(depth))
    source = "".join(opening.format(i=i, pad=pad(i)) for i in range(depth)) + pad(depth) + leaf
    source += closing.format() * depth
    _check(chunk_source("deep", source, language, max_chars=500), 500)


@FUZZ
@given(
    st.sampled_from(LANGUAGES),
    st.sampled_from(BOMS),
    st.lists(st.sampled_from(NOISE + FRAGMENTS["python"] + _TS), max_size=100),
    st.binary(max_size=200),
)
def test_any_encoding_is_indexed_or_skipped_never_raised(language, bom, fragments, tail):
    codec = {codecs.BOM_UTF16_LE: "utf-16-le", codecs.BOM_UTF16_BE: "utf-16-be"}.get(bom, "utf-8")
    data = bom + "".join(fragments).encode(codec, "surrogatepass") + tail
    parsed = parse_blob(SourceFile("fuzz", "0" * 40, len(data), language), data, IndexConfig(max_chunk_chars=300))
    assert parsed.status in ("ok", "binary", "generated", "minified", "too large")
    for record in parsed.chunks:
        assert len(record["text"]) <= 300 and isinstance(record["terms"], str)
