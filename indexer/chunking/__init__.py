"""Tree-sitter chunking: languages, definitions, chunk records and the identifier tokenizer BM25 shares."""
