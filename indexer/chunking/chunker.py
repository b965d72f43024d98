"""Split one source file into file / class / function chunks with tree-sitter.

One parse and one walk per file. The walk never enters a function body: code
nested in a function (closures, local classes) belongs to that function's
chunk, which keeps both the chunk set and the walking cost proportional to the
file's top-level structure rather than its full size.

Each language is described by a small :class:`_Spec` (which node types are
classes, functions, wrappers, comments...), plus a handful of naming hooks for
the cases a table cannot express (Go receivers, JavaScript functions that get
their name from the variable or property they are assigned to).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional

from tree_sitter import Node

from indexer.chunking.chunk import Chunk
from indexer.chunking.encoding import decode_source
from indexer.chunking.languages import LANGUAGES, get_parser

CHUNKER_VERSION = "2"  # 2: BOMs and non-UTF-8 bytes decoded (indexer.chunking.encoding)

__all__ = ["CHUNKER_VERSION", "chunk_source"]

# Returned by a naming hook for an anonymous function whose body should still
# be searched for definitions (an IIFE wrapping a whole JavaScript module).
_TRANSPARENT = object()


@dataclass(frozen=True)
class _Spec:
    classes: frozenset[str]
    functions: frozenset[str]
    # Parents that belong to their single definition: decorators, `export`,
    # `const x = ...`, a Go `type` keyword. They widen the chunk's span.
    wrappers: frozenset[str] = frozenset()
    # Node types that sit next to a definition and belong to it (TypeScript
    # puts member decorators before the method as siblings).
    decorators: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset({"comment"})
    # Node types never searched: anything defined inside is not addressable by
    # a qualified name (lambdas, anonymous classes, initializer blocks).
    opaque: frozenset[str] = frozenset()
    # Bodiless member declarations listed in a class chunk but not chunked.
    member_signatures: frozenset[str] = frozenset()
    comment_prefix: str = "//"
    # Python keeps its documentation inside the body; the rest put it in
    # comments just above the definition.
    docstring_in_body: bool = False
    # Go declares methods outside the type, qualified by their receiver.
    receiver_methods: bool = False
    # Class node types that, when they have no name, are expressions whose
    # members have no qualified name either (`new class {}`-like); skipped.
    opaque_when_unnamed: frozenset[str] = frozenset()
    function_name: Optional[Callable[[Node, "Optional[_Def]"], object]] = None
    class_name: Optional[Callable[[Node], Optional[tuple[str, Node]]]] = None


@dataclass(eq=False)
class _Def:
    kind: str
    name: str  # qualified
    node: Node  # the class / function node itself
    body: Optional[Node]
    parent: Optional["_Def"]  # enclosing class
    start_row: int  # first row of the span (decorators, export keyword)
    end_row: int
    name_row: int
    header_end_row: int  # last row of the signature / class header
    doc_rows: Optional[tuple[int, int]]  # docstring or leading comment block
    body_start_row: int  # first row after signature and docstring
    receiver: str = ""  # Go: the type a method belongs to
    members: list[tuple[int, int]] = field(default_factory=list)  # signature rows


# ---------------------------------------------------------------- node helpers


def _text(node: Optional[Node]) -> str:
    if node is None or node.text is None:
        return ""
    return node.text.decode("utf-8", errors="replace")


def _field_text(node: Node, name: str) -> str:
    return _text(node.child_by_field_name(name))


def _end_row(node: Node) -> int:
    """Last row the node really occupies; a node ending at column 0 ends on the row before."""
    row, col = node.end_point
    if col == 0 and row > node.start_point.row:
        return row - 1
    return row


def _is_first_on_line(node: Node, src: bytes) -> bool:
    """True if only whitespace precedes the node on its line (not a trailing comment)."""
    start = node.start_byte
    return not src[start - node.start_point.column : start].strip()


# --------------------------------------------------------------- naming hooks


def _simple_name(node: Node, _cls: Optional[_Def] = None) -> Optional[tuple[str, Node]]:
    name = _field_text(node, "name")
    return (name, node) if name else None


def _ruby_name(node: Node, _cls: Optional[_Def] = None) -> Optional[tuple[str, Node]]:
    # `class A::B` is written with Ruby's scope operator; names use dots.
    name = _field_text(node, "name").replace("::", ".")
    return (name, node) if name else None


def _go_class_name(node: Node) -> Optional[tuple[str, Node]]:
    # Only struct and interface types carry behaviour; `type ID int` is not a class.
    kind = node.child_by_field_name("type")
    if kind is None or kind.type not in ("struct_type", "interface_type"):
        return None
    return _simple_name(node)


def _go_receiver_type(node: Node) -> str:
    receiver = node.child_by_field_name("receiver")
    if receiver is None:
        return ""
    for param in receiver.named_children:
        if param.type != "parameter_declaration":
            continue
        typ = param.child_by_field_name("type")
        while typ is not None and typ.type in ("pointer_type", "generic_type", "parenthesized_type"):
            typ = typ.child_by_field_name("type") if typ.type == "generic_type" else typ.named_child(0)
        return _text(typ)
    return ""


_JS_FIELD_TYPES = ("field_definition", "public_field_definition")


def _js_property_name(field_node: Node) -> str:
    return _field_text(field_node, "property") or _field_text(field_node, "name")


def _js_assigned_name(node: Node) -> Optional[tuple[str, Node]]:
    """Name an anonymous function or class expression by what it is bound to.

    `const f = () => ...`, `handler = () => ...` in a class body and
    `exports.f = function () ...` are how much JavaScript declares functions.
    """
    parent = node.parent
    if parent is None:
        return None
    ptype = parent.type
    if ptype == "variable_declarator" and parent.child_by_field_name("value") == node:
        name = parent.child_by_field_name("name")
        if name is not None and name.type == "identifier":
            return _text(name), parent
    elif ptype in _JS_FIELD_TYPES and parent.child_by_field_name("value") == node:
        name = _js_property_name(parent)
        if name:
            return name, parent
    elif ptype == "assignment_expression" and parent.child_by_field_name("right") == node:
        statement = parent.parent
        if statement is not None and statement.type == "expression_statement":
            left = parent.child_by_field_name("left")
            if left is not None and left.type in ("identifier", "member_expression"):
                return "".join(_text(left).split()), statement
    elif ptype == "export_statement":
        return "default", node
    return None


def _is_iife_callee(node: Node) -> bool:
    parent = node.parent
    if parent is not None and parent.type == "parenthesized_expression":
        node, parent = parent, parent.parent
    return parent is not None and parent.type == "call_expression" and parent.child_by_field_name("function") == node


def _js_function_name(node: Node, cls: Optional[_Def]) -> object:
    ntype = node.type
    if ntype in ("function_declaration", "generator_function_declaration"):
        return _simple_name(node)
    if ntype == "method_definition":
        # Object-literal methods have no stable qualified name; skip them.
        parent = node.parent
        if parent is not None and parent.type == "class_body":
            return _simple_name(node)
        return None
    named = _js_assigned_name(node)
    if named is not None:
        return named
    parent = node.parent
    if parent is not None and parent.type == "ERROR":
        # Error recovery after a broken definition parses the following
        # `function f() {}` declarations as named function expressions.
        return _simple_name(node)
    if cls is None and _is_iife_callee(node):
        return _TRANSPARENT
    return None


def _js_class_name(node: Node) -> Optional[tuple[str, Node]]:
    named = _simple_name(node)
    if named is not None:
        return named
    return _js_assigned_name(node)


# ----------------------------------------------------------- language table

_JS_FUNCTIONS = frozenset(
    {
        "function_declaration",
        "generator_function_declaration",
        "method_definition",
        "arrow_function",
        "function_expression",
        "function",
        "generator_function",
    }
)
_JS_WRAPPERS = frozenset({"export_statement", "lexical_declaration", "variable_declaration", "ambient_declaration"})

_JS = _Spec(
    classes=frozenset({"class_declaration", "class"}),
    functions=_JS_FUNCTIONS,
    wrappers=_JS_WRAPPERS,
    decorators=frozenset({"decorator"}),
    opaque_when_unnamed=frozenset({"class"}),
    function_name=_js_function_name,
    class_name=_js_class_name,
)
_TS = _Spec(
    classes=frozenset({"class_declaration", "class", "abstract_class_declaration", "interface_declaration"}),
    functions=_JS_FUNCTIONS,
    wrappers=_JS_WRAPPERS,
    decorators=frozenset({"decorator"}),
    member_signatures=frozenset({"method_signature", "abstract_method_signature"}),
    opaque_when_unnamed=frozenset({"class"}),
    function_name=_js_function_name,
    class_name=_js_class_name,
)

_SPECS: dict[str, _Spec] = {
    "python": _Spec(
        classes=frozenset({"class_definition"}),
        functions=frozenset({"function_definition"}),
        wrappers=frozenset({"decorated_definition"}),
        decorators=frozenset({"decorator"}),
        opaque=frozenset({"lambda"}),
        comment_prefix="#",
        docstring_in_body=True,
    ),
    "java": _Spec(
        classes=frozenset(
            {
                "class_declaration",
                "interface_declaration",
                "enum_declaration",
                "record_declaration",
                "annotation_type_declaration",
            }
        ),
        functions=frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"}),
        comments=frozenset({"line_comment", "block_comment"}),
        opaque=frozenset({"lambda_expression", "object_creation_expression", "static_initializer", "block"}),
    ),
    "javascript": _JS,
    "typescript": _TS,
    "tsx": _TS,
    "go": _Spec(
        classes=frozenset({"type_spec"}),
        functions=frozenset({"function_declaration", "method_declaration"}),
        wrappers=frozenset({"type_declaration"}),
        opaque=frozenset({"func_literal"}),
        receiver_methods=True,
        opaque_when_unnamed=frozenset({"type_spec"}),
        class_name=_go_class_name,
    ),
    "php": _Spec(
        classes=frozenset({"class_declaration", "interface_declaration", "trait_declaration", "enum_declaration"}),
        functions=frozenset({"function_definition", "method_declaration"}),
        opaque=frozenset({"anonymous_function", "arrow_function"}),
    ),
    "ruby": _Spec(
        classes=frozenset({"class", "module"}),
        functions=frozenset({"method", "singleton_method"}),
        opaque=frozenset({"lambda"}),
        comment_prefix="#",
        function_name=_ruby_name,
        class_name=_ruby_name,
    ),
}

assert set(_SPECS) == set(LANGUAGES)


# ----------------------------------------------------------------- geometry


def _span_start(anchor: Node, spec: _Spec) -> Node:
    """The first node of a definition's span: its decorators / export / declaration wrapper."""
    node = anchor
    while True:
        parent = node.parent
        if parent is None or parent.type not in spec.wrappers:
            break
        own = [c for c in parent.named_children if c.type not in spec.decorators and c.type not in spec.comments]
        if len(own) != 1:  # `const a = ..., b = ...` or a grouped Go `type (...)`
            break
        node = parent
    prev = node.prev_named_sibling
    while prev is not None and prev.type in spec.decorators:
        node, prev = prev, prev.prev_named_sibling
    return node


