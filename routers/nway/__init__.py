"""Routing among N models: routers that predict a quality per model, and the one selection rule.

- ``base``: ``QualityRouter``, the contract (``predict(prompts) -> (n, m)`` quality in [0, 1]).
- ``selection``: maximise quality − λ · relative price (or: cheapest within τ of the best).
- ``knn``: k nearest training prompts' mean outcome per model (RouterBench's kNN baseline).
- ``head``: one calibrated ridge per model on the embedding + surface features.
- ``mf``: pointwise many-model matrix factorisation (paper Eq. 12 plus a per-model offset).
- ``registry``: names -> classes, loading a checkpoint.

The two-model strong/weak routers (``routers.models``) are untouched by this package.
"""
