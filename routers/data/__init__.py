"""Preference data, benchmarks, model-name aliases and model tiers.

Loaders return pandas DataFrames in the canonical preference schema (``records.COLUMNS``).
"""
