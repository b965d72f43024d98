"""Tests for indexer.chunking.chunker and indexer.chunking.languages."""

from __future__ import annotations

import textwrap

import pytest

from indexer.chunking.chunk import CHUNK_KINDS, Chunk
from indexer.chunking.chunker import CHUNKER_VERSION, chunk_source
from indexer.chunking.languages import LANGUAGES, get_parser, language_for_path


def src(text: str) -> str:
    """Dedent a triple-quoted fixture; line 1 is the first line after the opening quotes."""
    return textwrap.dedent(text).lstrip("\n")


def spans(chunks: list[Chunk]) -> list[tuple[str, str, int, int]]:
    return [(c.kind, c.name, c.start_line, c.end_line) for c in chunks]


def by_name(chunks: list[Chunk], name: str) -> Chunk:
    found = [c for c in chunks if c.name == name]
    assert len(found) == 1, (name, spans(chunks))
    return found[0]


# --------------------------------------------------------------------- fixtures

PYTHON = src('''
    """Module doc."""
    import os


    def helper(x):
        return x + 1


    @dataclass
    @register("svc")
    class Service(Base):
        """A service."""

        def start(self, port: int) -> None:
            """Start listening on port."""
            def _inner():
                return port
            return _inner()

        @property
        def name(self):
            return "svc"

        class Config:
            def load(self):
                class Local:
                    pass
                return Local


    async def main():
        await Service().start(8080)
''')

PYTHON_SPANS = [
    ("file", "", 1, 32),
    ("function", "helper", 5, 6),
    ("class", "Service", 9, 28),
    ("method", "Service.start", 14, 18),
    ("method", "Service.name", 20, 22),
    ("class", "Service.Config", 24, 28),
    ("method", "Service.Config.load", 25, 28),
    ("function", "main", 31, 32),
]

JAVA = src("""
    package com.example;

    import java.util.List;

    /** Handles requests. */
    public class Server {
        private final int port;

        /** Creates a server on a port. */
        public Server(int port) {
            this.port = port;
        }

        /**
         * Starts the server.
         */
        public void start() {
            Runnable r = new Runnable() {
                public void run() { System.out.println("hi"); }
            };
            r.run();
        }

        public void send(String msg) {
            send(msg, 0);
        }

        public void send(String msg, int retries) {
            System.out.println(msg);
        }

        static class Handler {
            void handle() {}
        }
    }

    interface Greeter {
        String greet(String name);
    }
""")

JAVA_SPANS = [
    ("file", "", 1, 39),
    ("class", "Server", 6, 35),
    ("method", "Server.Server", 10, 12),
    ("method", "Server.start", 17, 22),
    ("method", "Server.send", 24, 26),
    ("method", "Server.send", 28, 30),
    ("class", "Server.Handler", 32, 34),
    ("method", "Server.Handler.handle", 33, 33),
    ("class", "Greeter", 37, 39),
    ("method", "Greeter.greet", 38, 38),
]

JAVASCRIPT = src("""
    import { EventEmitter } from "events";

    // Adds one.
    function helper(x) {
      return x + 1;
    }

    export const double = (x) => x * 2;

    const legacy = function (a, b) {
      return a + b;
    };

    /** A queue of jobs. */
    export default class Queue extends EventEmitter {
      constructor() {
        super();
        this.jobs = [];
      }

      /**
       * Adds a job.
       */
      push(job) {
        function validate(j) {
          return j != null;
        }
        if (validate(job)) this.jobs.push(job);
      }

      onDone = () => {
        this.emit("done");
      };
    }

    module.exports.helper = helper;
    setTimeout(function tick() {
      helper(1);
    }, 10);
""")

JAVASCRIPT_SPANS = [
    ("file", "", 1, 39),
    ("function", "helper", 4, 6),
    ("function", "double", 8, 8),
    ("function", "legacy", 10, 12),
    ("class", "Queue", 15, 34),
    ("method", "Queue.constructor", 16, 19),
    ("method", "Queue.push", 24, 29),
    ("method", "Queue.onDone", 31, 33),
]

TYPESCRIPT = src("""
    export interface Shape {
      area(): number;
    }

    // Builds a shape.
    export function makeShape(kind: string): Shape {
      return new Circle(1);
    }

    export class Circle implements Shape {
      constructor(private r: number) {}

      /** The area. */
      @memoize
      area(): number {
        const sq = (x: number) => x * x;
        return Math.PI * sq(this.r);
      }
    }

    export const unit = (): Circle => new Circle(1);
""")