def _header_end_row(node: Node, body: Optional[Node], src: bytes) -> int:
    """Last row of the signature or class header.

    That is the last row of anything before the body other than comments
    (Ruby and Python bodies start at their first statement, so comments in
    between would otherwise count as header), extended to the body's first
    row when the body opens mid-line (`{` after the parameters).
    """
    if body is None:
        return _end_row(node)
    end = node.start_point.row
    body_start = body.start_byte
    for child in node.children:
        if child.start_byte >= body_start:
            break
        if not child.is_extra:
            end = max(end, _end_row(child))
    row = body.start_point.row
    if row <= end or not _is_first_on_line(body, src):
        return max(end, row)
    return end


def _leading_comment_rows(start: Node, spec: _Spec, src: bytes) -> Optional[tuple[int, int]]:
    """Rows of the comment block directly above ``start`` (no blank line in between)."""
    node = start
    prev = node.prev_named_sibling
    # A definition that opens its parent's body has its comment one level up
    # (Ruby attaches a class's first comment to the class, not to its body).
    while prev is None and node.parent is not None and node.parent.start_byte == node.start_byte:
        node = node.parent
        prev = node.prev_named_sibling
    expected = start.start_point.row
    first = last = None
    while prev is not None and prev.type in spec.comments:
        prev_end = _end_row(prev)
        if not (expected - 1 <= prev_end < expected) or not _is_first_on_line(prev, src):
            break
        first = prev.start_point.row
        if last is None:
            last = prev_end
        expected = first
        prev = prev.prev_named_sibling
    return (first, last) if first is not None else None


