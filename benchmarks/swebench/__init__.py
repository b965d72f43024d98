"""SWE-bench localization evaluation: gold labels from patches, and ranking metrics."""
