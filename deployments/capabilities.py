"""Which features a chat request needs that a model may lack, and what the weak model lacks.

One rule per feature, from the request as the client sent it:
- ``images``: an ``image_url`` content part; ``audio``: an ``input_audio`` part, or audio output
  asked for in ``modalities``;
- ``tools``: ``tools`` given and ``tool_choice`` not ``"none"`` (vLLM needs a tool-call parser for
  auto, required and named tool choice alike).
``context`` (a conversation longer than the weak model's window) is known only once vLLM has
tokenized it; ``ChatService`` handles it when the weak model says so.
"""

from __future__ import annotations

from deployments.protocol import ChatCompletionRequest


def request_features(req: ChatCompletionRequest) -> frozenset[str]:
    body = req.body()
    parts = set().union(*(m.part_types() for m in req.messages))
    features = set()
    if "image_url" in parts:
        features.add("images")
    if "input_audio" in parts or "audio" in (body.get("modalities") or ()):
        features.add("audio")
    if body.get("tools") and body.get("tool_choice") != "none":
        features.add("tools")
    return frozenset(features)


def feature_param(features) -> str:
    """The ``param`` of an unsupported-feature error: ``tools`` when tools alone are missing."""
    return "tools" if set(features) == {"tools"} else "messages"