TYPESCRIPT_SPANS = [
    ("file", "", 1, 21),
    ("class", "Shape", 1, 3),
    ("function", "makeShape", 6, 8),
    ("class", "Circle", 10, 19),
    ("method", "Circle.constructor", 11, 11),
    ("method", "Circle.area", 14, 18),
    ("function", "unit", 21, 21),
]

TSX = src("""
    import React from "react";

    type Props = { name: string };

    export function Greeting({ name }: Props) {
      return <h1>Hello {name}</h1>;
    }

    export const List = ({ items }: { items: string[] }) => (
      <ul>
        {items.map((i) => <li key={i}>{i}</li>)}
      </ul>
    );

    export class Counter extends React.Component<Props> {
      /** Renders the count. */
      render() {
        const inner = () => <span>{this.props.name}</span>;
        return <div>{inner()}</div>;
      }
    }
""")

TSX_SPANS = [
    ("file", "", 1, 21),
    ("function", "Greeting", 5, 7),
    ("function", "List", 9, 13),
    ("class", "Counter", 15, 21),
    ("method", "Counter.render", 17, 20),
]

GO = src("""
    package server

    import "fmt"

    // Server serves requests.
    type Server struct {
    	addr string
    }

    type Handler interface {
    	Handle(req string) error
    }

    // NewServer builds a server.
    func NewServer(addr string) *Server {
    	return &Server{addr: addr}
    }

    // Start starts listening.
    // It blocks.
    func (s *Server) Start() error {
    	run := func() error {
    		return nil
    	}
    	return run()
    }

    func (s Server) Addr() string {
    	return s.addr
    }

    type ID int
""")

GO_SPANS = [
    ("file", "", 1, 32),
    ("class", "Server", 6, 8),
    ("class", "Handler", 10, 12),
    ("function", "NewServer", 15, 17),
    ("method", "Server.Start", 21, 26),
    ("method", "Server.Addr", 28, 30),
]

PHP = src("""
    <?php

    namespace App\\Http;

    function helper($x) {
        return $x + 1;
    }

    /**
     * Handles HTTP.
     */
    class Controller extends Base
    {
        /** Shows one item. */
        public function show(int $id): string
        {
            $fmt = function ($v) {
                return "item $v";
            };
            function nested_helper() { return 1; }
            return $fmt($id);
        }

        public static function create(): static
        {
            return new static();
        }
    }

    interface Renderable
    {
        public function render(): string;
    }

    trait Loggable
    {
        public function log(string $m): void {}
    }
""")

PHP_SPANS = [
    ("file", "", 1, 38),
    ("function", "helper", 5, 7),
    ("class", "Controller", 12, 28),
    ("method", "Controller.show", 15, 22),
    ("method", "Controller.create", 24, 27),
    ("class", "Renderable", 30, 33),
    ("method", "Renderable.render", 32, 32),
    ("class", "Loggable", 35, 38),
    ("method", "Loggable.log", 37, 37),
]

RUBY = src("""
    require "json"

    def helper(x)
      x + 1
    end

    module Shop
      # A shopping cart.
      class Cart
        # Builds an empty cart.
        def self.empty
          new([])
        end

        def initialize(items)
          @items = items
        end

        # Total price.
        def total
          def nested_sum; end
          @items.sum
        end

        class Item
          def price; 0; end
        end
      end
    end
""")

RUBY_SPANS = [
    ("file", "", 1, 29),
    ("function", "helper", 3, 5),
    ("class", "Shop", 7, 29),
    ("class", "Shop.Cart", 9, 28),
    ("method", "Shop.Cart.empty", 11, 13),
    ("method", "Shop.Cart.initialize", 15, 17),
    ("method", "Shop.Cart.total", 20, 23),
    ("class", "Shop.Cart.Item", 25, 27),
    ("method", "Shop.Cart.Item.price", 26, 26),
]

CASES = {
    "python": (PYTHON, PYTHON_SPANS),
    "java": (JAVA, JAVA_SPANS),
    "javascript": (JAVASCRIPT, JAVASCRIPT_SPANS),
    "typescript": (TYPESCRIPT, TYPESCRIPT_SPANS),
    "tsx": (TSX, TSX_SPANS),
    "go": (GO, GO_SPANS),
    "php": (PHP, PHP_SPANS),
    "ruby": (RUBY, RUBY_SPANS),
}

