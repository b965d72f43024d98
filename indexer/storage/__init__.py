"""The content-addressed SQLite store of parsed chunks and embeddings, and atomic file writes."""
