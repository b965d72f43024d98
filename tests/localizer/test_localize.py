"""End-to-end rankings on the sample repository: each issue must find its bug."""

import pytest

from indexer.index import IndexConfig
from localizer import EmbedderConfig, LocalizeConfig, Localizer
from localizer.api import LocalizationResult

from tests.localizer.retrieval.test_tokenize_query import PY_TRACEBACK_ISSUE

CART_ISSUE = """Cart total applies the coupon discount twice

When a coupon is set on the cart, the total price is lower than expected:
a 10% coupon takes 19% off the cart total.
"""
QUEUE_ISSUE = """Popping an empty job queue panics

Calling Pop on an empty Queue panics with index out of range instead of returning an error.
"""
PRICE_ISSUE = "formatPrice truncates cents\n\nformatPrice(2.675, 'USD') shows $2.67, it should round the amount."
ROUTER_ISSUE = "Router does not match a path with a trailing slash\n\nmatchRoute('/orders/') throws RouteNotFoundException."


def _localizer(repo, index_dir, retriever, include_tests=False, **kwargs) -> Localizer:
    index = IndexConfig(index_dir=index_dir, include_tests=include_tests)
    config = LocalizeConfig(retriever=retriever, index=index, **kwargs)
    return Localizer(repo, config)


def _top_function(result: LocalizationResult) -> tuple[str, str]:
    return result.functions[0].path, result.functions[0].name


@pytest.mark.parametrize("retriever", ["bm25", "dense", "hybrid"])
def test_each_retriever_finds_the_described_bugs(sample_repo, index_dir, retriever, minilm, monkeypatch):
    monkeypatch.setattr("localizer.pipeline.Embedder", lambda config: minilm)
    localizer = _localizer(sample_repo, index_dir, retriever)
    cart = localizer.localize(CART_ISSUE)
    assert _top_function(cart) == ("shop/cart.py", "Cart.total")
    assert cart.files[0].path == "shop/cart.py"
    assert _top_function(localizer.localize(QUEUE_ISSUE)) == ("svc/queue.go", "Queue.Pop")
    assert _top_function(localizer.localize(PRICE_ISSUE)) == ("web/src/formatPrice.js", "formatPrice")
    assert _top_function(localizer.localize(ROUTER_ISSUE)) == ("server/Router.java", "Router.matchRoute")


def test_traceback_ranks_the_raising_function_and_file_first(sample_repo, index_dir):
    result = _localizer(sample_repo, index_dir, "bm25").localize(PY_TRACEBACK_ISSUE)
    assert result.files[0].path == "shop/payment.py"
    assert {h.name for h in result.functions[:2]} == {"validate_amount", "charge_card"}


def test_boost_can_be_turned_off_and_changes_scores(sample_repo, index_dir):
    """The hand-set ranker's mention boost (the learned ranker reads mentions as features instead)."""
    boosted = _localizer(sample_repo, index_dir, "bm25", ranker="boosts").localize(PY_TRACEBACK_ISSUE)
    plain = _localizer(sample_repo, index_dir, "bm25", ranker="boosts", mention_boost=0.0).localize(PY_TRACEBACK_ISSUE)
    assert boosted.functions[0].score > 1.0 >= plain.functions[0].score


def test_tests_are_excluded_unless_asked(sample_repo, index_dir):
    issue = "test_total_with_coupon_discount_applied_twice fails"
    default = _localizer(sample_repo, index_dir, "bm25", top_k=50).localize(issue)
    assert all(not f.path.startswith("tests/") for f in default.files)
    included = _localizer(sample_repo, index_dir, "bm25", include_tests=True).localize(issue)
    assert included.functions[0].path == "tests/test_cart.py"


def test_function_hits_carry_lines_and_top_k(sample_repo, index_dir):
    result = _localizer(sample_repo, index_dir, "bm25", top_k=3).localize(CART_ISSUE)
    assert len(result.files) == 3 and len(result.functions) == 3
    total = result.functions[0]
    lines = (sample_repo / total.path).read_text().splitlines()
    assert lines[total.start_line - 1].strip().startswith("def total(self)")
    assert lines[total.end_line - 1].strip() == "return round(discounted, 2)"


def test_localize_at_an_older_revision(sample_repo, index_dir):
    from tests.conftest import commit_all, git

    old = git(sample_repo, "rev-parse", "HEAD").strip()
    (sample_repo / "shop/pricing.py").unlink()
    commit_all(sample_repo, "drop pricing")
    issue = "apply_coupon returns the wrong percentage discount for a coupon"
    now = _localizer(sample_repo, index_dir, "bm25").localize(issue)
    assert "shop/pricing.py" not in [f.path for f in now.files]
    then = _localizer(sample_repo, index_dir, "bm25", rev=old).localize(issue)
    assert then.commit == old and _top_function(then) == ("shop/pricing.py", "apply_coupon")


def test_query_prompt_reaches_the_embedder(sample_repo, index_dir, minilm):
    config = EmbedderConfig(query_prompt="Represent this query for searching relevant code: ")
    localizer = _localizer(sample_repo, index_dir, "dense", embedder=config)
    assert localizer.embedder.query_prompt == config.query_prompt
    assert _top_function(localizer.localize(QUEUE_ISSUE)) == ("svc/queue.go", "Queue.Pop")
