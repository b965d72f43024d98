"""Whether a run reranks when nobody said: yes exactly when the package ships a trained adapter.

Reranking is on by default only once a trained adapter has measured better than the same pipeline
without it (issue #25's bar: Lite file@1 +5, function@5 +3, no column lower) and has been installed
into ``localizer/models/reranker`` (``cornstack-train ship-reranker``). Until then this
build reranks only on ``--rerank``. When the adapter ships but its base model is not installed (the
``[llm]`` extra), a default run ranks without reranking and says so in one line; an explicit
``--rerank`` still fails loudly.
"""

from __future__ import annotations

from pathlib import Path

from localizer.rerank.models import INSTALL_HINT

SHIPPED_RERANKER = Path(__file__).resolve().parent.parent / "models" / "reranker"


def shipped_adapter() -> Path | None:
    """The adapter this build ships, or None."""
    return SHIPPED_RERANKER if (SHIPPED_RERANKER / "adapter_config.json").is_file() else None


def rerank_by_default() -> bool:
    return shipped_adapter() is not None


def not_installed_note(reason: str) -> str:
    """The one line a default run prints when the shipped reranker cannot load."""
    return f"reranker not installed ({reason}); ranked without it. Install it with: {INSTALL_HINT}, or pass --no-rerank"
