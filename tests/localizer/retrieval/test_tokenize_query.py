from indexer.chunking.tokenize import code_terms, split_identifier
from localizer.retrieval.query import build_query


def test_split_identifier_handles_snake_camel_and_acronyms():
    assert split_identifier("getUserName") == ["get", "user", "name"]
    assert split_identifier("get_user_name") == ["get", "user", "name"]
    assert split_identifier("HTTPServerError_v2") == ["http", "server", "error", "v2"]


def test_code_terms_keep_whole_identifier_and_drop_stopwords():
    terms = code_terms("def parse_iso_date(self): return self.value")
    assert "parse_iso_date" in terms and "parse" in terms and "iso" in terms
    assert "def" not in terms and "self" not in terms and "return" not in terms


PY_TRACEBACK_ISSUE = """Refunds crash with ValueError

Calling a refund of 0 raises:

```
Traceback (most recent call last):
  File "/srv/app/run.py", line 3, in <module>
    main()
  File "/home/me/shop/shop/payment.py", line 12, in charge_card
    validate_amount(amount)
  File "/home/me/shop/shop/payment.py", line 5, in validate_amount
    raise ValueError("amount must be positive")
ValueError: amount must be positive
```

Maybe `validate_amount` should accept zero for `charge_card` refunds. See shop.payment module.
"""


def test_build_query_extracts_title_frames_errors_paths_and_symbols():
    query = build_query(PY_TRACEBACK_ISSUE)
    assert query.title == "Refunds crash with ValueError"
    assert [f.function for f in query.frames] == ["<module>", "charge_card", "validate_amount"]
    assert query.frames[-1].path == "/home/me/shop/shop/payment.py" and query.frames[-1].line == 5
    assert query.errors == ["ValueError: amount must be positive"]
    assert "/home/me/shop/shop/payment.py" in query.mentioned_paths
    assert {"validate_amount", "charge_card", "shop.payment"} <= set(query.mentioned_symbols)
    # The dense query leads with what locates the bug, within the embedder's reach.
    assert query.dense_text.splitlines()[0] == query.title
    assert "ValueError: amount must be positive" in query.dense_text.splitlines()[1]
    # Explicitly named symbols weigh more in BM25 than prose words.
    assert query.terms.count("validate_amount") > query.terms.count("refunds")


def test_build_query_reads_java_js_and_go_frames():
    text = (
        "Crash\n"
        "  at server.Router.matchRoute(Router.java:18)\n"
        "  at handler (web/src/formatPrice.js:5:10)\n"
        "panic: runtime error: index out of range\nsvc/queue.go:15 +0x1d\n"
    )
    frames = build_query(text).frames
    assert ("server/Router.java", 18, "matchRoute") in [(f.path, f.line, f.function) for f in frames]
    assert ("web/src/formatPrice.js", 5) in [(f.path, f.line) for f in frames]
    assert ("svc/queue.go", 15) in [(f.path, f.line) for f in frames]


def test_build_query_plain_prose_has_no_symbols_from_ordinary_words():
    query = build_query("The page is slow\nWhen I open the page it takes ages to load.")
    assert query.frames == [] and query.mentioned_paths == []
    assert "page" not in query.mentioned_symbols
