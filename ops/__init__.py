"""Operations tooling: the KubeRay manifests rendered from ``serve_config.yaml`` and their offline
validation.

Imports point one way: ``ops`` may import ``deployments`` and ``routers``; neither imports it.
"""
