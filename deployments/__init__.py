"""The Ray Serve layer: the only code that imports ray, fastapi or vllm.

Nothing is imported at package import time; ``deployments.app:build_app`` is the entry point.
"""
