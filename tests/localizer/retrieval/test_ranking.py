import pytest

from indexer.filters import is_test_path
from localizer.retrieval.query import build_query
from localizer.retrieval.ranking import (
    mentioned_files,
    mentioned_function,
    min_max,
    order,
    reciprocal_rank_fusion,
)


@pytest.mark.parametrize(
    "path,expected",
    [
        ("tests/test_cart.py", True),
        ("pkg/testing/utils.py", True),
        ("shop/test_cart.py", True),
        ("svc/queue_test.go", True),
        ("src/RouterTest.java", True),
        ("web/src/app.spec.ts", True),
        ("shop/cart.py", False),
        ("shop/contest.py", False),
        ("latest/testament.py", False),
    ],
)
def test_is_test_path(path, expected):
    assert is_test_path(path) is expected


def test_rrf_rewards_agreement_between_rankings():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["a", "c", "d"]], k=60)
    assert fused["a"] == pytest.approx(2 / 61)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 62)
    assert order(fused) == ["a", "c", "b", "d"]


def test_min_max_and_order_are_deterministic():
    assert min_max({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert min_max({"a": 1.0, "b": 1.0}) == {"a": 1.0, "b": 1.0}
    assert order({"b": 1.0, "a": 1.0, "c": 2.0}) == ["c", "a", "b"]


def test_mentions_match_absolute_traceback_paths_and_dotted_modules():
    query = build_query(
        'boom\n  File "/opt/venv/site-packages/shop/payment.py", line 5, in validate_amount\n'
        "see `shop.cart.Cart.total` too"
    )
    files = mentioned_files(query, ["shop/payment.py", "shop/cart.py", "other/payment_utils.py", "shop/__init__.py"])
    assert files == {"shop/payment.py": 1.0, "shop/cart.py": 0.5}
    assert mentioned_function(query, "shop/payment.py", "validate_amount") == 1.0
    assert mentioned_function(query, "shop/cart.py", "Cart.total") == 0.5
    assert mentioned_function(query, "shop/cart.py", "Cart.add_item") == 0.0
