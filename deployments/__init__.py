"""The Ray Serve app: what a running server needs, and nothing else (tooling lives in ``bench``,
``ops`` and ``cli``, which import this package; it imports none of them).

Nothing is imported at package import time; ``deployments.app:build_app`` is the entry point.
"""