# (language, method name, substrings its text must contain: class context,
# signature, documentation)
METHOD_TEXTS = [
    ("python", "Service.start", ["class Service(Base):", "def start(self, port: int) -> None:", '"""Start listening on port."""']),
    ("java", "Server.start", ["public class Server {", "public void start() {", "* Starts the server."]),
    ("javascript", "Queue.push", ["export default class Queue extends EventEmitter {", "push(job) {", "* Adds a job."]),
    ("typescript", "Circle.area", ["export class Circle implements Shape {", "area(): number {", "/** The area. */", "@memoize"]),
    ("tsx", "Counter.render", ["export class Counter extends React.Component<Props> {", "render() {", "/** Renders the count. */"]),
    ("go", "Server.Start", ["type Server struct {", "func (s *Server) Start() error {", "// Start starts listening.", "// It blocks."]),
    ("php", "Controller.show", ["class Controller extends Base", "public function show(int $id): string", "/** Shows one item. */"]),
    ("ruby", "Shop.Cart.total", ["module Shop", "class Cart", "def total", "# Total price."]),
]


# ------------------------------------------------------------------ structure


@pytest.mark.parametrize("language", sorted(CASES))
def test_spans(language: str) -> None:
    source, expected = CASES[language]
    assert spans(chunk_source("pkg/file", source, language)) == expected


@pytest.mark.parametrize("language", sorted(CASES))
def test_chunk_records(language: str) -> None:
    source, _ = CASES[language]
    chunks = chunk_source("pkg/file", source, language)
    file_chunk = chunks[0]
    assert file_chunk.kind == "file" and file_chunk.name == ""
    for c in chunks:
        assert c.path == "pkg/file"
        assert c.language == language
        assert c.kind in CHUNK_KINDS
        assert 1 <= c.start_line <= c.end_line <= file_chunk.end_line
    # Overloads aside, keys are unique.
    assert len({c.key for c in chunks}) == len(chunks)


@pytest.mark.parametrize("language", sorted(CASES))
def test_nested_functions_are_not_chunks(language: str) -> None:
    source, _ = CASES[language]
    names = {c.name.rsplit(".", 1)[-1] for c in chunk_source("f", source, language)}
    for inner in ("_inner", "validate", "sq", "inner", "run", "nested_helper", "nested_sum", "Local", "tick"):
        assert inner not in names


def test_nested_function_text_is_credited_to_outer_method() -> None:
    chunks = chunk_source("svc.py", PYTHON, "python")
    assert "def _inner():" in by_name(chunks, "Service.start").text
    assert "class Local:" in by_name(chunks, "Service.Config.load").text


@pytest.mark.parametrize("language,name,needles", METHOD_TEXTS)
def test_method_text_has_context_signature_and_doc(language: str, name: str, needles: list[str]) -> None:
    source, _ = CASES[language]
    text = by_name(chunk_source("f", source, language), name).text
    for needle in needles:
        assert needle in text, (needle, text)
    # The class context comes before the signature.
    assert text.index(needles[0]) < text.index(needles[1])


def test_method_text_excludes_sibling_methods() -> None:
    text = by_name(chunk_source("f", PYTHON, "python"), "Service.start").text
    assert "def name" not in text
    assert "return _inner()" in text


def test_function_text_has_leading_comment() -> None:
    js = by_name(chunk_source("f.js", JAVASCRIPT, "javascript"), "helper").text
    assert js.splitlines()[0] == "function helper(x) {"
    assert "// Adds one." in js
    go = by_name(chunk_source("f.go", GO, "go"), "NewServer").text
    assert "// NewServer builds a server." in go
    # The Go type's own comment does not leak into an unrelated function.
    assert "Server serves requests" not in go


def test_leading_comment_must_be_adjacent_and_on_its_own_line() -> None:
    source = src("""
        // License header

        function f() {}
        let x = 1; // trailing
        function g() {}
        /* a */
        // b
        function h() {}
    """)
    chunks = chunk_source("c.js", source, "javascript")
    assert by_name(chunks, "f").text == "function f() {}"
    assert by_name(chunks, "g").text == "function g() {}"
    assert by_name(chunks, "h").text == "function h() {}\n/* a */\n// b"