def _python_docstring_rows(body: Optional[Node]) -> Optional[tuple[int, int]]:
    if body is None:
        return None
    for stmt in body.named_children:
        if stmt.type == "comment":
            continue
        if stmt.type == "expression_statement" and stmt.named_child_count == 1:
            expr = stmt.named_child(0)
            if expr is not None and expr.type in ("string", "concatenated_string"):
                return stmt.start_point.row, _end_row(stmt)
        return None
    return None


def _body_of(node: Node) -> Optional[Node]:
    return node.child_by_field_name("body")


# --------------------------------------------------------------------- walk


def _make_def(
    kind: str, name: str, node: Node, anchor: Node, parent: Optional[_Def], spec: _Spec, src: bytes
) -> _Def:
    start = _span_start(anchor, spec)
    body = _body_of(node)
    end_row = max(_end_row(node), _end_row(anchor), _end_row(start))
    header_end = _header_end_row(node, body, src)
    if spec.docstring_in_body:
        doc = _python_docstring_rows(body)
        if doc is not None and doc[0] <= header_end:  # `def f(): """doc"""` is all signature line
            doc = None
    else:
        doc = _leading_comment_rows(start, spec, src)
    body_start = header_end + 1
    if spec.docstring_in_body and doc is not None:
        body_start = max(body_start, doc[1] + 1)
    name_node = anchor.child_by_field_name("name") or node.child_by_field_name("name") or node
    return _Def(
        kind=kind,
        name=name,
        node=node,
        body=body,
        parent=parent,
        start_row=start.start_point.row,
        end_row=end_row,
        name_row=name_node.start_point.row,
        header_end_row=header_end,
        doc_rows=doc,
        body_start_row=body_start,
    )


