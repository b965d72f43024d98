"""The learned ranker's training data and fitting (``cornstack-train ranker-data`` and ``ranker-fit``)."""