def test_top_level_function_has_no_class_context() -> None:
    text = by_name(chunk_source("f.py", PYTHON, "python"), "helper").text
    assert text == "def helper(x):\n    return x + 1"


def test_class_text_lists_member_signatures() -> None:
    chunks = chunk_source("svc.py", PYTHON, "python")
    text = by_name(chunks, "Service").text
    lines = text.splitlines()
    assert lines[:3] == ["@dataclass", '@register("svc")', "class Service(Base):"]
    assert '    """A service."""' in lines
    assert "    def start(self, port: int) -> None:" in lines
    assert "    def name(self):" in lines
    assert "    class Config:" in lines
    # Bodies are not part of a class chunk's text.
    assert "return _inner()" not in text
    assert '"""Start listening on port."""' not in text


def test_class_text_other_languages() -> None:
    java = by_name(chunk_source("S.java", JAVA, "java"), "Server").text
    assert "public class Server {" in java and "/** Handles requests. */" in java
    assert java.count("public void send(") == 2
    assert "this.port = port;" not in java
    ts = by_name(chunk_source("s.ts", TYPESCRIPT, "typescript"), "Shape").text
    assert "area(): number;" in ts
    go = by_name(chunk_source("s.go", GO, "go"), "Server").text
    # Go lists the struct fields and the methods declared on the type elsewhere.
    assert "addr string" in go
    assert "func (s *Server) Start() error {" in go
    assert "func (s Server) Addr() string {" in go
    assert "func NewServer" not in go
    rb = by_name(chunk_source("c.rb", RUBY, "ruby"), "Shop.Cart").text
    assert rb.splitlines()[0] == "  class Cart"
    assert "def self.empty" in rb and "def total" in rb and "class Item" in rb


# --------------------------------------------------------- language specifics


def test_python_decorators_start_the_span() -> None:
    chunks = chunk_source("svc.py", PYTHON, "python")
    name = by_name(chunks, "Service.name")
    assert name.start_line == 20
    assert name.text.splitlines()[1:3] == ["    @property", "    def name(self):"]


def test_python_multiline_signature_and_docstring_only_body() -> None:
    source = src('''
        class A:
            def f(
                self,
                x,
            ) -> int:
                """Doc only."""
    ''')
    chunks = chunk_source("a.py", source, "python")
    assert spans(chunks) == [("file", "", 1, 6), ("class", "A", 1, 6), ("method", "A.f", 2, 6)]
    assert by_name(chunks, "A.f").text.splitlines() == [
        "class A:",
        "    def f(",
        "        self,",
        "        x,",
        "    ) -> int:",
        '        """Doc only."""',
    ]
    assert by_name(chunks, "A").text.splitlines() == ["class A:", "    def f(", "        self,", "        x,", "    ) -> int:"]


def test_python_one_liners_are_not_duplicated() -> None:
    source = 'class A: """Doc."""\n\ndef f(): """Doc."""\n'
    chunks = chunk_source("a.py", source, "python")
    assert spans(chunks)[1:] == [("class", "A", 1, 1), ("function", "f", 3, 3)]
    assert chunks[1].text == 'class A: """Doc."""'
    assert chunks[2].text == 'def f(): """Doc."""'


def test_python_definitions_in_conditional_blocks() -> None:
    source = src("""
        try:
            import fast
        except ImportError:
            def fast(x):
                return x

        class A:
            if True:
                def m(self):
                    pass
    """)
    assert spans(chunk_source("a.py", source, "python"))[1:] == [
        ("function", "fast", 4, 5),
        ("class", "A", 7, 10),
        ("method", "A.m", 9, 10),
    ]


def test_go_pointer_and_generic_receivers() -> None:
    source = src("""
        package p

        func (l *List[T]) Len() int { return 0 }

        type List[T any] struct{ items []T }

        func (s *server) Close() {}
    """)
    chunks = chunk_source("p.go", source, "go")
    assert spans(chunks)[1:] == [
        ("method", "List.Len", 3, 3),
        ("class", "List", 5, 5),
        ("method", "server.Close", 7, 7),
    ]
    # Methods declared before their type still get the type as context.
    assert by_name(chunks, "List.Len").text.splitlines()[0] == "type List[T any] struct{ items []T }"
    # A receiver type declared elsewhere gets a synthetic context line.
    assert by_name(chunks, "server.Close").text.splitlines()[0] == "// type server"