def _qualify(parent: Optional[_Def], name: str) -> str:
    return f"{parent.name}.{name}" if parent is not None else name


def _collect(root: Node, spec: _Spec, src: bytes) -> list[_Def]:
    """All class and function definitions outside function bodies, in one iterative walk."""
    defs: list[_Def] = []
    fname = spec.function_name or _simple_name
    cname = spec.class_name or _simple_name
    stack: list[tuple[Node, Optional[_Def]]] = [(root, None)]
    while stack:
        node, cls = stack.pop()
        ntype = node.type
        if ntype in spec.functions:
            named = fname(node, cls)
            if named is _TRANSPARENT:
                stack.extend((c, cls) for c in reversed(node.named_children))
            elif named is not None:
                name, anchor = named  # type: ignore[misc]
                if spec.receiver_methods and ntype == "method_declaration":
                    receiver = _go_receiver_type(node)
                    d = _make_def("method", f"{receiver}.{name}" if receiver else name, node, anchor, None, spec, src)
                    d.receiver = receiver
                else:
                    kind = "method" if cls is not None else "function"
                    d = _make_def(kind, _qualify(cls, name), node, anchor, cls, spec, src)
                    if cls is not None:
                        cls.members.append((d.name_row, max(d.name_row, d.header_end_row)))
                defs.append(d)
            continue  # never look inside a function
        if ntype in spec.classes:
            named = cname(node)
            if named is not None:
                name, anchor = named
                d = _make_def("class", _qualify(cls, name), node, anchor, cls, spec, src)
                if cls is not None:
                    cls.members.append((d.name_row, max(d.name_row, d.header_end_row)))
                defs.append(d)
                stack.extend((c, d) for c in reversed(node.named_children))
            elif ntype not in spec.opaque_when_unnamed:
                stack.extend((c, cls) for c in reversed(node.named_children))
            continue
        if ntype in spec.opaque or ntype in spec.comments:
            continue
        if cls is not None and ntype in spec.member_signatures:
            cls.members.append((node.start_point.row, _end_row(node)))
            continue
        stack.extend((c, cls) for c in reversed(node.named_children))
    return defs


