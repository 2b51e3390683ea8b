"""Evaluation: zoos, splits, scenarios, metrics with confidence intervals, the benchmark and its report."""