def test_ruby_singleton_methods() -> None:
    source = src("""
        class Config
          def self.load(path)
            new(path)
          end

          class << self
            def default
              load("x")
            end
          end
        end
    """)
    chunks = chunk_source("c.rb", source, "ruby")
    assert spans(chunks)[1:] == [
        ("class", "Config", 1, 11),
        ("method", "Config.load", 2, 4),
        ("method", "Config.default", 7, 9),
    ]
    assert "def self.load(path)" in by_name(chunks, "Config.load").text


def test_java_constructor_and_overloads() -> None:
    chunks = chunk_source("Server.java", JAVA, "java")
    ctor = by_name(chunks, "Server.Server")
    assert ctor.kind == "method"
    assert "public Server(int port) {" in ctor.text and "/** Creates a server on a port. */" in ctor.text
    sends = [c for c in chunks if c.name == "Server.send"]
    assert [(c.start_line, c.end_line) for c in sends] == [(24, 26), (28, 30)]
    assert "public void send(String msg) {" in sends[0].text
    assert "int retries" in sends[1].text and "int retries" not in sends[0].text
    assert sends[0].key != sends[1].key


def test_java_anonymous_class_methods_are_not_chunks() -> None:
    chunks = chunk_source("Server.java", JAVA, "java")
    assert not [c for c in chunks if c.name.endswith(".run")]
    assert "public void run()" in by_name(chunks, "Server.start").text


def test_java_enum_record_and_interface() -> None:
    source = src("""
        enum Op {
            PLUS;
            int apply(int a, int b) { return a + b; }
        }
        record Point(int x, int y) {
            Point {
                assert x >= 0;
            }
        }
    """)
    assert spans(chunk_source("Op.java", source, "java"))[1:] == [
        ("class", "Op", 1, 4),
        ("method", "Op.apply", 3, 3),
        ("class", "Point", 5, 9),
        ("method", "Point.Point", 6, 8),
    ]


def test_javascript_iife_and_assignments() -> None:
    source = src("""
        (function () {
          function inside() {
            return 1;
          }
        })();
        Foo.prototype.bar = function () {
          return 2;
        };
        const obj = { method() { return 3; } };
    """)
    assert spans(chunk_source("a.js", source, "javascript"))[1:] == [
        ("function", "inside", 2, 4),
        ("function", "Foo.prototype.bar", 6, 8),
    ]


def test_tsx_needs_the_tsx_grammar() -> None:
    # The same source parsed as plain TypeScript cannot read the JSX; the tsx
    # grammar must be the one used for "tsx".
    tsx = chunk_source("c.tsx", TSX, "tsx")
    assert get_parser("tsx").parse(TSX.encode()).root_node.has_error is False
    assert get_parser("typescript").parse(TSX.encode()).root_node.has_error is True
    assert "<h1>Hello {name}</h1>" in by_name(tsx, "Greeting").text


def test_php_anonymous_closure_is_part_of_method() -> None:
    chunks = chunk_source("c.php", PHP, "php")
    show = by_name(chunks, "Controller.show").text
    assert '$fmt = function ($v) {' in show and "function nested_helper()" in show


# ----------------------------------------------------------------- truncation


LONG_PY = src('''
    class Big:
        def work(self, a, b):
            """Do a lot of work.

            Carefully.
            """
    ''') + "".join(f"        value_{i} = a * {i} + b  # step {i}\n" for i in range(400))


def test_truncation_keeps_signature_and_docstring() -> None:
    chunk = by_name(chunk_source("big.py", LONG_PY, "python", max_chars=400), "Big.work")
    text = chunk.text
    assert len(text) <= 400
    assert text.startswith("class Big:\n    def work(self, a, b):\n")
    assert '"""Do a lot of work.\n\n        Carefully.\n        """' in text
    assert "value_0 = a * 0 + b  # step 0" in text
    assert "value_399" not in text
    assert text.splitlines()[-1] == "        ..."
    # Whole lines only: every body line kept is a complete source line.
    source_lines = set(LONG_PY.splitlines())
    assert all(line in source_lines for line in text.splitlines()[:-1])
    # The span is still the whole method.
    assert (chunk.start_line, chunk.end_line) == (2, 406)


