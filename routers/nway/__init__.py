"""Routing among N models: routers that predict a quality per model, and the one selection rule.

- ``base``: ``QualityRouter``, the contract (``predict(prompts) -> (n, m)`` quality in [0, 1]).
- ``selection``: maximise quality − λ · relative price (or: cheapest within τ of the best).
- ``knn``: k nearest training prompts' mean outcome per model (RouterBench's kNN baseline).
- ``registry``: names -> classes, loading a checkpoint.

The two-model strong/weak routers (``routers.models``) are untouched by this package.
"""