def _attach_go_methods(defs: list[_Def]) -> dict[str, _Def]:
    """Go methods live outside their type; list them under the type declared in the same file."""
    types = {d.name: d for d in defs if d.kind == "class"}
    for d in defs:
        if d.receiver and d.receiver in types:
            types[d.receiver].members.append((d.name_row, max(d.name_row, d.header_end_row)))
    return types


# ------------------------------------------------------------------- render


class _Lines:
    """Row access to the decoded source, with carriage returns dropped."""

    def __init__(self, text: str):
        self.rows = text.split("\n")
        self.last = len(self.rows) - 1

    def get(self, first: int, last: int) -> list[str]:
        last = min(last, self.last)
        return [r.rstrip("\r") for r in self.rows[first : last + 1]] if first <= last else []

    def iter(self, first: int, last: int) -> Iterator[str]:
        for row in range(first, min(last, self.last) + 1):
            yield self.rows[row].rstrip("\r")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _fit(context: list[list[str]], required: list[str], rest: Iterable[str], max_chars: int) -> str:
    """Assemble context + required + as many whole ``rest`` lines as fit in ``max_chars``.

    ``required`` (signature and documentation) is what retrieval keys on, so
    it is never dropped for context or body; context goes next, body last.
    """
    head = "\n".join(required)
    if len(head) >= max_chars:
        return head[:max_chars]
    for ctx in context:  # widest context first, then narrower, then none
        joined = "\n".join(ctx)
        if ctx and len(joined) + 1 + len(head) <= max_chars:
            head = joined + "\n" + head
            break
    out = [head]
    used = len(head)
    truncated_at: Optional[str] = None
    for line in rest:  # lazily: a long body is only read up to the budget
        if used + 1 + len(line) > max_chars:
            truncated_at = line
            break
        out.append(line)
        used += 1 + len(line)
    if truncated_at is not None:
        marker = (_indent(truncated_at) or "    ") + "..."
        while len(out) > 1 and used + 1 + len(marker) > max_chars:
            used -= 1 + len(out.pop())
        if used + 1 + len(marker) <= max_chars:
            out.append(marker)
    return "\n".join(out)


def _class_context(cls: _Def, lines: _Lines, before_row: int) -> list[str]:
    """The header line(s) of a class as seen from a member starting at ``before_row``.

    Go's header is just the `type X struct {` line; rows shared with the member
    itself (one-line classes) are left to the member's own signature.
    """
    first = cls.node.start_point.row
    last = cls.header_end_row if cls.body is not None else first
    return lines.get(first, min(last, before_row - 1))


def _function_context(d: _Def, lines: _Lines, go_types: dict[str, _Def], comment_prefix: str) -> list[list[str]]:
    """Candidate context blocks, widest first: all enclosing class headers, then the innermost."""
    if d.receiver:
        owner = go_types.get(d.receiver)
        if owner is not None and owner.node.start_point.row != d.start_row:
            return [lines.get(owner.node.start_point.row, owner.node.start_point.row)]
        return [[f"{comment_prefix} type {d.receiver}"]]
    chain: list[_Def] = []
    p = d.parent
    while p is not None:
        chain.append(p)
        p = p.parent
    if not chain:
        return []
    chain.reverse()
    full = [line for c in chain for line in _class_context(c, lines, d.start_row)]
    innermost = _class_context(chain[-1], lines, d.start_row)
    return [full, innermost] if len(chain) > 1 else [full]