def test_untruncated_text_has_no_marker() -> None:
    text = by_name(chunk_source("big.py", LONG_PY, "python", max_chars=100_000), "Big.work").text
    assert text.splitlines()[-1] == "        value_399 = a * 399 + b  # step 399"


def test_truncation_when_signature_and_doc_exceed_budget() -> None:
    text = by_name(chunk_source("big.py", LONG_PY, "python", max_chars=30), "Big.work").text
    # Signature first, cut to the budget; class context is dropped.
    assert text == "    def work(self, a, b):\n    "[:30]
    assert len(text) <= 30


def test_truncation_drops_context_before_doc() -> None:
    # Room for signature + docstring but not for the class line as well.
    signature_and_doc = '    def work(self, a, b):\n        """Do a lot of work.\n\n        Carefully.\n        """'
    text = by_name(chunk_source("big.py", LONG_PY, "python", max_chars=len(signature_and_doc) + 3), "Big.work").text
    assert text.startswith(signature_and_doc)
    assert "class Big:" not in text


def test_truncation_java_doc_comment_survives() -> None:
    body = "".join(f"        total += compute({i});\n" for i in range(300))
    source = (
        "public class Calc {\n"
        "    /** Sums everything. */\n"
        "    public int sum() {\n" + body + "        return total;\n    }\n}\n"
    )
    chunk = by_name(chunk_source("Calc.java", source, "java", max_chars=250), "Calc.sum")
    assert len(chunk.text) <= 250
    assert "public int sum() {" in chunk.text and "/** Sums everything. */" in chunk.text
    assert "class Calc" in chunk.text
    assert "compute(0)" in chunk.text and "return total;" not in chunk.text
    assert chunk.text.endswith("...")


def test_class_text_is_bounded() -> None:
    methods = "".join(f"    def method_{i}(self):\n        return {i}\n" for i in range(200))
    source = "class Many:\n    \"\"\"Many methods.\"\"\"\n" + methods
    text = by_name(chunk_source("m.py", source, "python", max_chars=300), "Many").text
    assert len(text) <= 300
    assert text.startswith('class Many:\n    """Many methods."""\n    def method_0(self):')
    assert text.endswith("...")


@pytest.mark.parametrize("language", sorted(CASES))
@pytest.mark.parametrize("max_chars", [1, 40, 120])
def test_every_text_respects_max_chars(language: str, max_chars: int) -> None:
    source, expected = CASES[language]
    chunks = chunk_source("pkg/file", source, language, max_chars=max_chars)
    assert spans(chunks) == expected  # spans do not depend on the budget
    assert all(len(c.text) <= max_chars for c in chunks)


# ------------------------------------------------------------------ file chunk


def test_file_chunk_text_and_header() -> None:
    chunks = chunk_source("pkg/svc.py", PYTHON, "python")
    assert chunks[0].text == "# path: pkg/svc.py\n" + PYTHON
    go = chunk_source("pkg/s.go", GO, "go")[0]
    assert go.text.startswith("// path: pkg/s.go\npackage server\n")


def test_file_chunk_truncated() -> None:
    chunk = chunk_source("big.py", LONG_PY, "python", max_chars=200)[0]
    assert len(chunk.text) == 200
    assert chunk.text.startswith("# path: big.py\nclass Big:\n")
    assert (chunk.start_line, chunk.end_line) == (1, 406)


def test_empty_file() -> None:
    for language in LANGUAGES:
        for source in ("", b"", "\n\n  \n"):
            chunks = chunk_source("e", source, language)
            assert len(chunks) == 1 and chunks[0].kind == "file"
            assert chunks[0].start_line == 1
    assert spans(chunk_source("e.py", "", "python")) == [("file", "", 1, 1)]
    assert spans(chunk_source("e.py", "\n\n  \n", "python")) == [("file", "", 1, 3)]


def test_last_line_without_newline() -> None:
    assert spans(chunk_source("a.py", "def f():\n    pass", "python")) == [
        ("file", "", 1, 2),
        ("function", "f", 1, 2),
    ]


# ----------------------------------------------------------------- robustness

