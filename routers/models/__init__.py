"""The router models, one module per registry name (``routers.registry.ROUTER_CLASSES``):
``random``, ``length``, ``mf``, ``sw_ranking``, ``bert``, ``causal_llm``. ``embedding_router`` is
the shared base of the embedding routers (mf, sw_ranking); ``classifier`` the shared parts of the
classifier routers (bert, causal_llm). Their trainers live in ``routers.training`` under the same
names.
"""