def _doc_lines(d: _Def, lines: _Lines) -> list[str]:
    return lines.get(*d.doc_rows) if d.doc_rows else []


def _render_function(d: _Def, lines: _Lines, go_types: dict[str, _Def], spec: _Spec, max_chars: int) -> str:
    required = lines.get(d.start_row, d.header_end_row) + _doc_lines(d, lines)
    context = _function_context(d, lines, go_types, spec.comment_prefix)
    return _fit(context, required, lines.iter(d.body_start_row, d.end_row), max_chars)


def _render_class(d: _Def, lines: _Lines, max_chars: int) -> str:
    required = lines.get(d.start_row, d.header_end_row) + _doc_lines(d, lines)
    shown = set(range(d.start_row, d.header_end_row + 1))
    if d.doc_rows:
        shown.update(range(d.doc_rows[0], d.doc_rows[1] + 1))
    return _fit([], required, _member_lines(d, lines, shown), max_chars)


def _member_lines(d: _Def, lines: _Lines, shown: set[int]) -> Iterator[str]:
    """Member signatures, each source row once (one-line classes share rows with members)."""
    for first, last in d.members:
        for row in range(first, last + 1):
            if row not in shown:
                shown.add(row)
                yield from lines.iter(row, row)


def _file_text(path: str, text: str, prefix: str, max_chars: int) -> str:
    header = f"{prefix} path: {path}"
    if len(header) >= max_chars:
        return header[:max_chars]
    return header + "\n" + text[: max_chars - len(header) - 1]


def _decode(source: bytes | str) -> tuple[str, bytes]:
    if isinstance(source, str):
        try:
            return source, source.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates
            data = source.encode("utf-8", errors="replace")
            return data.decode("utf-8"), data
    text = decode_source(bytes(source))
    # Re-encode so byte offsets and rows in the tree match the decoded text.
    return text, text.encode("utf-8")


def _line_count(text: str) -> int:
    n = text.count("\n")
    if text and not text.endswith("\n"):
        n += 1
    return max(n, 1)


# ---------------------------------------------------------------------- API


def chunk_source(path: str, source: bytes | str, language: str, *, max_chars: int = 2000) -> list[Chunk]:
    """Chunks of one file: the file itself, then classes and functions in source order.

    Raises ValueError only for an unsupported ``language`` or a non-positive
    ``max_chars``; broken or undecodable source still yields a file chunk
    plus whatever definitions tree-sitter could recover.
    """
    if language not in _SPECS:
        raise ValueError(f"unsupported language {language!r}; expected one of {', '.join(LANGUAGES)}")
    if max_chars < 1:
        raise ValueError(f"max_chars must be positive, got {max_chars}")
    spec = _SPECS[language]
    text, data = _decode(source)
    file_chunk = Chunk(
        path=path,
        name="",
        kind="file",
        start_line=1,
        end_line=_line_count(text),
        language=language,
        text=_file_text(path, text, spec.comment_prefix, max_chars),
    )
    if not data.strip():
        return [file_chunk]

    tree = get_parser(language).parse(data)
    defs = _collect(tree.root_node, spec, data)
    go_types = _attach_go_methods(defs) if language == "go" else {}
    lines = _Lines(text)

    order = sorted(range(len(defs)), key=lambda i: (defs[i].start_row, -defs[i].end_row, i))
    chunks = [file_chunk]
    for i in order:
        d = defs[i]
        if d.kind == "class":
            body_text = _render_class(d, lines, max_chars)
        else:
            body_text = _render_function(d, lines, go_types, spec, max_chars)
        chunks.append(
            Chunk(
                path=path,
                name=d.name,
                kind=d.kind,
                start_line=d.start_row + 1,
                end_line=min(d.end_row, lines.last) + 1,
                language=language,
                text=body_text,
            )
        )
    return chunks