BROKEN = {
    "python": (
        "def good():\n    return 1\n\ndef broken(:\n    pass\n\ndef also_good():\n    return 2\n",
        [("function", "good", 1, 2), ("function", "also_good", 7, 8)],
    ),
    "java": (
        "class A {\n    void ok() { return; }\n    void bad( { int x = ; }\n    void ok2() {}\n}\n",
        [("class", "A", 1, 5), ("method", "A.ok", 2, 2), ("method", "A.ok2", 4, 4)],
    ),
    "javascript": (
        "function a() {\n  return 1;\n}\nfunction b( {\n  return ;\n}\nfunction c() {\n  return 3;\n}\n",
        [("function", "a", 1, 3), ("function", "c", 7, 9)],
    ),
    "typescript": (
        "function a(): number {\n  return 1;\n}\nconst x: = ;\nfunction c() {\n  return 3;\n}\n",
        [("function", "a", 1, 3), ("function", "c", 5, 7)],
    ),
    "tsx": (
        "export function A() {\n  return <div>;\n}\nexport function B() {\n  return <p/>;\n}\n",
        [("function", "A", 1, 3), ("function", "B", 4, 6)],
    ),
    "go": (
        "package p\n\nfunc A() int {\n\treturn 1\n}\n\nfunc B( {\n}\n\nfunc C() int {\n\treturn 3\n}\n",
        [("function", "A", 3, 5), ("function", "C", 10, 12)],
    ),
    "php": (
        "<?php\nfunction a() {\n    return 1;\n}\nfunction b( {\n}\nfunction c() {\n    return 3;\n}\n",
        [("function", "a", 2, 4), ("function", "c", 7, 9)],
    ),
    "ruby": (
        "def a\n  1\nend\n\ndef b(\n  2\nend\n\ndef c\n  3\nend\n",
        [("function", "a", 1, 3), ("function", "c", 9, 11)],
    ),
}


@pytest.mark.parametrize("language", sorted(BROKEN))
def test_broken_syntax_keeps_intact_definitions(language: str) -> None:
    source, intact = BROKEN[language]
    assert get_parser(language).parse(source.encode()).root_node.has_error
    chunks = chunk_source("broken", source, language)
    assert chunks[0].kind == "file" and chunks[0].text.endswith(source)
    found = spans(chunks)
    for span in intact:
        assert span in found


@pytest.mark.parametrize("language", LANGUAGES)
def test_garbage_never_raises(language: str) -> None:
    garbage = [
        bytes(range(256)) * 3,
        b"\x00\x00\x00",
        b"}}}}{{{{((((",
        b"class\n def\n function\n func\n end end end",
        b"\"\"\"unterminated\n'''",
        b"\r\r\r",
        "\ud800 lone surrogate".encode("utf-8", "surrogatepass"),
    ]
    for data in garbage:
        chunks = chunk_source("g", data, language)
        assert chunks[0].kind == "file"
        assert all(1 <= c.start_line <= c.end_line <= chunks[0].end_line for c in chunks)


@pytest.mark.parametrize("language", LANGUAGES)
def test_truncated_real_sources_never_raise(language: str) -> None:
    source, _ = CASES.get(language, (PYTHON, None))
    for cut in range(0, len(source), 7):
        chunks = chunk_source("t", source[:cut], language, max_chars=60)
        assert chunks[0].kind == "file"
        assert all(len(c.text) <= 60 for c in chunks)


def test_lone_surrogates_in_str_input() -> None:
    chunks = chunk_source("s.py", "def f():\n    return '\ud800'\n", "python")
    assert spans(chunks)[1:] == [("function", "f", 1, 2)]


def test_deeply_nested_expression_does_not_recurse() -> None:
    # Left-recursive binary expressions produce trees thousands of levels deep.
    source = "const x = " + " + ".join(["1"] * 5000) + ";\nfunction f() {}\n"
    assert spans(chunk_source("deep.js", source, "javascript"))[1:] == [("function", "f", 2, 2)]
    py = "x = " + "[" * 3000 + "]" * 3000 + "\ndef f():\n    pass\n"
    assert ("function", "f", 2, 3) in spans(chunk_source("deep.py", py, "python"))


def test_non_utf8_bytes() -> None:
    # Bytes that are not UTF-8 are read as Windows-1252, not replaced (#26 case 9).
    data = b"# caf\xe9 latin-1 comment\ndef f():\n    return '\xff\xfe'\n"
    chunks = chunk_source("l.py", data, "python")
    assert spans(chunks) == [("file", "", 1, 3), ("function", "f", 2, 3)]
    assert "café" in chunks[0].text
    assert "return 'ÿþ'" in chunks[1].text


