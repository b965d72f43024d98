"""The learned ranker over every signal: its features, the shipped model, and how it orders candidates."""
