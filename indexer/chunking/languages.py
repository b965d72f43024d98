"""Which files we can chunk, and the tree-sitter parser for each language.

Grammars come from the per-language ``tree-sitter-*`` wheels (never the
language pack, which downloads grammars at run time and we run offline).
"""

from __future__ import annotations

import functools
import importlib
import os

import tree_sitter

LANGUAGES: tuple[str, ...] = ("python", "java", "javascript", "typescript", "tsx", "go", "php", "ruby")

# language -> (grammar module, function returning the language pointer)
_GRAMMARS: dict[str, tuple[str, str]] = {
    "python": ("tree_sitter_python", "language"),
    "java": ("tree_sitter_java", "language"),
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "php": ("tree_sitter_php", "language_php"),
    "ruby": ("tree_sitter_ruby", "language"),
}

_EXTENSIONS: dict[str, str] = {
    ".py": "python",
    ".pyi": "python",
    ".java": "java",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".mts": "typescript",
    ".cts": "typescript",
    ".tsx": "tsx",
    ".go": "go",
    ".php": "php",
    ".rb": "ruby",
    ".rake": "ruby",
}

# Extension-less files that are conventionally Ruby.
_BASENAMES: dict[str, str] = {
    "Rakefile": "ruby",
    "Gemfile": "ruby",
}


def language_for_path(path: str) -> str | None:
    """The language of ``path`` judged by its extension, or None if unsupported."""
    base = os.path.basename(path.replace("\\", "/"))
    if base in _BASENAMES:
        return _BASENAMES[base]
    _, ext = os.path.splitext(base)
    return _EXTENSIONS.get(ext.lower())


@functools.lru_cache(maxsize=None)
def get_language(language: str) -> tree_sitter.Language:
    """The tree-sitter grammar for ``language``; the module is imported on first use only."""
    try:
        module_name, func_name = _GRAMMARS[language]
    except KeyError:
        raise ValueError(f"unsupported language {language!r}; expected one of {', '.join(LANGUAGES)}") from None
    module = importlib.import_module(module_name)
    return tree_sitter.Language(getattr(module, func_name)())


@functools.lru_cache(maxsize=None)
def get_parser(language: str) -> tree_sitter.Parser:
    """A parser for ``language``, built once per process (grammar loading is not free)."""
    return tree_sitter.Parser(get_language(language))