def test_latin1_identifiers_are_not_mangled() -> None:
    data = "class Café:\n    def año(self):\n        return 'é'\n".encode("latin-1")
    assert spans(chunk_source("l.py", data, "python"))[1:] == [("class", "Café", 1, 3), ("method", "Café.año", 2, 3)]


def test_one_stray_byte_leaves_the_utf8_around_it_intact() -> None:
    data = "def naïve():\n    return '".encode() + b"\xff" + "€'\n".encode()
    chunks = chunk_source("s.py", data, "python")
    assert by_name(chunks, "naïve").text == "def naïve():\n    return 'ÿ€'"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_byte_order_marks_pick_the_codec(encoding: str) -> None:
    bom = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff"}.get(encoding, "")
    data = (bom + "# ünï\ndef naïve():\n    return 1\n").encode(encoding)
    chunks = chunk_source("b.py", data, "python")
    assert spans(chunks) == [("file", "", 1, 3), ("function", "naïve", 2, 3)]
    assert chunks[0].text == "# path: b.py\n# ünï\ndef naïve():\n    return 1\n"


def test_non_ascii_identifiers_and_columns() -> None:
    # Multi-byte characters before a definition must not shift rows or names.
    source = "# ünïcødé ✓\nclass Café:\n    def naïve(self):\n        return 'é'\n"
    chunks = chunk_source("u.py", source.encode("utf-8"), "python")
    assert spans(chunks)[1:] == [("class", "Café", 2, 4), ("method", "Café.naïve", 3, 4)]
    assert chunks[2].text == "class Café:\n    def naïve(self):\n        return 'é'"


def test_crlf_line_endings() -> None:
    source = PYTHON.replace("\n", "\r\n")
    chunks = chunk_source("svc.py", source, "python")
    assert spans(chunks) == PYTHON_SPANS
    assert "\r" not in by_name(chunks, "Service.start").text
    assert by_name(chunks, "Service.start").text == by_name(chunk_source("svc.py", PYTHON, "python"), "Service.start").text


def test_bytes_and_str_agree() -> None:
    for language, (source, _) in CASES.items():
        assert chunk_source("f", source, language) == chunk_source("f", source.encode("utf-8"), language)


def test_unsupported_language() -> None:
    with pytest.raises(ValueError, match="unsupported language"):
        chunk_source("a.rs", "fn main() {}", "rust")
    with pytest.raises(ValueError):
        chunk_source("a.py", "x = 1", "python", max_chars=0)


def test_chunker_version_is_a_string() -> None:
    assert isinstance(CHUNKER_VERSION, str) and CHUNKER_VERSION


def test_chunks_round_trip_through_dict() -> None:
    for c in chunk_source("svc.py", PYTHON, "python"):
        assert Chunk.from_dict(c.to_dict()) == c


# ------------------------------------------------------------------ languages


@pytest.mark.parametrize(
    "path,expected",
    [
        ("a/b.py", "python"),
        ("stubs/x.pyi", "python"),
        ("Main.java", "java"),
        ("a.js", "javascript"),
        ("a.mjs", "javascript"),
        ("a.cjs", "javascript"),
        ("a.jsx", "javascript"),
        ("a.ts", "typescript"),
        ("types.d.ts", "typescript"),
        ("a.mts", "typescript"),
        ("a.cts", "typescript"),
        ("a.tsx", "tsx"),
        ("main.go", "go"),
        ("index.php", "php"),
        ("lib/x.rb", "ruby"),
        ("A.PY", "python"),
        ("a.c", None),
        ("README.md", None),
        ("Makefile", None),
        ("py", None),
        ("dir.py/file", None),
    ],
)
def test_language_for_path(path: str, expected: str | None) -> None:
    assert language_for_path(path) == expected


def test_languages_list() -> None:
    assert set(LANGUAGES) == {"python", "java", "javascript", "typescript", "tsx", "go", "php", "ruby"}


def test_get_parser_cached_and_validated() -> None:
    for language in LANGUAGES:
        parser = get_parser(language)
        assert parser is get_parser(language)
        assert parser.parse(b"").root_node is not None
    with pytest.raises(ValueError, match="unsupported language"):
        get_parser("cobol")
