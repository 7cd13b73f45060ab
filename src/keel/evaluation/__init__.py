"""Evaluation: metric suites on held-out rows."""
