"""Measurements, not serving: load tests, routing overhead through Serve, router scoring speed,
the compute ceiling of MiniLM on this machine, and the no-op app the overhead is measured against.

Imports point one way: ``bench`` may import ``deployments`` and ``routers``; neither imports it.
"""
